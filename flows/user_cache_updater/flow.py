"""user-cache-updater, declared once for the processor shell.

Run: ``lernflow run user-cache-updater`` or
``python -m bytewax.run "lernflow.flows.user_cache_updater.flow:build_flow()"``.

The parser depends on the settings (``LERNFLOW_USER_CACHE_*``: the user service's pid, the
sign-in types, the Delete states; ``LERNFLOW_LIMITS_*``): the spec builds it from the settings
it runs with.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from bytewax.dataflow import Dataflow

from lernflow.config import Settings, load_settings
from lernflow.flows.shell import FlowSpec
from lernflow.flows.skipped import Skipped
from lernflow.flows.user_cache_updater import rules
from lernflow.flows.user_cache_updater.processor import UserCacheLogic, entity
from lernflow.flows.user_cache_updater.profiles import rules_config
from lernflow.flows.user_cache_updater.store import FLOW
from lernflow.kernel.jsondoc import Limits
from lernflow.sources.options import RunOptions


def _parser(settings: Settings) -> Callable[[bytes], rules.AuditUser | Skipped]:
    """The parser for the run's settings (pid, sign-in types, Delete states, limits)."""
    return functools.partial(
        rules.parse_event, cfg=rules_config(settings), limits=Limits.of(settings.limits)
    )


SPEC: FlowSpec[rules.AuditUser] = FlowSpec(
    name=FLOW,
    summary="learner profile hashes in Redis (user:<id>), from user AUDIT events",
    input_topic=lambda t: t.telemetry_audit,
    failed_topic=lambda t: t.telemetry_audit_failed,
    parse=rules.parse_event,
    parse_with_settings=_parser,
    entity=entity,
    shards=lambda s: s.user_cache.shards,
    logic=UserCacheLogic,
)


def build_flow(settings: Settings | None = None, options: RunOptions | None = None) -> Dataflow:
    """The dataflow reading ``<env>.telemetry.audit``."""
    return SPEC.build(settings or load_settings(), options)
