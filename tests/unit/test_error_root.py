"""Every exception of certificates/ and reports/ is a ``LernflowError`` (one root to catch)."""

from __future__ import annotations

import pytest

from lernflow.certificates.sanitize import RefusedURLError, TemplateError
from lernflow.certificates.signing import VerificationError
from lernflow.certificates.storage import InvalidKeyError
from lernflow.kernel.errors import LernflowError
from lernflow.reports.model import BatchFailed
from lernflow.reports.packaging import PackagingError
from lernflow.reports.response import ArchiveReadError


@pytest.mark.parametrize(
    "error",
    [
        TemplateError("t"),
        VerificationError("v", "detail"),
        InvalidKeyError("k"),
        RefusedURLError("u"),
        BatchFailed("b"),
        PackagingError("p", stage="zip"),
        ArchiveReadError("a"),
    ],
)
def test_errors_share_the_lernflow_root(error):
    assert isinstance(error, LernflowError)


@pytest.mark.parametrize(
    "error", [InvalidKeyError("k"), RefusedURLError("u"), ArchiveReadError("a")]
)
def test_former_value_errors_are_still_value_errors(error):
    assert isinstance(error, ValueError)


def test_messages_are_unchanged():
    assert str(TemplateError("bad template")) == "bad template"
    assert str(VerificationError("expired", "at 3")) == "expired: at 3"
    assert str(BatchFailed("next on empty iterator")) == "next on empty iterator"
    assert str(PackagingError("zip failed", stage="zip")) == "zip failed"
