"""SME-DeepLabV3+: StarNet + MSAA + ELA DeepLabV3+ for steel-surface defect segmentation.

Paper: Zhang H., Zhao Z., Liu Y., et al., "Steel surface defect segmentation with
SME-DeeplabV3+", PLoS One 20(8): e0329628, 2025 (https://doi.org/10.1371/journal.pone.0329628).
Written from the paper text; the paper's own code was not published (its repository only
holds a README). The three borrowed blocks follow their source papers, which SME cites:
StarNet [10] (Ma et al., "Rewrite the Stars", CVPR 2024), MSAA [11] (Liu et al., CM-UNet,
2024) and ELA [12] (Xu & Wan, "ELA: Efficient Local Attention", 2024).

Map from code to paper
----------------------
* :class:`SMEDeepLabV3Plus` -- the whole model, Sec. 2.2 and Fig 1: DCNN encoder -> MSAA
  (replaces ASPP) -> 1x1 conv -> upsample; low-level DCNN features -> ELA -> 1x1 conv;
  concatenate -> 3x3 conv(s) -> classifier -> bilinear upsampling to the input size.
* :class:`StarNetBackbone` -- the DCNN, Sec. 3.1 and Fig 2: a convolutional stem and four
  stages, each a strided 3x3 conv that halves the resolution and doubles the width (Sec. 3.1,
  "doubling the number of channels at each stage") followed by repeated star blocks.
* :class:`StarBlock` -- Sec. 3.1, Eqs. (1)-(4) and Fig 3: the star operation
  ``act(W1 x) * (W2 x)`` (element-wise product of two linear branches) between a 7x7
  depth-wise conv and a 1x1 projection + second 7x7 depth-wise conv, with a residual.
* :class:`MSAA` -- Sec. 3.2 and Fig 4: 1x1 reduction, a channel-attention path and a
  spatial path that sums 3x3, 5x5 and 7x7 convolutions ("such as 3x3, 5x5 and 7x7", Fig 4
  caption) gated by spatial attention, then a 1x1 expansion of their sum.
  :class:`ChannelAttention` / :class:`SpatialAttention` are its two attention gates.
* :class:`ELA` -- Sec. 3.3 and Fig 5: strip (H-wise and W-wise) average pooling, 1-D
  depth-wise convolutions with 3- and 7-tap kernels ("3x3 and 7x7 kernels", Sec. 1
  contribution (3)), GroupNorm and sigmoid, giving ``x * a_h * a_w``.
* :func:`build` -- the repository interface; ``variant="full"`` is the paper's size,
  ``variant="small"`` a narrower copy with every block present for 2-core CPU training,
  ``variant="medium"`` one between them (1.5x the small widths, deeper stages, twice the
  decoder width) for longer CPU runs.

Choices (where the paper is vague or inconsistent)
--------------------------------------------------
1. Backbone size: StarNet-S4 (stem 32, widths 32/64/128/256, depths 3/3/12/5, MLP ratio 4).
   The paper does not name the StarNet size; S4 is the one whose parameter count makes
   the whole model land on the paper's 8.93 M (Table 2, StarNet + MSAA + ELA), see
   ``build`` docstring.
2. Output stride 16 (DeepLabV3+ default): the last StarNet stage keeps stride 1 and its
   depth-wise 7x7 convs use dilation 2 instead of the stride-2 downsampling. The paper
   does not give the output stride.
3. Low-level features: output of StarNet stage 1 (stride 4), as in DeepLabV3+; ELA is
   applied to them before the 1x1 conv to 48 channels (Sec. 2.2).
4. MSAA input: CM-UNet's MSAA fuses three encoder scales; SME uses it "in place of ASPP"
   on the single DCNN output, so here it takes that one tensor (CM-UNet's unused
   ``down_2`` conv is omitted). Reduction factor 4 (CM-UNet default), output 256 channels
   (ASPP's width), followed by the 1x1 conv + BN + ReLU "channel adjustment" of Sec. 2.2.
5. ELA with two kernels: the source ELA uses one 1-D kernel (5 or 7); the SME text insists
   on "3x3 and 7x7" kernels, so two 1-D depth-wise convs (3 and 7 taps, shared by the H and
   W directions as in ELA) are summed before GroupNorm. GroupNorm uses ``gcd(16, C)`` groups
   (16 as in ELA when C allows it).
6. "Adaptive weight initialisation" and the "dynamic threshold adjustment mechanism"
   (Secs. 1, 3.2, 3.3) are not defined by any equation. Interpretation: the attention gates
   are sigmoid functions of the current input, i.e. input-dependent soft thresholds, and
   the GroupNorm / conv biases in front of the sigmoids are the learnable thresholds; no
   batch-statistics threshold is added (it would make eval output depend on the batch and
   is unspecified). Weight initialisation is Kaiming-normal (fan-out) for convs, BN/GN
   to identity; :meth:`SMEDeepLabV3Plus.init_classifier_prior` optionally sets the
   classifier bias from dataset class frequencies (a concrete, dataset-driven init).
7. Decoder: two 3x3 conv + BN + ReLU layers of 256 channels after the concatenation (the
   DeepLabV3+ reference design; the SME text says "a 3x3 convolution") and dropout 0.1
   before the 1x1 classifier. The decoder output (stride 4) is upsampled bilinearly
   (``align_corners=False``) to exactly the input size, so any H x W works (e.g. 200x200).
8. No drop-path and no pretrained weights (the model is trained from scratch here; the
   paper does not say whether it used ImageNet StarNet weights).
9. Table 2 numbers: 8.928 M params / 56.845 "GFLOPS" at 512x512 for StarNet+MSAA+ELA. The
   full variant here has 8.95 M params and 60.9 GFLOPs (2 x conv multiply-adds) at 512x512
   (53.6 with output stride 32, so the paper's count lies between the two; its counting
   tool is not stated). The paper's ablation rows are not self-consistent: "StarNet+ASPP+ELA"
   has fewer params than "StarNet+ASPP" although ELA only adds parameters, and the
   ASPP-to-MSAA savings (2.233 M params, 17.8 GFLOPs) are about the whole cost of a
   256-channel ASPP (2.2 M params; 4.4 / 1.1 GFLOPs at stride 16 / 32), leaving nothing for
   MSAA itself. These rows are therefore not used for calibration beyond the total.
10. Small variant (not in the paper): same blocks, widths halved -- stem 16, StarNet widths
   16/32/64/128, depths 1/2/6/2 (between StarNet-S050 and S100), MLP ratio 4, MSAA 128
   channels, low-level 24, decoder 48: 1.09 M params, 1.03 GFLOPs at 224x224.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ELA",
    "MSAA",
    "VARIANTS",
    "ChannelAttention",
    "SMEConfig",
    "SMEDeepLabV3Plus",
    "SpatialAttention",
    "StarBlock",
    "StarNetBackbone",
    "build",
]


@dataclass(frozen=True)
class SMEConfig:
    """Widths and depths of one SME-DeepLabV3+ variant.

    Attributes:
        stem: channels of the stride-2 stem conv.
        widths: channels of the four StarNet stages (strides 4, 8, 16, 32 before dilation).
        depths: star blocks per stage.
        mlp_ratio: expansion of the two star branches (StarNet's ``mlp_ratio``).
        msaa_out: MSAA output channels (ASPP width in DeepLabV3+).
        msaa_factor: MSAA internal reduction (``dim = msaa_out // msaa_factor``).
        low_out: channels of the projected low-level (ELA) features.
        decoder: channels of the decoder 3x3 convs.
        ela_kernels: 1-D kernel sizes of ELA.
        output_stride: 16 (last stage dilated) or 32.
        dropout: dropout probability before the classifier.
    """

    stem: int
    widths: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    mlp_ratio: int
    msaa_out: int
    msaa_factor: int
    low_out: int
    decoder: int
    ela_kernels: tuple[int, ...] = (3, 7)
    output_stride: int = 16
    dropout: float = 0.1


#: Paper size ("full", StarNet-S4), the CPU-trainable size ("small") and "medium" between
#: them (about 2x the small variant's training step on a 2-core CPU, 3.2 M parameters).
VARIANTS: dict[str, SMEConfig] = {
    "full": SMEConfig(
        stem=32,
        widths=(32, 64, 128, 256),
        depths=(3, 3, 12, 5),
        mlp_ratio=4,
        msaa_out=256,
        msaa_factor=4,
        low_out=48,
        decoder=256,
    ),
    "small": SMEConfig(
        stem=16,
        widths=(16, 32, 64, 128),
        depths=(1, 2, 6, 2),
        mlp_ratio=4,
        msaa_out=128,
        msaa_factor=4,
        low_out=24,
        decoder=48,
    ),
    "medium": SMEConfig(
        stem=24,
        widths=(24, 48, 96, 192),
        depths=(2, 2, 8, 3),
        mlp_ratio=4,
        msaa_out=192,
        msaa_factor=4,
        low_out=32,
        decoder=96,
    ),
}


class ConvBN(nn.Sequential):
    """Conv2d, optional BatchNorm and optional activation (bias only without BN)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int = 1,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        bn: bool = True,
        act: nn.Module | None = None,
    ) -> None:
        super().__init__()
        pad = dilation * (kernel - 1) // 2
        self.add_module(
            "conv",
            nn.Conv2d(in_ch, out_ch, kernel, stride, pad, dilation, groups, bias=not bn),
        )
        if bn:
            self.add_module("bn", nn.BatchNorm2d(out_ch))
        if act is not None:
            self.add_module("act", act)


class StarBlock(nn.Module):
    """StarNet block (Sec. 3.1, Fig 3): residual around the star operation.

    ``y = x + DW2(G(ReLU6(F1(DW1(x))) * F2(DW1(x))))`` where ``DW`` are 7x7 depth-wise convs
    (the first with BN), ``F1``/``F2`` 1x1 convs to ``mlp_ratio * dim`` channels and ``G`` a
    1x1 conv + BN back to ``dim``. The element-wise product is the star operation that maps
    the input into an implicit ~``(d^2)/2``-dimensional feature space (Eqs. 1-4).
    """

    def __init__(self, dim: int, mlp_ratio: int, dilation: int = 1) -> None:
        super().__init__()
        hidden = mlp_ratio * dim
        self.dwconv = ConvBN(dim, dim, 7, dilation=dilation, groups=dim, bn=True)
        self.f1 = ConvBN(dim, hidden, 1, bn=False)
        self.f2 = ConvBN(dim, hidden, 1, bn=False)
        self.act = nn.ReLU6()
        self.g = ConvBN(hidden, dim, 1, bn=True)
        self.dwconv2 = ConvBN(dim, dim, 7, dilation=dilation, groups=dim, bn=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``[N, dim, H, W]``; shape is preserved."""
        y = self.dwconv(x)
        y = self.act(self.f1(y)) * self.f2(y)  # star operation
        return x + self.dwconv2(self.g(y))


class StarNetBackbone(nn.Module):
    """StarNet encoder (Sec. 3.1, Fig 2) returning low-level and high-level features.

    Stem: 3x3 stride-2 conv + BN + ReLU6. Stage ``i``: 3x3 conv + BN (stride 2) to
    ``widths[i]``, then ``depths[i]`` :class:`StarBlock`. With ``output_stride=16`` the last
    stage's downsampling conv has stride 1 and its blocks use dilation 2.
    """

    def __init__(
        self,
        in_channels: int,
        stem: int,
        widths: tuple[int, ...],
        depths: tuple[int, ...],
        mlp_ratio: int,
        output_stride: int = 16,
    ) -> None:
        super().__init__()
        if output_stride not in (16, 32):
            raise ValueError(f"output_stride must be 16 or 32, got {output_stride}")
        self.stem = ConvBN(in_channels, stem, 3, stride=2, act=nn.ReLU6())
        stages: list[nn.Module] = []
        prev = stem
        for i, (width, depth) in enumerate(zip(widths, depths, strict=True)):
            dilated = output_stride == 16 and i == len(widths) - 1
            stride, dilation = (1, 2) if dilated else (2, 1)
            blocks: list[nn.Module] = [ConvBN(prev, width, 3, stride=stride)]
            blocks += [StarBlock(width, mlp_ratio, dilation) for _ in range(depth)]
            stages.append(nn.Sequential(*blocks))
            prev = width
        self.stages = nn.ModuleList(stages)
        self.low_channels = widths[0]
        self.out_channels = widths[-1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(low, high)``: stage-1 features (stride 4) and last-stage features."""
        x = self.stem(x)
        low = self.stages[0](x)
        x = low
        for stage in self.stages[1:]:
            x = stage(x)
        return low, x


class ChannelAttention(nn.Module):
    """MSAA channel gate (CBAM style): ``sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))``.

    Global pooling is a mean / max over H and W so that ONNX export stays shape-agnostic.
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the ``[N, C, 1, 1]`` attention weights for ``x``."""
        avg = x.mean(dim=(2, 3), keepdim=True)
        mx = x.amax(dim=(2, 3), keepdim=True)
        return torch.sigmoid(self.mlp(avg) + self.mlp(mx))


class SpatialAttention(nn.Module):
    """MSAA spatial gate: ``sigmoid(conv7x7([mean_c(x), max_c(x)]))`` -> ``[N, 1, H, W]``."""

    def __init__(self, kernel: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the spatial attention map for ``x``."""
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))


class MSAA(nn.Module):
    """Multi-scale attention aggregation (Sec. 3.2, Fig 4; CM-UNet [11]), used instead of ASPP.

    ``f = down(x)`` (1x1, ``in -> out/factor``); channel path ``f * CA(f)``; spatial path
    ``s = sum_k conv_kxk(f)`` for k in (3, 5, 7), ``s * SA(s)``; output ``up(s' + f')``
    (1x1 to ``out``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        factor: int = 4,
        kernels: tuple[int, ...] = (3, 5, 7),
    ) -> None:
        super().__init__()
        dim = max(out_channels // factor, 8)
        self.down = nn.Conv2d(in_channels, dim, 1)
        self.convs = nn.ModuleList(nn.Conv2d(dim, dim, k, padding=k // 2) for k in kernels)
        self.channel_attention = ChannelAttention(dim)
        self.spatial_attention = SpatialAttention(7)
        self.up = nn.Conv2d(dim, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Aggregate ``x`` into ``[N, out_channels, H, W]``."""
        f = self.down(x)
        chan = f * self.channel_attention(f)
        spatial = self.convs[0](f)
        for conv in self.convs[1:]:
            spatial = spatial + conv(f)
        spatial = spatial * self.spatial_attention(spatial)
        return self.up(spatial + chan)


class ELA(nn.Module):
    """Efficient local attention (Sec. 3.3, Fig 5; Xu & Wan [12]) with multi-size 1-D kernels.

    ``z_h = mean_W(x)`` and ``z_w = mean_H(x)``; each goes through the same sum of 1-D
    depth-wise convs (``kernels`` taps), the same GroupNorm and a sigmoid; the output is
    ``x * a_h * a_w``. The strips are kept 4-D (``[N, C, H, 1]`` / ``[N, C, 1, W]``) and the
    1-D kernels are applied as ``k x 1`` / ``1 x k`` convs, so no reshape depends on H or W.
    """

    def __init__(self, channels: int, kernels: tuple[int, ...] = (3, 7), groups: int = 16):
        super().__init__()
        self.kernels = tuple(kernels)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(channels, 1, k)) for k in self.kernels
        )
        self.norm = nn.GroupNorm(math.gcd(groups, channels), channels)
        for w in self.weights:
            nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="linear")

    def _strip(self, z: torch.Tensor, vertical: bool) -> torch.Tensor:
        channels = z.shape[1]
        out: torch.Tensor | None = None
        for k, w in zip(self.kernels, self.weights, strict=True):
            if vertical:
                y = F.conv2d(z, w.unsqueeze(-1), padding=(k // 2, 0), groups=channels)
            else:
                y = F.conv2d(z, w.unsqueeze(2), padding=(0, k // 2), groups=channels)
            out = y if out is None else out + y
        assert out is not None
        return torch.sigmoid(self.norm(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Re-weight ``x`` by its H-wise and W-wise local attention."""
        a_h = self._strip(x.mean(dim=3, keepdim=True), vertical=True)
        a_w = self._strip(x.mean(dim=2, keepdim=True), vertical=False)
        return x * a_h * a_w


class SMEDeepLabV3Plus(nn.Module):
    """SME-DeepLabV3+ (Fig 1): StarNet encoder, MSAA head, ELA low-level branch, decoder.

    Input ``[N, in_channels, H, W]`` float32 (normalised), output logits
    ``[N, num_classes, H, W]`` for any H, W (bilinear upsampling to the input size).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        config: SMEConfig,
        backbone: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone or StarNetBackbone(
            in_channels,
            config.stem,
            config.widths,
            config.depths,
            config.mlp_ratio,
            config.output_stride,
        )
        relu = nn.ReLU
        self.msaa = MSAA(self.backbone.out_channels, config.msaa_out, config.msaa_factor)
        self.msaa_proj = ConvBN(config.msaa_out, config.msaa_out, 1, act=relu())
        self.ela = ELA(self.backbone.low_channels, config.ela_kernels)
        self.low_proj = ConvBN(self.backbone.low_channels, config.low_out, 1, act=relu())
        self.decoder = nn.Sequential(
            ConvBN(config.msaa_out + config.low_out, config.decoder, 3, act=relu()),
            ConvBN(config.decoder, config.decoder, 3, act=relu()),
            nn.Dropout(config.dropout),
        )
        self.classifier = nn.Conv2d(config.decoder, num_classes, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        pretrained = set(getattr(self.backbone, "pretrained_modules", lambda: [])())
        for m in self.modules():
            if m in pretrained:
                continue
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    @torch.no_grad()
    def init_classifier_prior(self, class_frequencies: torch.Tensor | list[float]) -> None:
        """Set the classifier bias to ``log(p_c)`` from per-class pixel frequencies.

        Optional dataset-driven initialisation (Choice 6): on NEU-Seg background dominates,
        and starting from the class prior avoids a large initial loss on the rare classes.
        """
        freqs = torch.as_tensor(class_frequencies, dtype=torch.float32).clamp_min(1e-6)
        if freqs.numel() != self.classifier.out_channels:
            raise ValueError("need one frequency per class")
        self.classifier.bias.copy_(torch.log(freqs / freqs.sum()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return segmentation logits ``[N, num_classes, H, W]`` for ``x``."""
        low, high = self.backbone(x)
        high = self.msaa_proj(self.msaa(high))
        low = self.low_proj(self.ela(low))
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        y = self.decoder(torch.cat([high, low], dim=1))
        y = self.classifier(y)
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


class LiteBackbone(nn.Module):
    """ImageNet EfficientNet-Lite as the SME DCNN (``lite*`` variants): same ``(low, high)``
    interface as :class:`StarNetBackbone`, low = stride 4, high = the last stage dilated to
    output stride 16 (:mod:`models.arch.efficientnet_lite`)."""

    def __init__(self, size: str, in_channels: int, pretrained: bool = True) -> None:
        super().__init__()
        from models.arch.efficientnet_lite import pretrained_encoder

        self.encoder = pretrained_encoder(size, in_channels, True, pretrained)
        self.low_channels = self.encoder.channels[0]
        self.out_channels = self.encoder.channels[-1]

    def pretrained_modules(self) -> list[nn.Module]:
        """Modules whose weights come from ImageNet (kept by the decoder's initialisation)."""
        return list(self.encoder.modules())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(low, high)`` features (strides 4 and 16)."""
        feats = self.encoder(x)
        return feats[0], feats[-1]


#: decoder widths on the pretrained encoders (MSAA 128, low-level 48 as DeepLabV3+, decoder 64)
LITE_DECODER = SMEConfig(
    stem=0, widths=(0, 0, 0, 0), depths=(0, 0, 0, 0), mlp_ratio=0,
    msaa_out=128, msaa_factor=4, low_out=48, decoder=64,
)


def build(num_classes: int, in_channels: int = 3, variant: str = "full") -> nn.Module:
    """Build SME-DeepLabV3+ (``lite0/1/2``: MSAA + ELA decoder on ImageNet EfficientNet-Lite).

    Args:
        num_classes: number of segmentation classes (background included).
        in_channels: input image channels.
        variant: ``"full"`` (paper size: StarNet-S4 backbone, 256-channel MSAA/decoder;
            8.95 M params vs the paper's 8.928 M) or ``"small"`` (StarNet widths
            16/32/64/128, depths 1/2/6/2, 128-channel MSAA, 48-channel decoder; 1.09 M
            params, 1.03 GFLOPs at 224x224) or ``"medium"`` (widths 24/48/96/192, depths
            2/2/8/3, 192-channel MSAA, 96-channel decoder; 3.2 M params) -- see
            :data:`VARIANTS`.

    Returns:
        The model; logits ``[N, num_classes, H, W]`` at the input resolution.

    Raises:
        ValueError: for an unknown ``variant``.
    """
    if variant.startswith("lite"):
        from models.arch.efficientnet_lite import INPUT_NORM

        model = SMEDeepLabV3Plus(
            num_classes, in_channels, LITE_DECODER, LiteBackbone(variant, in_channels)
        )
        model.input_norm = INPUT_NORM
        return model
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {sorted(VARIANTS)}")
    return SMEDeepLabV3Plus(num_classes, in_channels, VARIANTS[variant])
