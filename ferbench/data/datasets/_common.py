"""What every dataset reader shares: bounded opens, decoding with the conversion recorded, one-line errors."""
from __future__ import annotations

import io
import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, TextIO, TypeVar

import numpy as np
from PIL import Image

from ...errors import DataError
from ..dataset import FERData
from ...schema.study_input import DEFAULT_INPUT, StudyInput
from ..sources import _read_regular, _to_canonical, conversions_to, decode_image

T = TypeVar("T")
MAX_LIST_BYTES = 512 * 1024 * 1024  # a label list or annotation CSV: AffectNet's training.csv is ~150 MB


def open_text(path: Path, what: str) -> TextIO:
    """A label file for reading as text: a regular file within MAX_LIST_BYTES, else one line naming it."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise DataError(f"cannot read {what} {path}: {exc.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_LIST_BYTES:
        os.close(fd)
        raise DataError(f"{what} {path} is not a regular file of at most {MAX_LIST_BYTES:,} bytes")
    return io.TextIOWrapper(os.fdopen(fd, "rb"), encoding="utf-8", errors="replace", newline="")


def parsed_lines(path: Path, what: str, parse: Callable[[str, str], T | None]) -> Iterator[tuple[int, T]]:
    """(line number, parsed) for each line of a label list that ``parse(line, where)`` does not skip (None)."""
    with open_text(path, what) as fh:
        for no, line in enumerate(fh, start=1):
            parsed = parse(line, f"{path} line {no}")
            if parsed is not None:
                yield no, parsed


def need(path: Path, what: str, dataset: str, where: str) -> Path:
    """``path`` if it is there; else one line: what the dataset needs and where it is usually obtained."""
    if not path.exists():
        raise DataError(f"{dataset} needs {what} at {path}, which is missing; {where}")
    return path


@dataclass
class Collector:
    """Rows of a dataset as they are read, with exclusions and conversions counted."""

    dataset: str
    classes: tuple[str, ...]
    source: str
    skip_bad: bool = False
    progress: Callable[[int, int, int], None] | None = None  # (images so far, images so far, 0 = total unknown)
    images: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    ids: list = field(default_factory=list)
    usage: list = field(default_factory=list)
    soft: list = field(default_factory=list)
    groups: list = field(default_factory=list)
    excluded: Counter = field(default_factory=Counter)
    conversions: Counter = field(default_factory=Counter)
    skipped: list = field(default_factory=list)
    target: StudyInput = DEFAULT_INPUT  # the study's size and colour, decoded to

    def add_file(self, path: Path, label: str, ident: str, usage: str, *, group: str | None = None,
                 box: tuple[int, int, int, int] | None = None) -> None:
        """Decode one image file (optionally cropping a face box) and add it; a bad file fails or is skipped."""
        try:
            raw = _read_regular(path)
            img = self._decode(raw, str(path), box)
        except DataError:
            if not self.skip_bad:
                raise
            self.skipped.append(str(path))
            return
        self.add(img, label, ident, usage, group=group)

    def _decode(self, raw: bytes, name: str, box) -> np.ndarray:
        with _opened(raw, name) as im:
            if box is not None:  # the face box of a whole photo (ExpW): cropped before the resize
                im = im.crop(box)
                buf = io.BytesIO()
                im.save(buf, format="PNG")
                raw = buf.getvalue()
            size, mode = im.size, im.mode
        self.conversions.update(conversions_to(size, mode, self.target))
        return decode_image(raw, name, self.target)

    def add(self, img: np.ndarray, label: str, ident: str, usage: str, *, group: str | None = None,
            soft: np.ndarray | None = None) -> None:
        if img.shape != self.target.shape:  # decoded pixels (FER+'s 48x48 gray CSV rows), converted here
            self.conversions.update(conversions_to((img.shape[1], img.shape[0]), "L" if img.ndim == 2 else "RGB",
                                                   self.target))
            img = _to_canonical(Image.fromarray(img), self.target)
        self.images.append(img)
        self.labels.append(self.classes.index(label))
        self.ids.append(ident)
        self.usage.append(usage)
        self.groups.append(group if group is not None else ident)
        if soft is not None:
            self.soft.append(soft)
        if self.progress is not None and len(self.images) % 256 == 0:
            self.progress(len(self.images), len(self.images), 0)

    def exclude(self, why: str) -> None:
        self.excluded[why] += 1

    def build(self) -> FERData:
        if self.progress is not None:
            self.progress(len(self.images), len(self.images), len(self.images))
        if not self.images:
            raise DataError(f"{self.source}: no {self.dataset} images left to read"
                            + (f" (excluded: {dict(self.excluded)})" if self.excluded else ""))
        ids = np.array(self.ids)
        if len(np.unique(ids)) != len(ids):
            raise DataError(f"{self.source} names the same {self.dataset} image more than once")
        return FERData(np.stack(self.images), np.array(self.labels), ids, np.array(self.usage), self.classes,
                       self.source, np.array(self.groups), list(self.skipped), dataset=self.dataset,
                       excluded=dict(self.excluded), conversions=dict(self.conversions),
                       soft=np.stack(self.soft).astype(np.float32) if self.soft else None)


def _opened(raw: bytes, name: str) -> Image.Image:
    try:
        im = Image.open(io.BytesIO(raw))
        im.load()
        return im
    except Exception as exc:
        raise DataError(f"cannot decode image {name}: {exc}") from None
