"""How often a recipe says NG on labelled folders of frames: the line's view of a model.

A segmenter's mIoU is measured on its own data set's classes; on the line it is also the
detector that gates the classifiers, so a release must not call fewer defective frames NG.
``verdict_rates`` runs a recipe (optionally with some models' files swapped) over folders of
images and counts the NG verdicts per folder. A folder named ``clean``, ``defect_free``,
``ok`` or ``good`` (at or below a root) holds defect-free frames; every other image is
expected NG.

Layout: each ``--data`` folder holds images, or sub-folders of images (a data set's class
folders, e.g. X-SDD or NEU-CLS); each folder of images is one row, named from the root's own
name down, and it counts as clean when that name holds one of those parts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import cv2

from core.recipe import Recipe
from core.settings import Settings
from inference.pipeline import Inspector

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
#: folder names that hold defect-free frames (X-SDD-style ``clean``, the aluminium tiles'
#: ``defect_free``, and the usual ``ok`` / ``good``)
CLEAN_FOLDERS = frozenset({"clean", "defect_free", "ok", "good"})


def is_clean(label: str) -> bool:
    """Whether a folder label (``x-sdd/red_iron``, ``tiles/defect_free``) names clean frames."""
    return not CLEAN_FOLDERS.isdisjoint(Path(label).parts)


def parse_swaps(items: Sequence[str], recipe: Recipe) -> dict[str, Path]:
    """``NAME=PATH`` items as {model name: ONNX path}; ValueError names the bad item."""
    names = {m.name for m in recipe.models}
    swaps: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--model {item!r}: expected NAME=PATH")
        if name not in names:
            raise ValueError(f"--model {item!r}: recipe {recipe.name} has no model {name!r} "
                             f"(it has {', '.join(sorted(names))})")
        if not Path(path).is_file():
            raise ValueError(f"--model {item!r}: no file {path}")
        swaps[name] = Path(path).resolve()
    return swaps


def with_models(recipe: Recipe, swaps: dict[str, Path]) -> Recipe:
    """``recipe`` with the named models read from other files (quantize kept: an INT8 recipe
    then reads the ``.int8.onnx`` beside the swapped file)."""
    models = [
        m.model_copy(update={"path": str(swaps[m.name])}) if m.name in swaps else m
        for m in recipe.models
    ]
    return recipe.model_copy(update={"models": models})


def image_folders(roots: Sequence[Path]) -> list[Path]:
    """Every folder under ``roots`` (roots included) that directly holds images, sorted."""
    found: set[Path] = set()
    for root in roots:
        for path in root.rglob("*"):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                found.add(path.parent)
    return sorted(found)


def verdict_rates(
    recipe: Recipe,
    roots: Sequence[Path],
    settings: Settings,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """NG counts per image folder under ``roots`` and the totals (see the module docstring).

    Images are read as the recipe's camera delivers them (gray for ``Mono*`` pixel formats,
    else RGB); files that do not decode are counted as ``unreadable``, not inspected. Raises
    ValueError when the roots hold no image.
    """
    folders = image_folders(roots)
    files = [
        (folder, path)
        for folder in folders
        for path in sorted(folder.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under "
                         f"{', '.join(str(r) for r in roots)}")
    inspector = Inspector(recipe, settings)
    labels = {f: _label(f, roots) for f in folders}
    rows: dict[Path, dict] = {
        f: {"folder": label, "clean": is_clean(label), "frames": 0, "ng": 0, "unreadable": 0}
        for f, label in labels.items()
    }
    gray = recipe.camera.pixel_format.startswith("Mono")
    for i, (folder, path) in enumerate(files):
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
        if image is not None and not gray:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)  # as the camera delivers colour
        row = rows[folder]
        if image is None:
            row["unreadable"] += 1
        else:
            result = inspector.inspect(image, "verdict-rates", i + 1, datetime.now(UTC))
            row["frames"] += 1
            row["ng"] += result.verdict == "NG"
        if progress:
            progress(i + 1, len(files))
    for row in rows.values():
        row["ng_rate"] = round(row["ng"] / row["frames"], 4) if row["frames"] else None
    return {
        "recipe": recipe.name,
        "models": {m.name: m.path for m in recipe.models},
        "folders": list(rows.values()),
        "defective": _total(r for r in rows.values() if not r["clean"]),
        "clean": _total(r for r in rows.values() if r["clean"]),
    }


def _label(folder: Path, roots: Sequence[Path]) -> str:
    """``folder`` named from its ``--data`` root's name down (``x-sdd/red_iron``)."""
    for root in roots:
        if folder.is_relative_to(root):
            return (Path(root.resolve().name) / folder.relative_to(root)).as_posix()
    return str(folder)


def _total(rows) -> dict:  # noqa: ANN001 - any iterable of folder rows
    frames = ng = 0
    for row in rows:
        frames, ng = frames + row["frames"], ng + row["ng"]
    return {"frames": frames, "ng": ng, "ng_rate": round(ng / frames, 4) if frames else None}
