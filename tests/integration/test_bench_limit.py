"""The bench's physical-limit loop writes the flow's end state (issue 16 item 2): on a small
realistic workload (interleaved sessions, nested units, duplicates, malformed events), the flow
and the limit loop leave the same rows in the same tables, and both equal the end state the
workload's generator computed."""

from __future__ import annotations

from bench.endstate import differences, read
from bench.limit import write_end_state
from bench.workloads import realistic_workload, seed_workload
from lernflow.config import Settings
from lernflow.sinks.kafka_producer import DeliveryTrackingProducer, OutMessage
from tests.flowkit import create_topics, read_topic, run_to_end
from tests.integration.test_activity_recovery import _reset

FLOW = "activity-aggregate-updater"


def test_limit_loop_writes_the_flows_end_state(settings: Settings) -> None:
    w = realistic_workload(900, seed=7, courses=4, leaves=(5, 24))
    assert w.resent and w.malformed  # the noise is there
    create_topics(settings)
    seed_workload(settings, w)
    topic = settings.topics.full(settings.topics.course_batch_job_request)
    DeliveryTrackingProducer(settings.kafka).produce_all(
        [OutMessage(topic, v, key=k) for k, v in w.events]
    )
    run_to_end(FLOW, settings)
    by_flow = read(settings)
    failed = read_topic(settings, settings.topics.full(settings.topics.activity_agg_failed))
    assert len(failed) == w.malformed

    assert differences(by_flow, w.expected, w.resent) == []

    for batched in (False, True):
        _reset(settings)
        seed_workload(settings, w)
        write_end_state(settings, w.expected, batched=batched)
        by_limit = read(settings)
        assert differences(by_limit, w.expected) == [], batched
        assert set(by_limit.consumption) == set(by_flow.consumption)
        assert by_limit.aggregates == by_flow.aggregates
        assert by_limit.enrolments == by_flow.enrolments
