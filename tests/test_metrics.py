import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix as sk_cm, f1_score

from ferbench import metrics as M

T = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 1])
P = np.array([0, 1, 0, 1, 1, 2, 0, 2, 1, 1])


def test_confusion_matrix_by_hand():
    cm = M.confusion_matrix(T, P, num_classes=3)
    assert cm.tolist() == [[2, 1, 0], [0, 3, 0], [1, 1, 2]]
    norm = M.confusion_matrix(T, P, num_classes=3, normalize="true")
    np.testing.assert_allclose(norm[2], [0.25, 0.25, 0.5])
    np.testing.assert_array_equal(cm, sk_cm(T, P))


def test_accuracy_and_f1_match_sklearn_and_hand():
    assert M.accuracy(T, P) == accuracy_score(T, P) == 0.7
    # class 1: precision 3/5, recall 3/3 -> F1 0.75; class 0: P 2/3 R 2/3; class 2: P 1 R 0.5
    rep = M.per_class_report(T, P, num_classes=3)
    np.testing.assert_allclose(rep["f1"], [2 / 3, 0.75, 2 / 3])
    assert rep["support"] == [3, 3, 4]
    for avg in ("macro", "weighted"):
        assert M.f1(T, P, num_classes=3, average=avg) == pytest.approx(f1_score(T, P, average=avg))
    assert M.per_class_accuracy(T, P, num_classes=4) == [2 / 3, 1.0, 0.5, None]


def test_wilson_known_values():
    lo, hi = M.wilson_interval(19, 35)  # 54.29 % (the GPT-4 Turbo figure)
    assert (round(lo, 4), round(hi, 4)) == (0.3819, 0.6953)  # by hand: centre 0.5386, half 0.1567
    assert M.wilson_interval(0, 10)[0] == 0.0 and M.wilson_interval(10, 10)[1] == pytest.approx(1.0)
    lo, hi = M.wilson_interval(50, 100)
    assert (round(lo, 4), round(hi, 4)) == (0.4038, 0.5962)


def test_mcnemar_exact_known_values():
    y = np.zeros(20, dtype=int)
    a = np.zeros(20, dtype=int)
    b = np.array([1] * 10 + [0] * 10)  # b wrong on 10 images a got right, never the reverse
    r = M.mcnemar_exact(y, a, b)
    assert (r["b"], r["c"]) == (10, 0) and r["p_value"] == pytest.approx(2 * 0.5 ** 10)
    # 57.14 % vs 54.29 % on 35 images: one discordant image -> p = 1
    t = np.zeros(35, dtype=int)
    pa = np.array([0] * 20 + [1] * 15)
    pb = np.array([0] * 19 + [1] * 16)
    assert M.mcnemar_exact(t, pa, pb)["p_value"] == 1.0
    assert M.mcnemar_exact(t, pa, pa)["p_value"] == 1.0


def test_bootstrap_ci_contains_point_estimate_and_is_seeded():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 3, 300)
    p = np.where(rng.random(300) < 0.7, t, rng.integers(0, 3, 300))
    stat = lambda a, b: M.f1(a, b, num_classes=3)  # noqa: E731
    lo, hi = M.bootstrap_ci(t, p, stat, n_boot=300, seed=1)
    assert lo < stat(t, p) < hi and hi - lo < 0.2
    assert (lo, hi) == M.bootstrap_ci(t, p, stat, n_boot=300, seed=1)


def test_top_k():
    proba = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.3, 0.4, 0.3]])
    assert M.top_k_accuracy([1, 0, 0], proba, k=1) == 0.0
    assert M.top_k_accuracy([1, 0, 0], proba, k=2) == pytest.approx(2 / 3)


@pytest.mark.parametrize("call,msg", [
    (lambda: M.accuracy([0, 1], [0]), "same length; got 2 and 1"),
    (lambda: M.accuracy([], []), "empty"),
    (lambda: M.accuracy([0.5], [1]), "integer class indices"),
    (lambda: M.f1([0], [0], num_classes=2, average="mean"), "The 'average' parameter of f1 must be"),
    (lambda: M.wilson_interval(1, 2, confidence=1.5), "The 'confidence' parameter of wilson_interval"),
    (lambda: M.top_k_accuracy([0], [[1.0, 0.0]], k=3), "The 'k' parameter of top_k_accuracy"),
])
def test_precise_errors(call, msg):
    with pytest.raises(ValueError, match=msg):
        call()
