"""Classification metrics with uncertainty: pure functions on label / prediction arrays.

Arrays first, options keyword-only, scikit-learn inside where it has the metric. Intervals:
Wilson for accuracy (a proportion), percentile bootstrap for F1; paired comparison of two models on
the same images: exact McNemar test (binomial on the discordant pairs).

>>> accuracy([0, 1, 1, 2], [0, 1, 2, 2])
0.75
>>> round(mcnemar_exact([0] * 35, [0] * 19 + [1] * 16, [0] * 20 + [1] * 15)["p_value"], 3)
1.0
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import binomtest, norm
from sklearn.metrics import confusion_matrix as _sk_confusion
from sklearn.metrics import f1_score, precision_recall_fscore_support

__all__ = ["accuracy", "wilson_interval", "accuracy_ci", "per_class_report", "per_class_accuracy", "f1",
           "f1_from_confusion", "bootstrap_ci", "bootstrap_f1_ci", "confusion_matrix", "top_k_accuracy",
           "mcnemar_exact", "min_detectable_difference", "summarize"]


def _check(y_true, y_pred, fn: str) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.ndim != 1 or p.ndim != 1:
        raise ValueError(f"{fn}: y_true and y_pred must be 1-D; got shapes {t.shape} and {p.shape}")
    if len(t) != len(p):
        raise ValueError(f"{fn}: y_true and y_pred must have the same length; got {len(t)} and {len(p)}")
    if len(t) == 0:
        raise ValueError(f"{fn}: got empty arrays; a metric needs at least one sample")
    for name, a in (("y_true", t), ("y_pred", p)):
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{fn}: {name} must hold integer class indices; got dtype {a.dtype}")
    return t.astype(np.int64), p.astype(np.int64)


def _check_confidence(confidence: float, fn: str) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"The 'confidence' parameter of {fn} must be in (0, 1). Got {confidence!r} instead.")


def accuracy(y_true, y_pred) -> float:
    t, p = _check(y_true, y_pred, "accuracy")
    return float((t == p).mean())


def wilson_interval(successes: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``successes / n``."""
    _check_confidence(confidence, "wilson_interval")
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"wilson_interval needs 0 <= successes <= n and n > 0; got {successes}/{n}")
    z = norm.ppf(0.5 + confidence / 2)
    phat = successes / n
    denom = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_ci(y_true, y_pred, *, confidence: float = 0.95) -> tuple[float, float, float]:
    """(accuracy, lower, upper) with the Wilson interval."""
    t, p = _check(y_true, y_pred, "accuracy_ci")
    k = int((t == p).sum())
    lo, hi = wilson_interval(k, len(t), confidence=confidence)
    return k / len(t), lo, hi


def per_class_report(y_true, y_pred, *, num_classes: int) -> dict[str, list]:
    """Per-class precision, recall, F1 and support (zero_division=0: an unpredicted class scores 0)."""
    t, p = _check(y_true, y_pred, "per_class_report")
    pr, rc, f, s = precision_recall_fscore_support(t, p, labels=list(range(num_classes)), zero_division=0)
    return {"precision": pr.tolist(), "recall": rc.tolist(), "f1": f.tolist(), "support": s.astype(int).tolist()}


def per_class_accuracy(y_true, y_pred, *, num_classes: int) -> list[float | None]:
    """Fraction of each class's images classified correctly (the LLM study's Table 2); None if absent."""
    t, p = _check(y_true, y_pred, "per_class_accuracy")
    out = []
    for c in range(num_classes):
        m = t == c
        out.append(float((p[m] == c).mean()) if m.any() else None)
    return out


def f1(y_true, y_pred, *, num_classes: int, average: str = "macro") -> float:
    if average not in ("macro", "weighted", "micro"):
        raise ValueError(f"The 'average' parameter of f1 must be 'macro', 'weighted' or 'micro'. Got {average!r} instead.")
    t, p = _check(y_true, y_pred, "f1")
    return float(f1_score(t, p, labels=list(range(num_classes)), average=average, zero_division=0))


