"""``lernflow doctor``: check every dependency the chosen flows need, before the first event.

The checks run in five groups at once — Kafka (reachable and authenticated, topics with their
partition counts, consumer group positions), Cassandra (reachable, keyspaces, tables and
columns against our schema in ``resources/schema.cql``), Redis (reachable, DB indexes, the
relation cache), certificates (signing key, JWKS, template hosts) and PostgreSQL (the reports'
``job_request`` table) — each bounded by a short timeout, and come back in that order, one
:class:`Check` per line with a verdict and a one-line reason naming the setting to fix
(docs/runbook.md, "Checking a deployment: lernflow doctor"). Nothing here prints.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from lernflow.certificates import signing
from lernflow.config import CassandraSettings, RedisSettings, Settings, TopicSettings
from lernflow.config.settings import env_var_for
from lernflow.flows.certificate_generator.maker import allowed_hosts
from lernflow.flows.registry import FLOWS
from lernflow.kernel.clients import cassandra_session, kafka_preflight, redis_client
from lernflow.kernel.errors import LernflowError
from lernflow.ops import schema
from lernflow.sources.options import consumer_group

logger = logging.getLogger(__name__)

REPORTS = "reports"


class Verdict(StrEnum):
    """How one check ended: ``warn`` does not fail the command, ``FAIL`` does."""

    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    """One line of the doctor's answer."""

    check: str  # what was checked: kafka, topic, consumer group, table, signing key …
    target: str  # which one: an address, a topic, a keyspace.table, a key id …
    verdict: Verdict
    detail: str  # one line; for FAIL and warn it names the setting (env var) or command to fix

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {**asdict(self), "verdict": self.verdict.value}


@dataclass(frozen=True)
class Needs:
    """What one flow (or the reports) needs besides code: ``keyspaces`` and ``redis_dbs`` name
    fields of the Cassandra and Redis settings."""

    kafka: bool = True
    keyspaces: tuple[str, ...] = ()
    redis_dbs: tuple[str, ...] = ()
    relation_cache: bool = False
    certificates: bool = False
    postgres: bool = False


_COURSES, _SUNBIRD, _HIERARCHY = "courses_keyspace", "sunbird_keyspace", "hierarchy_keyspace"
_KEYSPACE_FIELDS = (_COURSES, _SUNBIRD, _HIERARCHY)

#: per flow, what its store reads and writes (flows/<flow>/store.py) and reports/sources.py
NEEDS: dict[str, Needs] = {
    "activity-aggregate-updater": Needs(
        keyspaces=(_COURSES, _HIERARCHY),
        redis_dbs=("relation_cache_db", "dedup_db"),
        relation_cache=True,
    ),
    "assessment-aggregator": Needs(
        keyspaces=(_COURSES,),
        redis_dbs=("relation_cache_db", "content_cache_db"),
        relation_cache=True,
    ),
    "user-cache-updater": Needs(keyspaces=(_SUNBIRD,), redis_dbs=("user_cache_db",)),
    "relation-cache-updater": Needs(
        keyspaces=(_HIERARCHY,), redis_dbs=("relation_cache_db", "content_cache_db")
    ),
    "certificate-pre-processor": Needs(
        keyspaces=(_COURSES, _HIERARCHY), redis_dbs=("content_cache_db", "collection_cache_db")
    ),
    "certificate-generator": Needs(keyspaces=(_COURSES, _SUNBIRD), certificates=True),
    REPORTS: Needs(
        kafka=False,
        keyspaces=(_COURSES, _SUNBIRD, _HIERARCHY),
        redis_dbs=("collection_cache_db", "user_cache_db", "content_cache_db"),
        postgres=True,
    ),
}


@dataclass(frozen=True)
class Plan:
    """What the chosen flows need, merged, in a stable order."""

    kafka_flows: tuple[str, ...]
    keyspaces: tuple[str, ...]
    redis_dbs: tuple[str, ...]
    relation_cache: bool
    certificates: bool
    postgres: bool


