"""The VGG variant of Khaireddin & Chen 2021, "Facial Emotion Recognition: State of the Art Performance
on FER2013" (arXiv 2105.03588), as their public code builds it (github.com/usef-kh/fer, models/vgg.py):
four stages of two 3x3 convolutions (64, 128, 256, 512 channels, padding 1, bias kept) each followed by
BatchNorm and ReLU, a 2x2 max pool after each stage, then FC 2048 > 4096 > 4096 > 7 with dropout before
each hidden ReLU. Input: 40x40 grayscale crops of the 48-px images, x/255 (data/fer2013.py: TenCrop(40),
Normalize(0, 255)); 40 px pooled four times leaves 2x2x512. The code's Vgg() default dropout is 0.2
(utils/hparams.py's 'drop': 0.1 is never passed to the network, utils/setup_network.py).
"""
from __future__ import annotations

from torch import nn

from .adapter import InputSpec
from ._table import ModelInfo, register_model


def _stage(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(2)]


@register_model(ModelInfo("vgg_khaireddin", "khaireddin", "khaireddin, code models/vgg.py (Vgg); paper Fig. 1",
                          InputSpec(40, 1),
                          notes="4 stages of 2x (conv3x3 + BN + ReLU) with 64/128/256/512 channels and a 2x2 max "
                          "pool each; FC 2048 > 4096 > 4096 > 7, dropout 0.2 before each hidden ReLU; 40x40x1 "
                          "crops, x/255 (all from the public code)"))
def vgg_khaireddin(num_classes: int = 7, drop: float = 0.2) -> nn.Module:
    layers: list[nn.Module] = []
    for cin, cout in ((1, 64), (64, 128), (128, 256), (256, 512)):
        layers += _stage(cin, cout)
    return nn.Sequential(*layers, nn.Flatten(),
                         nn.Linear(512 * 2 * 2, 4096), nn.Dropout(drop), nn.ReLU(inplace=True),
                         nn.Linear(4096, 4096), nn.Dropout(drop), nn.ReLU(inplace=True),
                         nn.Linear(4096, num_classes))
