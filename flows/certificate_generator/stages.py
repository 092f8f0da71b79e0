"""The steps of a certificate-generator round before anything is recorded (docs/flows/
certificate-generator.md): which certificates to make, their notifications, their templates,
and making them. Each step parks the requests it cannot carry on with (at most once each,
through :class:`Parker`) and hands the rest to the next; :mod:`.processor` runs them in order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from lernflow.certificates.fetch import TemplateUnavailable
from lernflow.certificates.model import CertificateData
from lernflow.certificates.sanitize import TemplateError
from lernflow.flows.certificate_generator import plan, rules
from lernflow.flows.certificate_generator.maker import CertificateMaker, MakeFailed, ToMake
from lernflow.flows.certificate_generator.store import GeneratorStore
from lernflow.flows.shell import Item, Round

Request = rules.GenerateRequest


@dataclass(frozen=True)
class Pending:
    """A certificate to make: its request's item and request, the data, the enrolment's list."""

    item: Item[Request]
    req: Request
    data: CertificateData
    issued: plan.IssuedCertificates


Enrolments = dict[plan.EnrolmentKey, plan.Enrolment | None]


@dataclass(frozen=True)
class Ready:
    """A certificate whose notification is planned and whose template is read."""

    pending: Pending
    notify: plan.NotifyPlan
    template: str


class Parker:
    """Parks a round's requests, each at most once; later steps leave parked requests out."""

    def __init__(self, round_: Round[Request]) -> None:
        self._round = round_
        self._parked: set[int] = set()

    def park(self, item: Item[Request], reason: str, error_type: str) -> None:
        if id(item) not in self._parked:
            self._parked.add(id(item))
            self._round.park(item, reason, error_type)

    def parked(self, item: Item[Request]) -> bool:
        return id(item) in self._parked


def pending(
    store: GeneratorStore,
    verify_base: str,
    round_: Round[Request],
    parker: Parker,
    valid: list[tuple[Item[Request], Request]],
    enrolments: Enrolments,
) -> list[Pending]:
    """Read the enrolments (into ``enrolments``), skip what is issued, plan the
    certificates of the rest."""
    if not valid:
        return []
    enrolments.update(store.read_enrolments([plan.enrolment_of(req) for _i, req in valid]))
    today = datetime.now(UTC).date().isoformat()
    todo: list[Pending] = []
    for item, req in valid:
        row = enrolments[plan.enrolment_of(req)]
        held = row.issued if row is not None else None
        decision = plan.to_make(req, held, verify_base, today)
        if decision.skip is not None:
            round_.skip(decision.skip)
        elif decision.problem is not None:
            parker.park(item, decision.problem, "CertificateDataError")
        todo += [Pending(item, req, data, held or []) for data in decision.certificates]
    return todo


def with_notification(
    store: GeneratorStore,
    cfg: rules.GenConfig,
    parker: Parker,
    todo: list[Pending],
    enrolments: Enrolments,
) -> list[tuple[Pending, plan.NotifyPlan]]:
    """Plan each certificate's notification; a request whose notification cannot be built
    is parked (nothing of it is made). The recipients' enrolments not read yet are read."""
    if not todo:
        return []
    keys = [plan.EnrolmentKey(p.data.recipient_id, p.req.course_id, p.req.batch_id)
            for p in todo]  # fmt: skip
    unread = [k for k in dict.fromkeys(keys) if k not in enrolments]
    if unread:
        enrolments.update(store.read_enrolments(unread))
    profiles = store.profiles([p.data.recipient_id for p in todo])
    batches = store.cert_templates([plan.BatchKey(p.req.course_id, p.req.batch_id) for p in todo])
    planned: list[tuple[Pending, plan.NotifyPlan]] = []
    for p, key in zip(todo, keys, strict=True):
        row = enrolments[key]
        inputs = plan.NotifyInputs(
            profiles[p.data.recipient_id],
            batches[plan.BatchKey(p.req.course_id, p.req.batch_id)],
            row.completed_on if row is not None else None,
        )
        note = plan.notification(p.req, p.data, inputs, cfg)
        if note.problem is not None:
            parker.park(p.item, note.problem, "NotificationError")
        planned.append((p, note))
    return [(p, n) for p, n in planned if not parker.parked(p.item)]


def with_template(
    maker: CertificateMaker, parker: Parker, todo: list[tuple[Pending, plan.NotifyPlan]]
) -> list[Ready]:
    """The certificates whose template is readable; a request whose template is not is
    parked (a host that is down: ``TemplateUnavailable``, to be requeued later)."""
    ready: list[Ready] = []
    for p, note in todo:
        if parker.parked(p.item):
            continue
        try:
            text = maker.template(p.req.svg_template)
        except TemplateUnavailable as exc:
            parker.park(p.item, str(exc), "TemplateUnavailable")
            continue
        except TemplateError as exc:
            parker.park(p.item, str(exc), "TemplateError")
            continue
        ready.append(Ready(p, note, text))
    return [r for r in ready if not parker.parked(r.pending.item)]


def with_status(store: GeneratorStore, ready: list[Ready]) -> list[Ready]:
    """Each certificate with its status-list index (kept from its registry row on a replay,
    else newly allocated): its bit in the revocation list."""
    if not ready:
        return []
    indexes = store.status_indexes([r.pending.data.cert_id for r in ready])
    return [
        replace(r, pending=replace(r.pending, data=replace(
            r.pending.data, status_index=indexes[r.pending.data.cert_id])))
        for r in ready
    ]  # fmt: skip


def make(maker: CertificateMaker, parker: Parker, ready: list[Ready]) -> list[plan.Made]:
    """Make the certificates; a request with one that cannot be made is parked, whole."""
    if not ready:
        return []
    results = maker.make([ToMake(r.pending.data, r.template) for r in ready])
    made: list[tuple[Item[Request], plan.Made]] = []
    for r, result in zip(ready, results, strict=True):
        p = r.pending
        if isinstance(result, MakeFailed):
            parker.park(p.item, result.reason, result.error_type)
        else:
            made.append((p.item, plan.Made(p.req, p.data, p.issued, result, r.notify)))
    return [m for item, m in made if not parker.parked(item)]
