"""deploy/kubernetes: valid against the Kubernetes schemas (offline), and consistent with the
code — one StatefulSet per registered flow, the command line `lernflow run` accepts, the
Bytewax process addresses of its own pods, probes on the metrics port and `lernflow status`,
settings that exist, secrets only in Secrets, recovery partitions split across processes.
docs/deploy.md describes the layout."""

from __future__ import annotations

import copy
import functools
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import typer
import yaml  # type: ignore[import-untyped]  # no stubs in the venv
from pydantic import SecretStr
from typer.testing import CliRunner

from lernflow.cli.app import app
from lernflow.config.settings import env_var_for, load_settings
from lernflow.flows.registry import FLOWS

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
K8S_VERSION = "1.30"  # the oldest Kubernetes the manifests are checked against (pod-index label)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_WORKLOADS = ("StatefulSet", "Deployment", "Job")
POD_INDEX = "metadata.labels['apps.kubernetes.io/pod-index']"


@functools.cache
def _docs(path: Path) -> list[dict[str, Any]]:
    """The manifests of one file (cached: read-only, copy before changing one)."""
    return [d for d in yaml.load_all(path.read_text(), Loader=_LOADER) if d]


def _manifest_files() -> list[Path]:
    return sorted(p for p in KUBE.rglob("*.yaml") if p.name != "kustomization.yaml")


def _all_docs() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in _manifest_files():
        for doc in _docs(path):
            yield path, doc


def _of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in _all_docs() if d["kind"] == kind}


