"""inference.merge: detections of several models -> one defect per region, one taxonomy."""

from __future__ import annotations

import numpy as np
import pytest

from core.recipe import ModelSpec, Recipe
from core.result import Defect
from inference.merge import Taxonomy, group_findings, merge_findings
from inference.postprocess import Finding


def finding(model: str, cls: str, score: float, bbox: tuple[int, int, int, int]) -> Finding:
    x, y, w, h = bbox
    return Finding(
        Defect(cls=cls, score=score, bbox=bbox, area_px=w * h, model=model),
        np.ones((h, w), dtype=bool),
    )


def taxonomy(weights: dict[str, float] | None = None) -> Taxonomy:
    weights = weights or {}
    specs = [
        ModelSpec(name="seg", path="seg.onnx", vote_weight=weights.get("seg", 1.0),
                  class_map={"inclusion": "inclusion", "scratches": "scratch"}),
        ModelSpec(name="neu", path="neu.onnx", class_map={"inclusion": "inclusion",
                                                          "rolled-in_scale": "scale"}),
        ModelSpec(name="xsdd", path="xsdd.onnx", class_map={"slag_inclusion": "inclusion",
                                                            "red_iron": "scale"}),
    ]
    recipe = Recipe(name="t", models=specs, classes=["inclusion", "scale", "scratch"])
    classes = {
        "seg": ["background", "inclusion", "scratches"],
        "neu": ["inclusion", "rolled-in_scale"],
        "xsdd": ["red_iron", "slag_inclusion"],
    }
    return Taxonomy.build(recipe, [(s, classes[s.name]) for s in specs])


def test_grouping_joins_overlapping_and_near_boxes_transitively() -> None:
    fs = [
        finding("seg", "inclusion", 0.9, (100, 100, 10, 10)),
        finding("seg", "inclusion", 0.8, (115, 100, 10, 10)),  # 5 px right of the first
        finding("seg", "inclusion", 0.8, (130, 100, 10, 10)),  # 5 px right of the second
        finding("seg", "inclusion", 0.7, (400, 400, 10, 10)),  # far away
    ]
    assert sorted(map(sorted, group_findings(fs, gap_px=8))) == [[0, 1, 2], [3]]
    assert sorted(map(sorted, group_findings(fs, gap_px=4))) == [[0], [1], [2], [3]]


def test_vote_picks_the_class_most_models_back_and_keeps_every_opinion() -> None:
    fs = [
        finding("seg", "inclusion", 0.80, (10, 10, 20, 40)),
        finding("seg", "inclusion", 0.70, (12, 55, 10, 10)),  # a fragment of the same spot
        finding("neu", "inclusion", 0.50, (10, 10, 20, 40)),
        finding("xsdd", "red_iron", 0.95, (10, 10, 20, 40)),
    ]
    [merged] = merge_findings(fs, taxonomy(), gap_px=8, locators={"seg"})
    d = merged.defect
    # inclusion: seg 0.80 (its best, once) + neu 0.50 = 1.30 > scale: xsdd 0.95
    assert (d.cls, d.score, d.model) == ("inclusion", 0.80, "seg")
    assert d.bbox == (10, 10, 20, 55) and d.area_px == 20 * 40 + 10 * 10
    assert [(e["model"], e["class"], e["mapped"]) for e in d.evidence] == [
        ("xsdd", "red_iron", "scale"),
        ("seg", "inclusion", "inclusion"),
        ("seg", "inclusion", "inclusion"),
        ("neu", "inclusion", "inclusion"),
    ]
    # half a vote for the segmenter: scale 0.95 > inclusion 0.40 + 0.50
    [merged] = merge_findings(fs, taxonomy({"seg": 0.5}), gap_px=8, locators={"seg"})
    assert (merged.defect.cls, merged.defect.model) == ("scale", "xsdd")
    assert merged.defect.bbox == (10, 10, 20, 55)  # geometry still the segmenter's


def test_geometry_without_a_locator_is_the_union_and_mask_pixels_match() -> None:
    a = finding("neu", "inclusion", 0.9, (0, 0, 10, 10))
    b = finding("xsdd", "slag_inclusion", 0.7, (5, 5, 10, 10))
    [m] = merge_findings([a, b], taxonomy(), gap_px=0, locators={"seg"})
    assert m.defect.bbox == (0, 0, 15, 15) and m.defect.area_px == 100 + 100 - 25
    assert m.region.shape == (15, 15) and int(m.region.sum()) == m.defect.area_px


def test_unmapped_or_unknown_classes_are_refused() -> None:
    spec = ModelSpec(name="neu", path="neu.onnx", class_map={"inclusion": "inclusion"})
    recipe = Recipe(name="t", models=[spec], classes=["inclusion"])
    with pytest.raises(ValueError, match="not mapped"):
        Taxonomy.build(recipe, [(spec, ["inclusion", "crazing"])])
    spec = ModelSpec(name="neu", path="neu.onnx", class_map={"inclusion": "inclusion",
                                                             "pits": "inclusion"})
    recipe = Recipe(name="t", models=[spec], classes=["inclusion"])
    with pytest.raises(ValueError, match="does not have"):
        Taxonomy.build(recipe, [(spec, ["inclusion"])])
    with pytest.raises(ValueError, match="needs the recipe's classes"):
        Recipe(name="t", models=[spec])