def targets() -> tuple[str, ...]:
    """Every name ``doctor`` accepts: the flows, then ``reports``."""
    return (*FLOWS, REPORTS)


def plan(names: Iterable[str]) -> Plan:
    """Merge the needs of ``names`` (flow names or ``reports``; all of them when empty)."""
    chosen = [n for n in targets() if n in set(names)] or list(targets())
    needs = [NEEDS[n] for n in chosen]

    def merged(of: Callable[[Needs], tuple[str, ...]]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(x for n in needs for x in of(n)))

    return Plan(
        kafka_flows=tuple(n for n in chosen if NEEDS[n].kafka),
        keyspaces=merged(lambda n: n.keyspaces),
        redis_dbs=merged(lambda n: n.redis_dbs),
        relation_cache=any(n.relation_cache for n in needs),
        certificates=any(n.certificates for n in needs),
        postgres=any(n.postgres for n in needs),
    )


def run_checks(
    settings: Settings, names: Iterable[str] = (), timeout_s: float = 3.0
) -> list[Check]:
    """Run every check the chosen flows need (the five groups at once); return them in order."""
    p = plan(names)
    groups: list[tuple[str, Callable[[Settings, Plan, float], list[Check]]]] = [
        ("kafka", kafka_checks),
        ("cassandra", cassandra_checks),
        ("redis", redis_checks),
        ("certificates", certificate_checks),
        ("postgres", postgres_checks),
    ]
    with ThreadPoolExecutor(len(groups), thread_name_prefix="doctor") as pool:
        futures = [(name, pool.submit(fn, settings, p, timeout_s)) for name, fn in groups]
        checks: list[Check] = []
        for name, future in futures:
            try:
                checks += future.result()
            except Exception as exc:  # a check's own bug: say so rather than hide the others
                logger.debug("doctor: %s checks raised", name, exc_info=True)
                checks.append(
                    Check(name, "-", Verdict.FAIL, f"the check itself failed: {_one(exc)}")
                )
    return checks


def failed(checks: Iterable[Check]) -> bool:
    """Whether any check failed (warnings do not count)."""
    return any(c.verdict is Verdict.FAIL for c in checks)


def _one(exc: BaseException, limit: int = 200) -> str:
    """An exception as one short line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _unreachable(text: str, timeout_s: float, host_var: str, port_var: str) -> str:
    """A connection that failed for another reason than credentials, and what to check."""
    reason = (
        "connection refused" if "refused" in text.lower() else f"no answer within {timeout_s:g} s"
    )
    return f"{reason}: check {host_var} and {port_var}"


# -- Kafka -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopicUse:
    """One topic the chosen flows use, the flows' roles for it and the setting naming it."""

    name: str
    env_var: str
    roles: tuple[str, ...]


def topic_uses(settings: Settings, flows: Iterable[str]) -> list[TopicUse]:
    """The topics of ``flows`` in order (input, failed, outputs), each once with its roles."""
    t = settings.topics
    roles: dict[str, list[str]] = {}
    for flow in flows:
        spec = FLOWS[flow]
        short = [("input", spec.input_topic(t)), ("failed", spec.failed_topic(t))]
        short += [("output", name) for name in spec.output_topics(t)]
        for role, name in short:
            roles.setdefault(name, []).append(f"{role} of {flow}")
    return [TopicUse(t.full(n), _topic_env_var(t, n), tuple(r)) for n, r in roles.items()]


def _topic_env_var(topics: TopicSettings, short: str) -> str:
    for field, value in topics.model_dump().items():
        if field != "env" and value == short:
            return env_var_for(TopicSettings, field)
    return "LERNFLOW_TOPIC_*"


