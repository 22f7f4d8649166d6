"""Image store: retained frames and class-indexed masks as PNG files on disk.

Layout: ``root/<line>/<YYYYMMDD of captured_at, UTC>/<frame_id:012d>-<inspection id>.png``
and ``....mask.png`` next to it. The inspection id (the log's primary key) is in the name, so
two inspections never share a file name, even if a frame id were ever logged twice; and a
file, once written, is never replaced (below): nothing can overwrite another inspection's
evidence. Paths handed out (and stored in the inspection log) are
**relative to root**, POSIX style (``line-1/20261123/000000001234.png``), so the store can be
moved or mounted elsewhere; :meth:`ImageStore.path` resolves them and refuses anything that
points outside ``root``.

Frames are 8-bit gray ``(H, W)`` or RGB ``(H, W, 3)`` in and out (converted to/from OpenCV's
BGR order at the file boundary); masks are 8-bit single-channel, values = class indices.

Writes are atomic and exclusive: the PNG is encoded in memory, written to a hidden temporary
file in the target directory and hard-linked to the final name (``os.link`` fails when the
name exists), so a reader never sees a half-written file, an existing file is never replaced,
and a crash leaves at most a temporary file (removed by retention after an hour). Saving an
inspection again (a frame re-delivered after a crash) keeps the files already written.

Retention (:meth:`ImageStore.enforce_retention`): a frame and its mask form one unit. Units
whose newest file is older than ``max_age_days`` are deleted; then, while the store holds more
than ``max_bytes``, the oldest units are deleted. It returns the relative paths it deleted so
the caller can clear them in the log (:meth:`storage.repository.InspectionRepository.
clear_image_paths`); the API also answers 404 for a path whose file is gone, so a log that
still names a deleted file is harmless.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from core.settings import Settings

log = logging.getLogger(__name__)

_TMP_PREFIX = ".tmp-"
#: Temporary files older than this are leftovers of a crash.
_TMP_MAX_AGE_S = 3600.0
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 3]
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def line_dir_name(line_id: str) -> str:
    """Directory name of a line: the id itself when it is filesystem-safe, else a sanitised
    id plus a short hash (so distinct ids never share a directory)."""
    safe = _SAFE.sub("_", line_id)[:64]
    if safe == line_id and safe.strip("."):
        return safe
    digest = hashlib.sha1(line_id.encode("utf-8")).hexdigest()[:8]
    return f"{safe.strip('.') or '_'}-{digest}"


@dataclass
class _Unit:
    files: list[Path]
    mtime: float
    size: int


class ImageStore:
    """Retained frames and masks under ``root`` with retention by age and total size."""

    def __init__(
        self,
        root: Path | str,
        max_age_days: float = 30.0,
        max_bytes: int = 2 * 1024**3,
    ) -> None:
        """Store under ``root`` (created on first write); ``max_age_days``/``max_bytes`` <= 0
        disable that limit."""
        self.root = Path(root)
        self.max_age_days = float(max_age_days)
        self.max_bytes = int(max_bytes)

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageStore:
        """The store configured by ``image_store_path`` and the retention settings."""
        return cls(
            settings.image_store_path,
            max_age_days=settings.image_retention_days,
            max_bytes=settings.image_retention_max_bytes,
        )

    # -- paths ------------------------------------------------------------------------------
    def relative_paths(
        self,
        line_id: str,
        frame_id: int,
        captured_at: datetime,
        inspection_id: int | None = None,
    ) -> tuple[str, str]:
        """Relative ``(image_path, mask_path)`` of an inspection (``inspection_id`` None: a
        frame not logged, named by its frame id alone)."""
        when = captured_at if captured_at.tzinfo else captured_at.replace(tzinfo=UTC)
        day = when.astimezone(UTC).strftime("%Y%m%d")
        stem = f"{line_dir_name(line_id)}/{day}/{int(frame_id):012d}"
        if inspection_id is not None:
            stem += f"-{int(inspection_id)}"
        return f"{stem}.png", f"{stem}.mask.png"

    def path(self, relative: str) -> Path:
        """Absolute path of a stored file; ValueError when it would lie outside ``root``."""
        root = self.root.resolve()
        p = (root / relative).resolve()
        if p != root and root not in p.parents:
            raise ValueError(f"path outside the image store: {relative!r}")
        return p

    def exists(self, relative: str | None) -> bool:
        """Whether a stored file is (still) there."""
        if not relative:
            return False
        try:
            return self.path(relative).is_file()
        except ValueError:
            return False

    # -- write ------------------------------------------------------------------------------
    def _write_exclusive(self, target: Path, data: bytes) -> bool:
        """Write ``target`` atomically unless it exists; True when written, False when a file
        of that name was already there (it is left untouched)."""
        for attempt in range(2):
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.parent / f"{_TMP_PREFIX}{uuid.uuid4().hex}{target.name}"
            try:
                with open(tmp, "xb") as fh:
                    fh.write(data)
                os.link(tmp, target)  # atomic, and never replaces an existing name
                return True
            except FileExistsError:
                return False
            except FileNotFoundError:  # retention removed the empty directory meanwhile
                if attempt:
                    raise
            finally:
                tmp.unlink(missing_ok=True)
        return False  # pragma: no cover - the loop returns or raises

    @staticmethod
    def _encode(array: np.ndarray, what: str) -> bytes:
        ok, buf = cv2.imencode(".png", array, _PNG_PARAMS)
        if not ok:
            raise ValueError(f"could not encode {what} as PNG")
        return buf.tobytes()

    def save(
        self,
        line_id: str,
        frame_id: int,
        captured_at: datetime,
        image: np.ndarray,
        mask: np.ndarray | None = None,
        *,
        inspection_id: int | None = None,
    ) -> tuple[str, str | None]:
        """Write the frame (and mask) as PNG; return relative ``(image_path, mask_path)``.

        ``image``: uint8 ``(H, W)`` gray or ``(H, W, 3)`` RGB. ``mask``: class indices
        ``(H, W)`` (values 0..255), or None (``mask_path`` None). ``inspection_id``: the
        logged inspection the files belong to (part of the name). Existing files are never
        replaced: saving an inspection again keeps what was written first; without an
        ``inspection_id`` an existing name raises :class:`FileExistsError`.
        """
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ValueError(f"image must be uint8 HxW or HxWx3, got {image.dtype} {image.shape}")
        if image.ndim == 3:
            if image.shape[2] == 1:
                image = image[:, :, 0]
            elif image.shape[2] == 3:
                image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
            else:
                raise ValueError(f"image must have 1 or 3 channels, got {image.shape}")
        image_rel, mask_rel = self.relative_paths(line_id, frame_id, captured_at, inspection_id)
        image_bytes = self._encode(np.ascontiguousarray(image), "image")
        mask_bytes = None
        if mask is not None:
            mask = np.asarray(mask)
            if mask.ndim == 3 and mask.shape[2] == 1:
                mask = mask[:, :, 0]
            if mask.ndim != 2:
                raise ValueError(f"mask must be HxW, got {mask.shape}")
            if mask.dtype != np.uint8:
                if mask.size and (mask.min() < 0 or mask.max() > 255):
                    raise ValueError("mask values must be class indices 0..255")
                mask = mask.astype(np.uint8)
            mask_bytes = self._encode(np.ascontiguousarray(mask), "mask")
        written = [self._write_exclusive(self.path(image_rel), image_bytes)]
        if mask_bytes is not None:
            written.append(self._write_exclusive(self.path(mask_rel), mask_bytes))
        if inspection_id is None and not all(written):
            raise FileExistsError(f"{image_rel} exists: an image is never replaced")
        return image_rel, (mask_rel if mask_bytes is not None else None)

    # -- read -------------------------------------------------------------------------------
    def read_bytes(self, relative: str | None) -> bytes | None:
        """The stored PNG file's bytes, or None when it is not (or no longer) there."""
        if not relative:
            return None
        try:
            return self.path(relative).read_bytes()
        except (FileNotFoundError, IsADirectoryError, ValueError):
            return None

    def load_image(self, relative: str | None) -> np.ndarray | None:
        """A stored frame: uint8 ``(H, W)`` gray or ``(H, W, 3)`` RGB; None when gone."""
        data = self.read_bytes(relative)
        if data is None:
            return None
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if img is None:
            return None
        if img.ndim == 3 and img.shape[2] == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        elif img.ndim == 3 and img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
        return img

    def load_mask(self, relative: str | None) -> np.ndarray | None:
        """A stored class-index mask ``(H, W)`` uint8; None when gone."""
        data = self.read_bytes(relative)
        if data is None:
            return None
        mask = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if mask is None:
            return None
        return mask if mask.ndim == 2 else mask[:, :, 0]

    # -- retention --------------------------------------------------------------------------
    def _units(self, now: float) -> tuple[dict[Path, _Unit], list[Path]]:
        units: dict[Path, _Unit] = {}
        stale_tmp: list[Path] = []
        if not self.root.is_dir():
            return units, stale_tmp
        for dirpath, _dirs, files in os.walk(self.root):
            base = Path(dirpath)
            for name in files:
                p = base / name
                try:
                    st = p.stat()
                except FileNotFoundError:
                    continue
                if name.startswith(_TMP_PREFIX):
                    if now - st.st_mtime > _TMP_MAX_AGE_S:
                        stale_tmp.append(p)
                    continue
                if not name.endswith(".png"):
                    continue
                key = base / name.split(".", 1)[0]
                unit = units.get(key)
                if unit is None:
                    units[key] = _Unit([p], st.st_mtime, st.st_size)
                else:
                    unit.files.append(p)
                    unit.mtime = max(unit.mtime, st.st_mtime)
                    unit.size += st.st_size
        return units, stale_tmp

    def usage(self) -> int:
        """Bytes of retained frames and masks."""
        units, _ = self._units(time.time())
        return sum(u.size for u in units.values())

    def enforce_retention(self, now: float | None = None) -> list[str]:
        """Delete units older than ``max_age_days``, then the oldest units while the store
        exceeds ``max_bytes``; return the deleted files as relative paths (sorted)."""
        now = time.time() if now is None else now
        units, stale_tmp = self._units(now)
        for p in stale_tmp:
            p.unlink(missing_ok=True)
        doomed: list[_Unit] = []
        ordered = sorted(units.values(), key=lambda u: u.mtime)
        if self.max_age_days > 0:
            cutoff = now - self.max_age_days * 86400.0
            n_old = 0
            while n_old < len(ordered) and ordered[n_old].mtime < cutoff:
                n_old += 1
            doomed, ordered = ordered[:n_old], ordered[n_old:]
        if self.max_bytes > 0:
            total = sum(u.size for u in ordered)
            i = 0
            while total > self.max_bytes and i < len(ordered):
                doomed.append(ordered[i])
                total -= ordered[i].size
                i += 1
        deleted: list[str] = []
        dirs: set[Path] = set()
        root = self.root.resolve()
        for unit in doomed:
            for p in unit.files:
                try:
                    p.unlink()
                except FileNotFoundError:
                    continue
                deleted.append(p.resolve().relative_to(root).as_posix())
                dirs.add(p.parent)
        for d in sorted(dirs, key=lambda x: len(x.parts), reverse=True):
            for candidate in (d, d.parent):
                if candidate.resolve() == root:
                    continue
                try:
                    candidate.rmdir()  # only when empty
                except OSError:
                    pass
        if deleted:
            log.info("image retention deleted %d files", len(deleted))
        return sorted(deleted)


class _PathClearer(Protocol):
    def clear_image_paths(self, paths: Iterable[str]) -> int: ...


def apply_retention(store: ImageStore, repository: _PathClearer | None = None) -> list[str]:
    """Run :meth:`ImageStore.enforce_retention` and clear the deleted paths in the log."""
    deleted = store.enforce_retention()
    if deleted and repository is not None:
        repository.clear_image_paths(deleted)
    return deleted
