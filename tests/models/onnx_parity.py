"""Shared by the architecture tests: export a classifier to ONNX and compare with PyTorch."""

from __future__ import annotations

import warnings
from pathlib import Path

import onnxruntime as ort
import torch


def classifier_export_parity(
    model: torch.nn.Module, path: Path, tile: int, num_classes: int, channels: int = 3
) -> list[float]:
    """Export ``model`` (dynamic batch, opset 17) to ``path``; run batches of 1 and 3 through
    onnxruntime, assert the logits shape and return the max abs difference per batch."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # legacy-exporter deprecation / constant-folding notes
        torch.onnx.export(
            model,
            torch.randn(1, channels, tile, tile),
            str(path),
            opset_version=17,
            dynamo=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
        )
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    diffs = []
    for n in (1, 3):  # one file, two batch sizes: the batch axis must be dynamic
        xb = torch.randn(n, channels, tile, tile)
        with torch.no_grad():
            ref = model(xb).numpy()
        (out,) = sess.run(["logits"], {"input": xb.numpy()})
        assert out.shape == (n, num_classes)
        diffs.append(float(abs(out - ref).max()))
    return diffs