def topic_checks(uses: list[TopicUse], partitions: dict[str, int]) -> list[Check]:
    """Each topic present with its partition count; ``partitions`` maps the broker's topics."""
    out = []
    for use in uses:
        roles = "; ".join(use.roles)
        n = partitions.get(use.name)
        if n is None:
            detail = (
                f"missing ({roles}): run 'lernflow schema apply', or fix {use.env_var} "
                "or LERNFLOW_ENV (the topic prefix)"
            )
            out.append(Check("topic", use.name, Verdict.FAIL, detail))
        else:
            out.append(Check("topic", use.name, Verdict.OK, f"{n} partitions; {roles}"))
    return out


@dataclass(frozen=True)
class GroupPosition:
    """A consumer group's position on one input partition (``committed`` None: never)."""

    partition: int
    committed: int | None
    low: int
    high: int


def group_check(group: str, topic: str, positions: list[GroupPosition]) -> Check:
    """The group's lag on its input topic; a warning when retention deleted unread events."""
    lost = [p.partition for p in positions if p.committed is not None and p.committed < p.low]
    if lost:
        detail = (
            f"committed position below the earliest kept event on partition(s) "
            f"{', '.join(map(str, lost))} of {topic}: events were deleted by retention before "
            "the flow read them (LERNFLOW_KAFKA_RETENTION_MS)"
        )
        return Check("consumer group", group, Verdict.WARN, detail)
    if all(p.committed is None for p in positions):
        waiting = sum(p.high - p.low for p in positions)
        detail = f"no committed position yet: starts at the earliest of {waiting} events"
        return Check("consumer group", group, Verdict.OK, detail)
    lag = sum(p.high - (p.committed if p.committed is not None else p.low) for p in positions)
    detail = f"lag {lag} on {len(positions)} partitions of {topic}"
    return Check("consumer group", group, Verdict.OK, detail)


def kafka_auth(settings: Settings) -> str:
    """How we talk to Kafka, for the reachable line."""
    k = settings.kafka
    if k.security_protocol.startswith("SASL_"):
        return f"{k.security_protocol}, authenticated as {k.sasl_username or '(no user)'}"
    return k.security_protocol


def kafka_refusal(
    settings: Settings, errors: list[Any], exc: BaseException, timeout_s: float
) -> str:
    """Why Kafka did not answer, naming the settings to check."""
    text = " ".join(_one(e, 300) for e in [*errors, exc])
    codes = {getattr(e, "name", lambda: "")() for e in errors}
    if (
        "_AUTHENTICATION" in codes
        or "SASL_AUTHENTICATION_FAILED" in codes
        or "uthentication" in text
    ):
        return (
            f"refused the credentials ({_one(errors[0] if errors else exc, 120)}): check "
            "LERNFLOW_KAFKA_SASL_USERNAME, LERNFLOW_KAFKA_SASL_PASSWORD and "
            "LERNFLOW_KAFKA_SECURITY_PROTOCOL"
        )
    if "SSL" in text or "certificate" in text:
        return f"TLS failed ({_one(exc, 120)}): check the LERNFLOW_KAFKA_TLS_* settings"
    return (
        f"no broker answered within {timeout_s:g} s: check LERNFLOW_KAFKA_BROKERS "
        "(and that Kafka is up)"
    )


def kafka_checks(settings: Settings, p: Plan, timeout_s: float) -> list[Check]:
    """Kafka reachable (and authenticated), each topic, each flow's consumer group position."""
    if not p.kafka_flows:
        return []
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    try:  # with SASL or TLS on: a refusal named by kernel.clients (a down broker: below)
        kafka_preflight(settings.kafka, timeout_s)
    except LernflowError as exc:
        return [Check("kafka", settings.kafka.brokers, Verdict.FAIL, str(exc))]
    errors: list[Any] = []
    conf: dict[str, Any] = dict(settings.kafka.client_config())
    conf["error_cb"] = errors.append
    conf["log_level"] = 0  # the verdict says what failed; librdkafka's lines would repeat it
    conf["socket.connection.setup.timeout.ms"] = max(1000, int(timeout_s * 1000))
    admin = AdminClient(conf)
    brokers = settings.kafka.brokers
    try:
        md = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        detail = kafka_refusal(settings, errors, exc, timeout_s)
        return [Check("kafka", brokers, Verdict.FAIL, detail)]
    out = [
        Check(
            "kafka",
            brokers,
            Verdict.OK,
            f"{len(md.brokers)} broker{'' if len(md.brokers) == 1 else 's'}, {kafka_auth(settings)}",
        )
    ]
    partitions = {name: len(t.partitions) for name, t in md.topics.items() if t.error is None}
    out += topic_checks(topic_uses(settings, p.kafka_flows), partitions)
    for flow in p.kafka_flows:
        topic = FLOWS[flow].input_topic_name(settings)
        if topic in partitions:
            out.append(
                _group(admin, consumer_group(settings, flow), topic, partitions[topic], timeout_s)
            )
    return out


