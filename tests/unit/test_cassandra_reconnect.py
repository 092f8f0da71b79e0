"""A Cassandra executor whose requests keep failing starts a new session
(docs/reliability.md: the driver's pool stuck after a pause)."""

from __future__ import annotations

from typing import Any

import pytest
from cassandra import OperationTimedOut

from lernflow.config import load_settings
from lernflow.kernel import cassandra as kc


class FakeCluster:
    def __init__(self, name: str) -> None:
        self.name, self.down = name, False

    def shutdown(self) -> None:
        self.down = True


class FakeSession:
    def __init__(self, name: str, healthy: bool) -> None:
        self.name, self.healthy, self.calls = name, healthy, 0

    def prepare(self, cql: str) -> tuple[str, str]:
        return (self.name, cql)


class Result:
    def __init__(self, rows: list[Any]) -> None:
        self.result_or_exc = rows


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> list[tuple[FakeCluster, FakeSession]]:
    made = [(FakeCluster("stuck"), FakeSession("stuck", healthy=False))]
    made += [(FakeCluster(f"new{i}"), FakeSession(f"new{i}", healthy=True)) for i in range(3)]
    queue = list(made)
    monkeypatch.setattr(kc, "cassandra_session", lambda _settings: queue.pop(0))

    def execute(session: FakeSession, stmt: Any, params: Any, **_kw: Any) -> list[Result]:
        session.calls += 1
        assert stmt[0] == session.name  # prepared on the session that runs it
        if not session.healthy:
            raise OperationTimedOut({"Connection defunct by heartbeat": "timeout"})
        return [Result([p]) for p in params]

    monkeypatch.setattr("cassandra.concurrent.execute_concurrent_with_args", execute)
    return made


def _executor() -> kc.CassandraExecutor:
    s = load_settings()
    run = s.run.model_copy(update={"retry_base_delay_s": 0.001, "retry_max_delay_s": 0.001})
    return kc.CassandraExecutor(s.cassandra, run, "test")


def test_a_stuck_session_is_replaced_after_three_failed_attempts(
    sessions: list[tuple[FakeCluster, FakeSession]],
) -> None:
    ex = _executor()
    assert ex.execute_many("SELECT 1", [(1,), (2,)], "probe") == [[(1,)], [(2,)]]
    (stuck_cluster, stuck), (_c, new) = sessions[0], sessions[1]
    assert (stuck.calls, new.calls) == (kc.RECONNECT_AFTER, 1)
    assert stuck_cluster.down
    assert ex.session is new


def test_a_success_resets_the_count(sessions: list[tuple[FakeCluster, FakeSession]]) -> None:
    ex = _executor()
    ex.execute_many("SELECT 1", [(1,)], "probe")
    ex.execute_many("SELECT 1", [(1,)], "probe")
    assert sessions[2][1].calls == 0  # no second new session
