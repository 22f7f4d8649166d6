"""Model lifecycle in the QA UI (issue 21): the shadow candidate's disagreements (both overlays
side by side, per-day summary) and the "to review" queue (reasons, cap, a review takes a frame
off). A service of its own (uvicorn, SQLite log and image store in a temporary folder, the
real Redis or the embedded one), seeded through the real repositories; the endpoints over
HTTP, the pages in headless Chromium (screenshots in ui_helpers.ARTIFACTS)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
import redis
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from api.app import create_app
from core.lifecycle import ShadowRecord
from core.result import Defect, InspectionResult
from core.review import ReviewSample
from core.settings import Settings
from storage.review_queue import ReviewQueue
from storage.shadow import ShadowRepository
from tests.api.api_helpers import fake_factory
from tests.ui.ui_helpers import API_KEY, ARTIFACTS, CLASSES, LiveServer, frame_and_mask, utc_now

WAIT_S = 15
CAP = 5
LINE = "lc-line"


@dataclass
class Seeded:
    """The service and what was seeded."""

    url: str
    services: Any
    #: inspection id -> frame kind
    ids: dict[str, int]
    #: shadow result ids of the disagreements, newest first
    shadow_ids: list[int]
    today: str
    yesterday: str


def _redis_url() -> str:
    try:
        r = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=2.0)
        r.ping()
        r.close()
        return "redis://127.0.0.1:6379/0"
    except redis.RedisError:
        return ""


def _inspection(svc: Any, fid: int, at: datetime, cls: str | None, score: float) -> int:
    image, mask, bbox = frame_and_mask(fid, CLASSES.index(cls) if cls else 1)
    defects = [] if cls is None else [
        Defect(cls=cls, score=score, bbox=bbox, area_px=600, model="fake")]
    if cls is None:
        mask[:] = 0
    result = InspectionResult(
        line_id=LINE, frame_id=fid, captured_at=at, verdict="NG" if defects else "OK",
        defects=defects, models={"fake": "0.0.1"}, recipe="ui-recipe", width=128, height=96,
        mask_classes=CLASSES)
    iid, _ = svc.repository.save(result)
    image_path, mask_path = svc.images.save(LINE, fid, at, image, mask, inspection_id=iid)
    svc.repository.set_image_paths(iid, image_path, mask_path)
    return iid


def _shadow(store: ShadowRepository, fid: int, at: datetime, live: str, verdict: str,
            live_classes: list[str], defects: list[dict]) -> None:
    kind = "verdict" if live != verdict else (
        "class" if sorted(live_classes) != sorted({d["class"] for d in defects}) else None)
    store.save_shadow(ShadowRecord(
        line_id=LINE, frame_id=fid, captured_at=at, recipe="ui-recipe@shadow",
        live_verdict=live, verdict=verdict, live_classes=live_classes,
        classes=sorted({d["class"] for d in defects}), defects=defects,
        models={"fake@shadow": "0.0.2"}, latency_ms=41.0, disagreement=kind))


def _since_midnight(now: datetime) -> timedelta:
    """Time since the start of ``now``'s UTC day."""
    return now - now.replace(hour=0, minute=0, second=0, microsecond=0)


def _past_first_seconds_of_day() -> datetime:
    """Now (whole seconds, UTC), at least ten seconds after midnight."""
    now = utc_now().replace(microsecond=0)
    wait = timedelta(seconds=10) - _since_midnight(now)
    if wait > timedelta(0):
        time.sleep(wait.total_seconds())
        now = utc_now().replace(microsecond=0)
    return now


