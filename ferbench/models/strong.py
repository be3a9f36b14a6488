"""ferbench's own strong 48-px networks (suites/strong.yaml): not from a study, chosen for accuracy per
CPU-second on FER2013.

``strong_vgg``: Khaireddin & Chen's VGG layout (four stages of two conv3x3 + BN + ReLU and a 2x2 max
pool) at a chosen width, on the full 48-px image, with global average pooling and one dropout + linear
head instead of their 4096-wide FC layers (which hold 80 % of their 30 M parameters). ``strong_resnet``:
the same widths as a pre-activation-free ResNet (two residual blocks per stage).
"""
from __future__ import annotations

from torch import nn

from .adapter import InputSpec
from .layers import ResidualBlock, conv_bn_relu
from ._table import ModelInfo, register_model

_WHERE = "ferbench's own recipe (suites/strong.yaml, docs/strong.md)"


def _vgg_stage(cin: int, cout: int) -> list[nn.Module]:
    return [*conv_bn_relu(cin, cout), *conv_bn_relu(cout, cout), nn.MaxPool2d(2)]


@register_model(ModelInfo("strong_vgg", "strong", _WHERE, InputSpec(),
                          notes="4 stages of 2x (conv3x3 + BN + ReLU), widths w, 2w, 4w, 8w (w = 32 by default), "
                          "2x2 max pool each; global average pooling > dropout > linear"))
def strong_vgg(num_classes: int = 7, width: int = 32, drop: float = 0.3) -> nn.Module:
    layers: list[nn.Module] = []
    cin = 1
    for mult in (1, 2, 4, 8):
        layers += _vgg_stage(cin, width * mult)
        cin = width * mult
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(drop),
                         nn.Linear(cin, num_classes))


@register_model(ModelInfo("strong_resnet", "strong", _WHERE, InputSpec(),
                          notes="conv3x3 stem (w) > 4 stages of 2 residual blocks, widths w, 2w, 4w, 8w (stride 2 from "
                          "the second stage; w = 32 by default) > global average pooling > dropout > linear"))
def strong_resnet(num_classes: int = 7, width: int = 32, drop: float = 0.3) -> nn.Module:
    layers: list[nn.Module] = [*conv_bn_relu(1, width)]
    cin = width
    for i, mult in enumerate((1, 2, 4, 8)):
        cout = width * mult
        layers += [ResidualBlock(cin, cout, 1 if i == 0 else 2), ResidualBlock(cout, cout)]
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(drop),
                         nn.Linear(cin, num_classes))
