"""Browser-test helpers: a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
from lab/install.sh) driven by Selenium, and a helper that signs in and reads the dashboard.

Screenshots go to ``test-artifacts/browser/`` (kept after the run, ignored by git): one per step of
each test, at the window size the step was taken at.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from tests.tls import session_pki

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DESKTOP = (1280, 900)
PHONE = (390, 844)


def spki_hash(cert: Path) -> str:
    """Chromium's pin of a certificate's key: base64 of the SHA-256 of its SubjectPublicKeyInfo."""
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    der = loaded.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def chrome(trust: tuple[Path, ...] = ()) -> webdriver.Chrome:
    """Headless Chromium with no network beyond what the page asks for (loopback, lab bridge).

    ``trust``: certificates (the test CA and the server's) whose keys the browser accepts, as it
    would a CA in its store; every other certificate error still fails the page.
    """
    for binary in (CHROMIUM, CHROMEDRIVER):
        assert shutil.which(binary), f"{binary} missing: run `bash lab/install.sh` (make test does)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    if trust:
        options.add_argument(f"--ignore-certificate-errors-spki-list={','.join(spki_hash(c) for c in trust)}")
    for arg in (
        "--headless=new",
        "--no-sandbox",  # tests run as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-proxy-server",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


class Dashboard:
    """The browser, pointed at one server, with the few verbs the tests need."""

    def __init__(self, driver: webdriver.Chrome, base_url: str, name: str) -> None:
        self.driver = driver
        self.base_url = base_url
        self.name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
        self.shots = 0
        for old in ARTIFACTS.glob(f"{self.name}-*.png"):  # a test's screenshots are of its last run
            old.unlink()

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    @property
    def path(self) -> str:
        url: str = self.driver.current_url
        return url.removeprefix(self.base_url)

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[WebElement]:
        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def text(self, css: str) -> str:
        try:
            return str(self.find(css).text)
        except (NoSuchElementException, StaleElementReferenceException):
            return ""

    def rows(self, css: str, attribute: str) -> dict[str, str]:
        """``attribute`` -> text of every element matching ``css``, read in one go (a live page
        may replace its elements between two reads)."""
        found = self.driver.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0]))"
            ".map(e => [e.getAttribute(arguments[1]), e.innerText]);",
            css,
            attribute,
        )
        return {str(key): str(text) for key, text in found}

    def body(self) -> str:
        return self.text("body")

    def wait(self, condition: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = condition()
            except (NoSuchElementException, StaleElementReferenceException):
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                self.screenshot("timeout")
                raise AssertionError(f"{what} (after {timeout}s); page {self.path}: {self.body()[:2000]}")
            time.sleep(0.1)

    def sign_in(self, token: str) -> None:
        self.open("/web/signin")
        self.find("#token").send_keys(token)
        self.find("#signin").click()

    def signed_in(self, token: str) -> None:
        """Sign in with an admin token and wait for the stacks list it leads to."""
        self.sign_in(token)
        self.wait(lambda: self.path == "/web/stacks", 10, "not signed in")

    def screenshot(self, step: str, size: tuple[int, int] | None = None) -> Path:
        """Save the page (the whole scrollable height at the window's width) as a PNG."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        width, height = size or DESKTOP
        full = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(width, max(height, min(int(full) + 120, 6000)))
        self.shots += 1
        path = ARTIFACTS / f"{self.name}-{self.shots:02}-{step}.png"
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(*DESKTOP)
        return path

    def marker(self) -> None:
        """Mark this page load: :meth:`same_page` is true until the browser loads another page."""
        self.driver.execute_script("window.__graphiumMarker = 'kept'")

    def same_page(self) -> bool:
        return bool(self.driver.execute_script("return window.__graphiumMarker === 'kept'"))


@pytest.fixture(name="browser")
def browser_fixture() -> Iterator[webdriver.Chrome]:
    """Chromium trusting the test session's server certificate (tests/tls.py), as servers of
    tests speak HTTPS."""
    pki = session_pki()
    driver = chrome((pki.ca_cert, pki.server_cert))
    try:
        yield driver
    finally:
        driver.quit()
