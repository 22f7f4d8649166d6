"""Data sets on disk, grouped train/validation splits and in-memory loading.

Layouts (``../shared/datasets``):

* classification: ``<root>/<class>/<image>`` (neu-cls, x-sdd, aluminum-tiles);
* segmentation: ``<root>/images/<stem>.jpg`` + ``<root>/masks/<stem>.png`` + ``classes.json``
  (neu-seg, aluminum, ksdd with ``labels.csv``).

Several sets hold rotated/flipped copies of one original, and the hidden acceptance split was
made by groups of near-identical images. :func:`dihedral_groups` finds those groups (an image
and any of its 8 rotations/flips at 32x32 correlate above a threshold); :func:`grouped_split`
keeps every group on one side, stratified by class. Aluminium tiles inherit the group of the
``aluminum`` image they were cut from (file name ``<image>_<y>_<x>.png``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
DATASETS_ROOT = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"


@dataclass
class Sample:
    """One image on disk with its label (class index) and optional mask path."""

    path: Path
    label: int
    mask: Path | None = None
    group: int = -1


@dataclass
class DatasetIndex:
    """The files of a data set: samples, class names and task."""

    name: str
    root: Path
    task: str
    classes: list[str]
    samples: list[Sample]

    def fingerprint(self) -> str:
        """``<name> sha256:<hex>`` of the sorted relative file list (artifact metadata)."""
        rel = sorted(str(s.path.relative_to(self.root)) for s in self.samples)
        digest = hashlib.sha256("\n".join(rel).encode()).hexdigest()
        return f"{self.name} sha256:{digest}"


def read_gray_or_rgb(path: Path, channels: int) -> np.ndarray:
    """Decode an image as uint8 ``HxW`` (channels=1) or RGB ``HxWx3`` (channels=3)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR if channels == 3 else cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ValueError(f"cannot decode image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if channels == 3 else img


def index_dataset(root: Path) -> DatasetIndex:
    """Discover the layout of a data set folder."""
    root = Path(root)
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return _index_segmentation(root)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise ValueError(f"{root}: neither <class>/ folders nor images/ + masks/")
    samples = [
        Sample(p, ci)
        for ci, c in enumerate(classes)
        for p in sorted((root / c).iterdir())
        if p.suffix.lower() in IMAGE_EXTS
    ]
    return DatasetIndex(root.name, root, "classify", classes, samples)


def _index_segmentation(root: Path) -> DatasetIndex:
    classes_file = root / "classes.json"
    classes = json.loads(classes_file.read_text()) if classes_file.exists() else None
    labels: dict[str, int] = {}
    if (root / "labels.csv").exists():  # KolektorSDD: binary defect masks (255 = defect)
        for line in (root / "labels.csv").read_text().splitlines()[1:]:
            name, defective = line.strip().split(",")
            labels[name] = int(defective)
        classes = classes or ["background", "defect"]
    if classes is None:
        raise ValueError(f"{root}: segmentation set without classes.json or labels.csv")
    samples = []
    for p in sorted((root / "images").iterdir()):
        if p.suffix.lower() not in IMAGE_EXTS:
            continue
        mask = root / "masks" / f"{p.stem}.png"
        samples.append(Sample(p, labels.get(p.name, 0), mask if mask.exists() else None))
    return DatasetIndex(root.name, root, "segment", classes, samples)


def _dihedral_features(img: np.ndarray, size: int = 32) -> np.ndarray:
    """Zero-mean unit-norm vectors of the 8 rotations/flips of a small copy of ``img``."""
    small = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    out = []
    for flip in (False, True):
        base = small[:, ::-1] if flip else small
        for k in range(4):
            v = np.rot90(base, k).ravel()
            v = v - v.mean()
            out.append(v / (np.linalg.norm(v) + 1e-6))
    return np.stack(out)


def dihedral_groups(paths: list[Path], threshold: float = 0.99) -> np.ndarray:
    """Group ids such that images that are rotations/flips of each other share a group.

    Images of any aspect ratio are compared at 32x32; two images join a group when one of the
    8 dihedral transforms of the first correlates with the second above ``threshold``.
    """
    feats = np.stack([_dihedral_features(read_gray_or_rgb(p, 1)) for p in paths])  # N,8,D
    n = len(paths)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    ident = feats[:, 0, :]
    for t in range(8):
        sim = feats[:, t, :] @ ident.T
        np.fill_diagonal(sim, 0)
        for i, j in zip(*np.nonzero(sim > threshold), strict=True):
            ri, rj = find(int(i)), find(int(j))
            if ri != rj:
                parent[ri] = rj
    roots = np.array([find(i) for i in range(n)])
    _, groups = np.unique(roots, return_inverse=True)
    return groups


def default_cache_dir() -> Path:
    """Where split caches go when a command names no run folder: ``LINEINSPECT_CACHE_DIR``,
    else ``runs/cache`` under the working directory (ignored by git)."""
    return Path(os.environ.get("LINEINSPECT_CACHE_DIR") or "runs/cache")


def assign_groups(index: DatasetIndex, cache_dir: Path | None = None) -> None:
    """Fill ``Sample.group`` (cached per data set fingerprint under ``cache_dir``)."""
    cache = None
    if cache_dir is not None:
        key = hashlib.sha1(index.fingerprint().encode()).hexdigest()[:12]
        cache = Path(cache_dir) / f"groups_{index.name}_{key}.json"
        if cache.exists():
            for s, g in zip(index.samples, json.loads(cache.read_text()), strict=True):
                s.group = g
            return
    if index.name == "aluminum-tiles" and (index.root.parent / "aluminum" / "images").is_dir():
        src = index.root.parent / "aluminum" / "images"
        stems = sorted({s.path.stem.split("_")[0] for s in index.samples})
        src_groups = dihedral_groups([src / f"{st}.jpg" for st in stems])
        by_stem = dict(zip(stems, src_groups.tolist(), strict=True))
        groups = [by_stem[s.path.stem.split("_")[0]] for s in index.samples]
    else:
        groups = dihedral_groups([s.path for s in index.samples]).tolist()
    for s, g in zip(index.samples, groups, strict=True):
        s.group = int(g)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps([s.group for s in index.samples]))


def grouped_split(
    index: DatasetIndex, val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[Sample], list[Sample]]:
    """Stratified train/validation split that never separates a group.

    Groups are labelled by their majority class (classification) or the rarest class present
    in their masks' labels (segmentation uses ``Sample.label``); within each stratum, groups are
    shuffled with ``seed`` and assigned to validation until it holds ``val_fraction`` of the
    stratum's images.
    """
    by_group: dict[int, list[Sample]] = defaultdict(list)
    for s in index.samples:
        by_group[s.group].append(s)
    strata: dict[int, list[int]] = defaultdict(list)
    for g, members in by_group.items():
        labels = [m.label for m in members]
        strata[max(set(labels), key=labels.count)].append(g)
    rng = np.random.default_rng(seed)
    train: list[Sample] = []
    val: list[Sample] = []
    for _, groups in sorted(strata.items()):
        groups = sorted(groups)
        rng.shuffle(groups)
        total = sum(len(by_group[g]) for g in groups)
        taken = 0
        for g in groups:
            target = val if taken < val_fraction * total else train
            target.extend(by_group[g])
            if target is val:
                taken += len(by_group[g])
    return train, val
