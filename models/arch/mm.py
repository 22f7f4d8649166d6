"""MM: multi-scale lightweight neural network for steel surface defect classification.

Implemented from the paper text of Shao et al., "Multi-Scale Lightweight Neural Network for
Steel Surface Defect Detection", *Coatings* 13(7):1202, 2023.
The figures (Fig. 1 and Fig. 2, which carry the exact layer layout) are not in the text we
have, so the layer sizes below are our own; every block is mapped to the section of the paper
that describes it.

Block map (paper section -> code)
---------------------------------
* Sec. 2.1 + Sec. 2.3 Steps 1-7, Eqs. (1)-(3) -- Gaussian-difference (DoG) pyramid scale space:
  :class:`GaussianBlur` (fixed, separable Gaussian of Eq. (1), registered as buffers and run
  with ``conv2d``) and :class:`DoGScaleSpace`. Per octave ``i`` the Gaussian images
  ``g[i,j+1] = g[i,j] * G(sigma_j)`` (Eq. 2) give ``n - 1`` difference images
  ``d[i,j] = g[i,j] - g[i,j+1]`` (Eq. 3); ``g[i+1,0]`` is ``g[i,0]`` down-sampled by 2 (Step 7).
* Sec. 4.2 Steps 2-3 -- "Gaussian differential pyramidal images" of the input tile, "divided by
  the slice layer and convolved separately", then merged by ``Concat``: :class:`MMStem`. The
  four DoG images of the input (2 octaves x 2 differences) each get their own convolution; a
  plain "standard" convolution of the raw tile is concatenated with them.
* Sec. 2.4 / Fig. 2 -- the MM unit with three branches: :class:`MMBlock`.

  - standard branch: "directly maps the original feature map" -> identity shortcut.
  - dimension-reduction branch: 1x1 conv (cost reduction) -> DoG scale space on the reduced
    features (Sec. 2.1) -> key-point group convolution (Sec. 2.2): a 3x3 convolution with one
    group per key-point feature set.
  - fusion branch (Sec. 2.3, transform ``T_F: R^{CxHxW} -> R^{C_M xHxW}``): mixed-kernel
    depthwise convolutions of the key-point sets (small kernel for the fine octave, large kernel
    for the coarse octave) followed by a dense 1x1 "fusion encoding" that mixes all groups.
  - the fusion code multiplies the dimension-reduction branch element-wise, then the
    "single-point group convolution" (grouped 1x1) restores the channel count to match the
    standard branch; the two are added ("combined with the original network").
* Sec. 3 -- batch normalisation after every learned convolution; dropout (p = 0.5, "randomly
  removing half of the hidden neurons") on the last two fully connected layers: :class:`MMHead`.
* Sec. 4.2 Step 3 -- weights initialised from a Gaussian, biases constant: :func:`_init_weights`.

Choices (where the paper is vague or inconsistent)
--------------------------------------------------
1. Layer widths/depths, stage resolutions and the down-sampling between stages are not given in
   the text (Fig. 2 is missing). ``full``: stem 32 ch @64x64, four stages of MM units with
   widths (64, 128, 256, 384) and depths (1, 1, 2, 1) at 64/32/16/8 px: 1.40 M parameters and
   0.68 GFLOPs at 128x128, sized to the paper's reported 0.67 GFLOPs. ``small``: stem 16 ch,
   widths (32, 64, 128, 256), depths (1, 2, 2, 1): 0.50 M parameters, 0.23 GFLOPs.
2. Down-sampling between stages (not described): depthwise 3x3 stride 2 + BN + pointwise 1x1 +
   BN + ReLU (:class:`Transition`), in keeping with the lightweight design.
3. Scale space: 2 octaves x 3 Gaussian images = 4 DoG images ("four multi-scale images",
   Sec. 4.2 Step 3), so every MM unit has four key-point feature sets and the key-point group
   convolution uses 4 groups. Incremental blur sigmas: input tile (1.0, 1.6), feature maps
   (0.8, 1.2); kernels truncated at 2.5 sigma, replicate padding. Octave down-sampling is a
   2x2 average pool of ``g[i,0]`` (Step 7); coarse-octave DoG maps of feature maps are brought
   back with bilinear up-sampling so the sets can be stacked as groups.
4. Eq. (1) as printed lacks the minus sign in the exponent; the standard Gaussian is used,
   normalised to sum 1 after truncation.
5. "Element-wise multiplication" of the fusion branch with the dimension-reduction branch is
   implemented as a sigmoid gate (fusion code in (0, 1)), which keeps the product bounded.
6. Head: global average pool -> Dropout(0.5) -> FC(C, hidden) -> ReLU -> Dropout(0.5) ->
   FC(hidden, classes); i.e. dropout on the inputs of the last two FC layers. hidden = 256 for
   ``full`` and 128 for ``small``.
7. Initialisation ("Gaussian" weights, "Constant" bias): Kaiming-normal convolutions, N(0, 0.01)
   linear layers, zero biases; the last BN of every residual branch starts with gamma = 0 so
   each unit starts as the identity (helps training from scratch on small data sets).
8. The paper's input preprocessing (per-pixel mean subtraction) is done outside the model; the
   input is already normalised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.arch.init import init_conv_bn_linear

__all__ = [
    "DoGScaleSpace",
    "GaussianBlur",
    "MM",
    "MMBlock",
    "MMConfig",
    "MMHead",
    "MMStem",
    "Transition",
    "build",
]


def gaussian_kernel_1d(sigma: float, truncate: float = 2.5) -> torch.Tensor:
    """Return a normalised 1-D Gaussian kernel (Eq. (1) is its separable 2-D product)."""
    radius = max(1, int(math.ceil(truncate * sigma)))
    xs = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(xs**2) / (2.0 * sigma**2))
    return (kernel / kernel.sum()).to(torch.float32)


class GaussianBlur(nn.Module):
    """Fixed depthwise Gaussian blur ``x * G(sigma)`` (Eqs. (1)-(2)).

    The kernel is separable, so it is applied as a vertical then a horizontal depthwise
    ``conv2d``; both kernels are non-learned buffers built deterministically here.
    """

    def __init__(self, channels: int, sigma: float, truncate: float = 2.5) -> None:
        super().__init__()
        k = gaussian_kernel_1d(sigma, truncate)
        self.channels = channels
        self.radius = (k.numel() - 1) // 2
        self.register_buffer("kernel_v", k.view(1, 1, -1, 1).repeat(channels, 1, 1, 1))
        self.register_buffer("kernel_h", k.view(1, 1, 1, -1).repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Blur each channel of ``x`` ([N, C, H, W]) independently."""
        r = self.radius
        x = F.pad(x, (r, r, r, r), mode="replicate")
        x = F.conv2d(x, self.kernel_v, groups=self.channels)
        return F.conv2d(x, self.kernel_h, groups=self.channels)


