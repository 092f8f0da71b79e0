"""The stack's Kafka server: one combined KRaft broker+controller from Maven Central jars."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from lernflow.config import Settings
from lernflow.devstack.base import Reporter, Server, StackError, find_java17
from lernflow.devstack.secure import stack_pki, stack_secrets

_LOG4J2 = "\n".join(
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


class KafkaServer(Server):
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
        (self.home / "server.properties").write_text(self._server_properties())
        (self.home / "log4j2.properties").write_text(_LOG4J2)
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage(java, lib)

    def _server_properties(self) -> str:
        kafka = self.settings.kafka
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                *self._listeners(),
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

    def _listeners(self) -> list[str]:
        """Plaintext, or SASL_SSL with SCRAM and client certificates required (``--secure``);
        the KRaft controller listener stays plaintext on 127.0.0.1."""
        secure = self.settings.stack.secure
        name = "SASL_SSL" if secure else "PLAINTEXT"
        lines = [
            f"listeners={name}://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners={name}://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            f"inter.broker.listener.name={name}",
            f"listener.security.protocol.map=CONTROLLER:PLAINTEXT,{name}:{name}",
        ]
        if not secure:
            return lines
        pki, secret = stack_pki(self.settings), stack_secrets(self.settings)
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="admin" password="{secret.kafka_admin}";'
        )
        return [
            *lines,
            "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            f"listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={jaas}",
            f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={jaas}",
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.location={pki.server_p12}",
            f"ssl.keystore.password={secret.keystore}",
            f"ssl.key.password={secret.keystore}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={pki.ca}",
            "listener.name.sasl_ssl.ssl.client.auth=required",
            "ssl.enabled.protocols=TLSv1.3,TLSv1.2",
        ]

    def _scram_users(self) -> list[str]:
        """``--add-scram`` arguments: the broker's ``admin`` and the clients' user (both
        mechanisms), stored in the metadata log when the storage is formatted."""
        if not self.settings.stack.secure:
            return []
        secret = stack_secrets(self.settings)
        user = self.settings.kafka.sasl_username or "lernflow"
        args: list[str] = []
        for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            for name, password in (("admin", secret.kafka_admin), (user, secret.kafka)):
                args += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
        return args

    def _format_storage(self, java: Path, lib: Path) -> None:
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
                "-c", str(self.home / "server.properties"), *self._scram_users(),
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

        admin = AdminClient(self._client_config())
        md = admin.list_topics(timeout=3)
        if not md.brokers:
            return False
        return self._coordinator_ready()

    def _coordinator_ready(self) -> bool:
        """A consumer group's coordinator answers: right after start the broker takes a while
        to load ``__consumer_offsets``, and the first flow's offset lookup failed with
        COORDINATOR_LOAD_IN_PROGRESS (seen in CI on the first test after ``stack up``)."""
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        probe = Consumer({**self._client_config(), "group.id": "lernflow-stack-ready"})
        try:
            probe.committed([TopicPartition("lernflow-stack-ready", 0)], timeout=3)
            return True
        except KafkaException:
            return False
        finally:
            probe.close()

    def _client_config(self) -> dict[str, Any]:
        """The settings' client configuration (TLS, SASL) aimed at this broker."""
        return {
            **self.settings.kafka.client_config(),
            "bootstrap.servers": f"127.0.0.1:{self.port}",
        }

    def hints(self, log: str) -> str:
        if "UnsupportedClassVersionError" in log:
            return "Kafka 4 needs Java 17+; set LERNFLOW_STACK_JAVA_HOME to a JDK 17."
        if "meta.properties" in log or "not formatted" in log.lower():
            return "storage is not formatted or mismatched: 'lernflow stack down --wipe' then up."
        return super().hints(log)
