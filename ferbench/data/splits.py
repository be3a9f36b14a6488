"""Split kinds: how a study partitions a dataset into train / val / test.

Every plan is deterministic given its seed, stratified, and leak-free by construction: rows that derive
from one original image (augmented copies) share a group and never straddle partitions, unless
``augmented`` is asked for in the paper's ``augment_then_split`` order, which is flagged ``leaky`` so
the report can say so.

Adding a split kind is one function and one registration; the suite schema and :func:`make_split`
read the table, so nothing else changes::

    @register_split_kind("by_subject", doc="one subject's images never straddle partitions")
    def _by_subject(data: FERData, p: SplitParams) -> Partition:
        ...
        return Partition(train, val, test, "by_subject: ...")

A kind in its own module registers the same way; import that module at the end of this one (the
table is filled on import, in one place, not by scattered side effects). Flags say which suite
options a kind accepts: ``fixes_test`` (it picks its own test set, so ``test:`` must stay at its
default), ``no_val`` (``val_fraction: null`` allowed), ``no_test`` (``test: none`` allowed).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import DataError
from ..registry import Table
from ..vocabulary import vocab_class
from ..schema.train import AugmentConfig
from .dataset import FERData

# The augmented-dataset study: rotation +-10 deg, shifts +-10 %, zoom +-10 %, horizontal flip.
PAPER_AUGMENT = AugmentConfig(rotation=10, shift=0.1, zoom=0.1, flip=True)
TEST_USAGES = {"PrivateTest": ["PrivateTest"], "PublicTest": ["PublicTest"],
               "both": ["PublicTest", "PrivateTest"], "none": []}


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
    test_items: dict = field(default_factory=dict)  # kind manifest: test id -> its ManifestItem (prompt, candidates)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val) if self.val is not None else 0,
                "test": len(self.test) if self.test is not None else 0}


@dataclass(frozen=True)
class SplitParams:
    """The suite's split options a kind may read (see :class:`ferbench.schema.suite.SplitConfig`)."""
    seed: int = 0
    val_fraction: float | None = 0.1
    k: int = 3
    fold: int = 0
    copies: int = 5
    test: str = "PrivateTest"
    ratios: tuple[float, float, float] = (0.6, 0.2, 0.2)
    order: str = "split_then_augment"
    manifest: str | None = None  # kind manifest: the benchmark's test list
    manifest_sha256: str | None = None  # its content when the suite was expanded

    @property
    def test_name(self) -> str:
        return {"both": "PublicTest + PrivateTest"}.get(self.test, self.test)


@dataclass
class Partition:
    """What a kind's builder returns; :func:`make_split` applies the shared modifiers after it."""
    train: FERData
    val: FERData | None
    test: FERData | None
    description: str
    leaky: bool = False
    notes: list[str] = field(default_factory=list)
    test_items: dict = field(default_factory=dict)


Builder = Callable[[FERData, SplitParams], Partition]


@dataclass(frozen=True)
class SplitKind:
    name: str
    build: Builder
    doc: str
    fixes_test: bool = False
    no_val: bool = False
    no_test: bool = False


_KINDS: Table[SplitKind] = Table("split kind", DataError)


def register_split_kind(name: str, *, doc: str, fixes_test: bool = False, no_val: bool = False,
                        no_test: bool = False) -> Callable[[Builder], Builder]:
    """Decorator: make ``build`` the split kind ``name`` (a name registered twice is an error)."""
    def deco(build: Builder) -> Builder:
        _KINDS.add(name, SplitKind(name, build, doc, fixes_test, no_val, no_test))
        return build
    return deco


def list_split_kinds() -> list[str]:
    return _KINDS.names()


def split_kind(name: str) -> SplitKind:
    return _KINDS.get(name)


