"""Revocation on the real stack (issue 18 items 2-3): a certificate issued by the flows carries
its status-list index; ``cert revoke`` flips the registry and the status list; ``cert verify``
says revoked with the reason (registry) or from the list alone (offline); a re-issue revokes the
certificate it replaces; the list verifies with the exported JWKS in joserfc; the credential
expands offline with pyld; a certificate without ``credentialStatus`` still verifies
(docs/flows/certificate-generator.md#14-revocation-and-status-list)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet
from pyld import jsonld  # type: ignore[import-untyped]
from typer.testing import CliRunner

from lernflow import cli
from lernflow.certificates import documents, render, signing
from lernflow.certificates import status_list as sl
from lernflow.certificates.fetch import bundled_template_path
from lernflow.certificates.storage import LocalStorage
from lernflow.config import Settings
from lernflow.flows.certificate_generator.maker import MakeJob, make_certificate
from lernflow.kernel.clients import cassandra_session
from tests.flowkit import produce, run_to_end
from tests.integration.test_certificates_flow import (
    BATCH,
    COURSE,
    GEN,
    ISSUER,
    PRE,
    SIGNATORIES,
    _course,
    _enrol,
    _issue_event,
    _issued,
    _monkey_env,
    _topics,
    _user,
    cert_environment,
)
from tests.unit.test_certificates_signing import data_from_event


@pytest.fixture
def s(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    with cert_environment(settings, tmp_path) as cs:
        _course(cs, ISSUER, SIGNATORIES)
        _monkey_env(cs, monkeypatch)
        yield cs


def _row(s: Settings, cert_id: str) -> Any:
    cluster, session = cassandra_session(s.cassandra, s.cassandra.sunbird_keyspace)
    try:
        return session.execute(
            "SELECT id, isrevoked, reason, updatedby, updatedat, data FROM cert_registry "
            "WHERE id=%s", (cert_id,),
        ).one()  # fmt: skip
    finally:
        cluster.shutdown()


def _issue(s: Settings, user: str, re_issue: bool = False) -> str:
    """Run the pre-processor and the generator on one issue event; the enrolment's cert id."""
    produce(
        s, _topics(s)["issue"], [_issue_event(user, COURSE, BATCH, re_issue)], key=user.encode()
    )
    run_to_end(PRE, s)
    run_to_end(GEN, s)
    [entry] = _issued(s, user)
    return entry["identifier"]


def _pdf(s: Settings, cert_id: str) -> Path:
    return s.certificates.storage_dir / BATCH / f"{cert_id}.pdf"


def _cli(*args: str) -> Any:
    return CliRunner().invoke(cli.app, list(args))


