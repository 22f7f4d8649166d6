"""Build the demo frames the pylon camera emulator replays (``make demo-frames``).

The frames look like a hot-rolled steel strip line: most of them show clean surface, a few
carry one or two defects, so the service logs mostly ``OK`` with an occasional ``NG``
(a realistic NG rate, about 1 in 8 frames).

* **Clean surface** is synthetic, built from X-SDD statistics measured by
  :func:`surface_stats`: the median gray value of the X-SDD images, and the grain (the
  standard deviation of the high-frequency residual in each image's cleanest 32 x 32 patch,
  median over the data set). On top of it: slow shading and faint streaks along the rolling
  direction (vertical, as in X-SDD).
* **Defects** are cut out of X-SDD images (:func:`defect_patch`): the image minus its own
  median-filtered background gives the defect's relief, a feathered mask of where that
  relief is strong keeps the defect and drops the image's surface, and the relief is added
  to the synthetic surface at the image's native scale (1 px = 1 px, the scale the
  classifiers were trained at).

Each frame is a 1296 x 966 8-bit gray PNG (the acA1300-30gm's sensor), named
``frame_NN_<content>.png`` where content is ``clean`` or the X-SDD class(es) pasted in. The
choice of images and positions is seeded: running the script twice gives byte-identical
files.

Usage::

    python deploy/demo/make_demo_frames.py [--src DIR] [--out DIR] [--count N] [--seed S]

X-SDD: Apache-2.0, https://github.com/Fighter20092392/X-SDD-A-New-benchmark (see README.md).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_SRC = HERE.parents[2] / "shared" / "datasets" / "x-sdd"
DEFAULT_OUT = HERE / "frames"
WIDTH, HEIGHT = 1296, 966
MAX_TOTAL_BYTES = 10 * 1024 * 1024
_EXTS = (".jpg", ".jpeg", ".png", ".bmp")

#: Which frames of a 16-frame cycle carry defects, and which X-SDD classes: 2 of 16 (12.5 %).
#: Longer cycles (``--count``) repeat the pattern.
DEFECT_PLAN: dict[int, tuple[str, ...]] = {
    5: ("slag_inclusion",),
    12: ("surface_scratch", "iron_sheet_ash"),
}
CYCLE = 16


@dataclass(frozen=True)
class SurfaceStats:
    """What the synthetic clean surface borrows from X-SDD."""

    #: median gray value over the X-SDD images
    gray: float
    #: grain: std of the high-frequency residual in the cleanest patch, median over images
    grain: float


def list_classes(src: Path) -> dict[str, list[Path]]:
    """Image files per class folder of the X-SDD copy, sorted (deterministic order)."""
    classes: dict[str, list[Path]] = {}
    for d in sorted(p for p in src.iterdir() if p.is_dir()):
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in _EXTS)
        if files:
            classes[d.name] = files
    if not classes:
        raise FileNotFoundError(f"no X-SDD class folders with images under {src}")
    return classes


def load_gray(path: Path) -> np.ndarray:
    """One X-SDD image as 8-bit gray."""
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ValueError(f"cannot decode {path}")
    return img


def surface_stats(classes: dict[str, list[Path]]) -> SurfaceStats:
    """Median gray and clean-patch grain of the X-SDD images (see the module docstring)."""
    grays, grains = [], []
    for files in classes.values():
        for f in files:
            g = load_gray(f).astype(np.float32)
            grays.append(float(np.median(g)))
            hf = g - cv2.GaussianBlur(g, (0, 0), 6)
            h, w = hf.shape
            patches = [
                float(hf[y : y + 32, x : x + 32].std())
                for y in range(0, h - 31, 32)
                for x in range(0, w - 31, 32)
            ]
            grains.append(min(patches))
    return SurfaceStats(gray=float(np.median(grays)), grain=float(np.median(grains)))


def _smooth_noise(rng: np.random.Generator, sx: float, sy: float, std: float) -> np.ndarray:
    n = cv2.GaussianBlur(rng.standard_normal((HEIGHT, WIDTH)).astype(np.float32), (0, 0), sx,
                         sigmaY=sy)
    return n * (std / max(float(n.std()), 1e-6))


def clean_surface(rng: np.random.Generator, stats: SurfaceStats) -> np.ndarray:
    """Float32 ``HEIGHT x WIDTH`` clean strip: shading, rolling streaks and grain."""
    shading = _smooth_noise(rng, 120, 120, 4.0)
    streaks = _smooth_noise(rng, 1.5, 80, 1.0)
    grain = _smooth_noise(rng, 0.8, 0.8, stats.grain)
    return stats.gray + shading + streaks + grain


def defect_patch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(relief, alpha) of the defect in an X-SDD image: relief = image - its median-filtered
    background; alpha = feathered mask of where the relief is strong."""
    img = load_gray(path)
    relief = img.astype(np.float32) - cv2.medianBlur(img, 31).astype(np.float32)
    strong = (np.abs(cv2.GaussianBlur(relief, (0, 0), 2)) > 6).astype(np.uint8)
    strong = cv2.dilate(strong, np.ones((7, 7), np.uint8))
    alpha = cv2.GaussianBlur(strong.astype(np.float32), (0, 0), 3)
    # fade out towards the image border, so no straight edge of the X-SDD image shows
    h, w = img.shape
    ramp_y = np.clip(np.minimum(np.arange(h), np.arange(h)[::-1]) / 12.0, 0.0, 1.0)
    ramp_x = np.clip(np.minimum(np.arange(w), np.arange(w)[::-1]) / 12.0, 0.0, 1.0)
    return relief, alpha * np.outer(ramp_y, ramp_x).astype(np.float32)


