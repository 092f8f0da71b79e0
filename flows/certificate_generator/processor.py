"""I/O of certificate-generator: validate, render, sign, store, record, announce.

Per batch of generate requests:

1. validation (``rules.validate``, Sunbird's checks and messages) — a failure is parked on
   ``<env>.generate.certificate.failed`` with that message;
2. one concurrent read of the enrolments' ``issued_certificates``: a certificate of the same
   name already issued (and no re-issue) is skipped, as Sunbird does;
3. per recipient, a **stable certificate id** (``rules.certificate_id``: user, course, batch,
   name), so a retry or a replay re-creates the same certificate rather than a second one;
4. the W3C credential, signed as a JWT (``certificates.signing``), the SVG template filled and
   rendered to PDF with the JWT embedded (in a process pool: rendering is CPU work), both
   stored (``certificates.storage``);
5. ``sunbird.cert_registry`` row, AUDIT (``<env>.telemetry.raw``) and notification request
   (``<env>.certificate.notification.request``) produced and acknowledged;
6. last, ``user_enrolments.issued_certificates`` rewritten with the new entry. A crash before
   this step replays the whole request (same id, same files; the events may be sent twice);
   after it, the request is recognised as issued. Sunbird loses the notification in that case.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import certificates as template
from certificates import credential as cred
from certificates import render, signing
from certificates.model import CertificateData, Signatory
from certificates.storage import LocalStorage, Storage
from config import Settings
from flows._runtime import Item, failed_message, rounds
from flows.certificate_generator import rules
from lernflow.kernel import metrics
from lernflow.kernel.cassandra import CassandraExecutor
from lernflow.kernel.errors import TransientError
from lernflow.kernel.retry import retry
from sinks.kafka_producer import DeliveryTrackingProducer, OutMessage

logger = logging.getLogger(__name__)

FLOW = "certificate-generator"
CERT_TYPE = "lernflow-certificate"


def entity(value: rules.GenerateRequest) -> str:
    """Shard entity: one enrolment's requests in order on one worker (dedup needs it)."""
    return f"{value.user_id}_{value.course_id}_{value.batch_id}"


def gen_config(settings: Settings) -> rules.GenConfig:
    c = settings.certificates
    return rules.GenConfig(suppress_signatory_errors=c.suppress_signatory_errors, zone=c.zone)


def allowed_hosts(settings: Settings) -> tuple[str, ...]:
    return tuple(h.strip() for h in settings.certificates.template_hosts.split(",") if h.strip())


@dataclass(frozen=True)
class MakeJob:
    """Everything one certificate needs, picklable for the render pool."""

    data: CertificateData
    svg_template: str
    renderer: str
    hosts: tuple[str, ...]
    issuer_id: str
    storage_root: Path


_WORKER_KEY: signing.SigningKey | None = None  # the signing key inside a pool process


def _init_worker(key_path: str, kid: str) -> None:
    global _WORKER_KEY
    _WORKER_KEY = signing.load_signing_key(Path(key_path), kid=kid)


def make_certificate(job: MakeJob, key: signing.SigningKey | None = None) -> Issued:
    """Sign, fill, render and store one certificate (runs in a pool process)."""
    signer = key or _WORKER_KEY
    assert signer is not None, "the pool initializer loads the signing key"
    data = job.data
    issued_at = datetime.fromisoformat(data.issued_date).replace(tzinfo=UTC)
    credential = cred.build_credential(
        data, issuer_id=job.issuer_id, kid=signer.kid, issued_at=issued_at
    )
    token = signing.sign_credential(credential, signer)
    qr = template.qr_data_uri(f"{data.verify_base_url}/{data.cert_id}")
    svg = template.fill_svg(job.svg_template, template.placeholder_values(data, qr))
    pdf = render.render_pdf(svg, job.renderer, attachment=token.encode(), allowed_hosts=job.hosts)  # type: ignore[arg-type]
    storage = LocalStorage(job.storage_root)
    base = f"{data.batch_id}/{data.cert_id}"
    pdf_url = storage.put(f"{base}.pdf", pdf, "application/pdf")
    json_url = storage.put(f"{base}.jwt", token.encode(), "application/jwt")
    return Issued(data.cert_id, pdf_url, json_url, rules.access_code(data.cert_id), credential)


def signer_path(settings: Settings) -> Path:
    """The configured private key file (``LERNFLOW_CERT_SIGNING_KID``, else the newest one)."""
    c = settings.certificates
    keys = sorted(c.keys_dir.glob("*.private.pem"), key=lambda p: p.stat().st_mtime)
    if c.signing_kid:
        keys = [p for p in keys if p.name == f"{c.signing_kid}.private.pem"]
    if not keys:
        msg = (
            f"no certificate signing key in {c.keys_dir} (LERNFLOW_CERT_KEYS_DIR): run "
            "'lernflow cert keys init'"
        )
        raise RuntimeError(msg)
    return keys[-1]


@dataclass(frozen=True)
class Issued:
    """One certificate made for one recipient."""

    cert_id: str
    pdf_url: str
    json_url: str
    access_code: str
    credential: dict[str, Any]


