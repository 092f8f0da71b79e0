"""``lernflow status`` shows where a flow is, its rate and what it parked (table and JSON)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from lernflow.config import Settings
from lernflow.ops.runner import input_topic
from tests.flowkit import create_topics, produce, run_to_end

FLOW = "user-cache-updater"
SKIP = b'{"eid":"AUDIT","object":{"id":"do_1","type":"Content"},"edata":{"state":"Update"}}'


def _lernflow(settings: Settings, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "lernflow.cli", *args],
        env={**os.environ, **settings.to_env(), "COLUMNS": "250"}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_status_json_shows_position_lag_rate_and_failed_events_after_a_run(
    settings: Settings,
) -> None:
    create_topics(settings)
    topic = input_topic(settings, FLOW)
    produce(settings, topic, [SKIP] * 40 + [b"not json"] * 3, key=b"k")
    run_to_end(FLOW, settings)

    flows = {f["flow"]: f for f in json.loads(_lernflow(settings, "status", "--json"))}
    mine = flows[FLOW]
    busy = [p for p in mine["partitions"] if p["end"] > 0]
    assert len(busy) == 1  # one key → one partition
    assert busy[0]["committed"] == busy[0]["end"] == 43
    assert busy[0]["lag"] == 0 and mine["lag"] == 0
    assert busy[0]["events_per_s"] > 0  # from the note committed with the position
    assert busy[0]["committed_at"] is not None
    assert mine["failed_events"] == 3
    # a flow that never ran here has no position, no rate and nothing parked
    idle = flows["assessment-aggregator"]
    assert all(p["committed"] is None and p["events_per_s"] is None for p in idle["partitions"])
    assert idle["failed_events"] == 0


def test_status_table_lists_every_flow_with_its_columns(settings: Settings) -> None:
    create_topics(settings)
    table = _lernflow(settings, "status")
    for column in ("committed", "end", "lag", "events/s", "failed events", "last snapshot"):
        assert column in table
    assert FLOW in table and "activity-aggregate-updater" in table
