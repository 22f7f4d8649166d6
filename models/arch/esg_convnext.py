"""ESG-ConvNeXt: ConvNeXtV2 + serial ELA -> SimAM -> GAM attention + parallel residual branches.

Implemented from the paper text of "An ESG-ConvNeXt network for steel surface defect
classification based on hybrid attention mechanism" (Zhang et al., *Scientific Reports*, 2025),
steel-surface defect classification (NEU-CLS-64, X-SDD) on
224x224 inputs. The ``small``/``tiny``/``full`` variants train from scratch; the ``lite0/1/2``
variants (:class:`ESGLite`, released since 2.0.0) put the paper's serial ELA -> SimAM -> GAM
attention on an ImageNet-pretrained EfficientNet-Lite encoder (no ConvNeXtV2 weights can be
had offline; ``models/arch/efficientnet_lite.py``).

Block map (paper section -> code)
---------------------------------
* "Overall structure", Fig. 2 -- :class:`ESGConvNeXt`: 4x4 stride-4 patchify stem + LN, four
  stages with block ratio 1:1:3:1, a downsampling layer before stages 2-4, global average
  pooling, LN and a linear classifier. Backbone is ConvNeXt V2 (ref. 26).
* "ConvNeXt module for multi-attention mechanisms", Fig. 3a -- :class:`ESGBlock`: the ConvNeXtV2
  block (7x7 depthwise conv, LN, 1x1 conv C->4C, GELU, :class:`GRN`, 1x1 conv 4C->C, stochastic
  depth :class:`DropPath`, residual) with ELA after the first conv, SimAM after the second conv
  and GAM after the last conv.
* Eqs. (1)-(5), Fig. 3d -- :class:`ELA`: strip pooling (means over W and over H), 1-D conv with
  kernel 5 (the paper's setting), GroupNorm, sigmoid, ``Y = x * y^h * y^w``.
* Eqs. (6)-(10), Fig. 3b -- :class:`SimAM`: closed-form minimal energy, ``sigmoid(1/E) * X``.
* Eqs. (11)-(12), Figs. 3c/4/5 -- :class:`GAM`: channel attention (permute, two-layer MLP,
  inverse permute, sigmoid) then spatial attention (7x7 conv C->C/r, 7x7 conv C/r->C, sigmoid).
* "Parallel processing strategy", Fig. 6 -- :class:`ResidualBranch` ("block1" of Table 2: two
  3x3 convs and a 1x1 conv that raises the channels, PReLU) and :class:`InvertedResidualBranch`
  ("block2": 1x1 expansion, 3x3 depthwise, 1x1 reduction, then SimAM), run in parallel with the
  attention ConvNeXt block inside :class:`ESGBlock`.
* "Improved activation functions" / "The improvements of downsampling module", Eq. (13),
  Figs. 7-8 -- :class:`Downsample`: LN -> 2x2 stride-2 conv -> PReLU (Fig. 8b).
* LN "in channels-first form" -- :class:`LayerNorm2d` (means over the channel axis).

Variants (FLOPs = 2 x multiply-adds of Conv/Linear layers at 224x224)
--------------------------------------------------------------------
* ``full``: dims 96-192-384-768, depths 3-3-9-3 (ConvNeXtV2-Tiny), GAM r = 4 for both
  attentions, dense 7x7 GAM convs; 158.6 M parameters, 50.9 GFLOPs (GAM alone 26.0).
* ``small``: dims 24-48-96-192, depths 1-1-3-1; 1.76 M parameters, 0.57 GFLOPs.
* ``tiny``: dims 16-32-64-128, depths 1-1-3-1; 0.74 M parameters, 0.24 GFLOPs.

Choices (where the paper is vague or inconsistent)
--------------------------------------------------
1. Width/depth: the paper names no ConvNeXtV2 size. It compares against Swin-T and
   ConvNeXtV2 and quotes ConvNeXt's change of the stage ratio "3:4:6:3 -> 1:1:3:1", which in
   ConvNeXt means depths 3-3-9-3, so ``full`` = ConvNeXtV2-Tiny (dims 96-192-384-768, depths
   3-3-9-3). Its 50.9 GFLOPs (5.7x the 8.9 of ConvNeXtV2-T) is in line with the paper's FPS
   drop from 42 to 6.0 (Table 1). The CPU variants take the ratio literally (1-1-3-1).
2. Attention placement (Fig. 3a is not available as text): "first convolution" = the 7x7
   depthwise conv, "second" = the 1x1 expansion conv, "last" = the 1x1 projection conv; each
   attention sits directly after its convolution, i.e. dwconv -> ELA -> LN -> pwconv1 -> SimAM
   -> GELU -> GRN -> pwconv2 -> GAM.
3. GELU vs PReLU: the text says GELU is replaced by PReLU, but the conclusion and Fig. 8 put
   PReLU in the downsampling layers. We keep GELU inside the ConvNeXtV2 MLP, add a per-channel
   PReLU after the 2x2 stride-2 conv of every downsampling layer (LN -> conv -> PReLU; "the
   output will be zero after applying activation functions" implies activation after the
   conv), and use per-channel PReLU in both parallel branches. The stem has no activation.
4. Parallel module: placed in every block; the block computes
   ``x + drop_path(ESG(x) + RB(x) + IRB(x))`` (one shared identity). RB = 3x3 conv C->C/k, 3x3
   conv C/k->C/k, 1x1 conv C/k->C ("1x1 to increase the number of channels"), with BN after
   every conv; IRB = 1x1 C->tC, 3x3 depthwise, 1x1 tC->C (BN after each, PReLU after the first
   two, linear bottleneck), then SimAM. k = 2, t = 4 for ``full``; k = 4, t = 2 for the CPU
   variants. The last BN gamma of both branches starts at zero, so at initialisation each block
   is exactly an ELA/SimAM/GAM ConvNeXtV2 block (stable from-scratch training).
5. ELA: the depthwise 1-D conv (kernel 5, Eq. (3)-(4)) and GroupNorm are shared by the two
   directions, as in the ELA reference design; GN uses gcd(16, C) groups (ELA-S/B use 16).
6. SimAM: lambda = 1e-4; mean and variance are taken over all M = H*W neurons of a channel
   (variance divided by M - 1), the usual implementation of Eqs. (7)-(9). Eq. (9) in the paper
   lacks the square of ``(t - mu)``; the SimAM original has it and so do we.
7. GAM: the channel MLP is written as two 1x1 convs (identical to permute -> Linear -> ReLU ->
   Linear -> inverse permute); BN + ReLU between the two spatial 7x7 convs and BN after the
   second, as in GAM. ``full`` uses r = 4 for both parts (GAM default). The CPU variants keep
   r = 4 for the channel MLP but use r = 12 (``small``) / r = 16 (``tiny``) for the spatial
   part: dense 7x7 convs C <-> C/r cost 98 C^2 / r multiply-adds per pixel and dominate the
   budget. GAM's grouped-conv option (``groups`` > 1, with a channel shuffle between the two
   convs) is implemented but unused: on CPU a grouped 7x7 conv 32->8 with 8 groups trained
   ~4x slower than the dense one (1 thread, PyTorch 2.13) despite 8x fewer FLOPs.
8. GRN with gamma = beta = 0 at init (ConvNeXtV2); weights of conv/linear layers
   trunc-normal(std 0.02), zero biases (ConvNeXt init); PReLU slope 0.25.
9. Stochastic depth increases linearly over the blocks from 0 to 0.1 (``full``) or 0.05
   (``small``/``tiny``); ``ESGConvNeXt(drop_path_rate=...)`` overrides it.
10. Head: global average pool -> LayerNorm -> Linear (ConvNeXt head; the softmax is in the loss).

ONNX: every op exports with opset 17 (``torch.onnx.export(..., dynamo=False)``); strip pooling
and all pooling are means over fixed axes, the channel shuffle is a constant-index Gather, so
the batch axis stays dynamic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "ELA",
    "GAM",
    "GRN",
    "VARIANTS",
    "DropPath",
    "Downsample",
    "ESGBlock",
    "ESGConfig",
    "ESGConvNeXt",
    "InvertedResidualBranch",
    "LayerNorm2d",
    "ResidualBranch",
    "SimAM",
    "build",
]


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a channels-first ``[N, C, H, W]`` tensor.

    Written with means over ``dim=1`` (ONNX ``ReduceMean``/``Sqrt``), so it exports at any opset
    and never bakes in the batch size; numerically identical to ConvNeXt's channels-first LN.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise every pixel's channel vector, then scale and shift per channel."""
        mean = x.mean(dim=1, keepdim=True)
        var = (x - mean).pow(2).mean(dim=1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class GRN(nn.Module):
    """Global Response Normalisation of ConvNeXtV2 (channels-first form).

    ``G = ||x||_2`` over H, W per channel; ``N = G / (mean_c G + eps)``;
    ``y = gamma * (x * N) + beta + x`` with ``gamma = beta = 0`` at init (identity).
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply GRN to ``[N, C, H, W]``."""
        gx = torch.linalg.vector_norm(x, ord=2, dim=(2, 3), keepdim=True)
        nx = gx / (gx.mean(dim=1, keepdim=True) + self.eps)
        return self.gamma * (x * nx) + self.beta + x


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample (identity in eval mode)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Zero the branch of a random subset of samples and rescale the rest by ``1/(1-p)``."""
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        """Show the drop probability in ``print(model)``."""
        return f"p={self.p:.3f}"


class ELA(nn.Module):
    """Efficient Local Attention (Sec. "ConvNeXt module ...", Eqs. (1)-(5), Fig. 3d).

    Strip pooling (mean over W gives the per-row vector ``z^h``, mean over H the per-column
    vector ``z^w``), a depthwise 1-D convolution with kernel 5, GroupNorm and a sigmoid per
    direction; the output is ``x * y^h * y^w``. The 1-D conv and GN are shared by the two
    directions (as in the ELA reference design).
    """

    def __init__(self, channels: int, kernel_size: int = 5, gn_groups: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv1d(
            channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, bias=False
        )
        self.gn = nn.GroupNorm(math.gcd(gn_groups, channels), channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Re-weight ``[N, C, H, W]`` by row and column attention."""
        z_h = x.mean(dim=3)  # [N, C, H], Eq. (1)
        z_w = x.mean(dim=2)  # [N, C, W], Eq. (2)
        y_h = torch.sigmoid(self.gn(self.conv(z_h)))  # Eq. (3)
        y_w = torch.sigmoid(self.gn(self.conv(z_w)))  # Eq. (4)
        return x * y_h.unsqueeze(3) * y_w.unsqueeze(2)  # Eq. (5)


class SimAM(nn.Module):
    """Parameter-free 3-D attention SimAM (Eqs. (6)-(10), Fig. 3b).

    Inverse minimal energy per neuron, ``1/e* = (t - mu)^2 / (4 (sigma^2 + lambda)) + 1/2``,
    with ``mu, sigma^2`` the per-channel spatial mean and (M-1)-normalised variance; the output
    is ``sigmoid(1/E) * x`` (Eq. (10)).
    """

    def __init__(self, lam: float = 1e-4) -> None:
        super().__init__()
        self.lam = lam

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Weight every neuron of ``[N, C, H, W]`` by its distinctiveness."""
        n = x.shape[2] * x.shape[3] - 1
        d = (x - x.mean(dim=(2, 3), keepdim=True)).pow(2)
        var = d.sum(dim=(2, 3), keepdim=True) / n
        e_inv = d / (4 * (var + self.lam)) + 0.5
        return x * torch.sigmoid(e_inv)

    def extra_repr(self) -> str:
        """Show lambda in ``print(model)``."""
        return f"lambda={self.lam:g}"


class GAM(nn.Module):
    """Global Attention Mechanism (Eqs. (11)-(12), Figs. 3c, 4, 5).

    Channel attention ``M_C``: a two-layer MLP (reduction ``ratio``, ReLU) applied to every
    pixel's channel vector -- the paper's permute -> MLP -> inverse permute, written as two
    1x1 convolutions -- then a sigmoid; ``F2 = M_C(F1) * F1``.
    Spatial attention ``M_S``: 7x7 conv ``C -> C/r_s`` + BN + ReLU, 7x7 conv ``C/r_s -> C``
    + BN, sigmoid; ``F3 = M_S(F2) * F2``. ``r_s = spatial_ratio`` (defaults to ``ratio``).
    With ``groups > 1`` both 7x7 convs are grouped and the reduced channels are shuffled between
    them (the GAM paper's parameter-saving option).
    """

    def __init__(
        self, channels: int, ratio: int = 4, spatial_ratio: int | None = None, groups: int = 1
    ) -> None:
        super().__init__()
        hidden = max(channels // ratio, 1)
        mid = max(channels // (ratio if spatial_ratio is None else spatial_ratio), 1)
        if channels % groups or mid % groups:
            raise ValueError(f"GAM groups={groups} must divide {channels} and {mid}")
        self.channel_mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
        )
        self.spatial_in = nn.Sequential(
            nn.Conv2d(channels, mid, 7, padding=3, groups=groups, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
        )
        self.spatial_out = nn.Sequential(
            nn.Conv2d(mid, channels, 7, padding=3, groups=groups, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.groups = groups
        # channel shuffle as a fixed gather (ONNX Gather on axis 1: no batch-size reshape)
        perm = torch.arange(mid).view(groups, mid // groups).t().reshape(-1)
        self.register_buffer("shuffle", perm, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Channel then spatial attention on ``[N, C, H, W]``."""
        x = x * torch.sigmoid(self.channel_mlp(x))  # Eq. (11)
        s = self.spatial_in(x)
        if self.groups > 1:
            s = s.index_select(1, self.shuffle)
        return x * torch.sigmoid(self.spatial_out(s))  # Eq. (12)


class ResidualBranch(nn.Module):
    """Parallel branch 1 ("block1", Fig. 6): residual-block style, PReLU activations.

    3x3 conv ``C -> C/r`` + BN + PReLU, 3x3 conv ``C/r -> C/r`` + BN + PReLU, 1x1 conv
    ``C/r -> C`` (raises the channels back) + BN. The last BN's gamma starts at zero.
    """

    def __init__(self, channels: int, reduction: int = 2) -> None:
        super().__init__()
        mid = max(channels // reduction, 1)
        self.body = nn.Sequential(
            nn.Conv2d(channels, mid, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid),
            nn.PReLU(mid),
            nn.Conv2d(mid, mid, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid),
            nn.PReLU(mid),
            nn.Conv2d(mid, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the branch output (the shared identity is added by :class:`ESGBlock`)."""
        return self.body(x)


class InvertedResidualBranch(nn.Module):
    """Parallel branch 2 ("block2", Fig. 6): inverted residual + SimAM.

    1x1 conv ``C -> tC`` + BN + PReLU, 3x3 depthwise conv + BN + PReLU, 1x1 conv ``tC -> C`` +
    BN (linear bottleneck, gamma starts at zero), then :class:`SimAM`.
    """

    def __init__(self, channels: int, expansion: int = 4) -> None:
        super().__init__()
        hidden = channels * expansion
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.PReLU(hidden),
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.PReLU(hidden),
            nn.Conv2d(hidden, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.simam = SimAM()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the branch output (the shared identity is added by :class:`ESGBlock`)."""
        return self.simam(self.body(x))


@dataclass(frozen=True)
class ESGConfig:
    """Width/depth and attention/branch sizes of an ESG-ConvNeXt variant."""

    dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    drop_path: float
    gam_ratio: int = 4
    gam_spatial_ratio: int = 4
    gam_groups: int = 1
    rb_reduction: int = 2
    irb_expansion: int = 4
    ela_kernel: int = 5
    ela_groups: int = 16
    mlp_ratio: int = 4


class ESGBlock(nn.Module):
    """ESG-ConvNeXt block (Fig. 3a) with the parallel branches of Fig. 6.

    ConvNeXtV2 path: 7x7 depthwise conv -> **ELA** -> LN -> 1x1 conv (C -> 4C) -> **SimAM** ->
    GELU -> GRN -> 1x1 conv (4C -> C) -> **GAM**. It runs in parallel with
    :class:`ResidualBranch` and :class:`InvertedResidualBranch`; the three outputs are summed,
    passed through stochastic depth and added to the input.
    """

    def __init__(self, dim: int, cfg: ESGConfig, drop_path: float = 0.0) -> None:
        super().__init__()
        hidden = cfg.mlp_ratio * dim
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.ela = ELA(dim, cfg.ela_kernel, cfg.ela_groups)
        self.norm = LayerNorm2d(dim)
        self.pwconv1 = nn.Conv2d(dim, hidden, 1)
        self.simam = SimAM()
        self.act = nn.GELU()
        self.grn = GRN(hidden)
        self.pwconv2 = nn.Conv2d(hidden, dim, 1)
        self.gam = GAM(dim, cfg.gam_ratio, cfg.gam_spatial_ratio, cfg.gam_groups)
        self.rb = ResidualBranch(dim, cfg.rb_reduction)
        self.irb = InvertedResidualBranch(dim, cfg.irb_expansion)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x + drop_path(convnext_esg(x) + rb(x) + irb(x))`` on ``[N, C, H, W]``."""
        y = self.ela(self.dwconv(x))  # first conv -> ELA
        y = self.simam(self.pwconv1(self.norm(y)))  # second conv -> SimAM
        y = self.pwconv2(self.grn(self.act(y)))
        y = self.gam(y)  # last conv -> GAM
        y = y + self.rb(x) + self.irb(x)
        return x + self.drop_path(y)


class Downsample(nn.Module):
    """Improved downsampling layer (Fig. 8b): LN -> 2x2 stride-2 conv -> PReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.norm = LayerNorm2d(cin)
        self.conv = nn.Conv2d(cin, cout, 2, stride=2)
        self.act = nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Halve H and W, change channels ``cin -> cout``."""
        return self.act(self.conv(self.norm(x)))


class ESGConvNeXt(nn.Module):
    """ESG-ConvNeXt classifier (Fig. 2): stem, four stages, global pool, LN, linear head.

    Args:
        num_classes: number of output logits.
        in_channels: image channels.
        config: widths/depths/branch sizes (see :data:`VARIANTS`).
        drop_path_rate: maximum stochastic-depth rate (linearly increasing over the blocks);
            ``None`` takes ``config.drop_path`` (0.1 for ``full``, 0.05 for ``small``/``tiny``).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        config: ESGConfig | None = None,
        drop_path_rate: float | None = None,
    ) -> None:
        super().__init__()
        cfg = config if config is not None else VARIANTS["full"]
        rate = cfg.drop_path if drop_path_rate is None else drop_path_rate
        dims = cfg.dims
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, dims[0], 4, stride=4), LayerNorm2d(dims[0])
        )
        total = sum(cfg.depths)
        rates = [rate * i / max(total - 1, 1) for i in range(total)]
        self.downsample = nn.ModuleList(
            [nn.Identity()] + [Downsample(dims[i - 1], dims[i]) for i in range(1, len(dims))]
        )
        stages: list[nn.Module] = []
        k = 0
        for dim, depth in zip(dims, cfg.depths, strict=True):
            stages.append(nn.Sequential(*[ESGBlock(dim, cfg, rates[k + j]) for j in range(depth)]))
            k += depth
        self.stages = nn.ModuleList(stages)
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)
        self.config = cfg
        self.apply(self._init_weights)
        for m in self.modules():  # parallel branches start switched off (zero last-BN gamma)
            if isinstance(m, ResidualBranch | InvertedResidualBranch):
                nn.init.zeros_(m.body[-1].weight)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[N, C_in, H, W]`` to the pooled, normalised ``[N, dims[-1]]`` feature."""
        x = self.stem(x)
        for down, stage in zip(self.downsample, self.stages, strict=True):
            x = stage(down(x))
        return self.norm(x.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits ``[N, num_classes]``."""
        return self.head(self.forward_features(x))


VARIANTS: dict[str, ESGConfig] = {
    # ConvNeXtV2-Tiny widths/depths (3:3:9:3 = the 1:1:3:1 ratio), GAM r = 4 as in GAM.
    "full": ESGConfig(
        dims=(96, 192, 384, 768),
        depths=(3, 3, 9, 3),
        drop_path=0.1,
        gam_ratio=4,
        gam_spatial_ratio=4,
        rb_reduction=2,
        irb_expansion=4,
    ),
    # CPU variants: every block kept, one block per "1" of 1:1:3:1, thinner spatial GAM/branches.
    "small": ESGConfig(
        dims=(24, 48, 96, 192),
        depths=(1, 1, 3, 1),
        drop_path=0.05,
        gam_ratio=4,
        gam_spatial_ratio=12,
        rb_reduction=4,
        irb_expansion=2,
    ),
    "tiny": ESGConfig(
        dims=(16, 32, 64, 128),
        depths=(1, 1, 3, 1),
        drop_path=0.05,
        gam_ratio=4,
        gam_spatial_ratio=16,
        rb_reduction=4,
        irb_expansion=2,
    ),
}


def build(num_classes: int, in_channels: int = 3, variant: str = "full") -> nn.Module:
    """Build ESG-ConvNeXt (``"full"``, ``"small"``, ``"tiny"``, or ``"lite0/1/2"`` =
    :class:`ESGLite` on ImageNet EfficientNet-Lite) returning ``[N, C]`` logits."""
    if variant.startswith("lite"):
        return ESGLite(num_classes, in_channels, variant)
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {sorted(VARIANTS)}")
    return ESGConvNeXt(num_classes=num_classes, in_channels=in_channels, config=VARIANTS[variant])


class ESGLite(nn.Module):
    """ESG attention on an ImageNet-pretrained EfficientNet-Lite encoder (``lite*`` variants).

    The encoder's stride-32 features go through the paper's serial ELA -> SimAM -> GAM
    attention, added back through a learnt scale that starts at zero (so training starts from
    the pretrained features), then the pretrained 1280-channel head, global average pooling,
    dropout and a linear classifier. See :mod:`models.arch.efficientnet_lite` for the weights.
    """

    def __init__(self, num_classes: int, in_channels: int, size: str, pretrained: bool = True):
        super().__init__()
        from models.arch.efficientnet_lite import INPUT_NORM, pretrained_encoder

        self.encoder = pretrained_encoder(size, in_channels, pretrained=pretrained)
        c = self.encoder.channels[-1]
        self.attention = nn.Sequential(ELA(c, 5, 16), SimAM(), GAM(c, ratio=4, spatial_ratio=8))
        self.attention_scale = nn.Parameter(torch.zeros(1))
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(self.encoder.head_channels, num_classes)
        self.input_norm = INPUT_NORM

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits ``[N, num_classes]``."""
        f = self.encoder(x)[-1]
        f = f + self.attention_scale * self.attention(f)
        f = self.encoder.head(f).mean(dim=(2, 3))
        return self.fc(self.dropout(f))
