"""The stack's Kafka server: one combined KRaft broker+controller from Maven Central jars."""

from __future__ import annotations

import subprocess
from pathlib import Path

from lernflow.config import Settings
from lernflow.devstack.base import Reporter, Server, StackError, find_java17

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
