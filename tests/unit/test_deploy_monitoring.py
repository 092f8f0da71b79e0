"""deploy/prometheus and deploy/grafana: the alert rules pass `promtool check rules` and their
unit tests (`promtool test rules`), and every metric a rule or a dashboard query names is one
the flows' /metrics really serves: a lernflow_* name from the closed list in
lernflow/kernel/metrics.py (with the _bucket/_count/_sum series of a histogram), a Bytewax
name seen on the /metrics of a real Bytewax process with recovery on, or Prometheus's `up`."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no stubs in the venv
from prometheus_client import Histogram

from lernflow.flows.registry import FLOWS
from lernflow.kernel import metrics

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "lernflow.json"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
#: series Prometheus makes itself for every target (not served by the flows)
SCRAPE_SERIES = {"up"}

_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels left out)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges, subqueries
    text = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text
    )  # label lists
    names = set()
    for m in re.finditer(r"(?<![\w$.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        name, call = m.group(1), m.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def test_metric_names_finds_the_metrics_and_only_them() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (flow, le) (rate(x_seconds_bucket{flow=~"$flow", '
        'a="b c"}[5m]))) / on (flow) group_left y_total unless z offset 5m > bool 1e3'
    )
    assert metric_names(expr) == {"x_seconds_bucket", "y_total", "z"}


def _exported(name: str) -> bool:
    """A lernflow series name the closed list serves (a histogram serves three)."""
    if name in metrics.ALL and not isinstance(metrics.ALL[name], Histogram):
        return True
    base, _, suffix = name.rpartition("_")
    return suffix in ("bucket", "count", "sum") and isinstance(metrics.ALL.get(base), Histogram)


# --- the Bytewax names, as a real Bytewax process serves them ----------------------------

_TOY_FLOW = """
import sys
from datetime import timedelta
import bytewax.operators as op
from bytewax._bytewax import cli_main
from bytewax.dataflow import Dataflow
from bytewax.inputs import SimplePollingSource
from bytewax.recovery import RecoveryConfig, init_db_dir

class Ticks(SimplePollingSource):
    def __init__(self):
        super().__init__(timedelta(milliseconds=20))
        self.n = 0
    def next_item(self):
        self.n += 1
        return self.n

