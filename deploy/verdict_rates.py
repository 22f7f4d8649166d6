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

from core.recipe import Recipe
from core.settings import Settings
from inference.pipeline import Inspector
from models.data import IMAGE_EXTS, read_gray_or_rgb

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


def with_models(recipe: Recipe, swaps: dict[str, Path], fp32: bool = False) -> Recipe:
    """``recipe`` with the named models read from other files (quantize kept: an INT8 recipe
    then reads the ``.int8.onnx`` beside the swapped file); ``fp32`` runs every model from
    its fp32 file, ``quantize: int8`` ignored (what quantisation changes on the line)."""
    models = [
        m.model_copy(update={"path": str(swaps[m.name])}) if m.name in swaps else m
        for m in recipe.models
    ]
    if fp32:
        models = [m.model_copy(update={"quantize": "none"}) for m in models]
    return recipe.model_copy(update={"models": models})


def image_files(roots: Sequence[Path]) -> list[tuple[Path, str, Path]]:
    """``(folder, folder label, image)`` for every image under ``roots``, sorted by folder
    then name; the label names the folder from its root's own name down (``x-sdd/red_iron``)."""
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if path.suffix.lower() in IMAGE_EXTS and path.is_file():
                label = (Path(root.resolve().name) / path.parent.relative_to(root)).as_posix()
                found.append((path.parent, label, path))
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
    files = image_files(roots)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTS)}) under "
                         f"{', '.join(str(r) for r in roots)}")
    inspector = Inspector(recipe, settings)
    rows: dict[Path, dict] = {
        folder: {"folder": label, "clean": is_clean(label), "frames": 0, "ng": 0,
                 "unreadable": 0}
        for folder, label, _ in files
    }
    channels = 1 if recipe.camera.pixel_format.startswith("Mono") else 3
    for i, (folder, _, path) in enumerate(files):
        row = rows[folder]
        try:
            image = read_gray_or_rgb(path, channels)  # as the camera delivers it
        except ValueError:
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


def _total(rows) -> dict:  # noqa: ANN001 - any iterable of folder rows
    frames = ng = 0
    for row in rows:
        frames, ng = frames + row["frames"], ng + row["ng"]
    return {"frames": frames, "ng": ng, "ng_rate": round(ng / frames, 4) if frames else None}
