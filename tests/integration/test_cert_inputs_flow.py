"""certificate-generator on the real stack (issue 15 D3, D4, notification): a template host
answering 503 does not stop the flow — the other course's certificate is made, the 503 requests
are parked once with ``template host unavailable: …`` and are made after ``lernflow failed
requeue`` once the host is back; a ``/dev/zero`` template is refused at once; the notification
is built from ``sunbird.user``, ``course_batch`` and ``completedon`` as Sunbird sends it (email,
then SMS); ``cert why`` shows the user cache as advisory."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lernflow import cli
from lernflow.certificates.fetch import bundled_template_path
from lernflow.config import Settings
from lernflow.devstack.demo import SAMPLE_SIGNATURE
from lernflow.kernel.clients import cassandra_session
from lernflow.ops.failed import requeue
from tests.flowkit import produce, read_json, run_to_end
from tests.integration.test_certificates_flow import (
    ISSUER,
    SIGNATORIES,
    _batch,
    _course,
    _enrol,
    _monkey_env,
    _topics,
    _user,
    cert_environment,
)
from tests.paths import DATA

FX = DATA / "certificates"
GEN = "certificate-generator"
BATCH = "lfbatch0930"


class _Template(http.server.BaseHTTPRequestHandler):
    status = 503
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        if self.status != 200:
            self.send_error(self.status)
            return
        body = bundled_template_path().read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def template_host() -> Iterator[tuple[str, type[_Template]]]:
    handler = type("Handler", (_Template,), {"status": 503, "hits": 0})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def gen_settings(
    settings: Settings, tmp_path: Path, template_host: tuple[str, type[_Template]]
) -> Iterator[Settings]:
    c = settings.certificates.model_copy(
        update={"template_hosts": template_host[0], "template_host_backoff_s": 0.0}
    )
    with cert_environment(settings.with_overrides(certificates=c), tmp_path) as s:
        yield s


def _enrolment(s: Settings, user: str, course: str, completed: datetime | None) -> None:
    cluster, session = cassandra_session(s.cassandra, s.cassandra.courses_keyspace)
    try:
        session.execute(
            "INSERT INTO user_enrolments (userid, courseid, batchid, active, status, completedon) "
            "VALUES (%s, %s, %s, true, 2, %s)",
            (user, course, BATCH, completed),
        )
    finally:
        cluster.shutdown()


def _request(user: str, course: str, template: str) -> bytes:
    doc = json.loads((FX / "gen.request.first.json").read_text())
    doc["edata"].update(userId=user, svgTemplate=template,
                        data=[{"recipientName": f"Learner {user}", "recipientId": user}])  # fmt: skip
    doc["edata"]["related"]["courseId"] = course
    for signatory in doc["edata"]["signatoryList"]:
        signatory["image"] = SAMPLE_SIGNATURE
    return json.dumps(doc).encode()


def test_a_template_host_answering_503_delays_only_its_requests(
    gen_settings: Settings, template_host: tuple[str, type[_Template]]
) -> None:
    s, (host, handler) = gen_settings, template_host
    t = _topics(s)
    down = f"http://{host}/templates/award.svg"
    done = datetime(2024, 9, 30, tzinfo=UTC)
    for user, course in (("u-down-1", "do_down"), ("u-down-2", "do_down"), ("u-up", "do_up"),
                         ("u-zero", "do_up")):  # fmt: skip
        _enrolment(s, user, course, done)
    produce(s, t["generate"], [
        _request("u-down-1", "do_down", down),
        _request("u-up", "do_up", str(bundled_template_path())),
        _request("u-down-2", "do_down", down),
        _request("u-zero", "do_up", "/dev/zero"),  # refused at once: outside the folders
    ], key=b"k")  # fmt: skip
    run_to_end(GEN, s)  # returns: the flow did not exit on the 503s

    assert [e["name"] for e in _issued_in(s, "u-up", "do_up")] == ["Geometry Completion Award"]
    parked = read_json(s, t["gen_failed"])
    unavailable = [p for p in parked if p["error_type"] == "TemplateUnavailable"]
    assert sorted(p["source"]["offset"] for p in unavailable) == [0, 2]  # each once
    assert all(p["reason"].startswith(f"template host unavailable: {host}") for p in unavailable)
    [zero] = [p for p in parked if p["error_type"] == "TemplateError"]
    assert "outside the template folders" in zero["reason"]
    assert _issued_in(s, "u-down-1", "do_down") == []

    # the host is back: requeueing the parked requests by their reason makes them
    handler.status = 200
    report = requeue(s, GEN, lambda _m: None, only_reason="template host unavailable")
    assert report.requeued == 2
    run_to_end(GEN, s)
    for user in ("u-down-1", "u-down-2"):
        assert len(_issued_in(s, user, "do_down")) == 1


def _issued_in(s: Settings, user: str, course: str) -> list[dict[str, str]]:
    cluster, session = cassandra_session(s.cassandra, s.cassandra.courses_keyspace)
    try:
        row = session.execute(
            "SELECT issued_certificates FROM user_enrolments WHERE userid=%s AND courseid=%s "
            "AND batchid=%s", (user, course, BATCH),
        ).one()  # fmt: skip
        return [dict(m) for m in (row.issued_certificates or [])] if row else []
    finally:
        cluster.shutdown()


def test_the_notification_is_built_from_the_profile_the_batch_and_the_completion(
    gen_settings: Settings,
) -> None:
    s = gen_settings
    t = _topics(s)
    notify = {"subject": "Completion certificate", "emailTemplateType": "lernflowCertMail"}
    template = {"identifier": "lf_tmpl_geometry", "notifyTemplate": json.dumps(notify)}
    _batch(s, "do_note", BATCH, {"lf_tmpl_geometry": template})
    _enrolment(s, "u-note", "do_note", datetime(2024, 9, 29, 22, 30, tzinfo=UTC))
    cluster, session = cassandra_session(s.cassandra, s.cassandra.sunbird_keyspace)
    try:
        session.execute(
            "INSERT INTO user (id, userid, firstname, lastname, maskedphone) "
            "VALUES ('u-note', 'u-note', 'Ines', 'Okafor', '******4321')"
        )
    finally:
        cluster.shutdown()
    produce(s, t["generate"], [_request("u-note", "do_note", str(bundled_template_path()))],
            key=b"k")  # fmt: skip
    run_to_end(GEN, s)
    email, sms = read_json(s, t["notify"])
    assert email == {"request": {
        **notify, "firstName": "Ines", "TrainingName": "Geometry Essentials",
        "heldDate": "2024-09-29", "recipientUserIds": ["u-note"], "body": "email body",
    }}  # fmt: skip
    assert sms["body"] == "sms" and sms["request"]["body"].startswith("Congratulations!")
    [entry] = _issued_in(s, "u-note", "do_note")
    assert entry["type"] == "TrainingCertificate"


def test_cert_why_shows_the_user_cache_as_advisory(
    gen_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = gen_settings
    _course(s, ISSUER, SIGNATORIES)
    _user(s, "learner-why", "Dana", "M")  # in sunbird.user, not in the Redis user cache
    _enrol(s, "learner-why")
    _monkey_env(s, monkeypatch)
    res = CliRunner().invoke(cli.app, ["cert", "why", "--user", "learner-why", "--course",
                                       "do_cert_course", "--batch", "cert_batch_1"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "eligible for: tmpl_sample" in res.output
    assert "BLOCKS" not in res.output and "advisory" in res.output
