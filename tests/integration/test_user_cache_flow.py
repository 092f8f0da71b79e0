"""user-cache-updater on the real stack with the project's own users (tests/data/usercache).

Cases ``T1``-``T3`` (Sunbird's three user-cache tests) through the HTTP user-read source, against
a local server answering with our recorded answers; case group ``L`` (Sunbird's Cassandra-era
cases L01-L15) through the Cassandra source, on our own user tables; replay, retries and bad
input. Rules: ``docs/flows/user-cache-updater.md``. Sunbird's own files run in
``tests/conformance/test_user_cache_flow.py``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from prometheus_client import REGISTRY

from lernflow.config import Settings
from lernflow.kernel.clients import cassandra_session, kafka_consumer, redis_client
from lernflow.sources.options import consumer_group
from tests.flowkit import create_topics, produce, read_json, run_to_end
from tests.paths import DATA

FLOW = "user-cache-updater"
FX = DATA / "usercache"
EVENTS: dict[str, Any] = json.loads((FX / "events.json").read_text())
ANSWERS: dict[str, Any] = json.loads((FX / "user_read.json").read_text())
SUNBIRD_TABLES = (
    "user", "user_organisation", "organisation", "location", "system_settings",
    "usr_external_identity", "user_declarations",
)  # fmt: skip
STATUS = {"OK": 200, "CLIENT_ERROR": 400, "RESOURCE_NOT_FOUND": 404, "SERVER_ERROR": 500}


class UserReadServer:
    """A local stand-in for the user-read API: our recorded answers by user id."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.requests: list[str] = []
        self.fail_next = 0  # answer 503 to this many requests first (a server having trouble)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                user = path.rsplit("/", 1)[-1]
                server.requests.append(self.path)
                if server.fail_next > 0:
                    server.fail_next -= 1
                    self._send(503, b"unavailable")
                    return
                name = server.answers.get(user)
                if name is None or query != "fields=locations,organisations":
                    self._send(404, json.dumps(ANSWERS["not_found"]).encode())
                    return
                body = json.dumps(ANSWERS[name], ensure_ascii=False).encode()
                self._send(STATUS.get(ANSWERS[name].get("responseCode", "OK"), 200), body)

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/learner/private/user/v1/read/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _answers_by_user(steps: list[dict[str, Any]]) -> dict[str, str]:
    return {
        EVENTS[s["event"]]["object"]["id"]: s["answer"] for s in steps if s["answer"] is not None
    }


TEST1 = json.loads((FX / "expected_test1.json").read_text())
TEST2 = json.loads((FX / "expected_test2.json").read_text())
TEST3 = json.loads((FX / "expected_test3.json").read_text())
CASSANDRA = json.loads((FX / "cassandra_expected.json").read_text())


@pytest.fixture
def api() -> Iterator[UserReadServer]:
    server = UserReadServer(_answers_by_user(TEST1["events_in_order"]))
    yield server
    server.close()


def _http(settings: Settings, api: UserReadServer) -> Settings:
    uc = settings.user_cache.model_copy(update={"source": "http", "user_read_url": api.url})
    return settings.with_overrides(user_cache=uc)


def _hashes(settings: Settings) -> dict[str, dict[str, str]]:
    client = redis_client(settings.redis, settings.redis.user_cache_db)
    try:
        return {k: client.hgetall(k) for k in sorted(client.keys("*"))}
    finally:
        client.close()


def _events(*names: str) -> list[bytes]:
    return [json.dumps(EVENTS[n], ensure_ascii=False).encode() for n in names]


def _topics(settings: Settings) -> tuple[str, str]:
    t = settings.topics
    return t.full(t.telemetry_audit), t.full(t.telemetry_audit_failed)


def _committed(settings: Settings, topic: str) -> int:
    """The flow's committed position summed over the topic's partitions (0 when none)."""
    consumer = kafka_consumer(settings.kafka, group_id=consumer_group(settings, FLOW))
    try:
        parts = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        got = consumer.committed([TopicPartition(topic, p) for p in parts], timeout=30)
        return sum(max(tp.offset, 0) for tp in got)
    finally:
        consumer.close()


