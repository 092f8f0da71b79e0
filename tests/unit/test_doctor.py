"""``lernflow doctor``'s verdict logic, with fakes: no servers."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from lernflow.certificates import signing
from lernflow.cli.doctor import doctor_table
from lernflow.config import CertificateSettings, Settings, load_settings
from lernflow.flows.registry import FLOWS
from lernflow.ops import doctor
from lernflow.ops.doctor import Check, GroupPosition, Verdict


@pytest.fixture
def settings() -> Settings:
    return load_settings()


def _with_keys(settings: Settings, keys_dir: Path, kid: str | None = None) -> Settings:
    return settings.with_overrides(
        certificates=CertificateSettings(keys_dir=keys_dir, signing_kid=kid)
    )


# -- what each flow needs ---------------------------------------------------------------------


def test_every_flow_and_the_reports_declare_their_needs() -> None:
    assert set(doctor.NEEDS) == {*FLOWS, "reports"}
    assert doctor.targets() == (*FLOWS, "reports")


def test_the_default_plan_checks_everything() -> None:
    p = doctor.plan([])
    assert p.kafka_flows == tuple(FLOWS)
    assert set(p.keyspaces) == {"courses_keyspace", "sunbird_keyspace", "hierarchy_keyspace"}
    assert p.relation_cache and p.certificates and p.postgres
    assert len(p.redis_dbs) == len(set(p.redis_dbs)) == 5


def test_a_plan_for_one_flow_checks_only_what_it_needs() -> None:
    p = doctor.plan(["relation-cache-updater"])
    assert p.kafka_flows == ("relation-cache-updater",)
    assert p.keyspaces == ("hierarchy_keyspace",)
    assert p.redis_dbs == ("relation_cache_db", "content_cache_db")
    assert not (p.relation_cache or p.certificates or p.postgres)
    reports = doctor.plan(["reports"])
    assert reports.kafka_flows == () and reports.postgres and not reports.certificates


# -- Kafka ------------------------------------------------------------------------------------


def test_topics_are_listed_once_with_their_roles_and_setting(settings: Settings) -> None:
    uses = {u.name: u for u in doctor.topic_uses(settings, FLOWS)}
    issue = uses["dev.issue.certificate.request"]
    assert issue.env_var == "LERNFLOW_TOPIC_ISSUE_CERTIFICATE_REQUEST"
    assert issue.roles == (
        "output of activity-aggregate-updater",
        "output of assessment-aggregator",
        "input of certificate-pre-processor",
    )
    assert uses["dev.telemetry.assess"].env_var == "LERNFLOW_TOPIC_TELEMETRY_ASSESS"
    assert len(uses) == len(set(settings.topics.all_topics()) & set(uses))


def test_a_missing_topic_fails_naming_its_setting(settings: Settings) -> None:
    uses = doctor.topic_uses(settings, ["assessment-aggregator"])
    present = {u.name: 4 for u in uses if u.name != "dev.telemetry.assess"}
    checks = doctor.topic_checks(uses, present)
    (bad,) = [c for c in checks if c.verdict is Verdict.FAIL]
    assert bad.target == "dev.telemetry.assess"
    assert "LERNFLOW_TOPIC_TELEMETRY_ASSESS" in bad.detail and "schema apply" in bad.detail
    assert all(c.detail.startswith("4 partitions") for c in checks if c is not bad)


def test_group_position_lag_never_committed_and_retention_loss() -> None:
    lagging = [GroupPosition(0, 5, 0, 8), GroupPosition(1, None, 2, 4)]
    check = doctor.group_check("g", "t", lagging)
    assert check.verdict is Verdict.OK and check.detail.startswith("lag 5 ")
    fresh = doctor.group_check(
        "g", "t", [GroupPosition(0, None, 0, 3), GroupPosition(1, None, 1, 2)]
    )
    assert fresh.verdict is Verdict.OK and "no committed position" in fresh.detail
    assert "4 events" in fresh.detail
    lost = doctor.group_check("g", "t", [GroupPosition(0, 10, 0, 20), GroupPosition(3, 2, 7, 9)])
    assert lost.verdict is Verdict.WARN
    assert "partition(s) 3 " in lost.detail and "LERNFLOW_KAFKA_RETENTION_MS" in lost.detail


class _KafkaError:
    def __init__(self, name: str, text: str) -> None:
        self._name, self._text = name, text

    def name(self) -> str:
        return self._name

    def __str__(self) -> str:
        return self._text


def test_kafka_refusal_tells_credentials_from_unreachable(settings: Settings) -> None:
    down = Exception("Failed to get metadata: Local: Broker transport failure")
    text = doctor.kafka_refusal(settings, [], down, 3.0)
    assert "LERNFLOW_KAFKA_BROKERS" in text and "3 s" in text
    auth = _KafkaError("_AUTHENTICATION", "SASL authentication error: Authentication failed")
    text = doctor.kafka_refusal(settings, [auth], down, 3.0)
    assert "refused the credentials" in text
    assert "LERNFLOW_KAFKA_SASL_USERNAME" in text and "LERNFLOW_KAFKA_SASL_PASSWORD" in text


# -- Cassandra --------------------------------------------------------------------------------


def test_expected_tables_come_from_our_schema_by_keyspace_setting(settings: Settings) -> None:
    same = settings.cassandra.model_copy(update={"hierarchy_keyspace": "sunbird"})
    expected = doctor.expected_tables(same)
    assert "content_hierarchy" in expected["hierarchy_keyspace"]
    assert "content_hierarchy" not in expected["sunbird_keyspace"]  # kept apart by setting
    assert {"userid", "courseid", "batchid"} <= expected["courses_keyspace"]["user_enrolments"]


def test_keyspace_verdicts() -> None:
    expected = {"a": {"x", "y"}, "b": {"z"}}
    var = "LERNFLOW_CASSANDRA_COURSES_KEYSPACE"
    (gone,) = doctor.keyspace_checks("ks", var, expected, None)
    assert gone.verdict is Verdict.FAIL and gone.check == "keyspace" and var in gone.detail
    (ok,) = doctor.keyspace_checks("ks", var, expected, {"a": {"x", "y", "extra"}, "b": {"z"}})
    assert ok.verdict is Verdict.OK and ok.detail.startswith("2 tables")
    checks = doctor.keyspace_checks("ks", var, expected, {"a": {"x"}})
    assert [(c.target, c.verdict) for c in checks] == [
        ("ks.a", Verdict.FAIL),
        ("ks.b", Verdict.FAIL),
    ]
    assert "columns missing: y" in checks[0].detail
    assert checks[1].detail.startswith("missing") and var in checks[1].detail


def test_connection_failures_name_the_host_and_port_settings(settings: Settings) -> None:
    refused = ConnectionRefusedError("[Errno 111] Connection refused")
    assert "LERNFLOW_CASSANDRA_PORT" in doctor.cassandra_refusal(settings.cassandra, refused, 3)
    assert "LERNFLOW_REDIS_PORT" in doctor.redis_refusal(refused, 3)
    assert "LERNFLOW_POSTGRES_PORT" in doctor.postgres_refusal(refused, 3)
    assert "within 3 s" in doctor.redis_refusal(TimeoutError("timed out"), 3)
    bad = Exception('FATAL:  password authentication failed for user "lernflow"')
    assert "LERNFLOW_POSTGRES_PASSWORD" in doctor.postgres_refusal(bad, 3)
    wrongpass = Exception("WRONGPASS invalid username-password pair")
    assert "LERNFLOW_REDIS_PASSWORD" in doctor.redis_refusal(wrongpass, 3)
    auth = Exception("AuthenticationFailed('Failed to authenticate: Bad credentials')")
    assert "LERNFLOW_CASSANDRA_PASSWORD" in doctor.cassandra_refusal(settings.cassandra, auth, 3)


# -- Redis ------------------------------------------------------------------------------------


def test_an_empty_relation_cache_is_a_warning_naming_its_db() -> None:
    assert doctor.relation_cache_check(10, "c:c:leafnodes", 1000).verdict is Verdict.OK
    empty = doctor.relation_cache_check(10, None, 42)
    assert empty.verdict is Verdict.WARN
    assert "LERNFLOW_REDIS_RELATION_CACHE_DB" in empty.detail and "42 keys" in empty.detail


# -- certificates -----------------------------------------------------------------------------


def test_a_missing_key_folder_or_key_fails_naming_the_setting(
    settings: Settings, tmp_path: Path
) -> None:
    (check,) = doctor.signing_key_checks(_with_keys(settings, tmp_path / "nowhere"))
    assert check.verdict is Verdict.FAIL and "LERNFLOW_CERT_KEYS_DIR" in check.detail
    (check,) = doctor.signing_key_checks(_with_keys(settings, tmp_path))
    assert check.verdict is Verdict.FAIL and "keys init" in check.detail
    signing.generate_keys(tmp_path, kid="k1")
    (check,) = doctor.signing_key_checks(_with_keys(settings, tmp_path, kid="k2"))
    assert check.verdict is Verdict.FAIL and "LERNFLOW_CERT_SIGNING_KID" in check.detail


def test_the_signing_key_must_match_the_exported_jwks(settings: Settings, tmp_path: Path) -> None:
    signing.generate_keys(tmp_path, kid="k1")
    key, jwks = doctor.signing_key_checks(_with_keys(settings, tmp_path))
    assert (key.verdict, key.target, jwks.verdict) == (Verdict.OK, "k1", Verdict.OK)
    other = tmp_path / "other"
    signing.generate_keys(other, kid="k1")
    (tmp_path / "k1.public.pem").write_bytes((other / "k1.public.pem").read_bytes())
    _, jwks = doctor.signing_key_checks(_with_keys(settings, tmp_path))
    assert jwks.verdict is Verdict.FAIL and "not the public half" in jwks.detail
    (tmp_path / "k1.public.pem").unlink()
    _, jwks = doctor.signing_key_checks(_with_keys(settings, tmp_path))
    assert jwks.verdict is Verdict.FAIL and "no k1.public.pem" in jwks.detail


def test_an_unreachable_template_host_is_a_warning() -> None:
    tried: list[tuple[str, int]] = []

    def only_80(host: str, port: int) -> None:
        tried.append((host, port))
        if port != 80:
            raise ConnectionRefusedError("refused")

    assert doctor.host_check("example.org", only_80).verdict is Verdict.OK
    assert tried == [("example.org", 443), ("example.org", 80)]
    down = doctor.host_check("example.org:8443", only_80)
    assert down.verdict is Verdict.WARN and "port 8443" in down.detail
    assert "LERNFLOW_CERT_TEMPLATE_HOSTS" in down.detail


# -- the whole run ----------------------------------------------------------------------------


def test_groups_come_back_in_order_and_a_crashing_check_is_a_fail(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow(_s: Any, _p: Any, _t: float) -> list[Check]:
        time.sleep(0.2)
        return [Check("kafka", "k", Verdict.OK, "")]

    def boom(_s: Any, _p: Any, _t: float) -> list[Check]:
        raise RuntimeError("bug")

    def one(name: str) -> Any:
        return lambda _s, _p, _t: [Check(name, name, Verdict.WARN, "")]

    monkeypatch.setattr(doctor, "kafka_checks", slow)
    monkeypatch.setattr(doctor, "cassandra_checks", boom)
    for name in ("redis", "certificate", "postgres"):
        monkeypatch.setattr(doctor, f"{name}_checks", one(name))
    checks = doctor.run_checks(settings)
    assert [c.check for c in checks] == ["kafka", "cassandra", "redis", "certificate", "postgres"]
    assert checks[1].verdict is Verdict.FAIL and "bug" in checks[1].detail
    assert doctor.failed(checks)
    assert not doctor.failed(checks[2:])  # warnings alone pass


def test_the_table_fits_80_columns() -> None:
    checks = [
        Check("consumer group", "dev-certificate-pre-processor-group", Verdict.OK, "lag 0 " * 20),
        Check("topic", "dev.generate.certificate.request", Verdict.FAIL, "missing " * 20),
    ]
    console = Console(width=80, file=io.StringIO(), color_system=None)
    console.print(doctor_table(checks))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "dev-certificate-pre-processor-group" in text and "FAIL" in text


def test_an_unknown_flow_is_a_usage_error() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "lernflow.cli", "doctor", "no-such-flow"],
        env={**os.environ, "COLUMNS": "80"}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "no-such-flow" in done.stderr and "reports" in done.stderr


def test_refused_kafka_credentials_are_one_fail_line_from_the_preflight(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lernflow.kernel.clients import AccessRefused

    message = "Kafka at b:9093 refused the credentials: check LERNFLOW_KAFKA_SASL_PASSWORD"

    def refuse(_k: Any, _t: float) -> None:
        raise AccessRefused(message)

    monkeypatch.setattr(doctor, "kafka_preflight", refuse)
    checks = doctor.kafka_checks(settings, doctor.plan([]), 0.5)
    assert checks == [Check("kafka", settings.kafka.brokers, Verdict.FAIL, message)]
