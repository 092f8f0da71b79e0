"""The template cache: allowed locations, refused schemes and hosts, LRU eviction, errors."""

from __future__ import annotations

import socket

import pytest

from lernflow.certificates.fetch import TemplateCache, bundled_template_path
from lernflow.certificates.sanitize import TemplateError, sanitize_svg


@pytest.fixture(scope="module")
def template() -> str:
    return bundled_template_path().read_text(encoding="utf-8")


@pytest.fixture
def no_network(monkeypatch):
    """Record (and refuse) every DNS lookup, so a test can prove nothing was fetched."""
    lookups: list[str] = []

    def refuse(host, *args, **kwargs):
        lookups.append(str(host))
        raise OSError(f"network disabled in tests: {host}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return lookups


def test_cache_reads_local_paths_and_file_urls(template):
    cache = TemplateCache()
    path = bundled_template_path()
    by_path = cache.get(str(path))
    by_url = cache.get(path.as_uri())
    assert by_path == by_url == sanitize_svg(template)
    assert len(cache) == 2


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/t.svg",
        "gopher://example.org/t.svg",
        "data:image/svg+xml,%3Csvg%2F%3E",
        "javascript:alert(1)",
        "file://remote-host/share/t.svg",
    ],
)
def test_cache_refuses_other_schemes(url, no_network):
    with pytest.raises(TemplateError):
        TemplateCache(allowed_hosts=("example.org",)).get(url)
    assert no_network == []


def test_cache_refuses_http_hosts_that_are_not_allowed_without_connecting(no_network):
    cache = TemplateCache(allowed_hosts=("templates.example.org",))
    with pytest.raises(TemplateError, match="not in the allowed hosts"):
        cache.get("https://evil.example/t.svg")
    assert no_network == []


def test_cache_fetches_allowed_hosts_and_reports_network_failures_as_retryable(no_network):
    cache = TemplateCache(allowed_hosts=("templates.example.org",), timeout=1)
    with pytest.raises(TemplateError) as err:
        cache.get("https://templates.example.org/t.svg")
    assert err.value.retryable
    assert "templates.example.org" in no_network


def test_cache_evicts_the_least_recently_used_template(tmp_path):
    def write(name: str, label: str) -> str:
        path = tmp_path / name
        path.write_text(f'<svg xmlns="http://www.w3.org/2000/svg"><text>{label}</text></svg>')
        return str(path)

    a, b, c = write("a.svg", "a1"), write("b.svg", "b1"), write("c.svg", "c1")
    cache = TemplateCache(max_entries=2)
    cache.get(a)
    cache.get(b)
    cache.get(a)  # a is now the most recently used
    cache.get(c)  # evicts b
    write("a.svg", "a2")
    write("b.svg", "b2")
    assert "a1" in cache.get(a)  # cached, never invalidated (as in Sunbird)
    assert "b2" in cache.get(b)  # evicted, so re-read
    assert len(cache) == 2


def test_cache_confines_local_templates_to_the_configured_folders(tmp_path):
    inside = tmp_path / "ok.svg"
    inside.write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    cache = TemplateCache(local_roots=[tmp_path])
    assert cache.get(str(inside))
    with pytest.raises(TemplateError, match="outside"):
        cache.get(str(bundled_template_path()))
    with pytest.raises(TemplateError, match="outside"):
        cache.get(str(tmp_path / ".." / "x.svg"))


def test_cache_reports_missing_and_non_svg_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    cache = TemplateCache()
    with pytest.raises(TemplateError, match="cannot read"):
        cache.get(str(tmp_path / "missing.svg"))
    with pytest.raises(TemplateError, match="well-formed"):
        cache.get(str(tmp_path / "notes.txt"))
