"""Settings models, one per concern, each overridable from the environment.

Every model reads ``LERNFLOW_<PREFIX>_<FIELD>`` variables; :func:`load_settings` validates all
of them once and turns a validation failure into a :class:`SettingsError` whose message names
the setting, its environment variable and the offending value.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: the logger librdkafka's own lines go to (``client_config``'s ``logger``); lernflow.kernel.logs
#: rate-limits it (docs/runbook.md, "client logs")
KAFKA_CLIENT_LOGGER = "lernflow.kafka.client"
_HOSTPORT = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")
_ENV_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


class SettingsError(ValueError):
    """Raised when a setting has an invalid value; the message says which and how to fix it."""


class _Base(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore", validate_default=True)


def _readable_file(value: Path | None) -> Path | None:
    """A TLS file setting: None, or a file this process can read (checked at start-up)."""
    if value is not None and not (value.is_file() and os.access(value, os.R_OK)):
        msg = f"{str(value)!r} is not a readable file"
        raise ValueError(msg)
    return value


def _need_both(model: _Base, first: str, second: str, why: str) -> None:
    """Fail when exactly one of two settings that only work together is set."""
    one, two = getattr(model, first) is not None, getattr(model, second) is not None
    if one != two:
        given, missing = (first, second) if one else (second, first)
        msg = (
            f"{env_var_for(type(model), given)} is set but {env_var_for(type(model), missing)} "
            f"is not: {why}"
        )
        raise ValueError(msg)


def _tls_files_need(model: _Base, enabled: bool, how: str) -> None:
    """TLS file settings are an error when TLS is off (they would be silently ignored)."""
    if enabled:
        _need_both(model, "tls_cert_file", "tls_key_file", "a client certificate needs its key")
        return
    for name in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
        if getattr(model, name) is not None:
            msg = f"{env_var_for(type(model), name)} is set but TLS is off: {how}"
            raise ValueError(msg)


class KafkaSettings(_Base):
    """Kafka connection and topic-creation defaults (env ``LERNFLOW_KAFKA_*``)."""

    model_config = SettingsConfigDict(env_prefix="LERNFLOW_KAFKA_")

    brokers: str = "127.0.0.1:9092"
    partitions: int = Field(4, ge=1, le=1024)
    replication_factor: int = Field(1, ge=1, le=16)
    retention_ms: int = Field(172_800_000, ge=60_000)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    # TLS (security_protocol SSL or SASL_SSL): the CA the brokers' certificates chain to
    # (default: the system's CAs), a client certificate and key (PEM) for brokers that ask for one
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_key_password: SecretStr | None = None
    tls_verify_hostname: bool = True  # the broker's certificate must name the host connected to
    consumer_batch_size: int = Field(1000, ge=1, le=100_000)
    # librdkafka's prefetch per input partition (``queued.max.messages.kbytes``): every
    # partition a process reads holds this much read ahead, plus the fetch buffers its messages
    # point into (docs/benchmarks.md, the replay's RSS)
    prefetch_kbytes: int = Field(16_384, ge=256, le=2_097_151)
    producer_linger_ms: int = Field(5, ge=0, le=10_000)
    # failed-topic envelopes larger than this carry a truncated payload (+ its size and SHA-256);
    # keep it below the failed topic's max.message.bytes (broker default 1,048,588)
    failed_envelope_max_bytes: int = Field(900_000, ge=10_000, le=100_000_000)
    # parking is idempotent by origin: the first park of a run reads this many envelopes from
    # the end of each failed-topic partition to know what is parked already (0: do not read)
    failed_dedup_tail: int = Field(100_000, ge=0, le=10_000_000)

    @field_validator("brokers")
    @classmethod
    def _brokers_are_host_port(cls, value: str) -> str:
        for broker in value.split(","):
            if not _HOSTPORT.match(broker.strip()):
                msg = f"expected comma-separated host:port pairs, got {broker.strip()!r}"
                raise ValueError(msg)
        return value

    @field_validator("tls_ca_file", "tls_cert_file", "tls_key_file")
    @classmethod
    def _tls_file(cls, value: Path | None) -> Path | None:
        return _readable_file(value)

    @model_validator(mode="after")
    def _security_consistent(self) -> KafkaSettings:
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and (not self.sasl_username or self.sasl_password is None):
            msg = (
                f"LERNFLOW_KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs "
                "LERNFLOW_KAFKA_SASL_USERNAME and LERNFLOW_KAFKA_SASL_PASSWORD"
            )
            raise ValueError(msg)
        if not sasl and (self.sasl_username or self.sasl_password is not None):
            msg = (
                "LERNFLOW_KAFKA_SASL_USERNAME/PASSWORD are set but "
                f"LERNFLOW_KAFKA_SECURITY_PROTOCOL={self.security_protocol} sends no "
                "credentials: set it to SASL_SSL (or SASL_PLAINTEXT)"
            )
            raise ValueError(msg)
        _tls_files_need(
            self,
            self.security_protocol.endswith("SSL"),
            "set LERNFLOW_KAFKA_SECURITY_PROTOCOL to SSL or SASL_SSL",
        )
        return self

    def client_config(self) -> dict[str, Any]:
        """Return the librdkafka connection settings shared by producers and consumers; the
        client's log lines go through Python logging (:data:`KAFKA_CLIENT_LOGGER`)."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.brokers,
            "security.protocol": self.security_protocol,
            "logger": logging.getLogger(KAFKA_CLIENT_LOGGER),
        }
        if self.security_protocol.startswith("SASL_") and self.sasl_password is not None:
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username or ""
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.security_protocol.endswith("SSL"):
            conf["ssl.endpoint.identification.algorithm"] = (
                "https" if self.tls_verify_hostname else "none"
            )
            files = {
                "ssl.ca.location": self.tls_ca_file,
                "ssl.certificate.location": self.tls_cert_file,
                "ssl.key.location": self.tls_key_file,
            }
            conf.update({k: str(v) for k, v in files.items() if v is not None})
            if self.tls_key_password is not None:
                conf["ssl.key.password"] = self.tls_key_password.get_secret_value()
        return conf


