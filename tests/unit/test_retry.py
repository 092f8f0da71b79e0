"""Transient faults are retried with capped backoff; everything else fails at once."""

from __future__ import annotations

import pytest

from config import RunSettings
from lernflow.kernel.errors import InvalidEvent, TransientError
from lernflow.kernel.retry import is_transient, retry


class OperationTimedOut(Exception):  # same name as the cassandra-driver class
    pass


def test_transient_errors_are_recognised_by_class_name():
    assert is_transient(OperationTimedOut())
    assert is_transient(TransientError("x"))
    assert is_transient(ConnectionRefusedError())
    assert not is_transient(InvalidEvent("bad"))
    assert not is_transient(ValueError())


def test_retry_succeeds_after_transient_failures_with_growing_capped_delays():
    run = RunSettings(retry_max_attempts=6, retry_base_delay_s=0.1, retry_max_delay_s=0.5)
    calls: list[int] = []
    sleeps: list[float] = []

    def flaky():
        calls.append(1)
        if len(calls) < 5:
            raise OperationTimedOut
        return "ok"

    assert retry(flaky, run, "test", sleep=sleeps.append) == "ok"
    assert len(calls) == 5
    assert len(sleeps) == 4
    assert all(s <= 0.5 for s in sleeps)
    assert sleeps[0] <= 0.1


def test_retry_gives_up_after_the_last_attempt():
    run = RunSettings(retry_max_attempts=3)
    with pytest.raises(OperationTimedOut):
        retry(lambda: (_ for _ in ()).throw(OperationTimedOut()), run, "t", sleep=lambda _s: None)


def test_non_transient_errors_are_not_retried():
    calls = []

    def bad():
        calls.append(1)
        raise ValueError("no")

    with pytest.raises(ValueError):
        retry(bad, RunSettings(), "t", sleep=lambda _s: None)
    assert calls == [1]