def _status_list(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """``cert status-list`` → the JWT file, and its claims verified by joserfc against
    ``cert keys export``."""
    path = tmp_path / "status-list.jwt"
    res = _cli("cert", "status-list", "--out", str(path))
    assert res.exit_code == 0, res.output
    exported = _cli("cert", "keys", "export")
    assert exported.exit_code == 0, exported.output
    keyset = KeySet.import_key_set(json.loads(exported.stdout))
    decoded = jose_jwt.decode(path.read_text().strip(), keyset, algorithms=["ES256", "EdDSA"])
    return path, decoded.claims


def _bit(claims: dict[str, Any], index: int) -> bool:
    return sl.bit_is_set(sl.decode_bits(claims["vc"]["credentialSubject"]["encodedList"]), index)


def test_revoke_flips_the_registry_and_the_status_list_and_verify_says_revoked(
    s: Settings, tmp_path: Path
) -> None:
    _user(s, "learner-r1", "Ravi", "Iyer")
    _enrol(s, "learner-r1")
    cert_id = _issue(s, "learner-r1")
    token = render.extract_attachment(_pdf(s, cert_id).read_bytes())
    assert token is not None
    vc = signing.verify_credential(
        token.decode(), signing.load_public_keys(s.certificates.keys_dir)
    )["vc"]
    status = vc["credentialStatus"]
    index = int(status["statusListIndex"])
    assert (
        status["statusListCredential"]
        == f"{s.certificates.cert_domain_url}/certs/status/revocation"
    )
    assert vc["credentialSubject"]["id"] == "urn:lernflow:user:learner-r1"
    # a JSON-LD processor expands the issued credential with the shipped contexts, no network
    expanded = jsonld.expand(
        vc, {"documentLoader": documents.document_loader(f"{s.certificates.cert_domain_url}/certs")}
    )
    assert "urn:lernflow:vocab:batchId" in json.dumps(expanded)

    _, listed = _status_list(tmp_path)
    assert not _bit(listed, index)
    res = _cli("cert", "verify", str(_pdf(s, cert_id)))
    assert res.exit_code == 0 and "not revoked" in res.output, res.output

    res = _cli("cert", "revoke", cert_id, "--reason", "issued in error", "--by", "registrar")
    assert res.exit_code == 0 and "revoked" in res.output, res.output
    row = _row(s, cert_id)
    assert (row.isrevoked, row.reason, row.updatedby) == (True, "issued in error", "registrar")
    res = _cli("cert", "verify", str(_pdf(s, cert_id)))
    assert res.exit_code == 4, res.output
    assert "REVOKED" in res.output and "issued in error" in res.output and "registrar" in res.output

    # the list, built from the registry: the bit is set; an offline verifier with it says revoked
    path, listed = _status_list(tmp_path)
    assert _bit(listed, index)
    res = _cli("cert", "verify", "--offline", "--status-list", str(path), str(_pdf(s, cert_id)))
    assert res.exit_code == 4 and f"bit {index}" in res.output, res.output

    # revoking twice: a clear answer, nothing changes
    res = _cli("cert", "revoke", cert_id, "--reason", "another reason", "--by", "someone")
    assert res.exit_code == 0 and "already revoked" in res.output, res.output
    again = _row(s, cert_id)
    assert (again.reason, again.updatedby, again.updatedat) == (
        row.reason,
        row.updatedby,
        row.updatedat,
    )
    # an unknown id: a clear error, non-zero, and no row is created
    unknown = "00000000-0000-4000-8000-00000000dead"
    res = _cli("cert", "revoke", unknown, "--reason", "x")
    assert res.exit_code == 1 and "no certificate" in res.output, res.output
    assert _row(s, unknown) is None


def test_a_re_issue_revokes_the_certificate_it_replaces(s: Settings, tmp_path: Path) -> None:
    _user(s, "learner-r2", "Mei", "Lin")
    _enrol(s, "learner-r2")
    old = _issue(s, "learner-r2")
    new = _issue(s, "learner-r2", re_issue=True)
    assert new != old
    row = _row(s, old)
    assert (row.isrevoked, row.reason) == (True, f"replaced by {new} (re-issue)")
    assert not _row(s, new).isrevoked
    res = _cli("cert", "verify", str(_pdf(s, old)))
    assert res.exit_code == 4 and "replaced by" in res.output, res.output
    res = _cli("cert", "verify", str(_pdf(s, new)))
    assert res.exit_code == 0, res.output
    _, listed = _status_list(tmp_path)
    indexes = {
        cid: int(json.loads(_row(s, cid).data)["credentialStatus"]["statusListIndex"])
        for cid in (old, new)
    }
    assert _bit(listed, indexes[old]) and not _bit(listed, indexes[new])


def test_a_certificate_without_credential_status_still_verifies(
    s: Settings, tmp_path: Path
) -> None:
    """Issued before status lists (no credentialStatus): valid, revocation 'not checked'."""
    data = data_from_event("gen.request.first.json")
    job = MakeJob(data, bundled_template_path().read_text(encoding="utf-8"), "cairosvg", (),
                  "https://old.example/certs/issuer", LocalStorage(s.certificates.storage_dir))  # fmt: skip
    key_file = next(s.certificates.keys_dir.glob("*.private.pem"))
    made = make_certificate(job, signing.load_signing_key(key_file))
    assert "credentialStatus" not in made.credential
    pdf = s.certificates.storage_dir / data.batch_id / f"{data.cert_id}.pdf"
    res = _cli("cert", "verify", str(pdf))
    assert res.exit_code == 0 and "VALID" in res.output, res.output
    path, _ = _status_list(tmp_path)
    res = _cli("cert", "verify", "--status-list", str(path), str(pdf))
    assert res.exit_code == 0 and "no credentialStatus" in res.output, res.output
