"""Pure rules of activity-aggregate-updater: parsing, checksums, merging, progress."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.activity_aggregate_updater import rules
from lernflow.errors import InvalidEvent
from tests.conftest import FIXTURES

FX = FIXTURES / "activity"


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
    assert isinstance(rules.parse_request((FX / "EVENT_5.json").read_bytes()), rules.Skipped)
    doc = json.loads((FX / "CC_EVENT1.json").read_text())
    doc["edata"]["contents"] = [{"contentId": "do_R1", "status": 1}]
    assert rules.parse_request(json.dumps(doc)).kind == "no-completed-content"


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


def _relation() -> dict[str, frozenset[str]]:
    return {
        "c:c:leafnodes": frozenset({"a", "b", "x"}),
        "c:c:optionalnodes": frozenset({"x"}),
        "c:a:ancestors": frozenset({"u1", "c"}),
        "c:b:ancestors": frozenset({"u2", "c"}),
        "c:u1:leafnodes": frozenset({"a"}),
        "c:u2:leafnodes": frozenset({"b", "x"}),
        "c:u2:optionalnodes": frozenset({"x"}),
    }


def _plan(new, replayed=(), stored=None, status=0):
    return rules.plan_enrolment(
        ("u", "c", "b1"), new_completions=new, replayed=list(replayed), stored=stored or {},
        relation=_relation(), enrolment_status=status, enrolment_exists=True,
        collection_status="Live", now_ms=1000, new_id=lambda: "id",
    )  # fmt: skip


def test_completing_all_required_lessons_completes_once_with_certificate():
    stored = {"a": rules.StoredContent(2, 1, 1)}
    plan = _plan({"b": 1}, stored=stored)
    assert (
        plan.enrolment is not None and plan.enrolment.status == 2 and plan.enrolment.progress == 2
    )
    assert (
        plan.certificate_event is not None
        and json.loads(plan.certificate_event)["object"]["id"] == "b1_c"
    )
    again = _plan(
        {}, replayed=["b"], stored={"a": stored["a"], "b": rules.StoredContent(2, 1, 1)}, status=2
    )
    assert again.enrolment is None and again.certificate_event is None


def test_live_course_without_leaf_nodes_fails_with_no_writes():
    plan = rules.plan_enrolment(
        ("u", "c", "b"), new_completions={"a": 1}, replayed=[], stored={}, relation={},
        enrolment_status=1, enrolment_exists=True, collection_status="Live", now_ms=1,
    )  # fmt: skip
    assert plan.failure and "published collection: c" in plan.failure
    assert plan.merged == () and plan.aggregates == () and plan.enrolment is None


statuses = st.integers(0, 2)
stored_rows = st.dictionaries(
    st.sampled_from(["a", "b", "x", "y"]),
    st.builds(rules.StoredContent, statuses, st.integers(0, 5), st.integers(0, 5)),
    max_size=4,
)
news = st.dictionaries(st.sampled_from(["a", "b", "x", "y"]), st.integers(1, 3), max_size=4)


@given(new=news, stored=stored_rows)
def test_status_never_goes_backwards_and_counters_only_grow(new, stored):
    merged = rules.merge_contents(new, [], stored)
    for cid, db in stored.items():
        assert merged[cid].status >= db.status
        assert merged[cid].view_count >= db.view_count
        assert merged[cid].completed_count >= db.completed_count


@given(new=news, stored=stored_rows)
def test_progress_never_exceeds_the_required_leaves(new, stored):
    plan = _plan(new, stored=stored)
    required = len({"a", "b", "x"} - {"x"})
    assert plan.enrolment is not None
    assert 0 <= plan.enrolment.progress <= required


@given(new=news, stored=stored_rows)
def test_replaying_counted_records_changes_no_counter(new, stored):
    first = rules.merge_contents(new, [], stored)
    after = {
        c: rules.StoredContent(m.status, m.view_count, m.completed_count) for c, m in first.items()
    }
    replay = rules.merge_contents({}, list(new), after)
    assert {c: (m.status, m.view_count, m.completed_count) for c, m in replay.items()} == {
        c: (m.status, m.view_count, m.completed_count) for c, m in first.items()
    }
    assert all(m.events == () for m in replay.values())
