"""relation-cache-updater rules reproduce the full expected Redis state of Sunbird's test."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.relation_cache_updater import rules
from lernflow.errors import InvalidEvent
from tests.conftest import FIXTURES

FX = FIXTURES / "relation-cache"
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


@pytest.mark.parametrize(
    ("edata", "kind"),
    [
        (
            {
                "action": "POST-PUBLISH-PROCESS",
                "mimeType": rules.COLLECTION_MIME,
                "identifier": "x",
            },
            "other-action",
        ),
        (
            {"action": "post-publish-process", "mimeType": "application/pdf", "identifier": "x"},
            "not-a-collection",
        ),
        (
            {
                "action": "post-publish-process",
                "mimeType": rules.COLLECTION_MIME,
                "identifier": "  ",
            },
            "no-identifier",
        ),
    ],
)
def test_non_collection_events_are_skipped(edata, kind):
    result = rules.parse_event(json.dumps({"edata": edata}))
    assert isinstance(result, rules.Skipped) and result.kind == kind


@pytest.mark.parametrize("raw", [b"{nope", b"[1]", b'{"edata": {"action": 123}}'])
def test_malformed_events_are_invalid_instead_of_crash_looping(raw):
    with pytest.raises(InvalidEvent):
        rules.parse_event(raw)


def test_empty_hierarchies_are_none_and_bad_ones_invalid():
    assert rules.parse_hierarchy(None) is None
    assert rules.parse_hierarchy("  ") is None
    assert rules.parse_hierarchy("{}") is None
    assert rules.parse_hierarchy("null") is None
    with pytest.raises(InvalidEvent):
        rules.parse_hierarchy("[1, 2]")
    assert rules.parse_hierarchy('{"name": "it\\\'s"}') == {"name": "it's"}


@st.composite
def trees(draw, depth=0):
    n = draw(st.integers(0, 3 if depth < 3 else 0))
    kids = []
    for i in range(n):
        if draw(st.booleans()) and depth < 3:
            kids.append(
                draw(trees(depth + 1)) | {"identifier": f"u{depth}{i}{draw(st.integers(0, 99))}"}
            )
        else:
            kids.append({"identifier": f"c{draw(st.integers(0, 30))}", "mimeType": "application/pdf",
                         "relationalMetadata": {"optional": draw(st.booleans())}})  # fmt: skip
    return {"mimeType": rules.COLLECTION_MIME, "children": kids}


@given(trees())
def test_every_leaf_has_the_root_among_its_ancestors_and_plans_are_deterministic(tree):
    root = "root"
    w1, w2 = rules.plan(root, tree), rules.plan(root, tree)
    assert w1 == w2
    leaves = set(w1.sets.get(f"{root}:{root}:leafnodes", ()))
    for leaf in leaves:
        assert root in w1.sets[f"{root}:{leaf}:ancestors"]
