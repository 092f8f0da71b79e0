"""Local certificate storage: atomic writes, safe keys, and the package's public surface."""

from __future__ import annotations

import os
import stat

import pytest

from lernflow import certificates
from lernflow.certificates.storage import InvalidKeyError, LocalStorage, Storage, object_key

CERT_ID = "8df30629-c979-588d-af87-70ac52335176"


def test_local_storage_satisfies_the_storage_protocol(tmp_path):
    assert isinstance(LocalStorage(tmp_path), Storage)


def test_put_then_get_round_trips_under_batch_and_cert_id(tmp_path):
    storage = LocalStorage(tmp_path)
    key = object_key("lfbatch0930", CERT_ID)
    assert key == f"lfbatch0930/{CERT_ID}.pdf"
    assert not storage.exists(key)
    location = storage.put(key, b"%PDF-1.7 ...", "application/pdf")
    assert location == str(tmp_path.resolve() / key)
    assert storage.exists(key)
    assert storage.get(key) == b"%PDF-1.7 ..."
    assert stat.S_IMODE(os.stat(location).st_mode) == 0o644


def test_put_replaces_atomically_and_leaves_no_temporary_files(tmp_path):
    storage = LocalStorage(tmp_path)
    key = object_key("b1", CERT_ID, ".jwt")
    storage.put(key, b"one", "application/jwt")
    storage.put(key, b"two", "application/jwt")
    assert storage.get(key) == b"two"
    assert sorted(p.name for p in (tmp_path / "b1").iterdir()) == [f"{CERT_ID}.jwt"]


def test_a_failed_write_keeps_the_old_file_and_cleans_up(tmp_path, monkeypatch):
    storage = LocalStorage(tmp_path)
    key = object_key("b1", CERT_ID)
    storage.put(key, b"old", "application/pdf")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        storage.put(key, b"new", "application/pdf")
    monkeypatch.undo()
    assert storage.get(key) == b"old"
    assert [p.name for p in (tmp_path / "b1").iterdir()] == [f"{CERT_ID}.pdf"]


def test_get_of_a_missing_key_raises_key_error(tmp_path):
    with pytest.raises(KeyError):
        LocalStorage(tmp_path).get("b1/missing.pdf")


@pytest.mark.parametrize(
    "key",
    [
        "",
        "../escape.pdf",
        "b1/../../escape.pdf",
        "/etc/passwd",
        "b1//x.pdf",
        "b1/./x.pdf",
        "b1\\x.pdf",
        ".hidden",
        "b1/",
        "b1/x.pdf\x00",
        "x" * 600,
    ],
)
def test_unsafe_keys_are_rejected(tmp_path, key):
    storage = LocalStorage(tmp_path)
    with pytest.raises(InvalidKeyError):
        storage.put(key, b"x", "application/pdf")
    with pytest.raises(InvalidKeyError):
        storage.exists(key)


def test_a_symlink_out_of_the_root_is_not_followed(tmp_path):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "b1").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidKeyError, match="outside"):
        LocalStorage(root).put("b1/x.pdf", b"x", "application/pdf")
    assert list(outside.iterdir()) == []


def test_object_key_refuses_ids_that_would_escape():
    with pytest.raises(InvalidKeyError):
        object_key("..", CERT_ID)


def test_every_name_in_all_is_exported():
    for name in certificates.__all__:
        assert getattr(certificates, name) is not None
    assert sorted(certificates.__all__) == sorted(set(certificates.__all__))
    with pytest.raises(AttributeError):
        _ = certificates.no_such_name  # type: ignore[attr-defined]
