"""``lernflow user-cache rebuild`` on the real stack: same hashes as the flow, resumable, one
user, dry run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from bench.workloads import audit_events, seed_users, user_id
from lernflow import cli
from lernflow.config import Settings
from lernflow.kernel.clients import cassandra_session, redis_client
from lernflow.ops.user_cache_rebuild import UserCacheRebuild, state_path
from tests.flowkit import create_topics, produce, run_to_end

USERS = 120
TABLES = ("user", "user_organisation", "organisation", "location", "system_settings")


@pytest.fixture
def users(settings: Settings) -> Iterator[Settings]:
    ks = settings.cassandra.sunbird_keyspace
    cluster, session = cassandra_session(settings.cassandra)
    for t in TABLES:
        session.execute(f"TRUNCATE {ks}.{t}", timeout=60)
    state_path(settings).unlink(missing_ok=True)
    seed_users(settings, USERS, schools=7)
    yield settings
    for t in TABLES:
        session.execute(f"TRUNCATE {ks}.{t}", timeout=60)
    cluster.shutdown()
    state_path(settings).unlink(missing_ok=True)


def _hashes(settings: Settings) -> dict[str, dict[str, str]]:
    client = redis_client(settings.redis, settings.redis.user_cache_db)
    try:
        return {k: client.hgetall(k) for k in client.keys("user:*")}
    finally:
        client.close()


def _flush(settings: Settings) -> None:
    client = redis_client(settings.redis, settings.redis.user_cache_db)
    client.flushdb()
    client.close()


def test_rebuild_writes_the_same_hashes_as_the_flow(users: Settings) -> None:
    settings = users
    create_topics(settings)
    inp = settings.topics.full(settings.topics.telemetry_audit)
    produce(settings, inp, [v for _k, v in audit_events(USERS)], key=b"audit")
    run_to_end("user-cache-updater", settings)
    by_flow = _hashes(settings)
    assert len(by_flow) == USERS
    _flush(settings)

    job = UserCacheRebuild(settings)
    try:
        result = job.run()
    finally:
        job.close()
    assert result.users == USERS
    rebuilt = _hashes(settings)
    assert rebuilt.keys() == by_flow.keys()
    for key, fields in by_flow.items():
        # the indexer's sign-in type (custodian org members: Self-Signed-In) vs the event's
        assert {k: v for k, v in rebuilt[key].items() if k != "usersignintype"} == {
            k: v for k, v in fields.items() if k != "usersignintype"
        }
        assert rebuilt[key]["usersignintype"] == "Self-Signed-In"
    sample = rebuilt[f"user:{user_id(8)}"]
    assert sample["schoolname"] == "School No. 1"
    assert (sample["state"], sample["district"], sample["block"]) == (
        "State 3",
        "District 8",
        "Block 8",
    )
    assert sample["subject"] == '["Mathematics","Science"]'
    assert sample["orgname"] == "Synthetic Board"


def test_an_interrupted_rebuild_resumes_where_it_stopped(users: Settings) -> None:
    uc = users.user_cache.model_copy(update={"rebuild_page_size": 25})
    settings = users.with_overrides(user_cache=uc)
    job = UserCacheRebuild(settings)
    try:
        first = job.run(limit=50)
        assert first.users == 50
        assert state_path(settings).exists()
        assert len(_hashes(settings)) == 50
        seen: list[float] = []
        second = job.run(progress=lambda f, _n, _s: seen.append(f))
    finally:
        job.close()
    assert second.resumed_from is not None
    assert second.users == USERS  # counted from where the first run stopped
    assert len(_hashes(settings)) == USERS
    assert not state_path(settings).exists()
    assert seen == sorted(seen)
    assert 0.0 < seen[0] < 1.0


def test_cli_rebuilds_one_user_and_dry_run_shows_the_diff(
    users: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in users.to_env().items():
        monkeypatch.setenv(k, v)
    runner = CliRunner()
    uid = user_id(3)
    res = runner.invoke(cli.app, ["user-cache", "rebuild", "--user", uid, "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "+ firstname = 'Learner3'" in res.output
    assert _hashes(users) == {}

    res = runner.invoke(cli.app, ["user-cache", "rebuild", "--user", uid])
    assert res.exit_code == 0, res.output
    assert _hashes(users)[f"user:{uid}"]["firstname"] == "Learner3"

    res = runner.invoke(cli.app, ["user-cache", "rebuild", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert f"{USERS - 1:,} of {USERS:,} users would change" in res.output

    res = runner.invoke(cli.app, ["user-cache", "rebuild", "--user", "nobody"])
    assert res.exit_code == 1
    assert "not found" in res.output

    res = runner.invoke(cli.app, ["user-cache", "rebuild"])
    assert res.exit_code == 0, res.output
    assert f"{USERS:,} users written" in res.output
    assert len(_hashes(users)) == USERS
