"""Weight initialisation shared by the from-scratch networks."""

from __future__ import annotations

from torch import nn


def init_conv_bn_linear(model: nn.Module) -> None:
    """Kaiming-normal (fan-out, ReLU) convolutions, unit/zero BatchNorm, N(0, 0.01) linear
    layers, zero biases — the papers' "Gaussian weights, constant bias"."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
