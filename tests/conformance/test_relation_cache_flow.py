"""Conformance: relation-cache-updater on the real stack with Sunbird's own test files.

Sunbird's test, replay, rebuild. The same cases with the project's own data:
``tests/integration/test_relation_cache_flow.py``.
"""

from __future__ import annotations

import json
import re

from lernflow.config import Settings
from lernflow.flows.relation_cache_updater import rules
from lernflow.flows.relation_cache_updater.store import RelationCacheWriter
from lernflow.kernel.clients import cassandra_session, redis_client
from tests.conformance.conftest import SUNBIRD_FIXTURES
from tests.flowkit import create_topics, produce, read_json, run_to_end

FLOW = "relation-cache-updater"
FX = SUNBIRD_FIXTURES / "relation-cache"


def _seed_hierarchies(settings: Settings) -> None:
    text = (FX / "test.cql").read_text()
    cluster, session = cassandra_session(settings.cassandra)
    try:
        for stmt in re.findall(r"^INSERT INTO .*?\);\s*$", text, flags=re.MULTILINE | re.DOTALL):
            session.execute(
                stmt.replace("hierarchy_store.", f"{settings.cassandra.hierarchy_keyspace}.")
                .rstrip()
                .rstrip(";")
            )
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


def test_upstream_events_build_the_expected_redis_state_and_a_replay_keeps_it(
    settings: Settings,
) -> None:
    create_topics(settings)
    _seed_hierarchies(settings)
    inp = settings.topics.full(settings.topics.content_postpublish_request)
    produce(
        settings,
        inp,
        [(FX / "EVENT_1.json").read_bytes(), (FX / "EVENT_2.json").read_bytes(), b"{bad"],
        key=b"k",
    )
    run_to_end(FLOW, settings)
    expected = json.loads((FX / "expected_redis.derived.json").read_text())
    sets, strings = _redis_state(settings)
    assert sets == {k: set(v) for k, v in expected["db10_sets"].items()}
    assert strings == expected["db5_strings"]
    parked = read_json(settings, settings.topics.full(settings.topics.content_postpublish_failed))
    assert [p["payload"] for p in parked] == ["{bad"]

    run_to_end(FLOW, settings, from_beginning=True)
    assert _redis_state(settings) == (sets, strings)


def test_rebuild_of_one_course_writes_its_keys(settings: Settings) -> None:
    _seed_hierarchies(settings)
    writer = RelationCacheWriter(settings)
    try:
        root = "KP_FT_1594149835504"
        tree = rules.parse_hierarchy(writer.hierarchies([root])[root])
        assert tree is not None
        writer.write(rules.plan(root, tree))
    finally:
        writer.close()
    sets, _ = _redis_state(settings)
    assert sets[f"{root}:{root}:leafnodes"] == {
        "KP_FT_1594149793834",
        "KP_FT_1594149814674",
        "KP_FT_1594149773180",
    }
