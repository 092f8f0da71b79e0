"""The pure planner of certificate-pre-processor: what a round reads, then what it decides.

A round's candidates are (request, user) pairs. The planner names the reads the templates need
(:func:`batch_keys`, :func:`learners`, :func:`content_ids`) and, once they are read into
:class:`RoundReads`, decides every (candidate, template) with :func:`rules.decide_template` and
sorts the decisions into an :class:`Outcome` (events to send, "not eligible" skips, errors to
park). No I/O here: the store reads (:mod:`flows.certificate_pre_processor.store`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lernflow.flows.certificate_pre_processor import rules


@dataclass(frozen=True)
class BatchKey:
    """A course batch: where the certificate templates are."""

    course_id: str
    batch_id: str


@dataclass(frozen=True)
class LearnerKey:
    """One user in one batch: the key of enrolment rows and activity aggregates."""

    user_id: str
    course_id: str
    batch_id: str

    @property
    def batch(self) -> BatchKey:
        return BatchKey(self.course_id, self.batch_id)


@dataclass(frozen=True)
class Candidate:
    """One (request, user) pair: the unit the pre-processor decides on."""

    request: rules.IssueRequest
    user_id: str

    @property
    def learner(self) -> LearnerKey:
        return LearnerKey(self.user_id, self.request.course_id, self.request.batch_id)


Templates = Mapping[BatchKey, list[rules.Template | rules.Rejected]]


@dataclass(frozen=True)
class RoundReads:
    """Everything a round read (absent keys = nothing stored)."""

    templates: Templates
    enrolments: Mapping[LearnerKey, dict[str, Any] | None]
    aggregates: Mapping[LearnerKey, dict[str, float]]
    content_types: Mapping[str, str | None]
    profiles: Mapping[str, dict[str, Any] | None]
    course_names: Mapping[str, str | None]


@dataclass(frozen=True)
class Outcome:
    """What to do for one candidate: send ``events``, skip ``not_eligible``, park ``errors``."""

    events: list[dict[str, Any]]
    not_eligible: list[rules.Rejected]
    errors: list[str]


def batch_keys(candidates: Sequence[Candidate]) -> list[BatchKey]:
    """The batches of the candidates, once each, in order."""
    return list(dict.fromkeys(c.learner.batch for c in candidates))


def learners(
    candidates: Sequence[Candidate],
    templates: Templates,
    needs: Callable[[rules.Template], bool],
) -> list[LearnerKey]:
    """The candidates' learners (once each) whose batch has a template that ``needs`` a read."""
    return [
        k for k in dict.fromkeys(c.learner for c in candidates)
        if any(isinstance(t, rules.Template) and needs(t) for t in templates.get(k.batch, []))
    ]  # fmt: skip


def content_ids(aggregates: Mapping[LearnerKey, Mapping[str, float]]) -> list[str]:
    """The scored contents whose types the assessment criteria need, once each."""
    return list(
        dict.fromkeys(i for agg in aggregates.values() for i in rules.assessment_content_ids(agg))
    )


def decide(
    candidate: Candidate, reads: RoundReads, cfg: rules.PreConfig, *, now_ms: int
) -> list[rules.Decision]:
    """One decision per template of the batch, or one rejection when it has none."""
    req, user, key = candidate.request, candidate.user_id, candidate.learner
    templates = reads.templates.get(key.batch) or []
    if not templates:
        reason = f"batch {req.batch_id} of course {req.course_id} has no certificate templates"
        return [rules.Decision(user, "", None, rules.Rejected("template-none", reason))]
    learner = rules.LearnerReads(
        enrolment=reads.enrolments.get(key),
        aggregates=reads.aggregates.get(key, {}),
        content_types=reads.content_types,
        profile=reads.profiles.get(user),
        course_name=reads.course_names.get(req.course_id),
    )
    return [
        rules.Decision(user, "", None, t) if isinstance(t, rules.Rejected) else
        rules.decide_template(
            req, user, t, learner, cfg,
            now_ms=now_ms, mid=rules.generate_mid(req, user, t.identifier),
        )
        for t in templates
    ]  # fmt: skip


def outcome(candidate: Candidate, decisions: Sequence[rules.Decision]) -> Outcome:
    """Sort one candidate's decisions: events, "not eligible" rejections, fatal ones as errors."""
    events: list[dict[str, Any]] = []
    not_eligible: list[rules.Rejected] = []
    errors: list[str] = []
    for d in decisions:
        if d.event is not None:
            events.append(d.event)
        elif d.rejected is not None and d.rejected.fatal:
            errors.append(
                f"user {candidate.user_id}, template {d.template_id or '-'}: {d.rejected.reason}"
            )
        elif d.rejected is not None:
            not_eligible.append(d.rejected)
    return Outcome(events, not_eligible, errors)