class CassandraSettings(_Base):
    """Cassandra endpoint, keyspace names and replication (env ``LERNFLOW_CASSANDRA_*``)."""

    model_config = SettingsConfigDict(env_prefix="LERNFLOW_CASSANDRA_")

    hosts: str = "127.0.0.1"
    port: int = Field(9042, ge=1, le=65535)
    username: str | None = None  # PasswordAuthenticator credentials (with password)
    password: SecretStr | None = None
    tls: bool = False  # client_encryption_options; the CA below, else the system's CAs
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None  # when the nodes require client certificates
    tls_key_file: Path | None = None
    tls_key_password: SecretStr | None = None
    tls_verify_hostname: bool = True
    courses_keyspace: str = "sunbird_courses"
    sunbird_keyspace: str = "sunbird"
    hierarchy_keyspace: str = "hierarchy_store"
    replication_factor: int = Field(1, ge=1, le=16)
    request_timeout_s: float = Field(10.0, gt=0, le=600)
    connect_timeout_s: float = Field(10.0, gt=0, le=600)
    concurrency: int = Field(64, ge=1, le=2048)
    # native protocol: 4 is what Sunbird's Cassandra 3.11 speaks and, in the Python driver,
    # costs less CPU per request than 5 (whose framing computes CRCs in Python)
    protocol_version: int = Field(4, ge=3, le=5)

    @field_validator("courses_keyspace", "sunbird_keyspace", "hierarchy_keyspace")
    @classmethod
    def _valid_keyspace(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,47}", value):
            msg = "a keyspace name is a letter then up to 47 letters, digits or underscores"
            raise ValueError(msg)
        return value

    @field_validator("tls_ca_file", "tls_cert_file", "tls_key_file")
    @classmethod
    def _tls_file(cls, value: Path | None) -> Path | None:
        return _readable_file(value)

    @model_validator(mode="after")
    def _security_consistent(self) -> CassandraSettings:
        _need_both(self, "username", "password", "Cassandra logs in with both")
        _tls_files_need(self, self.tls, "set LERNFLOW_CASSANDRA_TLS=true")
        return self

    def host_list(self) -> list[str]:
        """Return the contact points as a list."""
        return [h.strip() for h in self.hosts.split(",") if h.strip()]


