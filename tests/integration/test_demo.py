"""`lernflow demo` works end to end on the local stack (what `make demo` runs)."""

from __future__ import annotations

from lernflow.config import Settings
from lernflow.devstack import demo
from lernflow.ops.serve.app import create_app
from tests.flowkit import create_topics
from tests.servekit import TestClient


def test_demo_round_trip_and_quiz_best_attempt(settings: Settings) -> None:
    create_topics(settings)
    lines: list[str] = []
    result = demo.run(settings, lines.append)
    assert result["enrolment_status"] == 0
    quiz = result["quiz"]
    assert isinstance(quiz, dict)
    assert len(quiz["attempts"]) == 2
    best = [v for k, v in quiz["aggregates"].items() if k.startswith("score:")]
    assert best == [4.0]
    assert any("best score 4.0 of 5.0 over 2 attempts" in line for line in lines)
    progress = result["progress"]
    assert isinstance(progress, dict)
    by_name = {
        k.split("-")[0]: v
        for k, v in progress.items()
        if k not in ("certificates", "issued", "report")
    }
    assert by_name == {"asha": (2, 3), "ben": (1, 2), "chen": (2, 3)}
    assert progress["certificates"] == 2
    users = result["user_cache"]
    assert isinstance(users, dict)
    assert len(users) == 2
    for h in users.values():
        assert h["schoolname"] == "Demo Primary School"
        assert h["schooludisecode"] == "29100100101"
        assert (h["state"], h["district"]) == ("Karnataka", "Mysuru")
        assert h["orgname"] == "Demo State Board"
        assert h["usersignintype"] == "Self-Signed-In"
        assert h["board"] == "CBSE"
    issued = progress["issued"]
    assert isinstance(issued, dict)
    assert sorted(k.split("-")[0] for k in issued) == ["asha", "chen"]
    assert any(
        "verify" in line and "VALID (signature valid; the pages are the ones issued)" in line
        for line in lines
    )
    assert any(line.startswith("cert why ben-") and "enrolment" in line for line in lines)
    cert_id = next(iter(issued.values()))
    page = f"{settings.certificates.cert_domain_url}/certs/{cert_id} "
    assert any(page in line and "lernflow serve" in line for line in lines), lines
    with TestClient(create_app(settings)) as client:  # the page of a flow-issued certificate
        served = client.get(f"/certs/{cert_id}", headers={"accept": "application/json"}).json()
    assert served["verdict"] == "valid", served
    assert {c["name"]: c["outcome"] for c in served["checks"]}["revocation"] == "ok", served
    rows = progress["report"]
    assert isinstance(rows, list)
    header = rows[0]
    assert header[:5] == ["Collection Id", "Collection Name", "Batch Id", "Batch Name", "User UUID"]
    by_user = {r[4].split("-")[0]: r for r in rows[1:]}
    assert sorted(by_user) == ["asha", "ben", "chen"]
    assert by_user["asha"][header.index("Certificate Status")] == "Issued"
    assert by_user["ben"][header.index("Certificate Status")] != "Issued"
