"""I/O of certificate-pre-processor: batched reads around ``rules``, generate events out.

For a batch of issue requests (every ``userIds`` entry is one candidate) it reads, each in one
concurrent round: the batches' ``cert_templates``, the candidates' ``user_enrolments`` rows,
their ``user_activity_agg`` scores (only where a template has assessment criteria), the
content types of the scored contents (Redis content cache, DB 5), the profiles (the
``sunbird`` user tables, mapped to the user-read API's shape), and the course names (Redis
collection cache, DB 0, else the published hierarchy). Then ``rules`` decides per
(candidate, template): a generate event, a skip (not eligible: recorded as a metric and in
``lernflow cert why``), or a failure with its reason (parked on ``<env>.issue.certificate.failed``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from config import Settings
from flows._runtime import Item, failed_message
from flows.certificate_pre_processor import rules
from flows.skipped import Skipped
from lernflow.kernel import metrics
from lernflow.kernel.cassandra import CassandraExecutor
from lernflow.kernel.redis_batch import RedisBatch
from sinks.kafka_producer import DeliveryTrackingProducer, OutMessage
from sources.sunbird_users import SunbirdUserTables

logger = logging.getLogger(__name__)

FLOW = "certificate-pre-processor"


def entity(value: rules.IssueRequest | Skipped) -> str:
    """Shard entity: one batch's requests are decided on one worker, in order."""
    if isinstance(value, rules.IssueRequest):
        return f"{value.course_id}_{value.batch_id}"
    return ""


def pre_config(settings: Settings) -> rules.PreConfig:
    """The pure rules' configuration from ``LERNFLOW_CERT_*``."""
    c = settings.certificates
    return rules.PreConfig(
        supported_content_types=tuple(
            t.strip() for t in c.supported_content_types.split(",") if t.strip()
        ),
        suppress_missing_metadata=c.suppress_missing_metadata,
        cert_domain_url=c.cert_domain_url,
        zone=c.zone,
    )


@dataclass(frozen=True)
class Candidate:
    """One (request, user) pair: the unit the pre-processor decides on."""

    request: rules.IssueRequest
    user_id: str


