"""The closed list of lernflow metric names (Prometheus).

Every flow reports through these and no others; Bytewax serves them on ``/metrics`` when
``BYTEWAX_DATAFLOW_API_ENABLED`` is set (``lernflow run --metrics-port``).

| name | type | labels | meaning |
|---|---|---|---|
| ``lernflow_events_in_total`` | counter | flow | input messages read |
| ``lernflow_events_out_total`` | counter | flow, topic | messages produced |
| ``lernflow_events_failed_total`` | counter | flow, reason_kind | input messages parked on the failed topic |
| ``lernflow_events_skipped_total`` | counter | flow, reason_kind | valid messages that need no work |
| ``lernflow_events_deduplicated_total`` | counter | flow | messages seen before (dedup store) |
| ``lernflow_retries_total`` | counter | flow, target | transient-fault retries |
| ``lernflow_sink_write_seconds`` | histogram | flow, sink | time of one batched write |
| ``lernflow_batch_size`` | histogram | flow | items per processed batch |
| ``lernflow_consumer_lag`` | gauge | topic, partition | messages between the input's position and the partition's end |
"""

from __future__ import annotations

from typing import Literal

from prometheus_client import Counter, Gauge, Histogram

MetricName = Literal[
    "lernflow_events_in_total",
    "lernflow_events_out_total",
    "lernflow_events_failed_total",
    "lernflow_events_skipped_total",
    "lernflow_events_deduplicated_total",
    "lernflow_retries_total",
    "lernflow_sink_write_seconds",
    "lernflow_batch_size",
    "lernflow_consumer_lag",
]

EVENTS_IN = Counter("lernflow_events_in_total", "Input messages read", ["flow"])
EVENTS_OUT = Counter("lernflow_events_out_total", "Messages produced", ["flow", "topic"])
EVENTS_FAILED = Counter(
    "lernflow_events_failed_total", "Input messages parked on the failed topic",
    ["flow", "reason_kind"],
)  # fmt: skip
EVENTS_SKIPPED = Counter(
    "lernflow_events_skipped_total", "Valid input messages that need no work",
    ["flow", "reason_kind"],
)  # fmt: skip
EVENTS_DEDUPLICATED = Counter(
    "lernflow_events_deduplicated_total", "Messages recognised as already processed", ["flow"]
)
RETRIES = Counter("lernflow_retries_total", "Transient-fault retries", ["flow", "target"])
SINK_WRITE_SECONDS = Histogram(
    "lernflow_sink_write_seconds", "Time of one batched write", ["flow", "sink"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)  # fmt: skip
BATCH_SIZE = Histogram(
    "lernflow_batch_size", "Items per processed batch", ["flow"],
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
)  # fmt: skip

CONSUMER_LAG = Gauge(
    "lernflow_consumer_lag", "Messages between the input position and the partition end",
    ["topic", "partition"],
)  # fmt: skip

ALL: dict[str, Counter | Histogram | Gauge] = {
    "lernflow_events_in_total": EVENTS_IN,
    "lernflow_events_out_total": EVENTS_OUT,
    "lernflow_events_failed_total": EVENTS_FAILED,
    "lernflow_events_skipped_total": EVENTS_SKIPPED,
    "lernflow_events_deduplicated_total": EVENTS_DEDUPLICATED,
    "lernflow_retries_total": RETRIES,
    "lernflow_sink_write_seconds": SINK_WRITE_SECONDS,
    "lernflow_batch_size": BATCH_SIZE,
    "lernflow_consumer_lag": CONSUMER_LAG,
}
