"""Conformance: relation-cache-updater rules against Sunbird's own test files.

The same cases with the project's own data: ``tests/unit/test_relation_cache_rules.py``.
"""

from __future__ import annotations

import json

from lernflow.flows.relation_cache_updater import rules
from tests.conformance.conftest import SUNBIRD_FIXTURES

FX = SUNBIRD_FIXTURES / "relation-cache"
ROOTS = ["do_11305855864948326411234", "KP_FT_1594149835504"]


def _writes() -> tuple[dict[str, set[str]], dict[str, str]]:
    sets: dict[str, set[str]] = {}
    strings: dict[str, str] = {}
    for root in ROOTS:
        tree = rules.parse_hierarchy((FX / f"hierarchy.{root}.json").read_text())
        assert tree is not None
        w = rules.plan(root, tree)
        sets.update({k: set(v) for k, v in w.sets.items()})
        strings.update(w.strings)
    return sets, strings


def test_db10_sets_equal_the_expected_state_after_both_upstream_events():
    expected = json.loads((FX / "expected_redis.derived.json").read_text())
    sets, _ = _writes()
    assert sets == {k: set(v) for k, v in expected["db10_sets"].items()}


def test_db5_unit_strings_equal_the_expected_bytes():
    expected = json.loads((FX / "expected_redis.derived.json").read_text())
    _, strings = _writes()
    assert strings == expected["db5_strings"]
    assert "do_11305855864948326411234" not in strings  # the root (Default visibility)


def test_upstream_events_pass_the_filter():
    for name in ("EVENT_1", "EVENT_2"):
        assert isinstance(rules.parse_event((FX / f"{name}.json").read_bytes()), rules.PublishEvent)
