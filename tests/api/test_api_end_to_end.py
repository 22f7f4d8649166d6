"""Stream -> real inference worker (formula ONNX model) -> storage's repository and image store
(the worker's default storage) -> API: PLC verdict, defect log, mask."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from core.bus import set_camera_status, stream_key
from core.frame import Frame
from core.recipe import Recipe
from deploy.wiring import run_inference_worker
from tests.onnx_factory import make_segmenter

FH, FW = 96, 128


def test_worker_to_api(make_settings, tmp_path: Path, redis_client: redis.Redis,
                       line_id: str) -> None:
    seg = make_segmenter(tmp_path / "seg.onnx", input_size=(64, 64))
    recipe = Recipe.model_validate({
        "name": "test-recipe", "stale_after_ms": 5000,
        "models": [{"name": "seg", "path": str(seg), "tile": 64, "min_area": 20}],
    })
    settings = make_settings(worker_name="w-e2e")
    app = create_app(settings, retention_interval_s=None, preload_models=False)  # migrates
    r = redis_client
    for fid in (1, 2, 3, 3):  # frame 3 delivered twice: logged once
        img = np.full((FH, FW), 200, np.uint8)
        if fid % 2:
            img[40:60, 50:80] = 10
        f = Frame(line_id, fid, fid * 1000, time.time(), FW, FH, "Mono8", img.tobytes())
        r.xadd(stream_key(line_id), f.to_fields())
    set_camera_status(r, line_id, True)
    stop = threading.Event()
    timer = threading.Timer(30.0, stop.set)
    timer.start()
    try:
        stats = run_inference_worker(settings, recipe, stop, max_frames=4, block_ms=100,
                                     redis_client=r)
    finally:
        timer.cancel()
    assert (stats.processed, stats.duplicates) == (3, 1)
    with TestClient(app) as c:
        v = c.get(f"/api/v1/lines/{line_id}/verdict").json()
        assert (v["verdict"], v["code"], v["frame_id"]) == ("NG", 1, 3)
        log = c.get("/api/v1/inspections", params={"line_id": line_id}).json()["items"]
        assert [i["frame_id"] for i in log] == [3, 2, 1]
        assert [i["verdict"] for i in log] == ["NG", "OK", "NG"]
        assert v["inspection_id"] == log[0]["inspection_id"]
        assert log[0]["defects"][0]["bbox"] == [50, 40, 30, 20]
        assert log[0]["has_mask"] and not log[1]["has_image"]  # OK frames are not retained
        mask = c.get(f"/api/v1/inspections/{log[0]['inspection_id']}/mask.png")
        m = cv2.imdecode(np.frombuffer(mask.content, np.uint8), cv2.IMREAD_UNCHANGED)
        assert m.shape == (FH, FW) and m[40:60, 50:80].all()
        assert c.get(f"/api/v1/inspections/{log[1]['inspection_id']}/mask.png").status_code == 404