class RedisSettings(_Base):
    """Redis endpoint and the Sunbird DB indexes (env ``LERNFLOW_REDIS_*``)."""

    model_config = SettingsConfigDict(env_prefix="LERNFLOW_REDIS_")

    host: str = "127.0.0.1"
    port: int = Field(6379, ge=1, le=65535)
    username: str | None = None  # an ACL user (Redis 6+); without it, AUTH <password> (default)
    password: SecretStr | None = None
    tls: bool = False  # a TLS port (--tls-port); the CA below, else the system's CAs
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None  # when the server asks for client certificates
    tls_key_file: Path | None = None
    tls_verify_hostname: bool = True
    relation_cache_db: int = Field(10, ge=0, le=255)
    content_cache_db: int = Field(5, ge=0, le=255)
    collection_cache_db: int = Field(0, ge=0, le=255)
    user_cache_db: int = Field(12, ge=0, le=255)
    dedup_db: int = Field(13, ge=0, le=255)
    dedup_expiry_s: int = Field(604_800, ge=1)
    heartbeat_db: int = Field(14, ge=0, le=255)  # running flows' heartbeats (lernflow status)
    socket_timeout_s: float = Field(5.0, gt=0, le=600)

    @field_validator("tls_ca_file", "tls_cert_file", "tls_key_file")
    @classmethod
    def _tls_file(cls, value: Path | None) -> Path | None:
        return _readable_file(value)

    @model_validator(mode="after")
    def _security_consistent(self) -> RedisSettings:
        if self.username is not None and self.password is None:
            msg = "LERNFLOW_REDIS_USERNAME is set but LERNFLOW_REDIS_PASSWORD is not"
            raise ValueError(msg)
        _tls_files_need(self, self.tls, "set LERNFLOW_REDIS_TLS=true")
        return self


class PostgresSettings(_Base):
    """PostgreSQL holding Sunbird's ``job_request`` table (env ``LERNFLOW_POSTGRES_*``)."""

    model_config = SettingsConfigDict(env_prefix="LERNFLOW_POSTGRES_")

    host: str = "127.0.0.1"
    port: int = Field(5432, ge=1, le=65535)
    user: str = "lernflow"
    password: SecretStr = SecretStr("lernflow")
    database: str = "analytics"
    job_request_table: str = "job_request"  # Sunbird's postgres.table.job_request
    # libpq's sslmode: verify-full checks the server's certificate and host name against
    # sslrootcert (default ~/.postgresql/root.crt); require encrypts without checking
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    sslrootcert: Path | None = None
    sslcert: Path | None = None  # a client certificate, when pg_hba asks for one (+ sslkey)
    sslkey: Path | None = None

    @field_validator("sslrootcert", "sslcert", "sslkey")
    @classmethod
    def _tls_file(cls, value: Path | None) -> Path | None:
        return _readable_file(value)

    @model_validator(mode="after")
    def _security_consistent(self) -> PostgresSettings:
        _need_both(self, "sslcert", "sslkey", "a client certificate needs its key")
        return self

    @field_validator("job_request_table", "database", "user")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", value):
            msg = "must be a plain SQL identifier (letters, digits, underscores)"
            raise ValueError(msg)
        return value

    def conninfo(self, database: str | None = None) -> str:
        """A libpq connection string (the password included: do not log it)."""
        pairs: dict[str, object] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": database or self.database,
            "password": self.password.get_secret_value(),
            "connect_timeout": 10,
            "sslmode": self.sslmode,
            "sslrootcert": self.sslrootcert,
            "sslcert": self.sslcert,
            "sslkey": self.sslkey,
        }
        return " ".join(f"{k}={_libpq_value(v)}" for k, v in pairs.items() if v is not None)


