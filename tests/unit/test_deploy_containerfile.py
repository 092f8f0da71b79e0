"""deploy/Containerfile, checked by reading it: podman cannot build it here (no registry to
pull the base image from; the measured error is in docs/deploy.md), so these tests check what
a build would rely on and what a cluster expects of the image — a pinned base, a non-root
user, no remote ADD, `lernflow` as the entry point, every package folder copied, the renderers'
shared libraries and nothing to compile with in the runtime stage."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "deploy" / "Containerfile"
METRICS_PORT = 3030  # the manifests' --metrics-port (tests/unit/test_deploy_manifests.py)


@dataclass
class Instruction:
    """One Containerfile instruction: keyword and its arguments (continuations joined)."""

    keyword: str
    args: str


@dataclass
class Stage:
    """One FROM … stage."""

    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(ARG defaults before the first FROM, stages) of a Containerfile."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the last instruction ends with a line continuation"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            assert m, line
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda v: args[v[1] or v[2]], m[1])
            stages.append(Stage(image, m[2]))
        elif not stages and keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append(Instruction(keyword, rest))
    return args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(CONTAINERFILE.read_text())[1]


def test_the_parser_reads_continuations_comments_and_stages() -> None:
    args, parsed = parse(
        "ARG B=img:1\n# c\nFROM ${B} AS one\nRUN a \\\n  # inner\n  b\nFROM one\nUSER 7\n"
    )
    assert args == {"B": "img:1"}
    assert [(s.image, s.name) for s in parsed] == [("img:1", "one"), ("one", None)]
    assert parsed[0].all("RUN") == ["a b"]


def _pinned(image: str) -> bool:
    if "@sha256:" in image:
        return bool(re.search(r"@sha256:[0-9a-f]{64}$", image))
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


def test_every_base_image_is_pinned_by_tag_or_digest(stages: list[Stage]) -> None:
    names = {s.name for s in stages if s.name}
    for s in stages:
        assert s.image in names or _pinned(s.image), s.image
    assert not _pinned("python") and not _pinned("python:latest")
    assert _pinned("docker.io/library/python:3.11-slim-bookworm")
    assert not _pinned("localhost:5000/python")


def test_the_base_python_satisfies_requires_python(stages: list[Stage]) -> None:
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    low = re.search(r">=\s*3\.(\d+)", requires)
    high = re.search(r"<\s*3\.(\d+)", requires)
    assert low and high
    for s in stages:
        m = re.search(r"python:3\.(\d+)", s.image)
        if m:
            assert int(low[1]) <= int(m[1]) < int(high[1]), s.image


def test_the_image_runs_as_a_non_root_user(stages: list[Stage]) -> None:
    users = stages[-1].all("USER")
    assert users, "the runtime stage sets no USER (it would run as root)"
    uid, _, gid = users[-1].partition(":")
    # numeric, so Kubernetes' runAsNonRoot can check it without /etc/passwd
    assert uid.isdigit() and int(uid) > 0
    assert not gid or (gid.isdigit() and int(gid) > 0)


def test_nothing_is_added_from_a_remote_url(stages: list[Stage]) -> None:
    for s in stages:
        for args in s.all("ADD") + s.all("COPY"):
            assert not re.search(r"\b(https?|ftp|git)://", args), args
        for run in s.all("RUN"):
            assert not re.search(r"\b(curl|wget)\b", run), run


def test_the_entry_point_is_lernflow_in_exec_form(stages: list[Stage]) -> None:
    runtime = stages[-1]
    (entry,) = runtime.all("ENTRYPOINT")
    argv = json.loads(entry)  # exec form: SIGTERM reaches the process, no shell in between
    assert argv[-1] == "lernflow"
    assert argv[0] in ("lernflow", "/usr/bin/tini")
    (cmd,) = runtime.all("CMD")
    assert isinstance(json.loads(cmd), list)


def test_every_package_folder_is_copied_into_the_build(stages: list[Stage]) -> None:
    copied = {
        src.rstrip("/")
        for s in stages
        for a in s.all("COPY")
        if "--from" not in a
        for src in [w for w in a.split() if not w.startswith("--")][:-1]
    }
    linked = {p.name for p in (ROOT / "lernflow").iterdir() if p.is_symlink()}
    assert linked, "lernflow/ links no package folder"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    missing = (linked | {"lernflow", "pyproject.toml", pyproject["readme"]}) - copied
    assert not missing


def _setup_renderer_packages() -> set[str]:
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    return set(re.findall(r"dpkg -s (\S+) .*\|\| need\+=", setup))


def test_the_runtime_stage_has_the_renderer_libraries_and_no_build_tools(
    stages: list[Stage],
) -> None:
    runtime = " ".join(stages[-1].all("RUN"))
    renderer_libs = _setup_renderer_packages()
    assert {"libpango-1.0-0", "libcairo2"} <= renderer_libs
    for pkg in renderer_libs:
        assert re.search(rf"(?<![\w.-]){re.escape(pkg)}(?![\w.-])", runtime), pkg
    assert "--no-install-recommends" in runtime
    assert "rm -rf /var/lib/apt/lists/*" in runtime
    for tool in ("gcc", "build-essential", "pip install", "git"):
        assert not re.search(rf"(?<![\w-]){re.escape(tool)}(?![\w-])", runtime), tool


def test_the_health_check_and_exposed_port_are_the_metrics_port(stages: list[Stage]) -> None:
    runtime = stages[-1]
    exposed = {int(p) for a in runtime.all("EXPOSE") for p in a.split()}
    assert {2101, METRICS_PORT} <= exposed
    (health,) = runtime.all("HEALTHCHECK")
    assert f"127.0.0.1:{METRICS_PORT}/metrics" in health


def test_state_lives_outside_the_working_copy_defaults(stages: list[Stage]) -> None:
    env = " ".join(stages[-1].all("ENV"))
    for name in (
        "LERNFLOW_RUN_RECOVERY_DIR",
        "LERNFLOW_CERT_STORAGE_DIR",
        "LERNFLOW_CERT_KEYS_DIR",
    ):
        m = re.search(rf"{name}=(\S+)", env)
        assert m and m[1].startswith("/"), name
