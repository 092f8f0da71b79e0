"""One round of certificate-generator: validate, dedup, make, record, announce.

The shell (:mod:`flows.shell`) parks unparseable events; per round (at most one request per
enrolment, so the read-modify-write of ``issued_certificates`` is safe):

1. validation (``rules.validate``, Sunbird's checks and messages) — a failure is parked on
   ``<env>.generate.certificate.failed`` with that message (``ValidationError``);
2. one concurrent read of the enrolments' ``issued_certificates`` (the store): a certificate of
   the same name already issued (and no re-issue) is skipped as ``already-issued``, a request
   without an enrolment row as ``no-enrolment``, as Sunbird does;
3. per recipient, a **stable certificate id** (``rules.certificate_id``: user, course, batch,
   name), so a retry or a replay re-creates the same certificate rather than a second one;
4. the template fetched (a ``TemplateError`` parks the request); the W3C credential, signed as
   a JWT, the SVG template filled and rendered to PDF with the JWT embedded (in a process pool:
   rendering is CPU work), both stored (:mod:`.maker`);
5. ``sunbird.cert_registry`` rows written, then AUDIT (``<env>.telemetry.raw``) and
   notification request (``<env>.certificate.notification.request``) produced and acknowledged;
6. last, ``user_enrolments.issued_certificates`` rewritten with the new entry. A crash before
   this step replays the whole request (same id, same files; the events may be sent twice);
   after it, the request is recognised as issued. Sunbird loses the notification in that case.

What to make and what to record is planned by the pure :mod:`.plan` (on :mod:`.rules`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from certificates import TemplateError
from certificates.model import CertificateData
from config import Settings
from flows.certificate_generator import plan, rules
from flows.certificate_generator.maker import CertificateMaker
from flows.certificate_generator.store import CassandraGeneratorStore, GeneratorStore
from flows.shell import Item, Round
from sinks.kafka_producer import OutMessage

Request = rules.GenerateRequest


def entity(value: Request) -> str:
    """Shard entity: one enrolment's requests in order on one worker (dedup needs it)."""
    return f"{value.user_id}_{value.course_id}_{value.batch_id}"


def gen_config(settings: Settings) -> rules.GenConfig:
    """The settings the validation and the ``issued_certificates`` entry depend on."""
    c = settings.certificates
    return rules.GenConfig(suppress_signatory_errors=c.suppress_signatory_errors, zone=c.zone)


@dataclass(frozen=True)
class Pending:
    """A certificate to make: its request's item and request, the data, the enrolment's list."""

    item: Item[Request]
    req: Request
    data: CertificateData
    issued: plan.IssuedCertificates


class GeneratorLogic:
    """The flow's logic for the processor shell (store and maker injectable for tests)."""

    def __init__(
        self,
        settings: Settings,
        store: GeneratorStore | None = None,
        maker: CertificateMaker | None = None,
    ) -> None:
        self._cfg = gen_config(settings)
        self._maker = maker or CertificateMaker(settings)
        self._store: GeneratorStore = store or CassandraGeneratorStore(settings)
        self._verify_base = f"{settings.certificates.cert_domain_url}/certs"
        t = settings.topics
        self._audit, self._notify = t.full(t.telemetry_raw), t.full(t.certificate_notification)

    def round_key(self, value: Request) -> object:
        return entity(value)

    def run_round(self, round_: Round[Request]) -> None:
        valid: list[tuple[Item[Request], Request]] = []
        for item, req in round_.values():
            problem = rules.validate(req, self._cfg)
            if problem:
                round_.park(item, problem, "ValidationError")
            else:
                valid.append((item, req))
        ready = self._with_template(round_, self._pending(round_, valid))
        if ready:
            made = self._maker.make([(p.data, p.req.svg_template) for p in ready])
            self._record(round_, [
                plan.Made(p.req, p.data, p.issued, cert)
                for p, cert in zip(ready, made, strict=True)
            ])  # fmt: skip

    def _pending(
        self, round_: Round[Request], valid: list[tuple[Item[Request], Request]]
    ) -> list[Pending]:
        """Read the enrolments, skip what is issued, plan the certificates of the rest."""
        if not valid:
            return []
        issued = self._store.issued([plan.enrolment_of(req) for _i, req in valid])
        today = datetime.now(UTC).date().isoformat()
        todo: list[Pending] = []
        for item, req in valid:
            held = issued[plan.enrolment_of(req)]
            decision = plan.to_make(req, held, self._verify_base, today)
            if decision.skip is not None:
                round_.skip(decision.skip)
            todo += [Pending(item, req, data, held or []) for data in decision.certificates]
        return todo

    def _with_template(self, round_: Round[Request], todo: list[Pending]) -> list[Pending]:
        """The certificates whose template is readable; a request whose template is not is parked."""
        ready: list[Pending] = []
        parked: set[int] = set()
        for p in todo:
            try:
                self._maker.template(p.req.svg_template)
            except TemplateError as exc:
                if id(p.item) not in parked:
                    parked.add(id(p.item))
                    round_.park(p.item, str(exc), "TemplateError")
                continue
            ready.append(p)
        return ready

    def _record(self, round_: Round[Request], made: list[plan.Made]) -> None:
        """Registry rows, then AUDIT + notification acknowledged, then the enrolment rewrites."""
        records = plan.records(made, datetime.now(UTC), self._cfg.zone)
        self._store.register(records.registry)
        round_.send([
            m for a in records.announcements
            for m in (self._message(self._audit, a.recipient_id, a.audit),
                      self._message(self._notify, a.recipient_id, a.notification))
        ])  # fmt: skip
        self._store.set_issued(records.enrolments)

    @staticmethod
    def _message(topic: str, key: str, value: dict[str, Any]) -> OutMessage:
        return OutMessage(topic, json.dumps(value).encode(), key=key.encode())

    def close(self) -> None:
        self._maker.close()
        self._store.close()
