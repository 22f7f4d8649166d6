"""Rebuild the PyTorch network behind a zoo ONNX file, for ``lineinspect bench models``.

Architecture: the ``lineinspect.arch`` / ``lineinspect.variant`` metadata that
:func:`models.export.export_checkpoint` writes; else the checkpoint's config; else the file
stem when it names a registered architecture (the variant whose parameter shapes match the
ONNX initializers best). Number of classes and channels come from the artifact metadata.

Weights, in order of preference:

1. ``<checkpoint_dir>/<stem>.pt`` or ``<checkpoint_dir>/<stem>/best.pt`` (the training run's
   checkpoint: its ``ema`` state dict, which is what export writes to ONNX);
2. ONNX initializers copied into parameters/buffers of the same name and shape;
3. whatever is left keeps its random initialisation - same shapes, so the timing is the same
   (inference time does not depend on the weight values); the returned note says how many
   tensors came from where.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

VARIANTS = ("small", "full")


def _checkpoint(stem: str, checkpoint_dir: Path | None) -> Path | None:
    if checkpoint_dir is None:
        return None
    for cand in (checkpoint_dir / f"{stem}.pt", checkpoint_dir / stem / "best.pt"):
        if cand.is_file():
            return cand
    return None


def _initializers(path: Path) -> dict[str, Any]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def _matches(state: dict[str, Any], inits: dict[str, Any]) -> list[str]:
    return [
        k for k, v in state.items() if k in inits and tuple(inits[k].shape) == tuple(v.shape)
    ]


def build_torch_model(path: Path, checkpoint_dir: Path | None = None) -> tuple[Any, str]:
    """``(eval-mode nn.Module, note on where the weights came from)`` for the ONNX ``path``.

    Raises :class:`inference.backends.BackendUnavailable` when the architecture is unknown.
    """
    import torch

    from core.model_meta import ModelMeta, read_props
    from inference.backends import BackendUnavailable
    from models import arch as registry

    props = read_props(path)
    meta = ModelMeta.from_props(props, str(path))
    stem = path.stem
    arch_name = props.get("lineinspect.arch")
    variant = props.get("lineinspect.variant")
    ck_path = _checkpoint(stem, checkpoint_dir)
    ck: dict[str, Any] | None = None
    if ck_path is not None:
        ck = torch.load(ck_path, map_location="cpu", weights_only=False)
        cfg = ck.get("config", {}) if isinstance(ck, dict) else {}
        arch_name = arch_name or cfg.get("arch")
        variant = variant or cfg.get("variant")
    how = "lineinspect.arch metadata"
    if not arch_name and stem in registry.ARCHITECTURES:
        arch_name, how = stem, "file stem (no lineinspect.arch metadata)"
    if not arch_name or arch_name not in registry.ARCHITECTURES:
        raise BackendUnavailable(
            f"{path.name}: no lineinspect.arch metadata, no checkpoint in --checkpoint-dir and "
            "the file stem is not a registered architecture: cannot rebuild the PyTorch net"
        )
    k, c = len(meta.classes), meta.channels
    inits = _initializers(path) if ck is None else {}
    if variant:
        net = registry.build(arch_name, k, c, variant)
    else:  # pick the variant whose parameter shapes match the ONNX initializers best
        best = None
        for v in VARIANTS:
            cand = registry.build(arch_name, k, c, v)
            score = len(_matches(cand.state_dict(), inits))
            if best is None or score > best[0]:
                best = (score, v, cand)
        assert best is not None
        _, variant, net = best
        how += f", variant {variant} by initializer shapes"
    if ck is not None:
        state = ck.get("ema") or ck.get("state_dict") or ck.get("model") or ck
        net.load_state_dict(state)
        weights = f"weights from checkpoint {ck_path}"
    else:
        state = net.state_dict()
        names = _matches(state, inits)
        with torch.no_grad():
            for name in names:
                state[name].copy_(torch.from_numpy(inits[name].copy()))
        weights = (
            f"{len(names)}/{len(state)} tensors copied from ONNX initializers by name; the rest "
            "keep random values of the same shapes (timing does not depend on values)"
        )
    return net.eval(), f"{arch_name}/{variant} ({how}); {weights}"
