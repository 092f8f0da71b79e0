"""Pure rules of activity-aggregate-updater against Sunbird's own event files (conformance run)."""

from __future__ import annotations

import json

import pytest

from lernflow.flows.activity_aggregate_updater import rules
from lernflow.flows.skipped import Skipped
from lernflow.kernel.errors import InvalidEvent
from tests.conformance.conftest import SUNBIRD_FIXTURES

FX = SUNBIRD_FIXTURES / "activity"


def test_checksum_is_sunbirds_uppercase_md5():
    assert (
        rules.checksum("course001", "Batch1", "user001", "do_R1")
        == "3451DF21A5A0A0816E3B5A50F5121901"
    )


def test_fixture_event_parses_to_its_completed_contents():
    req = rules.parse_request((FX / "EVENT_2.json").read_bytes())
    assert isinstance(req, rules.EnrolmentRequest)
    assert req.key == ("user001", "course001", "Batch1")
    assert req.completed == ("do_R1", "do_R3", "do_R4")


def test_other_actions_and_events_without_completions_are_skipped_not_failed():
    assert isinstance(rules.parse_request((FX / "EVENT_5.json").read_bytes()), Skipped)
    doc = json.loads((FX / "CC_EVENT1.json").read_text())
    doc["edata"]["contents"] = [{"contentId": "do_R1", "status": 1}]
    assert rules.parse_request(json.dumps(doc)).kind == "no-completed-content"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.pop("edata"), "edata is missing"),
        (lambda d: d["edata"].pop("userId"), "edata.userId is missing"),
        (lambda d: d["edata"].update(batchId=7), "edata.batchId must be a non-empty string"),
        (lambda d: d["edata"].update(contents={"a": 1}), "edata.contents must be a list"),
        (
            lambda d: d["edata"].update(contents=[{"contentId": "x", "status": "2"}]),
            "status must be a number",
        ),
        (lambda d: d["edata"].update(contents=[5]), "edata.contents[0] must be an object"),
    ],
)
def test_malformed_requests_are_rejected_with_a_precise_reason(mutate, reason):
    doc = json.loads((FX / "CC_EVENT1.json").read_text())
    mutate(doc)
    with pytest.raises(InvalidEvent) as err:
        rules.parse_request(json.dumps(doc))
    assert reason in err.value.reason


@pytest.mark.parametrize("raw", [b"{oops", b"[]", b'"text"', b"\xff\xfe"])
def test_non_object_payloads_are_invalid(raw):
    with pytest.raises(InvalidEvent):
        rules.parse_request(raw)
