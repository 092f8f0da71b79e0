"""The note committed with each position gives ``lernflow status`` a recent rate."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lernflow.sources.position_note import (
    STALE_MS,
    WINDOW_MS,
    PositionHistory,
    PositionNote,
    decode,
)


@given(st.integers(0, 2**62), st.integers(0, 2**62), st.integers(0, 2**50))
def test_a_note_survives_its_encoding(t: int, o0: int, t0: int) -> None:
    note = PositionNote(t, o0, t0)
    assert decode(note.encode()) == note


@given(st.one_of(st.none(), st.text(max_size=40)))
def test_foreign_or_broken_metadata_reads_as_no_note(text: str | None) -> None:
    if text is not None and text.startswith("{"):
        return  # could be a valid note by chance; covered above
    assert decode(text) is None


def test_rate_is_offsets_over_time_since_the_earlier_point() -> None:
    note = PositionNote(committed_ms=20_000, since_offset=1_000, since_ms=10_000)
    assert note.events_per_s(6_000, now_ms=20_500) == 500.0


def test_a_note_older_than_two_minutes_reads_as_stopped() -> None:
    note = PositionNote(committed_ms=20_000, since_offset=0, since_ms=10_000)
    assert note.events_per_s(5_000, now_ms=20_000 + STALE_MS + 1) == 0.0


def test_history_measures_over_about_the_last_minute() -> None:
    h = PositionHistory()
    h.note(0, 0)  # where the process started
    for i in range(1, 31):  # a commit every 10 s, 100 events/s for 5 minutes
        note = h.note(i * 1_000, i * 10_000)
    assert note.since_ms == note.committed_ms - WINDOW_MS
    assert note.events_per_s(30_000, now_ms=note.committed_ms) == 100.0


def test_first_note_measures_from_the_start_position() -> None:
    h = PositionHistory()
    h.note(500, 1_000)
    note = h.note(800, 4_000)
    assert (note.since_offset, note.since_ms) == (500, 1_000)
    assert note.events_per_s(800, now_ms=4_000) == 100.0
