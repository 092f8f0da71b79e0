"""The activity flow's AUDIT events are assembled from pre-encoded parts; they must be the bytes
``json.dumps`` gives for the documented document (docs/flows/activity-aggregate-updater.md#9)."""

from __future__ import annotations

import itertools
import json
import uuid

from hypothesis import given
from hypothesis import strategies as st

from lernflow.flows.activity_aggregate_updater import rules
from lernflow.kernel.ids import random_uuid

ids = st.text(min_size=0, max_size=40)


def _reference(actor, props, kind, cdata, obj, now_ms, make_id):
    doc = {
        "actor": {"id": actor, "type": "User"},
        "eid": "AUDIT",
        "edata": {"props": props, "type": kind},
        "ver": "3.0",
        "syncts": now_ms,
        "ets": now_ms,
        "context": {
            "channel": "in.sunbird",
            "env": "Course",
            "sid": make_id(),
            "did": make_id(),
            "pdata": {
                "ver": "3.0",
                "id": "org.sunbird.learning.platform",
                "pid": "course-progress-updater",
            },
            "cdata": cdata,
        },
        "mid": f"LP.AUDIT.{make_id()}",
        "object": obj,
        "tags": [],
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def _counter():
    n = itertools.count()
    return lambda: f"id-{next(n)}"


@given(user=ids, course=ids, batch=ids, content=ids, action=st.sampled_from(["start", "complete"]),
       now_ms=st.integers(0, 2**53))  # fmt: skip
def test_content_audit_is_the_json_dumps_of_the_documented_event(
    user, course, batch, content, action, now_ms
):
    props = ["viewcount"] if action == "start" else ["viewcount", "completedcount"]
    obj = {"id": content, "type": "Content", "rollup": {"l1": course}}
    cdata = [{"type": "CourseBatch", "id": batch}]
    expected = _reference(user, props, action, cdata, obj, now_ms, _counter())
    got = rules.content_audit(user, course, batch, content, action, now_ms, _counter())
    assert got == expected
    assert json.loads(got)["context"]["sid"] == "id-0"


@given(user=ids, course=ids, batch=ids, now_ms=st.integers(0, 2**53))
def test_enrol_complete_audit_is_the_json_dumps_of_the_documented_event(
    user, course, batch, now_ms
):
    obj = {"id": user, "type": "User", "rollup": {"l1": course}}
    cdata = [{"type": "CourseBatch", "id": batch}, {"type": "Course", "id": course}]
    expected = _reference(
        user, ["status", "completedon"], "enrol-complete", cdata, obj, now_ms, _counter()
    )
    assert rules.enrol_complete_audit(user, course, batch, now_ms, _counter()) == expected


def test_ids_escape_quotes_and_control_characters():
    got = rules.content_audit('u"\n\\', "c", "b", "x\u2028é", "start", 1, _counter())
    doc = json.loads(got)
    assert doc["actor"]["id"] == 'u"\n\\'
    assert doc["object"]["id"] == "x\u2028é"


def test_random_uuid_is_a_version_4_uuid_string():
    values = {random_uuid() for _ in range(2000)}
    assert len(values) == 2000
    for v in values:
        u = uuid.UUID(v)
        assert (u.version, u.variant, str(u)) == (4, uuid.RFC_4122, v)
