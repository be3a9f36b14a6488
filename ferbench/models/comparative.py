"""Comparative study: Basic CNN, Deep CNN and ResNet-50 transfer.

"Can You Read Emotions from Faces? A Comparative Study of Deep Learning Approaches for FER"
(shared/papers/000), sections "Model architectures" and "Model Training and Optimization"; the
Introduction gives the Deep CNN "6 convolutional layers". Written with "TensorFlow 2.10 with the Keras
API" (section "Implementation"): the suite turns on Keras' layer defaults (ferbench.models.keras).
'valid' padding is Keras' default and is kept for the Basic CNN, whose text gives every layer.
"""
from __future__ import annotations

from torch import nn

from .adapter import IMAGENET_MEAN, IMAGENET_STD, InputSpec
from .layers import TransferNet
from .pretrained import torchvision_state_dict

_WEIGHTS = "torchvision:ResNet50_Weights.IMAGENET1K_V1"
from ._table import ModelInfo, register_model

_PAPER = "comparative, 'Model architectures'"


@register_model(ModelInfo("basic_cnn", "comparative", _PAPER, InputSpec(),
                          notes="conv32-3x3 > pool > conv64-3x3 > pool > dense128 ReLU > 7 softmax, 'valid' padding "
                          "(Keras' default), as listed in 'Model architectures'"))
def basic_cnn(num_classes: int = 7) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 10 * 10, 128), nn.ReLU(), nn.Linear(128, num_classes))


def _block(cin: int, cout: int, drop: float) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.MaxPool2d(2), nn.Dropout(drop)]


@register_model(ModelInfo("deep_cnn", "comparative", _PAPER + " and Introduction ('6 convolutional layers')",
                          InputSpec(), notes="3 blocks of two 3x3 convs 32/64/128 (+ BN + ReLU) > 2x2 pool > dropout, then dense512 > "
                          "dropout 0.5 > 7. Assumed: two convs per block (from the Introduction's '6 "
                          "convolutional layers'), 'same' padding, block dropout 0.25 (the paper gives 0.5 "
                          "only for the fully connected layers)"))
def deep_cnn(num_classes: int = 7) -> nn.Module:
    return nn.Sequential(*_block(1, 32, 0.25), *_block(32, 64, 0.25), *_block(64, 128, 0.25),
                         nn.Flatten(), nn.Linear(128 * 6 * 6, 512), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(512, num_classes))


class _ResNet50Transfer(TransferNet):
    def backbone_blocks(self):
        b = self.backbone
        return [nn.Sequential(b.conv1, b.bn1), b.layer1, b.layer2, b.layer3, b.layer4]


@register_model(ModelInfo("resnet50_transfer", "comparative", _PAPER,
                          InputSpec(224, 3, IMAGENET_MEAN, IMAGENET_STD), pretrained=True, weights=_WEIGHTS,
                          notes="ImageNet ResNet-50 (torchvision weights), frozen base in inference mode, GAP > "
                          "dense256 ReLU > dropout 0.5 > 7; Adam 1e-4, mixed precision. Differs: ImageNet "
                          "mean/std input normalization, as the torchvision weights expect; the paper "
                          "rescaled to [0, 1] 'across all pipelines' (section 'Data preparation')"))
def resnet50_transfer(num_classes: int = 7, pretrained: bool = True, weights: str | None = None) -> nn.Module:
    from torchvision.models import resnet50

    backbone = resnet50()
    if pretrained:
        backbone.load_state_dict(torchvision_state_dict("resnet50_transfer", _WEIGHTS, weights))
    backbone.fc = nn.Identity()
    net = _ResNet50Transfer(backbone, nn.Sequential(nn.Linear(2048, 256), nn.ReLU(), nn.Dropout(0.5),
                                                    nn.Linear(256, num_classes)))
    # The study trains the head on a frozen ImageNet base. Without ImageNet weights ("from scratch",
    # always stated in the report) a frozen random base would learn nothing, so it trains too.
    for p in net.backbone.parameters():
        p.requires_grad = not pretrained
    return net
