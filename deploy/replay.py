"""``lineinspect replay``: re-inspect logged frames with a candidate recipe and report (issue 21).

The frames are the inspection log's retained images (NG frames, and OK ones with
``LINEINSPECT_RETAIN_OK_IMAGES``), chosen by line and time range or as every QA-reviewed
inspection (``--reviewed``). Each is inspected by the candidate recipe exactly as the service
would (:class:`inference.pipeline.Inspector`) and compared with

* the **live** verdict and classes logged for it, and
* the **QA label** where the frame was reviewed (its latest review, read as
  ``lineinspect export-reviews`` reads it: ``confirm`` keeps the machine's verdict,
  ``correct`` takes QA's, ``false_reject`` is OK).

The report (``report.json`` + ``report.html`` in ``--out``) holds: counts (replayed, skipped
because the image is gone), the confusion of candidate against live verdicts and against QA,
the live and candidate agreement with QA, per-class changes (frames holding the class live and
with the candidate, gained, lost), every frame whose verdict flips, and the candidate's
inspection time (mean, p50, p95, max in ms). Frames whose image was not retained are listed as
skipped: a replay can only judge what was kept.
"""

from __future__ import annotations

import html
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.recipe import Recipe
from core.settings import Settings
from core.timeutil import iso_utc
from inference.pipeline import Inspector
from storage.images import ImageStore
from storage.repository import InspectionRecord, InspectionRepository
from storage.review_export import _label as qa_label


@dataclass
class ReplayQuery:
    """Which logged inspections to replay."""

    line_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    reviewed: bool = False
    limit: int = 10_000


@dataclass
class _Tally:
    vs_live: Counter[tuple[str, str]] = field(default_factory=Counter)
    vs_qa: Counter[tuple[str, str]] = field(default_factory=Counter)
    live_vs_qa: Counter[tuple[str, str]] = field(default_factory=Counter)
    classes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    flipped: list[dict[str, Any]] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)


def _records(repo: InspectionRepository, q: ReplayQuery) -> Iterator[InspectionRecord]:
    cursor, n = None, 0
    while n < q.limit:
        items, cursor = repo.query(line_id=q.line_id, since=q.since, until=q.until,
                                   reviewed=True if q.reviewed else None, limit=200,
                                   cursor=cursor)
        for record in items[: q.limit - n]:
            n += 1
            yield record
        if cursor is None:
            return


def _confusion(c: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (row, col), n in sorted(c.items()):
        out.setdefault(row, {})[col] = n
    return out


def _agreement(c: Counter[tuple[str, str]]) -> float | None:
    total = sum(c.values())
    return None if not total else sum(n for (a, b), n in c.items() if a == b) / total


def replay(
    repo: InspectionRepository, store: ImageStore, candidate: Recipe, query: ReplayQuery,
    settings: Settings | None = None, inspector: Inspector | None = None,
) -> dict[str, Any]:
    """Re-inspect the inspections of ``query`` with ``candidate``; return the report."""
    inspector = inspector or Inspector(candidate, settings)
    t = _Tally()
    for record in _records(repo, query):
        live = record.result
        image = store.load_image(record.image_path)
        if image is None:
            t.skipped.append({"inspection_id": record.id, "frame_id": live.frame_id,
                              "reason": "image not retained"})
            continue
        t0 = time.perf_counter()
        cand = inspector.inspect(image, live.line_id, live.frame_id, live.captured_at)
        t.latency_ms.append((time.perf_counter() - t0) * 1000.0)
        t.vs_live[(live.verdict, cand.verdict)] += 1
        qa = qa_label(record) if record.reviews else None
        if qa is not None:
            t.vs_qa[(qa[0], cand.verdict)] += 1
            t.live_vs_qa[(qa[0], live.verdict)] += 1
        live_cls = {d.cls for d in live.defects}
        cand_cls = {d.cls for d in cand.defects}
        for cls in live_cls | cand_cls:
            c = t.classes[cls]
            c["live"] += cls in live_cls
            c["candidate"] += cls in cand_cls
            c["gained"] += cls in cand_cls - live_cls
            c["lost"] += cls in live_cls - cand_cls
        if live.verdict != cand.verdict:
            t.flipped.append({
                "inspection_id": record.id, "line_id": live.line_id, "frame_id": live.frame_id,
                "captured_at": iso_utc(live.captured_at), "live": live.verdict,
                "candidate": cand.verdict, "qa": qa[0] if qa else None,
                "live_classes": sorted(live_cls), "candidate_classes": sorted(cand_cls),
            })
    lat = np.asarray(t.latency_ms or [0.0])
    return {
        "candidate": {"recipe": candidate.name, "models": dict(inspector.model_versions)},
        "query": {"line_id": query.line_id, "reviewed": query.reviewed,
                  "since": iso_utc(query.since) if query.since else None,
                  "until": iso_utc(query.until) if query.until else None},
        "replayed": len(t.latency_ms),
        "skipped": t.skipped,
        "confusion_vs_live": _confusion(t.vs_live),
        "confusion_vs_qa": _confusion(t.vs_qa),
        "live_confusion_vs_qa": _confusion(t.live_vs_qa),
        "reviewed": sum(t.vs_qa.values()),
        "agreement_with_live": _agreement(t.vs_live),
        "candidate_agreement_with_qa": _agreement(t.vs_qa),
        "live_agreement_with_qa": _agreement(t.live_vs_qa),
        "classes": {k: dict(v) for k, v in sorted(t.classes.items())},
        "flipped": t.flipped,
        "latency_ms": {"mean": float(lat.mean()), "p50": float(np.percentile(lat, 50)),
                       "p95": float(np.percentile(lat, 95)), "max": float(lat.max())},
    }


def _table(title: str, rows: list[list[Any]], head: list[str]) -> str:
    cells = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in r)
        + "</tr>" for r in rows
    )
    return f"<h2>{html.escape(title)}</h2><table><tr>{cells}</tr>{body}</table>"


