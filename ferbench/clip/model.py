"""A CLIP-style model from local files (open_clip), its frozen image features, its zero-shot classifier
and a linear probe on its features.

Nothing is downloaded: a folder must hold ``open_clip_config.json`` and a weights file, a file must come
with a built-in architecture name, and the Hugging Face hub is switched offline while the model and its
tokenizer are built. Zero-shot follows CLIP's recipe as clip_benchmark runs it: each class name in every
template, text features normalised, averaged over templates and normalised again; an image's class is
the one whose text feature is nearest (cosine). The linear probe is scikit-learn's logistic regression
on normalised image features, its C the one with the best validation accuracy.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import yaml

from ..errors import DataError, FerbenchError
from ..schema.clip import CLIPModelConfig

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


def default_prompts() -> tuple[list[str], dict[str, str]]:
    """clip_benchmark's FER2013 templates and class names (ferbench/clip/fer2013.yaml)."""
    raw = yaml.safe_load(resources.files("ferbench.clip").joinpath("fer2013.yaml").read_text())
    return list(raw["templates"]), dict(raw["classnames"])


@dataclass
class LoadedCLIP:
    model: torch.nn.Module
    preprocess: object  # open_clip's evaluation transform (PIL -> tensor)
    tokenizer: object
    arch: str
    weights: str
    image_size: int


@contextlib.contextmanager
def _offline():
    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: "1" for k in keys})
    try:
        yield
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def _open_clip():
    try:
        import open_clip
    except ImportError:
        raise FerbenchError("a clip experiment needs open_clip: pip install 'ferbench[clip]' "
                            "(or pip install open_clip_torch)") from None
    return open_clip


def _source(cfg: CLIPModelConfig) -> tuple[str, str | None, str]:
    """(model name for open_clip, pretrained file or None, the weights file) from local paths only."""
    path = Path(cfg.clip)
    if path.is_dir():
        if not (path / "open_clip_config.json").is_file():
            raise DataError(f"CLIP folder {path} has no open_clip_config.json")
        weights = sorted(p for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())
        if len(weights) != 1:  # open_clip would pick one by its own preference: say which instead
            raise DataError(f"CLIP folder {path} must hold exactly one weights file ({', '.join(WEIGHT_SUFFIXES)}); it "
                            f"holds {len(weights)}{': ' + ', '.join(w.name for w in weights[:5]) if weights else ''}. "
                            "ferbench never downloads weights")
        if cfg.arch:
            raise DataError(f"clip: {path} is a folder with its own config; 'arch' is for a weights file")
        return f"local-dir:{path}", None, str(weights[0])
    if not path.is_file():
        raise DataError(f"CLIP weights {path} do not exist (a local file or folder; nothing is downloaded)")
    if not cfg.arch:
        raise DataError(f"CLIP weights file {path} needs 'arch', the open_clip architecture it belongs to")
    return cfg.arch, str(path), str(path)


def load_clip(cfg: CLIPModelConfig, device: torch.device) -> LoadedCLIP:
    open_clip = _open_clip()
    name, pretrained, weights = _source(cfg)
    if pretrained and name not in open_clip.list_models():
        raise DataError(f"arch {name!r} is not an open_clip architecture; e.g. {', '.join(open_clip.list_models()[:5])}")
    with _offline():
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=pretrained, device=device, pretrained_text=False, weights_only=True)
            tokenizer = open_clip.get_tokenizer(name)
        except (RuntimeError, ValueError, OSError, KeyError) as exc:
            raise DataError(f"cannot load CLIP model from {cfg.clip}: {str(exc).splitlines()[0][:300]}") from None
    model.eval()
    size = model.visual.image_size
    return LoadedCLIP(model, preprocess, tokenizer, name.removeprefix("local-dir:") if pretrained is None else name,
                      weights, int(size[0] if isinstance(size, (tuple, list)) else size))


@torch.no_grad()
def image_features(clip: LoadedCLIP, images: np.ndarray, device: torch.device, batch_size: int) -> np.ndarray:
    """L2-normalised image features of uint8 (N, H, W) grey images (sent as RGB through the model's transform)."""
    from PIL import Image

    out = []
    for i in range(0, len(images), batch_size):
        batch = torch.stack([clip.preprocess(Image.fromarray(a, "L").convert("RGB")) for a in images[i:i + batch_size]])
        f = clip.model.encode_image(batch.to(device)).float()
        out.append(torch.nn.functional.normalize(f, dim=-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 1), np.float32)


@torch.no_grad()
def zero_shot_weights(clip: LoadedCLIP, classnames: list[str], templates: list[str], device: torch.device) -> np.ndarray:
    """(classes, dim) text classifier: per class the normalised mean of its normalised template features."""
    rows = []
    for name in classnames:
        tokens = clip.tokenizer([t.replace("{c}", name) for t in templates]).to(device)
        f = torch.nn.functional.normalize(clip.model.encode_text(tokens).float(), dim=-1).mean(0)
        rows.append(torch.nn.functional.normalize(f, dim=0).cpu().numpy())
    return np.stack(rows)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def linear_probe(train_x, train_y, val_x, val_y, cs: list[float], seed: int):
    """The logistic regression with the best validation accuracy over ``cs`` (the first, on a tie), and
    every C's validation accuracy."""
    from sklearn.linear_model import LogisticRegression

    by_c, best = {}, None
    for c in cs:
        clf = LogisticRegression(C=c, max_iter=1000, random_state=seed).fit(train_x, train_y)
        by_c[c] = float((clf.predict(val_x) == val_y).mean()) if val_x is not None else float("nan")
        if best is None or by_c[c] > by_c[best[0]]:
            best = (c, clf)
    return best[0], best[1], by_c