class CertificateInputs:
    """Every read the pre-processor (and ``lernflow cert why``) needs, batched."""

    def __init__(self, settings: Settings, flow: str) -> None:
        self._s = settings
        self._cas = CassandraExecutor(settings.cassandra, settings.run, flow)
        self._users = SunbirdUserTables(settings, flow, executor=self._cas)
        self._content = RedisBatch(
            settings.redis, settings.redis.content_cache_db, settings.run, flow
        )
        self._collections = RedisBatch(
            settings.redis, settings.redis.collection_cache_db, settings.run, flow
        )
        ks = settings.cassandra.courses_keyspace
        self._q_templates = (
            f"SELECT cert_templates FROM {ks}.course_batch WHERE courseid=? AND batchid=?"
        )
        self._q_enrolment = (
            f"SELECT * FROM {ks}.user_enrolments WHERE userid=? AND courseid=? AND batchid=?"
        )
        self._q_scores = (
            f"SELECT aggregates, agg FROM {ks}.user_activity_agg WHERE activity_type='Course' "
            "AND activity_id=? AND user_id=? AND context_id=?"
        )
        self._q_hierarchy = (
            f"SELECT hierarchy FROM {settings.cassandra.hierarchy_keyspace}.content_hierarchy "
            "WHERE identifier=?"
        )

    def templates(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        """``cert_templates`` per (course, batch) (None when the batch row is absent)."""
        rows = self._cas.execute_many(self._q_templates, list(keys), "course_batch")
        return {k: (r[0].cert_templates if r else None) for k, r in zip(keys, rows, strict=True)}

    def enrolments(self, keys: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str, str], Any]:
        """``user_enrolments`` rows as dicts per (user, course, batch)."""
        rows = self._cas.execute_many(self._q_enrolment, list(keys), "user_enrolments")
        return {k: (_row(r[0]) if r else None) for k, r in zip(keys, rows, strict=True)}

    def scores(
        self, keys: Sequence[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], dict[str, float]]:
        """The merged ``agg`` then ``aggregates`` maps per (user, course, batch)."""
        params = [(course, user, f"cb:{batch}") for user, course, batch in keys]
        rows = self._cas.execute_many(self._q_scores, params, "user_activity_agg")
        out: dict[tuple[str, str, str], dict[str, float]] = {}
        for k, r in zip(keys, rows, strict=True):
            merged: dict[str, float] = {}
            if r:
                merged.update({a: float(v) for a, v in (r[0].agg or {}).items()})
                merged.update(dict(r[0].aggregates or {}))
            out[k] = merged
        return out

    def content_types(self, ids: Sequence[str]) -> dict[str, str | None]:
        """Content types from the content cache (DB 5); None where it has nothing."""
        ids = list(dict.fromkeys(ids))
        texts = self._content.pipeline(lambda p: [p.get(i) for i in ids], "content cache")
        out: dict[str, str | None] = {}
        for i, text in zip(ids, texts, strict=True):
            meta = rules.normalise_content_metadata(text) if text else {}
            value = meta.get("contenttype")
            out[i] = str(value) if value else None
        return out

    def profiles(self, user_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """User profiles in the user-read API's shape, from the ``sunbird`` user tables."""
        return self._users.responses(user_ids)

    def course_names(self, course_ids: Sequence[str]) -> dict[str, str | None]:
        """Course names: collection cache (DB 0) ``name``, else the published hierarchy."""
        ids = list(dict.fromkeys(course_ids))
        cached = self._collections.pipeline(lambda p: [p.get(i) for i in ids], "collection cache")
        out: dict[str, str | None] = {}
        missing = []
        for i, text in zip(ids, cached, strict=True):
            name = _json_name(text)
            out[i] = name
            if name is None:
                missing.append(i)
        if missing:
            rows = self._cas.execute_many(self._q_hierarchy, [(i,) for i in missing], "hierarchy")
            for i, r in zip(missing, rows, strict=True):
                out[i] = _json_name(r[0].hierarchy) if r else None
        return out

    def close(self) -> None:
        self._content.close()
        self._collections.close()
        self._cas.close()


def _row(row: Any) -> dict[str, Any]:
    d: dict[str, Any] = row._asdict()
    if d.get("issued_certificates") is not None:
        d["issued_certificates"] = [dict(m) for m in d["issued_certificates"]]
    return d


def _json_name(text: str | None) -> str | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    name = value.get("name") if isinstance(value, dict) else None
    return name if isinstance(name, str) else None


class PreProcessorCore:
    """Decides every (candidate, template) of a batch; shared by the flow and ``cert why``."""

    def __init__(self, settings: Settings, flow: str = FLOW) -> None:
        self._cfg = pre_config(settings)
        self.inputs = CertificateInputs(settings, flow)

    def decide(self, candidates: Sequence[Candidate]) -> list[list[rules.Decision]]:
        """One list of decisions (one per template, or one rejection) per candidate."""
        batches = list(dict.fromkeys((c.request.course_id, c.request.batch_id) for c in candidates))
        stored = self.inputs.templates(batches)
        parsed = {k: rules.templates(v, batch_id=k[1]) for k, v in stored.items()}
        keys = [(c.user_id, c.request.course_id, c.request.batch_id) for c in candidates]
        enrolments = self.inputs.enrolments(list(dict.fromkeys(keys)))
        scored = [
            k for k in dict.fromkeys(keys)
            if any(isinstance(t, rules.Template) and t.criteria.get("assessment")
                   for t in parsed[(k[1], k[2])])
        ]  # fmt: skip
        scores = self.inputs.scores(scored)
        content_ids = [i for k in scored for i in rules.assessment_content_ids(scores[k])]
        types = self.inputs.content_types(content_ids) if content_ids else {}
        profiles = self.inputs.profiles(list(dict.fromkeys(c.user_id for c in candidates)))
        courses = self.inputs.course_names(
            list(dict.fromkeys(c.request.course_id for c in candidates))
        )
        out = []
        for cand, key in zip(candidates, keys, strict=True):
            out.append(
                self._decide_one(
                    cand, parsed[(key[1], key[2])], enrolments.get(key), scores.get(key, {}),
                    types, profiles.get(cand.user_id), courses.get(cand.request.course_id),
                )
            )  # fmt: skip
        return out

    def _decide_one(
        self,
        cand: Candidate,
        templates: list[rules.Template | rules.Rejected],
        enrolment: dict[str, Any] | None,
        scores: dict[str, float],
        types: dict[str, str | None],
        profile: dict[str, Any] | None,
        course: str | None,
    ) -> list[rules.Decision]:
        req, user = cand.request, cand.user_id
        if not templates:
            reason = f"batch {req.batch_id} of course {req.course_id} has no certificate templates"
            return [rules.Decision(user, "", None, rules.Rejected("template-none", reason))]
        decisions = []
        for t in templates:
            if isinstance(t, rules.Rejected):
                decisions.append(rules.Decision(user, "", None, t))
                continue
            decisions.append(
                self._template(req, user, t, enrolment, scores, types, profile, course)
            )
        return decisions

    def _template(
        self,
        req: rules.IssueRequest,
        user: str,
        t: rules.Template,
        enrolment: dict[str, Any] | None,
        scores: dict[str, float],
        types: dict[str, str | None],
        profile: dict[str, Any] | None,
        course: str | None,
    ) -> rules.Decision:
        def no(r: rules.Rejected) -> rules.Decision:
            return rules.Decision(user, t.identifier, None, r)

        outcome = rules.check_enrolment(t, enrolment, req.re_issue)
        if isinstance(outcome, rules.Rejected):
            return no(outcome)
        score_map = rules.check_assessment(t, scores, types, self._cfg)
        if isinstance(score_map, rules.Rejected):
            return no(score_map)
        rejected = rules.check_user(t, profile)
        if rejected is not None:
            return no(rejected)
        assert profile is not None
        if course is None:
            reason = f"course {req.course_id} has no name in the collection cache or a published hierarchy"
            return no(rules.Rejected("course", reason, fatal=True))
        return rules.build_decision(
            req, user, t, outcome, score_map, profile, course, self._cfg,
            now_ms=int(time.time() * 1000), mid=rules.generate_mid(req, user, t.identifier),
        )  # fmt: skip

    def close(self) -> None:
        self.inputs.close()


class PreProcessor:
    """Per-worker processor of the flow."""

    def __init__(self, settings: Settings) -> None:
        self._core = PreProcessorCore(settings)
        self._producer = DeliveryTrackingProducer(settings.kafka, client_id=FLOW)
        t = settings.topics
        self._out = t.full(t.generate_certificate_request)
        self._failed = t.full(t.issue_certificate_failed)

    def process(self, items: list[Item[Any]]) -> None:
        out: list[OutMessage] = []
        cands: list[tuple[Item[Any], Candidate]] = []
        for item in items:
            if item.error:
                out.append(failed_message(FLOW, self._failed, item, item.error, item.error_type))
            elif isinstance(item.value, Skipped):
                metrics.EVENTS_SKIPPED.labels(FLOW, item.value.kind).inc()
            elif isinstance(item.value, rules.IssueRequest):
                cands += [(item, Candidate(item.value, u)) for u in item.value.user_ids]
        decisions = self._core.decide([c for _i, c in cands]) if cands else []
        for (item, cand), per_template in zip(cands, decisions, strict=True):
            errors = []
            for d in per_template:
                if d.event is not None:
                    out.append(OutMessage(self._out, json.dumps(d.event).encode()))
                elif d.rejected is not None:
                    kind = d.rejected.step
                    if is_error(d.rejected):
                        errors.append(
                            f"user {cand.user_id}, template {d.template_id or '-'}: {d.rejected.reason}"
                        )
                    else:
                        metrics.EVENTS_SKIPPED.labels(FLOW, f"not-eligible-{kind}").inc()
                        logger.debug("not eligible: %s %s", cand.user_id, d.rejected.reason)
            if errors:
                out.append(failed_message(FLOW, self._failed, item, "; ".join(errors), "Rejected"))
        if out:
            self._producer.produce_all(out)

    def close(self) -> None:
        self._producer.flush()
        self._core.close()


def is_error(rejected: rules.Rejected) -> bool:
    """Whether a rejection is an error to park (vs. a learner who is not eligible)."""
    return rejected.fatal
