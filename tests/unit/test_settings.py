"""Settings: defaults are the local stack; bad values name the setting, env var and value."""

from __future__ import annotations

import os

import pytest

from lernflow.config import SettingsError, load_settings


@pytest.fixture
def clean_env(monkeypatch):
    """No LERNFLOW_* variable of the calling shell leaks into a test about defaults."""
    for name in list(os.environ):
        if name.startswith("LERNFLOW_"):
            monkeypatch.delenv(name)


def test_defaults_point_at_the_local_stack(clean_env, monkeypatch):
    monkeypatch.setenv("LERNFLOW_KAFKA_BROKERS", "10.1.2.3:9093")
    assert load_settings().kafka.brokers == "10.1.2.3:9093"  # the env is read ...
    monkeypatch.delenv("LERNFLOW_KAFKA_BROKERS")
    s = load_settings()  # ... and without it, the defaults
    assert s.kafka.brokers == "127.0.0.1:9092"
    assert s.cassandra.host_list() == ["127.0.0.1"]
    assert s.cassandra.courses_keyspace == "sunbird_courses"
    assert s.redis.relation_cache_db == 10
    assert s.topics.full(s.topics.course_batch_job_request) == "dev.coursebatch.job.request"


def test_env_prefix_changes_every_topic(monkeypatch):
    monkeypatch.setenv("LERNFLOW_ENV", "staging")
    topics = load_settings().topics.all_topics()
    assert "staging.issue.certificate.request" in topics
    assert all(t.startswith("staging.") for t in topics)


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        (
            "LERNFLOW_KAFKA_PARTITIONS",
            "zero",
            "KafkaSettings.partitions (env LERNFLOW_KAFKA_PARTITIONS)",
        ),
        (
            "LERNFLOW_KAFKA_BROKERS",
            "localhost",
            "KafkaSettings.brokers (env LERNFLOW_KAFKA_BROKERS)",
        ),
        ("LERNFLOW_REDIS_PORT", "70000", "RedisSettings.port (env LERNFLOW_REDIS_PORT)"),
        ("LERNFLOW_ENV", "a b", "TopicSettings.env (env LERNFLOW_ENV)"),
        (
            "LERNFLOW_CASSANDRA_COURSES_KEYSPACE",
            "1bad",
            "courses_keyspace (env LERNFLOW_CASSANDRA_COURSES_KEYSPACE)",
        ),
    ],
)
def test_invalid_value_fails_fast_naming_setting_env_var_and_value(monkeypatch, var, value, needle):
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert needle in str(err.value)
    assert repr(value) in str(err.value)


def test_secrets_are_hidden_when_shown(monkeypatch):
    monkeypatch.setenv("LERNFLOW_REDIS_PASSWORD", "hunter2")
    shown = load_settings().as_dict()
    assert shown["redis"]["password"] == "**********"
    assert "hunter2" not in str(shown)
