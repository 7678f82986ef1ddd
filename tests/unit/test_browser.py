"""tests/browser.py: where no headless browser can run, a skip reason that says why; the
browser it starts gets no network but the loopback and downloads nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import browser

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    browser.chromium_unavailable.cache_clear()
    yield
    browser.chromium_unavailable.cache_clear()


def test_without_apt_get_the_reason_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser, "_installed", lambda: False)
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    reason = browser.chromium_unavailable()
    assert reason and "no apt-get" in reason and "/usr/bin/chromium" in reason


def test_not_root_the_reason_gives_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser, "_installed", lambda: False)
    monkeypatch.setattr(browser.shutil, "which", lambda name: "/usr/bin/apt-get")
    monkeypatch.setattr(browser.os, "geteuid", lambda: 1000)
    reason = browser.chromium_unavailable()
    assert reason and "apt-get install -y chromium chromium-driver" in reason


def test_a_failed_install_is_a_reason_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, ...]] = []

    def apt_get(*args: str) -> str:
        calls.append(args)
        return f"apt-get {args[0]} failed: E: Unable to locate package chromium"

    monkeypatch.setattr(browser, "_installed", lambda: False)
    monkeypatch.setattr(browser.shutil, "which", lambda name: "/usr/bin/apt-get")
    monkeypatch.setattr(browser.os, "geteuid", lambda: 0)
    monkeypatch.setattr(browser, "_apt_get", apt_get)
    assert "Unable to locate package" in (browser.chromium_unavailable() or "")
    assert [c[0] for c in calls] == ["install", "update"]  # an update once, on a failure


def test_installed_browser_needs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser, "_installed", lambda: True)
    monkeypatch.setattr(browser, "_apt_get", lambda *a: pytest.fail("nothing to install"))
    assert browser.chromium_unavailable() is None


def test_the_browser_resolves_only_the_loopback_and_selenium_stays_offline() -> None:
    flags = set(browser.FLAGS)
    assert {"--headless=new", "--no-sandbox", "--disable-dev-shm-usage"} <= flags
    assert {"--disable-background-networking", "--disable-component-update"} <= flags
    assert "--no-first-run" in flags
    rules = next(f for f in flags if f.startswith("--host-resolver-rules="))
    assert "MAP * ~NOTFOUND" in rules and "EXCLUDE 127.0.0.1" in rules
    assert browser.QUIET_SELENIUM == {"SE_AVOID_STATS": "true", "SE_OFFLINE": "true"}
