"""The QA UI where reads are protected (``LINEINSPECT_AUTH_READS=true``, docs/SECURITY.md),
in headless Chromium against a real service: without a key the page asks for one (and stops
sending reads that would only count as failed key checks); with the key entered top right
the log, the line status, the detail and its image (fetched with the key) load."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from api.app import create_app
from core.bus import line_keys
from core.settings import Settings
from tests.api.api_helpers import fake_factory
from tests.ui.conftest import _redis_url
from tests.ui.ui_helpers import API_KEY, LiveServer, seed_log, utc_now

WAIT_S = 15


@pytest.fixture(scope="module")
def protected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any, str]]:
    """A service with protected reads and 12 inspections of one line: (url, services, line)."""
    tmp = tmp_path_factory.mktemp("ui-auth-reads")
    line = f"ui-auth-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        redis_url=_redis_url(), database_url=f"sqlite:///{tmp / 'ui.db'}", data_dir=tmp,
        image_store_dir=tmp / "images", line_id=line, api_key=API_KEY, auth_reads=True,
    )
    app = create_app(settings, inspector_factory=fake_factory, preload_models=False,
                     retention_interval_s=None)
    services = app.state.services
    seed_log(services, [line], 12, utc_now())
    server = LiveServer(app)
    server.start()
    try:
        yield server.url, services, line
    finally:
        server.stop()
        services.redis.delete(*line_keys(line))
        services.redis.srem("lines", line)


def _failed_checks(services: Any) -> int:
    """Failed key checks of this (loopback) client within the last minute."""
    return services.auth._failures.count("127.0.0.1", time.monotonic())


def _wait(driver: Any, cond: Any, what: str) -> Any:
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(cond, message=what)


def test_reads_ask_for_the_key_then_send_it(browser: Any,
                                            protected: tuple[str, Any, str]) -> None:
    url, services, line = protected
    assert httpx.get(f"{url}/api/v1/inspections").status_code == 401  # reads are protected
    browser.get(f"{url}/healthz")
    browser.execute_script("sessionStorage.clear(); localStorage.clear();")
    browser.get(f"{url}/")
    _wait(browser, lambda d: d.execute_script("return document.body.dataset.ready === '1'"),
          "the UI script did not start")
    error = browser.find_element(By.ID, "log-error")
    _wait(browser, lambda d: error.is_displayed() and "API key" in error.text,
          "the log asks for the key")
    assert "Reads need an API key" in error.text
    _wait(browser, lambda d: "API key" in d.find_element(By.ID, "lines").text,
          "the line status asks for the key")
    # asking, not guessing: once a read was refused no read goes out without the key, so
    # the line status polling (every 2 s) does not lock the browser out by failed key checks
    before = _failed_checks(services)
    time.sleep(4.5)
    assert _failed_checks(services) == before

    key = browser.find_element(By.ID, "apikey")
    key.send_keys(API_KEY, Keys.TAB)  # change event: the views load with the key
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR,
                                                 "#log-table tbody tr[data-id]")) == 12,
          "the log loads with the key")
    assert not error.is_displayed()
    _wait(browser, lambda d: "unavailable" not in d.find_element(By.ID, "lines").text,
          "the line status loads with the key")

    row = browser.find_element(By.CSS_SELECTOR, "#log-table tbody tr[data-id] .badge.NG")
    row.click()
    _wait(browser, lambda d: d.find_element(By.ID, "detail-title").text.startswith("Inspection #"),
          "the detail loads with the key")
    image = browser.find_element(By.ID, "detail-image")
    _wait(browser, lambda d: d.execute_script(
        "const i = arguments[0]; return i.complete && i.naturalWidth > 0 && "
        "i.src.startsWith('blob:');", image), "the frame loads through the key")
