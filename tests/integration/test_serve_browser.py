"""``lernflow serve`` in a real headless browser (Debian's chromium and chromedriver, driven by
selenium; nothing downloaded): the page behind a genuine certificate's QR code (the URL is read
off the rendered certificate with zbarimg), a tampered PDF uploaded through the form, and an
unknown id. Screenshots go to out/screenshots/ (not in git). docs/serve.md."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from lernflow.certificates import render
from lernflow.ops.serve.server import CertificateServer, Listening, make_server
from tests.servekit import COURSE, ISSUER, LEARNER, SIGNATORY, Issued, issue, tampered

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "out" / "screenshots"


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> Issued:
    return issue(tmp_path_factory.mktemp("serve-browser"))


@pytest.fixture(scope="module")
def server(issued: Issued) -> Iterator[Listening]:
    """The app on 127.0.0.1, a port the system picks, in a thread of this process."""
    settings = issued.settings.with_overrides(
        serve=issued.settings.serve.model_copy(update={"host": "127.0.0.1", "port": 0})
    )
    ready = threading.Event()
    uvicorn_server: CertificateServer = make_server(settings, lambda _at: ready.set())
    thread = threading.Thread(target=uvicorn_server.run, name="serve", daemon=True)
    thread.start()
    assert ready.wait(30), "lernflow serve did not start"
    assert uvicorn_server.listening is not None
    yield uvicorn_server.listening
    uvicorn_server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    for tool in (CHROMIUM, CHROMEDRIVER):
        assert tool.exists(), (
            f"{tool} is missing: run 'make setup' (Debian chromium, chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--window-size=1000,1400", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(autouse=True)
def _offline_selenium(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium-manager must never fetch a driver


def _shot(driver: webdriver.Chrome, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1000, max(800, int(height) + 40))
    assert driver.save_screenshot(str(path))
    return path


def _text(driver: webdriver.Chrome, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def _console_errors(driver: webdriver.Chrome) -> list[str]:
    """The console's errors: a CSP violation (a refused stylesheet, script or form), a failed
    load (the page's own 404 among them)."""
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return [m for m in errors if "favicon.ico" not in m]


def _scanned_url(pdf: bytes, folder: Path) -> str:
    """The URL of the QR code printed on ``pdf``, as a phone's camera would read it."""
    png = folder / "scan.png"
    png.write_bytes(render.preview_png(pdf, width=1600))
    result = subprocess.run(
        ["zbarimg", "--raw", "-q", "-Sdisable", "-Sqrcode.enable", str(png)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return result.stdout.strip()


def test_the_page_behind_a_genuine_certificates_qr_code(issued, server, browser, tmp_path):
    scanned = _scanned_url(issued.pdf, tmp_path)
    url = urlsplit(scanned)
    cert_domain = urlsplit(issued.settings.certificates.cert_domain_url)
    assert (url.scheme, url.netloc, url.path) == (
        cert_domain.scheme, cert_domain.netloc, f"/certs/{issued.cert_id}",
    )  # fmt: skip
    browser.get(server.url + url.path)  # the test's server stands in for cert_domain_url
    verdict = _text(browser, "verdict")
    assert verdict.startswith("VALID"), verdict
    assert "the pages are the ones issued" in verdict
    assert _text(browser, "learner") == LEARNER
    assert _text(browser, "course") == COURSE
    assert _text(browser, "issued") == "2024-09-30"
    assert _text(browser, "issuer").startswith(ISSUER)
    assert SIGNATORY in _text(browser, "signatories")
    link = browser.find_element(By.ID, "pdf")
    assert link.get_attribute("href") == f"{server.url}/certs/{issued.cert_id}/pdf"
    banner = browser.find_element(By.ID, "verdict")
    assert banner.value_of_css_property("background-color") == "rgba(232, 245, 233, 1)"  # styled
    assert _console_errors(browser) == []
    assert _shot(browser, "serve-genuine").stat().st_size > 10_000


def test_a_tampered_pdf_uploaded_through_the_form_is_not_valid(issued, server, browser, tmp_path):
    forged = tmp_path / "certificate.pdf"
    forged.write_bytes(tampered(issued.pdf))
    browser.get(server.url + "/")
    browser.find_element(By.ID, "file").send_keys(str(forged))
    browser.find_element(By.ID, "submit").click()
    deadline = time.monotonic() + 30
    while "/verify" not in browser.current_url and time.monotonic() < deadline:
        time.sleep(0.1)
    verdict = _text(browser, "verdict")
    assert verdict.startswith("NOT VALID"), verdict
    assert "pages differ from the issued certificate" in verdict
    banner = browser.find_element(By.ID, "verdict")
    assert banner.value_of_css_property("background-color") == "rgba(255, 235, 238, 1)"
    assert _console_errors(browser) == []
    assert _shot(browser, "serve-tampered").stat().st_size > 10_000


def test_an_unknown_id_gets_a_clear_not_found_page(server, browser):
    unknown = f"{server.url}/certs/00000000-0000-4000-8000-00000000dead"
    browser.get(unknown)
    verdict = _text(browser, "verdict")
    assert verdict.startswith("No certificate has this address."), verdict
    assert "upload the certificate's PDF below" in verdict
    assert browser.find_element(By.ID, "upload").is_displayed()
    errors = _console_errors(browser)  # the status the browser got, and nothing else refused
    assert len(errors) == 1 and errors[0].startswith(unknown), errors
    assert "status of 404" in errors[0]
    assert _shot(browser, "serve-unknown").stat().st_size > 5_000
