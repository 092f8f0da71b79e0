"""The local stack: real Kafka (KRaft), Cassandra and Redis servers started by the project.

Kafka and Cassandra run from Maven Central jars on OpenJDK 17, Redis from Debian's
``redis-server``. Everything binds to 127.0.0.1 and lives under ``StackSettings.dir``
(jars in ``lib/``, each server's data, logs and pid file in its own folder).

``up`` is idempotent: a server whose port already answers is left alone (and reported as
"external" when this stack did not start it). ``down`` stops only processes whose pid files
this stack wrote.
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

from config import Settings
from lernflow.kernel.clients import cassandra_session

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


class _Server:
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


class RedisServer(_Server):
    """Redis from Debian's ``redis-server`` binary, persisted to its data dir."""

    name = "redis"

    def __init__(self, settings: Settings, report: Reporter) -> None:
        super().__init__(settings, report)
        self.port = settings.redis.port

    def command(self) -> list[str]:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            msg = "redis-server is missing. Fix: 'apt-get install redis-server' (make setup)."
            raise StackError(msg)
        return [
            binary, "--bind", "127.0.0.1", "--port", str(self.port),
            "--dir", str(self.data_dir), "--daemonize", "no", "--protected-mode", "yes",
            "--save", "60 1", "--appendonly", "yes", "--databases", "64",
            "--logfile", "",
        ]  # fmt: skip

    def ready(self) -> bool:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()