def _earlier_today(now: datetime, n: int) -> list[datetime]:
    """``n`` increasing whole-second times before ``now`` on its UTC day: the "today" rows stay
    on one day when the suite runs just after midnight (CI of 2026-12-06 ran across it)."""
    step = timedelta(seconds=min(60, int(_since_midnight(now).total_seconds()) // (n + 1)))
    return [now - step * (n - k) for k in range(n)]


@pytest.fixture(scope="module")
def lc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """The service, seeded: 8 inspections of one line with retained frames; shadow results
    today (2 verdict and 1 class disagreement, 1 agreement) and yesterday (1 verdict
    disagreement); frames queued for review by each reason up to a cap of 5."""
    tmp = tmp_path_factory.mktemp("ui-lifecycle")
    recipes = tmp / "recipes"
    recipes.mkdir()
    (recipes / "ui-recipe.yaml").write_text("name: ui-recipe\n")
    settings = Settings(
        redis_url=_redis_url(), database_url=f"sqlite:///{tmp / 'ui.db'}", data_dir=tmp,
        image_store_dir=tmp / "images", recipes_dir=recipes, recipe="ui-recipe",
        line_id=LINE, api_key=API_KEY, review_daily_cap=CAP)
    app = create_app(settings, inspector_factory=fake_factory, preload_models=False,
                     retention_interval_s=None)
    svc = app.state.services
    now = _past_first_seconds_of_day()
    at = dict(enumerate(_earlier_today(now, 8)))
    ids = {
        "ok_candidate_ng": _inspection(svc, 1, at[1], None, 0.0),
        "ng_candidate_ok": _inspection(svc, 2, at[2], "pit", 0.93),
        "class_differs": _inspection(svc, 3, at[3], "scratch", 0.88),
        "agree": _inspection(svc, 4, at[4], "pit", 0.9),
        "uncertain_close": _inspection(svc, 5, at[5], "inclusion", 0.51),
        "uncertain_far": _inspection(svc, 6, at[6], "inclusion", 0.58),
        "drift": _inspection(svc, 7, at[7], None, 0.0),
        "yesterday": _inspection(svc, 8, now - timedelta(days=1), "pit", 0.9),
    }
    shadow = ShadowRepository(svc.engine)
    box = {"score": 0.8, "bbox": [70, 40, 40, 30], "area_px": 1200, "model": "fake@shadow"}
    _shadow(shadow, 1, at[1], "OK", "NG", [], [{**box, "class": "scratch"}])
    _shadow(shadow, 2, at[2], "NG", "OK", ["pit"], [])
    _shadow(shadow, 3, at[3], "NG", "NG", ["scratch"], [{**box, "class": "inclusion"}])
    _shadow(shadow, 4, at[4], "NG", "NG", ["pit"], [{**box, "class": "pit"}])
    _shadow(shadow, 8, now - timedelta(days=1), "NG", "OK", ["pit"], [])
    queue = ReviewQueue(svc.engine)
    samples = [
        (2, "disagreement", 1.0, {"kind": "verdict", "candidate": "ui-recipe@shadow",
                                  "live": "NG", "candidate_verdict": "OK"}),
        (6, "uncertain", 0.2, {"max_score": 0.58, "threshold": 0.5, "band": 0.1}),
        (5, "uncertain", 0.9, {"max_score": 0.51, "threshold": 0.5, "band": 0.1}),
        (7, "drift", 0.31, {"distance": 0.31, "limit": 0.2, "every": 10}),
        (1, "disagreement", 1.0, {"kind": "verdict", "candidate": "ui-recipe@shadow",
                                  "live": "OK", "candidate_verdict": "NG"}),
        (3, "disagreement", 0.5, {"kind": "class", "candidate": "ui-recipe@shadow",
                                  "live": "NG", "candidate_verdict": "NG"}),
    ]
    outcomes = [queue.enqueue(ReviewSample(LINE, fid, at[fid], reason, score, detail), CAP)
                .outcome for fid, reason, score, detail in samples]
    assert outcomes == ["queued"] * 5 + ["capped"]  # the 6th sample of the day is over the cap
    server = LiveServer(app)
    server.start()
    newest_first = [s.shadow_id for s in shadow.disagreements(LINE)]
    try:
        yield Seeded(server.url, svc, ids, newest_first, now.strftime("%Y-%m-%d"),
                     (now - timedelta(days=1)).strftime("%Y-%m-%d"))
    finally:
        server.stop()


def _get(lc: Seeded, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{lc.url}{path}", params=params, timeout=10)


def _png(resp: httpx.Response) -> np.ndarray:
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png", resp.text
    return cv2.imdecode(np.frombuffer(resp.content, np.uint8), cv2.IMREAD_COLOR)


def test_disagreements_with_both_overlays(lc: Seeded) -> None:
    body = _get(lc, "/api/v1/shadow/disagreements").json()
    items = body["items"]
    assert [i["shadow_id"] for i in items] == lc.shadow_ids
    assert [i["inspection_id"] for i in items] == [
        lc.ids["class_differs"], lc.ids["ng_candidate_ok"], lc.ids["ok_candidate_ng"],
        lc.ids["yesterday"]]  # the agreeing frame is not listed
    kinds = {i["inspection_id"]: i["disagreement"] for i in items}
    assert kinds[lc.ids["class_differs"]] == "class"
    assert kinds[lc.ids["ok_candidate_ng"]] == "verdict"
    first = next(i for i in items if i["inspection_id"] == lc.ids["ok_candidate_ng"])
    assert (first["live_verdict"], first["verdict"], first["classes"]) == ("OK", "NG",
                                                                           ["scratch"])
    live = _png(_get(lc, first["links"]["live_overlay"]))
    candidate = _png(_get(lc, first["links"]["candidate_overlay"]))
    assert live.shape == candidate.shape == (96, 128, 3)
    # the candidate's box is drawn where the candidate saw the defect, not on the live frame
    x, y, w = 70, 40, 40  # the candidate box: [70, 40, 40, 30]
    edge_live = live[y, x:x + w].astype(int)
    edge_cand = candidate[y, x:x + w].astype(int)
    assert np.abs(edge_cand - edge_live).sum() > 1000
    one_line = _get(lc, "/api/v1/shadow/disagreements", line_id="other").json()
    assert one_line["items"] == []


def test_shadow_summary_per_day(lc: Seeded) -> None:
    body = _get(lc, "/api/v1/shadow/summary").json()
    [line] = body["lines"]
    assert line["line_id"] == LINE
    assert line["days"] == [
        {"day": lc.yesterday, "runs": 1, "verdict": 1, "classes": 0},
        {"day": lc.today, "runs": 4, "verdict": 2, "classes": 1},
    ]


def test_bad_requests_are_refused(lc: Seeded) -> None:
    assert _get(lc, "/api/v1/shadow/999999/overlay.png").status_code == 404
    assert _get(lc, "/api/v1/shadow/0/overlay.png").status_code == 422
    resp = _get(lc, "/api/v1/shadow/summary", since="2026-12-02T00:00:00",
                until="2026-12-01T00:00:00")
    assert resp.status_code == 422
    assert _get(lc, "/api/v1/review-queue", limit=0).status_code == 422
    assert _get(lc, "/api/v1/shadow/disagreements", line_id="a\x01b").status_code == 422


def _wait(driver: Any, cond: Any, what: str) -> Any:
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException,)
                         ).until(cond, message=what)


def _shot(driver: Any, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    driver.execute_script("window.scrollTo(0, 0);")
    assert driver.save_screenshot(str(path)), path
    return path


def _open(driver: Any, lc: Seeded, fragment: str, loaded: str) -> None:
    driver.get(f"{lc.url}/healthz")
    driver.execute_script("sessionStorage.clear(); localStorage.clear();")
    driver.get(f"{lc.url}/{fragment}")
    _wait(driver, lambda d: d.execute_script(f"return !!document.body.dataset.{loaded}"),
          f"{fragment} never loaded")


def test_shadow_page_shows_overlays_side_by_side(browser: Any, lc: Seeded) -> None:
    _open(browser, lc, "#/shadow", "shadowLoaded")
    rows = browser.execute_script(
        "return [...document.querySelectorAll('#shadow-summary tbody tr[data-day]')]"
        ".map(r => [r.dataset.day, r.querySelector('.verdict').textContent,"
        " r.querySelector('.classes').textContent]);")
    assert rows == [[lc.today, "2", "1"], [lc.yesterday, "1", "0"]]
    assert not browser.find_element(By.ID, "log-view").is_displayed()
    items = browser.find_elements(By.CSS_SELECTOR, "#shadow-list .shadow-item")
    assert len(items) == 4
    _wait(browser, lambda d: d.execute_script(
        "return [...document.querySelectorAll('#shadow-list img')]"
        ".every(i => i.complete && i.naturalWidth === 128);"), "overlays never loaded")
    pair = items[0].find_elements(By.CSS_SELECTOR, ".pair figure")
    assert [f.get_attribute("data-kind") for f in pair] == ["live", "candidate"]
    assert "Candidate ui-recipe@shadow" in pair[1].text
    left, right = (f.find_element(By.TAG_NAME, "img").rect for f in pair)
    assert abs(left["y"] - right["y"]) < 2 and right["x"] > left["x"] + left["width"] - 2
    _shot(browser, "20-shadow-disagreements")


def test_review_queue_page_and_review_takes_frame_off(browser: Any, lc: Seeded) -> None:
    _open(browser, lc, "#/review", "reviewLoaded")
    order = browser.execute_script(
        "return [...document.querySelectorAll('#review-table tbody tr[data-id]')]"
        ".map(r => [Number(r.dataset.id), r.dataset.reason]);")
    ids = lc.ids
    assert order == [[ids["ng_candidate_ok"], "disagreement"],
                     [ids["ok_candidate_ng"], "disagreement"],
                     [ids["uncertain_close"], "uncertain"], [ids["uncertain_far"], "uncertain"],
                     [ids["drift"], "drift"]]
    lines = browser.find_element(By.ID, "review-lines").text
    assert f"{LINE}: 5 of {CAP} sampled today (cap reached) · 5 pending" in lines
    _wait(browser, lambda d: d.find_element(By.ID, "review-count").text == "5", "nav count")
    assert "score 0.51 vs threshold 0.5" in browser.find_element(By.ID, "review-table").text
    _shot(browser, "21-review-queue")
    # open the most uncertain frame from the queue and confirm it
    browser.find_element(By.CSS_SELECTOR,
                         f"#review-table tr[data-id='{ids['uncertain_close']}']").click()
    _wait(browser, lambda d: d.find_element(By.ID, "detail-title").text.startswith(
        f"Inspection #{ids['uncertain_close']}"), "detail")
    browser.find_element(By.ID, "reviewer").send_keys("qa-bob")
    browser.find_element(By.ID, "apikey").send_keys(API_KEY)
    browser.find_element(By.ID, "rv-confirm").click()
    _wait(browser, lambda d: "Reviewed: confirm by qa-bob" in d.find_element(
        By.ID, "review-state").text, "review stored")
    assert browser.find_element(By.ID, "back-to-queue").is_displayed()  # opened from the queue
    browser.find_element(By.ID, "back-to-queue").click()
    _wait(browser, lambda d: d.execute_script(
        "return document.querySelectorAll('#review-table tbody tr[data-id]').length") == 4,
        "the reviewed frame never left the queue")
    body = _get(lc, "/api/v1/review-queue").json()
    assert ids["uncertain_close"] not in [i["inspection_id"] for i in body["items"]]
    assert body["pending"] == 4 and body["daily_cap"] == CAP
    assert body["lines"][0]["sampled_today"] == 5  # reviewed frames still count on the cap
    _shot(browser, "22-review-queue-after-review")


def test_reads_need_a_viewer_key_when_reads_are_protected(lc: Seeded) -> None:
    from fastapi.testclient import TestClient

    settings = lc.services.settings.model_copy(update={"auth_reads": True})
    app = create_app(settings, inspector_factory=fake_factory, preload_models=False,
                     retention_interval_s=None)
    paths = ["/api/v1/review-queue", "/api/v1/shadow/summary", "/api/v1/shadow/disagreements",
             f"/api/v1/shadow/{lc.shadow_ids[0]}/overlay.png"]
    with TestClient(app) as client:
        for path in paths:
            assert client.get(path).status_code == 401, path
            assert client.get(path, headers={"X-API-Key": API_KEY}).status_code == 200, path