def _libpq_value(value: object) -> str:
    """A conninfo value, quoted when it holds a space, a quote or a backslash (libpq rules)."""
    text = str(value)
    if text and not re.search(r"[\s'\\]", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class TopicSettings(_Base):
    """Topic names; each is prefixed with ``<env>.`` (env ``LERNFLOW_ENV`` and ``LERNFLOW_TOPIC_*``)."""

    model_config = SettingsConfigDict(env_prefix="LERNFLOW_TOPIC_")

    env: str = Field("dev", validation_alias="LERNFLOW_ENV")
    course_batch_job_request: str = "coursebatch.job.request"
    activity_agg_failed: str = "activity.agg.failed"
    issue_certificate_request: str = "issue.certificate.request"
    issue_certificate_failed: str = "issue.certificate.failed"
    generate_certificate_request: str = "generate.certificate.request"
    generate_certificate_failed: str = "generate.certificate.failed"
    certificate_notification: str = "certificate.notification.request"
    telemetry_raw: str = "telemetry.raw"
    telemetry_assess: str = "telemetry.assess"
    telemetry_assess_failed: str = "telemetry.assess.failed"
    telemetry_audit: str = "telemetry.audit"
    telemetry_audit_failed: str = "telemetry.audit.failed"
    content_postpublish_request: str = "content.postpublish.request"
    content_postpublish_failed: str = "content.postpublish.failed"

    @field_validator("env")
    @classmethod
    def _valid_env(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            msg = "the environment name is letters, digits, '-' or '_' (e.g. dev, staging)"
            raise ValueError(msg)
        return value

    def full(self, name: str) -> str:
        """Return ``<env>.<name>``, the name on the broker."""
        return f"{self.env}.{name}"

    def all_topics(self) -> list[str]:
        """Return every topic lernflow reads or writes, prefixed with the environment."""
        names = [v for k, v in self.model_dump().items() if k != "env"]
        return [self.full(n) for n in names]


class StackSettings(_Base):
    """The local development stack started by ``lernflow stack up`` (env ``LERNFLOW_STACK_*``)."""

    model_config = SettingsConfigDict(env_prefix="LERNFLOW_STACK_")

    dir: Path = Path(".stack")
    lib_dir: Path | None = None  # jar cache; default <dir>/lib
    java_home: Path | None = None
    kafka_version: str = "4.1.1"
    cassandra_version: str = "5.0.8"
    log4j_version: str = "2.25.4"
    kafka_heap: str = "1G"
    cassandra_heap: str = "1G"
    cassandra_storage_port: int = Field(7000, ge=1, le=65535)
    cassandra_jmx_port: int = Field(7199, ge=1, le=65535)
    # Kafka's group.initial.rebalance.delay.ms for the local broker: 0 starts consumer groups at
    # once; production brokers default to 3000, which tests can run against (docs/runbook.md)
    kafka_group_rebalance_delay_ms: int = Field(0, ge=0, le=300_000)
    start_timeout_s: float = Field(240.0, gt=0)
    # the servers require TLS (certificates from <dir>/pki) and the credentials of the kafka,
    # cassandra, redis and postgres settings: ``lernflow stack up --secure`` (docs/runbook.md)
    secure: bool = False


class RunSettings(_Base):
    """How flows run: recovery, batching, retries (env ``LERNFLOW_RUN_*``)."""

    model_config = SettingsConfigDict(env_prefix="LERNFLOW_RUN_")

    recovery_dir: Path = Path(".stack/recovery")
    snapshot_interval_s: float = Field(10.0, gt=0)
    retry_max_attempts: int = Field(8, ge=1, le=1000)
    retry_base_delay_s: float = Field(0.2, gt=0)
    retry_max_delay_s: float = Field(10.0, gt=0)
    # every running flow process writes a heartbeat this often; it expires after 3 intervals
    heartbeat_interval_s: float = Field(5.0, gt=0, le=300)


class AssessmentSettings(_Base):
    """assessment-aggregator options (env ``LERNFLOW_ASSESSMENT_*``)."""

    model_config = SettingsConfigDict(env_prefix="LERNFLOW_ASSESSMENT_")

    skip_missing_records: bool = False  # Sunbird's assessment.skip.missingRecords
    content_read_url: str | None = None  # e.g. http://127.0.0.1:9000/content/v3/read/
    agg_type: str = "attempt_metrics"
    shards: int = Field(64, ge=1, le=100_000)


class ActivitySettings(_Base):
    """activity-aggregate-updater options (env ``LERNFLOW_ACTIVITY_*``)."""

    model_config = SettingsConfigDict(env_prefix="LERNFLOW_ACTIVITY_")

    dedup_enabled: bool = True  # Sunbird's activity.input.dedup.enabled
    module_aggs_enabled: bool = True  # Sunbird's activity.module.aggs.enabled
    filter_processed_enrolments: bool = True  # Sunbird's activity.filter.processed.enrolments
    shards: int = Field(64, ge=1, le=100_000)
    # learners per Cassandra read (``userid IN (...)`` within one course batch), as Sunbird
    # reads a whole window with IN lists; 1 reads partition by partition
    read_in_size: int = Field(50, ge=1, le=500)
    # enrolments whose last written course and unit ``completedCount`` a worker remembers, to
    # skip rewriting an unchanged one (docs/flows/activity-aggregate-updater.md#73); 0 rewrites
    # every aggregate of an enrolment on each write, as Sunbird does
    aggregate_memory: int = Field(50_000, ge=0, le=10_000_000)
    # consumption rows a worker keeps between rounds instead of reading them again
    # (docs/flows/activity-aggregate-updater.md#74); 0 reads every round, as Sunbird does.
    # `lernflow replay` keeps 2,000,000 unless told otherwise (--consumption-memory)
    consumption_memory: int = Field(0, ge=0, le=100_000_000)
    # seconds a worker keeps the relation-cache sets it read for the next rounds
    # (docs/flows/activity-aggregate-updater.md#75); 0 reads them every round, as Sunbird
    # does. `lernflow replay` keeps them 60 s unless told otherwise (--relation-memory)
    relation_memory_s: float = Field(0.0, ge=0, le=86_400)


class UserCacheSettings(_Base):
    """user-cache-updater and ``user-cache rebuild`` options (env ``LERNFLOW_USER_CACHE_*``)."""

    model_config = SettingsConfigDict(env_prefix="LERNFLOW_USER_CACHE_")

    source: Literal["cassandra", "http"] = "cassandra"
    # Sunbird's user-read API prefix (the user id is appended), used when source = http
    user_read_url: str = "http://127.0.0.1:9000/learner/private/user/v1/read/"
    user_read_fields: str = "locations,organisations"
    http_timeout_s: float = Field(10.0, gt=0, le=600)
    regd_pid: str = "learner-service"  # Sunbird's regd.user.producer.pid
    self_signin_types: str = "google,self"  # comma-separated, case-sensitive
    validated_types: str = "sso"
    accept_delete: bool = False  # also refresh on Delete/Deleted (Sunbird-Lern 8)
    shards: int = Field(64, ge=1, le=100_000)
    rebuild_page_size: int = Field(2000, ge=10, le=100_000)

    @field_validator("user_read_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            msg = "the user-read URL must start with http:// or https://"
            raise ValueError(msg)
        return value if value.endswith("/") else value + "/"


class CertificateSettings(_Base):
    """certificate-pre-processor / certificate-generator options (env ``LERNFLOW_CERT_*``)."""

    model_config = SettingsConfigDict(env_prefix="LERNFLOW_CERT_")

    keys_dir: Path = Path(".stack/certificate-keys")  # <kid>.private.pem / <kid>.public.pem
    signing_kid: str | None = None  # which private key signs (default: the only/newest one)
    key_alg: Literal["ES256", "EdDSA"] = "ES256"
    storage_dir: Path = Path(".stack/certificates")  # local storage of PDFs and credentials
    renderer: Literal["weasyprint", "cairosvg"] = "cairosvg"
    cert_domain_url: str = "http://127.0.0.1:8080"  # Sunbird cert_domain_url (basePath = +/certs)
    # W3C VC Data Model of the credentials: 1.1 (issuanceDate/expirationDate) or 2.0
    # (v2 context, validFrom/validUntil); docs/flows/certificate-generator.md#6
    vc_version: Literal["1.1", "2.0"] = "1.1"
    issuer_name: str = ""  # the issuer profile served at {cert_domain_url}/certs/issuer
    issuer_url: str = ""
    template_hosts: str = ""  # comma-separated hosts templates and images may be fetched from
    # comma-separated folders local templates may be read from, besides the packaged templates
    template_roots: str = ""
    template_max_bytes: int = Field(2 * 1024 * 1024, ge=1024)  # one template, any scheme
    template_timeout_s: float = Field(10.0, gt=0)  # the whole read of one template
    template_host_backoff_s: float = Field(30.0, ge=0)  # a failing host is left alone this long,
    template_host_backoff_max_s: float = Field(600.0, ge=0)  # doubling up to this
    # one certificate's render, in a worker process (0: small rounds in-process, unbounded)
    render_timeout_s: float = Field(60.0, ge=0)
    # issued_certificates[].type (Sunbird: service.rc.entity)
    issued_type: str = "TrainingCertificate"
    # Sunbird cloud_store_base_path_placeholder, expanded in a notifyTemplate's stateImgUrl to
    # cloud_base_url (<cname or base url>/<content container>; "" leaves it as it is)
    cloud_base_path_placeholder: str = "CLOUD_BASE_PATH"
    cloud_base_url: str = ""
    sms_instance_name: str = "Sunbird"  # sunbird_instance_name, in the certificate SMS text
    supported_content_types: str = "SelfAssess"  # Sunbird assessment.metrics.supported.contenttype
    suppress_missing_metadata: bool = True  # Sunbird enable.suppress.exception (pre-processor)
    suppress_signatory_errors: bool = False  # Sunbird enable.suppress.exception (generator)
    zone: str = "UTC"  # the "JVM time zone" dates are formatted in
    shards: int = Field(64, ge=1, le=100_000)

    @field_validator("cert_domain_url")
    @classmethod
    def _domain(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            msg = "must be an absolute http(s) URL"
            raise ValueError(msg)
        return value.rstrip("/")


class ReportSettings(_Base):
    """Course exhaust reports (env ``LERNFLOW_REPORTS_*``); Sunbird's names in comments."""

    model_config = SettingsConfigDict(env_prefix="LERNFLOW_REPORTS_")

    out_dir: Path = Path(".stack/reports")  # where report files are written (the "container")
    encryption_salt: SecretStr = SecretStr("SunBird")  # sunbird_encryption_key (PII, request keys)
    batches_per_channel: int = Field(30, ge=1)  # exhaust.batches.limit.per.channel
    bytes_per_channel: int = Field(1_073_741_824, ge=1)  # exhaust.file.size.limit.per.channel
    batches_per_request: int = Field(20, ge=1)  # data_exhaust.batch.limit.per.request
    # response-exhaust: v1 (ResponseExhaustJob) or v2 (ResponseExhaustJobV2, + archived attempts)
    response_version: Literal["v1", "v2"] = "v1"
    archive_dir: Path = Path(".stack/reports-archive")  # assessmentFetcherConfig container root
    archive_path: str = "archival-data/"  # assessmentFetcherConfig.filePath
    # beyond Sunbird: text cells starting with = + - @ tab CR get a leading ' (CSV formula
    # injection, OWASP); false writes Sunbird's bytes exactly
    neutralise_formulas: bool = True


class LimitSettings(_Base):
    """Bounds every flow's parser puts on its input (env ``LERNFLOW_LIMITS_*``).

    An event over a bound is parked on the flow's failed topic with a reason naming the bound
    (docs/runbook.md). Ids become Cassandra and Redis keys: Cassandra refuses a key over 65,535
    bytes, so ``max_id_chars`` x 4 bytes x the 5 ids of the widest key must stay below that;
    Sunbird's ids are under 100 characters.
    """

    model_config = SettingsConfigDict(env_prefix="LERNFLOW_LIMITS_")

    max_event_bytes: int = Field(1_048_576, ge=1024, le=100_000_000)
    max_depth: int = Field(64, ge=8, le=512)  # JSON nesting ([ and {) of an event
    max_id_chars: int = Field(256, ge=16, le=2048)


class ServeSettings(_Base):
    """``lernflow serve``, the certificate verification page (env ``LERNFLOW_SERVE_*``).

    The QR code of a certificate points at ``{LERNFLOW_CERT_CERT_DOMAIN_URL}/certs/<id>``: serve
    on the host and port that URL reaches (directly or behind a reverse proxy). docs/serve.md.
    """

    model_config = SettingsConfigDict(env_prefix="LERNFLOW_SERVE_")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)  # 0: any free port
    max_upload_bytes: int = Field(5 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)  # else 413


class Settings:
    """All settings groups, validated together."""

    def __init__(
        self,
        kafka: KafkaSettings,
        cassandra: CassandraSettings,
        redis: RedisSettings,
        topics: TopicSettings,
        stack: StackSettings,
        run: RunSettings,
        assessment: AssessmentSettings | None = None,
        activity: ActivitySettings | None = None,
        user_cache: UserCacheSettings | None = None,
        certificates: CertificateSettings | None = None,
        postgres: PostgresSettings | None = None,
        reports: ReportSettings | None = None,
        limits: LimitSettings | None = None,
        serve: ServeSettings | None = None,
    ) -> None:
        self.kafka = kafka
        self.cassandra = cassandra
        self.redis = redis
        self.topics = topics
        self.stack = stack
        self.run = run
        self.assessment = assessment or AssessmentSettings()
        self.activity = activity or ActivitySettings()
        self.user_cache = user_cache or UserCacheSettings()
        self.certificates = certificates or CertificateSettings()
        self.postgres = postgres or PostgresSettings()
        self.reports = reports or ReportSettings()
        self.limits = limits or LimitSettings()
        self.serve = serve or ServeSettings()

    def groups(self) -> dict[str, _Base]:
        """Return the settings groups by name."""
        return {
            "kafka": self.kafka,
            "cassandra": self.cassandra,
            "redis": self.redis,
            "topics": self.topics,
            "stack": self.stack,
            "run": self.run,
            "assessment": self.assessment,
            "activity": self.activity,
            "user_cache": self.user_cache,
            "certificates": self.certificates,
            "postgres": self.postgres,
            "reports": self.reports,
            "limits": self.limits,
            "serve": self.serve,
        }

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """Return the effective settings with secrets masked, for display and logs."""
        out: dict[str, dict[str, Any]] = {}
        for name, group in self.groups().items():
            values: dict[str, Any] = {}
            for field, value in group.model_dump().items():
                if isinstance(value, SecretStr):
                    values[field] = "**********"
                elif isinstance(value, Path):
                    values[field] = str(value)
                else:
                    values[field] = value
            out[name] = values
        return out

    def to_env(self) -> dict[str, str]:
        """The ``LERNFLOW_*`` variables that reproduce these settings in a child process.

        Secrets are included in clear text: pass the result only to a subprocess environment.
        """
        env: dict[str, str] = {}
        for group in self.groups().values():
            for name in type(group).model_fields:
                value = getattr(group, name)
                if value is None:
                    continue
                if isinstance(value, SecretStr):
                    value = value.get_secret_value()
                env[env_var_for(type(group), name)] = (
                    str(value).lower() if isinstance(value, bool) else str(value)
                )
        return env

    def with_overrides(self, **groups: _Base) -> Settings:
        """Return a copy with some groups replaced (used by tests and CLI flags)."""
        current = self.groups()
        current.update(groups)
        return Settings(**current)  # type: ignore[arg-type]


def env_var_for(model: type[_Base], field: str) -> str:
    """Return the environment variable that sets ``field`` of ``model``."""
    info = model.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, str):
        return alias
    prefix = model.model_config.get("env_prefix", "")
    return f"{prefix}{field}".upper()


def _build(model: type[_Base]) -> Any:
    try:
        return model()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            if not err["loc"]:  # a model validator: its message names the env vars
                problems.append(f"settings {model.__name__}: {err['msg']}")
                continue
            field = str(err["loc"][0])
            if field == "LERNFLOW_ENV":
                field = "env"
            var = env_var_for(model, field) if field in model.model_fields else field
            problems.append(
                f"setting {model.__name__}.{field} (env {var}) has bad value "
                f"{err.get('input')!r}: {err['msg']}"
            )
        raise SettingsError("; ".join(problems)) from None


def load_settings() -> Settings:
    """Read and validate every settings group from the environment, once.

    Raises:
        SettingsError: a value is invalid; the message names the setting, its env var and value.
    """
    return Settings(
        kafka=_build(KafkaSettings),
        cassandra=_build(CassandraSettings),
        redis=_build(RedisSettings),
        topics=_build(TopicSettings),
        stack=_build(StackSettings),
        run=_build(RunSettings),
        assessment=_build(AssessmentSettings),
        activity=_build(ActivitySettings),
        user_cache=_build(UserCacheSettings),
        certificates=_build(CertificateSettings),
        postgres=_build(PostgresSettings),
        reports=_build(ReportSettings),
        limits=_build(LimitSettings),
        serve=_build(ServeSettings),
    )
