"""The closed metric vocabulary is what a flow run reports, consumer lag included."""

from __future__ import annotations

from confluent_kafka import TopicPartition
from prometheus_client import REGISTRY

from lernflow.config import Settings
from lernflow.kernel import metrics
from lernflow.kernel.clients import kafka_consumer
from tests.flowkit import create_topics, produce, run_to_end


def test_metric_names_are_the_closed_list() -> None:
    assert set(metrics.ALL) == set(metrics.MetricName.__args__)  # type: ignore[attr-defined]


def test_a_run_reports_events_and_zero_lag_once_caught_up(settings: Settings) -> None:
    create_topics(settings)
    topic = settings.topics.full(settings.topics.telemetry_audit)
    skip = b'{"eid":"AUDIT","object":{"id":"lf-content-1","type":"Content"},"edata":{"state":"Update"}}'
    produce(settings, topic, [skip] * 5, key=b"k")
    before = (
        REGISTRY.get_sample_value("lernflow_events_in_total", {"flow": "user-cache-updater"}) or 0
    )
    run_to_end("user-cache-updater", settings)
    after = REGISTRY.get_sample_value("lernflow_events_in_total", {"flow": "user-cache-updater"})
    assert after is not None and after - before == 5 > 0
    lags = {
        p: REGISTRY.get_sample_value("lernflow_consumer_lag", {"topic": topic, "partition": str(p)})
        for p in range(settings.kafka.partitions)
    }
    reported = {p: v for p, v in lags.items() if v is not None}
    consumer = kafka_consumer(settings.kafka, group_id="metrics-test-reader")
    try:
        with_events = {
            p
            for p in range(settings.kafka.partitions)
            if consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] > 0
        }
    finally:
        consumer.close()
    assert with_events and with_events <= reported.keys()  # those partitions reported their lag
    assert all(v == 0 for v in reported.values()), reported  # caught up: nothing left to read
