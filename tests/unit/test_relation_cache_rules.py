"""relation-cache-updater rules against the project's own collections (tests/data/relation-cache).

The rules are described in ``docs/flows/relation-cache-updater.md``. Case ``RC-T1`` is Sunbird's
only test of this job ("RelationCacheUpdater should generate cache"), expressed with our own
hierarchies: two published collections, the full Redis state after both. Sunbird's own files run
in ``tests/conformance/test_relation_cache_rules.py``.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lernflow.flows.relation_cache_updater import rules
from lernflow.flows.skipped import Skipped
from lernflow.kernel.errors import InvalidEvent
from tests.paths import DATA

FX = DATA / "relation-cache"
ROOTS = ["lf_course_alpha", "lf_book_beta"]
EXPECTED = json.loads((FX / "expected_redis.json").read_text())


def _plan(root: str) -> rules.CacheWrites:
    tree = rules.parse_hierarchy((FX / f"hierarchy.{root}.json").read_text())
    assert tree is not None
    return rules.plan(root, tree)


def _writes() -> tuple[dict[str, set[str]], dict[str, str]]:
    sets: dict[str, set[str]] = {}
    strings: dict[str, str] = {}
    for root in ROOTS:
        w = _plan(root)
        sets.update({k: set(v) for k, v in w.sets.items()})
        strings.update(w.strings)
    return sets, strings


def test_rc_t1_db10_sets_equal_the_expected_state_after_both_events():
    sets, _ = _writes()
    assert sets == {k: set(v) for k, v in EXPECTED["db10_sets"].items()}
    for suffix in ("leafnodes", "optionalnodes", "ancestors"):
        count = sum(k.endswith(f":{suffix}") for k in sets)
        assert count == EXPECTED["key_counts"][f"*:{suffix}"], suffix


def test_rc_t1_content_optional_in_one_unit_only_is_optional_for_that_branch_and_the_root():
    sets, _ = _writes()
    optional = {k for k in sets if k.endswith(":optionalnodes")}
    assert optional == {
        "lf_course_alpha:lf_course_alpha:optionalnodes",
        "lf_course_alpha:lf_unit_a1:optionalnodes",
        "lf_course_alpha:lf_unit_a1_1:optionalnodes",
        "lf_course_alpha:lf_unit_a1_1_1:optionalnodes",
    }
    # lf_pdf_r1 is required under lf_unit_a3_1_1: that branch gets no optionalnodes key
    assert "lf_course_alpha:lf_unit_a3_1_1:optionalnodes" not in sets
    assert sets["lf_course_alpha:lf_pdf_r1:ancestors"] == {
        "lf_course_alpha", "lf_unit_a1", "lf_unit_a1_1", "lf_unit_a1_1_1",
        "lf_unit_a3", "lf_unit_a3_1", "lf_unit_a3_1_1",
    }  # fmt: skip


def test_rc_t1_units_with_empty_stored_leaf_nodes_and_no_children_get_no_key():
    sets, strings = _writes()
    for unit in ("lf_unit_b1_1", "lf_unit_b1_2"):
        assert not any(f":{unit}:" in k for k in sets)
        assert unit not in strings


def test_rc_t1_db5_unit_strings_equal_the_expected_bytes():
    _, strings = _writes()
    assert strings == EXPECTED["db5_strings"]
    assert "lf_course_alpha" not in strings  # the root (Default visibility)
    assert "lf_book_beta" not in strings


def test_rc_t1_write_counts_per_event():
    for root in ROOTS:
        w = _plan(root)
        assert len(w.sets) + len(w.strings) == EXPECTED["per_event"][root]["writes"], root
        assert len(w.strings) == EXPECTED["per_event"][root]["db5_units"], root


def test_rc_t1_events_pass_the_filter():
    for root in ROOTS:
        raw = (FX / f"event_{root.removeprefix('lf_')}.json").read_bytes()
        assert rules.parse_event(raw) == rules.PublishEvent(root)


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
    assert isinstance(result, Skipped) and result.kind == kind


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


def test_unit_strings_print_doubles_like_java():
    unit = {
        "identifier": "u1",
        "mimeType": "application/vnd.ekstep.content-collection",
        "visibility": "Parent",
        "children": [{"identifier": "c1"}],
        "sizes": [6.6e-05, 1e23, 12345678.9, 2.5, 0.001],
    }
    text = rules.units(unit)["u1"]
    assert '"sizes":[6.6E-5,1.0E23,1.23456789E7,2.5,0.001]' in text
