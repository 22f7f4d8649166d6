"""What a recipe promotion records and checks (issue 21.3), shared by the store
(``storage.promotions``) and the API/CLI that promote.

* :class:`RecipeSnapshot` - a recipe as it was switched to: its name, where it came from,
  the SHA-256 and full text of its YAML (the line runs that text, not whatever the file says
  later) and each model's name, artifact version, file and file SHA-256.
* :class:`ReplayEvidence` - the replay report (``lineinspect replay``) a promotion rests on:
  its path, SHA-256 (of its JSON with sorted keys: the same whether the CLI read the file or
  the API got it in the body) and summary figures. :func:`replay_evidence` refuses a report made for
  another recipe or other model versions.
* :func:`line_changes` - a promotion switches how frames are inspected, not the line: the
  camera, the verdict's staleness, the stream cap and the backlog limit must stay.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core.model_meta import read_props
from core.recipe import Recipe, parse_recipe, recipe_path
from core.settings import Settings

#: Recipe fields that belong to the line (acquisition, PLC answer, stream), not the models.
LINE_FIELDS = ("camera", "stale_after_ms", "stream_maxlen", "max_backlog_ms")


class PromotionRefused(Exception):
    """A promote, rollback or drift reset that must not happen; nothing was changed.

    ``status`` is the HTTP status the API answers (404 unknown, 409 conflict, 422 invalid)."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        """``error``: a short code (``not_found``, ``no_previous_recipe``, ...)."""
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_files(recipe: Recipe) -> list[dict[str, str]]:
    """Name, artifact version (ONNX metadata), path and SHA-256 of each model file the recipe
    runs (the screen included); FileNotFoundError when one is missing."""
    specs = list(recipe.models) + ([recipe.screen.model] if recipe.screen else [])
    out = []
    for spec in specs:
        path = spec.resolved_path()
        if not path.is_file():
            raise FileNotFoundError(f"model {spec.name}: {path} not found")
        version = read_props(path).get("lineinspect.version", "")
        out.append({"name": spec.name, "version": version, "path": str(path),
                    "sha256": file_sha256(path)})
    return out


@dataclass(frozen=True)
class RecipeSnapshot:
    """A recipe as switched to: name, source, YAML SHA-256 and text, model files."""

    name: str
    source: str
    sha256: str
    content: str
    models: list[dict[str, str]] = field(default_factory=list)

    def recipe(self) -> Recipe:
        """The recipe this snapshot's text defines."""
        return parse_recipe(self.content)

    def versions(self) -> dict[str, str]:
        """Model name -> artifact version."""
        return {m["name"]: m["version"] for m in self.models}

    def as_json(self, with_content: bool = False) -> dict[str, Any]:
        """JSON form (the YAML text only with ``with_content``)."""
        out = asdict(self)
        if not with_content:
            out.pop("content")
        return out


def snapshot_text(content: str, source: str, with_models: bool = True) -> RecipeSnapshot:
    """Snapshot of the recipe YAML ``content`` (read from ``source``); ``with_models``: with
    the model files' versions and SHA-256 (PromotionRefused 422 when the text is no valid
    recipe or a model file is missing or unreadable)."""
    try:
        recipe = parse_recipe(content)
    except (ValueError, yaml.YAMLError) as exc:
        raise PromotionRefused(422, "recipe_invalid", f"recipe {source}: {exc}") from None
    try:
        models = model_files(recipe) if with_models else []
    except Exception as exc:  # noqa: BLE001 - missing file, not an ONNX file: refuse clearly
        raise PromotionRefused(422, "models_unavailable",
                               f"recipe {recipe.name}: {exc}") from None
    sha = hashlib.sha256(content.encode("utf-8")).hexdigest()
    return RecipeSnapshot(recipe.name, source, sha, content, models)


def snapshot_file(name_or_path: str, settings: Settings | None = None) -> RecipeSnapshot:
    """Snapshot of a recipe by name (in ``recipes_dir``) or path (PromotionRefused 404 when
    there is no such recipe, 422 when it is invalid)."""
    try:
        path = recipe_path(name_or_path, settings)
        content = path.read_text()
    except (FileNotFoundError, IsADirectoryError):
        raise PromotionRefused(404, "not_found", f"recipe {name_or_path!r} not found") from None
    return snapshot_text(content, str(path.resolve()))


def line_changes(live: Recipe, candidate: Recipe) -> list[str]:
    """The :data:`LINE_FIELDS` in which ``candidate`` differs from ``live``."""
    return [f for f in LINE_FIELDS if getattr(live, f) != getattr(candidate, f)]


@dataclass(frozen=True)
class ReplayEvidence:
    """The replay report a promotion rests on."""

    path: str
    sha256: str
    summary: dict[str, Any]


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    """The figures of a replay report worth keeping with the decision."""
    return {
        "query": report.get("query"),
        "replayed": report.get("replayed"),
        "skipped": len(report.get("skipped") or []),
        "reviewed": report.get("reviewed"),
        "flipped": len(report.get("flipped") or []),
        "agreement_with_live": report.get("agreement_with_live"),
        "candidate_agreement_with_qa": report.get("candidate_agreement_with_qa"),
        "live_agreement_with_qa": report.get("live_agreement_with_qa"),
        "confusion_vs_live": report.get("confusion_vs_live"),
        "latency_ms_p95": (report.get("latency_ms") or {}).get("p95"),
    }


def replay_evidence(raw: bytes, path: str, candidate: RecipeSnapshot) -> ReplayEvidence:
    """Check that the replay report ``raw`` (read from ``path``) was made for ``candidate``
    (same recipe name and model versions) and replayed frames; its evidence, or
    PromotionRefused 422."""
    try:
        report = json.loads(raw)
        made_for = report["candidate"]
        name, models = made_for["recipe"], dict(made_for["models"])
    except (ValueError, KeyError, TypeError) as exc:
        raise PromotionRefused(422, "report_invalid",
                               f"{path} is not a replay report.json ({exc!r})") from None
    if name != candidate.name or models != candidate.versions():
        raise PromotionRefused(
            422, "report_mismatch",
            f"{path} is a replay of {name} {models}, not of {candidate.name} "
            f"{candidate.versions()}: replay the candidate first",
        )
    if not report.get("replayed"):
        raise PromotionRefused(422, "report_empty", f"{path} replayed no frame")
    canonical = json.dumps(report, sort_keys=True).encode("utf-8")  # same from file or body
    return ReplayEvidence(path, hashlib.sha256(canonical).hexdigest(), _summary(report))
