"""Grad-CAM (Selvaraju et al. 2017) on the last convolution of a model, as two studies show."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .models import FERModel
from .models.adapter import image_batch


def last_conv(model: nn.Module) -> nn.Conv2d | None:
    """The last convolution (frozen or not: the gradient flows to its activations either way)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else None


def gradcam(model: FERModel, images: np.ndarray, device: torch.device,
            classes: np.ndarray | None = None) -> np.ndarray | None:
    """Heatmaps in [0, 1], shape (N, 48, 48), for ``classes`` (the predictions a caption shows: made in
    the evaluation's precision, which an fp32 pass here may not reproduce), else for the class this
    pass predicts; None without a convolution."""
    layer = last_conv(model.net)
    if layer is None:
        return None
    store: dict[str, torch.Tensor] = {}
    h1 = layer.register_forward_hook(lambda m, i, o: store.__setitem__("act", o))
    h2 = layer.register_full_backward_hook(lambda m, gi, go: store.__setitem__("grad", go[0]))
    try:
        model.eval().to(device)
        x = image_batch(images).float().div(255).to(device).requires_grad_(True)
        logits = model(x)
        target = logits.argmax(1, keepdim=True) if classes is None else \
            torch.as_tensor(np.asarray(classes), dtype=torch.long, device=logits.device).view(-1, 1)
        logits.gather(1, target).sum().backward()
        w = store["grad"].mean((2, 3), keepdim=True)
        cam = F.relu((w * store["act"]).sum(1, keepdim=True))
        cam = F.interpolate(cam, size=images.shape[1:3], mode="bilinear", align_corners=False)[:, 0]
        cam = cam / cam.flatten(1).amax(1).clamp_min(1e-8)[:, None, None]
        return cam.detach().cpu().numpy()
    finally:
        h1.remove()
        h2.remove()
        model.zero_grad(set_to_none=True)
