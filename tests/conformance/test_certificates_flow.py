"""Conformance: Sunbird's pre-processor test data (its CQL seed, events and content read
response) through the real certificate-pre-processor flow.

The same cases on our own data: tests/integration/test_certificates_flow.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lernflow.config import Settings
from tests.conformance.conftest import SUNBIRD_FIXTURES
from tests.flowkit import produce, read_json, run_to_end
from tests.integration import test_certificates_flow as flow
from tests.integration.test_certificates_flow import (
    PRE,
    _cql,
    _issue_event,
    _redis_set,
    _topics,
    cert_environment,
)

FX = SUNBIRD_FIXTURES / "certificates"


@pytest.fixture
def cert_settings(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    with cert_environment(settings, tmp_path) as s:
        yield s


def _user(s: Settings, user: str, first: str, last: str) -> None:
    """A learner in sunbird.user under USER_1's root organisation."""
    flow._user(s, user, first, last, root="Org001")


def test_upstream_pre_processor_cases(cert_settings: Settings) -> None:
    s = cert_settings
    text = (FX / "pre_processor.test.cql").read_text()
    _cql(s, re.findall(r"^INSERT INTO .*?;\s*$", text, flags=re.MULTILINE | re.DOTALL))
    _redis_set(s, s.redis.content_cache_db, "content_001",
               '{"identifier":"content_001","contentType": "SelfAssess"}')  # fmt: skip
    # the course name Sunbird reads from the content-read API (CONTENT_1) comes from the
    # collection cache here
    content = json.loads((FX / "pre_processor.CONTENT_1.json").read_text())["result"]["content"]
    _redis_set(s, s.redis.collection_cache_db, "do_11309999837886054415", json.dumps(content))
    _redis_set(s, s.redis.collection_cache_db, "course_003", json.dumps({"name": "Course three"}))
    _user(s, "user001", "user", "name")
    _user(s, "user003", "Three", "null")
    t = _topics(s)
    pp1 = (FX / "pre_processor.EVENT_1.json").read_bytes()
    d4 = json.loads(pp1)
    d4["edata"]["reIssue"] = False
    produce(s, t["issue"], [
        pp1,                                                           # PP-1 (re-issue)
        json.dumps(d4).encode(),                                       # PP-D4: issued, no re-issue
        _issue_event("user009", "course_002", "batch_002"),            # PP-D1: no templates
        _issue_event("user002", "do_11309999837886054416", "0131000245281587207"),  # PP-D2
        _issue_event("user003", "course_003", "batch_003"),            # PP-D3: int agg column
    ], key=b"k")  # fmt: skip
    run_to_end(PRE, s)
    out = read_json(s, t["generate"])
    assert read_json(s, t["pre_failed"]) == []
    by_user = {e["edata"]["userId"]: e for e in out}
    assert sorted(by_user) == ["user001", "user003"]
    e = by_user["user001"]
    assert list(e) == ["actor", "eid", "edata", "ets", "context", "mid", "object"]
    ed = e["edata"]
    assert ed["oldId"] == "certificateId"
    assert ed["courseName"] == "test Course"
    assert ed["orgId"] == "Org001"
    assert ed["data"] == [{"recipientName": "user name", "recipientId": "user001"}]
    assert ed["name"] == ed["criteria"]["narrative"] == "Course Completion Certificate"
    assert ed["issuer"]["url"] == "https://gcert.gujarat.gov.in/gcert/"
    assert ed["signatoryList"][0]["designation"] == "CEO"
    assert ed["related"] == {
        "batchId": "0131000245281587206", "courseId": "do_11309999837886054415",
        "type": "Course Completion Certificate",
    }  # fmt: skip
    assert ed["tag"] == "0131000245281587206"
    assert ed["issuedDate"] == datetime.now(UTC).date().isoformat()
    assert e["object"] == {"id": "user001", "type": "GenerateCertificate"}
    assert by_user["user003"]["edata"]["oldId"] == ""
    assert by_user["user003"]["edata"]["data"][0]["recipientName"] == "Three"
