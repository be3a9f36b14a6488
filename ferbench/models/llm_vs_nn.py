"""MLP, CNN, RNN and ResNet-34 from "Deep Learning for Facial Expression Recognition"
(shared/papers/001), sections "4.2 Rationale" and "4.3 Methodology"; the layers are drawn in
"Figure 3: Overview of all the model architectures", an image whose widths are not in the text, so
the widths below are stated assumptions (recorded in each model's notes). All take 48x48 grayscale
without resizing; 30 epochs, Adam 1e-3, batch 64. The study used PyTorch (ResNet-34 "imported through
torchvision"), so torch's own layer defaults apply (no Keras defaults).
"""
from __future__ import annotations

import torch
from torch import nn

from .adapter import InputSpec
from .pretrained import torchvision_state_dict

_WEIGHTS = "torchvision:ResNet34_Weights.IMAGENET1K_V1"
from ._table import ModelInfo, register_model

_PAPER = "llm_vs_nn, 4.3 Methodology and Figure 3"


@register_model(ModelInfo("mlp", "llm_vs_nn", _PAPER, InputSpec(),
                          notes="flatten 2304 > 512 > 256 > 7, ReLU, dropout 0.3 (widths and dropout assumed: "
                          "Figure 3 is not in the text)"))
def mlp(num_classes: int = 7) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(48 * 48, 512), nn.ReLU(), nn.Dropout(0.3),
                         nn.Linear(512, 256), nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, num_classes))


@register_model(ModelInfo("cnn", "llm_vs_nn", _PAPER, InputSpec(),
                          notes="conv32 > pool > conv64 > pool > conv128 > pool (3x3, 'same', ReLU) > dense256 > "
                          "dropout 0.5 > 7 (widths and dropout assumed: Figure 3 is not in the text)"))
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
                          notes="image rows as a 48-step sequence: 2-layer LSTM (or cell='gru'), hidden 128, last "
                          "state > 7 (cell, depth and width assumed; the paper says only 'recurrent neural "
                          "network')"))
def rnn(num_classes: int = 7, cell: str = "lstm", hidden: int = 128, layers: int = 2) -> nn.Module:
    return RowRNN(num_classes, cell, hidden, layers)


@register_model(ModelInfo("resnet34", "llm_vs_nn", _PAPER, InputSpec(), pretrained=True, weights=_WEIGHTS,
                          notes="torchvision ResNet-34 with ImageNet weights ('pre-trained', 6.2 ResNET), fine-tuned "
                          "end to end on 48x48 grayscale (no resizing, 4.3): first conv takes 1 channel "
                          "(ImageNet RGB filters summed = gray replicated to RGB), new 7-way fc; input x/255 "
                          "(normalization not stated)"))
def resnet34(num_classes: int = 7, pretrained: bool = True, weights: str | None = None) -> nn.Module:
    from torchvision.models import resnet34 as tv_resnet34

    net = tv_resnet34()
    if pretrained:
        net.load_state_dict(torchvision_state_dict("resnet34", _WEIGHTS, weights))
    w = net.conv1.weight.detach().sum(dim=1, keepdim=True)
    net.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    net.conv1.weight.data.copy_(w)
    net.fc = nn.Linear(net.fc.in_features, num_classes)
    return net
