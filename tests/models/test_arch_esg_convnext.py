"""Tests for ESG-ConvNeXt (``models.arch.esg_convnext``)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from models.arch import esg_convnext as esg  # noqa: E402
from tests.models.onnx_parity import classifier_export_parity  # noqa: E402

TILE = 224
NUM_CLASSES = 7


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    """Build every variant once (the full one has ~159 M parameters)."""
    torch.manual_seed(0)
    return {v: esg.build(NUM_CLASSES, variant=v) for v in ("full", "small", "tiny")}


def _realistic(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give a fresh model non-trivial weights and BN statistics, return it in eval mode.

    GRN's gamma/beta and the last BN gamma of the parallel branches start at zero, which would
    switch those paths off and make the parity check too easy; they are redrawn, and BN running
    statistics are set from one training-mode batch.
    """
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data = torch.rand(m.weight.shape, generator=g) * 0.5 + 0.5
            m.bias.data = torch.randn(m.bias.shape, generator=g) * 0.1
            m.reset_running_stats()
            m.momentum = None
        elif isinstance(m, esg.GRN):
            m.gamma.data = torch.randn(m.gamma.shape, generator=g) * 0.5
            m.beta.data = torch.randn(m.beta.shape, generator=g) * 0.1
        elif isinstance(m, torch.nn.PReLU):
            m.weight.data = torch.rand(m.weight.shape, generator=g) * 0.5
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 3, TILE, TILE, generator=g))
    return model.eval()


@pytest.mark.parametrize("variant", ["full", "small", "tiny"])
def test_output_shape(models: dict[str, torch.nn.Module], variant: str) -> None:
    model = models[variant].eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, TILE, TILE))
    assert out.shape == (2, NUM_CLASSES)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("variant", "low", "high"),
    [
        # Measured 158.6 M (7 classes). ConvNeXtV2-Tiny trunk (dims 96-192-384-768, depths
        # 3-3-9-3) is ~27.9 M; with sum(C^2) over the 18 blocks = 3.23 M, every block adds
        # GAM ~25 C^2 (two dense 7x7 convs C <-> C/4 = 24.5 C^2 + MLP 0.5 C^2) = 80.8 M, the
        # residual branch 7.25 C^2 = 23.4 M and the inverted-residual branch (x4) 8 C^2 = 25.8 M.
        ("full", 150e6, 165e6),
        # Measured 1.76 M: dims 24-48-96-192, depths 1-1-3-1, sum(C^2) = 67.4 k. Per block
        # ~23.7 C^2: ConvNeXt 1x1 convs 8, GAM MLP 0.5 + 7x7 spatial C <-> C/12 8.2, residual
        # branch (C/4) 3.1, inverted residual (x2) 4 -> 1.60 M; + 97 k downsampling + norms.
        ("small", 1.6e6, 1.9e6),
        # Measured 0.74 M: dims 16-32-64-128, sum(C^2) = 30.0 k, ~21.7 C^2 per block (spatial
        # GAM C <-> C/16 = 6.1) -> 0.65 M; + 43 k downsampling + depthwise/norm weights.
        ("tiny", 0.65e6, 0.82e6),
    ],
)
def test_parameter_count(
    models: dict[str, torch.nn.Module], variant: str, low: float, high: float
) -> None:
    n = sum(p.numel() for p in models[variant].parameters())
    assert low <= n <= high, n


def test_unknown_variant() -> None:
    with pytest.raises(ValueError):
        esg.build(NUM_CLASSES, variant="huge")


def test_in_channels_num_classes_and_drop_path() -> None:
    model = esg.build(2, in_channels=1, variant="tiny").eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, TILE, TILE)).shape == (2, 2)
    rates = [m.p for m in model.modules() if isinstance(m, esg.DropPath)]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.05)  # linear 0 -> 0.05
    assert esg.VARIANTS["full"].drop_path == pytest.approx(0.1)
    assert esg.VARIANTS["small"].drop_path == pytest.approx(0.05)
    custom = esg.ESGConvNeXt(2, config=esg.VARIANTS["tiny"], drop_path_rate=0.2)
    assert max(m.p for m in custom.modules() if isinstance(m, esg.DropPath)) == pytest.approx(0.2)


def test_every_paper_block_present_and_trains(models: dict[str, torch.nn.Module]) -> None:
    model = models["tiny"]
    for block in model.modules():
        if isinstance(block, esg.ESGBlock):
            assert isinstance(block.ela, esg.ELA)
            assert isinstance(block.simam, esg.SimAM)
            assert isinstance(block.gam, esg.GAM)
            assert isinstance(block.grn, esg.GRN)
            assert isinstance(block.rb, esg.ResidualBranch)
            assert isinstance(block.irb, esg.InvertedResidualBranch)
    downs = [m for m in model.modules() if isinstance(m, esg.Downsample)]
    assert len(downs) == 3 and all(isinstance(d.act, torch.nn.PReLU) for d in downs)
    model.train()
    model(torch.randn(2, 3, TILE, TILE)).sum().backward()
    block = model.stages[2][0]
    for p in (block.ela.conv.weight, block.gam.spatial_out[0].weight, block.rb.body[-1].weight):
        assert p.grad is not None and p.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)


def test_attention_modules() -> None:
    x = torch.randn(2, 8, 12, 10)
    assert esg.ELA(8).eval()(x).shape == x.shape
    assert esg.GAM(8, ratio=4, groups=2).eval()(x).shape == x.shape
    # SimAM weights lie in (sigmoid(0.5), 1): it can only shrink magnitudes, never flip signs
    y = esg.SimAM()(x)
    assert torch.all(y * x >= 0) and torch.all(y.abs() <= x.abs())
    # channels-first LayerNorm equals nn.LayerNorm on channels-last
    ln = esg.LayerNorm2d(8)
    ref = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (8,), eps=1e-6)
    assert torch.allclose(ln(x), ref.permute(0, 3, 1, 2), atol=1e-5)


def test_onnx_parity_small_dynamic_batch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _realistic(esg.build(NUM_CLASSES, variant="small"))
    diffs = classifier_export_parity(model, tmp_path / "esg_small.onnx", TILE, NUM_CLASSES)
    assert max(diffs) < 1e-4, diffs