class KafkaServer(_Server):
    """Apache Kafka 4.x, one combined KRaft broker+controller, from Maven Central jars."""

    name = "kafka"

    def __init__(self, settings: Settings, report: Reporter) -> None:
        super().__init__(settings, report)
        self.port = int(settings.kafka.brokers.split(",")[0].rsplit(":", 1)[1])
        self.controller_port = self.port + 1

    def _lib(self) -> Path:
        st = self.settings.stack
        return self._fetch_jars(
            [
                f"org.apache.kafka:kafka_2.13:{st.kafka_version}",
                f"org.apache.logging.log4j:log4j-core:{st.log4j_version}",
                f"org.apache.logging.log4j:log4j-slf4j-impl:{st.log4j_version}",
            ],
            find_java17(st.java_home),
        )

    def prepare(self) -> None:
        java = find_java17(self.settings.stack.java_home)
        lib = self._lib()
        self.home.mkdir(parents=True, exist_ok=True)
        kafka = self.settings.kafka
        (self.home / "server.properties").write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={self.data_dir}",
                    f"num.partitions={kafka.partitions}",
                    "num.recovery.threads.per.data.dir=1",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=4",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms="
                    f"{self.settings.stack.kafka_group_rebalance_delay_ms}",
                    "auto.create.topics.enable=false",
                    "log.retention.hours=48",
                    "log.segment.bytes=134217728",
                    "",
                ]
            )
        )
        (self.home / "log4j2.properties").write_text(
            "\n".join(
                [
                    "status = warn",
                    "appender.out.type = Console",
                    "appender.out.name = STDOUT",
                    "appender.out.layout.type = PatternLayout",
                    "appender.out.layout.pattern = [%d] %p %m (%c)%n",
                    "rootLogger.level = INFO",
                    "rootLogger.appenderRef.out.ref = STDOUT",
                    "logger.kafka.name = kafka",
                    "logger.kafka.level = WARN",
                    "logger.apache.name = org.apache.kafka",
                    "logger.apache.level = WARN",
                    "",
                ]
            )
        )
        if not (self.data_dir / "meta.properties").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            cp = f"{lib}/*"
            uuid = subprocess.run(
                [str(java), "-cp", cp, "kafka.tools.StorageTool", "random-uuid"],
                capture_output=True, text=True, check=True,
            ).stdout.strip().splitlines()[-1]  # fmt: skip
            fmt = subprocess.run(
                [
                    str(java), "-cp", cp,
                    f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
                    "kafka.tools.StorageTool", "format", "-t", uuid,
                    "-c", str(self.home / "server.properties"),
                ],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if fmt.returncode != 0:
                msg = f"formatting Kafka storage failed:\n{fmt.stdout}\n{fmt.stderr}"
                raise StackError(msg)
            self.report(f"kafka: storage formatted (cluster id {uuid})")

    def command(self) -> list[str]:
        java = find_java17(self.settings.stack.java_home)
        heap = self.settings.stack.kafka_heap
        return [
            str(java), f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp", f"{self._lib()}/*", "kafka.Kafka", str(self.home / "server.properties"),
        ]  # fmt: skip

    def ready(self) -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{self.port}"})
        md = admin.list_topics(timeout=3)
        if not md.brokers:
            return False
        return self._coordinator_ready()

    def _coordinator_ready(self) -> bool:
        """A consumer group's coordinator answers: right after start the broker takes a while
        to load ``__consumer_offsets``, and the first flow's offset lookup failed with
        COORDINATOR_LOAD_IN_PROGRESS (seen in CI on the first test after ``stack up``)."""
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        probe = Consumer({"bootstrap.servers": f"127.0.0.1:{self.port}",
                          "group.id": "lernflow-stack-ready"})  # fmt: skip
        try:
            probe.committed([TopicPartition("lernflow-stack-ready", 0)], timeout=3)
            return True
        except KafkaException:
            return False
        finally:
            probe.close()

    def hints(self, log: str) -> str:
        if "UnsupportedClassVersionError" in log:
            return "Kafka 4 needs Java 17+; set LERNFLOW_STACK_JAVA_HOME to a JDK 17."
        if "meta.properties" in log or "not formatted" in log.lower():
            return "storage is not formatted or mismatched: 'lernflow stack down --wipe' then up."
        return super().hints(log)


# JDK 17 module flags Cassandra ships in conf/jvm17-server.options.
_CASSANDRA_JDK17_FLAGS = [
    "--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports", "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports", "java.sql/java.sql=ALL-UNNAMED",
    "--add-exports", "java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports", "jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports", "jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports", "jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-exports", "java.management/com.sun.jmx.remote.security=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens", "jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens", "java.base/java.io=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens", "jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang=ALL-UNNAMED",
    "--add-opens", "java.base/java.util=ALL-UNNAMED",
    "--add-opens", "java.base/java.nio=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dio.netty.allocator.useCacheForAllThreads=true",
    "-Dio.netty.allocator.maxOrder=11",
    "-Djdk.attach.allowAttachSelf=true",
]  # fmt: skip


class CassandraServer(_Server):
    """Apache Cassandra 5.0 single node from ``cassandra-all`` on OpenJDK 17."""

    name = "cassandra"

    def __init__(self, settings: Settings, report: Reporter) -> None:
        super().__init__(settings, report)
        self.port = settings.cassandra.port

    def _lib(self) -> Path:
        st = self.settings.stack
        return self._fetch_jars(
            [f"org.apache.cassandra:cassandra-all:{st.cassandra_version}"],
            find_java17(st.java_home),
        )

    def prepare(self) -> None:
        self._lib()
        self.home.mkdir(parents=True, exist_ok=True)
        d = self.data_dir
        (self.home / "cassandra.yaml").write_text(
            f"""cluster_name: lernflow
num_tokens: 1
initial_token: 0
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
native_transport_port: {self.port}
storage_port: {self.settings.stack.cassandra_storage_port}
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:{self.settings.stack.cassandra_storage_port}"
endpoint_snitch: SimpleSnitch
data_file_directories: [{d}/data]
commitlog_directory: {d}/commitlog
saved_caches_directory: {d}/saved_caches
hints_directory: {d}/hints
cdc_raw_directory: {d}/cdc
commitlog_sync: periodic
commitlog_sync_period: 10000ms
commitlog_segment_size: 32MiB
auto_snapshot: false
snapshot_before_compaction: false
memtable_heap_space: 256MiB
concurrent_reads: 16
concurrent_writes: 16
authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
storage_compatibility_mode: NONE
start_native_transport: true
read_request_timeout: 10000ms
write_request_timeout: 10000ms
range_request_timeout: 20000ms
batch_size_warn_threshold: 64KiB
batch_size_fail_threshold: 640KiB
"""
        )
        (self.home / "logback.xml").write_text(
            """<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="STDOUT"/></root>
  <logger name="org.apache.cassandra.service.CassandraDaemon" level="INFO"/>
  <logger name="org.apache.cassandra.transport.Server" level="INFO"/>
</configuration>
"""
        )

    def command(self) -> list[str]:
        java = find_java17(self.settings.stack.java_home)
        lib = self._lib()
        heap = self.settings.stack.cassandra_heap
        jamm = sorted(lib.glob("jamm-*.jar"))
        agent = [f"-javaagent:{jamm[-1]}"] if jamm else []
        return [
            str(java), f"-Xms{heap}", f"-Xmx{heap}", "-Xss256k",
            "-XX:+UseG1GC", "-XX:+ParallelRefProcEnabled", "-XX:MaxGCPauseMillis=300",
            "-XX:+HeapDumpOnOutOfMemoryError", "-XX:HeapDumpPath=/dev/null",
            *_CASSANDRA_JDK17_FLAGS, *agent,
            f"-Dcassandra.config=file://{self.home / 'cassandra.yaml'}",
            f"-Dlogback.configurationFile={self.home / 'logback.xml'}",
            f"-Dcassandra.logdir={self.log_dir}",
            f"-Dcassandra.storagedir={self.data_dir}",
            "-Dcassandra-foreground=yes",
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            "-Dcassandra.ring_delay_ms=100",
            "-Dcassandra.superuser_setup_delay_ms=0",
            "-Dcassandra.initial_token=0",
            f"-Dcassandra.jmx.local.port={self.settings.stack.cassandra_jmx_port}",
            "-Dcassandra.max_queued_native_transport_requests=4096",
            "-cp", f"{lib}/*",
            "org.apache.cassandra.service.CassandraDaemon",
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        return dict(os.environ, MALLOC_ARENA_MAX="4")

    def ready(self) -> bool:

        cluster, session = cassandra_session(self.settings.cassandra, keyspace=None)
        try:
            row = session.execute("SELECT release_version FROM system.local").one()
            return row is not None
        finally:
            cluster.shutdown()

    def hints(self, log: str) -> str:
        if "setSecurityManager" in log or "UnsupportedOperationException" in log:
            return "Cassandra 5.0 needs JDK 17; set LERNFLOW_STACK_JAVA_HOME to a JDK 17."
        if "7199" in log and "in use" in log:
            return "JMX port 7199 is taken: another Cassandra is running."
        return super().hints(log)


class PostgresServer(_Server):
    """PostgreSQL from Debian's packages (Sunbird's ``job_request`` table for the reports).

    The cluster is initialised on first start in the data dir (scram-sha-256, the configured
    user and password), listens on 127.0.0.1 only, without a Unix socket. PostgreSQL refuses
    to run as root, so when the stack runs as root the server runs as the ``postgres`` user.
    """

    name = "postgres"

    def __init__(self, settings: Settings, report: Reporter) -> None:
        super().__init__(settings, report)
        self.port = settings.postgres.port

    def _bin(self) -> Path:
        found = sorted(
            Path("/usr/lib/postgresql").glob("*/bin/postgres"),
            key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
        )
        if found:
            return found[-1].parent
        binary = shutil.which("postgres")
        if binary:
            return Path(binary).parent
        msg = "PostgreSQL is missing. Fix: 'apt-get install postgresql' (make setup does it)."
        raise StackError(msg)

    def _as_owner(self, cmd: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return cmd
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        return [runuser, "-u", "postgres", "--", *cmd]

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam("postgres")
            for p in [path, *path.rglob("*")]:
                os.chown(p, pw.pw_uid, pw.pw_gid)

    def prepare(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        pg = self.settings.postgres
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._chown(self.data_dir)
        pwfile = self.home / ".pwfile"
        pwfile.write_text(pg.password.get_secret_value() + "\n")
        pwfile.chmod(0o600)
        self._chown(pwfile)
        self.report(f"{self.name}: initialising the cluster in {self.data_dir} (first start only)")
        proc = subprocess.run(
            self._as_owner([
                str(self._bin() / "initdb"), "-D", str(self.data_dir), "-U", pg.user,
                "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8",
            ]),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        pwfile.unlink(missing_ok=True)
        if proc.returncode != 0:
            out = (proc.stdout + proc.stderr)[-2000:]
            hint = ""
            if "Permission denied" in out:
                hint = (
                    f"\nFix: the postgres user cannot reach {self.data_dir}; put "
                    "LERNFLOW_STACK_DIR under directories others can traverse (mode 755)."
                )
            msg = f"initdb failed:\n{out}{hint}"
            raise StackError(msg)

    def command(self) -> list[str]:
        return self._as_owner([
            str(self._bin() / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
            "-c", "fsync=on", "-c", "max_connections=50",
        ])  # fmt: skip

    def ready(self) -> bool:
        import psycopg

        pg = self.settings.postgres
        conninfo = (
            f"host=127.0.0.1 port={self.port} user={pg.user} dbname=postgres "
            f"password={pg.password.get_secret_value()} connect_timeout=3"
        )
        with psycopg.connect(conninfo) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    def hints(self, log: str) -> str:
        if "could not bind" in log or "Address already in use" in log:
            return f"port {self.port} is taken (another PostgreSQL?): stop it or set LERNFLOW_POSTGRES_PORT."
        return super().hints(log)


def servers(settings: Settings, report: Reporter) -> list[_Server]:
    """Return the stack's servers in start order."""
    return [
        RedisServer(settings, report),
        KafkaServer(settings, report),
        CassandraServer(settings, report),
        PostgresServer(settings, report),
    ]


def up(settings: Settings, report: Reporter) -> dict[str, str]:
    """Start every server that is not running and wait until each really answers.

    All servers are launched before waiting on any, so the JVM boots overlap.
    """
    t_all = time.monotonic()
    launched: list[tuple[_Server, int | None, float]] = []
    for server in servers(settings, report):
        t0 = time.monotonic()
        pid = server.launch()
        state = f"launched pid {pid}" if pid else "port answers"
        report(f"{server.name}: {state} on 127.0.0.1:{server.port} [{time.monotonic() - t0:.1f}s]")
        launched.append((server, pid, t0))
    results: dict[str, str] = {}
    for server, pid, t0 in launched:
        results[server.name] = server.await_ready(pid)
        report(
            f"{server.name}: {results[server.name]}, answering after {time.monotonic() - t0:.1f}s"
        )
    report(f"stack up in {time.monotonic() - t_all:.1f}s")
    return results


def down(settings: Settings, report: Reporter, wipe: bool = False) -> dict[str, str]:
    """Stop the servers this stack started (pid files); keep data unless ``wipe``."""
    results: dict[str, str] = {}
    for server in reversed(servers(settings, report)):
        results[server.name] = server.stop()
        if wipe:
            server.wipe()
            results[server.name] += ", data wiped"
        report(f"{server.name}: {results[server.name]}")
    return results


def status(settings: Settings) -> list[ServerStatus]:
    """Return the state of each server."""
    return [s.status() for s in servers(settings, lambda _m: None)]