flow = Dataflow("toy")
keyed = op.key_on("key", op.input("in", flow, Ticks()), lambda n: str(n % 3))
op.inspect("out", op.stateful_map("count", keyed, lambda s, n: ((s or 0) + 1, n)))
init_db_dir(sys.argv[1], 1)
cli_main(flow, epoch_interval=timedelta(milliseconds=200), recovery_config=RecoveryConfig(sys.argv[1]))
"""


def _free_port() -> int:
    """A free port in 28000-28999 (the range this project's helpers' servers may use)."""
    for port in range(28000 + (os.getpid() * 13) % 900, 29000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port in 28000-28999")


@functools.cache
def _bytewax_served(tmp: str) -> frozenset[str]:
    """The series names a Bytewax 0.21 process with recovery serves on /metrics."""
    port = _free_port()
    env = {
        **os.environ,
        "BYTEWAX_DATAFLOW_API_ENABLED": "1",
        "BYTEWAX_DATAFLOW_API_PORT": str(port),
    }
    # cwd: the dataflow API writes dataflow.json into the working directory
    proc = subprocess.Popen([sys.executable, "-c", _TOY_FLOW, tmp], env=env, cwd=tmp)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    text = r.read().decode()
                if "bytewax_snapshot_duration_seconds_count" in text:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "no snapshot metric on /metrics within 60 s"
            assert proc.poll() is None, "the Bytewax process ended"
            time.sleep(0.3)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    return frozenset(re.findall(r"^([a-zA-Z_:][\w:]*)", text, re.MULTILINE))


@pytest.fixture(scope="module")
def bytewax_served(tmp_path_factory: pytest.TempPathFactory) -> frozenset[str]:
    return _bytewax_served(str(tmp_path_factory.mktemp("recovery")))


def _check(names: set[str], bytewax_served: frozenset[str]) -> list[str]:
    bad = []
    for name in sorted(names):
        if name.startswith("lernflow_"):
            ok = _exported(name)
        else:
            ok = name in SCRAPE_SERIES or (name.startswith("bytewax_") and name in bytewax_served)
        if not ok:
            bad.append(name)
    return bad


# --- alert rules ---------------------------------------------------------------------------


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((PROM / "alerts.yml").read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def test_promtool_accepts_the_alert_rules() -> None:
    res = subprocess.run(
        [PROMTOOL, "check", "rules", "alerts.yml"], cwd=PROM, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_alert_rules_pass_their_unit_tests() -> None:
    res = subprocess.run(
        [PROMTOOL, "test", "rules", "alerts.test.yml"], cwd=PROM, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_rule_unit_tests_fail_when_a_rule_is_wrong(tmp_path: Path) -> None:
    # the unit tests are not vacuous: a stalled-flow rule that ignores the input rate fails them
    text = (PROM / "alerts.yml").read_text()
    broken = text.replace("rate(lernflow_events_in_total[10m])) > 0", "rate(nothing[10m])) > 0")
    assert broken != text
    (tmp_path / "alerts.yml").write_text(broken)
    shutil.copy(PROM / "alerts.test.yml", tmp_path)
    res = subprocess.run(
        [PROMTOOL, "test", "rules", "alerts.test.yml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert res.returncode != 0
    assert "LernflowStalled" in res.stdout + res.stderr


def test_the_rules_cover_lag_failures_stopped_flows_and_snapshots() -> None:
    named = {n for r in _rules() for n in metric_names(r["expr"])}
    assert {"lernflow_consumer_lag", "lernflow_events_failed_total", "up"} <= named
    assert "bytewax_snapshot_duration_seconds_count" in named
    assert all(r["labels"]["severity"] in ("warning", "critical") for r in _rules())


def test_every_metric_a_rule_names_is_served(bytewax_served: frozenset[str]) -> None:
    for rule in _rules():
        assert not _check(metric_names(rule["expr"]), bytewax_served), rule["alert"]


# --- the dashboard ---------------------------------------------------------------------------


def _dashboard_queries(dash: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) of every query: panel targets and query variables."""
    for panel in dash["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                yield inner["title"], target["expr"]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            m = re.fullmatch(r"label_values\((\w+),\s*\w+\)", query)
            assert m, f"variable {var['name']}: {query}"
            yield f"${var['name']}", m.group(1)


def _grafana_to_promql(expr: str) -> str:
    return expr.replace("$__rate_interval", "5m").replace("$flow", ".+")


def test_every_metric_the_dashboard_queries_is_served(bytewax_served: frozenset[str]) -> None:
    dash = json.loads(DASHBOARD.read_text())
    queries = list(_dashboard_queries(dash))
    assert len(queries) >= 10
    named: set[str] = set()
    for title, expr in queries:
        names = metric_names(_grafana_to_promql(expr))
        assert names, title
        assert not _check(names, bytewax_served), title
        named |= names
    # every lernflow metric is on the dashboard
    for name, metric in metrics.ALL.items():
        wanted = f"{name}_bucket" if isinstance(metric, Histogram) else name
        assert wanted in named or f"{name}_count" in named, name


def test_the_dashboard_check_catches_a_metric_nobody_exports(
    bytewax_served: frozenset[str],
) -> None:
    for bad in (
        "rate(lernflow_events_total[5m])",
        "lernflow_batch_size",
        "rate(bytewax_snapshots_total[5m])",
    ):
        assert _check(metric_names(bad), bytewax_served), bad


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    dash = json.loads(DASHBOARD.read_text())
    rules = [
        {"record": f"lernflow:dashboard_query_{i}", "expr": _grafana_to_promql(expr)}
        for i, (_, expr) in enumerate(_dashboard_queries(dash))
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    res = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_panels_have_unique_ids_and_fit_the_grid() -> None:
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        assert p["datasource"]["uid"] == "${datasource}", p["title"]


# --- the scrape job ----------------------------------------------------------------------------


def _pods_as_static_targets() -> list[dict[str, Any]]:
    """Every port of every pod template in deploy/kubernetes as Kubernetes pod discovery would
    list it (the __meta_kubernetes_* labels the scrape job relabels), plus a stranger's pod."""
    groups = []
    for path in sorted((ROOT / "deploy" / "kubernetes").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc["kind"] not in ("StatefulSet", "Deployment"):
                continue
            template = doc["spec"]["template"]
            labels = {
                "__meta_kubernetes_pod_label_" + re.sub(r"[^\w]", "_", k): v
                for k, v in template["metadata"]["labels"].items()
            }
            for c in template["spec"]["containers"]:
                for port in c.get("ports", []):
                    target = f"{doc['metadata']['name']}:{port['containerPort']}"
                    groups.append({"targets": [target], "labels": {
                        **labels,
                        "__meta_kubernetes_pod_name": f"{doc['metadata']['name']}-0",
                        "__meta_kubernetes_pod_container_port_name": port["name"],
                    }})  # fmt: skip
    groups.append({"targets": ["stranger:3030"], "labels": {
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": "other",
        "__meta_kubernetes_pod_container_port_name": "metrics",
    }})  # fmt: skip
    return groups


def test_the_scrape_job_keeps_each_flow_metrics_port_and_labels_it_with_its_flow(
    tmp_path: Path,
) -> None:
    # Debian's promtool has no Kubernetes discovery; the same job over static targets that
    # carry the pods' discovery labels runs the real relabelling
    config = yaml.safe_load((PROM / "scrape.yml").read_text())
    (job,) = config["scrape_configs"]
    assert "kubernetes_sd_configs" in job
    del job["kubernetes_sd_configs"]
    job["static_configs"] = _pods_as_static_targets()
    path = tmp_path / "scrape.yml"
    path.write_text(yaml.safe_dump(config))
    res = subprocess.run(
        [PROMTOOL, "check", "service-discovery", "--timeout=2s", str(path), job["job_name"]],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    kept = [t["labels"] for t in json.loads(res.stdout) if t["labels"]]
    assert sorted(t["flow"] for t in kept) == sorted(FLOWS)
    for t in kept:
        assert t["__address__"] == f"lernflow-{t['flow']}:3030"
        assert t["pod"] == f"lernflow-{t['flow']}-0"
    # the alert rules select this job
    rules = (PROM / "alerts.yml").read_text()
    assert f'up{{job="{job["job_name"]}"}}' in rules
    assert job["honor_labels"] is True  # the flows' own flow label is kept, not exported_flow
