"""user-cache-updater, declared once for the processor shell.

Run: ``lernflow run user-cache-updater`` or
``python -m bytewax.run "flows.user_cache_updater.flow:build_flow()"``.

The parser depends on the settings (``LERNFLOW_USER_CACHE_*``: the user service's pid, the
sign-in types, the Delete states), so :meth:`UserCacheSpec.build` and :func:`configured` give
the spec the parser of the settings it runs with.
"""

from __future__ import annotations

import dataclasses
import functools

from bytewax.dataflow import Dataflow

from config import Settings, load_settings
from flows.shell import FlowSpec
from flows.user_cache_updater import rules
from flows.user_cache_updater.processor import UserCacheLogic, entity
from flows.user_cache_updater.profiles import rules_config
from flows.user_cache_updater.store import FLOW
from sources.options import RunOptions


@dataclasses.dataclass(frozen=True)
class UserCacheSpec(FlowSpec[rules.AuditUser]):
    """The flow's :class:`FlowSpec`; building it configures the parser from the settings."""

    def build(self, settings: Settings, options: RunOptions | None = None) -> Dataflow:
        return FlowSpec.build(configured(settings), settings, options)


def configured(settings: Settings) -> FlowSpec[rules.AuditUser]:
    """The spec with the parser of ``settings`` (``SPEC`` itself parses with the defaults)."""
    parse = functools.partial(rules.parse_event, cfg=rules_config(settings))
    return dataclasses.replace(SPEC, parse=parse)


SPEC: FlowSpec[rules.AuditUser] = UserCacheSpec(
    name=FLOW,
    summary="learner profile hashes in Redis (user:<id>), from user AUDIT events",
    input_topic=lambda t: t.telemetry_audit,
    failed_topic=lambda t: t.telemetry_audit_failed,
    parse=rules.parse_event,
    entity=entity,
    shards=lambda s: s.user_cache.shards,
    logic=UserCacheLogic,
)


def build_flow(settings: Settings | None = None, options: RunOptions | None = None) -> Dataflow:
    """The dataflow reading ``<env>.telemetry.audit``."""
    return SPEC.build(settings or load_settings(), options)
