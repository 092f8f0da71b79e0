"""relation-cache-updater dataflow: wiring only (rules in ``rules``, I/O in ``processor``)."""

from __future__ import annotations

from bytewax.dataflow import Dataflow

from config import Settings, load_settings
from flows._runtime import kafka_input, parse_with, windowed_flow
from flows.relation_cache_updater import rules
from flows.relation_cache_updater.processor import FLOW, RelationCacheProcessor, entity
from sources.options import RunOptions


def build_flow(settings: Settings | None = None, options: RunOptions | None = None) -> Dataflow:
    """Build the dataflow reading ``<env>.content.postpublish.request``."""
    settings = settings or load_settings()
    source = kafka_input(FLOW, settings, options, settings.topics.content_postpublish_request)
    return windowed_flow(
        FLOW, settings, source, parse_with(FLOW, rules.parse_event, entity),
        lambda: RelationCacheProcessor(settings), shards=64,
    )  # fmt: skip
