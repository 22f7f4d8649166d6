"""Write QA-reviewed inspections out as a labelled data set for retraining.

Layout of ``out``::

    images/<inspection_id>.png   the retained frame (8-bit gray or RGB)
    masks/<inspection_id>.png    class-indexed 8-bit mask, indices of classes.json
    classes.json                 ["background", <every class of the set, sorted>]
    manifest.csv                 one row per item (flat columns)
    manifest.json                {"classes": [...], "items": [...], "skipped": [...]}

The label of an item is its **latest** review: ``confirm`` keeps the machine's verdict and
classes, ``correct`` takes QA's verdict/classes, ``false_reject`` means OK with no defects.

Masks are re-indexed from the inspection's own ``mask_classes`` to the data set's
``classes.json``. Pixels of a class QA kept keep it; pixels of a class QA removed get the one
class QA named when there is exactly one (a corrected class), else :data:`IGNORE` (255, "do
not train on this"); a label of OK (false reject) gives an all-background mask. Boxes are
relabelled the same way. Reviewed inspections without a retained image are listed under
``skipped``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from storage.images import ImageStore
from storage.repository import InspectionRecord, InspectionRepository

#: Mask value of pixels whose class QA's review leaves undetermined.
IGNORE = 255
MANIFEST_FIELDS = [
    "inspection_id", "line_id", "frame_id", "captured_at", "image", "mask", "label_verdict",
    "label_classes", "machine_verdict", "machine_classes", "action", "reviewer", "reviewed_at",
    "comment", "boxes", "models",
]


@dataclass
class ExportSummary:
    """What :func:`export_reviews` wrote."""

    out: Path
    items: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)


def _label(record: InspectionRecord) -> tuple[str, list[str]]:
    review = record.reviews[-1]
    machine_classes = sorted({d.cls for d in record.result.defects})
    verdict = review.verdict or record.result.verdict
    classes = review.classes if review.classes is not None else machine_classes
    if review.action == "false_reject" or verdict == "OK":
        return "OK", []
    return verdict, sorted(set(classes))


def _relabel(cls: str, keep: list[str]) -> str | None:
    """The class a machine class becomes under QA's ``keep`` list (None: undetermined)."""
    if cls in keep:
        return cls
    return keep[0] if len(keep) == 1 else None


def _remap_mask(
    mask: np.ndarray, mask_classes: list[str], keep: list[str], index: dict[str, int]
) -> np.ndarray:
    out = np.zeros(mask.shape[:2], dtype=np.uint8)
    if not keep:
        return out
    lut = np.full(256, IGNORE, dtype=np.uint8)
    lut[0] = 0
    for k, name in enumerate(mask_classes[1:256], start=1):
        target = _relabel(name, keep)
        lut[k] = index[target] if target is not None else IGNORE
    return lut[mask]


def _collect(
    repository: InspectionRepository, line_id: str | None, since: datetime | None,
    until: datetime | None,
) -> list[InspectionRecord]:
    records: list[InspectionRecord] = []
    cursor = None
    while True:
        page, cursor = repository.query(
            line_id=line_id, since=since, until=until, reviewed=True, limit=500, cursor=cursor
        )
        records += page
        if cursor is None:
            return records


def export_reviews(
    repository: InspectionRepository,
    images: ImageStore,
    out: Path,
    line_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> ExportSummary:
    """Write every reviewed inspection (optionally of one line / time range) to ``out``."""
    import cv2  # heavy; only the export needs it

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    records = [r for r in _collect(repository, line_id, since, until) if r.reviews]
    labels = {r.id: _label(r) for r in records}
    names = sorted({c for _, cs in labels.values() for c in cs} - {"background"})
    classes = ["background", *names]
    index = {c: k for k, c in enumerate(classes)}
    summary = ExportSummary(out=out, classes=classes)
    items: list[dict[str, Any]] = []
    for record in records:
        image = images.load_image(record.image_path)
        if image is None:
            summary.skipped.append({"inspection_id": record.id, "reason": "image not retained"})
            continue
        verdict, keep = labels[record.id]
        res = record.result
        mask = images.load_mask(record.mask_path)
        if mask is None:
            mask = np.zeros(image.shape[:2], dtype=np.uint8)
        mask = _remap_mask(mask, list(res.mask_classes), keep, index)
        bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(out / "images" / f"{record.id}.png"), bgr):
            raise OSError(f"cannot write {out / 'images'}")
        cv2.imwrite(str(out / "masks" / f"{record.id}.png"), mask)
        boxes = [] if not keep else [
            {"class": _relabel(d.cls, keep), "bbox": list(d.bbox), "score": d.score,
             "machine_class": d.cls}
            for d in res.defects
        ]
        review = record.reviews[-1]
        items.append({
            "inspection_id": record.id, "line_id": res.line_id, "frame_id": res.frame_id,
            "captured_at": res.as_json()["captured_at"],
            "image": f"images/{record.id}.png", "mask": f"masks/{record.id}.png",
            "label_verdict": verdict, "label_classes": keep,
            "machine_verdict": res.verdict,
            "machine_classes": sorted({d.cls for d in res.defects}),
            "action": review.action, "reviewer": review.reviewer,
            "reviewed_at": review.as_json()["created_at"], "comment": review.comment,
            "boxes": boxes, "models": res.models,
        })
    summary.items = len(items)
    (out / "classes.json").write_text(json.dumps(classes, indent=1))
    manifest = {"classes": classes, "ignore_index": IGNORE, "items": items,
                "skipped": summary.skipped}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    with (out / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        for item in items:
            row = dict(item)
            for key in ("label_classes", "machine_classes"):
                row[key] = ";".join(item[key])
            for key in ("boxes", "models"):
                row[key] = json.dumps(item[key], separators=(",", ":"))
            writer.writerow(row)
    return summary
