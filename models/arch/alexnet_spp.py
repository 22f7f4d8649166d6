"""AlexNet-SPP feature extractor of the AlexNet-SVM OK/NG screen (``alexnet_svm``).

Implemented from Cai, "Defect recognition and localisation model based on improved
Alexnet-SVM and Fast RCNN", Sec. 2.1 and 3.1. The paper keeps
AlexNet's five convolutional layers (Sec. 2.1.1, Fig. 2, Eqs. (1)-(4)), "uses SPP to improve
the size and number of kernels", drops the 4096-wide fully connected layers and takes the
global average pool of pool5 (256 values, Sec. 3.1.2 (1)) as the input of an SSA-tuned SVM.
The figures that carry the exact layout are missing from the text we have, so the concrete
choices below are ours.

Block map (paper -> code)
-------------------------
* CL1-CL5 with ReLU (Eq. 2) and max pooling (Eq. 3) after CL1 and CL2: :class:`AlexNetSPP`
  ``conv1`` ... ``conv5``, ``pool1``, ``pool2``.
* "SPP to improve the size and number of kernels", two places:

  - :class:`SPPBlock` after CL5 -- parallel stride-1 max pools with several kernel sizes
    (identity, 5, 9, 13) over the CL5 map, concatenated (4 x 256 channels) and fused back to 256
    channels by a 1x1 convolution (the SPP module of YOLOv3-SPP). Each location is pooled over
    several window sizes, so a thin crack's response spreads over a neighbourhood.
  - pool5 is SPP-net's spatial pyramid max pooling (:class:`PyramidMaxPool`, levels 1 x 1,
    2 x 2 and 4 x 4 = 21 bins) instead of AlexNet's 3 x 3 / 2 max pool. The network has no
    fixed-size layer, so it takes any input aspect ratio: the released screen runs on an
    aspect-preserving 512 x 208 (H x W) input instead of the paper's squeezed 227 x 227 (the
    comparison we measured, 384 x 160 included, is in ``models/zoo/alexnet_svm.md``).

* Feature vector (Sec. 3.1.2 (1)): :meth:`AlexNetSPP.features` = global average of pool5's
  outputs (the 21 pyramid bins) -> ``[N, 256]``. With AlexNet's pool5 a defect covering 1-3 of
  the ~100 cells of the map moves the global average only a little; averaging pyramid maxima
  keeps a local peak visible (a design argument, not an ablation we re-measured;
  ``pool5="max3"`` restores AlexNet's pool).
* FCL6-FCL8 are replaced by a small head used only for fine-tuning: batch norm + dropout + one
  linear layer on the 256-d feature vector (:meth:`AlexNetSPP.forward`), so training optimises
  exactly the features the SVM sees. The batch norm plays the part of the SVM's
  ``StandardScaler``; a linear head keeps the features nearly linearly separable.

Choices
-------
1. Number of kernels (lightweight, the paper's 10.23 MB model): ``full`` uses the single-tower
   AlexNet widths 64-192-384-256-256 (2.72 M parameters incl. SPP block); ``small``
   48-128-192-192-256 (1.42 M), which trains within the 2-core CPU budget and is the
   released one (FLOPs at the released input size in the card). CL5 always has 256 kernels
   so the SVM feature is 256-d as in the paper.
2. Kernel sizes: CL1 11 x 11 stride 4, CL2 5 x 5, CL3-CL5 3 x 3 as in AlexNet, "same" padding
   (the output-size rule of Eq. (4) with P = F // 2), overlapping 3 x 3 / 2 max pools.
3. Batch normalisation after every convolution instead of local response normalisation: the
   network is trained from scratch (no pretrained weights offline) on ~250 images.
4. Input: gray, one channel (KolektorSDD is gray); ``in_channels`` is configurable. The first
   layer standardises each image (``InstanceNorm2d`` without affine parameters): the features
   become invariant to the global brightness/contrast changes that the paper's brightness
   augmentation simulates (LED drift), instead of having to learn that invariance (an earlier
   session reported that without it the head's loss stayed near 0.69; not re-measured).
5. :meth:`AlexNetSPP.forward_train` also returns a 1-channel defect map from a 1x1 convolution on
   the SPP output (stride 16), used only as an auxiliary loss with the KolektorSDD masks during
   training (mask supervision of the feature maps, as in segmentation-based KSDD detectors).
   It is not part of the exported graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.arch.init import init_conv_bn_linear

FEATURE_DIM = 256


@dataclass(frozen=True)
class AlexNetSPPConfig:
    """Widths of CL1-CL4 (CL5 is always 256), SPP kernels and head dropout."""

    widths: tuple[int, int, int, int]
    spp_kernels: tuple[int, ...] = (5, 9, 13)
    dropout: float = 0.3
    in_norm: bool = True
    #: pool5: AlexNet's 3x3/2 max pool ("max3") or SPP-net pyramid max pooling ("pyramid")
    pool5: str = "pyramid"
    pyramid: tuple[int, ...] = (1, 2, 4)


VARIANTS: dict[str, AlexNetSPPConfig] = {
    "full": AlexNetSPPConfig(widths=(64, 192, 384, 256)),
    "small": AlexNetSPPConfig(widths=(48, 128, 192, 192)),
}


def conv_bn(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    """Convolution (same padding) + batch norm + ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SPPBlock(nn.Module):
    """Concatenate the input with stride-1 max pools of several sizes, fuse with a 1x1 conv."""

    def __init__(self, channels: int, kernels: tuple[int, ...]) -> None:
        super().__init__()
        self.pools = nn.ModuleList(nn.MaxPool2d(k, 1, k // 2) for k in kernels)
        self.fuse = conv_bn(channels * (len(kernels) + 1), channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([x, *(p(x) for p in self.pools)], 1))


class PyramidMaxPool(nn.Module):
    """SPP-net pyramid pooling: max over an ``n x n`` grid of bins for every level ``n``.

    Returns ``[N, C, sum(n * n)]``. Bin edges follow ``adaptive_max_pool2d`` (``floor(i a / n)``
    to ``ceil((i + 1) a / n)``) and are computed from the (fixed) map size, so the ONNX export
    holds plain slices and ``ReduceMax`` for any input aspect ratio.
    """

    def __init__(self, levels: tuple[int, ...]) -> None:
        super().__init__()
        self.levels = levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = int(x.shape[2]), int(x.shape[3])
        bins = []
        for n in self.levels:
            for i in range(n):
                h0, h1 = i * h // n, -(-(i + 1) * h // n)
                for j in range(n):
                    w0, w1 = j * w // n, -(-(j + 1) * w // n)
                    bins.append(x[:, :, h0:h1, w0:w1].amax((2, 3)))
        return torch.stack(bins, 2)


class _MaxPool3(nn.Module):
    """AlexNet's overlapping 3x3 / 2 max pool, flattened to ``[N, C, bins]``."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x).flatten(2)


class AlexNetSPP(nn.Module):
    """AlexNet CL1-CL5 + SPP block + pool5 -> GAP (256-d) -> linear head."""

    def __init__(
        self, num_classes: int = 2, in_channels: int = 1, config: AlexNetSPPConfig | None = None
    ) -> None:
        super().__init__()
        cfg = config or VARIANTS["full"]
        w1, w2, w3, w4 = cfg.widths
        self.in_norm = nn.InstanceNorm2d(in_channels) if cfg.in_norm else nn.Identity()
        self.conv1 = conv_bn(in_channels, w1, 11, 4)
        self.pool1 = nn.MaxPool2d(3, 2, 1)
        self.conv2 = conv_bn(w1, w2, 5)
        self.pool2 = nn.MaxPool2d(3, 2, 1)
        self.conv3 = conv_bn(w2, w3, 3)
        self.conv4 = conv_bn(w3, w4, 3)
        self.conv5 = conv_bn(w4, FEATURE_DIM, 3)
        self.spp = SPPBlock(FEATURE_DIM, cfg.spp_kernels)
        if cfg.pool5 not in ("pyramid", "max3"):
            raise ValueError(f"pool5 must be 'pyramid' or 'max3', not {cfg.pool5!r}")
        self.pool5 = PyramidMaxPool(cfg.pyramid) if cfg.pool5 == "pyramid" else _MaxPool3()
        self.head = nn.Sequential(
            nn.BatchNorm1d(FEATURE_DIM),
            nn.Dropout(cfg.dropout),
            nn.Linear(FEATURE_DIM, num_classes),
        )
        self.aux = nn.Conv2d(FEATURE_DIM, 1, 1)
        init_conv_bn_linear(self)  # BatchNorm keeps PyTorch's own unit/zero init

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """SPP output before pool5 (``[N, 256, H/16, W/16]``)."""
        x = self.pool1(self.conv1(self.in_norm(x)))
        x = self.pool2(self.conv2(x))
        return self.spp(self.conv5(self.conv4(self.conv3(x))))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Global average of pool5's outputs: the 256-d vector the SVM classifies."""
        return self.pool5(self.feature_map(x)).mean(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fine-tuning logits ``[N, num_classes]`` from the GAP features."""
        return self.head(self.features(x))

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the auxiliary defect-map logits (``[N, 1, H/16, W/16]``)."""
        fmap = self.feature_map(x)
        return self.head(self.pool5(fmap).mean(2)), self.aux(fmap)


class FeatureExtractor(nn.Module):
    """Wraps a trained :class:`AlexNetSPP` so that ``forward`` returns the 256-d features."""

    def __init__(self, net: AlexNetSPP) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)


def aux_target(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Binary defect mask ``[N, 1, H, W]`` (0/1 float) max-pooled to the defect-map size."""
    return F.adaptive_max_pool2d(mask, size)


def build(num_classes: int, in_channels: int = 1, variant: str = "full") -> nn.Module:
    """Build AlexNet-SPP; ``variant`` is ``"full"`` or ``"small"``."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {sorted(VARIANTS)}")
    return AlexNetSPP(num_classes=num_classes, in_channels=in_channels, config=VARIANTS[variant])
