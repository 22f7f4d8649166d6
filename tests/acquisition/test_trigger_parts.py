"""Trigger mode = parts (issue 18.2), end to end on the real parts: the pylon camera emulator
in software-trigger mode (``TriggerSoftware`` is the edge; a line input differs only in the
source), the real Redis, the real inference worker with a formula model, the inspection log
on SQLite, the REST API and a real pymodbus client.

Eight triggers are eight parts. The emulator fails the buffer of the third one
(``ForceFailedBuffer``: an incomplete grab that keeps its BlockID) and the buffer of the sixth
is lost on the host (the worker's ``_handle`` releases it unread - what a real GigE camera's
missing free buffer looks like: a BlockID gap). Every part gets exactly one result, in part
order, keyed by its part id; the two missed ones are ``UNKNOWN`` with their reason in the
result sequence, the log, REST and the Modbus result buffer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from pymodbus.client import ModbusTcpClient
from pypylon import pylon

from acquisition.camera import close_camera, open_camera
from acquisition.worker import AcquisitionWorker
from api.app import create_app
from core.frame import Frame, missed_part
from core.recipe import Recipe
from core.results import read_line
from core.settings import Settings
from inference.pipeline import Inspector
from inference.worker import run_inference
from plc.modbus import ENTRY, REGISTERS, SIZE, serve
from storage.db import make_engine, migrate
from storage.repository import InspectionRepository
from tests.api.api_helpers import RECIPE_YAML, fake_factory
from tests.onnx_factory import make_segmenter
from tests.plc_interfaces.plc_helpers import REDIS_URL, LoopThread, free_port, wait_listening

pytestmark = pytest.mark.redis

PARTS = 8
FAILED = 3  # the emulator fails this trigger's buffer: grab_failed
LOST = 6  # this trigger's buffer never reaches the worker: a BlockID gap, part_missed


def _wait(cond: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class HostLosesABuffer(AcquisitionWorker):
    """The real worker, except that it releases one buffer unread when told to (test hook:
    a frame lost on the way to the host)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.buffers = 0
        self.lose_next = False

    def _handle(self, res: pylon.GrabResult, now: float) -> bool:
        self.buffers += 1
        if self.lose_next:
            self.lose_next = False
            return False
        return super()._handle(res, now)


@pytest.fixture()
def parts_recipe(tmp_path_factory: pytest.TempPathFactory) -> Recipe:
    """Software trigger, 128 x 96 Mono8 test pattern, one formula segmenter."""
    models = tmp_path_factory.mktemp("parts-models")
    make_segmenter(models / "seg.onnx", ("background", "dark_spot"), (180.0, 40.0),
                   input_size=(64, 64))
    return Recipe.model_validate({
        "name": "parts", "stream_maxlen": 100,
        "camera": {"trigger_mode": "software", "width": 128, "height": 96},
        "models": [{"name": "seg", "path": str(models / "seg.onnx"), "tile": 64}],
    })


def _acquire(settings: Settings, recipe: Recipe, r: redis.Redis) -> HostLosesABuffer:
    """Fire :data:`PARTS` software triggers, one at a time, with the two faults."""
    stop = threading.Event()
    worker = HostLosesABuffer(settings, recipe, stop, redis_client=r)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        _wait(lambda: worker.camera is not None and worker.stats.connected, "the camera")
        cam = worker.camera
        assert cam is not None
        for k in range(1, PARTS + 1):
            if k == FAILED:
                cam.ForceFailedBufferCount.SetValue(1)
                cam.ForceFailedBuffer.Execute()
            worker.lose_next = k == LOST
            assert cam.WaitForFrameTriggerReady(5000, pylon.TimeoutHandling_Return)
            cam.ExecuteSoftwareTrigger()
            _wait(lambda k=k: worker.buffers >= k, f"buffer of trigger {k}")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    return worker


def _modbus_read(port: int) -> dict[str, Any]:
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=5)
    assert client.connect()
    try:
        rr = client.read_holding_registers(0, count=SIZE, device_id=1)
        assert not rr.isError(), rr
    finally:
        client.close()
    regs = rr.registers
    start = REGISTERS["BUFFER"][0]
    part = REGISTERS["VERDICT_PART_ID"][0]
    return {
        "VERDICT_PART_ID": regs[part] << 16 | regs[part + 1],
        "BUFFER": [
            {"result_id": regs[i] << 16 | regs[i + 1], "code": regs[i + 2],
             "part_id": regs[i + 3] << 16 | regs[i + 4]}
            for i in range(start, start + ENTRY * regs[REGISTERS["BUFFER_COUNT"][0]], ENTRY)
        ],
    }


@pytest.fixture()
def modbus_port(line_id: str) -> Iterator[int]:
    """A read-only Modbus server for the line (its buffer: the 8 newest results)."""
    port = free_port()
    settings = Settings(redis_url=REDIS_URL, plc_lines=line_id, modbus_port=port)
    server = LoopThread(lambda stop: serve(settings, stop))
    wait_listening(port)
    yield port
    server.close()


