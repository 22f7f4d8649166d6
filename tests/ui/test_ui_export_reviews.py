"""``lineinspect export-reviews`` (a real subprocess on a real SQLite log and image store):
reviewed inspections become images + re-indexed masks + a manifest; unreviewed ones are left
out; reviewed ones without a retained image are listed as skipped."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from core.result import Defect, InspectionResult
from storage.db import make_engine, migrate
from storage.images import ImageStore
from storage.repository import InspectionRepository
from tests.ui.ui_helpers import CLASSES, frame_and_mask

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def _seed(repo: InspectionRepository, store: ImageStore, k: int, cls: str | None,
          retain: bool = True) -> tuple[int, np.ndarray, np.ndarray]:
    image, mask, bbox = frame_and_mask(k, CLASSES.index(cls) if cls else 0)
    if cls is None:
        mask[:] = 0
    defects = [Defect(cls=cls, score=0.9, bbox=bbox, area_px=600, model="m")] if cls else []
    res = InspectionResult(line_id="line-x", frame_id=k, captured_at=T0 + timedelta(seconds=k),
                           verdict="NG" if cls else "OK", defects=defects,
                           models={"m": "2.0.0"}, mask_classes=CLASSES, width=128, height=96)
    iid, _ = repo.save(res)
    if retain:
        paths = store.save("line-x", k, res.captured_at, image, mask)
        repo.set_image_paths(iid, *paths)
    return iid, image, mask


def test_export_reviews_writes_a_labelled_data_set(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'log.db'}"
    migrate(db_url)
    engine = make_engine(db_url)
    repo = InspectionRepository(engine)
    store = ImageStore(tmp_path / "images")
    confirmed, img_c, mask_c = _seed(repo, store, 1, "pit")
    corrected, _, mask_r = _seed(repo, store, 2, "scratch")
    rejected, _, _ = _seed(repo, store, 3, "inclusion")
    ok_confirmed, _, _ = _seed(repo, store, 4, None)
    unreviewed, _, _ = _seed(repo, store, 5, "pit")
    gone, _, _ = _seed(repo, store, 6, "pit", retain=False)
    repo.add_review(confirmed, "qa-alice", "confirm", "NG", ["pit"])
    repo.add_review(corrected, "qa-alice", "confirm", "NG", ["scratch"])
    repo.add_review(corrected, "qa-bob", "correct", "NG", ["crack"], "it is a crack")  # latest
    repo.add_review(rejected, "qa-bob", "false_reject", "OK", [])
    repo.add_review(ok_confirmed, "qa-bob", "confirm", "OK", [])
    repo.add_review(gone, "qa-bob", "confirm", "NG", ["pit"])
    engine.dispose()

    out = tmp_path / "dataset"
    env = {**os.environ, "LINEINSPECT_DATABASE_URL": db_url,
           "LINEINSPECT_IMAGE_STORE_DIR": str(tmp_path / "images"),
           "LINEINSPECT_DATA_DIR": str(tmp_path), "LINEINSPECT_LOG_LEVEL": "WARNING"}
    proc = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "export-reviews", "--out", str(out),
         "--line", "line-x"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    said = " ".join(proc.stdout.split())  # rich wraps lines
    assert "4 reviewed inspections" in said and "1 skipped" in said

    classes = json.loads((out / "classes.json").read_text())
    assert classes == ["background", "crack", "pit"]
    manifest = json.loads((out / "manifest.json").read_text())
    items = {i["inspection_id"]: i for i in manifest["items"]}
    assert set(items) == {confirmed, corrected, rejected, ok_confirmed}
    assert manifest["skipped"] == [{"inspection_id": gone, "reason": "image not retained"}]

    c = items[confirmed]
    assert (c["label_verdict"], c["label_classes"], c["reviewer"]) == ("NG", ["pit"], "qa-alice")
    exported = cv2.imread(str(out / c["image"]), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(exported, img_c)
    m = cv2.imread(str(out / c["mask"]), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(m > 0, mask_c > 0) and set(np.unique(m)) == {0, classes.index("pit")}

    r = items[corrected]  # scratch corrected to crack: pixels and box relabelled
    assert (r["action"], r["label_classes"], r["machine_classes"]) == (
        "correct", ["crack"], ["scratch"])
    assert r["boxes"][0]["class"] == "crack" and r["boxes"][0]["machine_class"] == "scratch"
    m = cv2.imread(str(out / r["mask"]), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(m > 0, mask_r > 0) and set(np.unique(m)) == {0, classes.index("crack")}

    f = items[rejected]  # false reject: OK, empty mask, no boxes
    assert (f["label_verdict"], f["label_classes"], f["boxes"]) == ("OK", [], [])
    assert not cv2.imread(str(out / f["mask"]), cv2.IMREAD_UNCHANGED).any()
    assert items[ok_confirmed]["label_verdict"] == "OK"

    with (out / "manifest.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {int(x["inspection_id"]) for x in rows} == set(items)
    assert next(x for x in rows if int(x["inspection_id"]) == corrected)["comment"] == (
        "it is a crack")
    assert unreviewed not in {int(x["inspection_id"]) for x in rows}


def test_export_reviews_rejects_a_bad_date(tmp_path: Path) -> None:
    env = {**os.environ, "LINEINSPECT_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    proc = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "export-reviews", "--out", str(tmp_path / "o"),
         "--since", "last tuesday"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2 and "bad --since/--until" in " ".join(proc.stdout.split())
    assert not (tmp_path / "o").exists()