def _group(admin: Any, group: str, topic: str, n: int, timeout_s: float) -> Check:
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

    spec: Any = OffsetSpec
    tps = [TopicPartition(topic, i) for i in range(n)]
    try:
        low = admin.list_offsets({tp: spec.earliest() for tp in tps}, request_timeout=timeout_s)
        high = admin.list_offsets({tp: spec.latest() for tp in tps}, request_timeout=timeout_s)
        asked = [ConsumerGroupTopicPartitions(group, tps)]
        (got,) = admin.list_consumer_group_offsets(asked, request_timeout=timeout_s).values()
        committed = {tp.partition: tp.offset for tp in got.result().topic_partitions}
        positions = [
            GroupPosition(
                tp.partition,
                committed[tp.partition] if committed.get(tp.partition, -1) >= 0 else None,
                low[tp].result().offset,
                high[tp].result().offset,
            )
            for tp in tps
        ]
    except Exception as exc:
        return Check("consumer group", group, Verdict.FAIL, f"position not readable: {_one(exc)}")
    return group_check(group, topic, positions)


# -- Cassandra -------------------------------------------------------------------------------


def expected_tables(cassandra: CassandraSettings) -> dict[str, dict[str, set[str]]]:
    """Keyspace setting (``courses_keyspace`` …) → table → columns, as ``lernflow schema
    apply`` creates them (by setting, so two settings naming one keyspace stay apart)."""
    by_field = cassandra.model_copy(update={f: f for f in _KEYSPACE_FIELDS})
    out: dict[str, dict[str, set[str]]] = {}
    for table in schema.table_defs(by_field):
        out.setdefault(table.keyspace, {})[table.table] = set(table.columns)
    return out


def keyspace_checks(
    keyspace: str,
    env_var: str,
    expected: dict[str, set[str]],
    present: dict[str, set[str]] | None,
) -> list[Check]:
    """Compare one keyspace with what our schema expects (``present`` None: no keyspace)."""
    fix = f"run 'lernflow schema apply', or point {env_var} at the keyspace that has it"
    if present is None:
        return [Check("keyspace", keyspace, Verdict.FAIL, f"missing: {fix}")]
    out = []
    for table, columns in expected.items():
        if table not in present:
            out.append(Check("table", f"{keyspace}.{table}", Verdict.FAIL, f"missing: {fix}"))
            continue
        lacking = sorted(columns - present[table])
        if lacking:
            detail = (
                f"columns missing: {', '.join(lacking)}: run 'lernflow schema apply' "
                "(it adds missing columns, never drops any)"
            )
            out.append(Check("table", f"{keyspace}.{table}", Verdict.FAIL, detail))
    if not out:
        detail = f"{len(expected)} table{'' if len(expected) == 1 else 's'} with the columns our schema expects"
        out.append(Check("keyspace", keyspace, Verdict.OK, detail))
    return out