def _matrix(title: str, m: dict[str, dict[str, int]], rows: str) -> str:
    cols = sorted({c for r in m.values() for c in r})
    return _table(title, [[r, *(m[r].get(c, 0) for c in cols)] for r in sorted(m)],
                  [f"{rows} \\ candidate", *cols])


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page."""
    pct = lambda v: "-" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    parts = [
        "<!doctype html><meta charset=utf-8><title>lineinspect replay</title>",
        "<style>body{font-family:sans-serif}table{border-collapse:collapse;margin:4px 0}"
        "td,th{border:1px solid #999;padding:2px 6px;text-align:right}</style>",
        f"<h1>Replay of {html.escape(report['candidate']['recipe'])}</h1>",
        _table("Summary", [
            ["replayed", report["replayed"]], ["skipped (image gone)", len(report["skipped"])],
            ["reviewed by QA", report["reviewed"]],
            ["agreement with live", pct(report["agreement_with_live"])],
            ["candidate agreement with QA", pct(report["candidate_agreement_with_qa"])],
            ["live agreement with QA", pct(report["live_agreement_with_qa"])],
            ["candidate ms mean / p50 / p95 / max",
             " / ".join(f"{report['latency_ms'][k]:.1f}" for k in ("mean", "p50", "p95", "max"))],
            ["models", json.dumps(report["candidate"]["models"])],
        ], ["", ""]),
        _matrix("Candidate vs live verdicts", report["confusion_vs_live"], "live"),
        _matrix("Candidate vs QA", report["confusion_vs_qa"], "QA"),
        _matrix("Live vs QA", report["live_confusion_vs_qa"], "QA"),
        _table("Per class (frames)", [[k, v.get("live", 0), v.get("candidate", 0),
                                       v.get("gained", 0), v.get("lost", 0)]
                                      for k, v in report["classes"].items()],
               ["class", "live", "candidate", "gained", "lost"]),
        _table("Frames that flip", [[f["inspection_id"], f["line_id"], f["frame_id"],
                                     f["captured_at"], f["live"], f["candidate"], f["qa"],
                                     ", ".join(f["live_classes"]),
                                     ", ".join(f["candidate_classes"])]
                                    for f in report["flipped"]],
               ["inspection", "line", "frame", "captured", "live", "candidate", "QA",
                "live classes", "candidate classes"]),
    ]
    return "\n".join(parts) + "\n"


def write_report(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``out``; return both paths."""
    out.mkdir(parents=True, exist_ok=True)
    js, page = out / "report.json", out / "report.html"
    js.write_text(json.dumps(report, indent=2))
    page.write_text(render_html(report))
    return js, page
