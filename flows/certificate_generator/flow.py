"""certificate-generator, declared once for the processor shell.

Run: ``lernflow run certificate-generator`` or
``python -m bytewax.run "lernflow.flows.certificate_generator.flow:build_flow()"``.
"""

from __future__ import annotations

from bytewax.dataflow import Dataflow

from lernflow.config import Settings, load_settings
from lernflow.flows.certificate_generator import rules
from lernflow.flows.certificate_generator.plan import FLOW
from lernflow.flows.certificate_generator.processor import GeneratorLogic, entity
from lernflow.flows.fields import with_limits
from lernflow.flows.shell import FlowSpec
from lernflow.sources.options import RunOptions

SPEC: FlowSpec[rules.GenerateRequest] = FlowSpec(
    name=FLOW,
    summary="signed PDF certificates from generate requests: registry, AUDIT, notification",
    input_topic=lambda t: t.generate_certificate_request,
    failed_topic=lambda t: t.generate_certificate_failed,
    parse=rules.parse_request,
    parse_with_settings=with_limits(rules.parse_request),
    entity=entity,
    shards=lambda s: s.certificates.shards,
    logic=GeneratorLogic,
    output_topics=lambda t: (t.telemetry_raw, t.certificate_notification),
)


def build_flow(settings: Settings | None = None, options: RunOptions | None = None) -> Dataflow:
    """The dataflow reading ``<env>.generate.certificate.request``."""
    return SPEC.build(settings or load_settings(), options)
