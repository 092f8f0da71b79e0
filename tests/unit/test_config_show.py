"""``lernflow config show`` fits the terminal: env var names are never cut, secrets stay hidden."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys

import pytest
from rich.console import Console

from lernflow.cli.stack import config_rows, config_table
from lernflow.config import load_settings

SECRET = "s3cret-Value-never-shown"
SASL = {
    "LERNFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "LERNFLOW_KAFKA_SASL_USERNAME": "lernflow",
    "LERNFLOW_KAFKA_SASL_PASSWORD": SECRET,
}


def _render(width: int) -> str:
    console = Console(width=width, file=io.StringIO(), color_system=None)
    console.print(config_table(config_rows(load_settings()), width))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(text, str)
    return text


@pytest.mark.parametrize("width", [80, 100, 200])
def test_every_env_var_name_is_whole_and_no_line_is_wider_than_the_terminal(width: int) -> None:
    text = _render(width)
    words = set(re.findall(r"LERNFLOW_[A-Z0-9_]+", text))
    for row in config_rows(load_settings()):
        assert row.env_var in words, row.env_var
    assert all(len(line) <= width for line in text.splitlines())


def test_the_command_at_80_columns_prints_every_env_var_whole() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lernflow.cli", "config", "show"],
        env={**os.environ, "COLUMNS": "80", "LERNFLOW_REDIS_PASSWORD": SECRET},
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    words = set(re.findall(r"LERNFLOW_[A-Z0-9_]+", done.stdout))
    missing = [r.env_var for r in config_rows(load_settings()) if r.env_var not in words]
    assert not missing
    assert max(len(line) for line in done.stdout.splitlines()) <= 80
    assert SECRET not in done.stdout


def test_json_is_a_list_of_setting_env_var_value_with_secrets_hidden() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lernflow.cli", "config", "show", "--json"],
        env={**os.environ, **SASL, "LERNFLOW_KAFKA_PARTITIONS": "7"},
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    rows = {r["env_var"]: r for r in json.loads(done.stdout)}
    assert rows["LERNFLOW_KAFKA_PARTITIONS"] == {
        "setting": "kafka.partitions",
        "env_var": "LERNFLOW_KAFKA_PARTITIONS",
        "value": 7,
    }
    assert rows["LERNFLOW_KAFKA_SASL_PASSWORD"]["value"] == "**********"
    assert rows["LERNFLOW_POSTGRES_PASSWORD"]["value"] == "**********"
    assert rows["LERNFLOW_ENV"]["setting"] == "topics.env"
    assert SECRET not in done.stdout


def test_a_value_in_brackets_is_printed_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LERNFLOW_KAFKA_BROKERS", "[::1]:9092")  # not read as rich markup
    assert "[::1]:9092" in _render(80)
