"""Typed, validated settings for every lernflow concern (one model per concern).

Load them once at start with :func:`load_settings`; every value can be overridden by an
environment variable named ``LERNFLOW_<GROUP>_<FIELD>`` (see ``lernflow config show``).
"""

from lernflow.config.settings import (
    ActivitySettings,
    AssessmentSettings,
    CassandraSettings,
    CertificateSettings,
    KafkaSettings,
    PostgresSettings,
    RedisSettings,
    ReportSettings,
    RunSettings,
    Settings,
    SettingsError,
    StackSettings,
    TopicSettings,
    UserCacheSettings,
    load_settings,
)

__all__ = [
    "ActivitySettings",
    "AssessmentSettings",
    "CassandraSettings",
    "CertificateSettings",
    "KafkaSettings",
    "PostgresSettings",
    "RedisSettings",
    "ReportSettings",
    "RunSettings",
    "Settings",
    "SettingsError",
    "StackSettings",
    "TopicSettings",
    "UserCacheSettings",
    "load_settings",
]
