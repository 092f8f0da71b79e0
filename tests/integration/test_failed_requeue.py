"""``lernflow failed requeue``: filtered requeues and envelopes capped below the broker's limit."""

from __future__ import annotations

import hashlib
from typing import Any

from lernflow.config import Settings
from lernflow.kernel.dlq import build_envelope
from lernflow.ops import failed, schema
from lernflow.ops.runner import failed_topic, input_topic
from lernflow.sinks.kafka_producer import DeliveryTrackingProducer, OutMessage
from tests.flowkit import read_topic

FLOW = "activity-aggregate-updater"


def _envelope(src: str, offset: int, reason: str, value: bytes) -> bytes:
    return build_envelope(
        flow=FLOW,
        reason=reason,
        error_type="InvalidEvent",
        topic=src,
        partition=0,
        offset=offset,
        key=b"k",
        value=value,
        timestamp_ms=0,
    )


def _produce_to_partition_0(settings: Settings, topic: str, value: bytes) -> int:
    """Produce ``value`` to partition 0 of ``topic``; return its offset."""
    from confluent_kafka import Producer

    producer = Producer(settings.kafka.client_config())
    offsets: list[int] = []

    def delivered(err: Any, msg: Any) -> None:
        assert err is None, err
        offsets.append(msg.offset())

    producer.produce(topic, value, key=b"k", partition=0, on_delivery=delivered)
    producer.flush(30)
    return offsets[0]


def test_a_filtered_requeue_leaves_the_other_envelopes_for_a_later_requeue(settings: Settings):
    src, dlq = input_topic(settings, FLOW), failed_topic(settings, FLOW)
    schema.apply_topics(settings.kafka, settings.topics, [src, dlq])
    parked = [(b'{"n": %d}' % i, "leaf nodes missing" if i % 2 else "bad json") for i in range(8)]
    DeliveryTrackingProducer(settings.kafka).produce_all(
        [OutMessage(dlq, _envelope(src, i, r, v), key=b"k") for i, (v, r) in enumerate(parked)]
    )

    first = failed.requeue(settings, FLOW, only_reason="leaf nodes")
    assert first.requeued == 4
    assert sorted(read_topic(settings, src)) == sorted(v for v, r in parked if "leaf" in r)

    rest = failed.requeue(settings, FLOW)
    assert rest.requeued == 4
    assert failed.requeue(settings, FLOW).requeued == 0
    # every parked event is back exactly once
    assert sorted(read_topic(settings, src)) == sorted(v for v, _ in parked)


def test_an_oversized_envelope_is_accepted_and_requeued_from_the_source(settings: Settings):
    src, dlq = input_topic(settings, FLOW), failed_topic(settings, FLOW)
    schema.apply_topics(settings.kafka, settings.topics, [src, dlq])
    value = b'"' + b'\\"' * 300_000 + b'"'  # 600 KB that doubles when JSON-escaped
    offset = _produce_to_partition_0(settings, src, value)
    envelope = _envelope(src, offset, "not JSON", value)
    gone = _envelope(src, offset + 1_000, "not JSON", value)  # no longer on the source topic
    # the broker accepts the envelopes (default max.message.bytes ~1 MB)
    DeliveryTrackingProducer(settings.kafka).produce_all(
        [OutMessage(dlq, envelope, key=b"k"), OutMessage(dlq, gone, key=b"k")]
    )
    parked = failed.read_failed(settings, FLOW, group=None).events
    assert [(e.payload_truncated, e.payload) for e in parked] == [(True, None), (True, None)]
    assert parked[0].payload_sha256 == hashlib.sha256(value).hexdigest()

    result = failed.requeue(settings, FLOW)
    assert (result.requeued, result.skipped_unavailable) == (1, 1)
    # the original, fetched from the source topic, was put back (never the truncated text)
    assert read_topic(settings, src) == [value, value]
