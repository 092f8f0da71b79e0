"""Transient faults are retried with capped backoff; everything else fails at once."""

from __future__ import annotations

import pytest
import redis.exceptions
from cassandra import OperationTimedOut
from confluent_kafka import KafkaError, KafkaException

from lernflow.config import RunSettings
from lernflow.kernel.errors import InvalidEvent, TransientError
from lernflow.kernel.retry import (
    KAFKA_NOT_READY,
    gave_up,
    is_transient,
    kafka_not_ready,
    retry,
)


class NamedLikeADriverError(Exception):
    """Same name as a driver class, not the class: no longer taken for it."""


NamedLikeADriverError.__name__ = "OperationTimedOut"


def test_transient_errors_are_recognised_by_type_and_retryable():
    assert is_transient(OperationTimedOut())
    assert is_transient(redis.exceptions.ConnectionError())
    assert is_transient(TransientError("x"))
    assert is_transient(ConnectionRefusedError())
    assert not is_transient(InvalidEvent("bad"))
    assert not is_transient(ValueError())
    assert not is_transient(NamedLikeADriverError())


def test_kafka_not_ready_accepts_only_not_ready_codes():
    assert kafka_not_ready(KafkaException(KafkaError(KafkaError.LEADER_NOT_AVAILABLE)))
    assert kafka_not_ready(KafkaException(KafkaError(KafkaError.COORDINATOR_LOAD_IN_PROGRESS)))
    assert not kafka_not_ready(KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)))
    assert not kafka_not_ready(TransientError("x"))


def test_a_kafka_call_is_retried_while_not_ready_then_succeeds():
    answers = [KafkaException(KafkaError(KafkaError.LEADER_NOT_AVAILABLE))] * 3 + ["ok"]
    sleeps: list[float] = []

    def call():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    got = retry(call, KAFKA_NOT_READY, "t", sleep=sleeps.append, transient=kafka_not_ready)
    assert got == "ok"
    assert len(sleeps) == 3 and all(s <= KAFKA_NOT_READY.cap_s for s in sleeps)


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


def test_retry_gives_up_after_the_last_attempt_and_says_how_often_it_tried():
    run = RunSettings(retry_max_attempts=3)
    with pytest.raises(OperationTimedOut) as raised:
        retry(lambda: (_ for _ in ()).throw(OperationTimedOut()), run, "t", sleep=lambda _s: None)
    tried = gave_up(raised.value)
    assert tried is not None and (tried.what, tried.attempts) == ("t", 3)
    assert tried.seconds >= 0


def test_an_error_not_retried_carries_no_give_up_record():
    with pytest.raises(ValueError) as raised:
        retry(lambda: (_ for _ in ()).throw(ValueError("no")), RunSettings(), "t")
    assert gave_up(raised.value) is None


def test_non_transient_errors_are_not_retried():
    calls = []

    def bad():
        calls.append(1)
        raise ValueError("no")

    with pytest.raises(ValueError):
        retry(bad, RunSettings(), "t", sleep=lambda _s: None)
    assert calls == [1]