def select_classes(data: FERData, classes: list[str] | None) -> FERData:
    """Keep only ``classes`` (in that order) and remap labels to 0..k-1."""
    if not classes:
        return data
    canon = []
    for c in classes:
        cc = vocab_class(c)
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
    if sub.soft is not None:  # the distribution over the kept classes, renormalized
        soft = sub.soft[:, old]
        sub.soft = (soft / np.maximum(soft.sum(1, keepdims=True), 1e-12)).astype(np.float32)
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
    from sklearn.model_selection import train_test_split  # here: `ferbench validate` reads the table without it

    groups, first = np.unique(data.groups if by_group else np.arange(len(data)).astype(str), return_index=True)
    g_labels = data.labels[first]
    try:
        g_rest, g_cut = train_test_split(np.arange(len(groups)), test_size=fraction, random_state=seed,
                                         stratify=g_labels)
    except ValueError as exc:  # too few images of a class, or a cut smaller than the number of classes
        counts = ", ".join(f"{data.classes[c]} {n}" for c, n in zip(*np.unique(g_labels, return_counts=True)))
        raise DataError(f"cannot cut a stratified {fraction:g} of {len(groups):,} images ({counts}): {exc} "
                        "Each class needs at least 2 images, and the cut at least one image per class.") from None
    in_cut = np.isin(data.groups if by_group else np.arange(len(data)).astype(str), groups[g_cut])
    return np.flatnonzero(~in_cut), np.flatnonzero(in_cut)


def _three_way(pool: FERData, ratios, seed: int, by_group: bool = True) -> tuple[FERData, FERData, FERData]:
    """(train, val, test) of ``pool`` by ``ratios``, stratified: test cut first, then val from the rest."""
    rest, test = _stratified_cut(pool, ratios[2], seed, by_group=by_group)
    rest_d = pool.subset(rest)
    tr, va = _stratified_cut(rest_d, ratios[1] / (ratios[0] + ratios[1]), seed + 1, by_group=by_group)
    return rest_d.subset(tr), rest_d.subset(va), pool.subset(test)


def _augmented_copies(data: FERData, copies: int, seed: int, cfg: AugmentConfig = PAPER_AUGMENT) -> FERData:
    """``copies`` augmented versions of every row (no originals, as the study generated 5 per image)."""
    from ..augment import augment_uint8  # torch: only when a split really augments

    if copies < 1:
        raise DataError(f"augmented split needs copies >= 1; got {copies}")
    rep = np.repeat(np.arange(len(data)), copies)
    imgs = augment_uint8(data.images[rep], cfg, seed)
    k = np.tile(np.arange(copies), len(data))
    ids = np.char.add(np.char.add(data.ids[rep].astype(str), "#aug"), k.astype(str))
    return FERData(imgs, data.labels[rep], ids, data.usage[rep], data.classes, data.source, data.groups[rep])


def _usages(data: FERData, usages: list[str]) -> FERData:
    return data.subset(np.flatnonzero(np.isin(data.usage, usages)))


def _held_out(data: FERData, p: SplitParams) -> FERData | None:
    return _usages(data, TEST_USAGES[p.test]) if p.test != "none" else None


def _check_fraction(kind: str, p: SplitParams) -> float:
    if p.val_fraction is None or not 0 < p.val_fraction < 1:
        raise DataError(f"{kind} val_fraction must be in (0, 1); got {p.val_fraction}")
    return p.val_fraction


def _check_ratios(kind: str, p: SplitParams) -> list[float]:
    """The train/val/test ratios of a pooled re-split: three positive numbers summing to 1."""
    ratios = p.ratios
    if len(ratios) != 3 or abs(sum(ratios) - 1) > 1e-6 or min(ratios) <= 0:
        raise DataError(f"{kind} ratios must be three positive numbers summing to 1; got {ratios}")
    return ratios


@register_split_kind("official", fixes_test=True,
                     doc="the 2013 challenge's three-way split: Training / PublicTest / PrivateTest")
