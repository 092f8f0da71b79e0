"""Structured logs: ``--log-format json`` gives one JSON object per line, flow and fields included."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from lernflow.config import Settings
from lernflow.ops.runner import input_topic
from tests.flowkit import create_topics, produce

FLOW = "user-cache-updater"


def test_a_json_log_run_names_the_flow_and_the_parked_event_coordinates(
    settings: Settings,
) -> None:
    create_topics(settings)
    topic = input_topic(settings, FLOW)
    produce(settings, topic, [b"not json"], key=b"k")
    env = {**os.environ, **settings.to_env(), "LERNFLOW_LOG_FORMAT": "json",
           "LERNFLOW_LOG_LEVEL": "INFO"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "lernflow.cli", "run", FLOW, "--until-caught-up", "--no-recovery"],
        env=env, capture_output=True, text=True, timeout=180, check=True,
    )  # fmt: skip
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert records, done.stderr
    assert all({"ts", "level", "logger", "msg"} <= r.keys() for r in records)
    assert all(r["flow"] == FLOW for r in records)
    parked = [r for r in records if r["msg"].startswith("parked ")]
    assert len(parked) == 1
    assert (parked[0]["topic"], parked[0]["offset"]) == (topic, 0)
    assert parked[0]["error_type"]
    assert any(r["msg"].startswith(f"running {FLOW}") for r in records)


def test_a_bad_log_format_or_a_lone_process_id_is_refused_with_the_setting_named(
    settings: Settings,
) -> None:
    env = {**os.environ, **settings.to_env(), "LERNFLOW_LOG_FORMAT": "xml"}
    bad = subprocess.run([sys.executable, "-m", "lernflow.cli", "status"], env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and "LERNFLOW_LOG_FORMAT" in bad.stderr
    env = {**os.environ, **settings.to_env(), "LERNFLOW_PROCESS_ID": "1"}
    lone = subprocess.run([sys.executable, "-m", "lernflow.cli", "run", FLOW], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert lone.returncode == 2 and "LERNFLOW_ADDRESSES" in lone.stderr
