"""Where certificate files (PDFs, credentials) are kept: a small storage protocol.

Keys are relative, slash-separated paths such as ``<batchId>/<certId>.pdf``
(:func:`object_key`). :class:`LocalStorage` maps them below a root folder and writes
atomically (temporary file in the target folder, fsync, rename), so a reader never sees a
half-written PDF and a re-run simply replaces the file (writes are idempotent upserts).

Errors: :class:`InvalidKeyError` (a ``ValueError``) for keys that could escape the root
(``..``, absolute paths, backslashes, empty segments); :class:`KeyError` from ``get`` when
nothing is stored under a key.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol, runtime_checkable

from lernflow.kernel.errors import LernflowError

logger = logging.getLogger(__name__)

_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+=-]*")
MAX_KEY_LENGTH = 512


class InvalidKeyError(LernflowError, ValueError):
    """A storage key is empty, absolute, or contains ``..``, ``\\``, or unsafe characters."""


@runtime_checkable
class Storage(Protocol):
    """Blob storage for certificate files."""

    def put(self, key: str, data: bytes, content_type: str) -> str:
        """Store ``data`` under ``key`` (replacing any previous value); return its URL or path."""
        ...

    def get(self, key: str) -> bytes:
        """The bytes stored under ``key``; ``KeyError`` when there are none."""
        ...

    def exists(self, key: str) -> bool:
        """Whether something is stored under ``key``."""
        ...


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise :class:`InvalidKeyError`.

    Each ``/``-separated segment must start with a letter or digit and contain only letters,
    digits and ``. _ @ + = -``; so ``..``, hidden files, absolute paths, backslashes and empty
    segments are all refused.
    """
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        msg = f"storage key must be a non-empty string of at most {MAX_KEY_LENGTH} chars"
        raise InvalidKeyError(msg)
    for segment in key.split("/"):
        if segment in ("", ".", "..") or not _SEGMENT.fullmatch(segment):
            msg = f"unsafe storage key {key[:200]!r}: bad segment {segment[:100]!r}"
            raise InvalidKeyError(msg)
    return key


def object_key(batch_id: str, cert_id: str, suffix: str = ".pdf") -> str:
    """The key of a certificate file: ``<batchId>/<certId><suffix>``, validated."""
    return validate_key(f"{batch_id}/{cert_id}{suffix}")


class LocalStorage:
    """:class:`Storage` on the local file system below ``root`` (created on first write).

    ``put`` returns the absolute file path. ``content_type`` is not recorded (the file
    extension carries it).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def path(self, key: str) -> Path:
        """The file that holds ``key`` (always inside :attr:`root`)."""
        path = (self.root / validate_key(key)).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            msg = f"storage key {key[:200]!r} resolves outside {self.root}"
            raise InvalidKeyError(msg)
        return path

    def put(self, key: str, data: bytes, content_type: str) -> str:
        """Write ``data`` atomically to the key's file; return the file's absolute path."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        logger.debug("stored %s (%d bytes, %s) at %s", key, len(data), content_type, target)
        return str(target)

    def get(self, key: str) -> bytes:
        """The bytes stored under ``key``.

        Raises:
            KeyError: nothing is stored under ``key``.
            InvalidKeyError: the key is unsafe.
        """
        path = self.path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyError(key) from None

    def exists(self, key: str) -> bool:
        """Whether a file is stored under ``key``."""
        return self.path(key).is_file()
