"""Ids too long to be keys are parked by the parser, not at the server (issue 15 D1, parser half).

On the real stack, with our own events: a 70,000-character id (Cassandra refuses keys over
65,535 bytes) in the activity and user-cache topics among good events. The parser refuses it
against ``LERNFLOW_LIMITS_MAX_ID_CHARS`` (default 256): parked as ``InvalidEvent`` with the
field, the length and the setting; the good events around it are applied as without it; the
flow reaches the end of its input. No server sees the id. Rules: flows/fields.py,
docs/runbook.md.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from lernflow.config import Settings
from tests.flowkit import create_topics, produce, read_json, run_to_end
from tests.integration.test_activity_flow import (
    MAYA,
    NOOR,
    T_A1,
    _consumption,
    _enrolment,
    _fixture,
    seed_cassandra,
    seed_relation_cache,
)
from tests.integration.test_user_cache_flow import (
    CASSANDRA,
    EVENTS,
    _committed,
    _events,
    _expected_keys,
    _hashes,
    _preseed,
    _topics,
    user_tables,  # noqa: F401 (a fixture)
)

HUGE = "h" * 70_000


def _reason(field: str) -> str:
    return (
        f"{field} is 70,000 characters, over the 256-character limit (LERNFLOW_LIMITS_MAX_ID_CHARS)"
    )


def _activity_event(fixture: str, mid: str, path: tuple[str | int, ...]) -> bytes:
    doc: dict[str, Any] = json.loads(_fixture(fixture))
    doc["mid"] = mid
    target: Any = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = HUGE
    return json.dumps(doc).encode()


def test_activity_parks_70000_character_ids_and_applies_the_events_around_them(
    settings: Settings,
) -> None:
    s = settings
    create_topics(s)
    seed_cassandra(s)
    seed_relation_cache(s)
    huge_user = _activity_event("t_a1_2_roots", "LF.TEST.huge-user", ("edata", "userId"))
    huge_content = _activity_event(
        "t_a1_3_leaves", "LF.TEST.huge-content", ("edata", "contents", 0, "contentId")
    )
    good = [_fixture(n) for n in T_A1]
    events = [good[0], huge_user, good[1], huge_content,
              _fixture("d_a2_two_completed_in_one_message"), good[2]]  # fmt: skip
    produce(s, s.topics.full(s.topics.course_batch_job_request), events, key=b"one-partition")
    run_to_end("activity-aggregate-updater", s)  # before: InvalidRequest from Cassandra, exit 1

    # the good events: Maya completes the course (T-A1), Noor's two contents (D-A2)
    assert _consumption(s, MAYA) == {
        "lf-botany-seeds": (2, 1, 2, 100), "lf-botany-roots": (3, 1, 2, 100),
        "lf-botany-leaves": (2, 1, 2, 100), "lf-botany-flowers": (3, 0, 2, 100),
    }  # fmt: skip
    assert (_enrolment(s, MAYA).status, _enrolment(s, MAYA).progress) == (2, 4)
    assert {c: v[:2] for c, v in _consumption(s, NOOR).items()} == {
        "lf-optics-lenses": (1, 1),
        "lf-optics-mirrors": (1, 1),
    }
    certs = read_json(s, s.topics.full(s.topics.issue_certificate_request))
    assert [c["edata"]["userIds"] for c in certs] == [[MAYA[0]]]
    parked = read_json(s, s.topics.full(s.topics.activity_agg_failed))
    assert [(p["source"]["offset"], p["error_type"], p["reason"]) for p in parked] == [
        (1, "InvalidEvent", _reason("edata.userId")),
        (3, "InvalidEvent", _reason("edata.contents[0].contentId")),
    ]
    assert [p["payload"].encode() for p in parked] == [huge_user, huge_content]


def test_user_cache_parks_70000_character_ids_and_applies_the_events_around_them(
    user_tables: Settings,  # noqa: F811
) -> None:
    s = user_tables
    create_topics(s)
    _preseed(s)  # the hashes L01-L15 start from
    inp, failed = _topics(s)
    names: list[str] = CASSANDRA["events_in_order"]
    huge_object = copy.deepcopy(EVENTS[names[0]])
    huge_object["object"]["id"] = HUGE
    huge_actor = copy.deepcopy(EVENTS[names[0]])
    huge_actor["actor"]["id"] = HUGE
    hostile = [json.dumps(e).encode() for e in (huge_object, huge_actor)]
    good = _events(*names)
    produce(s, inp, [good[0], hostile[0], *good[1:3], hostile[1], *good[3:]], key=b"audit")
    run_to_end("user-cache-updater", s)  # before: a Cassandra read of the 70,000-char id

    assert _hashes(s) == _expected_keys(CASSANDRA["keys"])  # what the good events alone give
    parked = read_json(s, failed)
    ours = [(p["source"]["offset"], p["error_type"], p["reason"]) for p in parked][:2]
    assert ours == [
        (1, "InvalidEvent", _reason("object.id")),
        (4, "InvalidEvent", _reason("actor.id")),
    ]
    assert [p["payload"].encode() for p in parked[:2]] == hostile
    # the good events' own outcome is unchanged: lf-cas-13 (not in the user table) parked too
    assert [json.loads(p["payload"]) for p in parked[2:]] == [
        EVENTS[n] for n in CASSANDRA["parked"]
    ]
    assert _committed(s, inp) == len(names) + 2