def test_every_trigger_is_one_part_and_a_missed_grab_is_an_unknown_result(
    make_settings: Callable[..., Settings], parts_recipe: Recipe, redis_client: redis.Redis,
    line_id: str, tmp_path: Path, modbus_port: int,
) -> None:
    r = redis_client
    db_url = f"sqlite:///{tmp_path / 'log.db'}"
    settings = make_settings(emulator_frames_dir=Path(""), database_url=db_url)
    worker = _acquire(settings, parts_recipe, r)
    # the camera counted every part; two have no image: streamed as missed parts
    assert worker.stats.grabbed == PARTS - 2 and worker.stats.missed_parts == 2
    assert worker.stats.incomplete == 1 and worker.stats.gaps == 1

    migrate(db_url)
    engine = make_engine(db_url)
    repo = InspectionRepository(engine)
    stop = threading.Event()
    timer = threading.Timer(120.0, stop.set)  # safety net: never hang the suite
    timer.start()
    try:
        stats = run_inference(
            Settings(line_id=line_id, redis_url=REDIS_URL, worker_name="parts"), parts_recipe,
            repo, stop=stop, max_frames=PARTS, inspector=Inspector(parts_recipe, Settings()),
            redis_client=r, block_ms=100,
        )
    finally:
        timer.cancel()
    assert stats.processed == PARTS and stats.dropped == 0

    # the result sequence: one result per part, in part order, keyed by the part id
    _, page = read_line(r, line_id, after=0)
    results = page.results
    assert [x["result_id"] for x in results] == list(range(1, PARTS + 1))
    first = results[0]["part_id"]
    assert [x["part_id"] for x in results] == list(range(first, first + PARTS))
    assert all(x["frame_id"] == x["part_id"] for x in results)
    missed = {FAILED: "grab_failed", LOST: "part_missed"}
    for k, x in enumerate(results, start=1):
        if k in missed:
            assert (x["verdict"], x["code"], x["unknown_reason"]) == ("UNKNOWN", 2, missed[k])
        else:
            assert x["verdict"] in ("OK", "NG") and x["unknown_reason"] is None
    assert page.unknown == 2

    # the inspection log keeps the part id and the reason
    failed_part, lost_part = first + FAILED - 1, first + LOST - 1
    for x in results:
        stored = repo.get(x["inspection_id"])
        assert stored is not None
        assert (stored.part_id, stored.verdict, stored.unknown_reason) == (
            x["part_id"], x["verdict"], x["unknown_reason"])
    engine.dispose()

    # REST: the results after a cursor carry part id and reason; the log entry too
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "test-recipe.yaml").write_text(RECIPE_YAML)
    api_settings = make_settings(database_url=db_url, data_dir=tmp_path, recipes_dir=recipes,
                                 recipe="test-recipe", image_store_dir=tmp_path / "images")
    app = create_app(api_settings, inspector_factory=fake_factory, retention_interval_s=None)
    with TestClient(app) as client:
        body = client.get(f"/api/v1/lines/{line_id}/results", params={"after": 0}).json()
        got = [(x["part_id"], x["verdict"], x["unknown_reason"]) for x in body["results"]]
        assert got[FAILED - 1] == (failed_part, "UNKNOWN", "grab_failed")
        assert got[LOST - 1] == (lost_part, "UNKNOWN", "part_missed")
        assert body["counts"]["UNKNOWN"] == 2 and body["worst"]["code"] >= 1
        verdict = client.get(f"/api/v1/lines/{line_id}/verdict").json()
        assert (verdict["part_id"], verdict["unknown_reason"]) == (first + PARTS - 1, None)
        lost_id = body["results"][LOST - 1]["inspection_id"]
        inspection = client.get(f"/api/v1/inspections/{lost_id}").json()
        assert (inspection["part_id"], inspection["unknown_reason"]) == (lost_part,
                                                                         "part_missed")

    # Modbus: the result buffer (8 newest) shows code 2 at exactly the two missed parts
    regs = _modbus_read(modbus_port)
    assert regs["VERDICT_PART_ID"] == first + PARTS - 1
    assert [e["part_id"] for e in regs["BUFFER"]] == list(range(first, first + PARTS))
    assert [e["part_id"] for e in regs["BUFFER"] if e["code"] == 2] == [failed_part, lost_part]


def test_a_missed_part_travels_as_a_frame_without_pixels() -> None:
    part = missed_part("l1", 42, "grab_failed", 1.5, camera_ts=7)
    back = Frame.from_fields({k.encode(): str(v).encode() if not isinstance(v, bytes) else v
                              for k, v in part.to_fields().items()})
    assert back == part and back.array().shape == (0, 0)
    assert (back.part_id, back.frame_id, back.missed) == (42, 42, "grab_failed")
    # a free-run frame carries neither field (the stream message is unchanged for it)
    free = Frame("l1", 3, 0, 1.0, 1, 1, "Mono8", b"\0")
    assert "part_id" not in free.to_fields() and "missed" not in free.to_fields()


@pytest.mark.parametrize(("mode", "source"), [("software", "Software"), ("hardware", "Line2")])
def test_trigger_modes_arm_frame_start_on_the_emulator(
    make_settings: Callable[..., Settings], mode: str, source: str
) -> None:
    recipe = Recipe.model_validate({"name": "t", "camera": {
        "trigger_mode": mode, "trigger_source": "Line2", "width": 64, "height": 64}})
    cam, info = open_camera(make_settings(emulator_frames_dir=Path("")), recipe)
    try:
        applied = info["applied"]
        assert applied["FrameStart.TriggerMode"] == "On"
        assert applied["FrameStart.TriggerSource"] == source
        assert applied["FrameBurstStart.TriggerMode"] == "Off"
        assert applied["AcquisitionFrameRateEnable"] is False
    finally:
        close_camera(cam)
