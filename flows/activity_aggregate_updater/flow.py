"""activity-aggregate-updater dataflow: wiring only (rules in ``rules``, I/O in ``processor``).

Run: ``lernflow run activity-aggregate-updater`` or
``python -m bytewax.run "flows.activity_aggregate_updater:build_flow()"``.
"""

from __future__ import annotations

from bytewax.dataflow import Dataflow

from config import Settings, load_settings
from flows._runtime import kafka_input, parse_with, windowed_flow
from flows.activity_aggregate_updater import rules
from flows.activity_aggregate_updater.processor import ActivityProcessor, entity
from flows.activity_aggregate_updater.store import FLOW
from sources.options import RunOptions


def build_flow(settings: Settings | None = None, options: RunOptions | None = None) -> Dataflow:
    """Build the dataflow reading ``<env>.coursebatch.job.request``."""
    settings = settings or load_settings()
    source = kafka_input(FLOW, settings, options, settings.topics.course_batch_job_request)
    return windowed_flow(
        FLOW,
        settings,
        source,
        parse_with(FLOW, rules.parse_request, entity),
        lambda: ActivityProcessor(settings),
        shards=settings.activity.shards,
    )
