"""relation-cache-updater on the real stack with the project's own collections: case RC-T1
(Sunbird's only test of this job, "RelationCacheUpdater should generate cache"), replay, rebuild.

Rules: ``docs/flows/relation-cache-updater.md``. Data: ``tests/data/relation-cache``. Sunbird's
own files run in ``tests/conformance/test_relation_cache_flow.py``.
"""

from __future__ import annotations

import json

from confluent_kafka import TopicPartition

from lernflow.config import Settings
from lernflow.flows.relation_cache_updater import rules
from lernflow.flows.relation_cache_updater.store import RelationCacheWriter
from lernflow.kernel.clients import cassandra_session, kafka_consumer, redis_client
from lernflow.sources.options import consumer_group
from tests.flowkit import create_topics, produce, read_json, run_to_end
from tests.paths import DATA

FLOW = "relation-cache-updater"
FX = DATA / "relation-cache"
ROOTS = ("lf_course_alpha", "lf_book_beta")


def _seed_hierarchies(settings: Settings) -> None:
    cluster, session = cassandra_session(settings.cassandra)
    try:
        insert = session.prepare(
            f"INSERT INTO {settings.cassandra.hierarchy_keyspace}.content_hierarchy "
            "(identifier, hierarchy) VALUES (?, ?)"
        )
        for root in ROOTS:
            session.execute(insert, (root, (FX / f"hierarchy.{root}.json").read_text()))
    finally:
        cluster.shutdown()


def _redis_state(settings: Settings) -> tuple[dict[str, set[str]], dict[str, str]]:
    r10 = redis_client(settings.redis, settings.redis.relation_cache_db)
    r5 = redis_client(settings.redis, settings.redis.content_cache_db)
    sets = {k: r10.smembers(k) for k in r10.keys("*")}
    strings = {k: r5.get(k) for k in r5.keys("*")}
    r10.close()
    r5.close()
    return sets, strings


def _committed(settings: Settings, topic: str) -> int:
    """The flow's committed position summed over the topic's partitions (0 when none)."""
    consumer = kafka_consumer(settings.kafka, group_id=consumer_group(settings, FLOW))
    try:
        parts = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        got = consumer.committed([TopicPartition(topic, p) for p in parts], timeout=30)
        return sum(max(tp.offset, 0) for tp in got)
    finally:
        consumer.close()


def test_rc_t1_both_events_build_the_expected_redis_state_and_a_replay_keeps_it(
    settings: Settings,
) -> None:
    create_topics(settings)
    _seed_hierarchies(settings)
    inp = settings.topics.full(settings.topics.content_postpublish_request)
    events = [(FX / f"event_{r.removeprefix('lf_')}.json").read_bytes() for r in ROOTS]
    produce(settings, inp, [*events, b"{bad"], key=b"k")
    run_to_end(FLOW, settings)
    expected = json.loads((FX / "expected_redis.json").read_text())
    expected_sets = {k: set(v) for k, v in expected["db10_sets"].items()}
    sets, strings = _redis_state(settings)
    assert sets == expected_sets
    assert strings == expected["db5_strings"]
    parked = read_json(settings, settings.topics.full(settings.topics.content_postpublish_failed))
    assert [p["payload"] for p in parked] == ["{bad"]
    assert _committed(settings, inp) == 3

    # replay: the same input again leaves both Redis DBs at the explicit expected state
    run_to_end(FLOW, settings, from_beginning=True)
    assert _redis_state(settings) == (expected_sets, expected["db5_strings"])


def test_rebuild_of_one_collection_writes_its_keys(settings: Settings) -> None:
    _seed_hierarchies(settings)
    writer = RelationCacheWriter(settings)
    try:
        root = "lf_book_beta"
        tree = rules.parse_hierarchy(writer.hierarchies([root])[root])
        assert tree is not None
        writer.write(rules.plan(root, tree))
    finally:
        writer.close()
    sets, strings = _redis_state(settings)
    assert sets[f"{root}:{root}:leafnodes"] == {"lf_pdf_b1", "lf_pdf_b2", "lf_pdf_b3"}
    assert set(strings) == {"lf_unit_b1"}
    assert not any(k.startswith("lf_course_alpha:") for k in sets)
