"""The failed-event envelope every lernflow job writes to its failed topic.

Schema (JSON object, one per failed input message)::

    {
      "flow": "activity-aggregate-updater",      # which job parked it
      "reason": "edata.userId is missing",        # human-readable, precise
      "error_type": "InvalidEvent",               # exception class name
      "failed_at": "2026-11-24T10:00:00.000Z",
      "source": {"topic": "dev.coursebatch.job.request", "partition": 1, "offset": 42,
                 "key": "…" | null, "timestamp_ms": 1732440000000},
      "payload": "<the original message value, unchanged, as text>" | null,
      "payload_base64": "<only when the value is not valid UTF-8>"
    }

An envelope never exceeds ``max_bytes`` (setting ``LERNFLOW_KAFKA_FAILED_ENVELOPE_MAX_BYTES``,
default 900,000, below Kafka's default 1 MB ``max.message.bytes``): a larger one carries only a
prefix of the payload and ``"payload_truncated": true``, ``"payload_size_bytes"`` and
``"payload_sha256"`` of the original value (``reason`` and ``source.key`` are cut to
500 characters, ``source.key_truncated``). The source coordinates stay, so the original can be
fetched from ``source.topic`` while it is retained; :func:`parse_envelope` never returns a
truncated payload as the event.

The same coordinates are also sent as Kafka headers (``lernflow.source.*``) so a failed event can
be inspected without parsing; they are its :class:`Origin`, by which parking is idempotent
(:func:`origin_of`; docs/architecture.md#the-processor-shell). ``lernflow failed requeue <flow>`` produces ``payload`` back to
``source.topic`` unchanged.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class FailedEvent:
    """A parsed failed-topic envelope."""

    flow: str
    reason: str
    error_type: str
    failed_at: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    payload: bytes | None  # None when the envelope's payload is truncated
    payload_truncated: bool = False
    payload_size_bytes: int | None = None
    payload_sha256: str | None = None


_TEXT_CAP = 500  # characters of reason/key kept in a truncated envelope
_SLACK = 64  # bytes for the payload field's quotes and name


@functools.cache
def default_max_bytes() -> int:
    """The envelope size limit from ``LERNFLOW_KAFKA_FAILED_ENVELOPE_MAX_BYTES`` (read once)."""
    from lernflow.config.settings import KafkaSettings

    return KafkaSettings().failed_envelope_max_bytes


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _json_prefix(text: str, room: int) -> str:
    """The longest prefix of ``text`` whose JSON string encoding takes at most ``room`` bytes."""

    def size(n: int) -> int:
        return len(json.dumps(text[:n], ensure_ascii=False).encode("utf-8"))

    lo, hi = 0, min(len(text), max(room, 0))  # each character takes at least one byte
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if size(mid) <= room:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


def _truncate(doc: dict[str, Any], value: bytes, max_bytes: int) -> bytes:
    """``doc`` with a payload prefix that keeps the whole envelope within ``max_bytes``."""
    text = doc.pop("payload")
    doc.pop("payload_base64", None)
    doc["reason"] = doc["reason"][:_TEXT_CAP]
    src = doc["source"]
    for field in ("key", "key_base64"):
        if src.get(field) is not None and len(src[field]) > _TEXT_CAP:
            src[field] = src[field][:_TEXT_CAP]
            src["key_truncated"] = True
    doc.update(
        payload_truncated=True,
        payload_size_bytes=len(value),
        payload_sha256=hashlib.sha256(value).hexdigest(),
    )
    room = max_bytes - len(_dump(doc)) - _SLACK
    if text is not None:
        doc["payload"] = _json_prefix(text, room)
    else:
        doc["payload"] = None
        doc["payload_base64"] = base64.b64encode(value[: max(room, 0) // 4 * 3]).decode("ascii")
    return _dump(doc)


def _text_or_b64(data: bytes | None) -> tuple[str | None, str | None]:
    if data is None:
        return None, None
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, base64.b64encode(data).decode("ascii")


def build_envelope(
    *,
    flow: str,
    reason: str,
    error_type: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    timestamp_ms: int,
    now: datetime | None = None,
    max_bytes: int | None = None,
) -> bytes:
    """Return the JSON envelope (bytes) for one failed input message, at most ``max_bytes``.

    ``max_bytes`` defaults to the ``failed_envelope_max_bytes`` Kafka setting.
    """
    text, b64 = _text_or_b64(value)
    key_text, key_b64 = _text_or_b64(key)
    when = (now or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    doc: dict[str, Any] = {
        "flow": flow,
        "reason": reason,
        "error_type": error_type,
        "failed_at": when,
        "source": {
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "key": key_text,
            "timestamp_ms": timestamp_ms,
        },
        "payload": text,
    }
    if key_b64 is not None:
        doc["source"]["key_base64"] = key_b64
    if b64 is not None:
        doc["payload_base64"] = b64
    data = _dump(doc)
    limit = default_max_bytes() if max_bytes is None else max_bytes
    if len(data) <= limit or value is None:
        return data
    return _truncate(doc, value, limit)


_H_TOPIC, _H_PARTITION, _H_OFFSET = (
    "lernflow.source.topic", "lernflow.source.partition", "lernflow.source.offset",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a parked event came from: its source topic, partition and offset (its identity)."""

    topic: str
    partition: int
    offset: int


