"""progress-exhaust over a larger generated batch: the CSV bytes are pinned (issue 16 item 7).

The report was made faster (docs/flows/progress-exhaust.md, "Performance"); its bytes must
not move. 3,000 generated enrolments cover what the fast paths touch: unloaded and foreign
enrolments, uncached learners, enrolled_date vs enrolleddate text, completions, certificates,
JSON-list boards, text that needs quoting, escaping, trimming or formula neutralising,
optional nodes, and assessment attempts (pivot columns, best score). The digests were taken
on the code before the change (commit b7af367).
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lernflow.reports import csvout
from lernflow.reports.csvout import to_csv, write_csv
from lernflow.reports.model import Attempt, Batch, Enrolment, ReportContext
from lernflow.reports.progress import progress_rows

COURSE, BATCH = "do_large_course", "large_batch"
LESSONS = [f"do_large_lesson_{i}" for i in range(7)]
QUIZZES = ["do_large_quiz_a", "do_large_quiz_b"]
TEXTS = ["Plain", "Comma, inside", 'Quote "q"', "  padded  ", "=SUM(A1)", "-5", "#hash",
         "back\\slash", "", "\tTab", "line\nbreak", "ünïcode", "+1.5E3", "@home"]  # fmt: skip
BOARDS = ['["CBSE"]', '["State", "X"]', "[]", "[null]", "plain board", "[1]", ' ["ICSE"] x']


def _user(rng: random.Random, n: int) -> dict[str, str]:
    user = {"firstname": f"L{n}", "rootorgid": "org-large" if n % 9 else "org-other"}
    for name in ("state", "district", "orgname", "schooludisecode", "schoolname", "block",
                 "cluster", "usertype", "usersubtype"):  # fmt: skip
        if rng.random() < 0.85:
            user[name] = rng.choice(TEXTS) + (str(n % 7) if rng.random() < 0.5 else "")
    if rng.random() < 0.8:
        user["board"] = rng.choice(BOARDS)
    return user


def _enrolment(rng: random.Random, n: int, day: datetime) -> Enrolment:
    done = rng.randrange(len(LESSONS) + 1)
    status = {lesson: 2 for lesson in LESSONS[:done]}
    if done < len(LESSONS) and rng.random() < 0.3:
        status[LESSONS[done]] = 1
    dated = rng.random() < 0.7
    cert = [{"id": f"c{n}"}] if done == len(LESSONS) and rng.random() < 0.5 else []
    return Enrolment(
        batchid=BATCH if n % 97 else "other_batch",
        userid=f"user-{n:05d}",
        courseid=COURSE,
        active=n % 53 != 0,
        enrolleddate=None if dated else rng.choice(["2026-03-04 10:00:00:000+0000", "bad", None]),
        enrolled_date=day + timedelta(minutes=n * 37) if dated else None,
        completedon=day + timedelta(days=3, hours=n % 24) if done == len(LESSONS) else None,
        contentstatus=status,
        certificates=cert,
        issued_certificates=[{"id": "i"}] if n % 41 == 0 else [],
    )


def _attempts(rng: random.Random, users: list[str], day: datetime) -> list[Attempt]:
    out = []
    for user in users:
        for quiz in QUIZZES:
            for k in range(rng.randrange(3)):
                score = rng.choice([None, 0.0, 1.0, 2.5, 4.0])
                out.append(
                    Attempt(
                        COURSE,
                        BATCH,
                        user,
                        quiz,
                        f"a{k}",
                        rng.choice(["3/4", "1/0", None, "2/5"]),
                        score,
                        rng.choice([4.0, 0.0, None]),
                        day + timedelta(hours=k),
                    )
                )
    return out


def _report(requested_org: str) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    rng = random.Random(16)
    day = datetime(2026, 3, 1, 18, 45, tzinfo=UTC)
    enrolments = [_enrolment(rng, n, day) for n in range(3000)]
    users = {e.userid: _user(rng, n) for n, e in enumerate(enrolments) if n % 29}
    hierarchy = {
        "identifier": COURSE, "leafNodesCount": len(LESSONS),
        "children": [{"identifier": q, "contentType": "SelfAssess"} for q in QUIZZES],
    }  # fmt: skip
    batch = Batch(BATCH, COURSE, "Large, batch", "Large course", requested_org, "org-large")
    attempts = _attempts(rng, [e.userid for e in enrolments[::3]], day)
    return progress_rows(
        batch, enrolments, users, hierarchy, {LESSONS[6]}, attempts, ReportContext()
    )


# sha256 of the CSV bytes and the row count, per (requesting org, neutralise)
PINNED = {
    ("org-large", True): ("e81dd4e7bbc66d1a8c51dd2575a8502e9a90d876d3ad83ac6e4ae66f5867f590", 2542),
    ("org-large", False): (
        "db1b20252eab8980ae30e950d139962078e3f5086a01ce2615736524420c4ec3",
        2542,
    ),
    ("org-other", True): ("0aabbac793c5354866e184628185e042d33e8b7a5c0062dc41dea6cc9bf5496e", 290),
}


@pytest.mark.parametrize(("org", "neutralise"), list(PINNED))
def test_large_report_bytes_are_pinned(org: str, neutralise: bool) -> None:
    header, rows, _dropped = _report(org)
    body = to_csv(header, rows, neutralise=neutralise)
    assert (hashlib.sha256(body).hexdigest(), len(rows)) == PINNED[(org, neutralise)]


@pytest.mark.parametrize("rows_per_write", [2000, 7, 1])
def test_write_csv_writes_the_bytes_of_to_csv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows_per_write: int
) -> None:
    monkeypatch.setattr(csvout, "_ROWS_PER_WRITE", rows_per_write)
    header, rows, _dropped = _report("org-large")
    cases: list[tuple[list[str], list[dict[str, Any]], bool]] = [
        (header, rows, True),
        (header, rows, False),
        (header, [], True),  # header only
        (["One"], [{"One": None}, {"One": "x"}, {}], True),  # records that render empty
    ]
    for n, (head, body, neutralise) in enumerate(cases):
        path = tmp_path / f"{n}.csv"
        size = write_csv(path, head, body, neutralise=neutralise)
        expected = to_csv(head, body, neutralise=neutralise)
        assert path.read_bytes() == expected
        assert size == len(expected)