def _present(session: Any, keyspace: str, timeout_s: float) -> dict[str, set[str]] | None:
    found = session.execute(
        "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name=%s",
        (keyspace,), timeout=timeout_s,
    )  # fmt: skip
    if not list(found):
        return None
    tables: dict[str, set[str]] = {}
    rows = session.execute(
        "SELECT table_name, column_name FROM system_schema.columns WHERE keyspace_name=%s",
        (keyspace,), timeout=timeout_s,
    )  # fmt: skip
    for row in rows:
        tables.setdefault(row.table_name, set()).add(row.column_name)
    return tables


def cassandra_refusal(cassandra: CassandraSettings, exc: BaseException, timeout_s: float) -> str:
    """Why Cassandra did not answer, naming the settings to check."""
    if isinstance(exc, LernflowError):  # already says which settings (credentials, TLS)
        return str(exc)
    text = _one(exc, 300)
    if "AuthenticationFailed" in text or "Bad credentials" in text:
        return (
            "refused the credentials: check LERNFLOW_CASSANDRA_USERNAME and "
            "LERNFLOW_CASSANDRA_PASSWORD"
        )
    return _unreachable(text, timeout_s, "LERNFLOW_CASSANDRA_HOSTS", "LERNFLOW_CASSANDRA_PORT")


def cassandra_checks(settings: Settings, p: Plan, timeout_s: float) -> list[Check]:
    """Cassandra reachable; each needed keyspace with our tables and columns."""
    if not p.keyspaces:
        return []
    cas = settings.cassandra.model_copy(
        update={"connect_timeout_s": timeout_s, "request_timeout_s": max(timeout_s, 5.0)}
    )
    target = f"{cas.hosts}:{cas.port}"
    try:
        cluster, session = cassandra_session(cas)
    except Exception as exc:
        return [Check("cassandra", target, Verdict.FAIL, cassandra_refusal(cas, exc, timeout_s))]
    try:
        (row,) = session.execute("SELECT release_version FROM system.local", timeout=timeout_s)
        out = [Check("cassandra", target, Verdict.OK, f"Cassandra {row.release_version}")]
        expected = expected_tables(cas)
        for field in p.keyspaces:
            keyspace = getattr(cas, field)
            present = _present(session, keyspace, max(timeout_s, 5.0))
            env_var = env_var_for(CassandraSettings, field)
            out += keyspace_checks(keyspace, env_var, expected.get(field, {}), present)
    finally:
        cluster.shutdown()
    return out


# -- Redis -----------------------------------------------------------------------------------


def redis_refusal(exc: BaseException, timeout_s: float) -> str:
    """Why Redis did not answer, naming the settings to check."""
    if isinstance(exc, LernflowError):
        return str(exc)
    text = _one(exc, 200)
    if "AUTH" in text or "WRONGPASS" in text or "password" in text.lower():
        return f"refused the credentials ({text}): check LERNFLOW_REDIS_PASSWORD"
    return _unreachable(text, timeout_s, "LERNFLOW_REDIS_HOST", "LERNFLOW_REDIS_PORT")


def relation_cache_check(db: int, sample: str | None, scanned: int) -> Check:
    """A leafnodes SET of at least one course, else a warning (progress needs it)."""
    var = env_var_for(RedisSettings, "relation_cache_db")
    if sample is not None:
        return Check("relation cache", f"DB {db}", Verdict.OK, f"present, e.g. {sample}")
    detail = (
        f"no <course>:<course>:leafnodes key among {scanned} keys of DB {db} ({var}): progress "
        "and completion need it; publish a course or run 'lernflow relation-cache rebuild'"
    )
    return Check("relation cache", f"DB {db}", Verdict.WARN, detail)


def _find_leafnodes(client: Any, budget_s: float) -> tuple[str | None, int]:
    cursor, scanned, deadline = 0, 0, time.monotonic() + budget_s
    while True:
        cursor, keys = client.scan(cursor, match="*:leafnodes", count=1000)
        scanned += 1000
        if keys:
            return str(keys[0]), scanned
        if cursor == 0 or time.monotonic() > deadline:
            return None, scanned if cursor else min(scanned, int(client.dbsize()))


