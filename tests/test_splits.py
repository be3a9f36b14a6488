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


# --- issue 12: the Kaggle release, pooled splits, the test option -----------------------------------

def _counts(part, k=7):
    return np.bincount(part.labels, minlength=k).tolist()


# --- synthetic data (the `synth` fixture of tests/conftest.py) -----------------------------------------

def _usage_counts(synth, usage, k=7):
    return np.bincount(synth.labels[synth.usage == usage], minlength=k).tolist()


def test_kaggle_split_train_is_training_test_is_both_halves(synth):
    s = make_split(synth, "kaggle", val_fraction=None)
    assert s.val is None
    assert _counts(s.train) == _usage_counts(synth, "Training")
    both = [a + b for a, b in zip(_usage_counts(synth, "PublicTest"), _usage_counts(synth, "PrivateTest"))]
    assert _counts(s.test) == both
    assert set(s.test.usage) == {"PublicTest", "PrivateTest"}


def test_kaggle_split_with_validation_cut_from_training(synth):
    s = make_split(synth, "kaggle", val_fraction=0.1, seed=3)
    n_train = int((synth.usage == "Training").sum())
    assert len(s.train) + len(s.val) == n_train and set(s.val.usage) == {"Training"}
    assert len(s.val) == int(np.ceil(0.1 * n_train))
    assert not set(s.train.ids) & set(s.val.ids)


@pytest.mark.parametrize("test,usages", [("PublicTest", {"PublicTest"}), ("PrivateTest", {"PrivateTest"}),
                                         ("both", {"PublicTest", "PrivateTest"})])
def test_holdout_and_kfold_test_option(synth, test, usages):
    for kind, kw in (("holdout", {"val_fraction": 0.2}), ("kfold", {"k": 3, "fold": 1})):
        s = make_split(synth, kind, test=test, **kw)
        assert set(s.test.usage) == usages, (kind, test)
        assert set(s.train.usage) == set(s.val.usage) == {"Training"}


def test_holdout_default_test_is_still_private(synth):
    assert set(make_split(synth, "holdout").test.usage) == {"PrivateTest"}


def test_pooled_split_uses_every_usage_and_has_no_test(synth):
    s = make_split(synth, "pooled", val_fraction=0.1, classes=["happy", "sad", "neutral"], test="none")
    assert s.test is None
    pool = np.isin(synth.labels, [3, 4, 6])
    assert len(s.train) + len(s.val) == int(pool.sum())
    assert len(s.val) == int(np.ceil(0.1 * pool.sum()))
    assert {"Training", "PublicTest", "PrivateTest"} <= set(s.train.usage) | set(s.val.usage)


def test_bad_combinations_are_clear_errors(synth):
    from ferbench.errors import DataError

    with pytest.raises(DataError, match="val_fraction"):
        make_split(synth, "holdout", val_fraction=None)
    with pytest.raises(DataError, match="test"):
        make_split(synth, "holdout", test="none")


def test_a_stratified_cut_too_small_for_its_classes_says_so(synth):
    """A validation cut with fewer images than classes (a tiny manifest or --limit): a DataError naming the
    class counts, not sklearn's traceback."""
    tiny = synth.subset(np.concatenate([np.flatnonzero(synth.labels == c)[:3] for c in range(7)]))
    with pytest.raises(DataError, match=r"cannot cut a stratified 0.1 of 21 images \(angry 3, .*at least one image per class"):
        make_split(tiny, "holdout", val_fraction=0.1)