class CertificateMaker:
    """Renders, signs and stores certificates (also used by ``lernflow cert preview``)."""

    def __init__(self, settings: Settings, storage: Storage | None = None) -> None:
        self._s = settings
        self._signer_path = signer_path(settings)
        self._signer = signing.load_signing_key(
            self._signer_path, kid=self._signer_path.name.removesuffix(".private.pem")
        )
        self._templates = template.TemplateCache(allowed_hosts=allowed_hosts(settings))
        self.storage = storage or LocalStorage(settings.certificates.storage_dir)
        self._pool: ProcessPoolExecutor | None = None

    def data(
        self, req: rules.GenerateRequest, recipient: dict[str, Any], cert_id: str
    ) -> CertificateData:
        sigs = tuple(
            Signatory(str(s.get("name") or ""), str(s.get("id") or ""),
                      str(s.get("designation") or ""), str(s.get("image") or ""))
            for s in req.signatory_list if isinstance(s, dict)
        )  # fmt: skip
        return CertificateData(
            cert_id=cert_id,
            recipient_id=str(recipient.get("recipientId") or req.user_id),
            recipient_name=str(recipient.get("recipientName") or ""),
            course_id=req.course_id,
            course_name=req.course_name,
            batch_id=req.batch_id,
            certificate_name=req.name,
            template_id=req.template_id,
            issued_date=req.issued_date or datetime.now(UTC).date().isoformat(),
            issuer_name=str(req.issuer.get("name") or ""),
            issuer_url=str(req.issuer.get("url") or ""),
            signatories=sigs,
            description=req.description,
            expiry=req.expiry,
            verify_base_url=f"{self._s.certificates.cert_domain_url}/certs",
        )

    def template(self, url: str) -> str:
        """The template text (fetched from an allowed place once, then cached)."""
        return self._templates.get(url)

    def make(self, items: list[tuple[rules.GenerateRequest, CertificateData]]) -> list[Issued]:
        """Sign, fill, render and store every certificate, in parallel processes when several."""
        c = self._s.certificates
        jobs = [
            MakeJob(data, self.template(req.svg_template), c.renderer, allowed_hosts(self._s),
                    f"{c.cert_domain_url}/certs/issuer", c.storage_dir)
            for req, data in items
        ]  # fmt: skip
        if len(jobs) < 4 or (os.cpu_count() or 1) < 2:
            return [make_certificate(j, self._signer) for j in jobs]
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=os.cpu_count() or 2,
                initializer=_init_worker,
                initargs=(str(self._signer_path), self._signer.kid),
            )
        return list(self._pool.map(make_certificate, jobs, chunksize=max(1, len(jobs) // 16)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


@dataclass(frozen=True)
class Pending:
    """A certificate to make: the request, one recipient's data, the enrolment's certificates."""

    item: Item[Any]
    req: rules.GenerateRequest
    data: CertificateData
    existing: list[dict[str, str]]


class Generator:
    """Per-worker processor of the flow."""

    def __init__(self, settings: Settings) -> None:
        self._s = settings
        self._cfg = gen_config(settings)
        self._maker = CertificateMaker(settings)
        self._cas = CassandraExecutor(settings.cassandra, settings.run, FLOW)
        self._producer = DeliveryTrackingProducer(settings.kafka, client_id=FLOW)
        t = settings.topics
        self._failed = t.full(t.generate_certificate_failed)
        self._audit = t.full(t.telemetry_raw)
        self._notify = t.full(t.certificate_notification)
        ks, sb = settings.cassandra.courses_keyspace, settings.cassandra.sunbird_keyspace
        self._q_enrolment = (
            f"SELECT issued_certificates, completedon FROM {ks}.user_enrolments "
            "WHERE userid=? AND courseid=? AND batchid=?"
        )
        self._q_update = (
            f"UPDATE {ks}.user_enrolments SET issued_certificates=? "
            "WHERE userid=? AND courseid=? AND batchid=?"
        )
        cols = (
            "id, accesscode, createdat, createdby, data, isrevoked, jsonurl, pdfurl, recipient, "
            "related, updatedat, updatedby"
        )
        self._q_registry_new = f"INSERT INTO {sb}.cert_registry ({cols}) VALUES (?, ?, ?, ?, ?, false, ?, ?, ?, ?, ?, ?) IF NOT EXISTS"
        self._q_registry_replace = f"INSERT INTO {sb}.cert_registry ({cols}) VALUES (?, ?, ?, ?, ?, false, ?, ?, ?, ?, ?, ?)"

    def process(self, items: list[Item[Any]]) -> None:
        failed: list[OutMessage] = []
        valid: list[Item[rules.GenerateRequest]] = []
        for item in items:
            if item.error:
                failed.append(failed_message(FLOW, self._failed, item, item.error, item.error_type))
                continue
            req = item.value
            assert isinstance(req, rules.GenerateRequest)
            problem = rules.validate(req, self._cfg)
            if problem:
                failed.append(failed_message(FLOW, self._failed, item, problem, "ValidationError"))
            else:
                valid.append(item)
        # one request per enrolment per round keeps the read-modify-write of issued_certificates safe
        for round_items in rounds(valid, entity):
            failed += self._round(round_items)
        if failed:
            self._producer.produce_all(failed)

    def _round(self, items: list[Item[rules.GenerateRequest]]) -> list[OutMessage]:
        failed: list[OutMessage] = []
        reqs = [i.value for i in items if i.value is not None]
        keys = [(r.user_id, r.course_id, r.batch_id) for r in reqs]
        rows = self._cas.execute_many(self._q_enrolment, keys, "user_enrolments")
        todo: list[Pending] = []
        for item, req, r in zip(items, reqs, rows, strict=True):
            existing = [dict(m) for m in (r[0].issued_certificates or [])] if r else None
            if not rules.is_not_issued(req, existing):
                metrics.EVENTS_SKIPPED.labels(FLOW, "already-issued" if r else "no-enrolment").inc()
                continue
            for recipient in req.data:
                rid = str(recipient.get("recipientId") or req.user_id)
                cert_id = rules.certificate_id(rid, req.course_id, req.batch_id, req.name)
                todo.append(
                    Pending(item, req, self._maker.data(req, recipient, cert_id), existing or [])
                )
        ok: list[Pending] = []
        parked: set[int] = set()
        for p in todo:
            try:
                # fetched once, then cached; a template host that is down is retried with backoff
                retry(
                    functools.partial(self._fetch_template, p.req.svg_template),
                    self._s.run,
                    "template fetch",
                )
            except template.TemplateError as exc:
                if id(p.item) not in parked:
                    parked.add(id(p.item))
                    failed.append(
                        failed_message(FLOW, self._failed, p.item, str(exc), "TemplateError")
                    )
                continue
            ok.append(p)
        if ok:
            made = self._maker.make([(p.req, p.data) for p in ok])
            self._record(list(zip(ok, made, strict=True)))
        return failed

    def _fetch_template(self, url: str) -> str:
        try:
            return self._maker.template(url)
        except template.TemplateError as exc:
            if exc.retryable:
                raise TransientError(str(exc)) from exc
            raise

    def _record(self, issued: list[tuple[Pending, Issued]]) -> None:
        if not issued:
            return
        now = datetime.now(UTC)
        new_rows: list[tuple[Any, ...]] = []
        replace_rows: list[tuple[Any, ...]] = []
        events: list[OutMessage] = []
        updates: list[tuple[Any, ...]] = []
        merged_by_key: dict[tuple[str, str, str], list[dict[str, str]]] = {}
        for p, cert in issued:
            req, data, existing = p.req, p.data, p.existing
            related = {"type": "course", "batchId": req.batch_id, "courseId": req.course_id}
            row = (
                cert.cert_id, cert.access_code, now, FLOW, json.dumps(cert.credential),
                cert.json_url, cert.pdf_url,
                json.dumps({"name": data.recipient_name, "id": data.recipient_id, "type": "user"}),
                json.dumps(related), now, FLOW,
            )  # fmt: skip
            (replace_rows if req.old_id else new_rows).append(row)
            key = (data.recipient_id, req.course_id, req.batch_id)
            entry = rules.issued_entry(
                req.name,
                cert.cert_id,
                cert.access_code,
                now,
                req.svg_template,
                CERT_TYPE,
                self._cfg.zone,
            )
            merged_by_key[key] = rules.merge_issued(merged_by_key.get(key, existing), entry)
            now_ms = int(now.timestamp() * 1000)
            audit = rules.audit_event(
                data.recipient_id, cert.cert_id, req.batch_id, req.course_id, now_ms=now_ms,
                mid_uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"audit:{cert.cert_id}")),
                sid=str(uuid.uuid4()), did=str(uuid.uuid4()),
            )  # fmt: skip
            events.append(
                OutMessage(self._audit, json.dumps(audit).encode(), key=data.recipient_id.encode())
            )
            note = rules.notification_request(
                user_id=data.recipient_id, course_name=req.course_name, issued_date=data.issued_date,
                first_name=data.recipient_name.split(" ")[0],
            )  # fmt: skip
            # where the certificate is, for the notifier (Sunbird's notifier reads it back itself)
            note["certificate"] = {"id": cert.cert_id, "pdfUrl": cert.pdf_url, "courseId": req.course_id,
                                   "batchId": req.batch_id, "templateId": req.template_id}  # fmt: skip
            events.append(
                OutMessage(self._notify, json.dumps(note).encode(), key=data.recipient_id.encode())
            )
        if new_rows:
            self._cas.execute_many(self._q_registry_new, new_rows, "cert_registry")
        if replace_rows:
            self._cas.execute_many(self._q_registry_replace, replace_rows, "cert_registry")
        self._producer.produce_all(events)
        for (user, course, batch), merged in merged_by_key.items():
            updates.append((merged, user, course, batch))
        self._cas.execute_many(self._q_update, updates, "issued_certificates")
        metrics.EVENTS_OUT.labels(FLOW, "certificates").inc(len(issued))

    def close(self) -> None:
        self._producer.flush()
        self._maker.close()
        self._cas.close()
