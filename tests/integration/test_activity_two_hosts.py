"""The activity flow as a 2-process Bytewax cluster on two "hosts": two network namespaces of
this machine joined by a veth pair, each process reaching the stack through its own veth link
to the host. The cluster ends in exactly the state one worker produces."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.workloads import activity_events
from lernflow.config import Settings
from tests.flowkit import read_json, run_to_end
from tests.integration.test_activity_flow import state
from tests.integration.test_activity_recovery import _reset, load_activity

FLOW = "activity-aggregate-updater"
LEARNERS = 200
RELAY = Path(__file__).resolve().parents[1] / "netns_relay.py"
TAG = f"lf{os.getpid() % 10000}"
HOSTS = {0: f"{TAG}h0", 1: f"{TAG}h1"}
CLUSTER_IP = {0: "10.231.0.1", 1: "10.231.0.2"}  # the veth pair between the two hosts
UPLINK = {0: ("10.231.10.1", "10.231.10.2"), 1: ("10.231.11.1", "10.231.11.2")}  # host, ns


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def two_hosts(settings: Settings) -> Iterator[dict[int, str]]:
    ports = [
        str(settings.kafka.brokers.split(":")[-1]),
        str(settings.cassandra.port),
        str(settings.redis.port),
    ]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for ns in HOSTS.values():
            _ip("netns", "add", ns)
            _ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        _ip("link", "add", f"{TAG}c0", "type", "veth", "peer", "name", f"{TAG}c1")
        for k, ns in HOSTS.items():
            _ip("link", "set", f"{TAG}c{k}", "netns", ns)
            _ip(
                "netns", "exec", ns, "ip", "addr", "add", f"{CLUSTER_IP[k]}/24", "dev", f"{TAG}c{k}"
            )
            _ip("netns", "exec", ns, "ip", "link", "set", f"{TAG}c{k}", "up")
            host_ip, ns_ip = UPLINK[k]
            _ip("link", "add", f"{TAG}u{k}", "type", "veth", "peer", "name", f"{TAG}n{k}")
            _ip("link", "set", f"{TAG}n{k}", "netns", ns)
            _ip("addr", "add", f"{host_ip}/30", "dev", f"{TAG}u{k}")
            _ip("link", "set", f"{TAG}u{k}", "up")
            _ip("netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/30", "dev", f"{TAG}n{k}")
            _ip("netns", "exec", ns, "ip", "link", "set", f"{TAG}n{k}", "up")
            # host side: uplink address -> the stack on 127.0.0.1; namespace side: its own
            # 127.0.0.1 -> the uplink (Kafka and Cassandra advertise 127.0.0.1)
            for cmd in (
                [sys.executable, str(RELAY), host_ip, "127.0.0.1", *ports],
                [
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    sys.executable,
                    str(RELAY),
                    "127.0.0.1",
                    host_ip,
                    *ports,
                ],
            ):
                p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                procs.append(p)
                assert p.stdout is not None and p.stdout.readline().strip() == b"ready"
        yield HOSTS
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for k, ns in HOSTS.items():
            subprocess.run(["ip", "link", "del", f"{TAG}u{k}"], capture_output=True)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_a_cluster_on_two_network_namespaces_reaches_the_single_worker_state(
    settings: Settings, two_hosts: dict[int, str], tmp_path: Path
) -> None:
    events = activity_events(LEARNERS)
    load_activity(settings, events, LEARNERS)
    run_to_end(FLOW, settings)
    single = state(settings)

    _reset(settings)
    cluster = settings.with_overrides(
        topics=settings.topics.model_copy(update={"env": settings.topics.env + "-n"})
    )
    load_activity(cluster, events, LEARNERS)
    addresses = ";".join(f"{CLUSTER_IP[k]}:2101" for k in sorted(two_hosts))
    env = {**os.environ, **cluster.to_env()}
    procs = []
    logs = []
    for k, ns in two_hosts.items():
        log = tmp_path / f"host{k}.log"
        logs.append(log)
        cmd = [
            "ip", "netns", "exec", ns, sys.executable, "-m", "lernflow.cli", "run", FLOW,
            "-i", str(k), "-a", addresses, "-w", "1", "--until-caught-up", "--no-recovery",
        ]  # fmt: skip
        procs.append(
            subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
        )
    for p in procs:
        p.wait(timeout=300)
    assert [p.returncode for p in procs] == [0, 0], [log.read_text()[-2000:] for log in logs]
    assert state(cluster) == single
    certs = read_json(cluster, cluster.topics.full(cluster.topics.issue_certificate_request))
    assert len(certs) == LEARNERS - LEARNERS // 5
