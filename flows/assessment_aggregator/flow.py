"""assessment-aggregator, declared once for the processor shell.

Run: ``lernflow run assessment-aggregator`` or
``python -m bytewax.run "lernflow.flows.assessment_aggregator.flow:build_flow()"``.
"""

from __future__ import annotations

from bytewax.dataflow import Dataflow

from lernflow.config import Settings, load_settings
from lernflow.flows.assessment_aggregator.events import parse_assess_message
from lernflow.flows.assessment_aggregator.logic import Event
from lernflow.flows.assessment_aggregator.processor import AssessmentLogic, entity
from lernflow.flows.assessment_aggregator.store import FLOW
from lernflow.flows.fields import with_limits
from lernflow.flows.shell import FlowSpec
from lernflow.sources.options import RunOptions

SPEC: FlowSpec[Event] = FlowSpec(
    name=FLOW,
    summary="assessment scores, best-score aggregates and certificate requests",
    input_topic=lambda t: t.telemetry_assess,
    failed_topic=lambda t: t.telemetry_assess_failed,
    parse=parse_assess_message,
    parse_with_settings=with_limits(parse_assess_message),
    entity=entity,
    shards=lambda s: s.assessment.shards,
    logic=AssessmentLogic,
    output_topics=lambda t: (t.issue_certificate_request,),
)


def build_flow(settings: Settings | None = None, options: RunOptions | None = None) -> Dataflow:
    """The dataflow reading ``<env>.telemetry.assess``."""
    return SPEC.build(settings or load_settings(), options)
