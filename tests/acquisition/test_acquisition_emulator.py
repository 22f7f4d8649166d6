"""Acquisition against the pylon camera emulator and the real Redis at 127.0.0.1:6379.

The emulator replays ``deploy/demo/frames`` (sorted, starting again at the first file on
every StartGrabbing), so each streamed frame can be compared byte for byte with its PNG.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from prometheus_client import REGISTRY

from acquisition.camera import CameraNotFoundError, close_camera, find_device, open_camera
from acquisition.worker import AcquisitionStats, AcquisitionWorker, run_acquisition
from core.bus import camera_status, last_frame_id_key, stream_key
from core.frame import Frame
from core.recipe import Recipe
from core.settings import Settings

pytestmark = pytest.mark.redis


def _metric(name: str, line: str) -> float:
    return REGISTRY.get_sample_value(name, {"line": line}) or 0.0


def _frames(r: Any, line: str) -> list[Frame]:
    return [Frame.from_fields(f) for _, f in r.xrange(stream_key(line))]


def _wait(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def _start(worker: AcquisitionWorker) -> threading.Thread:
    t = threading.Thread(target=worker.run, name="acq-test", daemon=True)
    t.start()
    return t


def test_frames_land_in_stream_with_camera_geometry_and_bytes(
    redis_client: Any, line_id: str, make_settings: Callable[..., Settings], recipe: Recipe,
    demo_frames: list[Path],
) -> None:
    n = len(demo_frames) + 3  # past the end of the file list: the emulator starts over
    before = _metric("lineinspect_frames_total", line_id)
    stats = run_acquisition(make_settings(), recipe, max_frames=n)

    assert stats.grabbed == n and stats.streamed == n
    assert stats.dropped == 0 and stats.incomplete == 0 and stats.reconnects == 0
    frames = _frames(redis_client, line_id)
    assert [f.frame_id for f in frames] == list(range(1, n + 1))
    assert stats.last_frame_id == n
    assert int(redis_client.get(last_frame_id_key(line_id))) == n
    for i, f in enumerate(frames):
        ref = cv2.imread(str(demo_frames[i % len(demo_frames)]), cv2.IMREAD_GRAYSCALE)
        assert (f.height, f.width) == ref.shape  # geometry as read from the camera
        assert f.pixel_format == "Mono8" and f.line_id == line_id
        assert np.array_equal(f.array(), ref), f"frame {f.frame_id} differs from its PNG"
        assert abs(f.host_ts - time.time()) < 60
    assert _metric("lineinspect_frames_total", line_id) - before == n
    bright = _metric("lineinspect_frame_brightness", line_id)
    assert 50 < bright < 200

    status = camera_status(redis_client, line_id)
    assert status is not None and not status.connected  # stopped: connected=0
    assert status.info["serial"] and status.info["width"] == frames[0].width
    assert _metric("lineinspect_camera_connected", line_id) == 0

    # A second run (a restarted worker) continues the line's frame ids.
    run_acquisition(make_settings(), recipe, max_frames=3)
    ids = [f.frame_id for f in _frames(redis_client, line_id)]
    assert ids[-3:] == [n + 1, n + 2, n + 3]


def test_maxlen_caps_stream_and_counts_unread_trimmed(
    redis_client: Any, line_id: str, make_settings: Callable[..., Settings], recipe: Recipe,
) -> None:
    capped = recipe.model_copy(update={"stream_maxlen": 5})
    dropped_before = _metric("lineinspect_frames_dropped_total", line_id)
    stats = run_acquisition(make_settings(), capped, max_frames=12)

    length = redis_client.xlen(stream_key(line_id))
    assert 5 <= length < 12
    ids = [f.frame_id for f in _frames(redis_client, line_id)]
    assert ids == list(range(13 - length, 13))  # the newest survive
    # No consumer group read anything: every trimmed entry is a lost frame.
    assert stats.trimmed_unread == 12 - length
    assert stats.dropped == 12 - length
    assert _metric("lineinspect_frames_dropped_total", line_id) - dropped_before == 12 - length


def test_trimmed_entries_that_were_read_are_not_drops(
    redis_client: Any, line_id: str, make_settings: Callable[..., Settings], recipe: Recipe,
) -> None:
    key = stream_key(line_id)
    redis_client.xgroup_create(key, "inference", id="0", mkstream=True)
    stop = threading.Event()
    read: list[int] = []

    def consume() -> None:
        while not stop.is_set():
            resp = redis_client.xreadgroup("inference", "c1", {key: ">"}, count=10, block=50)
            for _, entries in resp or []:
                for entry_id, fields in entries:
                    read.append(int(fields[b"frame_id"]))
                    redis_client.xack(key, "inference", entry_id)

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    try:
        stats = run_acquisition(
            make_settings(), recipe.model_copy(update={"stream_maxlen": 3}), max_frames=10
        )
    finally:
        stop.set()
        t.join(timeout=5)
    assert redis_client.xlen(key) <= 5
    assert stats.trimmed_unread == 0 and stats.dropped == 0
    assert read == list(range(1, 11))


def test_camera_selection_by_serial(
    make_settings: Callable[..., Settings], recipe: Recipe, emulated_serials: list[str],
    demo_frames: list[Path],
) -> None:
    serial = emulated_serials[-1]
    assert find_device(serial).GetSerialNumber() == serial
    cam, info = open_camera(make_settings(camera=serial), recipe)
    try:
        assert info["serial"] == serial and info["emulator"]
        h, w = cv2.imread(str(demo_frames[0]), cv2.IMREAD_GRAYSCALE).shape
        assert (info["width"], info["height"]) == (w, h)
        assert info["pixel_format"] == "Mono8"
        assert info["applied"]["MaxNumBuffer"] == recipe.camera.transport.grab_buffers
        assert info["applied"]["AcquisitionFrameRate"] == pytest.approx(30.0)
    finally:
        close_camera(cam)

    with pytest.raises(CameraNotFoundError) as exc:
        open_camera(make_settings(camera="no-such-serial"), recipe)
    msg = str(exc.value)
    assert "no-such-serial" in msg and serial in msg  # says what was asked and what exists


def test_unopenable_camera_reconnects_with_heartbeat_and_stops(
    redis_client: Any, line_id: str, make_settings: Callable[..., Settings], recipe: Recipe,
) -> None:
    stop = threading.Event()
    worker = AcquisitionWorker(make_settings(camera="no-such-serial"), recipe, stop)
    before = _metric("lineinspect_camera_reconnects_total", line_id)
    t = _start(worker)
    try:
        assert _wait(lambda: camera_status(redis_client, line_id) is not None, 5)
        hb1 = camera_status(redis_client, line_id).heartbeat
        # Attempts at 0, 0.5 and 1.5 s (back-off 0.5 s doubling): two re-opens.
        assert _wait(lambda: worker.stats.reconnects >= 2, 5)
        status = camera_status(redis_client, line_id)
        assert not status.connected
        assert status.heartbeat > hb1  # the heartbeat goes on while disconnected
        assert time.time() - status.heartbeat < 1.0
        assert _metric("lineinspect_camera_reconnects_total", line_id) - before >= 2
        assert _metric("lineinspect_camera_connected", line_id) == 0
        assert t.is_alive()
    finally:
        stop.set()
        t.join(timeout=5)
    assert not t.is_alive(), "worker did not stop on the stop event"
    assert worker.stats.grabbed == 0
    assert not camera_status(redis_client, line_id).connected


def test_device_removal_reconnects_and_keeps_ids_unique(
    redis_client: Any, line_id: str, make_settings: Callable[..., Settings], recipe: Recipe,
) -> None:
    stop = threading.Event()
    stats = AcquisitionStats()
    worker = AcquisitionWorker(make_settings(), recipe, stop, stats=stats)
    t = _start(worker)
    try:
        assert _wait(lambda: stats.grabbed >= 5)
        assert _wait(lambda: camera_status(redis_client, line_id).connected, 2)
        assert _metric("lineinspect_camera_connected", line_id) == 1
        # The emulator's FirePnPCallback reports the device as removed
        # (IsCameraDeviceRemoved() turns true), as unplugging a GigE camera does.
        cam = worker.camera
        assert cam is not None
        cam.GetNodeMap().GetNode("FirePnPCallback").Execute()
        assert _wait(lambda: stats.reconnects >= 1 and worker.camera is not None)
        n = stats.grabbed
        assert _wait(lambda: stats.grabbed >= n + 5)
    finally:
        stop.set()
        t.join(timeout=10)
    assert not t.is_alive()
    ids = [f.frame_id for f in _frames(redis_client, line_id)]
    assert ids == list(range(1, len(ids) + 1))  # unique, increasing, no bogus gap
    assert stats.dropped == 0 and stats.gaps == 0
    assert not camera_status(redis_client, line_id).connected


def test_incomplete_buffers_are_counted_and_never_streamed(
    redis_client: Any, line_id: str, make_settings: Callable[..., Settings], recipe: Recipe,
) -> None:
    stop = threading.Event()
    stats = AcquisitionStats()
    worker = AcquisitionWorker(make_settings(), recipe, stop, stats=stats)
    before = _metric("lineinspect_frames_incomplete_total", line_id)
    t = _start(worker)
    try:
        assert _wait(lambda: stats.grabbed >= 3)
        nm = worker.camera.GetNodeMap()
        nm.GetNode("ForceFailedBufferCount").SetValue(2)
        nm.GetNode("ForceFailedBuffer").Execute()
        assert _wait(lambda: stats.incomplete >= 2)
        n = stats.grabbed
        assert _wait(lambda: stats.grabbed >= n + 3)
    finally:
        stop.set()
        t.join(timeout=10)
    assert stats.incomplete == 2 and stats.dropped == 2 and stats.gaps == 0
    assert _metric("lineinspect_frames_incomplete_total", line_id) - before == 2
    ids = [f.frame_id for f in _frames(redis_client, line_id)]
    missing = sorted(set(range(1, ids[-1] + 1)) - set(ids))
    assert len(missing) == 2 and missing[1] == missing[0] + 1  # the two failed buffers
    assert len(ids) == stats.grabbed