def _official(data: FERData, p: SplitParams) -> Partition:
    return Partition(_usages(data, ["Training"]), _usages(data, ["PublicTest"]), _usages(data, ["PrivateTest"]),
                     "official: Training / PublicTest / PrivateTest")


@register_split_kind("kaggle", fixes_test=True, no_val=True,
                     doc="the Kaggle image-folder release: Training as train, its whole test/ folder (PublicTest + "
                         "PrivateTest, 7,178 images) as test; val a stratified val_fraction of Training, or none")
def _kaggle(data: FERData, p: SplitParams) -> Partition:
    train_all, both = _usages(data, ["Training"]), _usages(data, ["PublicTest", "PrivateTest"])
    if p.val_fraction is None:
        return Partition(train_all, None, both, "kaggle: Training as train, PublicTest + PrivateTest (the release's "
                                                "test/ folder) as test, no val")
    rest, cut = _stratified_cut(train_all, p.val_fraction, p.seed)
    return Partition(train_all.subset(rest), train_all.subset(cut), both,
                     f"kaggle: stratified {p.val_fraction:.0%} of Training as val, PublicTest + PrivateTest "
                     "(the release's test/ folder) as test")


@register_split_kind("pooled", no_test=True,
                     doc="every usage pooled; a stratified val_fraction of the pool as val, the rest as train; test "
                         "none (the study reports val), or a challenge half / both kept out of the pool")
def _pooled(data: FERData, p: SplitParams) -> Partition:
    frac = _check_fraction("pooled", p)
    pool = data.subset(np.flatnonzero(~np.isin(data.usage, TEST_USAGES[p.test])))
    rest, cut = _stratified_cut(pool, frac, p.seed)
    where = "every usage" if p.test == "none" else "usages other than " + p.test_name
    tail = ", no test set (val is what is reported)" if p.test == "none" else f", {p.test_name} as test"
    return Partition(pool.subset(rest), pool.subset(cut), _held_out(data, p),
                     f"pooled: {where} pooled, stratified {frac:.0%} as val" + tail)


@register_split_kind("holdout", doc="stratified val_fraction of Training as val; test (PrivateTest, PublicTest or "
                                    "both) as test")
def _holdout(data: FERData, p: SplitParams) -> Partition:
    frac = _check_fraction("holdout", p)
    train_all = _usages(data, ["Training"])
    rest, cut = _stratified_cut(train_all, frac, p.seed)
    return Partition(train_all.subset(rest), train_all.subset(cut), _held_out(data, p),
                     f"holdout: stratified {frac:.0%} of Training as val, {p.test_name} as test")


@register_split_kind("kfold", doc="fold `fold` of a stratified k-fold split of Training as val; test kept apart")
def _kfold(data: FERData, p: SplitParams) -> Partition:
    from sklearn.model_selection import StratifiedKFold

    train_all = _usages(data, ["Training"])
    rest, fold = fold_of(StratifiedKFold, train_all, p, "kfold")
    return Partition(rest, fold, _held_out(data, p),
                     f"kfold: fold {p.fold + 1}/{p.k} of stratified {p.k}-fold CV on Training, {p.test_name} as test")


def fold_of(cv_class, data: FERData, p: SplitParams, kind: str, groups: np.ndarray | None = None,
            units: int | None = None) -> tuple[FERData, FERData]:
    """(the other folds, fold ``p.fold``) of a seeded, shuffled ``p.k``-fold ``cv_class`` split of ``data``,
    stratified by label (and grouped by ``groups``); ``units``: how many images, or groups, there are to fold."""
    units = len(data) if units is None else units
    if p.k < 2 or not 0 <= p.fold < p.k or units < p.k:
        raise DataError(f"{kind} needs 2 <= k <= {units} and 0 <= fold < k; got k={p.k}, fold={p.fold}")
    cv = cv_class(n_splits=p.k, shuffle=True, random_state=p.seed)
    rest, fold = list(cv.split(np.zeros(len(data)), data.labels, groups))[p.fold]
    return data.subset(rest), data.subset(fold)


