"""The recipe's :class:`~core.recipe.VerdictRule` applied to a frame's defects."""

from __future__ import annotations

from collections.abc import Sequence

from core.recipe import VerdictRule
from core.result import Defect


def relevant_defects(defects: Sequence[Defect], rule: VerdictRule) -> list[Defect]:
    """The defects that count towards NG: those of ``rule.ng_classes`` (all when empty)."""
    if not rule.ng_classes:
        return list(defects)
    ng = set(rule.ng_classes)
    return [d for d in defects if d.cls in ng]


def decide(defects: Sequence[Defect], rule: VerdictRule) -> str:
    """``"NG"`` when at least ``rule.min_defects`` relevant defects were found, else ``"OK"``.

    ``min_defects`` below 1 is treated as 1: a frame without any defect is never NG.
    """
    needed = max(1, rule.min_defects)
    return "NG" if len(relevant_defects(defects, rule)) >= needed else "OK"
