"""Grad-CAM puts its heat where the class is decided."""
import numpy as np
import torch
from torch import nn

from ferbench.gradcam import gradcam
from ferbench.models import FERModel, InputSpec


def _blob_images(n: int, rng: np.random.Generator):
    """Class 0: a bright blob in the left half; class 1: in the right half; noise elsewhere."""
    x = rng.integers(0, 60, (n, 48, 48)).astype(np.uint8)
    y = rng.integers(0, 2, n)
    for i in range(n):
        r, c = rng.integers(10, 38), rng.integers(6, 18) + 24 * y[i]
        x[i, r - 4:r + 4, c - 4:c + 4] = 255
    return x, y


def test_heat_lies_on_the_deciding_region():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d((4, 4)), nn.Flatten(), nn.Linear(128, 2))
    model = FERModel(net, InputSpec(), num_classes=2)
    x, y = _blob_images(512, rng)
    xt, yt = torch.from_numpy(x).float().div(255).unsqueeze(1), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(100):
        idx = torch.randint(0, len(x), (64,))
        loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    test, ty = _blob_images(16, np.random.default_rng(1))
    assert (model(torch.from_numpy(test).float().div(255).unsqueeze(1)).argmax(1).numpy() == ty).mean() >= 0.9
    cams = gradcam(model, test, torch.device("cpu"))
    assert cams.shape == (16, 48, 48) and cams.min() >= 0 and cams.max() <= 1
    for cam, img in zip(cams, test):
        blob = img == 255
        # the blob covers 64 of 2,304 pixels; it holds most of the heat
        assert cam[blob].mean() > 2 * cam[~blob].mean()
