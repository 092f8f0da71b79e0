"""certificate-pre-processor, declared once for the processor shell.

Run: ``lernflow run certificate-pre-processor`` or
``python -m bytewax.run "lernflow.flows.certificate_pre_processor.flow:build_flow()"``.
"""

from __future__ import annotations

from bytewax.dataflow import Dataflow

from lernflow.config import Settings, load_settings
from lernflow.flows.certificate_pre_processor import rules
from lernflow.flows.certificate_pre_processor.processor import PreProcessorLogic, entity
from lernflow.flows.certificate_pre_processor.store import FLOW
from lernflow.flows.fields import with_limits
from lernflow.flows.shell import FlowSpec
from lernflow.sources.options import RunOptions

SPEC: FlowSpec[rules.IssueRequest] = FlowSpec(
    name=FLOW,
    summary="generate-certificate requests for the eligible learners of issue requests",
    input_topic=lambda t: t.issue_certificate_request,
    failed_topic=lambda t: t.issue_certificate_failed,
    parse=rules.parse_request,
    parse_with_settings=with_limits(rules.parse_request),
    entity=entity,
    shards=lambda s: s.certificates.shards,
    logic=PreProcessorLogic,
    output_topics=lambda t: (t.generate_certificate_request,),
)


def build_flow(settings: Settings | None = None, options: RunOptions | None = None) -> Dataflow:
    """The dataflow reading ``<env>.issue.certificate.request``."""
    return SPEC.build(settings or load_settings(), options)
