"""Helpers of the QA UI tests: seeding the log and the image store, a live uvicorn server,
and headless Chromium through selenium + the Debian ``chromedriver``."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn

from core.result import Defect, InspectionResult

CHROMIUM = os.environ.get("LINEINSPECT_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("LINEINSPECT_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
#: Screenshots and overlays to be looked at: outside the repository (issue 17.10: the suite
#: writes nothing into it), $LINEINSPECT_TEST_ARTIFACTS or <tmp>/lineinspect-test-artifacts.
ARTIFACTS = Path(os.environ.get("LINEINSPECT_TEST_ARTIFACTS")
                 or Path(tempfile.gettempdir()) / "lineinspect-test-artifacts") / "ui"
API_KEY = "ui-test-key-42"
CLASSES = ["background", "inclusion", "pit", "scratch"]
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1400,1100",
]


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def frame_and_mask(k: int, cls_index: int) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """A small gray frame with one dark defect rectangle, its class mask and bbox."""
    rng = np.random.default_rng(k)
    image = (150 + rng.integers(0, 30, size=(96, 128))).astype(np.uint8)
    x, y = 10 + (k * 7) % 80, 10 + (k * 5) % 50
    image[y : y + 20, x : x + 30] = 40
    mask = np.zeros_like(image)
    mask[y : y + 20, x : x + 30] = cls_index
    return image, mask, (x, y, 30, 20)


@dataclass
class Seeded:
    """What :func:`seed_log` wrote: ids by position, and the expected facts."""

    ids: list[int] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def where(self, **conds: Any) -> list[int]:
        """Ids of the seeded rows whose fields equal ``conds`` (``cls``: has that class)."""
        out = []
        for row in self.rows:
            ok = all(
                (cond in row["classes"]) if key == "cls" else row[key] == cond
                for key, cond in conds.items()
            )
            if ok:
                out.append(row["id"])
        return out


def seed_log(services: Any, lines: list[str], n: int, now: datetime) -> Seeded:
    """``n`` inspections over the last ``n`` minutes, alternating lines; every third is NG
    with one defect (class cycling through pit/scratch/inclusion) and a retained frame+mask."""
    seeded = Seeded()
    for k in range(n):
        line = lines[k % len(lines)]
        ng = k % 3 == 0
        cls = ("pit", "scratch", "inclusion")[(k // 3) % 3] if ng else None
        captured = now - timedelta(minutes=n - k, seconds=7)
        defects = []
        image = mask = None
        if ng:
            image, mask, bbox = frame_and_mask(k, CLASSES.index(cls))
            score = 0.5 + (k % 50) / 100
            evidence = [  # one region, two models' opinions (inference.merge)
                {"model": "fake", "class": cls, "mapped": cls, "score": score,
                 "bbox": list(bbox)},
                {"model": "alexnet_svm", "class": "defect", "mapped": cls, "score": 0.61,
                 "bbox": list(bbox)},
            ]
            defects = [Defect(cls=cls, score=score, bbox=bbox, area_px=600, model="fake",
                              evidence=evidence)]
        result = InspectionResult(
            line_id=line, frame_id=1000 + k, captured_at=captured, verdict="NG" if ng else "OK",
            defects=defects, models={"fake": "0.0.1", "alexnet_svm": "1.2.0"}, latency_ms=12.5,
            recipe="ui-recipe", width=128, height=96, brightness=150.0, mask_classes=CLASSES,
        )
        iid, _ = services.repository.save(result)
        if ng:
            image_path, mask_path = services.images.save(line, 1000 + k, captured, image, mask)
            services.repository.set_image_paths(iid, image_path, mask_path)
        seeded.ids.append(iid)
        seeded.rows.append({"id": iid, "line_id": line, "verdict": "NG" if ng else "OK",
                            "classes": [cls] if cls else [], "captured_at": captured})
    return seeded


class LiveServer:
    """uvicorn serving ``app`` on a free loopback port in a daemon thread."""

    def __init__(self, app: Any) -> None:
        """Prepare the server (not started)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="ui-uvicorn", daemon=True)

    def start(self, timeout: float = 30.0) -> None:
        """Start serving; raise when it does not come up within ``timeout`` seconds."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout=15)


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here (None: Chromium and its driver are present)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).exists() or shutil.which(path)):
            return f"{path} missing: run `make test` (installs Debian chromium chromium-driver)"
    return None


def start_chromium(profile_dir: Path) -> Any:
    """Headless Chromium with a fresh profile, driven by the Debian chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    service = Service(executable_path=CHROMEDRIVER, log_output=str(profile_dir / "driver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


def utc_now() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)
