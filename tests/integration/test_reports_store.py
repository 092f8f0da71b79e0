"""The report store's fast reads on the real stack (issue 16 item 7): only a batch's learners
are looked up in the Redis user cache (one Lua call per 1,000 keys), page by page while
``user_enrolments`` is still being read; the result is what the whole-cache scan gave
(docs/flows/progress-exhaust.md, "Performance")."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lernflow.config import Settings
from lernflow.kernel.clients import cassandra_session, redis_client
from lernflow.reports import sources
from lernflow.reports.sources import ReportStore

BATCH, OTHER, COURSE = "bt-store-1", "bt-store-2", "do_store_course"


@pytest.fixture
def store_data(settings: Settings) -> Iterator[Settings]:
    """11 enrolments of BATCH (learners 0-10), 2 of OTHER; user hashes for the even learners,
    learner 3 with a hash that has none of the report's fields."""
    ks = settings.cassandra.courses_keyspace
    cluster, session = cassandra_session(settings.cassandra)
    try:
        session.execute(f"TRUNCATE {ks}.user_enrolments", timeout=60)
        for n in range(13):
            session.execute(
                f"INSERT INTO {ks}.user_enrolments (userid, courseid, batchid, active, "
                "contentstatus) VALUES (%s, %s, %s, true, %s)",
                (f"store-user-{n:02d}", COURSE, BATCH if n < 11 else OTHER, {"do_a": n % 3}),
            )
    finally:
        cluster.shutdown()
    r = redis_client(settings.redis, settings.redis.user_cache_db)
    r.flushdb()
    for n in range(0, 13, 2):
        r.hset(f"user:store-user-{n:02d}", mapping={"firstname": f"L{n}", "state": "Goa"})
    r.hset("user:store-user-03", mapping={"not_a_report_field": "x"})
    r.close()
    yield settings


def test_users_returns_existing_hashes_only_with_the_report_fields(store_data: Settings) -> None:
    store = ReportStore(store_data)
    try:
        ids = ["store-user-00", "store-user-01", "store-user-03", "store-user-00", "nobody"]
        users = store.users(ids)
    finally:
        store.close()
    # a hash without any report field is still a cached learner (the scan kept it too)
    assert users == {"store-user-00": {"firstname": "L0", "state": "Goa"}, "store-user-03": {}}


def test_enrolments_and_users_over_many_pages(
    store_data: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ReportStore(store_data)
    try:
        whole = store.enrolments(BATCH)
        monkeypatch.setattr(sources, "_PAGE", 3)
        monkeypatch.setattr(sources, "_USERS_PER_CALL", 2)
        enrolments, users = store.enrolments_and_users(BATCH)
    finally:
        store.close()
    assert len(whole) == 11
    assert enrolments == whole  # same rows, same (token) order, across 4 pages
    expected = {f"store-user-{n:02d}" for n in range(0, 11, 2)} | {"store-user-03"}
    assert set(users) == expected
    assert users["store-user-04"] == {"firstname": "L4", "state": "Goa"}
