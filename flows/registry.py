"""Every flow, declared once: the CLI, status, replay, failed, schema and run read this list."""

from __future__ import annotations

from typing import Any

from lernflow.flows.activity_aggregate_updater.flow import SPEC as ACTIVITY
from lernflow.flows.assessment_aggregator.flow import SPEC as ASSESSMENT
from lernflow.flows.certificate_generator.flow import SPEC as GENERATOR
from lernflow.flows.certificate_pre_processor.flow import SPEC as PRE_PROCESSOR
from lernflow.flows.relation_cache_updater.flow import SPEC as RELATION_CACHE
from lernflow.flows.shell import FlowSpec
from lernflow.flows.user_cache_updater.flow import SPEC as USER_CACHE
from lernflow.kernel.errors import LernflowError

FLOWS: dict[str, FlowSpec[Any]] = {
    spec.name: spec
    for spec in (ACTIVITY, ASSESSMENT, USER_CACHE, RELATION_CACHE, PRE_PROCESSOR, GENERATOR)
}


class UnknownFlow(LernflowError, ValueError):
    """A flow name that is not one of :data:`FLOWS`."""


def spec(name: str) -> FlowSpec[Any]:
    """The flow called ``name``; :class:`UnknownFlow` lists the known names otherwise."""
    try:
        return FLOWS[name]
    except KeyError:
        msg = f"unknown flow {name!r}; known: {', '.join(sorted(FLOWS))}"
        raise UnknownFlow(msg) from None
