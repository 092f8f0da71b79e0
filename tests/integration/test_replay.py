"""`lernflow replay`: a bounded range through our own source leaves the original state."""

from __future__ import annotations

import pytest

from lernflow.config import Settings
from lernflow.kernel.clients import redis_client
from lernflow.ops import replay
from lernflow.ops.runner import input_topic
from lernflow.sources.options import consumer_group
from tests.flowkit import create_topics, produce, read_json, run_to_end
from tests.integration.test_activity_flow import (
    T_A1,
    _fixture,
    seed_cassandra,
    seed_relation_cache,
    state,
)

FLOW = "activity-aggregate-updater"


@pytest.fixture
def seeded(settings: Settings) -> Settings:
    create_topics(settings)
    seed_cassandra(settings)
    seed_relation_cache(settings)
    return settings


def test_replay_from_a_time_leaves_the_same_state_and_no_second_certificate(
    seeded: Settings,
) -> None:
    s = seeded
    inp = input_topic(s, FLOW)
    produce(s, inp, [_fixture(n) for n in (*T_A1, "d_a4_three_of_four_completed")], key=b"k")
    run_to_end(FLOW, s)
    original = state(s)
    redis_client(s.redis, s.redis.dedup_db).flushdb()  # long after: the dedup window is gone
    seen: list[tuple[int, int]] = []
    start = replay.parse_point("2000-01-01T00:00:00Z", inp, s)
    total = replay.replay(
        FLOW, s, start, replay.end_offsets(s, inp), lambda d, t, _e: seen.append((d, t))
    )
    assert total == 4
    assert seen[-1] == (4, 4)
    assert state(s) == original
    assert len(read_json(s, s.topics.full(s.topics.issue_certificate_request))) == 1


def test_explicit_offsets_select_the_range_and_leave_the_live_group_alone(seeded: Settings) -> None:
    s = seeded
    inp = input_topic(s, FLOW)
    produce(s, inp, [_fixture(n) for n in T_A1[:2]], key=b"k")
    ends = replay.end_offsets(s, inp)
    (tp, end) = next((k, v) for k, v in ends.items() if v > 0)
    start = replay.parse_point(f"{tp[0]}:{tp[1]}:1", inp, s)
    assert start == {tp: 1}
    assert replay.replay(FLOW, s, start, {tp: end}) == 1
    from confluent_kafka import TopicPartition

    from lernflow.kernel.clients import kafka_consumer

    c = kafka_consumer(s.kafka, group_id=consumer_group(s, FLOW))
    committed = c.committed([TopicPartition(tp[0], tp[1])], timeout=10)[0].offset
    c.close()
    assert committed < 0  # the replay did not move the live flow's position


def test_bad_points_are_rejected_with_a_message(seeded: Settings) -> None:
    with pytest.raises(ValueError, match="no time zone"):
        replay.parse_point("2026-01-01T00:00:00", "t", seeded)
    with pytest.raises(ValueError, match="neither an ISO time"):
        replay.parse_point("yesterday", "t", seeded)


def test_the_replay_command_shows_progress_and_reports_the_count(seeded: Settings) -> None:
    import os
    import subprocess
    import sys

    s = seeded
    inp = input_topic(s, FLOW)
    produce(s, inp, [_fixture(n) for n in T_A1[:2]], key=b"k")
    start = ",".join(f"{inp}:{p}:0" for p in range(s.kafka.partitions))
    done = subprocess.run(
        [sys.executable, "-m", "lernflow.cli", "replay", FLOW, "--from", start],
        env={**os.environ, **s.to_env(), "COLUMNS": "200"}, capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "replayed 2 events" in done.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "lernflow.cli", "replay", FLOW, "--from", "yesterday"],
        env={**os.environ, **s.to_env()}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "neither an ISO time" in bad.stderr
