"""user-cache-updater dataflow: wiring only (rules in ``rules``, I/O in ``processor``)."""

from __future__ import annotations

from bytewax.dataflow import Dataflow

from config import Settings, load_settings
from flows._runtime import kafka_input, parse_with, windowed_flow
from flows.user_cache_updater import rules
from flows.user_cache_updater.processor import FLOW, UserCacheProcessor, entity
from flows.user_cache_updater.profiles import rules_config
from sources.options import RunOptions


def build_flow(settings: Settings | None = None, options: RunOptions | None = None) -> Dataflow:
    """Build the dataflow reading ``<env>.telemetry.audit``."""
    settings = settings or load_settings()
    cfg = rules_config(settings)
    source = kafka_input(FLOW, settings, options, settings.topics.telemetry_audit)
    return windowed_flow(
        FLOW, settings, source, parse_with(FLOW, lambda raw: rules.parse_event(raw, cfg), entity),
        lambda: UserCacheProcessor(settings), shards=settings.user_cache.shards,
    )  # fmt: skip
