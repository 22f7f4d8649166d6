"""A real ``export-reviews`` folder for the ``--extra-data`` tests: reviewed inspections in a
migrated SQLite log and image store, written by ``storage.review_export.export_reviews``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.result import Defect, InspectionResult
from storage.db import make_engine, migrate
from storage.images import ImageStore
from storage.repository import InspectionRepository
from storage.review_export import export_reviews
from tests.ui.ui_helpers import CLASSES, frame_and_mask

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def write_review_export(tmp: Path) -> tuple[Path, dict[str, int]]:
    """An export of five reviewed 96x128 frames: a confirmed pit, a pit corrected to ``crack``,
    a false reject, a confirmed OK, and an inclusion QA relabelled as "pit or scratch" (its
    pixels undetermined). Returns the folder and the inspection ids by name."""
    engine = make_engine(f"sqlite:///{tmp / 'log.db'}")
    migrate(engine)
    repo, store = InspectionRepository(engine), ImageStore(tmp / "images")
    ids = {}
    for k, (name, cls) in enumerate([("pit", "pit"), ("crack", "pit"), ("false_reject", "pit"),
                                     ("ok", None), ("undetermined", "inclusion")], start=1):
        image, mask, bbox = frame_and_mask(k, CLASSES.index(cls) if cls else 0)
        if cls is None:
            mask[:] = 0
        defects = [Defect(cls=cls, score=0.9, bbox=bbox, area_px=600, model="m")] if cls else []
        res = InspectionResult(line_id="line-x", frame_id=k,
                               captured_at=T0 + timedelta(seconds=k),
                               verdict="NG" if cls else "OK", defects=defects,
                               models={"m": "2.0.0"}, mask_classes=CLASSES, width=128, height=96)
        iid, _ = repo.save(res)
        repo.set_image_paths(iid, *store.save("line-x", k, res.captured_at, image, mask))
        ids[name] = iid
    repo.add_review(ids["pit"], "qa", "confirm", "NG", ["pit"])
    repo.add_review(ids["crack"], "qa", "correct", "NG", ["crack"])
    repo.add_review(ids["false_reject"], "qa", "false_reject", "OK", [])
    repo.add_review(ids["ok"], "qa", "confirm", "OK", [])
    repo.add_review(ids["undetermined"], "qa", "correct", "NG", ["pit", "scratch"])
    out = tmp / "export"
    export_reviews(repo, store, out)
    engine.dispose()
    return out, ids