def envelope_headers(topic: str, partition: int, offset: int) -> tuple[tuple[str, bytes], ...]:
    """Kafka headers carrying the source coordinates."""
    return (
        (_H_TOPIC, topic.encode()),
        (_H_PARTITION, str(partition).encode()),
        (_H_OFFSET, str(offset).encode()),
    )


def origin_of(
    headers: Sequence[tuple[str, bytes | None]] | None, value: bytes | None
) -> Origin | None:
    """The source of a failed-topic message: from its headers, else its envelope (None: neither).

    The headers are read first (no JSON parsing); an envelope without them (written by hand or
    by an older version) is parsed.
    """
    found: dict[str, bytes | None] = dict(headers or ())
    topic, partition, offset = found.get(_H_TOPIC), found.get(_H_PARTITION), found.get(_H_OFFSET)
    try:
        if topic is not None and partition is not None and offset is not None:
            return Origin(sys.intern(topic.decode()), int(partition), int(offset))
        if value is None:
            return None
        event = parse_envelope(value)
    except (ValueError, KeyError, TypeError, AttributeError):  # not an envelope of ours
        return None
    return Origin(event.topic, event.partition, event.offset)


def parse_envelope(data: bytes) -> FailedEvent:
    """Parse an envelope written by :func:`build_envelope`; raise ValueError if it is not one."""
    doc = json.loads(data)
    if not isinstance(doc, dict) or "source" not in doc or "reason" not in doc:
        msg = "not a lernflow failed-event envelope"
        raise ValueError(msg)
    src = doc["source"]
    truncated = bool(doc.get("payload_truncated"))
    if truncated:
        payload: bytes | None = None
    elif doc.get("payload_base64") is not None:
        payload = base64.b64decode(doc["payload_base64"])
    elif doc.get("payload") is not None:
        payload = str(doc["payload"]).encode("utf-8")
    else:
        payload = None
    if src.get("key_base64") is not None:
        key: bytes | None = base64.b64decode(src["key_base64"])
    elif src.get("key") is not None:
        key = str(src["key"]).encode("utf-8")
    else:
        key = None
    return FailedEvent(
        flow=str(doc.get("flow", "")),
        reason=str(doc["reason"]),
        error_type=str(doc.get("error_type", "")),
        failed_at=str(doc.get("failed_at", "")),
        topic=str(src["topic"]),
        partition=int(src["partition"]),
        offset=int(src["offset"]),
        key=key,
        payload=payload,
        payload_truncated=truncated,
        payload_size_bytes=int(doc["payload_size_bytes"]) if truncated else None,
        payload_sha256=str(doc["payload_sha256"]) if truncated else None,
    )
