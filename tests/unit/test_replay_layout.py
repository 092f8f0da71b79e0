"""What a replay's layout changes in the settings it runs with (lernflow/ops/replay.py)."""

from __future__ import annotations

from lernflow.config import load_settings
from lernflow.ops.replay import ReplayLayout, replay_settings


def test_a_replay_reads_ahead_what_its_layout_says_and_keeps_the_rest() -> None:
    settings = load_settings()
    s = replay_settings(settings, ReplayLayout(replay_id="r1", prefetch_kbytes=2_048))
    assert s.kafka.prefetch_kbytes == 2_048
    assert settings.kafka.prefetch_kbytes == 16_384
    assert s.kafka.brokers == settings.kafka.brokers
    assert s.run.recovery_dir == settings.run.recovery_dir / "replays" / "r1"


def test_a_layout_without_a_prefetch_or_memory_leaves_the_settings_as_set() -> None:
    settings = load_settings()
    s = replay_settings(settings, ReplayLayout(replay_id="r2"))
    assert s.kafka == settings.kafka
    assert s.activity == settings.activity
