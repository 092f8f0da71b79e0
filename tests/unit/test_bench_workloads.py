"""The bench's realistic workload (issue 16 item 4): its shape, noise and expected end state."""

from __future__ import annotations

import json
from collections import Counter

from bench.endstate import EndState, differences
from bench.workloads import realistic_workload, simple_workload


def _edata(value: bytes) -> dict[str, object] | None:
    try:
        doc = json.loads(value)
    except ValueError:
        return None
    edata = doc.get("edata", {})
    ok = isinstance(edata.get("contents"), list) and "userId" in edata
    return edata if ok else None


def test_realistic_workload_has_the_asked_shape_and_noise() -> None:
    w = realistic_workload(20_000)
    assert w.events == realistic_workload(20_000).events  # seeded, deterministic
    assert len(w.courses) == 50
    sizes = [len(c.leaves) for c in w.courses.values()]
    assert min(sizes) >= 5 and max(sizes) <= 200
    depths = {max(len(a) for a in c.ancestors.values()) for c in w.courses.values()}
    assert depths == {1, 2}  # units only (2 levels), units of sub-units (3 levels)
    per_learner = Counter(u for u, _c, _b in w.enrolled)
    assert set(per_learner.values()) <= {1, 2, 3} and len(set(per_learner.values())) > 1

    valid = [e for _k, v in w.events if (e := _edata(v)) is not None]
    assert len(w.events) - len(valid) == w.malformed
    assert 0.004 < w.malformed / len(w.events) < 0.006
    dups = len(valid) - len({v for _k, v in w.events if _edata(v) is not None})
    assert 0.025 < dups / len(w.events) < 0.035
    assert sum(w.resent.values()) >= dups

    # sessions interleave: an enrolment's events are spread, not one block
    positions: dict[tuple[object, ...], list[int]] = {}
    for i, e in enumerate(valid):
        positions.setdefault((e["userId"], e["courseId"]), []).append(i)
    spans = [p[-1] - p[0] + 1 - len(p) for p in positions.values() if len(p) > 5]
    assert sum(1 for s in spans if s > 100) > 0.9 * len(spans)


def test_expected_end_state_follows_the_completions() -> None:
    w = realistic_workload(3_000, courses=5, leaves=(5, 30))
    state = w.expected
    for key, done in w.completions.items():
        course = w.courses[key[1]]
        if not done:
            assert key not in state.enrolments
            continue
        e = state.enrolments[key]
        assert e.progress == len(course.required & set(done))
        assert (e.status == 2) == e.completed == (course.required <= set(done))
        assert state.aggregates[(course.course_id, key[0], f"cb:{key[2]}")] == e.progress


def test_differences_allow_a_resent_completion_to_count_again_only_when_resent() -> None:
    w = simple_workload(5)
    want = w.expected
    key = next(iter(want.consumption))
    got = EndState(dict(want.consumption), dict(want.aggregates), dict(want.enrolments))
    got.consumption[key] = (2, 2)
    assert differences(got, want) != []
    assert differences(got, want, {key: 1}) == []
    got.aggregates.popitem()
    assert differences(got, want, {key: 1}) != []
