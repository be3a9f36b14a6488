"""A benchmark's own test list as a split kind: every model is scored on exactly the items it names.

``split: {kind: manifest, manifest: FILE}`` takes

* a FERBench-style QA manifest (UniFER, Zhang et al. 2025): a JSON list (or JSON lines) of
  ``{image_path, true_label, prompt, candidate_labels}``, or a CSV with those columns;
* a plain list of image ids, one per line (``.txt``).

Names are matched to the dataset's ids by :func:`ferbench.data.ids.match_ids` (with or without folder and
extension, any case). The matched images are the test set; names matching no image (missing) or several
(ambiguous) are counted and named in the split's notes, and a ``true_label`` that disagrees with the
dataset's label is reported, never used. Every other image (groups kept whole) is the pool for train and
a stratified ``val_fraction`` of it for val. Each test image's prompt and candidate labels are kept on the
split (:attr:`SplitData.test_items`); an LLM experiment with ``prompt: manifest`` sends each image with its
own prompt and parses its answer against its candidate labels (:mod:`ferbench.llm.items`).
"""
from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..vocabulary import vocab_class
from .dataset import FERData
from .datasets._common import open_text
from .ids import match_ids
from .splits import Partition, SplitParams, _stratified_cut, register_split_kind

MAX_ITEMS = 200_000
MAX_TEXT = 4_000  # a prompt's characters
EXAMPLES = 5


@dataclass(frozen=True)
class ManifestItem:
    image: str  # the name as the manifest gives it
    true_label: str | None = None
    prompt: str | None = None
    candidates: tuple[str, ...] = ()


def manifest_sha256(path: str | Path) -> str:
    with open_text(Path(path), "manifest") as fh:
        return hashlib.sha256(fh.buffer.read()).hexdigest()[:16]


def _item(raw, where: str) -> ManifestItem:
    if not isinstance(raw, dict) or not isinstance(raw.get("image_path"), str) or not raw["image_path"].strip():
        raise DataError(f"{where}: expected an object with a string 'image_path'")
    cands = raw.get("candidate_labels") or ()
    if isinstance(cands, str):
        cands = [c for c in cands.split(",")]
    if not isinstance(cands, (list, tuple)) or not all(isinstance(c, str) for c in cands) or len(cands) > 50:
        raise DataError(f"{where}: candidate_labels must be a list of at most 50 strings")
    label, prompt = raw.get("true_label"), raw.get("prompt")
    if (label is not None and not isinstance(label, str)) or (prompt is not None and not isinstance(prompt, str)):
        raise DataError(f"{where}: true_label and prompt must be strings")
    return ManifestItem(raw["image_path"].strip()[:1000], label, prompt[:MAX_TEXT] if prompt else None,
                        tuple(c.strip()[:40] for c in cands if c.strip()))


def read_manifest(path: Path) -> list[ManifestItem]:
    """The manifest's items in file order; one-line DataError naming the file otherwise."""
    with open_text(path, "manifest") as fh:
        text = fh.read()
    suffix = path.suffix.lower()
    if suffix in (".json", ".jsonl"):
        try:
            raws = json.loads(text) if suffix == ".json" else [json.loads(x) for x in text.splitlines() if x.strip()]
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(raws, list):
            raise DataError(f"{path}: a JSON manifest is a list of items")
    elif suffix == ".csv":
        try:
            raws = list(csv.DictReader(text.splitlines()))
        except csv.Error as exc:
            raise DataError(f"{path}: not CSV ({exc})") from None
    else:  # a plain id list
        raws = [{"image_path": x.strip()} for x in text.splitlines() if x.strip() and not x.startswith("#")]
    if not raws or len(raws) > MAX_ITEMS:
        raise DataError(f"{path}: a manifest needs 1 to {MAX_ITEMS:,} items; it has {len(raws):,}")
    items = [_item(r, f"{path} item {k + 1}") for k, r in enumerate(raws)]
    names = [i.image for i in items]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(f"{path} names {dup[:80]!r} more than once")
    return items


@dataclass
class ManifestTest:
    index: np.ndarray  # dataset rows of the test set, in the manifest's order
    items: dict[str, ManifestItem]  # dataset id -> the manifest's item
    notes: list[str]


def _label_notes(items: list[ManifestItem], data: FERData, hits: dict[int, int]) -> list[str]:
    off = [f"{data.ids[n]} ({items[k].true_label[:30]!r} vs {data.classes[data.labels[n]]})"
           for k, n in hits.items() if items[k].true_label is not None
           and vocab_class(items[k].true_label) != data.classes[data.labels[n]]]
    return [f"manifest: its true_label disagrees with the dataset on {len(off):,} images, e.g. "
            f"{', '.join(off[:EXAMPLES])}; the dataset's labels are used"] if off else []


def manifest_test(data: FERData, path: Path) -> ManifestTest:
    """The dataset rows a manifest names, with what did not match counted and named."""
    items = read_manifest(path)
    found = match_ids([i.image for i in items], data.ids)
    rows = list(found.hits.values())
    if len(set(rows)) != len(rows):
        raise DataError(f"{path}: two of its names match the same image of {data.dataset}")
    if not rows:
        raise DataError(f"{path}: none of its {len(items):,} images is in {data.dataset} ({data.source}); names such "
                        f"as {items[0].image[:80]!r} must match the dataset's ids (e.g. {str(data.ids[0])[:80]!r})")
    notes = [f"manifest {path.name}: {len(rows):,} of its {len(items):,} images found in {data.dataset}"]
    for what, names in (("missing", found.unknown), ("ambiguous", found.ambiguous)):
        if names:
            notes.append(f"manifest: {len(names):,} {what} image(s) not scored, e.g. {', '.join(n[:80] for n in names[:EXAMPLES])}")
    notes += _label_notes(items, data, found.hits)
    return ManifestTest(np.array(rows, dtype=np.int64), {str(data.ids[n]): items[k] for k, n in found.hits.items()},
                        notes)


@register_split_kind("manifest", fixes_test=True, no_val=True,
                     doc="a benchmark's own test list (FERBench-style QA manifest or a plain id list, `manifest: "
                         "FILE`) as test; every other image (groups whole) as train, a stratified val_fraction as val")
def _manifest(data: FERData, p: SplitParams) -> Partition:
    if not p.manifest:
        raise DataError("split kind 'manifest' needs 'manifest: FILE' (a QA manifest or a list of image ids)")
    path = Path(p.manifest)
    if p.manifest_sha256 and manifest_sha256(path) != p.manifest_sha256:
        raise DataError(f"manifest {path} changed after the suite was read; run again")
    test = manifest_test(data, path)
    pool = data.subset(np.flatnonzero(~np.isin(data.groups, data.groups[test.index])))
    desc = f"manifest: the {len(test.index):,} images {path.name} names as test"
    if p.val_fraction is None:
        return Partition(pool, None, data.subset(test.index), desc + ", every other image as train, no val",
                         notes=test.notes, test_items=test.items)
    rest, cut = _stratified_cut(pool, p.val_fraction, p.seed)
    return Partition(pool.subset(rest), pool.subset(cut), data.subset(test.index),
                     f"{desc}, every other image as train (stratified {p.val_fraction:.0%} of it as val)",
                     notes=test.notes, test_items=test.items)
