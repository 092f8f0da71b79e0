"""One round of certificate-generator: validate, dedup, plan, make, record, announce.

The shell (:mod:`flows.shell`) parks unparseable events; per round (at most one request per
enrolment, so the read-modify-write of ``issued_certificates`` is safe):

1. validation (``rules.validate``, Sunbird's checks and messages) — a failure is parked on
   ``<env>.generate.certificate.failed`` with that message (``ValidationError``);
2. one concurrent read of the enrolments (``issued_certificates``, ``completedon``): a
   certificate of the same name already issued (and no re-issue) is skipped as
   ``already-issued``, a request without an enrolment row as ``no-enrolment``, as Sunbird does;
   a request whose dates cannot be read is parked (``CertificateDataError``);
3. per recipient, a **stable certificate id** (``rules.certificate_id``: user, course, batch,
   name), so a retry or a replay re-creates the same certificate rather than a second one;
4. the notification planned as Sunbird's notifier sends it (:func:`.plan.notification`, on the
   profiles and the batches' ``cert_templates``); a request whose notification cannot be built
   (no course batch, no ``completedon``, a broken ``notifyTemplate``) is parked before anything
   is made (``NotificationError``), so a requeue after the fix issues and notifies it;
5. the template fetched: a request whose template host is down or backed off is parked with
   ``template host unavailable: …`` (``TemplateUnavailable``: ``lernflow failed requeue
   --reason "template host unavailable"`` replays it), another template error parks it
   (``TemplateError``); the other requests go on. The W3C credential is signed as a JWT, the SVG
   template filled and rendered to PDF with the JWT embedded (in worker processes, each bounded
   in time), both stored (:mod:`.maker`); a certificate that cannot be drawn parks its request;
6. ``sunbird.cert_registry`` rows written (each credential carries its status-list index,
   allocated before making: :mod:`.revocation`), the certificates re-issues replace revoked
   (``isrevoked``, reason ``replaced by <id> (re-issue)``), then AUDIT (``<env>.telemetry.raw``) and the
   notification requests (``<env>.certificate.notification.request``) produced and acknowledged;
7. last, ``user_enrolments.issued_certificates`` rewritten with the new entry. A crash before
   this step replays the whole request (same id, same files; the events may be sent twice);
   after it, the request is recognised as issued. Sunbird loses the notification in that case.

What to make and what to record is planned by the pure :mod:`.plan` (on :mod:`.rules`).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from lernflow.config import Settings
from lernflow.flows.certificate_generator import plan, rules, stages
from lernflow.flows.certificate_generator.maker import CertificateMaker
from lernflow.flows.certificate_generator.store import CassandraGeneratorStore, GeneratorStore
from lernflow.flows.shell import Item, Round
from lernflow.sinks.kafka_producer import OutMessage

logger = logging.getLogger(__name__)

Request = rules.GenerateRequest


def entity(value: Request) -> str:
    """Shard entity: one enrolment's requests in order on one worker (dedup needs it)."""
    return f"{value.user_id}_{value.course_id}_{value.batch_id}"


def gen_config(settings: Settings) -> rules.GenConfig:
    """The settings the validation, the notification and the ``issued_certificates`` entry
    depend on."""
    c = settings.certificates
    return rules.GenConfig(
        suppress_signatory_errors=c.suppress_signatory_errors, zone=c.zone,
        issued_type=c.issued_type, cloud_base_path_placeholder=c.cloud_base_path_placeholder,
        cloud_base_url=c.cloud_base_url, sms_instance_name=c.sms_instance_name,
    )  # fmt: skip


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
        parker = stages.Parker(round_)
        valid: list[tuple[Item[Request], Request]] = []
        for item, req in round_.values():
            problem = rules.validate(req, self._cfg)
            if problem:
                parker.park(item, problem, "ValidationError")
            else:
                valid.append((item, req))
        enrolments: stages.Enrolments = {}
        todo = stages.pending(self._store, self._verify_base, round_, parker, valid, enrolments)
        todo_notified = stages.with_notification(self._store, self._cfg, parker, todo, enrolments)
        ready = stages.with_template(self._maker, parker, todo_notified)
        made = stages.make(self._maker, parker, stages.with_status(self._store, ready))
        if made:
            self._record(round_, made)

    def _record(self, round_: Round[Request], made: list[plan.Made]) -> None:
        """Registry rows, then AUDIT + notifications acknowledged, then the enrolment rewrites."""
        records = plan.records(made, datetime.now(UTC), self._cfg)
        self._store.register(records.registry)
        for outcome in self._store.revoke(records.replaced):
            if outcome.status in ("unknown", "other-recipient"):
                logger.warning(
                    "re-issue: the replaced certificate %s is not revoked (%s)",
                    outcome.cert_id, outcome.status,
                )  # fmt: skip
        round_.send([
            m for a in records.announcements
            for m in (self._message(self._audit, a.recipient_id, a.audit),
                      *(self._message(self._notify, a.recipient_id, n) for n in a.notifications))
        ])  # fmt: skip
        self._store.set_issued(records.enrolments)
        skipped: dict[str, int] = defaultdict(int)
        for m in made:
            if m.notify.skip is not None:
                skipped[m.notify.skip] += 1
        for kind, n in skipped.items():
            round_.skip(kind, n)

    @staticmethod
    def _message(topic: str, key: str, value: dict[str, Any]) -> OutMessage:
        return OutMessage(topic, json.dumps(value).encode(), key=key.encode())

    def close(self) -> None:
        self._maker.close()
        self._store.close()
