"""One round of certificate-pre-processor: read via the store, decide with the planner, send.

The shell (:mod:`flows.shell`) parks invalid requests and counts skipped ones. Here every
``userIds`` entry of a round's requests is a candidate; the round reads what their templates
need in one concurrent request per source (:mod:`~flows.certificate_pre_processor.store`), the
pure planner (:mod:`~flows.certificate_pre_processor.plan`, :mod:`~flows.certificate_pre_processor.rules`)
decides per (candidate, template), and the round sends the generate events, counts each "not
eligible" outcome as skipped (``not-eligible-<step>``, also shown by ``lernflow cert why``) and
parks a candidate's fatal rejections on ``<env>.issue.certificate.failed`` ("Rejected").
The flow writes nothing else, so requests never wait for each other: a batch is one round.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence

from lernflow.config import Settings
from lernflow.flows.certificate_pre_processor import plan, rules
from lernflow.flows.certificate_pre_processor.store import FLOW, PreProcessorStore, ServerStore
from lernflow.flows.shell import Round
from lernflow.sinks.kafka_producer import OutMessage

logger = logging.getLogger(__name__)


def entity(value: rules.IssueRequest) -> str:
    """Shard entity: one batch's requests are decided on one worker, in order."""
    return f"{value.course_id}_{value.batch_id}"


def pre_config(settings: Settings) -> rules.PreConfig:
    """The pure rules' configuration from ``LERNFLOW_CERT_*``."""
    c = settings.certificates
    return rules.PreConfig(
        supported_content_types=tuple(
            t.strip() for t in c.supported_content_types.split(",") if t.strip()
        ),
        suppress_missing_metadata=c.suppress_missing_metadata,
        cert_domain_url=c.cert_domain_url,
        cloud_base_path_placeholder=c.cloud_base_path_placeholder,
        cloud_base_url=c.cloud_base_url,
        zone=c.zone,
    )


def read(store: PreProcessorStore, candidates: Sequence[plan.Candidate]) -> plan.RoundReads:
    """Everything the candidates' templates need, one store call per source."""
    stored = store.templates(plan.batch_keys(candidates))
    templates = {k: rules.templates(v, batch_id=k.batch_id) for k, v in stored.items()}
    aggregates = store.aggregates(plan.learners(candidates, templates, rules.needs_assessment))
    return plan.RoundReads(
        templates=templates,
        enrolments=store.enrolments(plan.learners(candidates, templates, rules.needs_enrolment)),
        aggregates=aggregates,
        content_types=store.content_types(plan.content_ids(aggregates)),
        profiles=store.profiles(list(dict.fromkeys(c.user_id for c in candidates))),
        course_names=store.course_names(
            list(dict.fromkeys(c.request.course_id for c in candidates))
        ),
    )


class PreProcessorLogic:
    """The flow's logic for the processor shell (and the decisions ``lernflow cert why`` shows)."""

    def __init__(
        self,
        settings: Settings,
        store: PreProcessorStore | None = None,
        *,
        flow: str = FLOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._cfg = pre_config(settings)
        self._store: PreProcessorStore = store or ServerStore(settings, flow)
        self._clock = clock
        self._out = settings.topics.full(settings.topics.generate_certificate_request)

    def round_key(self, value: rules.IssueRequest) -> object:
        # Nothing is written between requests, so none waits for another: one round per batch.
        return id(value)

    def decide(self, candidates: Sequence[plan.Candidate]) -> list[list[rules.Decision]]:
        """One list of decisions (one per template, or one rejection) per candidate."""
        if not candidates:
            return []
        reads = read(self._store, candidates)
        now_ms = int(self._clock() * 1000)
        return [plan.decide(c, reads, self._cfg, now_ms=now_ms) for c in candidates]

    def run_round(self, round_: Round[rules.IssueRequest]) -> None:
        pairs = [
            (item, plan.Candidate(request, user))
            for item, request in round_.values()
            for user in request.user_ids
        ]
        decisions = self.decide([c for _i, c in pairs])
        outcomes = [plan.outcome(c, d) for (_i, c), d in zip(pairs, decisions, strict=True)]
        round_.send(
            [OutMessage(self._out, json.dumps(e).encode()) for o in outcomes for e in o.events]
        )
        for (item, cand), o in zip(pairs, outcomes, strict=True):
            for rejected in o.not_eligible:
                round_.skip(f"not-eligible-{rejected.step}")
                logger.debug("not eligible: %s %s", cand.user_id, rejected.reason)
            if o.errors:
                round_.park(item, "; ".join(o.errors), "Rejected")

    def close(self) -> None:
        self._store.close()
