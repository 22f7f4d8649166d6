"""One defect, one record, one taxonomy: the models' detections -> the frame's defects.

A recipe that declares its product's defect classes (``Recipe.classes``) maps every model's
defect classes onto them (``ModelSpec.class_map``); :class:`Taxonomy` holds that mapping and
refuses a recipe that leaves a model class unmapped. :func:`merge_findings` then turns the
detections of all models into defects:

* **grouping** - detections whose boxes are at most ``gap_px`` apart (overlapping ones
  included) belong to one region (union-find, so chains of fragments join too);
* **class** - every model votes for the product class its detections in the region map to,
  with its best score there times its ``vote_weight``; the class with the largest sum wins
  (ties: the taxonomy's order);
* **score** - the best score of a detection of the winning class; ``model`` is that
  detection's model;
* **geometry** - box, pixels and area are the union of the locating detections: those of
  the segmenters when the region has any (they know where a defect is), else all;
* **evidence** - every detection of the region (model, its own class, the product class it
  maps to, score, box), so QA can see what each model said.

Without declared classes the taxonomy is the identity (each model's classes as they are)
and the merge still makes one record per region.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from core.recipe import ModelSpec, Recipe
from core.result import Defect
from inference.postprocess import Finding, defect_classes


@dataclass(frozen=True)
class Taxonomy:
    """The product's defect classes and every model's mapping onto them."""

    #: product defect classes in the recipe's order (mask index = position + 1)
    classes: tuple[str, ...]
    #: model name -> model class -> product class
    maps: dict[str, dict[str, str]]
    #: model name -> vote weight
    weights: dict[str, float]

    @classmethod
    def build(cls, recipe: Recipe, models: Iterable[tuple[ModelSpec, Sequence[str]]]) -> Taxonomy:
        """The taxonomy of ``recipe`` for its loaded ``models`` ((spec, model classes) pairs,
        screen included when its defects are reported). Raises ValueError when the recipe
        declares classes but leaves a model's defect class unmapped."""
        maps: dict[str, dict[str, str]] = {}
        weights: dict[str, float] = {}
        identity: list[str] = []
        for spec, model_classes in models:
            own = defect_classes(model_classes, spec)
            weights[spec.name] = spec.vote_weight
            if recipe.classes:
                missing = [c for c in own if c not in spec.class_map]
                if missing:
                    raise ValueError(
                        f"model {spec.name}: classes {missing} are not mapped onto the "
                        f"recipe's classes {recipe.classes} (class_map)"
                    )
                extra = sorted(set(spec.class_map) - set(model_classes))
                if extra:
                    raise ValueError(f"model {spec.name}: class_map names {extra}, which the "
                                     f"model does not have ({list(model_classes)})")
                maps[spec.name] = {c: spec.class_map[c] for c in own}
            else:
                maps[spec.name] = {c: c for c in own}
                identity += [c for c in own if c not in identity]
        classes = tuple(recipe.classes) if recipe.classes else tuple(identity)
        if len(classes) > 255:
            raise ValueError(f"{len(classes)} defect classes do not fit an 8-bit mask")
        return cls(classes=classes, maps=maps, weights=weights)

    @property
    def mask_classes(self) -> list[str]:
        """``background`` then the product classes: the values of the frame mask."""
        return ["background", *self.classes]

    def product_class(self, model: str, cls: str) -> str:
        """The product class a model's class maps to (unknown pairs stay as they are)."""
        return self.maps.get(model, {}).get(cls, cls)


def _near(a: tuple[int, int, int, int], b: tuple[int, int, int, int], gap: int) -> bool:
    """Boxes ``[x, y, w, h]`` overlap or are at most ``gap`` pixels apart."""
    return (
        a[0] <= b[0] + b[2] + gap
        and b[0] <= a[0] + a[2] + gap
        and a[1] <= b[1] + b[3] + gap
        and b[1] <= a[1] + a[3] + gap
    )


def group_findings(findings: Sequence[Finding], gap_px: int) -> list[list[int]]:
    """Indices of ``findings`` grouped by region (boxes <= ``gap_px`` apart, transitively)."""
    parent = list(range(len(findings)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    boxes = [f.defect.bbox for f in findings]
    for i in range(len(findings)):
        for j in range(i + 1, len(findings)):
            if _near(boxes[i], boxes[j], gap_px):
                parent[root(j)] = root(i)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(findings)):
        groups[root(i)].append(i)
    return list(groups.values())


def _union(members: Sequence[Finding]) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """Union box and the bool pixel mask of ``members`` inside it."""
    x0 = min(f.defect.bbox[0] for f in members)
    y0 = min(f.defect.bbox[1] for f in members)
    x1 = max(f.defect.bbox[0] + f.defect.bbox[2] for f in members)
    y1 = max(f.defect.bbox[1] + f.defect.bbox[3] for f in members)
    region = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for f in members:
        x, y, w, h = f.defect.bbox
        region[y - y0 : y - y0 + h, x - x0 : x - x0 + w] |= f.region
    return (x0, y0, x1 - x0, y1 - y0), region


def _evidence(f: Finding, taxonomy: Taxonomy) -> dict[str, object]:
    d = f.defect
    return {
        "model": d.model, "class": d.cls, "mapped": taxonomy.product_class(d.model, d.cls),
        "score": round(float(d.score), 4), "bbox": list(d.bbox),
    }


def merge_group(members: Sequence[Finding], taxonomy: Taxonomy, locators: set[str]) -> Finding:
    """One defect from the detections of one region (see the module docstring)."""
    best: dict[tuple[str, str], float] = {}  # (model, product class) -> best score
    for f in members:
        key = (f.defect.model, taxonomy.product_class(f.defect.model, f.defect.cls))
        best[key] = max(best.get(key, 0.0), f.defect.score)
    votes: dict[str, float] = defaultdict(float)
    for (model, cls), score in best.items():
        votes[cls] += taxonomy.weights.get(model, 1.0) * score
    order = {c: i for i, c in enumerate(taxonomy.classes)}
    winner = min(votes, key=lambda c: (-votes[c], order.get(c, len(order)), c))
    top = max(
        (f for f in members if taxonomy.product_class(f.defect.model, f.defect.cls) == winner),
        key=lambda f: f.defect.score,
    )
    located = [f for f in members if f.defect.model in locators] or list(members)
    bbox, region = _union(located)
    ranked = sorted(members, key=lambda f: -f.defect.score)
    defect = Defect(
        cls=winner,
        score=float(top.defect.score),
        bbox=bbox,
        area_px=int(np.count_nonzero(region)),
        model=top.defect.model,
        evidence=[_evidence(f, taxonomy) for f in ranked],
    )
    return Finding(defect, region)


def merge_findings(
    findings: Sequence[Finding], taxonomy: Taxonomy, gap_px: int, locators: set[str]
) -> list[Finding]:
    """The frame's defects: one per region, in the product taxonomy, highest score first.

    ``locators``: names of the models whose pixels define a defect's geometry (segmenters).
    """
    merged = [
        merge_group([findings[i] for i in group], taxonomy, locators)
        for group in group_findings(findings, gap_px)
    ]
    merged.sort(key=lambda f: -f.defect.score)
    return merged
