"""``lernflow cert why``: the user cache is advisory — a learner missing from it is a note,
never "BLOCKS" (issue 15)."""

from __future__ import annotations

from typer.testing import CliRunner

from lernflow import cli
from lernflow.cli import cert as cert_cli
from lernflow.ops.cert_why import Check, Explanation, user_cache_check


def test_a_learner_missing_from_the_user_cache_is_not_blocked():
    check = user_cache_check(cached=False)
    assert check.ok is None  # not False: False is what blocks
    assert check.detail.startswith("advisory, not a blocker")
    assert user_cache_check(cached=True).ok is True


def test_cert_why_prints_no_block_for_the_user_cache(monkeypatch):
    passed = Check("tmpl", "generator", True, "the generator accepts the request")
    result = Explanation([passed, user_cache_check(cached=False)], ["tmpl"], None)
    monkeypatch.setattr(cert_cli, "explain", lambda *_a: result)
    res = CliRunner().invoke(cli.app, ["cert", "why", "--user", "u", "--course", "c",
                                       "--batch", "b"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "BLOCKS" not in res.output
    assert "advisory" in res.output and "eligible for: tmpl" in res.output
