"""Our Kafka source and sink inside real Bytewax runs: bounded reads, resume, requeue."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import run_main

from config import Settings
from lernflow.kernel.clients import kafka_consumer
from lernflow.kernel.dlq import build_envelope
from lernflow.ops import failed, schema
from lernflow.ops.runner import failed_topic, input_topic
from sinks.kafka import KafkaOutput
from sinks.kafka_producer import DeliveryTrackingProducer, OutMessage
from sources.kafka import KafkaInput, KafkaRecord


def _copy_flow(settings: Settings, src: str, dst: str) -> Dataflow:
    flow = Dataflow("copy")
    inp = op.input(
        "in", flow, KafkaInput(settings.kafka, [src], start="earliest", until_caught_up=True)
    )

    def to_out(rec: KafkaRecord) -> OutMessage:
        return OutMessage(dst, rec.value or b"", key=rec.key)

    op.output("out", op.map("copy", inp, to_out), KafkaOutput(settings.kafka, "test"))
    return flow


def _read_all(settings: Settings, topic: str, expect: int, timeout: float = 30) -> list[bytes]:
    consumer = kafka_consumer(settings.kafka, group_id=f"read-{time.time_ns()}")
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(got) < expect:
        got += [m.value() for m in consumer.consume(500, 0.5) if m.error() is None]
    # drain a little longer to catch duplicates
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        got += [m.value() for m in consumer.consume(500, 0.2) if m.error() is None]
    consumer.close()
    return got


def test_flow_reads_exactly_to_the_end_offsets_and_resumes_after_them(
    settings: Settings, tmp_path: Path
):
    src, dst = settings.topics.full("io.src"), settings.topics.full("io.dst")
    schema.apply_topics(settings.kafka, settings.topics, [src, dst])
    producer = DeliveryTrackingProducer(settings.kafka)
    first = [json.dumps({"n": i}).encode() for i in range(300)]
    producer.produce_all([OutMessage(src, v, key=str(i % 7).encode()) for i, v in enumerate(first)])

    rec_dir = tmp_path / "recovery"
    rec_dir.mkdir()
    init_db_dir(rec_dir, 1)
    rc = RecoveryConfig(str(rec_dir))
    run_main(
        _copy_flow(settings, src, dst), epoch_interval=timedelta(seconds=1), recovery_config=rc
    )
    assert sorted(_read_all(settings, dst, 300)) == sorted(first)

    second = [json.dumps({"n": i}).encode() for i in range(300, 350)]
    producer.produce_all([OutMessage(src, v) for v in second])
    run_main(
        _copy_flow(settings, src, dst), epoch_interval=timedelta(seconds=1), recovery_config=rc
    )
    # the second run resumed from the snapshot: only the new 50 were copied
    assert sorted(_read_all(settings, dst, 350)) == sorted(first + second)


def test_requeue_puts_parked_events_back_once(settings: Settings):
    flow = "activity-aggregate-updater"
    src, dlq = input_topic(settings, flow), failed_topic(settings, flow)
    schema.apply_topics(settings.kafka, settings.topics, [src, dlq])
    producer = DeliveryTrackingProducer(settings.kafka)
    payloads = [b'{"eid": "BE_JOB_REQUEST", "n": %d}' % i for i in range(5)] + [b"\xff\xfenot json"]
    producer.produce_all(
        [
            OutMessage(
                dlq,
                build_envelope(
                    flow=flow,
                    reason="test",
                    error_type="InvalidEvent",
                    topic=src,
                    partition=0,
                    offset=i,
                    key=b"k",
                    value=p,
                    timestamp_ms=0,
                ),
            )
            for i, p in enumerate(payloads)
        ]
    )
    result = failed.requeue(settings, flow)
    assert result.requeued == 6
    assert sorted(_read_all(settings, src, 6)) == sorted(payloads)
    again = failed.requeue(settings, flow)
    assert again.requeued == 0


def test_a_full_local_queue_waits_for_room_instead_of_failing(settings: Settings) -> None:
    schema.apply_topics(settings.kafka, settings.topics)
    topic = input_topic(settings, "assessment-aggregator")
    tiny = DeliveryTrackingProducer(settings.kafka, client_id="test-tiny",
                                    **{"queue.buffering.max.messages": 5})  # fmt: skip
    values = [f"m{i}".encode() for i in range(2_000)]
    tiny.produce_all([OutMessage(topic, v, key=b"k") for v in values])  # no BufferError
    assert tiny.delivered == 2_000
    assert sorted(_read_all(settings, topic, 2_000)) == sorted(values)


def test_an_undeliverable_message_makes_flush_fail_loudly(settings: Settings) -> None:
    import pytest

    from lernflow.kernel.errors import TransientError

    producer = DeliveryTrackingProducer(settings.kafka, client_id="test-lost",
                                        **{"message.timeout.ms": 1_500})  # fmt: skip
    missing = f"{settings.topics.env}.no-such-topic"  # the broker does not auto-create topics
    with pytest.raises(TransientError, match="failed delivery"):
        producer.produce_all([OutMessage(missing, b"x")])
