"""relation-cache-updater, declared once for the processor shell.

Run: ``lernflow run relation-cache-updater`` or
``python -m bytewax.run "lernflow.flows.relation_cache_updater.flow:build_flow()"``.
"""

from __future__ import annotations

from bytewax.dataflow import Dataflow

from lernflow.config import Settings, load_settings
from lernflow.flows.fields import with_limits
from lernflow.flows.relation_cache_updater import rules
from lernflow.flows.relation_cache_updater.processor import RelationCacheLogic, entity
from lernflow.flows.relation_cache_updater.store import FLOW
from lernflow.flows.shell import FlowSpec
from lernflow.sources.options import RunOptions

SPEC: FlowSpec[rules.PublishEvent] = FlowSpec(
    name=FLOW,
    summary="course leaf nodes and ancestors in Redis, from published collections",
    input_topic=lambda t: t.content_postpublish_request,
    failed_topic=lambda t: t.content_postpublish_failed,
    parse=rules.parse_event,
    parse_with_settings=with_limits(rules.parse_event),
    entity=entity,
    shards=lambda _s: 64,
    logic=RelationCacheLogic,
)


def build_flow(settings: Settings | None = None, options: RunOptions | None = None) -> Dataflow:
    """The dataflow reading ``<env>.content.postpublish.request``."""
    return SPEC.build(settings or load_settings(), options)
