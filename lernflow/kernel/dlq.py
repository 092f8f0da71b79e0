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

The same coordinates are also sent as Kafka headers (``lernflow.source.*``) so a failed event can
be inspected without parsing. ``lernflow failed requeue <flow>`` produces ``payload`` back to
``source.topic`` unchanged.
"""

from __future__ import annotations

import base64
import json
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
    payload: bytes | None


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
) -> bytes:
    """Return the JSON envelope (bytes) for one failed input message."""
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
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def envelope_headers(topic: str, partition: int, offset: int) -> tuple[tuple[str, bytes], ...]:
    """Kafka headers carrying the source coordinates."""
    return (
        ("lernflow.source.topic", topic.encode()),
        ("lernflow.source.partition", str(partition).encode()),
        ("lernflow.source.offset", str(offset).encode()),
    )


def parse_envelope(data: bytes) -> FailedEvent:
    """Parse an envelope written by :func:`build_envelope`; raise ValueError if it is not one."""
    doc = json.loads(data)
    if not isinstance(doc, dict) or "source" not in doc or "reason" not in doc:
        msg = "not a lernflow failed-event envelope"
        raise ValueError(msg)
    src = doc["source"]
    if doc.get("payload_base64") is not None:
        payload: bytes | None = base64.b64decode(doc["payload_base64"])
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
    )
