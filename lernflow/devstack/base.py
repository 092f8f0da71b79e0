"""What every server of the local stack shares: pid files, process start and stop, readiness
waits, the Java 17 lookup and fetching jars from Maven Central.

Each server (``kafka_server``, ``cassandra_server``, ``redis_server``, ``postgres_server``)
subclasses ``Server`` with its command line, config files and readiness probe.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lernflow.config import Settings

logger = logging.getLogger(__name__)

Reporter = Callable[[str], None]


class StackError(RuntimeError):
    """A server could not be prepared or started; the message carries the log tail and a fix."""


@dataclass(frozen=True)
class ServerStatus:
    """What ``stack status`` shows for one server."""

    name: str
    up: bool
    pid: int | None
    owned: bool
    port: int
    data_dir: Path
    log_file: Path
    rss_mb: float | None


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Return True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return True
    return state != "Z"


def listening_pid(port: int) -> int | None:
    """The pid of the process listening on TCP ``port`` (from /proc; None if not visible)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if (
                len(fields) > 9
                and fields[3] == "0A"
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                inodes.add(fields[9])
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return int(proc.name)
        except OSError:
            continue
    return None


def rss_mb(pid: int) -> float | None:
    """Return the resident set size of a process in MiB, if it can be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def find_java17(configured: Path | None) -> Path:
    """Return the path of a Java 17 ``java`` binary (Cassandra 5.0 cannot run on JDK 24+)."""
    candidates: list[Path] = []
    if configured:
        candidates.append(configured / "bin" / "java")
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]) / "bin" / "java")
    candidates += sorted(Path("/usr/lib/jvm").glob("*17*/bin/java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path))
    for java in candidates:
        if java.exists() and _java_major(java) == 17:
            return java
    msg = (
        "no OpenJDK 17 found (Cassandra 5.0 needs 17; JDK 24+ can never work). Fix: "
        "'apt-get install openjdk-17-jdk-headless' (make setup does it) or set "
        "LERNFLOW_STACK_JAVA_HOME to a JDK 17."
    )
    raise StackError(msg)


def _java_major(java: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    for token in out.split():
        token = token.strip('"')
        if token[:1].isdigit():
            head = token.split(".")[0]
            return int(head) if head.isdigit() else None
    return None


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>lernflow.stack</groupId><artifactId>{name}</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{deps}
  </dependencies>
</project>
"""


def _dep(coord: str) -> str:
    group, artifact, version = coord.split(":")
    return (
        f"    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
        f"<version>{version}</version></dependency>"
    )


class Server:
    """One server of the stack: its home, data, log and pid file under the stack dir."""

    name = ""
    port = 0

    def __init__(self, settings: Settings, report: Reporter) -> None:
        self.settings = settings
        self.report = report
        self.root = settings.stack.dir.resolve()
        self.home = self.root / self.name
        self.data_dir = self.home / "data"
        self.log_dir = self.home / "logs"
        self.pid_file = self.home / f"{self.name}.pid"
        self.log_file = self.log_dir / "server.out"

    # -- overridden per server -------------------------------------------------------------
    def prepare(self) -> None:
        """Fetch binaries, write configs, format storage (idempotent)."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        """Return True once the server answers a real request."""
        raise NotImplementedError

    def hints(self, log: str) -> str:
        """Return a known fix for a failed start, read from the log."""
        if "Address already in use" in log or "BindException" in log:
            return f"port {self.port} is taken by another process: stop it or change the port."
        return ""

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    # -- shared ----------------------------------------------------------------------------
    def owned_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def is_listening(self) -> bool:
        return port_open("127.0.0.1", self.port)

    def status(self) -> ServerStatus:
        owned = self.owned_pid()
        up = self.is_listening()
        pid = owned or (listening_pid(self.port) if up else None)
        return ServerStatus(
            name=self.name,
            up=up,
            pid=pid,
            owned=owned is not None,
            port=self.port,
            data_dir=self.data_dir,
            log_file=self.log_file,
            rss_mb=rss_mb(pid) if pid else None,
        )

    def launch(self) -> int | None:
        """Spawn the server unless its port already answers; return the pid to wait on."""
        if self.is_listening():
            return None
        pid = self.owned_pid()
        if pid:
            self.report(f"{self.name}: pid {pid} is still starting, waiting for it")
            return pid
        self.prepare()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            proc = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.home,
                env=self.env(),
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def await_ready(self, pid: int | None) -> str:
        """Wait until the server answers a real request; raise StackError with the log tail."""
        if pid is None:
            if self._wait_ready(timeout=30):
                who = "ours" if self.owned_pid() else "external, not started by this stack"
                return f"already up ({who})"
            msg = f"{self.name}: port {self.port} is open but the server does not answer"
            raise StackError(msg)
        if not self._wait_ready(timeout=self.settings.stack.start_timeout_s, pid=pid):
            log = _tail(self.log_file)
            hint = self.hints(log)
            died = "exited" if not _pid_alive(pid) else "did not become ready"
            msg = (
                f"{self.name} {died} (timeout {self.settings.stack.start_timeout_s:.0f}s)."
                f"\n--- last lines of {self.log_file} ---\n{log}\n"
                + (f"Fix: {hint}" if hint else "")
            )
            raise StackError(msg)
        return f"started (pid {pid})"

    def _wait_ready(self, timeout: float, pid: int | None = None) -> bool:
        deadline = time.monotonic() + timeout
        delay = 0.2
        while time.monotonic() < deadline:
            if pid is not None and not _pid_alive(pid):
                return False
            if self.is_listening():
                try:
                    if self.ready():
                        return True
                except Exception as exc:
                    logger.debug("%s not ready yet: %s", self.name, exc)
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)
        return False

    def stop(self, timeout: float = 60.0) -> str:
        pid = self.owned_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            if self.is_listening():
                return "not stopped: running but not started by this stack"
            return "not running"
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.2)
        if _pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
            while _pid_alive(pid):
                time.sleep(0.1)
            result = f"killed (pid {pid}) after {timeout:.0f}s"
        else:
            result = f"stopped (pid {pid})"
        self.pid_file.unlink(missing_ok=True)
        return result

    def wipe(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def _fetch_jars(self, coords: list[str], java: Path) -> Path:
        """Resolve Maven artifacts with their dependencies into ``lib/<name>-<tag>``."""
        digest = hashlib.sha256("\n".join(coords).encode()).hexdigest()[:8]
        tag = f"{coords[0].split(':')[2]}-{digest}"
        lib_root = self.settings.stack.lib_dir or self.root / "lib"
        lib = lib_root.resolve() / f"{self.name}-{tag}"
        marker = lib / ".complete"
        if marker.exists():
            return lib
        mvn = shutil.which("mvn")
        if not mvn:
            msg = "Maven is missing. Fix: 'apt-get install maven' (make setup does it)."
            raise StackError(msg)
        build = self.root / "build" / self.name
        build.mkdir(parents=True, exist_ok=True)
        (build / "pom.xml").write_text(
            _POM.format(name=self.name, deps="\n".join(_dep(c) for c in coords))
        )
        self.report(f"{self.name}: fetching {', '.join(coords)} with Maven (first start only)")
        t0 = time.monotonic()
        env = dict(os.environ, JAVA_HOME=str(java.parent.parent))
        proc = subprocess.run(
            [
                mvn, "-B", "-q", "-f", str(build / "pom.xml"),
                "dependency:copy-dependencies", f"-DoutputDirectory={lib}",
                "-DincludeScope=runtime",
            ],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            msg = f"Maven could not fetch {coords}:\n{(proc.stdout + proc.stderr)[-3000:]}"
            raise StackError(msg)
        marker.write_text("ok\n")
        self.report(
            f"{self.name}: {len(list(lib.glob('*.jar')))} jars in {time.monotonic() - t0:.1f}s"
        )
        return lib