class DoGScaleSpace(nn.Module):
    """Gaussian-difference pyramid (Sec. 2.1, Sec. 2.3 Steps 1-7, Eqs. (1)-(3)).

    Octave ``i`` starts from ``g[i,0]`` (``g[0,0]`` is the input, ``g[i+1,0]`` is ``g[i,0]``
    2x down-sampled); each octave has ``len(sigmas) + 1`` Gaussian images and ``len(sigmas)``
    difference images. :meth:`forward` returns the difference images per octave, finest first.
    """

    def __init__(self, channels: int, sigmas: tuple[float, ...], octaves: int = 2) -> None:
        super().__init__()
        self.octaves = octaves
        self.blurs = nn.ModuleList(GaussianBlur(channels, s) for s in sigmas)

    @property
    def sets_per_octave(self) -> int:
        """Number of difference images per octave."""
        return len(self.blurs)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """Return ``d[i][j]`` for octave ``i`` and difference ``j`` (Eq. (3))."""
        out: list[list[torch.Tensor]] = []
        g0 = x
        for i in range(self.octaves):
            if i > 0:
                g0 = F.avg_pool2d(g0, kernel_size=2, stride=2)  # Step 7
            diffs: list[torch.Tensor] = []
            g = g0
            for blur in self.blurs:
                g_next = blur(g)  # Eq. (2)
                diffs.append(g - g_next)  # Eq. (3)
                g = g_next
            out.append(diffs)
        return out


