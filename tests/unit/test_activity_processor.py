"""activity-aggregate-updater's production orchestration (shell + logic) on an in-memory store.

The store below applies each write the way Cassandra and Redis do (an upsert writes only the
named columns; a missing status reads as 1) and logs every call, so the tests see both the
outcome and the order of the side effects the crash safety relies on
(docs/flows/activity-aggregate-updater.md#7-enrolment-update-and-first-completion).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import pytest

from lernflow.config import Settings, load_settings
from lernflow.flows.activity_aggregate_updater import rules
from lernflow.flows.activity_aggregate_updater.flow import SPEC
from lernflow.flows.activity_aggregate_updater.processor import ActivityLogic
from lernflow.sinks.kafka_producer import OutMessage
from tests.paths import DATA
from tests.shellkit import MemoryOutbox, metric, run

AX = DATA / "activity"
MAYA = ("lf-user-maya", "lf-course-botany", "lf-batch-botany-01")
SEEDS, ROOTS, LEAVES, FLOWERS = (
    "lf-botany-seeds", "lf-botany-roots", "lf-botany-leaves", "lf-botany-flowers",
)  # fmt: skip
GROWTH, PLANTS = "lf-botany-unit-growth", "lf-botany-unit-plants"
T_A1 = ("t_a1_1_seeds", "t_a1_2_roots", "t_a1_3_leaves")
# MD5 of "course|batch|user|content|2", uppercase (computed with md5sum; tests/data/activity)
KEY_SEEDS = "C15ACB0293A153BC696116C8603F2714"
KEY_ROOTS = "C7837490FC10FD003D20BFA746FAD1D3"
KEY_LEAVES = "559E8468A07C6F54809E34329CC87922"

Key = tuple[str, str, str]


class LoggingOutbox(MemoryOutbox):
    """A :class:`MemoryOutbox` that also logs each produce call in the store's call log and
    keeps the ``mid`` of each certificate request where ``certificate_mids`` finds it (the topic).
    """

    def __init__(self, log: list[str], mids: set[str] | None = None) -> None:
        super().__init__()
        self.log = log
        self.mids = mids if mids is not None else set()

    def produce_all(self, messages: Sequence[OutMessage]) -> None:
        super().produce_all(messages)
        self.mids.update(
            json.loads(m.value)["mid"] for m in messages
            if m.topic.endswith("issue.certificate.request")
        )  # fmt: skip
        self.log.append("send " + ",".join(sorted({m.topic.rsplit(".", 2)[-2] for m in messages})))


class MemoryStore:
    """The tables and Redis DBs of the flow as dicts (the ``ActivityStore`` protocol)."""

    def __init__(self, relation: dict[str, list[str]], statuses: dict[str, str] | None = None):
        seed = json.loads((AX / "lms_seed.json").read_text())
        self.consumption_rows: dict[Key, dict[str, rules.StoredContent]] = {}
        for r in seed["user_content_consumption"]:
            self.consumption_rows.setdefault((r["userid"], r["courseid"], r["batchid"]), {})[
                r["contentid"]
            ] = rules.StoredContent(r["status"], r["viewcount"], r["completedcount"])
        self.enrolment_rows: dict[Key, dict[str, Any]] = {
            (r["userid"], r["courseid"], r["batchid"]): {"status": r["status"]}
            for r in seed["user_enrolments"]
        }
        self.relation = {k: frozenset(v) for k, v in relation.items()}
        self.statuses: dict[str, str] = statuses or {}
        self.ledger: dict[Key, dict[str, int]] = {}
        self.markers: dict[Key, int] = {}  # an older version's marker rows
        self.completions: dict[Key, rules.CompletionMark] = {}
        self.aggregates: dict[tuple[str, str, str], float] = {}
        self.dedup: set[str] = set()
        self.mids: set[str] = set()
        self.log: list[str] = []

    # reads
    def seen_checksums(self, checksums: Sequence[str]) -> set[str]:
        return {c for c in checksums if c in self.dedup}

    def ledgers(self, keys: Sequence[Key]) -> dict[Key, rules.Ledger]:
        return {
            k: rules.Ledger(
                dict(self.ledger.get(k, {})), self.markers.get(k), self.completions.get(k)
            )
            for k in keys
        }

    def consumption(self, keys: Sequence[Key]) -> dict[Key, dict[str, rules.StoredContent]]:
        return {k: dict(self.consumption_rows.get(k, {})) for k in keys}

    def enrolments(self, keys: Sequence[Key]) -> dict[Key, rules.EnrolmentRow | None]:
        rows = {k: self.enrolment_rows.get(k) for k in keys}
        return {k: rules.EnrolmentRow(r["status"], r.get("progress"), r.get("completedon"))
                if r else None for k, r in rows.items()}  # fmt: skip

    def relation_sets(self, keys: Iterable[str]) -> dict[str, frozenset[str]]:
        return {k: self.relation.get(k, frozenset()) for k in set(keys)}

    def collection_status(self, course_ids: Sequence[str]) -> dict[str, str | None]:
        return {c: self.statuses.get(c) for c in course_ids}

    def certificate_mids(self, since_ms: int) -> set[str]:
        return set(self.mids)

    # writes
    def write_enrolments(self, writes: Sequence[rules.EnrolmentWrite]) -> None:
        self.log.append("write_enrolments")
        for w in writes:
            rows = self.consumption_rows.setdefault(w.key, {})
            for m in w.counters:  # only viewcount/completedcount: a new row's status is null
                old = rows.get(m.content_id, rules.StoredContent(1, 0, 0))
                rows[m.content_id] = rules.StoredContent(
                    old.status, m.view_count, m.completed_count
                )
            for applied in w.applied:
                self.ledger.setdefault(w.key, {})[applied.source] = applied.offset
            if w.enrolment is not None:
                e = w.enrolment
                row = self.enrolment_rows.setdefault(w.key, {})
                row.update(status=e.status, progress=e.progress, contentstatus=e.content_status)
                if e.completed_on_ms is not None:
                    row["completedon"] = e.completed_on_ms
            if w.completed_by is not None and w.pending_since_ms is not None:
                self.completions[w.key] = rules.CompletionMark(w.completed_by, w.pending_since_ms)
            for a in w.aggregates:
                self.aggregates[(a.activity_id, a.user_id, a.context_id)] = a.completed_count

    def delete_markers(self, keys: Sequence[Key]) -> None:
        self.log.append(f"delete_markers {len(keys)}")
        for k in keys:
            self.markers.pop(k, None)

    def store_checksums(self, checksums: Iterable[str]) -> None:
        self.log.append("store_checksums")
        self.dedup.update(checksums)

    def close(self) -> None:
        return None


@pytest.fixture
def settings() -> Settings:
    s = load_settings()
    return s.with_overrides(topics=s.topics.model_copy(update={"env": "unit-act"}))


def _relation(name: str = "botany") -> dict[str, list[str]]:
    return json.loads((AX / "relation_cache" / f"{name}.json").read_text())  # type: ignore[no-any-return]


def _events(*names: str) -> list[bytes]:
    return [(AX / "events" / f"{n}.json").read_bytes().strip() for n in names]


def _run(settings: Settings, store: MemoryStore, payloads: list[bytes]) -> LoggingOutbox:
    outbox = LoggingOutbox(store.log, store.mids)
    run(SPEC, settings, ActivityLogic(settings, store), payloads, outbox=outbox)
    return outbox


def _topics(settings: Settings) -> tuple[str, str, str]:
    t = settings.topics
    return (
        t.full(t.telemetry_raw),
        t.full(t.issue_certificate_request),
        SPEC.failed_topic_name(settings),
    )


def _audits(outbox: MemoryOutbox, topic: str) -> list[tuple[str, str]]:
    return sorted((a["edata"]["type"], a["object"]["id"]) for a in outbox.on(topic))


def test_t_a1_completes_once_sends_certificate_and_audit_and_clears_the_marker(
    settings: Settings,
) -> None:
    audit, cert, failed = _topics(settings)
    store = MemoryStore(_relation())
    outbox = _run(settings, store, _events(*T_A1))

    assert store.consumption_rows[MAYA] == {
        SEEDS: rules.StoredContent(2, 2, 1), ROOTS: rules.StoredContent(2, 3, 1),
        LEAVES: rules.StoredContent(2, 2, 1), FLOWERS: rules.StoredContent(2, 3, 0),
    }  # fmt: skip
    ctx = f"cb:{MAYA[2]}"
    assert store.aggregates == {
        (MAYA[1], MAYA[0], ctx): 4.0, (GROWTH, MAYA[0], ctx): 2.0, (PLANTS, MAYA[0], ctx): 2.0,
    }  # fmt: skip
    enrol = store.enrolment_rows[MAYA]
    assert (enrol["status"], enrol["progress"]) == (2, 4)
    assert enrol["contentstatus"] == {SEEDS: 2, ROOTS: 2, LEAVES: 2, FLOWERS: 2}
    certs = outbox.on(cert)
    assert len(certs) == 1
    assert certs[0]["edata"]["userIds"] == [MAYA[0]]
    assert certs[0]["mid"] == rules.certificate_mid(MAYA, enrol["completedon"])
    assert _audits(outbox, audit) == [
        ("complete", LEAVES), ("complete", ROOTS), ("complete", SEEDS),
        ("enrol-complete", MAYA[0]),
    ]  # fmt: skip
    assert store.markers == {}  # the pending-certificate marker is cleared
    assert store.ledger == {MAYA: {f"{SPEC.input_topic_name(settings)}:0": 2}}
    assert store.dedup == {KEY_SEEDS, KEY_ROOTS, KEY_LEAVES}
    assert outbox.on(failed) == []


def test_side_effects_keep_the_crash_safe_order(settings: Settings) -> None:
    """Audits, then the logged batches (with the completing record), then the certificate
    request and enrol-complete AUDIT, then the dedup keys (no marker delete)."""
    store = MemoryStore(_relation())
    _run(settings, store, _events(T_A1[0]))
    assert store.log == [
        "send telemetry",
        "write_enrolments",
        "send certificate,telemetry",
        "store_checksums",
    ]


def test_a_replayed_record_counts_nothing_twice_and_sends_no_second_certificate(
    settings: Settings,
) -> None:
    _audit, cert, _failed = _topics(settings)
    store = MemoryStore(_relation())
    first = _run(settings, store, _events(*T_A1))
    counted = (dict(store.consumption_rows[MAYA]), dict(store.aggregates))
    store.dedup.clear()  # the dedup TTL has expired: only the applied offsets stand guard
    again = _run(settings, store, _events(*T_A1))  # the same records (offsets 0..2) again
    assert (store.consumption_rows[MAYA], store.aggregates) == counted
    assert len(first.on(cert)) == 1 and again.on(cert) == []
    assert store.enrolment_rows[MAYA]["status"] == 2


def test_redelivery_within_the_dedup_ttl_is_counted_as_deduplicated(settings: Settings) -> None:
    store = MemoryStore(_relation())
    _run(settings, store, _events(*T_A1))
    before = metric("lernflow_events_deduplicated_total", flow=SPEC.name)
    log_before = len(store.log)
    # delivered again at new offsets (after three skipped messages): the dedup keys stop them
    outbox = _run(settings, store, _events(*["d_a3_other_action"] * 3, *T_A1[:2]))
    assert metric("lernflow_events_deduplicated_total", flow=SPEC.name) == before + 2
    assert outbox.messages == [] and store.log[log_before:] == []


def test_live_course_without_leaf_nodes_is_parked_and_writes_nothing(settings: Settings) -> None:
    _audit, _cert, failed = _topics(settings)
    store = MemoryStore({}, statuses={MAYA[1]: "Live"})
    before = dict(store.consumption_rows[MAYA])
    outbox = _run(settings, store, _events(*T_A1))
    parked = outbox.on(failed)
    assert [p["source"]["offset"] for p in parked] == [0, 1, 2]
    assert all(p["error_type"] == "MissingLeafNodes" for p in parked)
    assert all("leaf nodes are not available for a published collection: lf-course-botany"
               in p["reason"] for p in parked)  # fmt: skip
    assert len(outbox.messages) == 3  # nothing but the parked requests
    assert store.consumption_rows[MAYA] == before
    assert store.aggregates == {} and store.ledger == {} and store.dedup == set()


def test_retired_course_counts_consumption_only_and_is_skipped(settings: Settings) -> None:
    store = MemoryStore({}, statuses={MAYA[1]: "Retired"})
    before = metric(
        "lernflow_events_skipped_total", flow=SPEC.name, reason_kind="retired-collection"
    )
    outbox = _run(settings, store, _events(*T_A1))
    after = metric(
        "lernflow_events_skipped_total", flow=SPEC.name, reason_kind="retired-collection"
    )
    assert after == before + 3
    assert store.enrolment_rows[MAYA] == {"status": 1}
    assert store.aggregates == {} and store.dedup == set()
    assert store.consumption_rows[MAYA][SEEDS] == rules.StoredContent(2, 2, 1)
    assert outbox.on(_topics(settings)[1]) == []


def test_events_out_are_counted_for_the_audit_and_certificate_topics(settings: Settings) -> None:
    audit, cert, _failed = _topics(settings)
    audit_before = metric("lernflow_events_out_total", flow=SPEC.name, topic=audit)
    cert_before = metric("lernflow_events_out_total", flow=SPEC.name, topic=cert)
    _run(settings, MemoryStore(_relation()), _events(*T_A1))
    assert metric("lernflow_events_out_total", flow=SPEC.name, topic=audit) == audit_before + 4
    assert metric("lernflow_events_out_total", flow=SPEC.name, topic=cert) == cert_before + 1


def _interrupted(completed_on_ms: int) -> MemoryStore:
    """Maya's completion was written with its marker; then the process died."""
    store = MemoryStore(_relation())
    store.enrolment_rows[MAYA] = {"status": 2, "progress": 4, "completedon": completed_on_ms}
    store.markers[MAYA] = completed_on_ms
    return store


def test_a_marker_left_by_an_interrupted_run_resends_the_certificate_once(
    settings: Settings,
) -> None:
    audit, cert, _failed = _topics(settings)
    store = _interrupted(1_767_225_600_000)
    store.dedup.clear()
    outbox = _run(settings, store, _events(T_A1[0]))
    certs = outbox.on(cert)
    assert [c["mid"] for c in certs] == [rules.certificate_mid(MAYA, 1_767_225_600_000)]
    assert ("enrol-complete", MAYA[0]) in _audits(outbox, audit)
    assert store.markers == {}


def test_a_marker_whose_request_already_reached_the_topic_is_only_cleared(
    settings: Settings,
) -> None:
    _audit, cert, _failed = _topics(settings)
    store = _interrupted(1_767_225_600_000)
    store.mids.add(rules.certificate_mid(MAYA, 1_767_225_600_000))
    outbox = _run(settings, store, _events(T_A1[0]))
    assert outbox.on(cert) == []
    assert store.markers == {}
