"""The caches: user-cache rebuild users/s; user-cache-updater and relation-cache-updater
end-to-end events/s against the raw I/O limit (the same reads and writes issued directly)."""

from __future__ import annotations

import time

from bench.common import Row, isolated, peak_rss_mb
from bench.work import measured_flow
from bench.workloads import audit_events, seed_hierarchies, seed_users, user_id
from lernflow.config import Settings
from lernflow.flows.relation_cache_updater import rules as relation_rules
from lernflow.flows.relation_cache_updater.store import RelationCacheWriter
from lernflow.flows.user_cache_updater import rules as user_rules
from lernflow.flows.user_cache_updater.profiles import CassandraUserSource, rules_config
from lernflow.flows.user_cache_updater.store import RedisUserCache
from lernflow.kernel.clients import cassandra_session, redis_client
from lernflow.ops.user_cache_rebuild import UserCacheRebuild
from lernflow.sinks.kafka_producer import DeliveryTrackingProducer, OutMessage

REBUILD_USERS = 100_000
FLOW_EVENTS = 20_000
COURSES = 2_000
USER_TABLES = ("user", "user_organisation", "organisation", "location", "system_settings")


def run(settings: Settings) -> list[Row]:
    s = isolated(settings, "caches")
    cluster, session = cassandra_session(s.cassandra)
    for t in USER_TABLES:
        session.execute(f"TRUNCATE {s.cassandra.sunbird_keyspace}.{t}", timeout=120)
    session.execute(f"TRUNCATE {s.cassandra.hierarchy_keyspace}.content_hierarchy", timeout=120)
    cluster.shutdown()
    seed_users(s, REBUILD_USERS)
    # the rebuild last: right after a 100k-row bulk load Cassandra is still flushing
    rows = [*_relation_flow(s), *_user_flow(s), _rebuild(s)]
    return rows


def _flush(s: Settings, db: int) -> None:
    c = redis_client(s.redis, db)
    c.flushdb()
    c.close()


def _rebuild(s: Settings) -> Row:
    _flush(s, s.redis.user_cache_db)
    job = UserCacheRebuild(s)
    try:
        res = job.run(restart=True)
    finally:
        job.close()
    return Row("user-cache rebuild (Cassandra → Redis DB 12)", res.users, res.seconds,
               unit="users", rss_mb=peak_rss_mb(), note="target ≥ 10,000 users/s")  # fmt: skip


def _user_flow(s: Settings) -> list[Row]:
    _flush(s, s.redis.user_cache_db)
    events = audit_events(FLOW_EVENTS)
    topic = s.topics.full(s.topics.telemetry_audit)
    DeliveryTrackingProducer(s.kafka).produce_all([OutMessage(topic, v, key=k) for k, v in events])
    done, work = measured_flow("user-cache-updater", s)
    seconds, rss = done.seconds, done.peak_rss_mib
    flow_rate = FLOW_EVENTS / seconds
    _flush(s, s.redis.user_cache_db)
    raw = _user_raw(s)
    return [
        Row("user-cache-updater end to end (Cassandra source)", FLOW_EVENTS, seconds, rss_mb=rss,
            note="incl. process start", work=work),
        Row("user-cache raw C*/Redis limit (driver loop)", FLOW_EVENTS, raw,
            note=f"flow/raw = {flow_rate / (FLOW_EVENTS / raw):.2f}"),
    ]  # fmt: skip


def _user_raw(s: Settings) -> float:
    """The flow's reads and writes per 2,000 events, issued directly."""
    source = CassandraUserSource(s, "bench")
    writer = RedisUserCache(s, "bench")
    cfg = rules_config(s)
    t0 = time.monotonic()
    for start in range(0, FLOW_EVENTS, 2000):
        ids = [user_id(n) for n in range(start, min(FLOW_EVENTS, start + 2000))]
        found = source.read(ids)
        writes = []
        for uid in ids:
            event = user_rules.AuditUser(uid, "Update", True, {"usersignintype": "Validated"}, None)
            info = found[uid]
            assert isinstance(info, user_rules.Profile)
            plan = user_rules.plan(event, info, cfg)
            assert isinstance(plan, user_rules.Write)
            writes.append(plan)
        writer.write(writes)
    elapsed = time.monotonic() - t0
    source.close()
    writer.close()
    return elapsed


def _relation_flow(s: Settings) -> list[Row]:
    events = seed_hierarchies(s, COURSES)
    topic = s.topics.full(s.topics.content_postpublish_request)
    DeliveryTrackingProducer(s.kafka).produce_all([OutMessage(topic, v, key=k) for k, v in events])
    done, work = measured_flow("relation-cache-updater", s)
    seconds, rss = done.seconds, done.peak_rss_mib
    flow_rate = COURSES / seconds
    _flush(s, s.redis.relation_cache_db)
    writer = RelationCacheWriter(s)
    ids = [k.decode() for k, _v in events]
    t0 = time.monotonic()
    for start in range(0, len(ids), 2000):
        chunk = ids[start : start + 2000]
        texts = writer.hierarchies(chunk)
        for cid in chunk:
            tree = relation_rules.parse_hierarchy(texts[cid])
            assert tree is not None
            writer.write(relation_rules.plan(cid, tree))
    raw = time.monotonic() - t0
    writer.close()
    return [
        Row("relation-cache-updater end to end", COURSES, seconds, rss_mb=rss,
            note="incl. process start; 3 units x 5 lessons", work=work),
        Row("relation-cache raw C*/Redis limit (driver loop)", COURSES, raw,
            note=f"flow/raw = {flow_rate / (COURSES / raw):.2f}"),
    ]  # fmt: skip