def make_frame(
    classes: dict[str, list[Path]],
    stats: SurfaceStats,
    defects: tuple[str, ...],
    rng: np.random.Generator,
) -> np.ndarray:
    """One uint8 frame: clean surface plus one pasted X-SDD defect per entry of ``defects``,
    placed in separate columns of the frame."""
    surface = clean_surface(rng, stats)
    slots = np.array_split(np.arange(64, WIDTH - 192), len(defects)) if defects else []
    for cls, slot in zip(defects, slots, strict=True):
        files = classes[cls]
        relief, alpha = defect_patch(files[int(rng.integers(len(files)))])
        h, w = relief.shape
        x = int(rng.integers(int(slot[0]), int(slot[-1]) - w // 2))
        y = int(rng.integers(64, HEIGHT - h - 64))
        surface[y : y + h, x : x + w] += alpha * relief
    return np.clip(np.rint(surface), 0, 255).astype(np.uint8)


def build(src: Path, out: Path, count: int = CYCLE, seed: int = 0) -> list[Path]:
    """Write ``count`` frames ``frame_NN_<content>.png`` to ``out`` (old frames removed)."""
    classes = list_classes(src)
    missing = {c for d in DEFECT_PLAN.values() for c in d} - set(classes)
    if missing:
        raise FileNotFoundError(f"X-SDD classes {sorted(missing)} not found under {src}")
    stats = surface_stats(classes)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("frame_*.png"):
        old.unlink()
    written: list[Path] = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])  # per frame: frame i is the same for any count
        defects = DEFECT_PLAN.get(i % CYCLE, ())
        frame = make_frame(classes, stats, defects, rng)
        path = out / f"frame_{i:02d}_{'+'.join(defects) or 'clean'}.png"
        ok, buf = cv2.imencode(".png", frame, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            raise RuntimeError(f"PNG encoding failed for {path}")
        path.write_bytes(buf.tobytes())
        written.append(path)
    total = sum(p.stat().st_size for p in written)
    if total > MAX_TOTAL_BYTES:
        raise RuntimeError(f"demo frames take {total} bytes > {MAX_TOTAL_BYTES}: lower --count")
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC, help="X-SDD folder (class dirs)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    ap.add_argument("--count", type=int, default=CYCLE, help="number of frames")
    ap.add_argument("--seed", type=int, default=0, help="random seed")
    args = ap.parse_args(argv)
    files = build(args.src, args.out, args.count, args.seed)
    total = sum(p.stat().st_size for p in files)
    print(f"wrote {len(files)} frames ({total / 1e6:.2f} MB) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
