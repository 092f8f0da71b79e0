"""relation-cache-updater's production orchestration (shell + logic) on an in-memory store."""

from __future__ import annotations

import json

import pytest

from lernflow.config import Settings, load_settings
from lernflow.flows.relation_cache_updater import rules
from lernflow.flows.relation_cache_updater.flow import SPEC
from lernflow.flows.relation_cache_updater.processor import RelationCacheLogic
from tests.paths import DATA
from tests.shellkit import metric, run

FX = DATA / "relation-cache"
EXPECTED = json.loads((FX / "expected_redis.json").read_text())


class MemoryStore:
    """Hierarchies from a dict; writes applied to dicts the way the Redis writer applies them."""

    def __init__(self, hierarchies: dict[str, str | None]) -> None:
        self._hierarchies = hierarchies
        self.sets: dict[str, set[str]] = {}
        self.strings: dict[str, str] = {}
        self.reads: list[list[str]] = []

    def hierarchies(self, ids: list[str]) -> dict[str, str | None]:
        self.reads.append(list(ids))
        return {i: self._hierarchies.get(i) for i in ids}

    def write(self, writes: rules.CacheWrites) -> None:
        self.sets.update({k: set(v) for k, v in writes.sets.items()})
        self.strings.update(writes.strings)

    def close(self) -> None:
        return None


@pytest.fixture
def settings() -> Settings:
    s = load_settings()
    return s.with_overrides(topics=s.topics.model_copy(update={"env": "unit-rc"}))


def _store() -> MemoryStore:
    return MemoryStore(
        {r: (FX / f"hierarchy.{r}.json").read_text() for r in ("lf_course_alpha", "lf_book_beta")}
    )


def _events() -> list[bytes]:
    return [(FX / f"event_{n}.json").read_bytes() for n in ("course_alpha", "book_beta")]


def test_rc_t1_through_the_shell_gives_the_expected_cache(settings: Settings) -> None:
    store = _store()
    outbox, _p = run(SPEC, settings, RelationCacheLogic(settings, store), _events())
    assert store.sets == {k: set(v) for k, v in EXPECTED["db10_sets"].items()}
    assert store.strings == EXPECTED["db5_strings"]
    assert store.reads == [["lf_course_alpha", "lf_book_beta"]]  # one round, one read
    assert outbox.messages == []


def test_bad_and_skipped_events_are_parked_and_counted(settings: Settings) -> None:
    failed = SPEC.failed_topic_name(settings)
    out_before = metric("lernflow_events_out_total", flow=SPEC.name, topic=failed)
    skipped_before = metric(
        "lernflow_events_skipped_total", flow=SPEC.name, reason_kind="other-action"
    )
    store = _store()
    other = json.loads(_events()[0])
    other["edata"]["action"] = "unpublish"
    outbox, _p = run(
        SPEC,
        settings,
        RelationCacheLogic(settings, store),
        [b"{not json", json.dumps(other), _events()[0]],
    )
    parked = outbox.on(failed)
    assert [p["source"]["offset"] for p in parked] == [0]  # the malformed one, with its coordinates
    assert metric("lernflow_events_out_total", flow=SPEC.name, topic=failed) == out_before + 1
    after = metric("lernflow_events_skipped_total", flow=SPEC.name, reason_kind="other-action")
    assert after == skipped_before + 1
    assert store.reads == [["lf_course_alpha"]]  # the good event still applied


def test_a_collection_without_a_stored_hierarchy_is_skipped_not_parked(settings: Settings) -> None:
    before = metric("lernflow_events_skipped_total", flow=SPEC.name, reason_kind="empty-hierarchy")
    store = MemoryStore({})
    outbox, _p = run(SPEC, settings, RelationCacheLogic(settings, store), _events()[:1])
    assert outbox.messages == [] and store.sets == {}
    assert metric(
        "lernflow_events_skipped_total", flow=SPEC.name, reason_kind="empty-hierarchy"
    ) == (before + 1)
