"""Helpers of the tests that run the real Airflow api-server and drive headless Chromium against it.

Chromium and chromedriver are Debian's packages (`make test` installs them when missing); selenium is
given both paths, so it never tries to download a driver.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from crm_warehouse import airflow_runner, settings
from tests.conftest import free_port

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-dev-shm-usage", "--window-size=1440,900")


def wait_until_up(url: str, process: subprocess.Popen, log_path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args[0]} exited ({process.returncode}):\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout:.0f}s:\n{log_path.read_text()[-3000:]}")


@contextmanager
def background(command: list[str], env: dict[str, str], log_path: Path, ready_url: str):
    """Run a server in its own process group until the block ends; wait until ready_url answers."""
    with log_path.open("w") as log_file:
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_until_up(ready_url, process, log_path)
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    """Stop the process and every process it started (the api-server forks workers)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def api_server(env: dict[str, str], log_path: Path):
    """Airflow's api-server (the UI and the REST API) on a free port; yields its base URL."""
    port = free_port()
    command = [airflow_runner.airflow_executable(), "api-server", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]
    base = f"http://127.0.0.1:{port}"
    with background(command, env, log_path, f"{base}/api/v2/monitor/health"):
        yield base


def chromium_paths() -> tuple[str, str]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    message = "Debian's chromium and chromium-driver are not installed (`make browser` installs them)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def chromium():
    """A headless Chromium driven by selenium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    with settings.environment({"SE_OFFLINE": "true"}):  # selenium manager must never download anything
        driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, condition, timeout: float = 60, what: str = "the page"):
    """Poll condition(driver) until it returns something truthy; fail with a screenshot of what was there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = condition(driver)
        except Exception:  # the page is still rendering: elements come and go
            found = None
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"{what} did not appear within {timeout:.0f}s at {driver.current_url}; page text: "
                         f"{driver.find_element('tag name', 'body').text[:1500]!r}")


def screenshots_dir() -> Path:
    """Where the browser tests save their screenshots (the README shows copies in docs/screenshots)."""
    path = settings.data_dir() / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path
