"""VerdictRule -> OK/NG."""

from __future__ import annotations

from core.recipe import VerdictRule
from core.result import Defect
from inference.verdict import decide, relevant_defects


def _d(cls: str) -> Defect:
    return Defect(cls=cls, score=0.9, bbox=(0, 0, 1, 1), area_px=1, model="m")


def test_default_rule_any_defect() -> None:
    rule = VerdictRule()
    assert decide([], rule) == "OK"
    assert decide([_d("scratch")], rule) == "NG"


def test_ng_classes_filter() -> None:
    rule = VerdictRule(ng_classes=["crack", "hole"])
    assert decide([_d("scratch"), _d("stain")], rule) == "OK"
    assert decide([_d("scratch"), _d("hole")], rule) == "NG"
    assert [d.cls for d in relevant_defects([_d("scratch"), _d("crack")], rule)] == ["crack"]


def test_min_defects() -> None:
    rule = VerdictRule(min_defects=3)
    assert decide([_d("a"), _d("b")], rule) == "OK"
    assert decide([_d("a"), _d("b"), _d("a")], rule) == "NG"
    rule = VerdictRule(ng_classes=["a"], min_defects=2)
    assert decide([_d("a"), _d("b"), _d("b")], rule) == "OK"
    assert decide([_d("a"), _d("a")], rule) == "NG"


def test_min_defects_zero_never_ng_without_defects() -> None:
    assert decide([], VerdictRule(min_defects=0)) == "OK"
    assert decide([_d("a")], VerdictRule(min_defects=0)) == "NG"
