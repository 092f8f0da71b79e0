"""``lernflow cert why``: why does (or would) a learner get no certificate?

Walks, for one enrolment, every rule the certificate pre-processor and generator apply, in
their order, with the data they would read — the checks Sunbird's certificate FAQ asks
operators to do by hand — and names the first one that blocks:

1. the batch has certificate templates (``course_batch.cert_templates``), each a valid
   template with an ``.svg`` url and criteria;
2. enrolment criteria (row present, active, status), not already issued under the same name;
3. assessment criteria (best score over the supported content types vs the threshold);
4. user criteria and the user's profile (``sunbird.user``);
5. course name (collection cache or published hierarchy) and completion date;
6. the generator's validation of the request it would get (issuer name and url, every
   signatory complete, criteria narrative, tag);
7. whether the user cache (Redis DB 12) has the learner — advisory only (reports need it, the
   certificate does not): shown as a note, never as the rule that blocks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from lernflow.config import Settings
from lernflow.flows.certificate_generator import rules as gen_rules
from lernflow.flows.certificate_generator.processor import gen_config
from lernflow.flows.certificate_pre_processor import rules as pre_rules
from lernflow.flows.certificate_pre_processor.plan import Candidate
from lernflow.flows.certificate_pre_processor.processor import PreProcessorLogic
from lernflow.kernel.clients import redis_client

STEP_TITLES = {
    "template-none": "certificate templates on the batch",
    "template": "template is valid",
    "enrollment": "enrolment criteria / not already issued",
    "assessment": "assessment criteria",
    "user": "user criteria",
    "user-missing": "user profile exists",
    "course": "course name",
    "date": "completion date",
}


@dataclass(frozen=True)
class Check:
    """One rule, for one template: passed (True), blocked (False) or not reached (None).

    An advisory check never blocks: when it does not pass, ``ok`` is None and ``detail`` starts
    with "advisory" and says what to do about it.
    """

    template: str
    step: str
    ok: bool | None
    detail: str


@dataclass(frozen=True)
class Explanation:
    """Every check, and the verdict."""

    checks: list[Check]
    eligible_templates: list[str]
    blocking: Check | None


ORDER = ["template", "enrollment", "assessment", "user", "course", "date", "generator"]


def explain(settings: Settings, user: str, course: str, batch: str) -> Explanation:
    """Evaluate every rule for (user, course, batch) with the live data; nothing is written."""
    logic = PreProcessorLogic(settings, flow="cert-why")
    try:
        request = pre_rules.IssueRequest(batch, course, (user,), False, None)
        decisions = logic.decide([Candidate(request, user)])[0]
    finally:
        logic.close()
    checks: list[Check] = []
    eligible: list[str] = []
    blocking: Check | None = None
    cfg = gen_config(settings)
    for d in decisions:
        name = d.template_id or "-"
        if d.rejected is not None:
            step = d.rejected.step
            stop = ORDER.index(step) if step in ORDER else 0
            for s in ORDER[:stop]:
                checks.append(Check(name, s, True, "passed"))
            check = Check(name, step, False, d.rejected.reason)
            checks.append(check)
            checks += [Check(name, s, None, "not reached") for s in ORDER[stop + 1 :]]
            if blocking is None:
                blocking = check
            continue
        assert d.event is not None
        checks += [Check(name, s, True, "passed") for s in ORDER[:-1]]
        req = gen_rules.parse_request(json.dumps(d.event).encode())
        problem = gen_rules.validate(req, cfg)
        if problem:
            check = Check(name, "generator", False, f"the generator would reject it: {problem}")
            checks.append(check)
            if blocking is None:
                blocking = check
        else:
            checks.append(Check(name, "generator", True, "the generator accepts the request"))
            eligible.append(name)
    client = redis_client(settings.redis, settings.redis.user_cache_db)
    try:
        cached = bool(client.exists(f"user:{user}"))
    finally:
        client.close()
    checks.append(user_cache_check(cached))
    if eligible:
        blocking = None
    return Explanation(checks, eligible, blocking)


def user_cache_check(cached: bool) -> Check:
    """The user cache note: passed, or advisory (``ok`` None) — it never blocks a certificate."""
    if cached:
        return Check("-", "user-cache", True, "user:<id> present in the Redis user cache")
    return Check(
        "-", "user-cache", None,
        "advisory, not a blocker: not in the Redis user cache, so reports will miss this "
        "learner (run user-cache-updater or 'lernflow user-cache rebuild --user')",
    )  # fmt: skip


def title(step: str) -> str:
    """Human title of a step."""
    return STEP_TITLES.get(
        step, {"generator": "generator validation", "user-cache": "user cache"}.get(step, step)
    )


__all__ = ["Check", "Explanation", "explain", "title", "user_cache_check"]
