"""Metrics for aggregated labels that count abstains and uncovered items explicitly.

Conventions
-----------
* ``y_true`` holds gold class indices ``0..k-1`` and ``-1`` where no gold exists; items
  without gold are not scored (and are counted as such by :func:`evaluate`).
* Predictions are either probabilities ``(n, k)`` or hard class indices ``(n,)`` in which
  ``-1`` means *the method abstained* on that item: an abstained prediction is scored as
  **wrong**, never dropped. Items on which every source abstained (uncovered items) are scored
  with whatever the aggregator predicted for them (its class prior), and :func:`evaluate`
  reports how many there were and the accuracy on covered items separately.

The scores are scikit-learn's where scikit-learn has them (accuracy, balanced accuracy,
macro-F1, log loss); the multiclass Brier score (Brier 1950) and the expected calibration
error (Naeini et al. 2015; Guo et al. 2017) are defined here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

__all__ = [
    "accuracy",
    "accuracy_by_frequency_bucket",
    "balanced_accuracy",
    "brier_score",
    "evaluate",
    "expected_calibration_error",
    "frequency_buckets",
    "log_loss",
    "macro_f1",
]


def _gold(y_true: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D; got shape {y.shape}.")
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise ValueError("y_true must hold integer class ids with -1 for 'no gold'.")
    if (y < -1).any():
        raise ValueError("y_true may only contain class ids 0..k-1 and -1 (no gold).")
    return y.astype(np.int64), y >= 0


def _check_proba(proba: Any, n: int) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != n:
        raise ValueError(
            f"proba must have shape (n_items, n_classes) with n_items={n}; got {p.shape}."
        )
    if not np.all(np.isfinite(p)):
        raise ValueError("proba contains NaN or infinite values.")
    if (p < -1e-12).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("Each row of proba must be a probability distribution (>= 0, sums to 1).")
    return p


def _hard(pred: Any, n: int) -> np.ndarray:
    """Hard predictions from probabilities (argmax, ties to the lowest index) or class ids."""
    arr = np.asarray(pred)
    if arr.ndim == 2:
        return np.argmax(_check_proba(arr, n), axis=1)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"Predictions must have {n} entries; got shape {arr.shape}.")
    return arr.astype(np.int64)


def accuracy(y_true: Any, pred: Any, ties: str = "first") -> float:
    """Accuracy on gold items; an abstained prediction (``-1``) counts as wrong.

    With probabilities, ``ties="first"`` scores the argmax (ties to the lowest class index,
    the aggregators' default ``predict``); ``ties="expected"`` scores each item by the
    accuracy expected under a uniformly random tie-break among its most probable classes
    (the convention of the shared data MANIFEST's "MV acc").
    """
    if ties not in ("first", "expected"):
        raise ValueError(f"ties must be 'first' or 'expected'; got {ties!r}.")
    y, has = _gold(y_true)
    if not has.any():
        return float("nan")
    if ties == "expected" and np.asarray(pred).ndim == 2:
        proba = _check_proba(pred, y.shape[0])[has]
        top = proba >= proba.max(axis=1, keepdims=True) - 1e-12
        hit = top[np.arange(top.shape[0]), y[has]]
        return float(np.mean(hit / top.sum(axis=1)))
    p = _hard(pred, y.shape[0])
    return float(skm.accuracy_score(y[has], p[has]))


def balanced_accuracy(y_true: Any, pred: Any) -> float:
    """Mean per-class recall on gold items (abstained predictions count as wrong)."""
    y, has = _gold(y_true)
    p = _hard(pred, y.shape[0])
    if not has.any():
        return float("nan")
    classes = np.unique(y[has])
    recalls = [np.mean(p[has][y[has] == c] == c) for c in classes]
    return float(np.mean(recalls))


def macro_f1(y_true: Any, pred: Any, n_classes: int | None = None) -> float:
    """Macro-averaged F1 over the classes present in gold or predictions."""
    y, has = _gold(y_true)
    p = _hard(pred, y.shape[0])
    if not has.any():
        return float("nan")
    labels = np.unique(np.concatenate([y[has], p[has][p[has] >= 0]]))
    if n_classes is not None:
        labels = np.arange(n_classes)
    return float(skm.f1_score(y[has], p[has], labels=labels, average="macro", zero_division=0))


def log_loss(y_true: Any, proba: Any) -> float:
    """Mean negative log-likelihood of the gold labels (probabilities clipped at 1e-15)."""
    y, has = _gold(y_true)
    p = _check_proba(proba, y.shape[0])
    if not has.any():
        return float("nan")
    picked = p[has, y[has]]
    return float(-np.mean(np.log(np.clip(picked, 1e-15, 1.0))))


def brier_score(y_true: Any, proba: Any) -> float:
    """Multiclass Brier score ``mean_i sum_c (p_ic - [y_i = c])^2`` (range [0, 2])."""
    y, has = _gold(y_true)
    p = _check_proba(proba, y.shape[0])
    if not has.any():
        return float("nan")
    onehot = np.zeros_like(p[has])
    onehot[np.arange(onehot.shape[0]), y[has]] = 1.0
    return float(np.mean(np.sum((p[has] - onehot) ** 2, axis=1)))


def expected_calibration_error(y_true: Any, proba: Any, n_bins: int = 15) -> float:
    """Expected calibration error of the top-class confidence, equal-width bins.

    ``ECE = sum_b (n_b / n) |acc_b - conf_b|`` (Naeini, Cooper & Hauskrecht 2015).
    """
    if int(n_bins) < 1:
        raise ValueError("n_bins must be >= 1.")
    y, has = _gold(y_true)
    p = _check_proba(proba, y.shape[0])
    if not has.any():
        return float("nan")
    conf = p[has].max(axis=1)
    correct = (np.argmax(p[has], axis=1) == y[has]).astype(float)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    acc_b = np.bincount(bins, weights=correct, minlength=n_bins)
    conf_b = np.bincount(bins, weights=conf, minlength=n_bins)
    return float(np.sum(np.abs(acc_b - conf_b)) / conf.shape[0])


def frequency_buckets(
    class_counts: Any, thresholds: tuple[float, float] | None = None
) -> dict[str, np.ndarray]:
    """Split classes into ``head`` / ``medium`` / ``tail`` by their frequency.

    With ``thresholds=(many, few)``: head = classes with more than ``many`` items, tail =
    fewer than ``few``, medium = the rest (the ImageNet-LT convention, Liu et al. 2019).
    Without thresholds: classes ranked by count (ties broken by class index) are cut into
    three groups of nearly equal size by rank (k = 2: head and tail only).
    """
    counts = np.asarray(class_counts, dtype=np.float64)
    if counts.ndim != 1 or counts.shape[0] < 1 or (counts < 0).any():
        raise ValueError("class_counts must be a 1-D array of non-negative counts per class.")
    k = counts.shape[0]
    if thresholds is not None:
        many, few = thresholds
        if few > many:
            raise ValueError("thresholds must be (many, few) with few <= many.")
        head = np.flatnonzero(counts > many)
        tail = np.flatnonzero(counts < few)
        medium = np.setdiff1d(np.arange(k), np.concatenate([head, tail]))
        return {"head": head, "medium": medium, "tail": tail}
    order = np.lexsort((np.arange(k), -counts))  # by count desc, then index
    if k == 1:
        return {"head": order, "medium": order[:0], "tail": order[:0]}
    if k == 2:
        return {"head": order[:1], "medium": order[:0], "tail": order[1:]}
    cuts = np.array_split(order, 3)
    return {"head": np.sort(cuts[0]), "medium": np.sort(cuts[1]), "tail": np.sort(cuts[2])}


def accuracy_by_frequency_bucket(
    y_true: Any,
    pred: Any,
    class_counts: Any = None,
    thresholds: tuple[float, float] | None = None,
) -> dict[str, dict[str, Any]]:
    """Accuracy on gold items whose true class falls in each frequency bucket.

    ``class_counts`` defaults to the gold counts; pass training-set counts to bucket by the
    frequency the model saw. Each bucket reports its classes, its number of gold items and
    its accuracy (NaN when empty) and balanced accuracy (mean recall of its classes).
    """
    y, has = _gold(y_true)
    p = _hard(pred, y.shape[0])
    k = int(max(y.max(initial=-1), p.max(initial=-1))) + 1
    if class_counts is None:
        class_counts = np.bincount(y[has], minlength=k)
    counts = np.asarray(class_counts)
    buckets = frequency_buckets(counts, thresholds)
    out: dict[str, dict[str, Any]] = {}
    for name, classes in buckets.items():
        mask = has & np.isin(y, classes)
        recalls = [np.mean(p[has & (y == c)] == c) for c in classes if (has & (y == c)).any()]
        out[name] = {
            "classes": classes.tolist(),
            "n_items": int(mask.sum()),
            "accuracy": float(np.mean(p[mask] == y[mask])) if mask.any() else float("nan"),
            "balanced_accuracy": float(np.mean(recalls)) if recalls else float("nan"),
        }
    return out


def evaluate(
    y_true: Any,
    proba: Any,
    *,
    covered: Any = None,
    class_counts: Any = None,
    n_bins: int = 15,
) -> dict[str, Any]:
    """All scores of soft labels ``proba`` against gold ``y_true`` in one report.

    Parameters
    ----------
    y_true : array (n,)
        Gold class ids, ``-1`` where unknown.
    proba : array (n, k)
        Soft labels (rows are distributions).
    covered : bool array (n,) or LabelMatrix, optional
        Which items received at least one vote (pass the label matrix to compute it). When
        given, the report adds ``n_uncovered`` and ``accuracy_covered``.
    class_counts : array (k,), optional
        Class frequencies for the head/medium/tail buckets (default: gold counts).

    Returns
    -------
    dict with ``n_items``, ``n_gold``, ``accuracy``, ``balanced_accuracy``, ``macro_f1``,
    ``log_loss``, ``brier``, ``ece``, ``buckets`` and, with ``covered``, ``n_uncovered`` and
    ``accuracy_covered``.
    """
    y, has = _gold(y_true)
    p = _check_proba(proba, y.shape[0])
    report: dict[str, Any] = {
        "n_items": int(y.shape[0]),
        "n_gold": int(has.sum()),
        "accuracy": accuracy(y, p),
        "balanced_accuracy": balanced_accuracy(y, p),
        "macro_f1": macro_f1(y, p, n_classes=p.shape[1]),
        "log_loss": log_loss(y, p),
        "brier": brier_score(y, p),
        "ece": expected_calibration_error(y, p, n_bins=n_bins),
        "buckets": accuracy_by_frequency_bucket(y, p, class_counts),
    }
    if covered is not None:
        if hasattr(covered, "covered"):
            covered = covered.covered()
        cov = np.asarray(covered, dtype=bool)
        if cov.shape != y.shape:
            raise ValueError(f"covered must have shape {y.shape}; got {cov.shape}.")
        report["n_uncovered"] = int((~cov & has).sum())
        y_cov = np.where(cov, y, -1)
        report["accuracy_covered"] = accuracy(y_cov, p)
    return report
