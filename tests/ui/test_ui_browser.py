"""The QA web UI in headless Chromium against the live service: the page loads with the line
status, filters narrow the table, the detail shows the overlay and navigates by keyboard, a
review round-trips to the database, the charts draw. Screenshots go to
ui_helpers.ARTIFACTS (outside the repository)."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from tests.ui.conftest import Live
from tests.ui.ui_helpers import API_KEY, ARTIFACTS

WAIT_S = 15


def _wait(driver: Any, cond: Any, what: str) -> Any:
    # the page re-renders the line status every 2 s: elements may go stale mid-check
    return WebDriverWait(
        driver, WAIT_S, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    ).until(cond, message=what)


def _card(driver: Any, line: str) -> dict[str, Any] | None:
    """Text, verdict, lamp class and last-NG link of a line card, read atomically."""
    return driver.execute_script(
        "const c = document.querySelector(`.line-card[data-line='${arguments[0]}']`);"
        "if (!c) return null; const a = c.querySelector('a');"
        "return {text: c.innerText, verdict: c.dataset.verdict,"
        " lamp: c.querySelector('.lamp').className, href: a ? a.href : null};", line)


def _open(driver: Any, live: Live, fragment: str = "#/") -> None:
    driver.get(f"{live.url}/{fragment}")
    _wait(driver, lambda d: d.execute_script("return document.body.dataset.ready === '1'"),
          "the UI script did not start")


def _row_ids(driver: Any) -> list[int]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#log-table tbody tr[data-id]')]"
        ".map(r => Number(r.dataset.id));")


def _wait_rows(driver: Any, expected: list[int]) -> None:
    _wait(driver, lambda d: _row_ids(d) == expected,
          f"table rows never became {expected[:5]}... ({len(expected)})")


def _api_ids(live: Live, **params: Any) -> list[int]:
    params = {k: v for k, v in params.items() if v is not None}
    resp = httpx.get(f"{live.url}/api/v1/inspections", params={"limit": 50, **params})
    assert resp.status_code == 200, resp.text
    return [i["inspection_id"] for i in resp.json()["items"]]


def _shot(driver: Any, name: str) -> None:
    path = ARTIFACTS / f"{name}.png"
    driver.execute_script("window.scrollTo(0, 0);")
    assert driver.save_screenshot(str(path)), path
    assert path.stat().st_size > 5000


@pytest.fixture()
def page(browser: Any, live: Live) -> Any:
    """The browser on a fresh UI page (session storage cleared)."""
    browser.get(f"{live.url}/healthz")
    browser.execute_script("sessionStorage.clear(); localStorage.clear();")
    _open(browser, live)
    return browser


def test_page_loads_with_line_status_and_log(page: Any, live: Live) -> None:
    a = _wait(page, lambda d: _card(d, live.line_a), "line A card missing")
    b = _wait(page, lambda d: _card(d, live.line_b), "line B card missing")
    # line A: newest seeded row of A (k=88) is OK; camera alive, 29.9 fps, the worker's own
    # 2.5 inspected/s (not the log's capture times), last NG linked
    assert a["verdict"] == "OK" and "lamp-OK" in a["lamp"]
    assert "camera connected" in a["text"] and "29.9 frames/s" in a["text"]
    assert "2.5 inspected/s" in a["text"] and "not inspected" not in a["text"]
    assert "verdict age" in a["text"]
    last_ng = max(live.seeded.where(line_id=live.line_a, verdict="NG"))
    assert a["href"].endswith(f"#/inspections/{last_ng}")
    # line B: camera disconnected -> the fail-safe UNKNOWN, lamp "camera down"
    assert b["verdict"] == "UNKNOWN" and "lamp-camera_down" in b["lamp"]
    assert "CAMERA DOWN" in b["text"] and "camera_disconnected" in b["text"]
    assert "inference not reporting" in b["text"]
    newest = sorted(live.seeded.ids, reverse=True)
    _wait_rows(page, _api_ids(live))
    assert len(_row_ids(page)) == 50
    page.find_element(By.ID, "page-older").click()
    _wait_rows(page, _api_ids(live, cursor=httpx.get(
        f"{live.url}/api/v1/inspections", params={"limit": 50}).json()["next_cursor"]))
    assert set(_row_ids(page)) <= set(newest[50:])
    assert page.find_element(By.ID, "page-older").get_attribute("disabled") is not None
    page.find_element(By.ID, "page-newer").click()
    _wait(page, lambda d: len(_row_ids(d)) == 50, "back to page 1")
    _shot(page, "01-log-and-line-status")


def test_filters_narrow_the_table(page: Any, live: Live) -> None:
    _wait(page, lambda d: len(_row_ids(d)) == 50, "initial rows")
    Select(page.find_element(By.ID, "f-verdict")).select_by_value("NG")
    ng = live.seeded.where(verdict="NG")
    _wait_rows(page, sorted(ng, reverse=True)[:50])
    assert len(_row_ids(page)) == 30
    badges = page.find_elements(By.CSS_SELECTOR, "#log-table tbody .badge")
    assert {b.text for b in badges} == {"NG"}
    _wait(page, lambda d: "pit" in [o.get_attribute("value") for o in
                                    d.find_elements(By.CSS_SELECTOR, "#f-class option")],
          "class choices")
    Select(page.find_element(By.ID, "f-class")).select_by_value("pit")
    pits = sorted(live.seeded.where(cls="pit"), reverse=True)
    _wait_rows(page, pits)
    Select(page.find_element(By.ID, "f-line")).select_by_value(live.line_a)
    pits_a = sorted(live.seeded.where(cls="pit", line_id=live.line_a), reverse=True)
    _wait_rows(page, pits_a)
    assert 0 < len(pits_a) < len(pits) < 30
    # time range: the 20 oldest minutes only (UTC datetime-local value)
    rows = sorted(live.seeded.rows, key=lambda r: r["captured_at"])
    cut = rows[20]["captured_at"].strftime("%Y-%m-%dT%H:%M:%S")
    page.find_element(By.ID, "f-reset").click()
    _wait(page, lambda d: len(_row_ids(d)) == 50, "reset")
    page.execute_script("document.getElementById('f-until').value = arguments[0];", cut)
    page.find_element(By.ID, "f-apply").click()
    expected = sorted((r["id"] for r in rows if r["captured_at"].replace(microsecond=0)
                       < rows[20]["captured_at"].replace(microsecond=0)), reverse=True)
    _wait_rows(page, expected)
    assert len(expected) == 20
    # the CSV link exports exactly the filtered log
    href = page.find_element(By.ID, "csv-link").get_attribute("href")
    assert "until=" in href
    lines = httpx.get(href).text.strip().splitlines()
    assert [int(x.split(",")[0]) for x in lines[1:]] == expected
    _shot(page, "02-filtered-log")


def _overlay_differs(live: Live, iid: int) -> bool:
    import cv2

    img = httpx.get(f"{live.url}/api/v1/inspections/{iid}/image.png").content
    ovl = httpx.get(f"{live.url}/api/v1/inspections/{iid}/overlay.png").content
    a = cv2.imdecode(np.frombuffer(img, np.uint8), cv2.IMREAD_COLOR)
    b = cv2.imdecode(np.frombuffer(ovl, np.uint8), cv2.IMREAD_COLOR)
    return a.shape == b.shape and bool((a != b).any())


def test_detail_shows_overlay_and_keyboard_walks_ng(page: Any, live: Live) -> None:
    ng = sorted(live.seeded.where(verdict="NG"), reverse=True)
    target = ng[3]
    _wait(page, lambda d: target in _row_ids(d), "NG row listed")
    page.find_element(By.CSS_SELECTOR, f"#log-table tr[data-id='{target}']").click()
    _wait(page, lambda d: d.find_element(By.ID, "detail-title").text.startswith(
        f"Inspection #{target}"), "detail view")
    img = page.find_element(By.ID, "detail-image")
    _wait(page, lambda d: d.execute_script(
        "const i = arguments[0]; return i.complete && i.naturalWidth === 128;", img),
        "overlay image loaded")
    assert img.get_attribute("src").endswith(f"/inspections/{target}/overlay.png")
    assert _overlay_differs(live, target)
    row = next(r for r in live.seeded.rows if r["id"] == target)
    defect_rows = page.find_elements(By.CSS_SELECTOR, "#defects-table tbody tr")
    assert len(defect_rows) == 1 and defect_rows[0].text.startswith(f"1 {row['classes'][0]}")
    # one record for the region; the other model's opinion is shown as evidence
    evidence = defect_rows[0].find_element(By.CSS_SELECTOR, "td.evidence").text
    assert evidence == f"alexnet_svm: defect → {row['classes'][0]} 0.61"
    # the box column does not wrap
    box = defect_rows[0].find_element(By.CSS_SELECTOR, "td.box")
    assert page.execute_script("return getComputedStyle(arguments[0]).whiteSpace", box) == "nowrap"
    models = page.find_element(By.ID, "models-list").text
    assert "fake 0.0.1" in models and "alexnet_svm 1.2.0" in models
    _shot(page, "03-detail-overlay")
    page.find_element(By.ID, "overlay-toggle").click()  # off: the plain frame
    _wait(page, lambda d: d.find_element(By.ID, "detail-image").get_attribute("src")
          .endswith(f"/inspections/{target}/image.png"), "overlay toggled off")
    body = page.find_element(By.TAG_NAME, "body")
    body.send_keys("o")
    _wait(page, lambda d: d.find_element(By.ID, "detail-image").get_attribute("src")
          .endswith("/overlay.png"), "'o' toggles the overlay back on")
    _wait(page, lambda d: d.execute_script("return document.body.dataset.neighboursOf")
          == str(target), "neighbours loaded")
    body.send_keys("j")  # next NG = the next older one
    _wait(page, lambda d: d.current_url.endswith(f"#/inspections/{ng[4]}"), "j -> older NG")
    _wait(page, lambda d: f"#{ng[4]}" in d.find_element(By.ID, "detail-title").text, "title")
    for here, there in ((ng[4], ng[3]), (ng[3], ng[2])):  # k, k: two newer NGs
        _wait(page, lambda d, i=here: d.execute_script(
            "return document.body.dataset.neighboursOf") == str(i), f"neighbours of {here}")
        page.find_element(By.TAG_NAME, "body").send_keys("k")
        _wait(page, lambda d, i=there: d.current_url.endswith(f"#/inspections/{i}"),
              f"k -> newer NG {there}")
    page.find_element(By.TAG_NAME, "body").send_keys("\ue00c")  # Escape
    _wait(page, lambda d: d.find_element(By.ID, "log-view").is_displayed(), "Esc -> log")


def _goto_detail(page: Any, live: Live, iid: int) -> None:
    page.get(f"{live.url}/#/inspections/{iid}")
    _wait(page, lambda d: d.find_element(By.ID, "detail-title").text.startswith(
        f"Inspection #{iid}"), f"detail of {iid}")


def test_review_round_trip(page: Any, live: Live) -> None:
    ng = sorted(live.seeded.where(verdict="NG", line_id=live.line_b), reverse=True)
    confirm_id, correct_id, reject_id = ng[5], ng[6], ng[7]
    repo = live.services.repository
    _goto_detail(page, live, confirm_id)
    page.find_element(By.ID, "rv-confirm").click()  # no key yet: refused in the page
    _wait(page, lambda d: "API key" in d.find_element(By.ID, "review-message").text, "hint")
    page.find_element(By.ID, "reviewer").send_keys("qa-alice")
    page.find_element(By.ID, "apikey").send_keys("wrong-key")
    page.find_element(By.ID, "rv-confirm").click()
    _wait(page, lambda d: "401" in d.find_element(By.ID, "review-message").text, "401 shown")
    assert repo.reviews(confirm_id) == []
    key = page.find_element(By.ID, "apikey")
    key.clear()
    key.send_keys(API_KEY)
    page.find_element(By.ID, "rv-confirm").click()
    _wait(page, lambda d: "Reviewed: confirm by qa-alice" in d.find_element(
        By.ID, "review-state").text, "confirm stored")
    [review] = repo.reviews(confirm_id)
    assert (review.reviewer, review.action, review.verdict) == ("qa-alice", "confirm", "NG")
    assert page.find_element(By.ID, "detail-reviewed").is_displayed()
    _shot(page, "04-review-confirmed")

    _goto_detail(page, live, correct_id)  # reviewer + key remembered in this browser
    assert page.find_element(By.ID, "reviewer").get_attribute("value") == "qa-alice"
    classes = page.find_element(By.ID, "rv-classes")
    classes.clear()
    classes.send_keys("inclusion")
    page.find_element(By.ID, "rv-comment").send_keys("looks like an inclusion")
    page.find_element(By.ID, "rv-correct").click()
    _wait(page, lambda d: "Reviewed: correct" in d.find_element(By.ID, "review-state").text,
          "correction stored")
    [review] = repo.reviews(correct_id)
    assert review.classes == ["inclusion"] and review.comment == "looks like an inclusion"

    _goto_detail(page, live, reject_id)
    page.find_element(By.ID, "rv-false-reject").click()
    _wait(page, lambda d: "false_reject" in d.find_element(By.ID, "review-state").text,
          "false reject stored")
    [review] = repo.reviews(reject_id)
    assert (review.action, review.verdict, review.classes) == ("false_reject", "OK", [])

    # reviewed inspections are marked in the log and filterable
    page.get(f"{live.url}/#/")
    _wait(page, lambda d: d.execute_script("return document.body.dataset.ready === '1'"), "ui")
    Select(page.find_element(By.ID, "f-reviewed")).select_by_value("true")
    reviewed = set(_api_ids(live, reviewed="true"))
    assert {confirm_id, correct_id, reject_id} <= reviewed
    _wait(page, lambda d: set(_row_ids(d)) == reviewed, "reviewed filter")
    marks = page.find_elements(By.CSS_SELECTOR, "#log-table tbody tr.reviewed .review-mark")
    assert len(marks) == len(reviewed) and any("qa-alice" in m.text for m in marks)
    _shot(page, "05-reviewed-filter")


def test_charts_draw_defects_and_ng_rate(page: Any, live: Live) -> None:
    page.find_element(By.ID, "nav-charts").click()
    _wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#chart-defects rect[data-class]"),
          "defect bars")
    drawn = page.execute_script(
        "const s = {}; for (const r of document.querySelectorAll("
        "'#chart-defects rect[data-class]')) s[r.dataset.class] = (s[r.dataset.class]||0)+1;"
        "return s;")
    assert set(drawn) == {"pit", "scratch", "inclusion"}
    # the legend's colour swatches are painted (the page's CSP refuses style attributes)
    swatches = page.execute_script(
        "return [...document.querySelectorAll('#chart-defects .legend i')]"
        ".map(i => getComputedStyle(i).backgroundColor);")
    assert len(swatches) == 3 and "rgba(0, 0, 0, 0)" not in swatches, swatches
    labels = page.find_elements(By.CSS_SELECTOR, "#chart-ngrate .ng-rate-label")
    texts = " ".join(t.text for t in labels)
    for line in (live.line_a, live.line_b):
        n = len([r for r in live.seeded.rows if r["line_id"] == line])
        k = len(live.seeded.where(line_id=line, verdict="NG"))
        assert f"{100 * k / n:.1f} % ({k}/{n})" in texts
    _shot(page, "06-charts")


def test_lamps_tell_stale_overloaded_and_camera_down(page: Any, live: Live) -> None:
    stale = _wait(page, lambda d: _card(d, live.line_stale), "stale line card")
    over = _wait(page, lambda d: _card(d, live.line_overloaded), "overloaded line card")
    down = _wait(page, lambda d: _card(d, live.line_b), "camera-down line card")
    assert "lamp-stale" in stale["lamp"] and "STALE" in stale["text"]
    assert "(stale)" in stale["text"]
    # overloaded: the PLC hears UNKNOWN/overloaded, the lamp is red and says why
    assert over["verdict"] == "UNKNOWN" and "lamp-overloaded" in over["lamp"]
    assert "OVERLOADED" in over["text"] and "(overloaded)" in over["text"]
    assert "42 not inspected (backlog)" in over["text"] and "backlog 7.3 s" in over["text"]
    assert "lamp-camera_down" in down["lamp"]
    colours = page.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('.line-card')].map(c =>"
        " [c.dataset.lamp, getComputedStyle(c.querySelector('.lamp')).backgroundColor]));")
    assert colours["overloaded"] == "rgb(208, 49, 45)"  # red, like NG
    assert len({colours[k] for k in ("OK", "stale", "overloaded", "camera_down")}) == 4
    # the log table never wraps ids, times or line names
    _wait(page, lambda d: len(_row_ids(d)) == 50, "rows")
    heights = page.execute_script(
        "return [...document.querySelectorAll('#log-table tbody tr')].map(r => r.offsetHeight);")
    assert max(heights) < 1.6 * min(heights), heights  # one line of text per row
    _shot(page, "00-line-lamps")


def test_api_docs_are_served_offline(browser: Any, live: Live) -> None:
    """/docs renders from the package's own assets and fetches nothing from elsewhere."""
    browser.get(f"{live.url}/docs")
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title"),
          "/docs did not render")
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"),
          "/docs lists no operation")
    assert "lineinspect" in browser.find_element(By.CSS_SELECTOR, ".info .title").text
    paths = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")]
    assert "/api/v1/lines/{line_id}/verdict" in paths
    origins = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => new URL(e.name).origin);")
    assert set(origins) <= {live.url}, origins
    assert httpx.get(f"{live.url}/redoc").status_code == 404
    _shot(browser, "07-api-docs")
