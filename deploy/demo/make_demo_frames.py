"""Build the demo frames the pylon camera emulator replays (``make demo-frames``).

Each frame is a 1296 x 966 8-bit grayscale PNG (the acA1300-30gm's sensor size) tiled from
X-SDD hot-rolled steel images (128 x 128 RGB, converted to gray). The choice of images is
seeded, so running the script twice gives byte-identical files. Every frame mixes a dominant
defect class with tiles of the other classes; X-SDD only has defect classes, so every tile
shows some defect (fine for a demo).

Usage::

    python deploy/demo/make_demo_frames.py [--src DIR] [--out DIR] [--count N] [--seed S]

X-SDD: Apache-2.0, https://github.com/Fighter20092392/X-SDD-A-New-benchmark (see README.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_SRC = HERE.parents[2] / "shared" / "datasets" / "x-sdd"
DEFAULT_OUT = HERE / "frames"
WIDTH, HEIGHT = 1296, 966
#: X-SDD images are placed at their native scale (1 px = 1 px), so the 128-px tiles of the
#: ``mm`` model (stride 128) line up with the mosaic grid anchored at the top-left corner.
#: 2 would upscale them to 256 px (smoother, about half the PNG size).
SCALE = 1
MAX_TOTAL_BYTES = 10 * 1024 * 1024
_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


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


def load_gray(path: Path, size: int) -> np.ndarray:
    """One X-SDD image as an 8-bit gray ``size`` x ``size`` tile."""
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ValueError(f"cannot decode {path}")
    if img.shape != (size, size):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
    return img


def make_frame(
    classes: dict[str, list[Path]], dominant: str, rng: np.random.Generator
) -> np.ndarray:
    """A ``HEIGHT`` x ``WIDTH`` mosaic: about 60 % tiles of ``dominant``, the rest mixed."""
    tile = 128 * SCALE
    rows, cols = -(-HEIGHT // tile), -(-WIDTH // tile)
    names = sorted(classes)
    canvas = np.zeros((rows * tile, cols * tile), np.uint8)
    for r in range(rows):
        for c in range(cols):
            cls = dominant if rng.random() < 0.6 else names[int(rng.integers(len(names)))]
            files = classes[cls]
            img = load_gray(files[int(rng.integers(len(files)))], tile)
            k = int(rng.integers(4))  # rotate/flip so repeated textures do not line up
            img = np.rot90(img, k)
            if rng.random() < 0.5:
                img = img[:, ::-1]
            canvas[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = img
    # The mosaic is slightly larger than the sensor: keep its top-left part.
    return np.ascontiguousarray(canvas[:HEIGHT, :WIDTH])


def build(src: Path, out: Path, count: int = 12, seed: int = 0) -> list[Path]:
    """Write ``count`` frames ``frame_NN_<class>.png`` to ``out`` (old frames removed)."""
    classes = list_classes(src)
    names = sorted(classes)
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("frame_*.png"):
        old.unlink()
    written: list[Path] = []
    for i in range(count):
        dominant = names[i % len(names)]
        frame = make_frame(classes, dominant, rng)
        path = out / f"frame_{i:02d}_{dominant}.png"
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
    ap.add_argument("--count", type=int, default=12, help="number of frames")
    ap.add_argument("--seed", type=int, default=0, help="random seed")
    args = ap.parse_args(argv)
    files = build(args.src, args.out, args.count, args.seed)
    total = sum(p.stat().st_size for p in files)
    print(f"wrote {len(files)} frames ({total / 1e6:.2f} MB) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
