"""Shared fixtures: the real local stack, and per-test isolation.

Integration tests use the running stack (brought up here if it is down, exactly as
``lernflow stack up`` does). Isolation: one set of test keyspaces per session (prefixed,
dropped at the end), a unique topic environment per test, and unique ids for Redis keys.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest

from lernflow.config import Settings, load_settings
from lernflow.devstack import redis_slots


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)
        if "tests/conformance" in str(item.path):
            item.add_marker(pytest.mark.conformance)


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def stack(base_settings: Settings) -> Settings:
    """Make sure Kafka, Cassandra and Redis answer (start them if needed)."""
    from lernflow.devstack import stack as stack_mod

    stack_mod.up(base_settings, lambda _m: None)
    return base_settings


@pytest.fixture(scope="session")
def keyspace_prefix(stack: Settings) -> Iterator[str]:
    """Create the full schema under session-unique keyspace names; drop it afterwards."""
    from lernflow.kernel.clients import cassandra_session
    from lernflow.ops import schema

    prefix = f"t{uuid.uuid4().hex[:8]}_"
    schema.apply_cassandra(stack.cassandra, keyspace_prefix=prefix)
    yield prefix
    cluster, session = cassandra_session(stack.cassandra)
    try:
        for ks in (
            stack.cassandra.courses_keyspace,
            stack.cassandra.sunbird_keyspace,
            stack.cassandra.hierarchy_keyspace,
        ):
            session.execute(f"DROP KEYSPACE IF EXISTS {prefix}{ks}", timeout=120)
    finally:
        cluster.shutdown()


@pytest.fixture(scope="session")
def test_redis_dbs() -> Iterator[dict[str, int]]:
    """The five Redis DB indexes this session uses instead of Sunbird's."""
    try:
        dbs, handle = redis_slots.claim()
    except redis_slots.NoFreeSlot as exc:
        raise pytest.UsageError(str(exc)) from None
    try:
        yield dbs
    finally:
        handle.close()


_COURSE_TABLES = (
    "user_content_consumption",
    "user_activity_agg",
    "user_enrolments",
    "course_batch",
    "assessment_aggregator",
    "lernflow_activity_applied",
)


@pytest.fixture
def settings(
    stack: Settings, keyspace_prefix: str, test_redis_dbs: dict[str, int]
) -> Iterator[Settings]:
    """Settings isolated for one test.

    Test keyspaces (courses tables truncated before the test), a unique topic environment, and
    five Redis DBs of this session's slot (flushed before the test) instead of Sunbird's DB indexes.
    """
    cas = stack.cassandra.model_copy(
        update={
            "courses_keyspace": keyspace_prefix + stack.cassandra.courses_keyspace,
            "sunbird_keyspace": keyspace_prefix + stack.cassandra.sunbird_keyspace,
            "hierarchy_keyspace": keyspace_prefix + stack.cassandra.hierarchy_keyspace,
        }
    )
    topics = stack.topics.model_copy(update={"env": f"test-{uuid.uuid4().hex[:10]}"})
    redis_settings = stack.redis.model_copy(update=test_redis_dbs)
    from lernflow.kernel.clients import cassandra_session, redis_client

    for db in test_redis_dbs.values():
        client = redis_client(redis_settings, db)
        client.flushdb()
        client.close()
    cluster, session = cassandra_session(cas)
    try:
        for table in _COURSE_TABLES:
            session.execute(f"TRUNCATE {cas.courses_keyspace}.{table}", timeout=60)
    finally:
        cluster.shutdown()
    yield stack.with_overrides(cassandra=cas, topics=topics, redis=redis_settings)
    _delete_topics(stack, topics.env)


def _delete_topics(settings: Settings, prefix: str) -> None:
    """Remove a test's topics so a long-lived broker does not accumulate thousands of them."""
    from lernflow.kernel.clients import kafka_admin

    admin = kafka_admin(settings.kafka)
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            with contextlib.suppress(Exception):
                future.result()


@pytest.fixture
def uid() -> str:
    """A unique id for the keys a test writes (users, courses, Redis keys)."""
    return uuid.uuid4().hex[:12]
