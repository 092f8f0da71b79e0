"""activity-aggregate-updater, declared once for the processor shell.

Run: ``lernflow run activity-aggregate-updater`` or
``python -m bytewax.run "lernflow.flows.activity_aggregate_updater.flow:build_flow()"``.
"""

from __future__ import annotations

from bytewax.dataflow import Dataflow

from lernflow.config import Settings, load_settings
from lernflow.flows.activity_aggregate_updater import rules
from lernflow.flows.activity_aggregate_updater.processor import ActivityLogic, entity
from lernflow.flows.activity_aggregate_updater.store import FLOW
from lernflow.flows.fields import with_limits
from lernflow.flows.shell import FlowSpec
from lernflow.sources.options import RunOptions

SPEC: FlowSpec[rules.EnrolmentRequest] = FlowSpec(
    name=FLOW,
    summary="course progress, completion and the certificate trigger, from activity requests",
    input_topic=lambda t: t.course_batch_job_request,
    failed_topic=lambda t: t.activity_agg_failed,
    parse=rules.parse_request,
    parse_with_settings=with_limits(rules.parse_request),
    entity=entity,
    shards=lambda s: s.activity.shards,
    logic=ActivityLogic,
    output_topics=lambda t: (t.telemetry_raw, t.issue_certificate_request),
)


def build_flow(settings: Settings | None = None, options: RunOptions | None = None) -> Dataflow:
    """The dataflow reading ``<env>.coursebatch.job.request``."""
    return SPEC.build(settings or load_settings(), options)
