"""The activity flow run as deploy/kubernetes runs it (docs/deploy.md).

Two processes, each with its own recovery volume prepared by the StatefulSet's
`recovery-partitions` init container, the process id and addresses from the environment: each
keeps only its share of the partitions, the second run resumes every input partition from
them, and the state is the one a single worker makes (docs/deploy.md#the-recovery-volume).

One pod's probes: the container's command line serves /metrics (liveness) with every metric
the alert rules and the dashboard name, `lernflow status FLOW` (readiness) exits 0 while it runs
and 1 once SIGTERM has stopped it (exit 0)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # no stubs in the venv

from bench.workloads import activity_events
from lernflow.config import Settings
from lernflow.sinks.kafka_producer import DeliveryTrackingProducer, OutMessage
from tests.flowkit import run_to_end
from tests.integration.test_activity_flow import state
from tests.integration.test_activity_recovery import _reset, load_activity
from tests.unit.test_deploy_monitoring import SCRAPE_SERIES, _dashboard_queries, metric_names

FLOW = "activity-aggregate-updater"
LEARNERS = 120
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MANIFEST = DEPLOY / "kubernetes" / "flows" / f"{FLOW}.yaml"


def _init_container() -> dict[str, Any]:
    sts = next(d for d in yaml.safe_load_all(MANIFEST.read_text()) if d["kind"] == "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    init: dict[str, Any] = next(
        c for c in pod["initContainers"] if c["name"] == "recovery-partitions"
    )
    return init


def _free_ports(n: int) -> list[int]:
    """n free ports in 28000-28999 (the range this project's helpers may use)."""
    ports: list[int] = []
    for port in range(28000 + (os.getpid() * 7) % 900, 29000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == n:
            return ports
    raise AssertionError("no free ports in 28000-28999")


def _pod_env(settings: Settings, volume: Path, k: int, addresses: str) -> dict[str, str]:
    return {
        **os.environ,
        **settings.to_env(),
        "LERNFLOW_RUN_RECOVERY_DIR": str(volume),
        "LERNFLOW_PROCESS_ID": str(k),
        "LERNFLOW_ADDRESSES": addresses,
        "LERNFLOW_WORKERS": "1",
        "LERNFLOW_LOG_LEVEL": "INFO",
    }


def _run_cluster(
    settings: Settings, volumes: list[Path], ports: list[int], tmp: Path, run: int
) -> list[str]:
    """Run both processes to the end of the input as the pods would; their logs. ``ports``:
    the processes' cluster ports, then their metrics ports."""
    addresses = ";".join(f"127.0.0.1:{p}" for p in ports[: len(volumes)])
    procs, logs = [], []
    try:
        for k, volume in enumerate(volumes):
            log = tmp / f"run{run}-pod{k}.log"
            logs.append(log)
            cmd = [sys.executable, "-m", "lernflow.cli", "run", FLOW, "--until-caught-up",
                   "--metrics-port", str(ports[len(volumes) + k])]  # fmt: skip
            env = _pod_env(settings, volume, k, addresses)
            procs.append(
                subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
            )
        for p in procs:
            p.wait(timeout=300)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    texts = [log.read_text() for log in logs]
    assert [p.returncode for p in procs] == [0, 0], [t[-2000:] for t in texts]
    return texts


def _share(volume: Path, settings: Settings) -> set[str]:
    store = volume / settings.topics.env / FLOW
    return {p.name for p in store.glob("part-*.sqlite3")}


def test_two_pods_with_their_own_recovery_volumes_resume_from_their_shares(
    settings: Settings, tmp_path: Path
) -> None:
    events = activity_events(LEARNERS)
    load_activity(settings, events, LEARNERS)
    run_to_end(FLOW, settings)
    single = state(settings)

    _reset(settings)
    cluster = settings.with_overrides(
        topics=settings.topics.model_copy(update={"env": settings.topics.env + "-k"})
    )
    half = len(events) // 2
    load_activity(cluster, events[:half], LEARNERS)
    ports = _free_ports(4)  # two cluster ports, two metrics ports
    addresses = ";".join(f"127.0.0.1:{p}" for p in ports[:2])
    volumes = [tmp_path / "pod-0", tmp_path / "pod-1"]
    init = _init_container()
    partitions = str(next(e["value"] for e in init["env"] if e["name"] == "RECOVERY_PARTITIONS"))
    command = [str(a) for a in init["command"]]
    for k, volume in enumerate(volumes):
        env = {**_pod_env(cluster, volume, k, addresses), "FLOW": FLOW,
               "RECOVERY_PARTITIONS": partitions, "TMPDIR": str(tmp_path),
               "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # fmt: skip
        subprocess.run(command, env=env, check=True, timeout=60)
    shares = [_share(v, cluster) for v in volumes]
    assert not shares[0] & shares[1] and len(shares[0] | shares[1]) == int(partitions)

    first = _run_cluster(cluster, volumes, ports, tmp_path, 1)
    assert all("resume state None" in log for log in first)
    # lernflow run kept each volume's share: it did not create the missing partitions
    assert [_share(v, cluster) for v in volumes] == shares

    inp = cluster.topics.full(cluster.topics.course_batch_job_request)
    DeliveryTrackingProducer(cluster.kafka).produce_all(
        [OutMessage(inp, v, key=k) for k, v in events[half:]]
    )
    second = _run_cluster(cluster, volumes, ports, tmp_path, 2)
    resumed = [m for log in second for m in re.findall(r"\(resume state (\w+)\)", log)]
    assert resumed and "None" not in resumed, second
    assert [_share(v, cluster) for v in volumes] == shares
    assert state(cluster) == single


def _served(exposition: str) -> set[str]:
    """Every series name a /metrics text can hold: its samples, and each declared family's
    (a histogram's _bucket/_count/_sum; a family with no sample yet counts too)."""
    names = set(re.findall(r"^([a-zA-Z_:][\w:]*)[{ ]", exposition, re.MULTILINE))
    for family, kind in re.findall(r"^# TYPE (\S+) (\S+)", exposition, re.MULTILINE):
        names |= (
            {f"{family}_bucket", f"{family}_count", f"{family}_sum"}
            if kind == ("histogram")
            else {family}
        )
    return names


def _status(env: dict[str, str]) -> int:
    cmd = [sys.executable, "-m", "lernflow.cli", "status", FLOW]
    return subprocess.run(cmd, env=env, capture_output=True, timeout=120).returncode


def test_a_flow_pod_answers_its_probes_and_serves_what_alerts_and_dashboard_name(
    settings: Settings, tmp_path: Path
) -> None:
    events = activity_events(LEARNERS)
    load_activity(settings, events, LEARNERS)
    cluster_port, metrics_port = _free_ports(2)
    env = _pod_env(settings, tmp_path / "pod-0", 0, f"127.0.0.1:{cluster_port}")
    # the container's command line, from the manifest, with this test's metrics port
    sts = next(d for d in yaml.safe_load_all(MANIFEST.read_text()) if d["kind"] == "StatefulSet")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    args = [str(a) for a in container["args"]]
    args[args.index("--metrics-port") + 1] = str(metrics_port)
    ready = [str(a) for a in container["readinessProbe"]["exec"]["command"]]
    assert ready == ["lernflow", "status", FLOW]
    log = tmp_path / "pod.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lernflow.cli", *args],
        env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        text = ""
        while not (
            f'lernflow_events_in_total{{flow="{FLOW}"}} {float(len(events))}' in text
            and "bytewax_snapshot_duration_seconds_count" in text
        ):
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, text[-3000:]
            time.sleep(1)
            try:
                url = f"http://127.0.0.1:{metrics_port}/metrics"  # the liveness probe's GET
                with urllib.request.urlopen(url, timeout=5) as r:
                    text = r.read().decode()
            except OSError:
                text = ""
        served = _served(text) | SCRAPE_SERIES
        for name, expr in _named_queries():
            missing = metric_names(expr.replace("$__rate_interval", "5m")) - served
            assert not missing, (name, missing)
        assert _status(env) == 0  # the readiness probe: running and ok
        proc.send_signal(signal.SIGTERM)  # what scaling to 0 or an upgrade sends
        assert proc.wait(timeout=120) == 0, log.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _status(env) == 1  # stopped: the readiness probe fails


def _named_queries() -> list[tuple[str, str]]:
    """(alert or panel, PromQL) of every alert rule and dashboard query in deploy/."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    out = [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]
    dash = json.loads((DEPLOY / "grafana" / "lernflow.json").read_text())
    return out + [(t, e.replace("$flow", ".+")) for t, e in _dashboard_queries(dash)]
