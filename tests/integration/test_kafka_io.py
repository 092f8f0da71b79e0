"""Our Kafka source and sink inside real Bytewax runs: bounded reads, resume, requeue."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import run_main

from lernflow.config import Settings
from lernflow.kernel.dlq import build_envelope
from lernflow.ops import failed, schema
from lernflow.ops.runner import failed_topic, input_topic
from lernflow.sinks.kafka_producer import DeliveryTrackingProducer, OutMessage
from lernflow.sinks.processor_sink import ProcessorSink
from lernflow.sources.kafka import KafkaInput, KafkaRecord
from tests.flowkit import read_topic


class _Copy:
    """A processor that copies each record to ``dst`` through our producer (the flows' sink)."""

    def __init__(self, settings: Settings, dst: str) -> None:
        self._producer = DeliveryTrackingProducer(settings.kafka, client_id="test")
        self._dst = dst

    def process(self, records: list[KafkaRecord]) -> None:
        self._producer.produce_all(
            [OutMessage(self._dst, r.value or b"", key=r.key) for r in records]
        )

    def close(self) -> None:
        self._producer.flush()


def _copy_flow(settings: Settings, src: str, dst: str) -> Dataflow:
    flow = Dataflow("copy")
    inp = op.input(
        "in", flow, KafkaInput(settings.kafka, [src], start="earliest", until_caught_up=True)
    )
    batches = op.map("batch", inp, lambda rec: ("0", [rec]))
    op.output("out", batches, ProcessorSink("copy", lambda: _Copy(settings, dst)))
    return flow


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
    assert sorted(read_topic(settings, dst)) == sorted(first)

    second = [json.dumps({"n": i}).encode() for i in range(300, 350)]
    producer.produce_all([OutMessage(src, v) for v in second])
    run_main(
        _copy_flow(settings, src, dst), epoch_interval=timedelta(seconds=1), recovery_config=rc
    )
    # the second run resumed from the snapshot: only the new 50 were copied
    assert sorted(read_topic(settings, dst)) == sorted(first + second)


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
    assert sorted(read_topic(settings, src)) == sorted(payloads)
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
    assert sorted(read_topic(settings, topic)) == sorted(values)


def test_an_undeliverable_message_makes_flush_fail_loudly(settings: Settings) -> None:
    import pytest

    from lernflow.kernel.errors import TransientError

    producer = DeliveryTrackingProducer(settings.kafka, client_id="test-lost",
                                        **{"message.timeout.ms": 1_500})  # fmt: skip
    missing = f"{settings.topics.env}.no-such-topic"  # the broker does not auto-create topics
    with pytest.raises(TransientError, match="failed delivery"):
        producer.produce_all([OutMessage(missing, b"x")])
