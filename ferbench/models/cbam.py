"""EmotionCNN, CNN with fixed custom kernels, SimpleResNetFER and CNN+CBAM from the
"Facial Expression Recognition Project" (shared/papers/002), section "Model Architectures" (items
1-4); normalization (mean 0.5, std 0.5) from "Dataset and Preprocessing".

The fixed kernel layer is a non-trainable 3x3 convolution with 5 filters. The study gives the count
("Custom Kernel Layer (5 filters)") and says it "Applies edge and shape filters like Sobel and
Laplacian"; it names no other filter, so Sobel x, Sobel y, Laplacian and the two diagonal Sobel
kernels are our stated choice. CBAM follows Woo et al. 2018: channel attention (shared MLP over avg-
and max-pooled descriptors) then spatial attention (7x7 conv over channel-wise avg and max); the
study gives no reduction ratio or kernel size. Class-weighted cross-entropy ("Challenges"; the same
loss for every model per "Loss Function and Optimizer") and L2 ("Results") are training options
(engine). The study used PyTorch (inferred from its torchvision-style transforms): torch's defaults.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .adapter import InputSpec
from .layers import ResidualBlock, conv_bn_relu
from ._table import ModelInfo, register_model

_PAPER = "cbam, 'Model Architectures'"
# Normalized to mean 0.5, std 0.5 as the study did.
_SPEC = InputSpec(48, 1, (0.5,), (0.5,))

FIXED_KERNELS = {
    "sobel_x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "sobel_y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "sobel_diag": [[0, 1, 2], [-1, 0, 1], [-2, -1, 0]],
    "sobel_antidiag": [[-2, -1, 0], [-1, 0, 1], [0, 1, 2]],
}


class FixedKernels(nn.Module):
    """A 1 -> 5 channel convolution with hand-made, frozen filters (a buffer, not a parameter)."""

    def __init__(self):
        super().__init__()
        w = torch.tensor(list(FIXED_KERNELS.values()), dtype=torch.float32).unsqueeze(1)
        self.register_buffer("weight", w)

    out_channels = len(FIXED_KERNELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight.to(x.dtype), padding=1)


class ChannelAttention(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, channels, 1))

    def forward(self, x):
        return torch.sigmoid(self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1)))


class SpatialAttention(nn.Module):
    def __init__(self, kernel: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2)

    def forward(self, x):
        return torch.sigmoid(self.conv(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))


class CBAM(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention()

    def forward(self, x):
        x = x * self.channel(x)
        return x * self.spatial(x)


def _conv_pool_drop(cin: int, cout: int, drop: float = 0.25) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(drop)]


def _three_convs(cin: int) -> list[nn.Module]:
    return [*_conv_pool_drop(cin, 32), *_conv_pool_drop(32, 64), *_conv_pool_drop(64, 128),
            nn.Flatten(), nn.Linear(128 * 6 * 6, 256), nn.ReLU(), nn.Dropout(0.5)]


@register_model(ModelInfo("emotion_cnn", "cbam", _PAPER, _SPEC,
                          notes="conv 32/64/128 (3x3, 'same', ReLU), each + 2x2 pool + dropout 0.25 > FC256 > dropout "
                          "0.5 > 7. The study lists pool + dropout after conv 1 and 2 only; ferbench also "
                          "pools after conv 3. Widths of the FC layers and dropout rates assumed"))
def emotion_cnn(num_classes: int = 7) -> nn.Module:
    return nn.Sequential(*_three_convs(1), nn.Linear(256, num_classes))


@register_model(ModelInfo("kernel_cnn", "cbam", _PAPER, _SPEC,
                          notes="fixed 5-filter kernel layer (Sobel x/y and Laplacian named by the study; the two "
                          "diagonal Sobel kernels our choice) > the emotion_cnn body"))
def kernel_cnn(num_classes: int = 7) -> nn.Module:
    return nn.Sequential(FixedKernels(), *_three_convs(FixedKernels.out_channels), nn.Linear(256, num_classes))


@register_model(ModelInfo("simple_resnet_fer", "cbam", _PAPER, _SPEC,
                          notes="fixed kernels > conv32 + BN > residual blocks 64/128/256 > GAP > FC 7; strides (2 per "
                          "block) and 1x1 projection shortcuts assumed"))
def simple_resnet_fer(num_classes: int = 7) -> nn.Module:
    return nn.Sequential(FixedKernels(), *conv_bn_relu(FixedKernels.out_channels, 32),
                         ResidualBlock(32, 64, 2), ResidualBlock(64, 128, 2), ResidualBlock(128, 256, 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, num_classes))


@register_model(ModelInfo("cbam_cnn", "cbam", _PAPER + " (4. CustomFERCNN with CBAM and Kernels)", _SPEC,
                          notes="fixed kernels > [conv3x3 + BN + ReLU > CBAM > 2x2 pool] x 64/128/256 > FC512 > "
                          "dropout 0.5 > 7 (the study: 'Flatten + FC Layer (512 → 7)' with dropout; rate, "
                          "BatchNorm and CBAM reduction 16 assumed)"))
def cbam_cnn(num_classes: int = 7) -> nn.Module:
    layers: list[nn.Module] = [FixedKernels()]
    cin = FixedKernels.out_channels
    for cout in (64, 128, 256):
        layers += [*conv_bn_relu(cin, cout), CBAM(cout), nn.MaxPool2d(2)]
        cin = cout
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(256 * 6 * 6, 512), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(512, num_classes))
