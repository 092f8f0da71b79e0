"""Each server of the local stack really stores and returns data through our own clients."""

from __future__ import annotations

import json
import time

import redis

from lernflow.config import Settings
from lernflow.devstack import stack
from lernflow.kernel.clients import cassandra_session, redis_client
from lernflow.ops import schema
from lernflow.sinks.kafka_producer import DeliveryTrackingProducer, OutMessage
from tests.flowkit import read_topic


def test_every_server_answers_on_loopback(settings: Settings) -> None:
    rows = stack.status(settings)
    assert {r.name: r.up for r in rows} == {
        "redis": True, "kafka": True, "cassandra": True, "postgres": True
    }  # fmt: skip
    assert {r.name: r.port for r in rows} == {
        "redis": 6379, "kafka": 9092, "cassandra": 9042, "postgres": 5432
    }  # fmt: skip


def test_postgres_holds_the_job_request_table(settings: Settings) -> None:
    import psycopg

    schema.apply_postgres(settings.postgres)
    with psycopg.connect(settings.postgres.conninfo()) as conn:
        cols = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
            "ORDER BY ordinal_position", (settings.postgres.job_request_table,),
        ).fetchall()]  # fmt: skip
    assert cols[:3] == ["tag", "request_id", "job_id"]
    assert "processed_batches" in cols and "download_urls" in cols


def test_second_stack_up_changes_nothing(settings: Settings) -> None:
    before = {r.name: r.pid for r in stack.status(settings)}
    t0 = time.monotonic()
    results = stack.up(settings, lambda _m: None)
    assert time.monotonic() - t0 < 15
    assert all(v.startswith("already up") for v in results.values())
    assert {r.name: r.pid for r in stack.status(settings)} == before


def test_our_redis_client_uses_the_configured_db_index(settings: Settings, uid: str) -> None:
    db = settings.redis.relation_cache_db
    client = redis_client(settings.redis, db=db)
    key = f"{uid}:{uid}:leafnodes"
    client.sadd(key, "leaf-a", "leaf-b")
    client.close()
    raw = redis.Redis(host=settings.redis.host, port=settings.redis.port, db=db)
    other = redis.Redis(host=settings.redis.host, port=settings.redis.port, db=db + 1)
    try:
        assert raw.smembers(key) == {b"leaf-a", b"leaf-b"}  # written where the setting says
        assert not other.exists(key)
    finally:
        raw.delete(key)
        raw.close()
        other.close()


def test_our_cassandra_session_honours_keyspace_and_protocol(settings: Settings) -> None:
    ks = settings.cassandra.courses_keyspace
    cluster, session = cassandra_session(settings.cassandra, keyspace=ks)
    try:
        assert session.keyspace == ks
        assert cluster.protocol_version == settings.cassandra.protocol_version
        row = session.execute("SELECT release_version FROM system.local").one()
        assert row.release_version.startswith("5.")  # rows come back with named columns
    finally:
        cluster.shutdown()


def test_kafka_round_trip_through_our_producer(settings: Settings, uid: str) -> None:
    topic = settings.topics.full(settings.topics.course_batch_job_request)
    assert schema.apply_topics(settings.kafka, settings.topics, [topic]) == [topic]
    producer = DeliveryTrackingProducer(settings.kafka)
    payloads = [json.dumps({"n": i, "uid": uid}).encode() for i in range(50)]
    producer.produce_all([OutMessage(topic, p, key=uid.encode()) for p in payloads])
    assert producer.delivered == 50
    assert read_topic(settings, topic) == payloads  # one key -> one partition -> order kept


def test_schema_apply_is_idempotent_and_has_sunbird_enrolment_columns(
    settings: Settings, keyspace_prefix: str
) -> None:
    schema.apply_cassandra(
        settings.cassandra.model_copy(
            update={
                "courses_keyspace": settings.cassandra.courses_keyspace[len(keyspace_prefix) :],
                "sunbird_keyspace": settings.cassandra.sunbird_keyspace[len(keyspace_prefix) :],
                "hierarchy_keyspace": settings.cassandra.hierarchy_keyspace[len(keyspace_prefix) :],
            }
        ),
        keyspace_prefix=keyspace_prefix,
    )
    cluster, session = cassandra_session(settings.cassandra)
    try:
        rows = session.execute(
            "SELECT column_name, type, kind FROM system_schema.columns "
            "WHERE keyspace_name=%s AND table_name='user_enrolments'",
            (settings.cassandra.courses_keyspace,),
        )
        cols = {r.column_name: (r.type, r.kind) for r in rows}
    finally:
        cluster.shutdown()
    # Sunbird's user_enrolments (docs/flows/activity-aggregate-updater.md)
    expected = {
        "userid": ("text", "partition_key"),
        "courseid": ("text", "clustering"),
        "batchid": ("text", "clustering"),
        "active": ("boolean", "regular"),
        "addedby": ("text", "regular"),
        "certificates": ("list<frozen<map<text, text>>>", "regular"),
        "completedon": ("timestamp", "regular"),
        "completionpercentage": ("int", "regular"),
        "contentstatus": ("map<text, int>", "regular"),
        "datetime": ("timestamp", "regular"),
        "enrolleddate": ("text", "regular"),
        "issued_certificates": ("list<frozen<map<text, text>>>", "regular"),
        "lastreadcontentid": ("text", "regular"),
        "lastreadcontentstatus": ("int", "regular"),
        "progress": ("int", "regular"),
        "status": ("int", "regular"),
    }
    for name, spec in expected.items():
        assert cols[name] == spec, name
