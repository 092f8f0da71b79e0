"""``lernflow run`` ends a stopped flow with one line naming the cause (lernflow.ops.stopped)."""

from __future__ import annotations

import errno
from pathlib import Path

from lernflow.ops.stopped import stop_reason


def _wrapped(cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            msg = "error writing output batch\nTraceback (most recent call last): ..."
            raise RuntimeError(msg) from inner
    except RuntimeError as outer:
        return outer


def test_a_full_disk_names_the_file_and_says_nothing_is_lost() -> None:
    full = OSError(errno.ENOSPC, "No space left on device", "/certs/b1/.c1.pdf.tmp")
    line = stop_reason(_wrapped(full), "certificate-generator", Path("/rec"))
    assert line == (
        "certificate-generator stopped: no space left on device writing /certs/b1/.c1.pdf.tmp;"
        " free space, then nothing is lost: run it again and it resumes from its last snapshot"
    )
    assert "\n" not in line


def test_the_recovery_store_full_names_its_folder() -> None:
    exc = RuntimeError('SqliteFailure(Error { code: DiskFull }, Some("database or disk is full"))')
    line = stop_reason(exc, "activity-aggregate-updater", Path("/rec/dev/activity"))
    assert "no space left on device for the recovery store under /rec/dev/activity" in line


def test_another_cause_is_its_innermost_error_on_one_line() -> None:
    line = stop_reason(_wrapped(ValueError("bad\nsecond line")), "user-cache-updater", None)
    assert line.startswith("user-cache-updater stopped: ValueError: bad (")
    assert "\n" not in line and "Traceback" not in line