def bootstrap_ci(y_true, y_pred, stat, *, n_boot: int = 1000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat(y_true, y_pred)`` over resampled images."""
    _check_confidence(confidence, "bootstrap_ci")
    t, p = _check(y_true, y_pred, "bootstrap_ci")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(t), size=(n_boot, len(t)))
    vals = np.array([stat(t[i], p[i]) for i in idx])
    a = (1 - confidence) / 2
    return float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))


def f1_from_confusion(cm: np.ndarray, *, average: str = "macro") -> np.ndarray:
    """F1 from confusion counts (..., k, m), batched over leading axes: rows are the k true classes,
    columns the predicted classes, plus any extra columns (m > k) for answers naming no class.

    Same definition as :func:`f1` (labels ``0..k-1``, ``zero_division=0``): a class never true and
    never predicted scores 0 and still counts in the macro average; a missing answer is a false
    negative of its true class and a false positive of none.
    """
    if average not in ("macro", "weighted"):
        raise ValueError(f"The 'average' parameter of f1_from_confusion must be 'macro' or 'weighted'. "
                         f"Got {average!r} instead.")
    cm = np.asarray(cm, dtype=np.float64)
    k = cm.shape[-2]
    tp = np.diagonal(cm[..., :k], axis1=-2, axis2=-1)
    support = cm.sum(-1)
    denom = support + cm[..., :k].sum(-2)  # (tp + fn) + (tp + fp)
    per_class = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    if average == "macro":
        return per_class.mean(-1)
    total = support.sum(-1)
    return np.divide((per_class * support).sum(-1), total, out=np.zeros_like(total), where=total > 0)


def bootstrap_f1_ci(y_true, y_pred, *, num_classes: int, average: str = "macro", n_boot: int = 500,
                    confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of F1, vectorized: the same image resamples as
    :func:`bootstrap_ci` (same generator draws), scored from their confusion counts in one pass.
    A prediction outside ``0..num_classes-1`` (an LLM's missing answer) counts as wrong."""
    _check_confidence(confidence, "bootstrap_f1_ci")
    t, p = _check(y_true, y_pred, "bootstrap_f1_ci")
    k = num_classes
    if t.min() < 0 or t.max() >= k:
        raise ValueError(f"bootstrap_f1_ci: y_true must hold classes 0..{k - 1}")
    p = np.where((p >= 0) & (p < k), p, k)  # column k: no class named
    m = k + 1
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(t), size=(n_boot, len(t)))
    cells = (t * m + p)[idx] + (np.arange(n_boot) * k * m)[:, None]
    cms = np.bincount(cells.ravel(), minlength=n_boot * k * m).reshape(n_boot, k, m)
    vals = f1_from_confusion(cms, average=average)
    a = (1 - confidence) / 2
    return float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))


def confusion_matrix(y_true, y_pred, *, num_classes: int, normalize: str | None = None) -> np.ndarray:
    """Rows are true classes, columns predicted; ``normalize='true'`` gives row fractions."""
    if normalize not in (None, "true"):
        raise ValueError(f"The 'normalize' parameter of confusion_matrix must be None or 'true'. Got {normalize!r} instead.")
    t, p = _check(y_true, y_pred, "confusion_matrix")
    cm = _sk_confusion(t, p, labels=list(range(num_classes)))
    if normalize == "true":
        rows = cm.sum(1, keepdims=True)
        return np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    return cm


def top_k_accuracy(y_true, proba, *, k: int = 2) -> float:
    t = np.asarray(y_true)
    pr = np.asarray(proba)
    if pr.ndim != 2 or len(pr) != len(t):
        raise ValueError(f"top_k_accuracy: proba must be (n_samples, n_classes) matching y_true; got {pr.shape}")
    if not 1 <= k <= pr.shape[1]:
        raise ValueError(f"The 'k' parameter of top_k_accuracy must be in 1..{pr.shape[1]}. Got {k!r} instead.")
    top = np.argsort(-pr, axis=1)[:, :k]
    return float((top == t[:, None]).any(1).mean())


def mcnemar_exact(y_true, pred_a, pred_b) -> dict:
    """Exact McNemar test of two models on the same images.

    b: images A got right and B wrong; c: the reverse. p is the two-sided binomial test of b vs
    b + c at 0.5. p = 1 when the models never disagree in correctness.
    """
    t, a = _check(y_true, pred_a, "mcnemar_exact")
    _, b_ = _check(y_true, pred_b, "mcnemar_exact")
    ra, rb = a == t, b_ == t
    b, c = int((ra & ~rb).sum()), int((~ra & rb).sum())
    p = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)
    return {"b": b, "c": c, "p_value": p, "n": len(t)}


