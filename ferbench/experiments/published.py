"""A published answers file, read and matched to a dataset's images without guessing.

Two formats, told apart by their header:

* one label per row: ``id, predicted[, p_<class> ...][, gt]`` (ferbench's own predictions format);
* Lian et al. 2023 ("GPT-4V with Emotion", the public ``zeroQiaoba/gpt4v-emotion`` answers):
  ``name, gt, gpt4v`` with ``gpt4v`` a comma-separated ranking in the dataset's own words, best first
  (``"Neutral,Sadness,Disgust,Fear,Anger"``).

Label words go through the emotion vocabulary (:func:`ferbench.vocabulary.vocab_class`); a word outside
it is an error naming the line. Published ids are matched to the dataset's by :func:`ferbench.data.ids.match_ids`
(with or without folder and extension, any case); an id matching no image (*unknown*) or several
(*ambiguous*) is counted and named, never resolved by a guess. A ``gt`` column is checked against the dataset's label and
its disagreements reported; the dataset's label stays the truth.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.datasets._common import open_text
from ..data.ids import match_ids
from ..errors import DataError
from ..vocabulary import vocab_class

ID_COLUMNS = ("id", "name")
ANSWER_COLUMNS = ("predicted", "gpt4v", "ranking")
MAX_RANK = 20  # more words than any dataset has classes is not a ranking
EXAMPLES = 5  # ids named in a result for each kind of mismatch


@dataclass(frozen=True)
class Answer:
    ranking: tuple[int, ...]  # study class indices, best first; -1: a vocabulary class the study lacks
    probs: tuple[float, ...] | None
    gt: str | None
    line: int


@dataclass
class AnswersFile:
    answers: dict[str, Answer]  # keyed by the id as published
    ranked: bool  # some row gives more than one class


@dataclass
class Matched:
    """Answers matched to images of the scored partitions (by their position in ``ids``)."""
    by_image: dict[int, Answer] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)


def _columns(header: list[str], path: Path) -> tuple[int, int, int | None]:
    low = [h.strip().lower() for h in header]
    ii = next((low.index(c) for c in ID_COLUMNS if c in low), None)
    ai = next((low.index(c) for c in ANSWER_COLUMNS if c in low), None)
    if ii is None or ai is None:
        raise DataError(f"{path}: an answers file needs an id column ({' or '.join(ID_COLUMNS)}) and an answer "
                        f"column ({' or '.join(ANSWER_COLUMNS)}); got {','.join(header)[:200]!r}")
    return ii, ai, (low.index("gt") if "gt" in low else None)


def read_answers(path: Path, classes: tuple[str, ...]) -> AnswersFile:
    """Every row of ``path`` as an :class:`Answer`; a one-line DataError naming the file and line otherwise."""
    with open_text(path, "answers file") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        ii, ai, gi = _columns(header, path)
        prob_cols = [header.index(f"p_{c}") for c in classes] if all(f"p_{c}" in header for c in classes) else None
        out: dict[str, Answer] = {}
        no = 1
        try:
            for no, row in enumerate(reader, start=2):
                if not row or not any(cell.strip() for cell in row):
                    continue
                ident, ans = _row(row, ii, ai, gi, prob_cols, classes, f"{path} line {no}", no)
                if ident in out:
                    raise DataError(f"{path} line {no}: image {ident[:80]!r} is answered twice "
                                    f"(first on line {out[ident].line})")
                out[ident] = ans
        except csv.Error as exc:
            raise DataError(f"{path} line {no + 1}: not a CSV row ({exc})") from None
    return AnswersFile(out, any(len(a.ranking) > 1 for a in out.values()))


def _row(row, ii, ai, gi, prob_cols, classes, where: str, no: int) -> tuple[str, Answer]:
    try:
        ident, text = row[ii].strip(), row[ai]
        gt = row[gi].strip() if gi is not None else None
        probs = tuple(float(row[c]) for c in prob_cols) if prob_cols else None
    except (IndexError, ValueError):
        raise DataError(f"{where}: missing id/answer or a probability that is not a number") from None
    if not ident:
        raise DataError(f"{where}: the id is empty")
    words = [w.strip() for w in text.split(",") if w.strip()]
    if not words or len(words) > MAX_RANK:
        raise DataError(f"{where}: expected one class or a ranking of at most {MAX_RANK}; got {text[:60]!r}")
    ranking = []
    for k, word in enumerate(words):
        cls = vocab_class(word)
        if cls is None or (k == 0 and cls not in classes):
            raise DataError(f"{where}: {'predicted' if k == 0 else 'ranked'} {word[:40]!r} is not one of the "
                            f"study's classes ({', '.join(classes)})")
        ranking.append(classes.index(cls) if cls in classes else -1)
    if len(set(ranking) - {-1}) != len([r for r in ranking if r >= 0]):
        raise DataError(f"{where}: the ranking {text[:60]!r} names a class twice")
    if probs is not None and not all(np.isfinite(probs)):
        raise DataError(f"{where}: probabilities must be finite numbers")
    return ident, Answer(tuple(ranking), probs, gt or None, no)


def match_answers(answers: dict[str, Answer], ids) -> Matched:
    """Match published ids to ``ids`` (the images scored); two answers for one image are an error."""
    names = list(answers)
    found = match_ids(names, ids)
    out, seen = Matched(unknown=found.unknown, ambiguous=found.ambiguous), {}
    for k, n in found.hits.items():
        ident, ans = names[k], answers[names[k]]
        if n in seen:
            raise DataError(f"answers for {seen[n][:80]!r} and {ident[:80]!r} (line {ans.line}) name the same "
                            f"image {str(ids[n])[:80]!r}")
        seen[n] = ident
        out.by_image[n] = ans
    return out


def top_k(labels: np.ndarray, rankings: list[tuple[int, ...]], k: int) -> float:
    """Share of images whose label is among the first ``k`` ranked classes."""
    return float(np.mean([int(y) in r[:k] for y, r in zip(labels, rankings)]))


def gt_disagreements(answers: list[Answer], labels: np.ndarray, ids, classes: tuple[str, ...]) -> list[str]:
    """'id: gt Happiness, dataset sad' for each answer whose ``gt`` names another class than the dataset."""
    out = []
    for a, y, ident in zip(answers, labels, ids):
        if a.gt is not None and vocab_class(a.gt) != classes[int(y)]:
            out.append(f"{str(ident)[:80]}: gt {a.gt[:40]!r}, dataset {classes[int(y)]}")
    return out
