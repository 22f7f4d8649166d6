"""Issue 17.2 (and 17.7): the inference loop survives a Redis that refuses commands, says
so while it backs off, and inspects the backlog once Redis accepts writes again; an image
store that cannot write is counted, never silent.

Real parts: a private embedded ``redis-server`` (its configuration is changed here, so not
the shared one), a migrated SQLite inspection log, the real image store, formula ONNX models.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from prometheus_client import REGISTRY

from core import heartbeats
from core.bus import stream_key
from core.embedded_redis import LOOP_NAME, EmbeddedRedis
from core.frame import Frame
from core.recipe import Recipe
from core.settings import Settings
from core.supervise import LOOPS
from inference.pipeline import Inspector
from inference.worker import InferenceStats, run_inference
from storage.db import make_engine, migrate
from storage.images import ImageStore
from storage.repository import InspectionRepository

FW, FH = 256, 192
LINE = "line-sup"


def _until(cond: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


@pytest.fixture()
def private_redis(tmp_path: Path) -> Iterator[redis.Redis]:
    srv = EmbeddedRedis(tmp_path / "r")
    url = srv.start()
    client = redis.Redis.from_url(url)
    yield client
    client.close()
    srv.stop()
    LOOPS.forget(LOOP_NAME)
    LOOPS.forget(f"inference:{LINE}")


@pytest.fixture()
def repo(tmp_path: Path) -> Iterator[InspectionRepository]:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    migrate(url)
    engine = make_engine(url)
    yield InspectionRepository(engine)
    engine.dispose()


@pytest.fixture()
def inspector(model_dir: Path) -> Inspector:
    rec = Recipe.model_validate({"name": "t", "models": [
        {"name": "seg", "path": str(model_dir / "seg.onnx"), "tile": 64, "min_area": 20}]})
    return Inspector(rec, Settings())


def _push(r: redis.Redis, n: int) -> None:
    for fid in range(1, n + 1):
        img = np.full((FH, FW), 200, np.uint8)
        img[40:60, 100:130] = 10  # NG: a dark square
        r.xadd(stream_key(LINE), Frame(LINE, fid, fid, time.time(), FW, FH, "Mono8",
                                       img.tobytes()).to_fields())


def _start(r: redis.Redis, inspector: Inspector, repo: InspectionRepository,
           store: ImageStore | None, n: int) -> tuple[threading.Thread, list[InferenceStats],
                                                      threading.Event]:
    stop, out = threading.Event(), []
    settings = Settings(line_id=LINE, redis_url="redis://unused", worker_name="w1")

    def target() -> None:
        out.append(run_inference(settings, Recipe(name="t"), repo, store, stop=stop,
                                 max_frames=n, inspector=inspector, redis_client=r,
                                 block_ms=100))

    t = threading.Thread(target=target)
    t.start()
    return t, out, stop


def test_redis_refusing_writes_does_not_end_the_loop(
    private_redis: redis.Redis, inspector: Inspector, repo: InspectionRepository,
    tmp_path: Path,
) -> None:
    r = private_redis
    _push(r, 3)
    r.config_set("min-replicas-to-write", 1)  # every write answers NOREPLICAS, as MISCONF
    t, out, stop = _start(r, inspector, repo, ImageStore(tmp_path / "img"), 3)
    try:
        name = f"inference:{LINE}"
        assert _until(lambda: "NOREPLICAS" in str(LOOPS.snapshot().get(name, {}).get("trouble")))
        state = LOOPS.snapshot()[name]
        assert t.is_alive() and not state["ready"] and state["running"]
        assert repo.count() == 0
        r.config_set("min-replicas-to-write", 0)  # the disk was freed
        t.join(60)
        assert not t.is_alive()
    finally:
        stop.set()
        t.join(10)
    assert out and out[0].processed == 3 and out[0].errors >= 1
    assert repo.count() == 3
    assert LOOPS.snapshot()[name]["stopped"]
    assert heartbeats.workers(r, LINE) == {}  # a worker stopping on purpose signs off


def test_image_store_failure_is_counted(
    private_redis: redis.Redis, inspector: Inspector, repo: InspectionRepository,
    tmp_path: Path,
) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the store's directory should be")  # writes fail
    before = REGISTRY.get_sample_value("lineinspect_images_not_retained_total",
                                       {"line": LINE}) or 0.0
    _push(private_redis, 2)
    t, out, stop = _start(private_redis, inspector, repo, ImageStore(blocked / "img"), 2)
    t.join(60)
    stop.set()
    assert out and out[0].processed == 2 and repo.count() == 2  # logged, without images
    after = REGISTRY.get_sample_value("lineinspect_images_not_retained_total", {"line": LINE})
    assert after == before + 2


def test_stream_holds_only_unfinished_frames_and_lag_counts_them(
    private_redis: redis.Redis, inspector: Inspector, repo: InspectionRepository,
) -> None:
    """Issue 17.4 and 17.7: acknowledged frames leave the stream; the lag is right on the
    embedded Redis 6.2, whose XINFO GROUPS has no ``lag`` field."""
    from core.bus import GROUP, ensure_group, stream_lag

    r = private_redis
    ensure_group(r, LINE)
    assert "lag" not in r.xinfo_groups(stream_key(LINE))[0]  # Redis 6.2
    _push(r, 5)
    assert stream_lag(r, LINE) == 5
    r.xreadgroup(GROUP, "other", {stream_key(LINE): ">"}, count=2)  # delivered, not acked
    assert stream_lag(r, LINE) == 3
    t, out, stop = _start(r, inspector, repo, None, 3)
    t.join(60)
    stop.set()
    assert out and out[0].processed == 3
    assert r.xlen(stream_key(LINE)) == 2  # only the 2 pending at "other" are left
    assert stream_lag(r, LINE) == 0 and repo.count() == 3