def holm(p_values) -> list[float]:
    """Holm's step-down adjustment of ``p_values`` (family-wise error rate): the i-th smallest p times
    (m - i), made monotone and capped at 1. Reject where the adjusted p is below alpha.

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or ((p < 0) | (p > 1) | np.isnan(p)).any():
        raise ValueError(f"holm: p_values must be a list of probabilities in [0, 1]. Got {p_values!r} instead.")
    order = np.argsort(p, kind="stable")
    m = len(p)
    adj = np.maximum.accumulate(p[order] * (m - np.arange(m))) if m else p
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return [round(float(v), 15) for v in out]


def min_detectable_difference(n: int, accuracy: float, *, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """Smallest accuracy gap (a fraction) that ``n`` images detect with two-sided ``alpha`` and ``power``.

    Normal approximation for two accuracies near ``accuracy`` measured on ``n`` images each:
    (z_{1-alpha/2} + z_power) * sqrt(2 p (1 - p) / n). Paired McNemar on the same images detects
    somewhat smaller gaps when the two models agree often, so this is a conservative guide.

    >>> round(min_detectable_difference(35, 0.5), 3)  # the LLM study's 35 images: a third of the scale
    0.335
    """
    if n <= 0:
        return None
    p = min(max(accuracy, 0.05), 0.95)  # at 0 or 1 the formula claims any gap is detectable
    return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * math.sqrt(2 * p * (1 - p) / n))


def summarize(y_true, y_pred, proba=None, *, num_classes: int, n_boot: int = 500,
              no_answer_column: bool = False) -> dict:
    """Every headline metric of one evaluation, JSON-ready.

    ``no_answer_column``: predictions of -1 (an LLM answer naming no class, or none at all) get their
    own confusion column, so every row sums to the images of its class.
    """
    acc, lo, hi = accuracy_ci(y_true, y_pred)
    t, p = _check(y_true, y_pred, "summarize")
    out = {
        "n": len(t), "accuracy": acc, "accuracy_ci": [lo, hi],
        "macro_f1": f1(t, p, num_classes=num_classes, average="macro"),
        "macro_f1_ci": list(bootstrap_f1_ci(t, p, num_classes=num_classes, average="macro", n_boot=n_boot)),
        "weighted_f1": f1(t, p, num_classes=num_classes, average="weighted"),
        "weighted_f1_ci": list(bootstrap_f1_ci(t, p, num_classes=num_classes, average="weighted", n_boot=n_boot)),
        "errors_total": int((t != p).sum()),
        **_averaged_precision_recall(t, p, num_classes),
        "per_class": per_class_report(t, p, num_classes=num_classes),
        "per_class_accuracy": per_class_accuracy(t, p, num_classes=num_classes),
        "confusion": confusion_matrix(t, p, num_classes=num_classes).tolist(),
    }
    if no_answer_column:
        missing = np.bincount(t[(p < 0) | (p >= num_classes)], minlength=num_classes)
        out["confusion"] = [row + [int(m)] for row, m in zip(out["confusion"], missing)]
        out["confusion_no_answer"] = True
    if proba is not None:
        pr = np.asarray(proba, dtype=np.float64)
        # unweighted cross-entropy of the predicted probabilities (what a paper's "loss" usually is)
        out["loss"] = float(-np.log(np.clip(pr[np.arange(len(t)), t], 1e-12, None)).mean())
        if num_classes > 2:
            out["top2_accuracy"] = top_k_accuracy(t, proba, k=2)
    return out


def _averaged_precision_recall(t: np.ndarray, p: np.ndarray, k: int) -> dict[str, float]:
    out = {}
    for avg in ("macro", "weighted"):
        pr, rc, _, _ = precision_recall_fscore_support(t, p, labels=list(range(k)), average=avg, zero_division=0)
        out[f"{avg}_precision"], out[f"{avg}_recall"] = float(pr), float(rc)
    return out