def redis_checks(settings: Settings, p: Plan, timeout_s: float) -> list[Check]:
    """Redis reachable; each DB index the flows use; the relation cache."""
    if not p.redis_dbs:
        return []
    r = settings.redis.model_copy(
        update={"socket_timeout_s": min(timeout_s, settings.redis.socket_timeout_s)}
    )
    target = f"{r.host}:{r.port}"
    client = redis_client(r, 0)  # DB 0 always exists: a failure here is the server or auth
    try:
        version = client.info("server").get("redis_version", "?")
    except Exception as exc:
        return [Check("redis", target, Verdict.FAIL, redis_refusal(exc, timeout_s))]
    finally:
        client.close()
    out = [Check("redis", target, Verdict.OK, f"Redis {version}")]
    for field in p.redis_dbs:
        out += _redis_db(r, field, p.relation_cache and field == "relation_cache_db")
    return out


def _redis_db(r: RedisSettings, field: str, relation_cache: bool) -> list[Check]:
    db, var = getattr(r, field), env_var_for(RedisSettings, field)
    client = redis_client(r, db)
    try:
        out = [Check("redis DB", f"DB {db}", Verdict.OK, f"{client.dbsize()} keys ({var})")]
        if relation_cache:
            out.append(relation_cache_check(db, *_find_leafnodes(client, 1.0)))
        return out
    except Exception as exc:
        detail = f"not usable ({_one(exc, 100)}): check {var}"
        return [Check("redis DB", f"DB {db}", Verdict.FAIL, detail)]
    finally:
        client.close()


# -- certificates ----------------------------------------------------------------------------


def signing_key_checks(settings: Settings) -> list[Check]:
    """The signing key the generator would use loads, and the JWKS we export has its public half."""
    c = settings.certificates
    kid_var = "LERNFLOW_CERT_SIGNING_KID"
    if not c.keys_dir.is_dir():
        detail = (
            f"folder {c.keys_dir} does not exist (LERNFLOW_CERT_KEYS_DIR): run 'lernflow cert "
            "keys init' or mount the keys there"
        )
        return [Check("signing key", str(c.keys_dir), Verdict.FAIL, detail)]
    keys = sorted(c.keys_dir.glob("*.private.pem"), key=lambda f: f.stat().st_mtime)
    if c.signing_kid:
        keys = [f for f in keys if f.name == f"{c.signing_kid}.private.pem"]
    if not keys:
        which = f"{c.signing_kid}.private.pem ({kid_var})" if c.signing_kid else "*.private.pem"
        detail = (
            f"no {which} in {c.keys_dir} (LERNFLOW_CERT_KEYS_DIR): run 'lernflow cert keys "
            "init' or mount the key there"
        )
        return [Check("signing key", str(c.keys_dir), Verdict.FAIL, detail)]
    path = keys[-1]
    kid = path.name.removesuffix(".private.pem")
    try:
        key = signing.load_signing_key(path, kid=kid)
    except (OSError, ValueError) as exc:
        return [Check("signing key", str(path), Verdict.FAIL, f"cannot load: {_one(exc)}")]
    out = [Check("signing key", kid, Verdict.OK, f"{key.alg}, {path}")]
    out.append(jwks_check(c.keys_dir, key))
    return out


def jwks_check(keys_dir: Path, key: signing.SigningKey) -> Check:
    """Whether ``lernflow cert keys export`` publishes the public half of ``key``."""
    try:
        public = signing.load_public_keys(keys_dir)
    except ValueError as exc:
        return Check("JWKS", key.kid, Verdict.FAIL, _one(exc))
    if key.kid not in public:
        detail = (
            f"no {key.kid}.public.pem in {keys_dir}: the exported JWKS lacks the signing key, "
            "so verifiers would reject every new certificate"
        )
        return Check("JWKS", key.kid, Verdict.FAIL, detail)
    if signing.public_jwk(public[key.kid]) != signing.public_jwk(key.public_key):
        detail = f"{key.kid}.public.pem is not the public half of {key.kid}.private.pem"
        return Check("JWKS", key.kid, Verdict.FAIL, detail)
    return Check("JWKS", key.kid, Verdict.OK, "the exported JWKS has the signing key's public half")


