"""The failed-event envelope keeps the original payload and coordinates exactly."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from lernflow.kernel.dlq import build_envelope, envelope_headers, parse_envelope


@given(
    value=st.one_of(st.none(), st.binary(max_size=300), st.text(max_size=200).map(str.encode)),
    key=st.one_of(st.none(), st.binary(max_size=40)),
    partition=st.integers(0, 1000),
    offset=st.integers(0, 2**62),
    reason=st.text(min_size=1, max_size=80),
)
def test_envelope_round_trips_payload_key_and_coordinates(value, key, partition, offset, reason):
    data = build_envelope(
        flow="activity-aggregate-updater",
        reason=reason,
        error_type="InvalidEvent",
        topic="dev.coursebatch.job.request",
        partition=partition,
        offset=offset,
        key=key,
        value=value,
        timestamp_ms=1,
    )
    parsed = parse_envelope(data)
    assert parsed.payload == value
    assert parsed.key == key
    assert (parsed.topic, parsed.partition, parsed.offset) == (
        "dev.coursebatch.job.request",
        partition,
        offset,
    )
    assert parsed.reason == reason


def test_envelope_is_readable_json_with_the_payload_as_text():
    doc = json.loads(
        build_envelope(
            flow="f",
            reason="edata missing",
            error_type="InvalidEvent",
            topic="t",
            partition=1,
            offset=7,
            key=b"k",
            value=b'{"eid": "BE_JOB_REQUEST"}',
            timestamp_ms=5,
            now=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        )
    )
    assert doc["payload"] == '{"eid": "BE_JOB_REQUEST"}'
    assert doc["failed_at"] == "2026-01-02T03:04:05.000Z"
    assert doc["source"] == {
        "topic": "t",
        "partition": 1,
        "offset": 7,
        "key": "k",
        "timestamp_ms": 5,
    }
    assert "payload_base64" not in doc


def test_headers_name_the_source_coordinates():
    assert dict(envelope_headers("t", 2, 9)) == {
        "lernflow.source.topic": b"t",
        "lernflow.source.partition": b"2",
        "lernflow.source.offset": b"9",
    }


def test_an_envelope_over_the_limit_is_capped_with_the_payload_size_and_hash():
    import hashlib

    value = b'"' + b'\\"' * 300_000 + b'"'  # ~600 KB of quotes: each doubles when JSON-escaped
    data = build_envelope(
        flow="f",
        reason="not JSON",
        error_type="InvalidEvent",
        topic="t",
        partition=3,
        offset=11,
        key=b"k",
        value=value,
        timestamp_ms=5,
    )
    assert len(data) <= 900_000
    doc = json.loads(data)
    assert doc["payload_truncated"] is True
    assert doc["payload_size_bytes"] == len(value)
    assert doc["payload_sha256"] == hashlib.sha256(value).hexdigest()
    assert value.decode().startswith(doc["payload"])
    assert (doc["source"]["topic"], doc["source"]["partition"], doc["source"]["offset"]) == (
        "t",
        3,
        11,
    )
    parsed = parse_envelope(data)
    assert parsed.payload is None  # a truncated payload is never handed out as the event
    assert parsed.payload_truncated
    assert (parsed.payload_size_bytes, parsed.payload_sha256) == (
        len(value),
        hashlib.sha256(value).hexdigest(),
    )


def test_a_binary_payload_over_the_limit_is_capped_too():
    value = bytes(range(256)) * 2_000  # not UTF-8: carried as base64
    data = build_envelope(
        flow="f",
        reason="r",
        error_type="E",
        topic="t",
        partition=0,
        offset=0,
        key=None,
        value=value,
        timestamp_ms=0,
        max_bytes=20_000,
    )
    assert len(data) <= 20_000
    doc = json.loads(data)
    assert doc["payload_truncated"] is True
    assert doc["payload"] is None
    assert value.startswith(base64.b64decode(doc["payload_base64"]))
