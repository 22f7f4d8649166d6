"""``lineinspect replay`` (issue 21): a candidate re-inspects the retained frames of the log.

Real parts: a migrated SQLite log, the image store on disk, the real Inspector with formula
segmenters (tests/onnx_factory.py) - the live one calls pixels darker than 110 defects, the
candidate those darker than 140 - and the CLI through typer's runner.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.recipe import ModelSpec, Recipe  # noqa: E402
from deploy.cli import app  # noqa: E402
from inference.pipeline import Inspector  # noqa: E402
from storage.db import make_engine, migrate  # noqa: E402
from storage.images import ImageStore  # noqa: E402
from storage.repository import InspectionRepository  # noqa: E402
from tests.onnx_factory import make_segmenter  # noqa: E402

LINE = "replay-line"
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def _image(patch: int | None) -> np.ndarray:
    img = np.full((96, 128), 200, np.uint8)
    if patch is not None:
        img[30:60, 40:90] = patch
    return img


@pytest.fixture()
def logged(tmp_path: Path) -> dict[str, object]:
    """Four logged frames: clean (OK), 120-gray patch (live OK, QA says NG), 20-gray patch
    (NG, QA confirms), and a 20-gray frame whose image was not retained."""
    url = f"sqlite:///{tmp_path / 'lineinspect.db'}"
    migrate(url)
    engine = make_engine(url)
    repo, store = InspectionRepository(engine), ImageStore(tmp_path / "images")
    live_seg = make_segmenter(tmp_path / "live.onnx", ("background", "dark"), (180.0, 40.0),
                              input_size=(32, 32))
    cand_seg = make_segmenter(tmp_path / "cand.onnx", ("background", "dark"), (180.0, 100.0),
                              input_size=(32, 32), version="2.0.0")
    live = Inspector(Recipe(name="live", models=[
        ModelSpec(name="seg", path=str(live_seg), tile=64, min_area=50)]))
    ids = {}
    for fid, patch, keep in ((1, None, True), (2, 120, True), (3, 20, True), (4, 20, False)):
        image = _image(patch)
        result = live.inspect(image, LINE, fid, T0 + timedelta(minutes=fid))
        iid, _ = repo.save(result)
        ids[fid] = iid
        if keep:
            img_path, mask_path = store.save(LINE, fid, result.captured_at, image, result.mask,
                                             inspection_id=iid)
            repo.set_image_paths(iid, img_path, mask_path)
    repo.add_review(ids[2], "qa", "correct", verdict="NG", classes=["dark"])
    repo.add_review(ids[3], "qa", "confirm")
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(f"name: candidate\nmodels:\n  - name: seg\n    path: {cand_seg}\n"
                         "    tile: 64\n    min_area: 50\n")
    yield {"url": url, "ids": ids, "candidate": candidate, "data": tmp_path}
    engine.dispose()


def _run(logged: dict[str, object], out: Path, *args: str) -> dict[str, object]:
    env = {"LINEINSPECT_DATABASE_URL": str(logged["url"]),
           "LINEINSPECT_DATA_DIR": str(logged["data"]), "LINEINSPECT_ORT_THREADS": "1"}
    res = CliRunner().invoke(app, ["replay", "--recipe", str(logged["candidate"]),
                                   "--out", str(out), *args], env=env)
    assert res.exit_code == 0, res.output
    assert (out / "report.html").is_file()
    return json.loads((out / "report.json").read_text())


def test_replay_by_line_and_time(logged: dict[str, object], tmp_path: Path) -> None:
    report = _run(logged, tmp_path / "r1", "--line", LINE, "--since", "2026-11-23T08:00:00",
                  "--until", "2026-11-23T09:00:00")
    ids = logged["ids"]
    assert report["replayed"] == 3
    assert [s["frame_id"] for s in report["skipped"]] == [4]  # image not retained
    assert report["confusion_vs_live"] == {"NG": {"NG": 1}, "OK": {"NG": 1, "OK": 1}}
    assert [(f["inspection_id"], f["live"], f["candidate"], f["qa"])
            for f in report["flipped"]] == [(ids[2], "OK", "NG", "NG")]
    assert report["classes"] == {"dark": {"live": 1, "candidate": 2, "gained": 1, "lost": 0}}
    assert report["candidate"]["models"] == {"seg": "2.0.0"}
    assert report["latency_ms"]["max"] >= report["latency_ms"]["p50"] > 0
    page = (tmp_path / "r1" / "report.html").read_text()
    assert "Frames that flip" in page and f"<td>{ids[2]}</td>" in page

    assert _run(logged, tmp_path / "r2", "--until", "2026-11-23T08:02:30")["replayed"] == 2


def test_replay_of_reviewed_frames_scores_live_and_candidate_against_qa(
    logged: dict[str, object], tmp_path: Path
) -> None:
    report = _run(logged, tmp_path / "r", "--reviewed")
    assert report["replayed"] == report["reviewed"] == 2 and report["skipped"] == []
    assert report["confusion_vs_qa"] == {"NG": {"NG": 2}}
    assert report["live_confusion_vs_qa"] == {"NG": {"NG": 1, "OK": 1}}
    assert report["candidate_agreement_with_qa"] == 1.0
    assert report["live_agreement_with_qa"] == 0.5
