"""Pure rules of activity-aggregate-updater: parsing, checksums, merging, progress.

Events are ours (tests/data/activity/events); the rules are in
docs/flows/activity-aggregate-updater.md.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lernflow.flows.activity_aggregate_updater import rules
from lernflow.flows.skipped import Skipped
from lernflow.kernel.errors import InvalidEvent
from tests.paths import DATA

EVENTS = DATA / "activity" / "events"


def _event(name: str) -> bytes:
    return (EVENTS / f"{name}.json").read_bytes()


def test_checksum_is_the_uppercase_md5_of_the_completion():
    # expected values computed with: printf 'course|batch|user|content|2' | md5sum
    assert (
        rules.checksum("lf-course-botany", "lf-batch-botany-01", "lf-user-maya", "lf-botany-seeds")
        == "C15ACB0293A153BC696116C8603F2714"
    )
    assert (
        rules.checksum(
            "lf-course-geology", "lf-batch-geology-01", "lf-user-tomas", "lf-geology-rocks"
        )
        == "5FFCE81E1904C8D5D3DEB0CB2DD56E56"
    )


def test_d_a4_event_parses_to_its_completed_contents_in_order():
    req = rules.parse_request(_event("d_a4_three_of_four_completed"))
    assert isinstance(req, rules.EnrolmentRequest)
    assert req.key == ("lf-user-maya", "lf-course-botany", "lf-batch-botany-01")
    assert req.completed == ("lf-botany-seeds", "lf-botany-leaves", "lf-botany-flowers")


def test_d_a1_event_keeps_only_the_completed_content():
    req = rules.parse_request(_event("d_a1_one_completed_no_enrolment"))
    assert isinstance(req, rules.EnrolmentRequest)
    assert req.completed == ("lf-geology-rocks",)


def test_d_a3_other_actions_and_events_without_completions_are_skipped_not_failed():
    skipped = rules.parse_request(_event("d_a3_other_action"))
    assert isinstance(skipped, Skipped) and skipped.kind == "other-action"
    doc = json.loads(_event("t_a1_1_seeds"))
    doc["edata"]["contents"] = [{"contentId": "lf-botany-seeds", "status": 1}]
    none_done = rules.parse_request(json.dumps(doc))
    assert isinstance(none_done, Skipped) and none_done.kind == "no-completed-content"
    doc["edata"]["action"] = "BATCH-ENROLMENT-UPDATE"  # the action is compared case-insensitively
    doc["edata"]["contents"] = [{"contentId": "lf-botany-seeds", "status": 2.0}]
    assert isinstance(rules.parse_request(json.dumps(doc)), rules.EnrolmentRequest)


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
    doc = json.loads(_event("t_a1_1_seeds"))
    mutate(doc)
    with pytest.raises(InvalidEvent) as err:
        rules.parse_request(json.dumps(doc))
    assert reason in err.value.reason


@pytest.mark.parametrize("raw", [b"{oops", b"[]", b'"text"', b"\xff\xfe"])
def test_non_object_payloads_are_invalid(raw):
    with pytest.raises(InvalidEvent):
        rules.parse_request(raw)


def _cache(course: str) -> dict[str, frozenset[str]]:
    doc = json.loads((DATA / "activity" / "relation_cache" / f"{course}.json").read_text())
    return {k: frozenset(v) for k, v in doc.items()}


def _lms(user: str) -> dict[str, rules.StoredContent]:
    seed = json.loads((DATA / "activity" / "lms_seed.json").read_text())
    return {
        r["contentid"]: rules.StoredContent(r["status"], r["viewcount"], r["completedcount"])
        for r in seed["user_content_consumption"]
        if r["userid"] == user
    }


def test_t_a1_first_completion_completes_the_course_with_optional_lessons_excluded_per_unit():
    key = ("lf-user-maya", "lf-course-botany", "lf-batch-botany-01")
    plan = rules.plan_enrolment(
        key, new_completions={"lf-botany-seeds": 1}, replayed=[], stored=_lms("lf-user-maya"),
        relation=_cache("botany"), enrolment_status=1, enrolment_exists=True,
        collection_status=None, now_ms=1_767_225_600_000, new_id=lambda: "id",
    )  # fmt: skip
    assert plan.failure is None
    assert {a.activity_id: a.completed_count for a in plan.aggregates} == {
        "lf-course-botany": 4.0, "lf-botany-unit-growth": 2.0, "lf-botany-unit-plants": 2.0,
    }  # fmt: skip
    assert plan.enrolment is not None
    assert (plan.enrolment.status, plan.enrolment.progress) == (2, 4)
    assert plan.enrolment.completed_on_ms == 1_767_225_600_000
    assert json.loads(plan.certificate_event or "{}")["object"]["id"] == (
        "lf-batch-botany-01_lf-course-botany"
    )
    assert [json.loads(a)["edata"]["type"] for a in plan.audit_events] == ["complete"]
    assert plan.checksums == ("C15ACB0293A153BC696116C8603F2714",)


def test_d_a1_two_of_three_lessons_without_enrolment_row_writes_no_enrolment():
    key = ("lf-user-tomas", "lf-course-geology", "lf-batch-geology-01")
    plan = rules.plan_enrolment(
        key, new_completions={"lf-geology-rocks": 1}, replayed=[], stored=_lms("lf-user-tomas"),
        relation=_cache("geology"), enrolment_status=None, enrolment_exists=False,
        collection_status=None, now_ms=1, new_id=lambda: "id",
    )  # fmt: skip
    merged = {m.content_id: (m.status, m.view_count, m.completed_count) for m in plan.merged}
    assert merged == {"lf-geology-rocks": (2, 6, 2)}  # the other rows stay as stored
    assert {a.activity_id: a.completed_count for a in plan.aggregates} == {
        "lf-course-geology": 2.0, "lf-geology-unit-1": 1.0, "lf-geology-unit-2": 1.0,
        "lf-geology-unit-3": 1.0,
    }  # fmt: skip
    assert plan.enrolment is None and plan.certificate_event is None
    assert plan.audit_events == ()


def test_t_a3_retired_course_without_leaf_nodes_gives_no_progress_and_no_checksum():
    key = ("lf-user-maya", "lf-course-botany", "lf-batch-botany-01")
    plan = rules.plan_enrolment(
        key, new_completions={"lf-botany-seeds": 1}, replayed=[], stored=_lms("lf-user-maya"),
        relation={}, enrolment_status=1, enrolment_exists=True, collection_status="Retired",
        now_ms=1, new_id=lambda: "id",
    )  # fmt: skip
    assert plan.retired and plan.failure is None
    assert plan.enrolment is None and plan.certificate_event is None
    assert plan.aggregates == () and plan.checksums == ()


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
    assert set(merged) == set(new)  # only the input contents: the others stay as stored
    for cid, db in stored.items():
        if cid not in merged:
            continue
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
