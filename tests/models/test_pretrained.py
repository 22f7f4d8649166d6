"""The ImageNet EfficientNet-Lite loader and the ``lite*`` variants built on it."""

from __future__ import annotations

import pytest
import torch

from models import arch
from models.arch.efficientnet_lite import (
    EfficientNetLite,
    freeze_encoder,
    load_imagenet,
    pretrained_encoder,
    weights_file,
)
from models.export import export_onnx
from tests.models.cli_helpers import train_classify_mm


@pytest.mark.parametrize("size", ["lite0", "lite1", "lite2"])
def test_strict_load_every_key_from_the_wheel(size: str) -> None:
    state = torch.load(weights_file(size), map_location="cpu", weights_only=True)
    encoder = load_imagenet(EfficientNetLite(size, 3))
    own = encoder.state_dict()
    # every tensor of the file but the ImageNet classifier lands, bit-exact
    for key, value in state.items():
        if key.startswith("_fc."):
            continue
        assert torch.equal(own[key], value), key
    assert set(own) == {k for k in state if not k.startswith("_fc.")}


def test_a_wrong_shape_is_refused() -> None:
    encoder = EfficientNetLite("lite0", 3)
    encoder._conv_head = torch.nn.Conv2d(320, 640, 1, bias=False)
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_imagenet(encoder)


def test_gray_stem_equals_rgb_on_a_repeated_gray_image() -> None:
    gray = pretrained_encoder("lite0", 1).eval()
    rgb = pretrained_encoder("lite0", 3).eval()
    x = torch.rand(2, 1, 96, 96)
    with torch.no_grad():
        a, b = gray(x)[-1], rgb(x.repeat(1, 3, 1, 1))[-1]
    assert torch.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("dilate", [False, True])
def test_feature_strides(dilate: bool) -> None:
    encoder = pretrained_encoder("lite0", 3, dilate_last=dilate, pretrained=False).eval()
    with torch.no_grad():
        feats = encoder(torch.zeros(1, 3, 128, 160))
    strides = [128 // f.shape[2] for f in feats]
    assert strides == ([4, 8, 16, 16] if dilate else [4, 8, 16, 32])
    assert [f.shape[1] for f in feats] == encoder.channels == [24, 40, 112, 320]


def test_esg_lite_classifies_and_exports(tmp_path) -> None:
    model = arch.build("esg_convnext", 7, 3, "lite0").eval()
    assert model.input_norm == pytest.approx((127 / 255, 128 / 255))
    diff = export_onnx(model, tmp_path / "esg.onnx", 3, [96, 96], "classify")
    assert diff < 1e-4


def test_sme_lite_segments_any_size_and_exports(tmp_path) -> None:
    model = arch.build("sme_deeplabv3plus", 4, 1, "lite0").eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 72, 88)).shape == (1, 4, 72, 88)
    # the decoder's initialisation must not overwrite the ImageNet encoder
    fresh = pretrained_encoder("lite0", 1, dilate_last=True)
    assert torch.equal(
        model.backbone.encoder._blocks[3]._depthwise_conv.weight,
        fresh._blocks[3]._depthwise_conv.weight,
    )
    diff = export_onnx(model, tmp_path / "sme.onnx", 1, [64, 64], "segment")
    assert diff < 1e-4


def test_aludef_lite_starts_from_the_pretrained_features() -> None:
    model = arch.build("aludef", 5, 1, "lite0").eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        # identity front modules at the start: the encoder sees the input unchanged
        got = model.encoder(2.0 * model.attention(model.fusion(x)))[-1]
        ref = model.encoder(x)[-1]
        assert torch.allclose(got, ref, atol=1e-5)
        assert model(x).shape == (2, 5)


def test_frozen_stages_keep_weights_and_statistics_through_a_training_step() -> None:
    model = arch.build("sme_deeplabv3plus", 3, 1, "lite0")
    encoder = model.backbone.encoder
    frozen = freeze_encoder(model, 2)  # stem + the stride-2 and stride-4 stages
    assert frozen == sum(p.numel() for m in encoder.frozen for p in m.parameters()) > 0
    first_open = encoder._blocks[encoder.stage_ends[1] + 1]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()  # the training loop calls this every epoch: frozen batch norms stay eval
    assert not encoder._bn0.training and first_open._bn1.training
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    x, y = torch.rand(2, 1, 48, 48), torch.randint(0, 3, (2, 48, 48))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    after = model.state_dict()
    for name in ("_conv_stem.weight", "_bn0.running_mean", "_blocks.2._project_conv.weight",
                 "_blocks.2._bn2.running_var"):
        key = f"backbone.encoder.{name}"
        assert torch.equal(before[key], after[key]), key
    assert encoder._conv_stem.weight.grad is None
    for name in ("_blocks.3._depthwise_conv.weight", "_blocks.3._bn1.running_mean"):
        key = f"backbone.encoder.{name}"
        assert not torch.equal(before[key], after[key]), key


def test_freezing_needs_a_pretrained_encoder() -> None:
    with pytest.raises(ValueError, match="lite"):
        freeze_encoder(arch.build("sme_deeplabv3plus", 3, 1, "small"), 2)
    with pytest.raises(ValueError, match="0..7"):
        freeze_encoder(arch.build("esg_convnext", 3, 3, "lite0"), 8)


def test_cli_refuses_freezing_a_from_scratch_variant(tmp_path) -> None:
    res = train_classify_mm(tmp_path, "--freeze-stages", "2")
    assert res.exit_code != 0 and "lite" in res.output
    assert not (tmp_path / "o").exists()


class _DriftsAfterTracing(torch.nn.Module):
    """Adds a call counter: the traced graph keeps the export-time count, PyTorch moves on."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3, padding=1)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.conv(x) + 0.01 * self.calls


def test_export_refuses_an_onnx_file_that_scores_differently(tmp_path) -> None:
    with pytest.raises(RuntimeError, match="differs from PyTorch"):
        export_onnx(_DriftsAfterTracing(), tmp_path / "drift.onnx", 1, [16, 16], "segment")
