"""Revoking certificates, publishing the revocation status list, and the revocation check of
``cert verify`` (docs/flows/certificate-generator.md#14-revocation-and-status-list).

* :func:`revoke` — ``lernflow cert revoke``: the registry's ``isrevoked``/``reason``/
  ``updatedby``/``updatedat`` and the certificate's bit in the status list
  (:class:`~lernflow.flows.certificate_generator.revocation.CertStatusStore`).
* :func:`signed_status_list` — the W3C Bitstring Status List credential built from the
  registry and signed with the certificates' key (a JWT, served at
  ``{verify_base_url}/status/revocation``).
* :func:`revocation_check` — whether a verified credential was revoked: from a status list
  JWT given offline, else from the registry (with the reason), else *not checked*.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from lernflow.certificates import binding, signing, status_list
from lernflow.certificates.binding import Check
from lernflow.certificates.credential import cert_id_of
from lernflow.certificates.documents import issuer_url
from lernflow.config import Settings
from lernflow.flows.certificate_generator.maker import signer_path
from lernflow.flows.certificate_generator.revocation import (
    CertStatusStore,
    Revocation,
    RevokeOutcome,
)

logger = logging.getLogger(__name__)

FLOW = "cert-revoke"


def verify_base_url(settings: Settings) -> str:
    """``{cert_domain_url}/certs``: the base of every URL a credential names."""
    return f"{settings.certificates.cert_domain_url}/certs"


def revoke(settings: Settings, cert_id: str, reason: str, by: str) -> RevokeOutcome:
    """Revoke one certificate (``urn:uuid:`` prefix accepted); idempotent.

    Raises:
        ValueError: ``reason`` is blank.
    """
    if not reason.strip():
        msg = "a revocation needs a reason"
        raise ValueError(msg)
    store = CertStatusStore(settings, FLOW)
    try:
        request = Revocation(cert_id_of(cert_id.strip()), reason.strip(), by, datetime.now(UTC))
        [outcome] = store.revoke([request])
    finally:
        store.close()
    return outcome


def signed_status_list(settings: Settings, now: datetime | None = None) -> str:
    """The revocation status list credential, built from the registry, as a signed JWT."""
    store = CertStatusStore(settings, FLOW)
    try:
        revoked, allocated = store.revoked_indexes()
    finally:
        store.close()
    key_file = signer_path(settings)
    key = signing.load_signing_key(key_file, kid=key_file.name.removesuffix(".private.pem"))
    base = verify_base_url(settings)
    credential = status_list.status_list_credential(
        base, issuer_url(base), revoked, allocated, now or datetime.now(UTC)
    )
    return status_list.sign_status_list(credential, key)


@dataclass(frozen=True)
class RevocationCheck:
    """The revocation check of a verification: ``revoked`` and the check line to show."""

    revoked: bool
    check: Check


def _from_list(vc: dict[str, Any], token: str, keys: dict[str, object]) -> RevocationCheck:
    try:
        answer = status_list.check_status(vc, token, keys)
    except status_list.StatusListError as exc:
        return RevocationCheck(False, Check("revocation", "failed", str(exc)))
    if answer is None:
        why = "the credential has no credentialStatus (issued before status lists)"
        return RevocationCheck(False, Check("revocation", "not checked", why))
    where = f"bit {answer.index} of {answer.list_url}"
    if answer.revoked:
        return RevocationCheck(True, Check("revocation", "failed", f"REVOKED: {where} is set"))
    return RevocationCheck(False, Check("revocation", "ok", f"not revoked ({where} is 0)"))


def _from_registry(settings: Settings, cert_id: str) -> RevocationCheck:
    once = settings.with_overrides(run=settings.run.model_copy(update={"retry_max_attempts": 1}))
    try:
        store = CertStatusStore(once, FLOW)  # one attempt: a verifier does not wait for it
        try:
            state = store.registry([cert_id])[cert_id]
        finally:
            store.close()
    except Exception as exc:  # the registry is out of reach: say so, the verdict stands
        detail = f"registry unreachable ({type(exc).__name__}: {str(exc)[:200]})"
        return RevocationCheck(False, Check("revocation", "not checked", detail))
    if state is None:
        detail = "the certificate is not in cert_registry"
        return RevocationCheck(False, Check("revocation", "not checked", detail))
    if state.revoked:
        when = state.at.isoformat() if state.at is not None else "?"
        detail = f"REVOKED on {when} by {state.by or '?'}: {state.reason or '(no reason)'}"
        return RevocationCheck(True, Check("revocation", "failed", detail))
    return RevocationCheck(False, Check("revocation", "ok", "not revoked (cert_registry)"))


def with_revocation(
    result: binding.Verification, check: RevocationCheck | None
) -> binding.Verification:
    """``result`` with the revocation check added; REVOKED (reason: the check's detail) when
    the certificate was revoked. None (no check made) leaves ``result`` as it is."""
    if check is None or result.verdict is binding.Verdict.INVALID:
        return result
    checks = (*result.checks, check.check)
    if check.revoked:
        return binding.Verification(
            binding.Verdict.REVOKED, check.check.detail, checks, result.claims
        )
    return replace(result, checks=checks)


def served_revocation(
    settings: Settings,
    claims: dict[str, Any],
    keys: dict[str, object],
    list_token: Callable[[], str],
) -> RevocationCheck | None:
    """The verification page's check: from the (cached) status list, with the registry's
    reason when the bit is set; None for a credential without ``credentialStatus`` (no server
    is asked then)."""
    vc = claims.get("vc")
    if not isinstance(vc, dict) or status_list.credential_status(vc) is None:
        return None
    try:
        token = list_token()
    except Exception as exc:  # the registry or the key is out of reach: say so
        detail = f"the status list is unavailable ({type(exc).__name__})"
        return RevocationCheck(False, Check("revocation", "not checked", detail))
    answer = _from_list(vc, token, keys)
    if answer.revoked:
        registry = _from_registry(settings, cert_id_of(str(claims.get("jti", ""))))
        if registry.revoked:
            return registry
    return answer


def revocation_check(
    settings: Settings,
    claims: dict[str, Any],
    keys: dict[str, object],
    list_token: str | None = None,
    offline: bool = False,
) -> RevocationCheck:
    """Whether the credential in ``claims`` is revoked: from ``list_token`` (a status list JWT,
    offline), else from the registry unless ``offline``."""
    vc = claims.get("vc") if isinstance(claims.get("vc"), dict) else {}
    assert isinstance(vc, dict)
    if list_token is not None:
        return _from_list(vc, list_token, keys)
    if offline:
        return RevocationCheck(
            False, Check("revocation", "not checked", "offline, and no status list given")
        )
    return _from_registry(settings, cert_id_of(str(claims.get("jti", ""))))
