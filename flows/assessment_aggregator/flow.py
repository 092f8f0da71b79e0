"""assessment-aggregator dataflow: wiring only (rules in ``logic``, I/O in ``processor``).

Run: ``lernflow run assessment-aggregator`` or
``python -m bytewax.run "flows.assessment_aggregator.flow:build_flow()"``.
"""

from __future__ import annotations

from bytewax.dataflow import Dataflow

from config import Settings, load_settings
from flows._runtime import kafka_input, parse_with, windowed_flow
from flows.assessment_aggregator import logic
from flows.assessment_aggregator.processor import FLOW, AssessmentProcessor, entity
from sources.options import RunOptions


def build_flow(settings: Settings | None = None, options: RunOptions | None = None) -> Dataflow:
    """Build the dataflow reading ``<env>.telemetry.assess``."""
    settings = settings or load_settings()
    source = kafka_input(FLOW, settings, options, settings.topics.telemetry_assess)
    return windowed_flow(
        FLOW,
        settings,
        source,
        parse_with(FLOW, logic.parse_assess_message, entity),
        lambda: AssessmentProcessor(settings),
        shards=settings.assessment.shards,
    )