def _conv_bn(
    cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, relu: bool = True
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class MMStem(nn.Module):
    """Input stage (Sec. 4.2 Steps 2-3): DoG images of the tile, each convolved separately.

    ``standard`` is a stride-2 3x3 convolution of the raw tile. The DoG pyramid of the tile
    (2 octaves x 2 differences) is "divided by the slice layer": the two full-resolution DoG
    images get stride-2 convolutions, the two half-resolution ones stride-1 convolutions, so all
    outputs meet at H/2 and are concatenated (``Concat``) with the standard branch.
    """

    def __init__(self, in_channels: int, std_channels: int, dog_channels: int) -> None:
        super().__init__()
        self.scale_space = DoGScaleSpace(in_channels, sigmas=(1.0, 1.6), octaves=2)
        self.standard = nn.Conv2d(in_channels, std_channels, 3, 2, 1, bias=False)
        n = self.scale_space.sets_per_octave
        self.dog_convs = nn.ModuleList()
        for octave in range(2):
            stride = 2 if octave == 0 else 1
            for _ in range(n):
                self.dog_convs.append(
                    nn.Conv2d(in_channels, dog_channels, 3, stride, 1, bias=False)
                )
        self.out_channels = std_channels + 2 * n * dog_channels
        self.bn = nn.BatchNorm2d(self.out_channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[N, C_in, H, W]`` to ``[N, out_channels, H/2, W/2]``."""
        dogs = [d for octave in self.scale_space(x) for d in octave]
        feats = [self.standard(x)] + [conv(d) for conv, d in zip(self.dog_convs, dogs, strict=True)]
        return self.act(self.bn(torch.cat(feats, dim=1)))


class MMBlock(nn.Module):
    """MM unit (Sec. 2.4, Fig. 2): standard, dimension-reduction and fusion branches.

    ``channels`` must be divisible by 4: the reduction branch keeps ``channels // 4`` channels,
    and the DoG scale space turns them into 4 key-point sets (2 octaves x 2 differences), i.e.
    ``channels`` channels in 4 groups again.
    """

    def __init__(self, channels: int, sigmas: tuple[float, float] = (0.8, 1.2)) -> None:
        super().__init__()
        self.sets = 2 * len(sigmas)
        if channels % self.sets:
            raise ValueError(f"channels={channels} must be divisible by {self.sets}")
        red = channels // self.sets
        fine = red * len(sigmas)  # channels of the fine-octave key-point sets
        self.fine = fine
        # dimension-reduction branch (Sec. 2.4) + scale space (Sec. 2.1)
        self.reduce = _conv_bn(channels, red, 1)
        self.scale_space = DoGScaleSpace(red, sigmas=sigmas, octaves=2)
        # key-point feature convolution: one group per key-point set (Sec. 2.2)
        self.keypoint_conv = _conv_bn(channels, channels, 3, groups=self.sets)
        # fusion branch: mixed kernels + fusion encoding T_F (Sec. 2.3)
        self.mix_fine = nn.Conv2d(fine, fine, 3, padding=1, groups=fine, bias=False)
        coarse = channels - fine
        self.mix_coarse = nn.Conv2d(coarse, coarse, 5, padding=2, groups=coarse, bias=False)
        self.mix_bn = nn.BatchNorm2d(channels)
        self.encode = _conv_bn(channels, channels, 1, relu=False)
        # single-point group convolution restoring the standard-branch width (Sec. 2.4)
        self.restore = _conv_bn(channels, channels, 1, groups=self.sets, relu=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``relu(x + restore(keypoint(K) * sigmoid(encode(mix(K)))))``."""
        r = self.reduce(x)
        octaves = self.scale_space(r)
        fine = torch.cat(octaves[0], dim=1)
        coarse = torch.cat(octaves[1], dim=1)
        coarse_up = F.interpolate(coarse, scale_factor=2.0, mode="bilinear", align_corners=False)
        keypoints = torch.cat([fine, coarse_up], dim=1)  # 4 key-point sets, set-major
        branch = self.keypoint_conv(keypoints)
        mixed = torch.cat([self.mix_fine(fine), self.mix_coarse(coarse_up)], dim=1)
        code = torch.sigmoid(self.encode(F.relu(self.mix_bn(mixed))))
        out = self.restore(branch * code)
        return self.act(x + out)


class Transition(nn.Module):
    """Stride-2 down-sampling between stages (choice 2): dw 3x3 s2 + pw 1x1, BN, ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.dw = _conv_bn(cin, cin, 3, stride=2, groups=cin, relu=False)
        self.pw = _conv_bn(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Halve the resolution and change the width."""
        return self.pw(self.dw(x))


class MMHead(nn.Module):
    """Classifier (Sec. 3): GAP, then two FC layers each preceded by Dropout(0.5)."""

    def __init__(self, cin: int, hidden: int, num_classes: int, p: float = 0.5) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop1 = nn.Dropout(p)
        self.fc1 = nn.Linear(cin, hidden)
        self.act = nn.ReLU(inplace=True)
        self.drop2 = nn.Dropout(p)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[N, C, h, w]`` features to ``[N, num_classes]`` logits."""
        x = self.pool(x).flatten(1)
        x = self.act(self.fc1(self.drop1(x)))
        return self.fc2(self.drop2(x))


@dataclass(frozen=True)
class MMConfig:
    """Widths/depths of an MM variant."""

    stem_std: int
    stem_dog: int
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    hidden: int
    dropout: float = 0.5


VARIANTS: dict[str, MMConfig] = {
    "full": MMConfig(
        stem_std=16, stem_dog=4, widths=(64, 128, 256, 384), depths=(1, 1, 2, 1), hidden=256
    ),
    "small": MMConfig(
        stem_std=8, stem_dog=2, widths=(32, 64, 128, 256), depths=(1, 2, 2, 1), hidden=128
    ),
}


class MM(nn.Module):
    """MM network: DoG stem, stages of MM units with stride-2 transitions, dropout head."""

    def __init__(self, num_classes: int, in_channels: int, config: MMConfig) -> None:
        super().__init__()
        self.stem = MMStem(in_channels, config.stem_std, config.stem_dog)
        layers: list[nn.Module] = []
        cin = self.stem.out_channels
        for i, (width, depth) in enumerate(zip(config.widths, config.depths, strict=True)):
            if i == 0:
                layers.append(_conv_bn(cin, width, 1))
            else:
                layers.append(Transition(cin, width))
            layers.extend(MMBlock(width) for _ in range(depth))
            cin = width
        self.features = nn.Sequential(*layers)
        self.head = MMHead(cin, config.hidden, num_classes, config.dropout)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits ``[N, num_classes]`` for a normalised ``[N, C, H, W]`` tile."""
        return self.head(self.features(self.stem(x)))


def _init_weights(model: nn.Module) -> None:
    """Gaussian weights, constant (zero) biases (Sec. 4.2 Step 3); zero-gamma residual BN."""
    init_conv_bn_linear(model)
    for m in model.modules():
        if isinstance(m, MMBlock):
            nn.init.zeros_(m.restore[1].weight)


def build(num_classes: int, in_channels: int = 3, variant: str = "full") -> nn.Module:
    """Build MM for 128x128 tiles; ``variant`` is ``"full"`` or ``"small"``."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {sorted(VARIANTS)}")
    return MM(num_classes=num_classes, in_channels=in_channels, config=VARIANTS[variant])
