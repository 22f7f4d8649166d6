"""ImageStore: PNG layout, atomic writes, round trips, retention by age and by bytes."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from storage.db import make_engine, migrate
from storage.images import ImageStore, apply_retention, line_dir_name
from storage.repository import InspectionRepository

T0 = datetime(2026, 11, 23, 23, 59, 59, tzinfo=UTC)


def _frame(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def _age(store: ImageStore, rel: str, seconds_ago: float) -> None:
    t = time.time() - seconds_ago
    os.utime(store.path(rel), (t, t))


def test_save_layout_and_roundtrip(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "img")
    gray = _frame()
    mask = np.zeros(gray.shape, np.uint8)
    mask[5:9, 10:20] = 3
    image_path, mask_path = store.save("line-1", 42, T0, gray, mask)
    assert image_path == "line-1/20261123/000000000042.png"
    assert mask_path == "line-1/20261123/000000000042.mask.png"
    assert (tmp_path / "img" / image_path).read_bytes().startswith(b"\x89PNG")
    assert np.array_equal(store.load_image(image_path), gray)
    loaded = store.load_mask(mask_path)
    assert loaded.dtype == np.uint8 and np.array_equal(loaded, mask)
    assert not [p for p in (tmp_path / "img").rglob("*") if p.name.startswith(".tmp-")]
    rgb = np.dstack([gray, 255 - gray, gray // 2])
    rgb_path, no_mask = store.save("line-1", 43, T0, rgb, None)
    assert no_mask is None and np.array_equal(store.load_image(rgb_path), rgb)
    # a file is never replaced: without an inspection id a second save of the name fails
    with pytest.raises(FileExistsError):
        store.save("line-1", 42, T0, 255 - gray, mask)
    assert np.array_equal(store.load_image(image_path), gray)
    assert store.load_image("line-1/20261123/missing.png") is None
    assert store.read_bytes(None) is None and not store.exists(None)


def test_two_inspections_of_one_frame_id_never_share_a_file(tmp_path: Path) -> None:
    """Issue 17.1: a frame id logged again (Redis rolled back) must not overwrite evidence."""
    store = ImageStore(tmp_path / "img")
    old, new = _frame(seed=1), _frame(seed=2)
    mask = np.zeros(old.shape, np.uint8)
    old_paths = store.save("line-1", 27, T0, old, mask, inspection_id=27)
    new_paths = store.save("line-1", 27, T0, new, mask, inspection_id=58)
    assert old_paths == ("line-1/20261123/000000000027-27.png",
                         "line-1/20261123/000000000027-27.mask.png")
    assert new_paths[0] != old_paths[0] and new_paths[1] != old_paths[1]
    assert np.array_equal(store.load_image(old_paths[0]), old)
    assert np.array_equal(store.load_image(new_paths[0]), new)
    # the same inspection saved again (re-delivery) keeps the files written first
    assert store.save("line-1", 27, T0, new, mask, inspection_id=27) == old_paths
    assert np.array_equal(store.load_image(old_paths[0]), old)
    assert not [p for p in (tmp_path / "img").rglob("*") if p.name.startswith(".tmp-")]


def test_invalid_input_and_paths(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    with pytest.raises(ValueError):
        store.save("l", 1, T0, np.zeros((4, 4), np.uint16))
    with pytest.raises(ValueError):
        store.save("l", 1, T0, _frame(), np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError):
        store.path("../outside.png")
    assert store.read_bytes("../../etc/passwd") is None
    assert not list(tmp_path.rglob("*.png"))


def test_line_dir_names_are_safe_and_distinct() -> None:
    assert line_dir_name("line-1") == "line-1"
    names = {line_dir_name(x) for x in ("a/b", "a_b", "a b", "..", ".", "")}
    assert len(names) == 6
    assert all("/" not in n and n not in (".", "..", "") for n in names)


def test_retention_by_age(tmp_path: Path) -> None:
    store = ImageStore(tmp_path, max_age_days=1.0, max_bytes=0)
    old = store.save("line-1", 1, T0, _frame(), np.zeros((48, 64), np.uint8))
    new = store.save("line-1", 2, T0, _frame(seed=1), np.zeros((48, 64), np.uint8))
    other_day = store.save("line-2", 3, datetime(2026, 1, 1, tzinfo=UTC), _frame(seed=2))
    for rel in (*old, other_day[0]):
        _age(store, rel, 2 * 86400)
    deleted = store.enforce_retention()
    assert deleted == sorted([*old, other_day[0]])
    assert all(store.exists(p) for p in new)
    assert not any(store.exists(p) for p in deleted)
    assert not (tmp_path / "line-2").exists()  # empty directories are removed
    assert store.enforce_retention() == []


def test_retention_by_bytes_deletes_oldest_units(tmp_path: Path) -> None:
    store = ImageStore(tmp_path, max_age_days=0, max_bytes=10**9)
    units = []
    for n in range(5):
        paths = store.save("line-1", n, T0, _frame(seed=n), np.full((48, 64), n, np.uint8))
        for rel in paths:
            _age(store, rel, 1000 - n * 100)  # frame 0 is the oldest
        units.append(paths)
    sizes = [sum(store.path(p).stat().st_size for p in u) for u in units]
    store.max_bytes = sizes[3] + sizes[4]  # room for the two newest units only
    deleted = store.enforce_retention()
    assert deleted == sorted(p for u in units[:3] for p in u)
    assert all(store.exists(p) for u in units[3:] for p in u)
    assert store.usage() == sizes[3] + sizes[4]


def test_stale_temporary_files_are_removed(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    store.save("line-1", 1, T0, _frame())
    day = tmp_path / "line-1" / "20261123"
    stale, fresh = day / ".tmp-abc000000000001.png", day / ".tmp-def000000000001.png"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    t = time.time() - 7200
    os.utime(stale, (t, t))
    assert store.enforce_retention() == []
    assert not stale.exists() and fresh.exists()


def test_apply_retention_clears_paths_in_the_log(tmp_path: Path, make_result) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    engine = make_engine(url)
    try:
        repo = InspectionRepository(engine)
        store = ImageStore(tmp_path / "img", max_age_days=1.0, max_bytes=0)
        ids = []
        for n in range(2):
            iid, _ = repo.save(make_result(frame_id=n, captured_at=T0, verdict="NG"))
            paths = store.save("line-1", n, T0, _frame(seed=n), np.zeros((48, 64), np.uint8))
            repo.set_image_paths(iid, *paths)
            ids.append(iid)
        for rel in store.relative_paths("line-1", 0, T0):
            _age(store, rel, 3 * 86400)
        deleted = apply_retention(store, repo)
        assert len(deleted) == 2
        old, kept = repo.get_record(ids[0]), repo.get_record(ids[1])
        assert old.image_path is None and old.mask_path is None
        assert kept.image_path is not None and store.exists(kept.image_path)
    finally:
        engine.dispose()
