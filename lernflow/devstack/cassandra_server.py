"""The stack's Cassandra server: a single Cassandra 5.0 node on OpenJDK 17."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import SecretStr

from lernflow.config import Settings
from lernflow.devstack.base import Reporter, Server, find_java17
from lernflow.devstack.secure import stack_pki, stack_secrets
from lernflow.kernel.clients import AccessRefused, cassandra_session

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


_CASSANDRA_YAML = """cluster_name: lernflow
num_tokens: 1
initial_token: 0
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
native_transport_port: {port}
storage_port: {storage_port}
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:{storage_port}"
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

_CASSANDRA_YAML_SECURE = """client_encryption_options:
  enabled: true
  optional: false
  keystore: {p12}
  keystore_password: {password}
  store_type: PKCS12
  require_client_auth: false
  accepted_protocols: [TLSv1.2, TLSv1.3]
"""

_LOGBACK = """<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="STDOUT"/></root>
  <logger name="org.apache.cassandra.service.CassandraDaemon" level="INFO"/>
  <logger name="org.apache.cassandra.transport.Server" level="INFO"/>
</configuration>
"""


class CassandraServer(Server):
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
        (self.home / "cassandra.yaml").write_text(
            _CASSANDRA_YAML.format(
                port=self.port,
                storage_port=self.settings.stack.cassandra_storage_port,
                d=self.data_dir,
            ).replace("authenticator: AllowAllAuthenticator\n", self._authenticator())
            + self._secure_yaml()
        )
        (self.home / "logback.xml").write_text(_LOGBACK)

    def _authenticator(self) -> str:
        name = "PasswordAuthenticator" if self.settings.stack.secure else "AllowAllAuthenticator"
        return f"authenticator: {name}\n"

    def _secure_yaml(self) -> str:
        """``--secure``: TLS required on the native port (a client certificate is accepted,
        not required) and PasswordAuthenticator (overrides the open settings above)."""
        if not self.settings.stack.secure:
            return ""
        pki, secret = stack_pki(self.settings), stack_secrets(self.settings)
        return _CASSANDRA_YAML_SECURE.format(p12=pki.server_p12, password=secret.keystore)

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
        if self.settings.stack.secure:
            self._create_role()
        cluster, session = cassandra_session(self.settings.cassandra, keyspace=None)
        try:
            row = session.execute("SELECT release_version FROM system.local").one()
            return row is not None
        finally:
            cluster.shutdown()

    def _create_role(self) -> None:
        """``--secure``: the settings' user as a login role, made by the default superuser
        (``cassandra``, whose password then becomes the stack's own)."""
        cas = self.settings.cassandra
        user, password = cas.username or "lernflow", cas.password
        secret = stack_secrets(self.settings).cassandra
        made = self.data_dir / "lernflow-role-made"  # then the superuser's password is ours
        for su_password in (secret, "cassandra") if made.exists() else ("cassandra", secret):
            superuser = cas.model_copy(
                update={"username": "cassandra", "password": SecretStr(su_password)}
            )
            try:
                cluster, session = cassandra_session(superuser, keyspace=None)
            except AccessRefused:
                continue
            break
        else:
            return  # not answering yet (the superuser is made a moment after start)
        try:
            pw = password.get_secret_value() if password else ""
            session.execute(
                f"CREATE ROLE IF NOT EXISTS {user} WITH PASSWORD = %s AND LOGIN = true",
                (pw,),
            )
            session.execute("ALTER ROLE cassandra WITH PASSWORD = %s", (secret,))
            made.touch()
        finally:
            cluster.shutdown()

    def hints(self, log: str) -> str:
        if "setSecurityManager" in log or "UnsupportedOperationException" in log:
            return "Cassandra 5.0 needs JDK 17; set LERNFLOW_STACK_JAVA_HOME to a JDK 17."
        if "7199" in log and "in use" in log:
            return "JMX port 7199 is taken: another Cassandra is running."
        return super().hints(log)
