"""Split plans. Every plan is deterministic given its seed, stratified, and leak-free by
construction: rows that derive from one original image (augmented copies) share a group and never
straddle partitions, unless ``augmented`` is asked for in the paper's ``augment_then_split`` order,
which is flagged ``leaky`` so the report can say so.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from ..augment import AugmentConfig, augment_uint8
from ..errors import DataError
from ..labels import canonical_class
from .dataset import FERData

KINDS = ("official", "kaggle", "pooled", "holdout", "kfold", "augmented")
# The augmented-dataset study: rotation +-10 deg, shifts +-10 %, zoom +-10 %, horizontal flip.
PAPER_AUGMENT = AugmentConfig(rotation=10, shift=0.1, zoom=0.1, flip=True)


@dataclass
class SplitData:
    train: FERData
    val: FERData | None
    test: FERData | None  # None: the study reports its validation set (a pooled split with test: none)
    classes: tuple[str, ...]
    description: str
    leaky: bool = False
    notes: list[str] = field(default_factory=list)
    cross: dict[str, FERData] = field(default_factory=dict)  # further test sets, by name (cross-dataset scoring)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val) if self.val is not None else 0,
                "test": len(self.test) if self.test is not None else 0}


def select_classes(data: FERData, classes: list[str] | None) -> FERData:
    """Keep only ``classes`` (in that order) and remap labels to 0..k-1."""
    if not classes:
        return data
    canon = []
    for c in classes:
        cc = canonical_class(c)
        if cc is None or cc not in data.classes:
            raise DataError(f"unknown class {c!r} in class subset; expected names from {', '.join(data.classes)}")
        canon.append(cc)
    if len(set(canon)) != len(canon):
        raise DataError(f"class subset {classes} names a class twice")
    old = [data.classes.index(c) for c in canon]
    keep = np.flatnonzero(np.isin(data.labels, old))
    sub = data.subset(keep)
    lut = np.full(len(data.classes), -1, dtype=np.int64)
    lut[old] = np.arange(len(old))
    sub.labels = lut[sub.labels]
    sub.classes = tuple(canon)
    return sub


def cap_per_class(data: FERData, per_class: int | None = None, fraction: float | None = None,
                  seed: int = 0) -> FERData:
    """Stratified subsample: at most ``per_class`` rows per class and/or a ``fraction`` of each class."""
    if per_class is None and fraction is None:
        return data
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(len(data.classes)):
        idx = np.flatnonzero(data.labels == c)
        n = len(idx)
        if fraction is not None:
            n = max(1, int(round(n * fraction))) if n else 0
        if per_class is not None:
            n = min(n, per_class)
        keep.append(np.sort(rng.choice(idx, size=n, replace=False)))
    return data.subset(np.sort(np.concatenate(keep)))


def _stratified_cut(data: FERData, fraction: float, seed: int, by_group: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Indices (rest, cut) with ``fraction`` of every class in ``cut``; grouped rows stay together
    unless ``by_group`` is False (only to reproduce a leaky protocol)."""
    groups, first = np.unique(data.groups if by_group else np.arange(len(data)).astype(str), return_index=True)
    g_labels = data.labels[first]
    g_rest, g_cut = train_test_split(np.arange(len(groups)), test_size=fraction, random_state=seed,
                                     stratify=g_labels)
    in_cut = np.isin(data.groups if by_group else np.arange(len(data)).astype(str), groups[g_cut])
    return np.flatnonzero(~in_cut), np.flatnonzero(in_cut)


def _augmented_copies(data: FERData, copies: int, seed: int, cfg: AugmentConfig = PAPER_AUGMENT) -> FERData:
    """``copies`` augmented versions of every row (no originals, as the study generated 5 per image)."""
    if copies < 1:
        raise DataError(f"augmented split needs copies >= 1; got {copies}")
    rep = np.repeat(np.arange(len(data)), copies)
    imgs = augment_uint8(data.images[rep], cfg, seed)
    k = np.tile(np.arange(copies), len(data))
    ids = np.char.add(np.char.add(data.ids[rep].astype(str), "#aug"), k.astype(str))
    return FERData(imgs, data.labels[rep], ids, data.usage[rep], data.classes, data.source, data.groups[rep])


