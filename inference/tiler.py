"""Sliding-window tiler: square tiles of ``tile`` px every ``stride`` px over a frame or its ROI.

Placement along each axis (:func:`tile_positions`):

* tiles start at ``0, stride, 2*stride, ...`` while they fit inside the area;
* when the last regular tile does not reach the right/bottom border, one more tile is placed
  **aligned to the border** (start = ``length - tile``), so it overlaps its neighbour; every
  pixel is covered and every tile is a full ``tile`` x ``tile`` window of real pixels;
* ``stride`` must be ``<= tile`` (a larger stride would leave unseen gaps).

Area smaller than a tile (along one or both axes): the area is covered by one tile along
that axis holding all its pixels, **padded by reflection** (``cv2.BORDER_REFLECT_101``) at the
right/bottom up to ``tile`` px. Reflection keeps the pixel scale the models were trained at
(resizing a 100 px strip to 224 px would stretch defects 2.2x) and keeps the surface texture
statistics; the padded pixels are never scored: the rect of such a tile describes only the
real pixels, and consumers crop tile outputs to ``rect`` size (the real pixels are always at
the top-left of the padded tile). Padded tiles are the only copies; every other tile is a
view into the frame (no copy).

``tile == 0`` means "the whole area as one tile" (segmentation on the whole frame/ROI).

Rects are ``(x, y, w, h)`` in **frame** coordinates, also when an ROI is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

Rect = tuple[int, int, int, int]


def tile_positions(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets of the tiles along one axis of ``length`` px (see module docstring)."""
    if length <= 0:
        raise ValueError(f"length must be positive, got {length}")
    if tile <= 0:
        raise ValueError(f"tile must be positive, got {tile}")
    if stride <= 0 or stride > tile:
        raise ValueError(f"stride must be in 1..tile ({tile}), got {stride}")
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def clip_roi(roi: Rect | tuple[int, ...] | None, width: int, height: int) -> Rect:
    """The ROI ``(x, y, w, h)`` intersected with the frame; the whole frame when None.

    Raises ValueError when the ROI is malformed or does not intersect the frame.
    """
    if roi is None:
        return (0, 0, width, height)
    if len(roi) != 4:
        raise ValueError(f"roi must be [x, y, w, h], got {roi!r}")
    x, y, w, h = (int(v) for v in roi)
    if w <= 0 or h <= 0:
        raise ValueError(f"roi width/height must be positive, got {roi!r}")
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, width), min(y + h, height)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"roi {roi!r} lies outside the {width}x{height} frame")
    return (x0, y0, x1 - x0, y1 - y0)


def tile_rects(
    width: int, height: int, tile: int, stride: int = 0, roi: Rect | None = None
) -> list[Rect]:
    """Frame rects ``(x, y, w, h)`` of the real pixels of every tile, row-major."""
    rx, ry, rw, rh = clip_roi(roi, width, height)
    if tile == 0:
        return [(rx, ry, rw, rh)]
    stride = stride or tile
    xs = tile_positions(rw, tile, stride)
    ys = tile_positions(rh, tile, stride)
    tw, th = min(tile, rw), min(tile, rh)
    return [(rx + x, ry + y, tw, th) for y in ys for x in xs]


@dataclass(frozen=True, slots=True)
class TileSet:
    """Tiles of one frame: pixel arrays plus where their real pixels lie in the frame."""

    #: ``tile`` x ``tile`` (x3) uint8 arrays; views into the frame unless ``padded``
    arrays: list[np.ndarray]
    #: ``(N, 4)`` int array of frame rects ``x, y, w, h`` (real pixels only)
    rects: np.ndarray
    #: the area (frame or clipped ROI) the tiles cover, frame coordinates
    area: Rect
    #: True when the area is smaller than a tile and the tiles were reflection-padded
    padded: bool

    def __len__(self) -> int:
        return len(self.arrays)


def make_tiles(image: np.ndarray, tile: int, stride: int = 0, roi: Rect | None = None) -> TileSet:
    """Cut ``image`` (uint8 HxW or HxWx3) into tiles over ``roi`` (or the whole frame).

    ``stride`` 0 means ``stride = tile``; ``tile`` 0 means the whole area as one tile.
    """
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be HxW or HxWxC, got shape {image.shape}")
    height, width = image.shape[:2]
    area = clip_roi(roi, width, height)
    rects = tile_rects(width, height, tile, stride, area)
    padded = tile > 0 and (area[2] < tile or area[3] < tile)
    arrays: list[np.ndarray] = []
    for x, y, w, h in rects:
        view = image[y : y + h, x : x + w]
        if padded:
            view = cv2.copyMakeBorder(
                np.ascontiguousarray(view), 0, tile - h, 0, tile - w, cv2.BORDER_REFLECT_101
            )
        arrays.append(view)
    return TileSet(
        arrays=arrays,
        rects=np.asarray(rects, dtype=np.int64).reshape(-1, 4),
        area=area,
        padded=padded,
    )
