"""user-cache-updater's production orchestration (shell + logic) on an in-memory store.

The events and user-read answers of ``tests/data/usercache`` go through the spec's own parser,
the processor shell and :class:`UserCacheLogic`; the store answers from those bodies (through
the same ``profiles.answer`` the HTTP source uses) and applies writes with ``rules.apply``, the
pure model of the Lua write.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from lernflow.config import Settings, load_settings
from lernflow.flows.user_cache_updater import rules
from lernflow.flows.user_cache_updater.flow import SPEC
from lernflow.flows.user_cache_updater.processor import UserCacheLogic
from lernflow.flows.user_cache_updater.profiles import Lookup, answer
from tests.paths import DATA
from tests.shellkit import metric, run

FX = DATA / "usercache"
EVENTS: dict[str, Any] = json.loads((FX / "events.json").read_text())
ANSWERS: dict[str, Any] = json.loads((FX / "user_read.json").read_text())
TEST1 = json.loads((FX / "expected_test1.json").read_text())
TEST2 = json.loads((FX / "expected_test2.json").read_text())
TEST3 = json.loads((FX / "expected_test3.json").read_text())


class MemoryStore:
    """Profiles from user-read bodies; hashes in a dict, written the way the Lua script does."""

    def __init__(self, bodies: dict[str, bytes], hashes: dict[str, dict[str, str]] | None = None):
        self._bodies = bodies
        self.hashes: dict[str, dict[str, str]] = hashes or {}
        self.reads: list[list[str]] = []
        self.writes: list[list[rules.Write]] = []

    def profiles(self, user_ids: Sequence[str]) -> dict[str, Lookup]:
        if user_ids:
            self.reads.append(list(user_ids))
        cfg = rules.RulesConfig()
        return {i: answer(self._bodies[i], i, cfg) for i in user_ids}

    def current(self, keys: list[str]) -> list[dict[str, str]]:
        return [dict(self.hashes.get(k, {})) for k in keys]

    def write(self, writes: list[rules.Write]) -> None:
        self.writes.append(list(writes))
        for w in writes:
            self.hashes[w.key] = rules.apply(self.hashes.get(w.key, {}), w)

    def close(self) -> None:
        return None


@pytest.fixture
def settings() -> Settings:
    s = load_settings()
    return s.with_overrides(topics=s.topics.model_copy(update={"env": "unit-uc"}))


def _payload(name: str) -> bytes:
    return json.dumps(EVENTS[name]).encode()


def _store(steps: list[dict[str, Any]]) -> MemoryStore:
    """A store answering each step's user with the step's user-read body."""
    bodies: dict[str, bytes] = {}
    for step in steps:
        obj = EVENTS[step["event"]]["object"]
        if step["answer"] is not None:
            bodies[obj["id"]] = json.dumps(ANSWERS[step["answer"]]).encode()
    return MemoryStore(bodies)


def _skipped(kind: str) -> float:
    return metric("lernflow_events_skipped_total", flow=SPEC.name, reason_kind=kind)


def test_t1_through_the_shell_gives_the_expected_hashes(settings: Settings) -> None:
    steps = TEST1["events_in_order"]
    before = {k: _skipped(k) for k in ("not-a-user", "unsupported-state")}
    store = _store(steps)
    outbox, _p = run(
        SPEC, settings, UserCacheLogic(settings, store), map(_payload, (s["event"] for s in steps))
    )
    expected = {k: v for k, v in TEST1["keys"].items() if v is not None}
    assert store.hashes == expected
    assert outbox.messages == []
    registered = [EVENTS[s["event"]]["object"]["id"] for s in steps if s["outcome"] == "write"]
    assert store.reads == [registered]  # one round (distinct users), one read
    assert [len(w) for w in store.writes] == [7]  # and one pipeline
    for kind, n in before.items():
        assert _skipped(kind) == n + 1, kind


def test_t3_unknown_user_is_parked_and_its_sign_in_field_still_written(settings: Settings) -> None:
    steps = TEST3["sequence"]
    failed = SPEC.failed_topic_name(settings)
    out_before = metric("lernflow_events_out_total", flow=SPEC.name, topic=failed)
    failed_before = metric(
        "lernflow_events_failed_total", flow=SPEC.name, reason_kind="UserNotFound"
    )
    no_data_before = _skipped("no-data")
    store = _store(steps)
    outbox, _p = run(
        SPEC, settings, UserCacheLogic(settings, store), (_payload(s["event"]) for s in steps)
    )
    assert store.hashes == {k: v for k, v in TEST3["keys"].items() if v is not None}
    assert store.hashes["user:lf-learner-02"] == {"usersignintype": "Self-Signed-In"}
    parked = outbox.on(failed)
    assert [p["source"]["offset"] for p in parked] == [2]
    assert parked[0]["reason"].startswith(TEST3["parked_reason_starts"])
    assert [m.topic for m in outbox.messages] == [failed]
    assert metric("lernflow_events_out_total", flow=SPEC.name, topic=failed) == out_before + 1
    assert (
        metric("lernflow_events_failed_total", flow=SPEC.name, reason_kind="UserNotFound")
        == failed_before + 1
    )
    assert _skipped("no-data") == no_data_before + 1  # the blocked account without sign-in data


def test_unknown_user_without_sign_in_data_is_parked_and_writes_nothing(settings: Settings) -> None:
    event = json.loads(_payload("t1_2_merged_update_no_signup"))
    store = MemoryStore({"lf-learner-merged": json.dumps(ANSWERS["not_found"]).encode()})
    outbox, _p = run(SPEC, settings, UserCacheLogic(settings, store), [json.dumps(event)])
    assert store.hashes == {}
    assert len(outbox.on(SPEC.failed_topic_name(settings))) == 1


def test_t2_one_users_events_in_one_batch_apply_in_order(settings: Settings) -> None:
    step1, step2 = TEST2["step1"], TEST2["step2"]
    store = _store([step1, step2])
    outbox, _p = run(
        SPEC,
        settings,
        UserCacheLogic(settings, store),
        [_payload(step1["event"]), _payload(step2["event"])],
    )
    assert store.hashes == {"user:lf-learner-01": step2["hash"]}
    assert store.reads == [["lf-learner-01"]]  # the second (another producer's) event reads nothing
    assert len(store.writes) == 2  # two rounds
    assert outbox.messages == []


def test_malformed_input_is_parked_and_counted_as_out_on_the_failed_topic(
    settings: Settings,
) -> None:
    failed = SPEC.failed_topic_name(settings)
    out_before = metric("lernflow_events_out_total", flow=SPEC.name, topic=failed)
    store = _store(TEST1["events_in_order"][:1])
    outbox, _p = run(
        SPEC, settings, UserCacheLogic(settings, store),
        [b"{not json", b"\xff", _payload("t1_1_learner01_update_google")],
    )  # fmt: skip
    assert [p["source"]["offset"] for p in outbox.on(failed)] == [0, 1]
    assert metric("lernflow_events_out_total", flow=SPEC.name, topic=failed) == out_before + 2
    assert store.hashes == {"user:lf-learner-01": TEST1["keys"]["user:lf-learner-01"]}


def test_the_spec_parses_with_the_settings_it_runs_with(settings: Settings) -> None:
    deleted = json.loads(_payload("t2_learner01_app_userrole_teacher"))
    deleted["edata"]["state"] = "Delete"
    before = _skipped("unsupported-state")
    store = MemoryStore({})
    run(SPEC, settings, UserCacheLogic(settings, store), [json.dumps(deleted)])
    assert store.hashes == {} and _skipped("unsupported-state") == before + 1
    accepting = settings.with_overrides(
        user_cache=settings.user_cache.model_copy(update={"accept_delete": True})
    )
    run(SPEC, accepting, UserCacheLogic(accepting, store), [json.dumps(deleted)])
    assert store.hashes == {"user:lf-learner-01": {"userlogintype": "teacher"}}
