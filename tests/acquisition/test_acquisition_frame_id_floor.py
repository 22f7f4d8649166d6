"""Issue 17.1: a (line, frame id) already in the inspection log is never issued again, even
when Redis lost its data or came back from an older snapshot.

Real parts: the pylon emulator, the Redis at 127.0.0.1, a migrated SQLite inspection log and
the composition root's wiring (``deploy.wiring.run_acquisition_worker``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.bus import last_frame_id_key, stream_key
from core.frame import Frame
from core.recipe import Recipe
from core.result import InspectionResult
from core.settings import Settings
from deploy.wiring import run_acquisition_worker
from storage.db import make_engine, migrate
from storage.repository import InspectionRepository


def _stream_ids(r: Any, line: str) -> list[int]:
    return [Frame.from_fields(f).frame_id for _, f in r.xrange(stream_key(line))]


def test_ids_continue_after_the_log_when_redis_rolled_back(
    redis_client: Any, line_id: str, make_settings: Callable[..., Settings], recipe: Recipe,
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    migrate(url)
    settings = make_settings(database_url=url)
    run_acquisition_worker(settings, recipe, max_frames=3)
    assert _stream_ids(redis_client, line_id) == [1, 2, 3]
    # The log holds 1..41 (the inference worker got that far) ...
    engine = make_engine(url)
    try:
        repo = InspectionRepository(engine)
        for n in range(1, 42):
            repo.save(InspectionResult(line_id=line_id, frame_id=n, verdict="OK",
                                       captured_at=datetime.now(UTC)))
    finally:
        engine.dispose()
    # ... then Redis comes back from a snapshot taken at frame 26: the stream is older and
    # frameid:{line} says 26 (what the issue observed).
    redis_client.delete(stream_key(line_id))
    redis_client.set(last_frame_id_key(line_id), 26)
    stats = run_acquisition_worker(settings, recipe, max_frames=4)
    ids = _stream_ids(redis_client, line_id)
    assert ids == [42, 43, 44, 45]  # above everything logged, none reused
    assert stats.last_frame_id == 45 and stats.dropped == 0


def test_unreachable_log_delays_the_start_instead_of_guessing(
    redis_client: Any, line_id: str, make_settings: Callable[..., Settings], recipe: Recipe,
) -> None:
    """A log that cannot answer (here: not migrated) means no safe id yet: the worker
    retries and streams nothing rather than continuing from Redis alone."""
    import threading

    from acquisition.worker import run_acquisition

    calls: list[int] = []
    stop = threading.Event()

    def floor() -> int | None:
        calls.append(1)
        if len(calls) >= 3:
            stop.set()
        raise RuntimeError("no such table: inspections")

    stats = run_acquisition(make_settings(), recipe, stop, max_frames=2, frame_id_floor=floor)
    assert len(calls) >= 3 and stats.grabbed == 0
    assert _stream_ids(redis_client, line_id) == []
