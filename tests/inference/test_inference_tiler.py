"""Sliding-window tiler: full coverage, rects inside the frame/ROI, views, padding."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from inference.tiler import Rect, clip_roi, make_tiles, tile_positions, tile_rects

SIZES = [1, 5, 63, 64, 65, 100, 127, 128, 129, 224, 300, 966, 1296]
TILES = [(64, 64), (64, 32), (64, 48), (128, 96), (224, 224), (224, 200), (227, 113)]


@pytest.mark.parametrize(("tile", "stride"), TILES)
def test_positions_cover_every_index(tile: int, stride: int) -> None:
    for length in SIZES:
        starts = tile_positions(length, tile, stride)
        covered = np.zeros(length, dtype=int)
        for s in starts:
            assert s >= 0
            assert s + min(tile, length) <= length
            covered[s : s + tile] += 1
        assert covered.min() >= 1, (length, tile, stride)
        assert starts == sorted(set(starts))
        if length >= tile:
            assert starts[-1] == length - tile  # last tile aligned to the border
            gaps = np.diff(starts)
            assert (gaps <= stride).all()


def test_positions_reject_bad_arguments() -> None:
    with pytest.raises(ValueError):
        tile_positions(100, 64, 65)  # stride > tile leaves gaps
    with pytest.raises(ValueError):
        tile_positions(100, 0, 1)
    with pytest.raises(ValueError):
        tile_positions(0, 64, 64)


def _check_cover(shape: tuple[int, ...], tile: int, stride: int, roi: Rect | None) -> None:
    h, w = shape[:2]
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    ts = make_tiles(image, tile, stride, roi)
    ax, ay, aw, ah = clip_roi(roi, w, h)
    covered = np.zeros((h, w), dtype=int)
    for arr, (x, y, tw, th) in zip(ts.arrays, ts.rects, strict=True):
        assert ax <= x and ay <= y and x + tw <= ax + aw and y + th <= ay + ah
        expect_shape = (tile, tile) if tile else (ah, aw)
        assert arr.shape[:2] == expect_shape
        # real pixels sit top-left and equal the frame's
        np.testing.assert_array_equal(arr[:th, :tw], image[y : y + th, x : x + tw])
        if not ts.padded:
            assert np.shares_memory(arr, image)  # a view, no copy
        covered[y : y + th, x : x + tw] += 1
    inside = covered[ay : ay + ah, ax : ax + aw]
    assert inside.min() >= 1, (shape, tile, stride, roi)
    assert covered.sum() == sum(int(r[2] * r[3]) for r in ts.rects)
    outside = covered.copy()
    outside[ay : ay + ah, ax : ax + aw] = 0
    assert outside.max() == 0


def test_every_pixel_covered_property() -> None:
    rng = np.random.default_rng(42)
    combos = 0
    for _ in range(150):
        h, w = int(rng.integers(1, 400)), int(rng.integers(1, 400))
        tile = int(rng.choice([16, 32, 50, 64, 100, 128]))
        stride = int(rng.integers(max(1, tile // 4), tile + 1))
        roi = None
        if rng.random() < 0.4:
            rx, ry = int(rng.integers(0, w)), int(rng.integers(0, h))
            roi = (rx, ry, int(rng.integers(1, w - rx + 40)), int(rng.integers(1, h - ry + 40)))
        shape = (h, w) if rng.random() < 0.7 else (h, w, 3)
        _check_cover(shape, tile, stride, roi)
        combos += 1
    assert combos == 150


@pytest.mark.parametrize(
    ("shape", "tile", "stride", "roi"),
    [
        ((966, 1296), 224, 224, None),
        ((966, 1296), 224, 112, None),
        ((966, 1296), 256, 200, (100, 50, 900, 700)),
        ((1024, 1280), 227, 227, None),
        ((50, 40), 224, 224, None),  # frame smaller than a tile: one padded tile
        ((100, 1296), 224, 224, None),  # strip: one padded row
        ((966, 1296), 224, 224, (1200, 900, 500, 500)),  # ROI clipped, smaller than a tile
        ((966, 1296, 3), 128, 64, (10, 20, 300, 200)),
        ((966, 1296), 0, 0, (10, 20, 300, 200)),  # whole ROI as one tile
    ],
)
def test_camera_geometries(
    shape: tuple[int, ...], tile: int, stride: int, roi: Rect | None
) -> None:
    _check_cover(shape, tile, stride, roi)


def test_frame_smaller_than_tile_is_reflection_padded() -> None:
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    ts = make_tiles(image, 8)
    assert ts.padded and len(ts) == 1
    assert ts.rects.tolist() == [[0, 0, 4, 3]]
    tile = ts.arrays[0]
    assert tile.shape == (8, 8)
    np.testing.assert_array_equal(tile[:3, :4], image)
    assert tile[3, 0] == image[1, 0] and tile[0, 4] == image[0, 2]  # reflect-101


def test_rect_counts_and_border_alignment() -> None:
    rects = tile_rects(1296, 966, 224, 224)
    xs = sorted({r[0] for r in rects})
    ys = sorted({r[1] for r in rects})
    assert xs == [0, 224, 448, 672, 896, 1072]
    assert ys == [0, 224, 448, 672, 742]
    assert len(rects) == 30


def test_roi_outside_frame_rejected() -> None:
    with pytest.raises(ValueError):
        clip_roi((2000, 0, 10, 10), 1296, 966)
    with pytest.raises(ValueError):
        clip_roi((0, 0, 0, 10), 1296, 966)


def test_many_combinations_quick() -> None:
    for h, w, tile in itertools.product([7, 64, 65, 130], [7, 64, 65, 200], [8, 64]):
        for stride in {tile // 3, tile // 2, tile}:
            _check_cover((h, w), tile, stride, None)
