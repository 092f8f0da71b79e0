"""No single event stops a flow (issue 15 D1), and a bad event is parked once (item 2).

On the real stack: an event whose id Cassandra refuses as a key (70,000 characters; "Key length
of 70015 is longer than maximum of 65535") among good events. Before, the flow exited 1 on it
and on every restart, with none of the good events behind it applied; now the processor shell
isolates it, parks it with the server's message and applies the rest. Three runs from the
beginning of the same input (what a restart replays) leave each bad event on the failed topic
once. Rules: docs/architecture.md#the-processor-shell.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from lernflow.config import Settings
from tests.flowkit import create_topics, produce, read_json, read_topic, run_to_end
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
from tests.integration.test_relation_cache_flow import _redis_state, _seed_hierarchies
from tests.paths import DATA

HUGE_ID = "u" * 70_000
SERVER_SAYS = "longer than maximum of 65535"


def _reaching_cassandra(settings: Settings) -> Settings:
    """Settings whose parsers let a 70,000-character id through (when they bound ids at all)."""
    limits = getattr(settings, "limits", None)
    if limits is None:
        return settings
    bounds = {"max_id_chars": 1_000_000, "max_event_bytes": 10_000_000}
    wider = {k: v for k, v in bounds.items() if hasattr(limits, k)}
    return settings.with_overrides(limits=limits.model_copy(update=wider))


def _with_user(fixture: str, user: str, mid: str) -> bytes:
    event = json.loads(_fixture(fixture))
    event["edata"]["userId"] = user
    event["mid"] = mid
    return json.dumps(event).encode()


def _parked(settings: Settings, topic: str) -> list[dict[str, Any]]:
    return read_json(settings, settings.topics.full(topic))


@pytest.fixture
def activity(settings: Settings) -> Settings:
    s = _reaching_cassandra(settings)
    create_topics(s)
    seed_cassandra(s)
    seed_relation_cache(s)
    return s


def _activity_input(s: Settings) -> tuple[list[bytes], bytes]:
    """Maya's three lessons, the huge id between them, Noor's two contents; and the bad one."""
    bad = _with_user("t_a1_2_roots", HUGE_ID, "LF.TEST.huge-user")
    good = [_fixture(n) for n in T_A1]
    return [good[0], bad, good[1], _fixture("d_a2_two_completed_in_one_message"), good[2]], bad


def _assert_good_applied(s: Settings) -> None:
    """The state test_activity_flow's T-A1 and D-A2 reach without the bad event."""
    assert _consumption(s, MAYA) == {
        "lf-botany-seeds": (2, 1, 2, 100), "lf-botany-roots": (3, 1, 2, 100),
        "lf-botany-leaves": (2, 1, 2, 100), "lf-botany-flowers": (3, 0, 2, 100),
    }  # fmt: skip
    enrolment = _enrolment(s, MAYA)
    assert (enrolment.status, enrolment.progress) == (2, 4)
    assert {c: v[:2] for c, v in _consumption(s, NOOR).items()} == {
        "lf-optics-lenses": (1, 1),
        "lf-optics-mirrors": (1, 1),
    }


def test_activity_parks_an_id_cassandra_rejects_and_applies_the_rest(activity: Settings) -> None:
    s = activity
    events, bad = _activity_input(s)
    produce(s, s.topics.full(s.topics.course_batch_job_request), events, key=b"one-partition")
    run_to_end("activity-aggregate-updater", s)  # before: InvalidRequest, exit 1

    _assert_good_applied(s)
    certs = read_json(s, s.topics.full(s.topics.issue_certificate_request))
    assert [c["edata"]["userIds"] for c in certs] == [[MAYA[0]]]
    (parked,) = _parked(s, s.topics.activity_agg_failed)
    assert parked["payload"].encode() == bad
    assert parked["error_type"] == "InvalidRequest"
    assert SERVER_SAYS in parked["reason"]
    assert "Traceback" not in parked["reason"] and len(parked["reason"]) <= 500


def test_three_runs_from_the_beginning_park_each_bad_event_once(activity: Settings) -> None:
    s = activity
    events, huge = _activity_input(s)
    invalid = [b"{not json", _with_user("t_a1_3_leaves", "", "LF.TEST.blank-user")]
    inp = s.topics.full(s.topics.course_batch_job_request)
    produce(s, inp, [*invalid[:1], *events, *invalid[1:]], key=b"one-partition")
    for run in range(3):  # a first run, then two restarts that replay the whole input
        run_to_end("activity-aggregate-updater", s, from_beginning=run > 0)

    _assert_good_applied(s)
    parked = _parked(s, s.topics.activity_agg_failed)
    assert sorted(p["source"]["offset"] for p in parked) == [0, 2, 6]
    assert sorted(p["payload"].encode() for p in parked) == sorted([*invalid, huge])
    assert len(read_topic(s, s.topics.full(s.topics.activity_agg_failed))) == 3


def test_relation_cache_parks_an_identifier_cassandra_rejects_and_applies_the_rest(
    settings: Settings,
) -> None:
    s = _reaching_cassandra(settings)
    create_topics(s)
    _seed_hierarchies(s)
    fx = DATA / "relation-cache"
    alpha, beta = [(fx / f"event_{r}.json").read_bytes() for r in ("course_alpha", "book_beta")]
    doc = json.loads(alpha)
    doc["edata"]["identifier"] = doc["object"]["id"] = HUGE_ID
    bad = json.dumps(doc).encode()
    produce(s, s.topics.full(s.topics.content_postpublish_request), [alpha, bad, beta], key=b"k")
    for run in range(3):
        run_to_end("relation-cache-updater", s, from_beginning=run > 0)

    expected = json.loads((fx / "expected_redis.json").read_text())
    assert _redis_state(s) == (
        {k: set(v) for k, v in expected["db10_sets"].items()},
        expected["db5_strings"],
    )
    (parked,) = _parked(s, s.topics.content_postpublish_failed)
    assert parked["payload"].encode() == bad
    assert parked["error_type"] == "InvalidRequest"
    assert SERVER_SAYS in parked["reason"]
