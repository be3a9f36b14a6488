"""DCNN with ELU from "Facial Expression Recognition Using Deep CNNs: A FER2013 Study"
(shared/papers/004), section "3.3. Model Architecture": three blocks of two convolutions (64@5x5,
128@3x3, 256@3x3), ELU, he_normal initialization, batch normalization, 2x2 max pooling, dropout
0.4/0.4/0.5, then dense128 ELU > BN > dropout 0.6 > softmax over 3 classes (happy, sad, neutral).
Written with TensorFlow 2.6 / Keras ("4.2. Software and Hardware"). Keras' he_normal is a normal
truncated at two standard deviations (ferbench.models.keras.he_normal_); torch's kaiming_normal_
below is not truncated. Padding is not stated; 'same' is assumed (Keras' default would be 'valid').
"""
from __future__ import annotations

from torch import nn

from .adapter import InputSpec
from ._table import ModelInfo, register_model


def _block(cin: int, cout: int, k: int, drop: float) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, padding=k // 2), nn.ELU(), nn.BatchNorm2d(cout),
            nn.Conv2d(cout, cout, k, padding=k // 2), nn.ELU(), nn.BatchNorm2d(cout),
            nn.MaxPool2d(2), nn.Dropout(drop)]


@register_model(ModelInfo("dcnn_elu", "three_class", "three_class, 3.3. Model Architecture", InputSpec(),
                          notes="ELU + he_normal for every conv and dense kernel (named in Block 1 and for "
                          "the network in 3.3), zero biases; conv > ELU > BN order; 'same' padding assumed",
                          keras_kernel_init="he_normal"))
def dcnn_elu(num_classes: int = 3) -> nn.Module:
    net = nn.Sequential(*_block(1, 64, 5, 0.4), *_block(64, 128, 3, 0.4), *_block(128, 256, 3, 0.5),
                        nn.Flatten(), nn.Linear(256 * 6 * 6, 128), nn.ELU(), nn.BatchNorm1d(128),
                        nn.Dropout(0.6), nn.Linear(128, num_classes))
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")  # Keras he_normal: std sqrt(2/fan_in)
            nn.init.zeros_(m.bias)
    return net
