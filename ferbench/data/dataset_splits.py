"""Each dataset's standard protocol as a split kind (registered in :mod:`.splits`' table).

rafdb          RAF-DB basic: its train list as train (a stratified ``val_fraction`` as val), its test list as test.
affectnet      AffectNet: training.csv as train (a stratified ``val_fraction`` as val), validation.csv as test
               (the usual test set: the official test set was never released).
ferplus        FER+: Training / PublicTest / PrivateTest, as the FER+ paper reports.
stratified     ExpW style (no official split): every image pooled, a seeded stratified ``ratios`` split
               (train / val / test); rows of one group (faces of one photo) stay together.
subject_kfold  CK+ / JAFFE style: every image pooled, fold ``fold`` of ``k`` subject-independent folds as
               test (no subject in two partitions), ``val_fraction`` of the other subjects as val.
Each protocol kind checks that the data is its dataset, so a study cannot run RAF-DB's protocol on FER2013.
"""
from __future__ import annotations

import numpy as np

from ..errors import DataError
from .dataset import FERData
from .splits import (Partition, SplitParams, _check_fraction, _check_ratios, _stratified_cut, _three_way, _usages,
                     fold_of, register_split_kind)


def _require(data: FERData, kind: str, *datasets: str) -> None:
    if data.dataset not in datasets:
        raise DataError(f"split kind {kind!r} is {' / '.join(datasets)}'s protocol; the data is {data.dataset} "
                        f"({data.source}). Use it with --data pointing at {datasets[0]}, or pick another kind")


def _train_test(data: FERData, p: SplitParams, kind: str, train_name: str, test_name: str) -> Partition:
    frac = _check_fraction(kind, p)
    train_all = _usages(data, ["Training"])
    rest, cut = _stratified_cut(train_all, frac, p.seed)
    return Partition(train_all.subset(rest), train_all.subset(cut), _usages(data, ["PrivateTest"]),
                     f"{kind}: {train_name} as train (stratified {frac:.0%} of it as val), {test_name} as test")


@register_split_kind("rafdb", fixes_test=True, doc="RAF-DB basic: train list as train (stratified val_fraction as "
                                                   "val), test list as test")
def _rafdb(data: FERData, p: SplitParams) -> Partition:
    _require(data, "rafdb", "RAF-DB")
    return _train_test(data, p, "rafdb", "RAF-DB's train list", "its test list")


@register_split_kind("affectnet", fixes_test=True, doc="AffectNet: training.csv as train (stratified val_fraction "
                                                       "as val), validation.csv as test (the usual test set)")
def _affectnet(data: FERData, p: SplitParams) -> Partition:
    _require(data, "affectnet", "AffectNet", "AffectNet-7")
    return _train_test(data, p, "affectnet", "training.csv", "validation.csv (the usual test set)")


@register_split_kind("ferplus", fixes_test=True, doc="FER+: Training / PublicTest / PrivateTest")
def _ferplus(data: FERData, p: SplitParams) -> Partition:
    _require(data, "ferplus", "FER+")
    return Partition(_usages(data, ["Training"]), _usages(data, ["PublicTest"]), _usages(data, ["PrivateTest"]),
                     "ferplus: FER+ Training / PublicTest / PrivateTest")


@register_split_kind("subject_kfold", fixes_test=True,
                     doc="fold `fold` of k subject-independent folds of every image as test; val_fraction of "
                         "the other subjects as val (CK+, JAFFE)")
def _subject_kfold(data: FERData, p: SplitParams) -> Partition:
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

    if np.array_equal(data.groups, data.ids):
        raise DataError(f"subject_kfold needs subject ids, and {data.dataset} ({data.source}) carries none: its "
                        "reader gives each image its own group (use kfold, or a dataset read with its subjects)")
    subjects = np.unique(data.groups)
    frac = _check_fraction("subject_kfold", p)
    rest_d, test = fold_of(StratifiedGroupKFold, data, p, "subject_kfold (k counts subjects)", data.groups,
                           len(subjects))
    # Subjects mix classes, so val is a share of whole subjects (stratifying by subject is not defined).
    tr, va = next(GroupShuffleSplit(n_splits=1, test_size=frac, random_state=p.seed)
                  .split(np.zeros(len(rest_d)), groups=rest_d.groups))
    return Partition(rest_d.subset(tr), rest_d.subset(va), test,
                     f"subject_kfold: fold {p.fold + 1}/{p.k} of subject-independent {p.k}-fold CV "
                     f"({len(subjects)} subjects), {frac:.0%} of the other subjects as val")


@register_split_kind("stratified", fixes_test=True,
                     doc="every image pooled, a seeded stratified train/val/test split by ratios; one group's "
                         "rows (faces of one photo) stay together (ExpW)")
def _stratified(data: FERData, p: SplitParams) -> Partition:
    ratios = _check_ratios("stratified", p)
    return Partition(*_three_way(data, ratios, p.seed),
                     f"stratified: seeded ({p.seed}) {'/'.join(f'{r:.0%}' for r in ratios)} train/val/test of "
                     f"every image, stratified by class, groups kept whole")
