import numpy as np
import pytest

from ferbench.data.splits import make_split
from ferbench.errors import DataError


def _ids(part):
    return set(part.ids.tolist())


def _no_overlap(s, key="ids"):
    parts = [p for p in (s.train, s.val, s.test) if p is not None]
    sets = [set(getattr(p, key).tolist()) for p in parts]
    return all(not (a & b) for i, a in enumerate(sets) for b in sets[i + 1:])


def _shares(labels, k):
    return np.bincount(labels, minlength=k) / len(labels)


def test_official(synth):
    s = make_split(synth, "official")
    c = synth.counts()
    assert s.sizes() == {"train": sum(c["Training"].values()), "val": sum(c["PublicTest"].values()),
                         "test": sum(c["PrivateTest"].values())}
    assert set(s.train.usage) == {"Training"} and set(s.test.usage) == {"PrivateTest"}
    assert _no_overlap(s)


def test_holdout_stratified_and_deterministic(synth):
    a = make_split(synth, "holdout", val_fraction=0.2, seed=5)
    b = make_split(synth, "holdout", val_fraction=0.2, seed=5)
    c = make_split(synth, "holdout", val_fraction=0.2, seed=6)
    assert _ids(a.val) == _ids(b.val) and _ids(a.val) != _ids(c.val)
    assert _no_overlap(a)
    train_all = synth.labels[synth.usage == "Training"]
    assert abs(len(a.val) - 0.2 * len(train_all)) <= 7
    np.testing.assert_allclose(_shares(a.val.labels, 7), _shares(train_all, 7), atol=0.02)


def test_three_class_subset_remaps_labels(synth):
    s = make_split(synth, "holdout", classes=["happy", "sad", "neutral"], val_fraction=0.1)
    assert s.classes == ("happy", "sad", "neutral")
    for part in (s.train, s.val, s.test):
        assert set(part.labels.tolist()) == {0, 1, 2}
    n_happy_test = int(((synth.usage == "PrivateTest") & (synth.labels == 3)).sum())
    assert int((s.test.labels == 0).sum()) == n_happy_test


def test_kfold_partitions_training(synth):
    folds = [make_split(synth, "kfold", k=3, fold=f) for f in range(3)]
    vals = [_ids(f.val) for f in folds]
    n_train = int((synth.usage == "Training").sum())
    assert sum(map(len, vals)) == n_train and not (vals[0] & vals[1]) and not (vals[1] & vals[2])
    for f in folds:
        assert _no_overlap(f) and set(f.test.usage) == {"PrivateTest"}


@pytest.mark.parametrize("order", ["split_then_augment", "augment_then_split"])
def test_augmented_split(synth, order):
    s = make_split(synth, "augmented", copies=2, order=order)
    total = len(synth) * (2 if order == "augment_then_split" else 1)
    assert _no_overlap(s)  # row ids never repeat
    leak = not _no_overlap(s, key="groups")
    assert s.leaky == leak == (order == "augment_then_split")
    if order == "split_then_augment":
        assert len(s.train) == 2 * round(0.6 * len(synth)) or abs(len(s.train) / 2 - 0.6 * len(synth)) < 10
        assert abs(len(s.test) - 0.2 * len(synth)) < 10
        assert any("LEAKY" in n for n in s.notes) is False
    else:
        assert abs(len(s.test) - 0.2 * total) < 10 and any("LEAKY" in n for n in s.notes)


def test_subsample_caps_train_per_class(synth):
    s = make_split(synth, "official", train_per_class=10, eval_per_class=4)
    assert np.bincount(s.train.labels).max() == 10
    assert np.bincount(s.test.labels).max() == 4


@pytest.mark.parametrize("kw,msg", [
    (dict(kind="kfold", k=3, fold=3), "0 <= fold < k"),
    (dict(kind="holdout", val_fraction=1.5), "val_fraction must be in"),
    (dict(kind="official", classes=["happy", "bored"]), "unknown class 'bored'"),
    (dict(kind="banana"), "unknown split kind"),
])
def test_impossible_splits(synth, kw, msg):
    with pytest.raises(DataError, match=msg):
        make_split(synth, **kw)
