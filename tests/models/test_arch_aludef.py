"""Tests for AluDef-ClassNet (``models.arch.aludef``)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from models.arch import aludef  # noqa: E402
from tests.models.onnx_parity import classifier_export_parity  # noqa: E402

TILE = 224
NUM_CLASSES = 7


def _realistic(model: torch.nn.Module, size: int, seed: int = 0) -> torch.nn.Module:
    """Give a fresh model non-trivial weights and BN statistics, return it in eval mode.

    Zero-initialised residual gammas, a zero attention conv and N(0, 0.01) FC weights would make
    the parity check trivially small, so they are redrawn and BN running statistics are set from
    one training-mode batch (keeping activations at a realistic scale).
    """
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data = torch.rand(m.weight.shape, generator=g) * 0.5 + 0.5
            m.bias.data = torch.randn(m.bias.shape, generator=g) * 0.1
            m.reset_running_stats()
            m.momentum = None
        elif isinstance(m, torch.nn.Linear):
            m.weight.data = torch.randn(m.weight.shape, generator=g) / m.in_features**0.5
        elif isinstance(m, aludef.ConvSigmoidAttention):
            m.conv.weight.data = torch.randn(m.conv.weight.shape, generator=g)
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 3, size, size, generator=g))
    return model.eval()


@pytest.mark.parametrize("variant", ["full", "small"])
def test_output_shape(variant: str) -> None:
    model = aludef.build(NUM_CLASSES, in_channels=3, variant=variant).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, TILE, TILE))
    assert out.shape == (2, NUM_CLASSES)
    assert out.dtype == torch.float32


def test_small_trains() -> None:
    model = aludef.build(NUM_CLASSES, variant="small").train()
    out = model(torch.randn(2, 3, TILE, TILE))
    out.sum().backward()
    assert model.fusion.beta.grad is not None
    assert model.attention.conv.weight.grad is not None


def test_in_channels_and_num_classes() -> None:
    model = aludef.build(2, in_channels=1, variant="small").eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, TILE, TILE)).shape == (2, 2)


def test_unknown_variant() -> None:
    with pytest.raises(ValueError):
        aludef.build(NUM_CLASSES, variant="tiny")


@pytest.mark.parametrize(
    ("variant", "low", "high"),
    [
        # Measured 23.52 M (7 classes): ResNet50's 23.5 M trunk (25.6 M minus the 1000-way FC)
        # plus a handful of fusion/attention weights; dilation adds no parameters.
        ("full", 23.4e6, 23.7e6),
        # Measured 0.60 M: base width 16 (1/4 of ResNet50, ~1/16 of its weights) and fewer
        # bottlenecks per stage.
        ("small", 0.4e6, 0.8e6),
    ],
)
def test_parameter_count(variant: str, low: float, high: float) -> None:
    model = aludef.build(NUM_CLASSES, variant=variant)
    n = sum(p.numel() for p in model.parameters())
    assert low <= n <= high, n


def test_pyramid_and_mosaic_shapes() -> None:
    pyramid = aludef.GaussianDifferencePyramid(3)
    assert not list(pyramid.parameters())  # fixed Gaussian kernels are buffers
    levels = pyramid(torch.randn(1, 3, TILE, TILE))
    assert [[tuple(d.shape[-2:]) for d in lvl] for lvl in levels] == [
        [(112, 112), (112, 112)],
        [(56, 56), (56, 56)],
    ]
    fusion = aludef.DoGFusion(3)
    x = torch.randn(2, 3, TILE, TILE)
    assert fusion(x).shape == x.shape
    # a constant image has no Gaussian differences: the fusion is the identity on it
    flat = torch.full((1, 3, TILE, TILE), 0.7)
    assert torch.allclose(fusion(flat), flat, atol=1e-6)


def test_last_stage_is_dilated() -> None:
    model = aludef.build(NUM_CLASSES, variant="small")
    last = model.backbone.stages[-1]
    assert any(b.conv2.dilation == (2, 2) for b in last)
    feats = model.backbone(torch.randn(1, 3, TILE, TILE))
    assert feats.shape[-2:] == (14, 14)  # output stride 16, not 32


@pytest.mark.parametrize("variant", ["small", "full"])
def test_onnx_parity(variant: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _realistic(aludef.build(NUM_CLASSES, variant=variant), TILE)
    diffs = classifier_export_parity(model, tmp_path / f"aludef_{variant}.onnx", TILE, NUM_CLASSES)
    assert max(diffs) < 1e-4, diffs