def _skips() -> dict[str, float]:
    """This process's skip counters of the flow, by kind."""
    kinds = ("not-a-user", "no-state", "unsupported-state", "no-data")
    return {
        k: REGISTRY.get_sample_value(
            "lernflow_events_skipped_total", {"flow": FLOW, "reason_kind": k}
        )
        or 0.0
        for k in kinds
    }


def _skipped_since(before: dict[str, float]) -> dict[str, float]:
    return {k: v - before[k] for k, v in _skips().items() if v != before[k]}


def _expected_keys(keys: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {k: v for k, v in sorted(keys.items()) if v is not None}


def test_t1_writes_the_expected_hashes_through_the_user_read_api_and_a_replay_keeps_them(
    settings: Settings, api: UserReadServer
) -> None:
    settings = _http(settings, api)
    create_topics(settings)
    inp, failed = _topics(settings)
    names = [s["event"] for s in TEST1["events_in_order"]]
    produce(settings, inp, _events(*names), key=b"audit")
    skips = _skips()
    run_to_end(FLOW, settings)

    expected = _expected_keys(TEST1["keys"])
    assert _hashes(settings) == expected  # lf-learner-07 (unsupported state) has no key
    # 7 registered events, 7 API calls; the 2 skipped events are counted, not errors
    assert len(api.requests) == 7
    assert _skipped_since(skips) == {"not-a-user": 1, "unsupported-state": 1}
    assert _committed(settings, inp) == len(names)
    assert read_json(settings, failed) == []

    # replay: the same input again leaves Redis at the same explicit expected state
    run_to_end(FLOW, settings, from_beginning=True)
    assert _hashes(settings) == expected


def test_t2_another_producers_event_merges_only_the_login_type(
    settings: Settings, api: UserReadServer
) -> None:
    settings = _http(settings, api)
    create_topics(settings)
    inp, _failed = _topics(settings)
    step1, step2 = TEST2["step1"], TEST2["step2"]
    produce(settings, inp, _events(step1["event"]), key=b"u1")
    run_to_end(FLOW, settings)
    assert _hashes(settings) == {"user:lf-learner-01": step1["hash"]}

    produce(settings, inp, _events(step2["event"]), key=b"u1")
    run_to_end(FLOW, settings)
    assert _hashes(settings) == {"user:lf-learner-01": step2["hash"]}
    assert len(api.requests) == 1  # the other producer's event makes no API call


def test_t3_blocked_user_is_skipped_and_an_unknown_user_is_parked_not_fatal(
    settings: Settings, api: UserReadServer
) -> None:
    api.answers.update(_answers_by_user(TEST3["sequence"]))
    settings = _http(settings, api)
    create_topics(settings)
    inp, failed = _topics(settings)
    names = [s["event"] for s in TEST3["sequence"]]  # the last one comes after the fault
    produce(settings, inp, _events(*names), key=b"audit")
    skips = _skips()
    run_to_end(FLOW, settings)
    assert _hashes(settings) == _expected_keys(TEST3["keys"])  # blocked: no key; the flow went on
    assert _skipped_since(skips) == {"no-data": 1}  # the blocked user without cdata
    parked = read_json(settings, failed)
    assert len(parked) == 1
    assert parked[0]["reason"].startswith(TEST3["parked_reason_starts"])
    assert parked[0]["source"]["offset"] == 2
    assert json.loads(parked[0]["payload"]) == EVENTS[names[2]]


def test_an_unavailable_user_read_api_is_retried_and_nothing_is_lost(
    settings: Settings, api: UserReadServer
) -> None:
    settings = _http(settings, api)
    create_topics(settings)
    inp, failed = _topics(settings)
    api.fail_next = 3
    produce(settings, inp, _events("t1_1_learner01_update_google"), key=b"u")
    run_to_end(FLOW, settings)
    assert _hashes(settings) == {"user:lf-learner-01": TEST1["keys"]["user:lf-learner-01"]}
    assert _committed(settings, inp) == 1
    assert read_json(settings, failed) == []
    assert len(api.requests) >= 4


def test_malformed_events_are_parked_with_reasons_and_good_ones_around_them_applied(
    settings: Settings, api: UserReadServer
) -> None:
    settings = _http(settings, api)
    create_topics(settings)
    inp, failed = _topics(settings)
    good = _events("t1_1_learner01_update_google")[0]
    bad = [
        b"{not json",
        b"[]",
        b'{"object": {"id": "u", "type": "User"}, "edata": {"state": "Update"},'
        b' "context": {"cdata": [{"id": "x"}]}}',
        b'{"object": "lf-learner-01", "edata": {"state": "Update"}}',
        b"\xff\xfe",
    ]
    produce(settings, inp, [bad[0], good, *bad[1:]], key=b"k")
    run_to_end(FLOW, settings)
    assert _hashes(settings) == {"user:lf-learner-01": TEST1["keys"]["user:lf-learner-01"]}
    parked = read_json(settings, failed)
    assert len(parked) == len(bad)
    assert all(p["reason"] for p in parked)
    assert sorted(p["source"]["offset"] for p in parked) == [0, 2, 3, 4, 5]


# ---- the Cassandra source (default) -------------------------------------------------------


@pytest.fixture
def user_tables(settings: Settings) -> Iterator[Settings]:
    """Our user tables (cassandra_tables.json), loaded into this session's sunbird keyspace."""
    ks = settings.cassandra.sunbird_keyspace
    tables = json.loads((FX / "cassandra_tables.json").read_text())
    cluster, session = cassandra_session(settings.cassandra)
    try:
        for table in SUNBIRD_TABLES:
            session.execute(f"TRUNCATE {ks}.{table}", timeout=60)
        for table, rows in tables.items():
            insert = session.prepare(f"INSERT INTO {ks}.{table} JSON ?")
            for row in rows:
                session.execute(insert, (json.dumps(row),))
        yield settings
        for table in SUNBIRD_TABLES:
            session.execute(f"TRUNCATE {ks}.{table}", timeout=60)
    finally:
        cluster.shutdown()


def _preseed(settings: Settings) -> dict[str, dict[str, str]]:
    seed: dict[str, dict[str, str]] = json.loads((FX / "cassandra_preseed.json").read_text())
    client = redis_client(settings.redis, settings.redis.user_cache_db)
    for key, fields in seed.items():
        client.hset(key, mapping=fields)
    client.close()
    return seed


def test_l01_l15_cassandra_source_gives_the_expected_hashes_from_the_user_tables(
    user_tables: Settings,
) -> None:
    settings = user_tables
    create_topics(settings)
    seed = _preseed(settings)
    assert _hashes(settings) == dict(sorted(seed.items()))
    inp, failed = _topics(settings)
    names = CASSANDRA["events_in_order"]
    produce(settings, inp, _events(*names), key=b"audit")
    skips = _skips()
    run_to_end(FLOW, settings)

    expected = _expected_keys(CASSANDRA["keys"])
    assert _hashes(settings) == expected  # lf-cas-13 is not in the user table: no key
    assert _skipped_since(skips) == {"not-a-user": 1, "unsupported-state": 1, "no-state": 1}
    # lf-cas-13: parked with the reason, to requeue once the user exists
    parked = read_json(settings, failed)
    assert [p["reason"] for p in parked] == list(CASSANDRA["parked"].values())
    assert [json.loads(p["payload"]) for p in parked] == [EVENTS[n] for n in CASSANDRA["parked"]]
    assert _committed(settings, inp) == len(names)

    run_to_end(FLOW, settings, from_beginning=True)
    assert _hashes(settings) == expected
