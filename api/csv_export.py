"""The defect log as CSV rows (``GET /api/v1/inspections.csv``), safe to open in a
spreadsheet."""

from __future__ import annotations

from typing import Any

from storage.repository import InspectionRecord

CSV_COLUMNS = [
    "inspection_id", "line_id", "frame_id", "captured_at", "verdict", "code", "defects",
    "classes", "max_score", "latency_ms", "recipe", "models", "reviewed", "review_action",
    "review_verdict", "review_classes", "reviewer", "reviewed_at",
]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet will not run as a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_row(record: InspectionRecord) -> list[Any]:
    """One CSV row of :data:`CSV_COLUMNS` for a logged inspection."""
    res = record.result
    js = record.as_json()
    review = record.reviews[-1] if record.reviews else None
    row = [
        record.id, res.line_id, res.frame_id, js["captured_at"], res.verdict, res.code,
        len(res.defects), ";".join(sorted({d.cls for d in res.defects})),
        round(max((d.score for d in res.defects), default=0.0), 4) if res.defects else "",
        round(res.latency_ms, 3), res.recipe,
        ";".join(f"{k}={v}" for k, v in sorted(res.models.items())),
        "true" if record.reviewed else "false",
        review.action if review else "", (review.verdict or "") if review else "",
        ";".join(review.classes or []) if review else "",
        review.reviewer if review else "", review.as_json()["created_at"] if review else "",
    ]
    return [_cell(v) for v in row]
