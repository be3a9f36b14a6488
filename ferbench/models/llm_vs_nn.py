"""MLP, CNN, RNN and ResNet-34 from "Deep Learning for Facial Expression Recognition"
(shared/papers/001), sections 4.2-4.3 and Figure 3. All take 48x48 grayscale without resizing;
30 epochs, Adam 1e-3, batch 64. Figure 3's exact layer widths are not in the text; the widths
below are stated assumptions of the same shape (recorded in each model's notes).
"""
from __future__ import annotations

import torch
from torch import nn

from .adapter import InputSpec
from .pretrained import torchvision_state_dict
from ._registry import ModelInfo, register_model

_PAPER = "llm_vs_nn, section 4.3 and Figure 3"


@register_model(ModelInfo("mlp", "llm_vs_nn", _PAPER, InputSpec(),
                          notes="flatten 2304 > 512 > 256 > 7, ReLU, dropout 0.3 (widths assumed)"))
def mlp(num_classes: int = 7) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(48 * 48, 512), nn.ReLU(), nn.Dropout(0.3),
                         nn.Linear(512, 256), nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, num_classes))


@register_model(ModelInfo("cnn", "llm_vs_nn", _PAPER, InputSpec(),
                          notes="conv32 > pool > conv64 > pool > conv128 > pool > dense256 > 7 (widths assumed)"))
def cnn(num_classes: int = 7) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(128 * 6 * 6, 256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, num_classes))


class RowRNN(nn.Module):
    """Reads the image top to bottom, one 48-pixel row per time step; classifies the last state."""

    def __init__(self, num_classes: int = 7, cell: str = "lstm", hidden: int = 128, layers: int = 2):
        super().__init__()
        if cell not in ("lstm", "gru"):
            raise ValueError(f"rnn cell must be 'lstm' or 'gru'; got {cell!r}")
        rnn_cls = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn_cls(48, hidden, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x[:, 0])  # (N, 48 rows, 48 pixels)
        return self.fc(out[:, -1])


@register_model(ModelInfo("rnn", "llm_vs_nn", _PAPER, InputSpec(),
                          notes="rows as a sequence: 2-layer LSTM (or cell='gru'), hidden 128 (assumed)"))
def rnn(num_classes: int = 7, cell: str = "lstm", hidden: int = 128, layers: int = 2) -> nn.Module:
    return RowRNN(num_classes, cell, hidden, layers)


@register_model(ModelInfo("resnet34", "llm_vs_nn", _PAPER, InputSpec(), pretrained=True, weights="torchvision:ResNet34_Weights.IMAGENET1K_V1",
                          notes="torchvision ResNet-34 fine-tuned end to end on 48x48 grayscale: first conv "
                          "takes 1 channel (ImageNet RGB filters summed), new 7-way fc"))
def resnet34(num_classes: int = 7, pretrained: bool = True, weights: str | None = None) -> nn.Module:
    from torchvision.models import ResNet34_Weights, resnet34 as tv_resnet34

    net = tv_resnet34()
    if pretrained:
        net.load_state_dict(torchvision_state_dict("resnet34", ResNet34_Weights.IMAGENET1K_V1, weights))
    w = net.conv1.weight.detach().sum(dim=1, keepdim=True)
    net.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    net.conv1.weight.data.copy_(w)
    net.fc = nn.Linear(net.fc.in_features, num_classes)
    return net
