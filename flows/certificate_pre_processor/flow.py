"""certificate-pre-processor dataflow: wiring only (rules in ``rules``, I/O in ``processor``)."""

from __future__ import annotations

from bytewax.dataflow import Dataflow

from config import Settings, load_settings
from flows._runtime import kafka_input, parse_with, windowed_flow
from flows.certificate_pre_processor import rules
from flows.certificate_pre_processor.processor import FLOW, PreProcessor, entity
from sources.options import RunOptions


def build_flow(settings: Settings | None = None, options: RunOptions | None = None) -> Dataflow:
    """Build the dataflow reading ``<env>.issue.certificate.request``."""
    settings = settings or load_settings()
    source = kafka_input(FLOW, settings, options, settings.topics.issue_certificate_request)
    return windowed_flow(
        FLOW, settings, source, parse_with(FLOW, rules.parse_request, entity),
        lambda: PreProcessor(settings), shards=settings.certificates.shards,
    )  # fmt: skip
