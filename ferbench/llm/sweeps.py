"""What an LLM sweep changes at run time: the images as sent (gray or RGB) and repeated answers per image.

Repeats are separate requests, one per (image, repeat index); the index is part of each request's journal
entry and response-cache key, so a cache never hands back repeat 0's answer R times. An image is scored by
the class most of its answers name (an answer naming no class is a candidate too: when it wins, the image
counts wrong); a tie goes to the class named first in repeat order. Agreement: the majority's share of the
answers, per image.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
from PIL import Image

from ..errors import FerbenchError
from ..schema.results import LLMRepeats, RepeatedAnswers
from .parse import parse_answer

ANSWERED = ("ok", "truncated")


def shown_images(images: np.ndarray, color: str | None) -> np.ndarray:
    """The sample's images as the endpoint is shown them: ``None`` as read, ``gray`` converted (ITU-R 601-2
    luma, PIL's "L"), ``rgb`` as read, refused where the data holds no colour (never faked by copying gray
    into three channels)."""
    if color is None:
        return images
    if color == "gray":
        if images.ndim == 3:
            return images
        return np.stack([np.asarray(Image.fromarray(im).convert("L")) for im in images]) if len(images) else \
            images[..., 0]
    if images.ndim == 3:
        raise FerbenchError("color rgb: the study's images are grayscale (one channel): a colour variant needs a "
                            "colour dataset read with input: {channels: 3}")
    if len(images) and all((im[..., 0] == im[..., 1]).all() and (im[..., 1] == im[..., 2]).all() for im in images):
        raise FerbenchError("color rgb: every sampled image has equal R, G and B channels (grayscale data read as "
                            "RGB): there is no colour to send")
    return images


def request_items(ids: list[str], repeats: int) -> dict[str, tuple[str, int]]:
    """Journal key -> (image id, repeat index). Repeat 0 keeps the image id itself."""
    out: dict[str, tuple[str, int]] = {}
    for iid in ids:
        for r in range(repeats):
            key = iid if r == 0 else f"{iid}#repeat{r}"
            if key in out:
                raise FerbenchError(f"image id {key!r} collides with a repeat of another image: rename it")
            out[key] = (iid, r)
    return out


def majority(answers: list[str | None]) -> tuple[str | None, float]:
    """(the most named answer, its share); a tie goes to the one named first.

    >>> majority(["sad", "happy", "happy"])
    ('happy', 0.6666666666666666)
    >>> majority(["sad", None, "happy", None])
    (None, 0.5)
    >>> majority(["sad", "happy"])
    ('sad', 0.5)
    """
    counts = Counter(answers)
    top = max(counts.values())
    winner = next(a for a in answers if counts[a] == top)
    return winner, top / len(answers)


def collapse_repeats(records: dict, items: dict[str, tuple[str, int]], classes: list[str],
                     temperature: float | None, parse=None) -> tuple[dict, LLMRepeats | None]:
    """Per image, the record scored (the first repeat naming the majority), and the agreement figures.
    ``parse``: text -> the class it names (the experiment's prompt strategy; default the label rule).
    An image with a repeat that got no answer keeps that failure as its record: the experiment is then
    incomplete and a re-run asks for exactly the missing repeats."""
    by_image: dict[str, list] = {}
    for key, (iid, r) in items.items():
        by_image.setdefault(iid, []).append((r, records.get(key)))
    scored, per_image = {}, []
    n = max((len(v) for v in by_image.values()), default=0)
    for iid, reps in by_image.items():
        reps.sort(key=lambda t: t[0])
        failed = [rec for _, rec in reps if rec is None or rec.get("status") not in ANSWERED]
        if failed:
            if failed[0] is not None:
                scored[iid] = {**failed[0], "id": iid}
            continue
        answers = [(parse or (lambda t: parse_answer(t, classes)))(rec.get("text")) for _, rec in reps]
        answers = [a if a in classes else None for a in answers]
        win, share = majority(answers)
        scored[iid] = {**reps[answers.index(win)][1], "id": iid}
        per_image.append(RepeatedAnswers(id=iid, answers=[a or "" for a in answers], majority=win or "",
                                         agreement=share))
    if not per_image:
        return scored, None
    agree = np.array([p.agreement for p in per_image])
    return scored, LLMRepeats(n=n, temperature=temperature, agreement_mean=float(agree.mean()),
                              all_agree=float((agree == 1).mean()), images=len(per_image), per_image=per_image)