@register_split_kind("augmented", fixes_test=True,
                     doc="copies augmented copies per image, stratified re-split by ratios; order split_then_augment "
                         "augments only train (leak-free), augment_then_split reproduces the study's leaky protocol")
def _augmented(data: FERData, p: SplitParams) -> Partition:
    ratios = _check_ratios("augmented", p)
    if p.order not in ("split_then_augment", "augment_then_split"):
        raise DataError(f"augmented order must be split_then_augment or augment_then_split; got {p.order!r}")
    leaky = p.order == "augment_then_split"
    pool = _augmented_copies(data, p.copies, p.seed) if leaky else data
    notes = ["LEAKY protocol reproduced on request: augmented copies of one face land in train, val and test "
             "(augment-then-split), which inflates val/test accuracy."] if leaky else []
    # by_group=False splits rows, not faces: the leak the study made, reproduced on request.
    train, val, test = _three_way(pool, ratios, p.seed, by_group=not leaky)
    train = train if leaky else _augmented_copies(train, p.copies, p.seed)
    desc = (f"augmented: {p.copies} copies per image, stratified "
            f"{'/'.join(f'{r:.0%}' for r in ratios)} re-split ({p.order.replace('_', ' ')})")
    return Partition(train, val, test, desc, leaky, notes)


def _check_options(kind: SplitKind, p: SplitParams) -> None:
    if p.test not in TEST_USAGES:
        raise DataError(f"test must be PrivateTest, PublicTest, both or none; got {p.test!r}")
    if p.test == "none" and not kind.no_test:
        allowed = ", ".join(k.name for k in _KINDS if k.no_test)
        raise DataError(f"test: none (no test set) is only possible with kind: {allowed}, not {kind.name}")


def make_split(data: FERData, kind: str = "official", *, seed: int = 0, classes: list[str] | None = None,
               val_fraction: float | None = 0.1, k: int = 3, fold: int = 0, copies: int = 5, test: str = "PrivateTest",
               ratios: tuple[float, float, float] = (0.6, 0.2, 0.2), order: str = "split_then_augment",
               train_per_class: int | None = None, train_fraction: float | None = None,
               eval_per_class: int | None = None, manifest: str | None = None,
               manifest_sha256: str | None = None) -> SplitData:
    """Build the train/val/test partition a study asks for: the registered ``kind`` (see
    :func:`list_split_kinds`; each kind's ``doc`` says what it does), then the shared modifiers:
    ``classes`` (subset, labels remapped), ``train_per_class`` / ``train_fraction`` (stratified
    subsample of train) and ``eval_per_class`` (cap val/test; for smoke runs only).
    """
    spec = split_kind(kind)
    p = SplitParams(seed, val_fraction, k, fold, copies, test, tuple(ratios), order, manifest, manifest_sha256)
    _check_options(spec, p)
    data = select_classes(data, classes)
    desc_cls = f" on classes {'/'.join(data.classes)}" if classes else ""
    part = spec.build(data, p)
    train, val, test_part, notes = part.train, part.val, part.test, list(part.notes)
    if train_per_class is not None or train_fraction is not None:
        before = len(train)
        train = cap_per_class(train, train_per_class, train_fraction, seed)
        notes.append(f"train subsampled per class: {len(train)} of {before} images")
    if eval_per_class is not None:
        val = cap_per_class(val, eval_per_class, None, seed) if val is not None else None
        test_part = cap_per_class(test_part, eval_per_class, None, seed) if test_part is not None else None
        notes.append(f"val/test capped at {eval_per_class} images per class (smoke-sized evaluation)")
    for name, piece in (("train", train), ("test", test_part), ("val", val)):
        if piece is not None and len(piece) == 0:
            raise DataError(f"split '{kind}'{desc_cls} leaves the {name} partition empty")
    return SplitData(train, val, test_part, data.classes, part.description + desc_cls, part.leaky, notes,
                     test_items=part.test_items)