def make_split(data: FERData, kind: str = "official", *, seed: int = 0, classes: list[str] | None = None,
               val_fraction: float | None = 0.1, k: int = 3, fold: int = 0, copies: int = 5, test: str = "PrivateTest",
               ratios: tuple[float, float, float] = (0.6, 0.2, 0.2), order: str = "split_then_augment",
               train_per_class: int | None = None, train_fraction: float | None = None,
               eval_per_class: int | None = None) -> SplitData:
    """Build the train/val/test partition a study asks for.

    official   the 2013 challenge's three-way split: Training / PublicTest / PrivateTest.
    kaggle     the Kaggle image-folder release: Training as train, its whole test/ folder (PublicTest +
               PrivateTest, 7,178 images) as test; val a stratified ``val_fraction`` of Training, or none.
    pooled     every usage pooled; a stratified ``val_fraction`` of the pool as val, the rest as train;
               ``test`` none (the study reports val), or a challenge half / both kept out of the pool.
    holdout    stratified ``val_fraction`` of Training as val; ``test`` (PrivateTest, PublicTest or both) as test.
    kfold      fold ``fold`` of a stratified ``k``-fold split of Training as val; ``test`` kept apart.
    augmented  ``copies`` augmented copies per image, stratified re-split by ``ratios``.
               order='split_then_augment' splits originals first and augments only train (leak-free);
               order='augment_then_split' reproduces the study's leaky protocol.
    Modifiers: ``classes`` (subset, labels remapped), ``train_per_class`` / ``train_fraction``
    (stratified subsample of train) and ``eval_per_class`` (cap val/test; for smoke runs only).
    """
    if kind not in KINDS:
        raise DataError(f"unknown split kind {kind!r}; expected one of {', '.join(KINDS)}")
    data = select_classes(data, classes)
    desc_cls = f" on classes {'/'.join(data.classes)}" if classes else ""
    notes: list[str] = []
    leaky = False
    train_all = data.subset(data.where_usage("Training"))
    test_usages = {"PrivateTest": ["PrivateTest"], "PublicTest": ["PublicTest"],
                   "both": ["PublicTest", "PrivateTest"], "none": []}
    if test not in test_usages:
        raise DataError(f"test must be PrivateTest, PublicTest, both or none; got {test!r}")
    if test == "none" and kind != "pooled":
        raise DataError(f"test: none (no test set) is only possible with kind: pooled, not {kind}")
    held_out = data.subset(np.flatnonzero(np.isin(data.usage, test_usages[test]))) if test != "none" else None
    test_name = {"both": "PublicTest + PrivateTest"}.get(test, test)
    if kind == "official":
        train, val, test_part = train_all, data.subset(data.where_usage("PublicTest")), \
            data.subset(data.where_usage("PrivateTest"))
        desc = "official: Training / PublicTest / PrivateTest"
    elif kind == "kaggle":
        both = data.subset(np.flatnonzero(np.isin(data.usage, ["PublicTest", "PrivateTest"])))
        if val_fraction is None:
            train, val, test_part = train_all, None, both
            desc = "kaggle: Training as train, PublicTest + PrivateTest (the release's test/ folder) as test, no val"
        else:
            rest, cut = _stratified_cut(train_all, val_fraction, seed)
            train, val, test_part = train_all.subset(rest), train_all.subset(cut), both
            desc = (f"kaggle: stratified {val_fraction:.0%} of Training as val, PublicTest + PrivateTest "
                    "(the release's test/ folder) as test")
    elif kind == "pooled":
        if val_fraction is None or not 0 < val_fraction < 1:
            raise DataError(f"pooled val_fraction must be in (0, 1); got {val_fraction}")
        pool = data.subset(np.flatnonzero(~np.isin(data.usage, test_usages[test])))
        rest, cut = _stratified_cut(pool, val_fraction, seed)
        train, val, test_part = pool.subset(rest), pool.subset(cut), held_out
        desc = (f"pooled: {'every usage' if test == 'none' else 'usages other than ' + test_name} pooled, stratified "
                f"{val_fraction:.0%} as val" + (", no test set (val is what is reported)" if test == "none"
                                                 else f", {test_name} as test"))
    elif kind == "holdout":
        if val_fraction is None or not 0 < val_fraction < 1:
            raise DataError(f"holdout val_fraction must be in (0, 1); got {val_fraction}")
        rest, cut = _stratified_cut(train_all, val_fraction, seed)
        train, val, test_part = train_all.subset(rest), train_all.subset(cut), held_out
        desc = f"holdout: stratified {val_fraction:.0%} of Training as val, {test_name} as test"
    elif kind == "kfold":
        if k < 2 or not 0 <= fold < k:
            raise DataError(f"kfold needs k >= 2 and 0 <= fold < k; got k={k}, fold={fold}")
        skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        tr, va = list(skf.split(np.zeros(len(train_all)), train_all.labels))[fold]
        train, val, test_part = train_all.subset(tr), train_all.subset(va), held_out
        desc = f"kfold: fold {fold + 1}/{k} of stratified {k}-fold CV on Training, {test_name} as test"
    else:
        if len(ratios) != 3 or abs(sum(ratios) - 1) > 1e-6 or min(ratios) <= 0:
            raise DataError(f"augmented ratios must be three positive numbers summing to 1; got {ratios}")
        if order not in ("split_then_augment", "augment_then_split"):
            raise DataError(f"augmented order must be split_then_augment or augment_then_split; got {order!r}")
        pool = data
        if order == "augment_then_split":
            pool = _augmented_copies(data, copies, seed)
            leaky = True
            notes.append("LEAKY protocol reproduced on request: augmented copies of one face land in "
                         "train, val and test (augment-then-split), which inflates val/test accuracy.")
        # by_group=False splits rows, not faces: the leak the study made, reproduced on request.
        rest, test_idx = _stratified_cut(pool, ratios[2], seed, by_group=not leaky)
        rest_d = pool.subset(rest)
        tr, va = _stratified_cut(rest_d, ratios[1] / (ratios[0] + ratios[1]), seed + 1, by_group=not leaky)
        train, val, test_part = rest_d.subset(tr), rest_d.subset(va), pool.subset(test_idx)
        if order == "split_then_augment":
            train = _augmented_copies(train, copies, seed)
        desc = (f"augmented: {copies} copies per image, stratified "
                f"{'/'.join(f'{r:.0%}' for r in ratios)} re-split ({order.replace('_', ' ')})")
    if train_per_class is not None or train_fraction is not None:
        before = len(train)
        train = cap_per_class(train, train_per_class, train_fraction, seed)
        notes.append(f"train subsampled per class: {len(train)} of {before} images")
    if eval_per_class is not None:
        val = cap_per_class(val, eval_per_class, None, seed) if val is not None else None
        test_part = cap_per_class(test_part, eval_per_class, None, seed) if test_part is not None else None
        notes.append(f"val/test capped at {eval_per_class} images per class (smoke-sized evaluation)")
    for name, part in (("train", train), ("test", test_part), ("val", val)):
        if part is not None and len(part) == 0:
            raise DataError(f"split '{kind}'{desc_cls} leaves the {name} partition empty")
    return SplitData(train, val, test_part, data.classes, desc + desc_cls, leaky, notes)