def _container(sts: dict[str, Any], name: str = "flow") -> dict[str, Any]:
    pod = sts["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] + pod.get("initContainers", []) if c["name"] == name)


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def _parses(argv: list[str]) -> None:
    """``lernflow <argv>`` parses: no unknown command or option (``--help`` stops before any
    command runs; an unknown option fails first, with exit code 2)."""
    result = CliRunner().invoke(app, [*argv, "--help"])
    assert result.exit_code == 0, f"lernflow {' '.join(argv)}: {result.output}"


def _cli_envvars() -> set[str]:
    """Every environment variable a `lernflow` option reads (LERNFLOW_WORKERS, ...)."""
    names: set[str] = set()

    def walk(cmd: Any) -> None:
        for p in cmd.params:
            envvar = getattr(p, "envvar", None)
            names.update([envvar] if isinstance(envvar, str) else envvar or [])
        for sub in getattr(cmd, "commands", {}).values():
            walk(sub)

    walk(typer.main.get_command(app))
    return names


def _settings_envvars() -> tuple[set[str], set[str]]:
    """(every LERNFLOW_* settings variable, those whose value is a secret)."""
    names: set[str] = set()
    secret: set[str] = set()
    for group in load_settings().groups().values():
        model = type(group)
        for field, info in model.model_fields.items():
            env = env_var_for(model, field)
            names.add(env)
            if "SecretStr" in repr(info.annotation) or info.annotation is SecretStr:
                secret.add(env)
    return names, secret


# --- schemas -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", _manifest_files(), ids=lambda p: str(p.relative_to(KUBE)))
def test_every_manifest_is_valid_against_the_kubernetes_schemas(path: Path) -> None:
    docs = _docs(path)
    assert docs, f"{path} holds no manifest"
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_schema_check_rejects_a_misspelt_field() -> None:
    # the offline validator is strict: an unknown field fails, as the API server would refuse it
    sts = copy.deepcopy(_of_kind("StatefulSet")["lernflow-activity-aggregate-updater"])
    sts["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_secret_example_and_the_job() -> None:
    kust = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    listed = {KUBE / r for r in kust["resources"]}
    assert all(p.is_file() for p in listed), sorted(p for p in listed if not p.is_file())
    apart = {KUBE / "secret.example.yaml", KUBE / "jobs" / "schema-apply.yaml"}
    assert listed == set(_manifest_files()) - apart
    assert [i["name"] for i in kust["images"]] == ["lernflow"]


# --- one StatefulSet per flow ------------------------------------------------------------


def test_one_statefulset_service_and_disruption_budget_per_registered_flow() -> None:
    want = {f"lernflow-{flow}" for flow in FLOWS}
    assert set(_of_kind("StatefulSet")) == want
    # and lernflow serve, the certificate page (a Deployment)
    assert set(_of_kind("PodDisruptionBudget")) == want | {"lernflow-serve"}
    assert set(_of_kind("Service")) == want | {"lernflow-serve"}
    assert set(_of_kind("Deployment")) == {"lernflow-serve"}


@pytest.mark.parametrize("flow", sorted(FLOWS))
def test_the_flow_container_runs_its_flow_with_metrics_on_the_probed_port(flow: str) -> None:
    sts = _of_kind("StatefulSet")[f"lernflow-{flow}"]
    c = _container(sts)
    assert c["args"][:2] == ["run", flow]
    _parses(c["args"])
    port = int(c["args"][c["args"].index("--metrics-port") + 1])
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["metrics"] == port
    for probe in ("startupProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}, probe
    ready = c["readinessProbe"]["exec"]["command"]
    assert ready == ["lernflow", "status", flow]
    _parses(ready[1:])
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    assert c["resources"]["limits"]["memory"]


@pytest.mark.parametrize("flow", sorted(FLOWS))
def test_processes_find_each_other_through_the_headless_service(flow: str) -> None:
    name = f"lernflow-{flow}"
    sts, svc = _of_kind("StatefulSet")[name], _of_kind("Service")[name]
    assert sts["spec"]["serviceName"] == name
    assert svc["spec"]["clusterIP"] == "None"
    # peers must resolve before they are ready, or a multi-process flow never forms
    assert svc["spec"]["publishNotReadyAddresses"] is True
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    cluster_port = {p["name"]: p["containerPort"] for p in _container(sts)["ports"]}["cluster"]
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]}["cluster"] == cluster_port
    replicas = sts["spec"]["replicas"]
    for c in (_container(sts), _container(sts, "recovery-partitions")):
        env = _env(c)
        assert env["LERNFLOW_PROCESS_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == POD_INDEX
        addresses = env["LERNFLOW_ADDRESSES"]["value"].split(";")
        assert addresses == [f"{name}-{k}.{name}:{cluster_port}" for k in range(replicas)]
    # the whole cluster starts and stops together (docs/deploy.md#upgrades)
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert sts["spec"]["updateStrategy"]["type"] == "OnDelete"


@pytest.mark.parametrize("flow", sorted(FLOWS))
def test_the_recovery_volume_is_where_the_flow_keeps_its_recovery_store(flow: str) -> None:
    sts = _of_kind("StatefulSet")[f"lernflow-{flow}"]
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    image_env = _containerfile_env()
    for c in (_container(sts), _container(sts, "recovery-partitions")):
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        assert mounts[claim["metadata"]["name"]] == image_env["LERNFLOW_RUN_RECOVERY_DIR"]
    assert sts["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == _containerfile_uid()


def _workloads() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{d['kind']}/{d['metadata']['name']}", d) for _, d in _all_docs()
            if d["kind"] in _WORKLOADS]  # fmt: skip


@pytest.mark.parametrize(("name", "workload"), _workloads(), ids=[n for n, _ in _workloads()])
def test_pods_run_as_the_image_user_without_privileges(name: str, workload: dict[str, Any]) -> None:
    pod = workload["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True, name
    assert pod["securityContext"]["runAsUser"] == _containerfile_uid()
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    for c in pod["containers"] + pod.get("initContainers", []):
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}


@pytest.mark.parametrize("flow", sorted(FLOWS))
def test_the_disruption_budget_covers_the_flow_pods(flow: str) -> None:
    name = f"lernflow-{flow}"
    pdb, sts = _of_kind("PodDisruptionBudget")[name], _of_kind("StatefulSet")[name]
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1


def test_the_generator_has_its_signing_keys_and_certificate_storage() -> None:
    sts = _of_kind("StatefulSet")["lernflow-certificate-generator"]
    mounts = {m["mountPath"]: m["name"] for m in _container(sts)["volumeMounts"]}
    image_env = _containerfile_env()
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    keys = volumes[mounts[image_env["LERNFLOW_CERT_KEYS_DIR"]]]
    assert keys["secret"]["secretName"] == "lernflow-certificate-keys"
    storage = volumes[mounts[image_env["LERNFLOW_CERT_STORAGE_DIR"]]]
    claim = storage["persistentVolumeClaim"]["claimName"]
    assert _of_kind("PersistentVolumeClaim")[claim]["spec"]["accessModes"] == ["ReadWriteMany"]


def test_the_certificate_page_reads_the_store_and_only_the_public_keys() -> None:
    dep = _of_kind("Deployment")["lernflow-serve"]
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["args"] == ["serve"]
    _parses(c["args"])
    env = {n: e["value"] for n, e in _env(c).items()}
    http = {p["name"]: p["containerPort"] for p in c["ports"]}["http"]
    assert env["LERNFLOW_SERVE_HOST"] == "0.0.0.0" and int(env["LERNFLOW_SERVE_PORT"]) == http
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["port"] == "http", probe
    image_env = _containerfile_env()
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    store = mounts[image_env["LERNFLOW_CERT_STORAGE_DIR"]]
    assert store["readOnly"] is True
    generator = _of_kind("StatefulSet")["lernflow-certificate-generator"]["spec"]["template"]
    written = {v["name"]: v for v in generator["spec"]["volumes"]}["certificates"]
    assert (
        volumes[store["name"]]["persistentVolumeClaim"]["claimName"]
        == (written["persistentVolumeClaim"]["claimName"])
    )
    keys = volumes[mounts[image_env["LERNFLOW_CERT_KEYS_DIR"]]["name"]]
    assert "configMap" in keys  # public keys; the signing keys' Secret is the generator's only
    assert all(v.get("secret", {}).get("secretName") != "lernflow-certificate-keys"
               for v in pod["volumes"])  # fmt: skip
    selector = _of_kind("Service")["lernflow-serve"]["spec"]["selector"]
    assert selector.items() <= dep["spec"]["template"]["metadata"]["labels"].items()


def test_the_schema_job_runs_schema_apply() -> None:
    job = _of_kind("Job")["lernflow-schema-apply"]
    (c,) = job["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["schema", "apply"]
    _parses(c["args"])


def test_a_command_line_the_cli_refuses_fails_the_parse_check() -> None:
    with pytest.raises(AssertionError, match="metrics-prot"):
        _parses(["run", "activity-aggregate-updater", "--metrics-prot", "3030"])
    with pytest.raises(AssertionError):
        _parses(["statuss", "activity-aggregate-updater"])


# --- settings ----------------------------------------------------------------------------


def _every_lernflow_env() -> Iterator[tuple[str, str]]:
    """(where, variable name) of every LERNFLOW_* variable the manifests set."""
    for path, doc in _all_docs():
        where = f"{path.relative_to(KUBE)}:{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in ("ConfigMap", "Secret"):
            for key in {**doc.get("data", {}), **doc.get("stringData", {})}:
                yield where, key
            continue
        pod = doc.get("spec", {}).get("template", {}).get("spec")
        if doc["kind"] in _WORKLOADS:
            for c in pod["containers"] + pod.get("initContainers", []):
                for name in _env(c):
                    yield f"{where}:{c['name']}", name


def test_every_lernflow_variable_set_is_a_setting_or_a_cli_option() -> None:
    settings, _ = _settings_envvars()
    known = settings | _cli_envvars()
    unknown = [(w, n) for w, n in _every_lernflow_env() if n.startswith("LERNFLOW_")]
    unknown = [(w, n) for w, n in unknown if n not in known]
    assert not unknown
    for name in [n for n in _containerfile_env() if n.startswith("LERNFLOW_")]:
        assert name in known, f"Containerfile ENV {name}"


def test_secret_settings_come_only_from_secrets() -> None:
    _, secret = _settings_envvars()
    assert {"LERNFLOW_CASSANDRA_PASSWORD", "LERNFLOW_REDIS_PASSWORD"} <= secret
    cm = _of_kind("ConfigMap")["lernflow-settings"]
    assert not secret & set(cm["data"])
    for path, doc in _all_docs():
        if doc["kind"] not in _WORKLOADS:
            continue
        pod = doc["spec"]["template"]["spec"]
        for c in pod["containers"] + pod.get("initContainers", []):
            literal = {n for n, e in _env(c).items() if "value" in e}
            assert not literal & secret, (path, c["name"])
            for ref in c.get("envFrom", []):
                assert set(ref) <= {"configMapRef", "secretRef"}
    example = _of_kind("Secret")["lernflow-secrets"]["stringData"]
    assert secret & set(example)


def test_the_configmap_and_secret_example_are_valid_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in list(os.environ):
        if key.startswith("LERNFLOW_"):
            monkeypatch.delenv(key)
    values = {
        **_of_kind("ConfigMap")["lernflow-settings"]["data"],
        **_of_kind("Secret")["lernflow-secrets"]["stringData"],
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.topics.env == values["LERNFLOW_ENV"]
    assert settings.cassandra.replication_factor == 3


# --- the recovery partitions, split across processes --------------------------------------


def _init_script() -> str:
    sts = _of_kind("StatefulSet")["lernflow-activity-aggregate-updater"]
    command = _container(sts, "recovery-partitions")["command"]
    assert command[:2] == ["/bin/sh", "-c"]
    return str(command[2])


def _run_init(tmp_path: Path, process_id: int, processes: int, partitions: int) -> set[str]:
    recovery = tmp_path / f"pod-{process_id}"
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "LERNFLOW_RUN_RECOVERY_DIR": str(recovery),
        "LERNFLOW_ENV": "dev",
        "FLOW": "activity-aggregate-updater",
        "LERNFLOW_PROCESS_ID": str(process_id),
        "LERNFLOW_ADDRESSES": ";".join(f"127.0.0.1:{2101 + k}" for k in range(processes)),
        "RECOVERY_PARTITIONS": str(partitions),
        "TMPDIR": str(tmp_path),
    }
    subprocess.run(["/bin/sh", "-c", _init_script()], env=env, check=True, timeout=60)
    store = recovery / "dev" / "activity-aggregate-updater"
    return {p.name for p in store.glob("part-*.sqlite3")}


def test_each_process_keeps_its_own_share_of_the_recovery_partitions(tmp_path: Path) -> None:
    # Bytewax needs every partition somewhere in the cluster; each pod has its own volume
    shares = [_run_init(tmp_path, k, processes=3, partitions=8) for k in range(3)]
    assert shares[0] == {"part-0.sqlite3", "part-3.sqlite3", "part-6.sqlite3"}
    assert set().union(*shares) == {f"part-{i}.sqlite3" for i in range(8)}
    assert sum(len(s) for s in shares) == 8  # none twice
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith("tmp")]
    assert not left, "the init script leaves its temporary folder behind"


def test_the_init_container_waits_for_the_addresses_to_resolve_then_gives_up() -> None:
    # Bytewax stops at start when an address does not resolve; the pod waits for its peers'
    # DNS names instead (and fails, to be restarted, when they never come)
    env = {
        "PATH": os.environ["PATH"],
        "LERNFLOW_ADDRESSES": "127.0.0.1:2101;lernflow-nowhere.invalid:2101",
        "DNS_WAIT_SECONDS": "3",
    }
    t0 = time.monotonic()
    res = subprocess.run(
        ["/bin/sh", "-c", _init_script()], env=env, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 1
    assert "lernflow-nowhere.invalid:2101 does not resolve" in res.stderr
    assert 3 <= time.monotonic() - t0 < 30


def test_one_process_keeps_every_partition_and_a_used_volume_is_left_alone(
    tmp_path: Path,
) -> None:
    assert len(_run_init(tmp_path, 0, processes=1, partitions=8)) == 8
    store = tmp_path / "pod-0" / "dev" / "activity-aggregate-updater"
    (store / "part-0.sqlite3").write_bytes(b"state")
    for extra in store.glob("part-[1-7].sqlite3"):
        extra.unlink()
    assert _run_init(tmp_path, 0, processes=1, partitions=8) == {"part-0.sqlite3"}
    assert (store / "part-0.sqlite3").read_bytes() == b"state"


# --- the Containerfile, as the manifests rely on it ----------------------------------------


def _containerfile_env() -> dict[str, str]:
    text = (ROOT / "deploy" / "Containerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", line))
    return env


def _containerfile_uid() -> int:
    users = re.findall(r"^USER (\d+)", (ROOT / "deploy" / "Containerfile").read_text(), re.M)
    return int(users[-1])
