"""A real headless browser for tests: Debian's `chromium` and `chromium-driver`, installed when
missing (as root, bounded in time), driven by selenium with nothing downloaded and no network
but loopback. `chromium_unavailable()` says why a browser cannot run here (a skip reason);
`start_chromium()` starts one; `open_page()` opens a URL or a local file; `screenshot()` keeps a
PNG under test-artifacts/."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from tests.helpers import ROOT

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PACKAGES = ("chromium", "chromium-driver")
INSTALL_SECONDS = 600  # apt-get update + ~100 MB of packages on a slow mirror
ARTIFACTS = ROOT / "test-artifacts"  # git-ignored; CI may keep it
# Headless, and quiet on the network: no background requests, component updates, first-run
# pages or sync, and every host name but the loopback's unresolvable.
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # root in a container has no user namespace for the sandbox
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    "--metrics-recording-only",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
)
# Selenium Manager is never asked for a driver (both paths are given); in case it were, it
# must neither download nor report usage.
QUIET_SELENIUM = {"SE_AVOID_STATS": "true", "SE_OFFLINE": "true"}


def _installed() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


def _apt_get(*args: str) -> str | None:
    """Run apt-get; None when it worked, else the tail of its output."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(
            ["apt-get", *args],
            capture_output=True,
            text=True,
            timeout=INSTALL_SECONDS,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"apt-get {args[0]} took over {INSTALL_SECONDS} s"
    if done.returncode != 0:
        return f"apt-get {args[0]} failed: {(done.stderr or done.stdout).strip()[-300:]}"
    return None


@functools.cache
def chromium_unavailable() -> str | None:
    """None when chromium and chromedriver are ready (installing them with apt-get when
    missing); else why not, for a test's skip message. Tried once per test session."""
    if _installed():
        return None
    if shutil.which("apt-get") is None:
        return f"{CHROMIUM} or {CHROMEDRIVER} missing and no apt-get to install them"
    if os.geteuid() != 0:
        return (
            f"{CHROMIUM} or {CHROMEDRIVER} missing and not root to install them "
            f"(sudo apt-get install -y {' '.join(PACKAGES)})"
        )
    install = ("install", "-y", "--no-install-recommends", *PACKAGES)
    # The package lists may be stale or absent (a fresh container): update, then try again.
    failed = _apt_get(*install) and (_apt_get("update") or _apt_get(*install))
    if failed or not _installed():
        return failed or f"apt-get installed {' '.join(PACKAGES)} but {CHROMIUM} is missing"
    return None


def start_chromium(width: int = 1280, height: int = 1600) -> WebDriver:
    """A headless Chromium under Debian's chromedriver. Call chromium_unavailable() first."""
    os.environ.update(QUIET_SELENIUM)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--window-size={width},{height}"):
        options.add_argument(flag)
    service = Service(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    return driver


def open_page(driver: WebDriver, target: str | Path) -> None:
    """Open a URL, or a local file (a Path, or a str naming an existing file)."""
    if isinstance(target, Path) or not target.startswith(("http://", "https://", "file://")):
        target = Path(target).resolve().as_uri()
    driver.get(target)


def screenshot(driver: WebDriver, name: str) -> Path:
    """The whole window as test-artifacts/<name>.png; prints and returns its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path
