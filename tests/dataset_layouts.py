"""Tiny fixtures of each dataset's layout as distributed, written by the tests (no dataset is committed)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

FERPLUS_HEADER = ["Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger", "disgust",
                  "fear", "contempt", "unknown", "NF"]


def _face(seed: int, size: int, rgb: bool) -> Image.Image:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (size, size, 3) if rgb else (size, size), dtype=np.uint8)
    return Image.fromarray(a, "RGB" if rgb else "L")


def write_ferplus(root: Path, vote_rows: list[tuple[str, str, list[int]]]) -> Path:
    """fer2013.csv (emotion,pixels,Usage) and fer2013new.csv with one row per (usage, image name, 10 votes)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with open(root / "fer2013.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for usage, _, _ in vote_rows:
            w.writerow([0, " ".join(map(str, rng.integers(0, 256, 48 * 48))), usage])
    with open(root / "fer2013new.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FERPLUS_HEADER)
        for usage, name, votes in vote_rows:
            w.writerow([usage, name, *votes])
    return root


def write_rafdb(root: Path, rows: list[tuple[str, int]], aligned: bool = True) -> Path:
    """basic/EmoLabel/list_patition_label.txt and 100x100 RGB basic/Image/aligned/<stem>_aligned.jpg."""
    basic = root / "basic"
    (basic / "EmoLabel").mkdir(parents=True, exist_ok=True)
    img_dir = basic / "Image" / ("aligned" if aligned else "original")
    img_dir.mkdir(parents=True, exist_ok=True)
    with open(basic / "EmoLabel" / "list_patition_label.txt", "w") as f:
        for k, (name, code) in enumerate(rows):
            f.write(f"{name} {code}\n")
            stem = Path(name).stem
            _face(k, 100, True).save(img_dir / (f"{stem}_aligned.jpg" if aligned else name))
    return root


AFFECTNET_HEADER = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
                    "expression", "valence", "arousal"]


def write_affectnet(root: Path, train: list[int], val: list[int]) -> Path:
    """Manually_Annotated_Images/<dir>/<file>.jpg of varied sizes, training.csv / validation.csv."""
    for fname, codes in (("training.csv", train), ("validation.csv", val)):
        with open(root / fname if root.exists() else _mk(root) / fname, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(AFFECTNET_HEADER)
            for k, code in enumerate(codes):
                rel = f"{k % 3 + 1}/{fname[0]}{k:04d}.jpg"
                (root / "Manually_Annotated_Images" / rel).parent.mkdir(parents=True, exist_ok=True)
                _face(k, 60 + k, True).save(root / "Manually_Annotated_Images" / rel)
                w.writerow([rel, 0, 0, 60 + k, 60 + k, "1;2;3", code, 0.1, -0.2])
    return root


def _mk(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def write_fer2013_csv(path: Path, per_class: int = 6, seed: int = 0) -> Path:
    """The 2013 challenge CSV (emotion,pixels,Usage): ``per_class`` images of each class in each usage."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for usage in ("Training", "PublicTest", "PrivateTest"):
            for y in range(7):
                for _ in range(per_class):
                    px = np.clip(rng.normal(40 + 25 * y, 20, 48 * 48), 0, 255).astype(int)
                    w.writerow([y, " ".join(map(str, px)), usage])
    return path


def write_ckplus(root: Path, sequences: dict[tuple[str, str], str | None], frames: int = 5) -> Path:
    """cohn-kanade-images/Sxxx/yyy/*.png (640x490 gray) and Emotion/.../*_emotion.txt with a float code."""
    for k, ((subject, seq), code) in enumerate(sequences.items()):
        d = root / "cohn-kanade-images" / subject / seq
        d.mkdir(parents=True, exist_ok=True)
        for f in range(1, frames + 1):
            _face(k * 10 + f, 64, False).resize((64, 49)).save(d / f"{subject}_{seq}_{f:08d}.png")
        e = root / "Emotion" / subject / seq
        e.mkdir(parents=True, exist_ok=True)
        if code is not None:
            (e / f"{subject}_{seq}_{frames:08d}_emotion.txt").write_text(f"   {code}\n")
    return root


def write_jaffe(root: Path, names: list[str]) -> Path:
    """KA.AN1.39.tiff-style 256x256 gray files, plus a README that is not an image."""
    root.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        _face(k, 256, False).save(root / name)
    (root / "README").write_text("JAFFE\n")
    return root


def write_expw(root: Path, faces: list[tuple[str, int, tuple[int, int, int, int], int]]) -> Path:
    """image/origin/<photo>.jpg (200x160 RGB) and label/label.lst: name face_id top left right bottom conf label."""
    (root / "image" / "origin").mkdir(parents=True, exist_ok=True)
    (root / "label").mkdir(parents=True, exist_ok=True)
    lines = []
    for k, (photo, face, (top, left, right, bottom), label) in enumerate(faces):
        if not (root / "image" / "origin" / photo).exists():
            _face(k, 200, True).resize((200, 160)).save(root / "image" / "origin" / photo)
        lines.append(f"{photo} {face} {top} {left} {right} {bottom} 0.9{k} {label}")
    (root / "label" / "label.lst").write_text("\n".join(lines) + "\n")
    return root
