"""CNN, ResNet, MobileNetV2 and ViT-tiny from the "Facial Expression Recognition Report"
(shared/papers/003), section "Model Building" ("CNN Model" to "Vision Transformer (ViT) Model").

The study does not give the ResNet's depth nor MobileNetV2's input size and head; a three-stage
residual network and a 96x96 MobileNetV2 input with a GAP > dense128 > dropout head are our stated
choices. MobileNetV2 trains its head with the base frozen first, then unfreezes the top N base layers
at a lower learning rate (engine options ``freeze_epochs``, ``unfreeze_top``, ``unfreeze_lr_factor``;
ferbench counts N in feature blocks, Keras in layers). CNN, ResNet and MobileNetV2 were Keras models
(ImageDataGenerator, Keras callbacks): the suite turns on Keras' layer defaults for them
(ferbench.models.keras); ViT-tiny came from timm (PyTorch) and keeps torch's.
"""
from __future__ import annotations

from torch import nn

from .adapter import IMAGENET_MEAN, IMAGENET_STD, InputSpec
from .layers import ResidualBlock, TransferNet, conv_bn_relu
from .pretrained import timm_pretrained, torchvision_state_dict

_MOBILENET = "torchvision:MobileNet_V2_Weights.IMAGENET1K_V1"
_VIT = "timm:vit_tiny_patch16_224"
from ._table import ModelInfo, register_model

_PAPER = "augmented, 'Model Building'"


@register_model(ModelInfo("cnn3", "augmented", _PAPER + " / CNN Model", InputSpec(),
                          notes="3 blocks of one conv3x3 ('same' padding) 32/64/128 + BN + ReLU + 2x2 pool + dropout 0.25 > dense512 > "
                          "dropout 0.5 > 7 softmax (dropout rates assumed)"))
def cnn3(num_classes: int = 7) -> nn.Module:
    layers: list[nn.Module] = []
    cin = 1
    for cout in (32, 64, 128):
        layers += [*conv_bn_relu(cin, cout), nn.MaxPool2d(2), nn.Dropout(0.25)]
        cin = cout
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(128 * 6 * 6, 512), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(512, num_classes))


@register_model(ModelInfo("resnet_custom", "augmented", _PAPER + " / ResNet Model", InputSpec(),
                          notes="conv32 + BN > residual blocks 32, 64 (stride 2), 128 (stride 2) > GAP > dense128 > "
                          "dropout 0.3 > 7 (depth, widths and dropout assumed; the study gives residual "
                          "connections, BN + ReLU after each conv, GAP, dense layers, softmax)"))
def resnet_custom(num_classes: int = 7) -> nn.Module:
    return nn.Sequential(*conv_bn_relu(1, 32), ResidualBlock(32, 32), ResidualBlock(32, 64, 2),
                         ResidualBlock(64, 128, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(128, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, num_classes))


class _MobileNetTransfer(TransferNet):
    def backbone_blocks(self):
        return list(self.backbone[0])  # the 19 feature blocks; pooling has no parameters


@register_model(ModelInfo("mobilenet_v2_transfer", "augmented", _PAPER + " / MobileNetV2 Model",
                          InputSpec(96, 3, IMAGENET_MEAN, IMAGENET_STD), pretrained=True,
                          weights=_MOBILENET,
                          notes="ImageNet MobileNetV2 (torchvision weights; 96x96 RGB input and ImageNet mean/std "
                          "assumed, the study scaled pixels to [0, 1]), GAP > dense128 > dropout 0.3 > 7 "
                          "(the head 'mirrors the ResNet approach'); head first with the base frozen, then "
                          "the top N feature blocks unfrozen at a lower LR while the head keeps its own (N, epochs and LR not given)",
                          cpu_bf16=False))  # depthwise conv backward is 0.64x fp32's speed under bf16 on AMX
def mobilenet_v2_transfer(num_classes: int = 7, pretrained: bool = True, weights: str | None = None) -> nn.Module:
    from torchvision.models import mobilenet_v2

    net = mobilenet_v2()
    if pretrained:
        net.load_state_dict(torchvision_state_dict("mobilenet_v2_transfer", _MOBILENET, weights))
    backbone = nn.Sequential(net.features, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return _MobileNetTransfer(backbone, nn.Sequential(nn.Linear(1280, 128), nn.ReLU(), nn.Dropout(0.3),
                                                      nn.Linear(128, num_classes)))


@register_model(ModelInfo("vit_tiny", "augmented", _PAPER + " / Vision Transformer (ViT) Model",
                          InputSpec(224, 3, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)), pretrained=True,
                          weights=_VIT,
                          notes="timm vit_tiny_patch16_224 (ImageNet), new linear head, fine-tuned end to end at 224 px; "
                          "mean/std 0.5 as timm's weights expect (the study scaled pixels to [0, 1])",
                          cpu_bf16=False))  # bf16 training step 1.35x slower than fp32 on AMX (48 px, measured)
def vit_tiny(num_classes: int = 7, pretrained: bool = True, weights: str | None = None) -> nn.Module:
    import timm

    # dynamic_img_size lets CPU profiles run it below 224 px (position embeddings are resampled).
    if pretrained:
        return timm_pretrained("vit_tiny", _VIT, num_classes, weights, dynamic_img_size=True)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=num_classes, dynamic_img_size=True)
