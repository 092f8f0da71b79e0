"""``lernflow doctor`` on the real stack: passes once the schema is applied, and fails with one
precise line naming the setting for a missing topic, table or key, and for a wrong port."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lernflow.certificates import signing
from lernflow.config import Settings
from lernflow.kernel.clients import redis_client
from lernflow.ops import schema
from tests.flowkit import create_topics


@pytest.fixture
def ready(settings: Settings, tmp_path: Path) -> Settings:
    """The test's settings after 'schema apply' (keyspaces: the session's; topics; PostgreSQL)
    and 'cert keys init'."""
    create_topics(settings)
    schema.apply_postgres(settings.postgres)
    keys = tmp_path / "keys"
    signing.generate_keys(keys, kid="doctor-test")
    certs = settings.certificates.model_copy(update={"keys_dir": keys})
    return settings.with_overrides(certificates=certs)


def _doctor(settings: Settings, *args: str, **env: str) -> tuple[int, list[dict[str, Any]], str]:
    done = subprocess.run(
        [sys.executable, "-m", "lernflow.cli", "doctor", "--json", *args],
        env={**os.environ, **settings.to_env(), "COLUMNS": "80", **env},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout), done.stderr


def _failures(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in checks if c["verdict"] == "FAIL"]


def test_doctor_passes_after_schema_apply_and_warns_of_an_empty_relation_cache(
    ready: Settings,
) -> None:
    code, checks, stderr = _doctor(ready)
    assert code == 0, _failures(checks)
    kinds = {c["check"] for c in checks}
    assert {
        "kafka",
        "topic",
        "consumer group",
        "cassandra",
        "keyspace",
        "redis",
        "redis DB",
    } <= kinds
    assert {"relation cache", "signing key", "JWKS", "postgres", "table"} <= kinds
    topics = {c["target"]: c["detail"] for c in checks if c["check"] == "topic"}
    assert topics[f"{ready.topics.env}.telemetry.assess"].startswith(
        f"{ready.kafka.partitions} partitions"
    )
    (cache,) = [c for c in checks if c["check"] == "relation cache"]
    assert cache["verdict"] == "warn"  # the test's Redis DBs are empty; a warning still passes
    took = float(re.search(r"in ([\d.]+) s", stderr).group(1))  # type: ignore[union-attr]
    assert took < 10, stderr


def test_a_course_in_the_relation_cache_is_found(ready: Settings, uid: str) -> None:
    client = redis_client(ready.redis, ready.redis.relation_cache_db)
    client.sadd(f"do_{uid}:do_{uid}:leafnodes", "do_leaf")
    client.close()
    code, checks, _ = _doctor(ready, "activity-aggregate-updater")
    (cache,) = [c for c in checks if c["check"] == "relation cache"]
    assert code == 0 and cache["verdict"] == "ok" and f"do_{uid}" in cache["detail"]
    assert not any(c["check"] in ("signing key", "postgres") for c in checks)  # not this flow's


def test_a_missing_topic_fails_naming_its_setting(ready: Settings, uid: str) -> None:
    code, checks, _ = _doctor(ready, LERNFLOW_TOPIC_TELEMETRY_ASSESS=f"missing-{uid}")
    (bad,) = _failures(checks)
    assert code == 1
    assert (bad["check"], bad["target"]) == ("topic", f"{ready.topics.env}.missing-{uid}")
    assert "LERNFLOW_TOPIC_TELEMETRY_ASSESS" in bad["detail"]


def test_a_missing_table_fails_naming_the_keyspace_setting(ready: Settings) -> None:
    sunbird = ready.cassandra.sunbird_keyspace  # has no content_hierarchy table
    code, checks, _ = _doctor(ready, LERNFLOW_CASSANDRA_HIERARCHY_KEYSPACE=sunbird)
    (bad,) = _failures(checks)
    assert code == 1
    assert (bad["check"], bad["target"]) == ("table", f"{sunbird}.content_hierarchy")
    assert bad["detail"].startswith("missing")
    assert "LERNFLOW_CASSANDRA_HIERARCHY_KEYSPACE" in bad["detail"]


def test_a_missing_signing_key_fails_naming_the_keys_dir(ready: Settings, tmp_path: Path) -> None:
    nowhere = tmp_path / "no-keys"
    code, checks, _ = _doctor(ready, LERNFLOW_CERT_KEYS_DIR=str(nowhere))
    (bad,) = _failures(checks)
    assert code == 1
    assert (bad["check"], bad["target"]) == ("signing key", str(nowhere))
    assert "LERNFLOW_CERT_KEYS_DIR" in bad["detail"]


@pytest.mark.parametrize(
    ("var", "check", "named"),
    [
        ("LERNFLOW_CASSANDRA_PORT", "cassandra", "LERNFLOW_CASSANDRA_PORT"),
        ("LERNFLOW_REDIS_PORT", "redis", "LERNFLOW_REDIS_PORT"),
    ],
)
def test_a_wrong_port_fails_in_one_line_naming_the_port_setting(
    ready: Settings, var: str, check: str, named: str
) -> None:
    code, checks, _ = _doctor(ready, **{var: "1"})
    (bad,) = _failures(checks)
    assert code == 1
    assert (bad["check"], bad["target"]) == (check, "127.0.0.1:1")
    assert "connection refused" in bad["detail"] and named in bad["detail"]


def test_the_text_output_fits_80_columns_with_the_reason_on_the_fail_line(
    ready: Settings,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lernflow.cli", "doctor", "relation-cache-updater"],
        env={**os.environ, **ready.to_env(), "COLUMNS": "80", "LERNFLOW_REDIS_PORT": "1"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    (fail,) = [line for line in lines if line.startswith("FAIL")]
    assert "redis" in fail and "127.0.0.1:1" in fail
    assert "1 FAIL" in done.stderr
