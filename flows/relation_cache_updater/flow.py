"""relation-cache-updater dataflow: wiring only (rules in ``rules``, I/O in ``processor``)."""

from __future__ import annotations

from bytewax.dataflow import Dataflow

from config import Settings, load_settings
from flows._runtime import parse_with, windowed_flow
from flows.relation_cache_updater import rules
from flows.relation_cache_updater.processor import FLOW, RelationCacheProcessor, entity
from lernflow.runner import RunOptions
from sources.kafka import KafkaInput


def build_flow(settings: Settings | None = None, options: RunOptions | None = None) -> Dataflow:
    """Build the dataflow reading ``<env>.content.postpublish.request``."""
    settings = settings or load_settings()
    options = options or RunOptions()
    topics = settings.topics
    source = KafkaInput(
        settings.kafka,
        [topics.full(topics.content_postpublish_request)],
        start=options.start(),
        until_caught_up=options.until_caught_up,
        end_offsets=options.end_offsets,
        commit_group=options.commit_group(settings, FLOW),
    )
    return windowed_flow(
        FLOW, settings, source, parse_with(FLOW, rules.parse_event, entity),
        lambda: RelationCacheProcessor(settings), shards=64,
    )  # fmt: skip