def host_check(host: str, connect: Callable[[str, int], None]) -> Check:
    """One template host reachable over TCP (``host:port``, else port 443 then 80); warn if not."""
    name, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    ports = [int(port)] if port.isdigit() else [443, 80]
    problems = []
    for p in ports:
        try:
            connect(name, p)
        except OSError as exc:
            problems.append(f"port {p}: {_one(exc, 80)}")
        else:
            return Check("template host", host, Verdict.OK, f"reachable on port {p}")
    detail = (
        f"unreachable ({'; '.join(problems)}): certificates whose template is there will be "
        "parked (LERNFLOW_CERT_TEMPLATE_HOSTS)"
    )
    return Check("template host", host, Verdict.WARN, detail)


def certificate_checks(settings: Settings, p: Plan, timeout_s: float) -> list[Check]:
    """Signing key and JWKS; each template host (warnings only)."""
    if not p.certificates:
        return []
    out = signing_key_checks(settings)

    def connect(host: str, port: int) -> None:
        socket.create_connection((host, port), timeout=timeout_s).close()

    hosts = allowed_hosts(settings)
    if not hosts:
        detail = "none allowed: bundled and local templates only (LERNFLOW_CERT_TEMPLATE_HOSTS)"
        return [*out, Check("template host", "-", Verdict.OK, detail)]
    with ThreadPoolExecutor(min(8, len(hosts))) as pool:
        out += pool.map(lambda h: host_check(h, connect), hosts)
    return out


# -- PostgreSQL ------------------------------------------------------------------------------


def postgres_refusal(exc: BaseException, timeout_s: float) -> str:
    """Why PostgreSQL did not answer, naming the settings to check."""
    if isinstance(exc, LernflowError):
        return str(exc)
    text = _one(exc, 200)
    if "password authentication failed" in text or "no pg_hba.conf entry" in text:
        return (
            "refused the credentials: check LERNFLOW_POSTGRES_USER and LERNFLOW_POSTGRES_PASSWORD"
        )
    if "does not exist" in text and "database" in text:
        return f"{text}: run 'lernflow schema apply' or set LERNFLOW_POSTGRES_DATABASE"
    return _unreachable(text, timeout_s, "LERNFLOW_POSTGRES_HOST", "LERNFLOW_POSTGRES_PORT")


def postgres_checks(settings: Settings, p: Plan, timeout_s: float) -> list[Check]:
    """PostgreSQL reachable and the reports' ``job_request`` table present."""
    if not p.postgres:
        return []
    import psycopg

    pg = settings.postgres
    target = f"{pg.host}:{pg.port}/{pg.database}"
    try:
        conn = psycopg.connect(
            pg.conninfo(), connect_timeout=max(1, round(timeout_s)), autocommit=True
        )
    except Exception as exc:
        return [Check("postgres", target, Verdict.FAIL, postgres_refusal(exc, timeout_s))]
    with conn:
        version = conn.execute("SHOW server_version").fetchone()
        found = conn.execute("SELECT to_regclass(%s)", (pg.job_request_table,)).fetchone()
    out = [Check("postgres", target, Verdict.OK, f"PostgreSQL {version[0] if version else '?'}")]
    table = pg.job_request_table
    if found is None or found[0] is None:
        detail = (
            f"missing in database {pg.database}: run 'lernflow schema apply', or fix "
            "LERNFLOW_POSTGRES_JOB_REQUEST_TABLE / LERNFLOW_POSTGRES_DATABASE"
        )
        out.append(Check("table", table, Verdict.FAIL, detail))
    else:
        out.append(Check("table", table, Verdict.OK, "the reports' job requests"))
    return out
