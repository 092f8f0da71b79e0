"""certificate-generator: signed PDF certificates/s end to end, per renderer.

End to end = from the generate request on Kafka to the signed PDF and credential stored, the
registry row written, the AUDIT and notification events acknowledged and
``issued_certificates`` updated, in a ``lernflow run --until-caught-up`` subprocess (process
start included). The bundled sample template; one ES256 key.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Row, isolated
from bench.work import measured_flow
from lernflow.certificates import signing
from lernflow.certificates.fetch import bundled_template_path
from lernflow.config import Settings
from lernflow.devstack.demo import SAMPLE_SIGNATURE
from lernflow.kernel.clients import cassandra_session
from lernflow.sinks.kafka_producer import DeliveryTrackingProducer, OutMessage

CERTS = {"cairosvg": 2000, "weasyprint": 200}
BATCH = "bench_cert_batch"
COURSE = "do_bench_cert_course"


def generate_event(n: int) -> dict[str, object]:
    """A generate-certificate request as the pre-processor emits it, for learner ``n``."""
    user = f"bench-learner-{n:06d}"
    return {
        "actor": {"id": "Certificate Generator", "type": "System"}, "eid": "BE_JOB_REQUEST",
        "edata": {
            "issuedDate": "2026-11-20",
            "data": [{"recipientName": f"Learner Number {n}", "recipientId": user}],
            "criteria": {"narrative": "Course Completion Certificate"},
            "svgTemplate": str(bundled_template_path()), "oldId": "", "templateId": "tmpl_bench",
            "userId": user, "orgId": "bench_org",
            "issuer": {"name": "Lernflow Academy", "url": "https://lernflow.example.org/"},
            "signatoryList": [{"name": "Dr. A. Director", "id": "dir", "designation": "Director",
                               "image": SAMPLE_SIGNATURE}],
            "courseName": "Benchmarking for Beginners", "basePath": "http://127.0.0.1:8080/certs",
            "related": {"batchId": BATCH, "courseId": COURSE, "type": "Course Completion Certificate"},
            "name": "Course Completion Certificate", "tag": BATCH,
        },
        "ets": 1764000000000, "context": {"pdata": {"ver": "1.0", "id": "org.sunbird.learning.platform"}},
        "mid": f"LMS.bench-{n}", "object": {"id": user, "type": "GenerateCertificate"},
    }  # fmt: skip


def _seed(s: Settings, certs: int) -> None:
    from cassandra.concurrent import execute_concurrent_with_args

    cluster, session = cassandra_session(s.cassandra)
    session.execute(f"TRUNCATE {s.cassandra.sunbird_keyspace}.cert_registry", timeout=120)
    ins = session.prepare(
        f"INSERT INTO {s.cassandra.courses_keyspace}.user_enrolments "
        "(userid, courseid, batchid, active, status, completedon) VALUES (?, ?, ?, true, 2, ?)"
    )
    done = datetime(2026, 11, 20, tzinfo=UTC)
    execute_concurrent_with_args(
        session, ins, [(f"bench-learner-{n:06d}", COURSE, BATCH, done) for n in range(certs)],
        concurrency=100,
    )  # fmt: skip
    cluster.shutdown()


def run(settings: Settings) -> list[Row]:
    rows = []
    for renderer in ("cairosvg", "weasyprint"):
        work = Path(tempfile.mkdtemp(prefix=f"lernflow-bench-{renderer}-"))
        base = isolated(settings, f"cert-{renderer}")
        certs = base.certificates.model_copy(
            update={"keys_dir": work / "keys", "storage_dir": work / "store", "renderer": renderer}
        )
        s = base.with_overrides(certificates=certs)
        signing.generate_keys(certs.keys_dir)
        _seed(s, CERTS[renderer])
        topic = s.topics.full(s.topics.generate_certificate_request)
        DeliveryTrackingProducer(s.kafka).produce_all(
            [OutMessage(topic, json.dumps(generate_event(n)).encode(), key=f"{n}".encode())
             for n in range(CERTS[renderer])]
        )  # fmt: skip
        done, cost = measured_flow("certificate-generator", s)
        seconds, rss = done.seconds, done.peak_rss_mib
        made = len(list((work / "store").glob("*/*.pdf")))
        rows.append(Row(f"certificate-generator end to end ({renderer})", made, seconds,
                        unit="certs", rss_mb=rss, work=cost,
                        note="signed PDFs; incl. process start; target ≥ 100/s, "
                        "i.e. ≤ 20 flow+C* CPU ms a cert on 2 cores"))  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)
    return rows
