"""Architecture registry: one module per paper, each exposing ``build(...) -> nn.Module``.

Every builder has the signature ``build(num_classes, in_channels=3, variant="full")``.
Classifiers return logits ``[N, C]``; segmenters return logits ``[N, C, H, W]`` at the input
resolution. ``variant`` selects the paper's full configuration (``"full"``) or a narrower
one that trains on a 2-core CPU (``"small"``); the model card names the released one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

#: name -> (module, task)
ARCHITECTURES: dict[str, tuple[str, str]] = {
    "aludef": ("models.arch.aludef", "classify"),
    "mm": ("models.arch.mm", "classify"),
    "esg_convnext": ("models.arch.esg_convnext", "classify"),
    "sme_deeplabv3plus": ("models.arch.sme_deeplabv3plus", "segment"),
    "alexnet_spp": ("models.arch.alexnet_spp", "classify"),
}


def task_of(arch: str) -> str:
    """Return ``"classify"`` or ``"segment"`` for a registered architecture."""
    return ARCHITECTURES[arch][1]


def build(arch: str, num_classes: int, in_channels: int = 3, variant: str = "full") -> Any:
    """Build a registered architecture by name."""
    if arch not in ARCHITECTURES:
        raise KeyError(f"unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    module = importlib.import_module(ARCHITECTURES[arch][0])
    builder: Callable[..., Any] = module.build
    return builder(num_classes=num_classes, in_channels=in_channels, variant=variant)
