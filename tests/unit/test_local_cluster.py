"""``lernflow run -p N --from-beginning``: every process starts at the earliest offsets, and
the recovery store the launcher recreated is not recreated again by a process."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from lernflow.config import Settings, load_settings
from lernflow.ops import cluster, runner


class _Proc:
    def wait(self) -> int:
        return 0


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    commands: list[list[str]] = []

    def popen(cmd: list[str], **_kw: Any) -> _Proc:
        commands.append(cmd)
        return _Proc()

    monkeypatch.setattr(subprocess, "Popen", popen)
    return commands


def _run(settings: Settings, *, from_beginning: bool, no_recovery: bool) -> int:
    return cluster.run_local(
        settings, "relation-cache-updater", processes=2, workers=1, until_caught_up=True,
        from_beginning=from_beginning, no_recovery=no_recovery,
    )  # fmt: skip


def test_from_beginning_reaches_every_process(
    launched: list[list[str]], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings().with_overrides(
        run=load_settings().run.model_copy(update={"recovery_dir": tmp_path})
    )
    assert _run(settings, from_beginning=True, no_recovery=False) == 0
    assert len(launched) == 2
    for cmd in launched:
        assert "--from-beginning" in cmd
        assert "--recovery-prepared" in cmd
    assert any(runner.recovery_dir(settings, "relation-cache-updater").glob("part-*.sqlite3"))


def test_without_recovery_the_processes_are_not_told_of_a_store(launched: list[list[str]]) -> None:
    assert _run(load_settings(), from_beginning=True, no_recovery=True) == 0
    for cmd in launched:
        assert "--from-beginning" in cmd
        assert "--recovery-prepared" not in cmd


def test_a_normal_start_resumes(launched: list[list[str]]) -> None:
    _run(load_settings(), from_beginning=False, no_recovery=True)
    assert all("--from-beginning" not in cmd for cmd in launched)


def test_a_prepared_store_is_not_recreated(tmp_path: Any) -> None:
    settings = load_settings().with_overrides(
        run=load_settings().run.model_copy(update={"recovery_dir": tmp_path})
    )
    path = runner.prepare_recovery(settings, "relation-cache-updater", True, 4)
    marker = path / "kept"
    marker.write_text("x")
    fresh = runner.recovery_fresh(from_beginning=True, process_id=0, prepared=True)
    runner.prepare_recovery(settings, "relation-cache-updater", fresh, 4)
    assert marker.exists()
    assert runner.recovery_fresh(from_beginning=True, process_id=0, prepared=False)
    assert not runner.recovery_fresh(from_beginning=True, process_id=1, prepared=False)
