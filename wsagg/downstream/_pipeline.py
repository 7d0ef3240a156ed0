"""One-call pipeline: label matrix -> aggregator -> prior correction -> classifier."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from wsagg.labels import as_label_matrix
from wsagg.prior import PriorCorrector

__all__ = ["WeakSupervisionPipeline", "confidence_weights"]


def confidence_weights(proba: np.ndarray, kind: str | None) -> np.ndarray | None:
    """Per-item confidence weights from soft labels.

    ``"max"``: :math:`\\max_c q_{ic}`; ``"entropy"``: :math:`1 - H(q_i)/\\log k` (0 for a
    uniform row, 1 for a one-hot row); ``None``: no weights.
    """
    if kind is None:
        return None
    if kind == "max":
        return proba.max(axis=1)
    if kind == "entropy":
        k = proba.shape[1]
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.where(proba > 0, proba * np.log(proba), 0.0).sum(axis=1)
        return np.clip(1.0 - h / np.log(k), 0.0, 1.0)
    raise ValueError(f"confidence must be None, 'max' or 'entropy'; got {kind!r}.")


class WeakSupervisionPipeline(BaseEstimator):
    """Label matrix → aggregator soft labels → prior correction → downstream classifier.

    Every step is a parameter and can be swapped:

    1. ``aggregator`` (any wsagg aggregator, default :class:`~wsagg.MajorityVote`):
       :math:`q_i = ` ``aggregator.fit_predict_proba(L)``;
    2. ``prior_correction`` — how to fix the *aggregator's* prior (``docs/prior.md``):
       ``None`` (keep :math:`q`); ``"pool"``: swap from the aggregator's prior
       (``class_prior_`` if it has one, else the mean soft label) to the pool prior estimated
       by Saerens EM — use when the aggregator assumed a prior (e.g. uniform) that is not the
       pool's; ``"uniform"``: swap to a uniform prior (kept for comparison: it does *not*
       rebalance a classifier trained on near one-hot targets); or any transformer with
       ``fit_transform(proba)`` (e.g. a :class:`~wsagg.prior.PriorCorrector`);
    3. ``classifier`` (default :class:`~wsagg.downstream.SoftLabelClassifier`) fitted with
       ``fit(X, q, sample_weight=s)``; *downstream rebalancing* (logit-adjusted / balanced
       softmax losses, post-hoc LA, P2P) is configured on the classifier.

    ``confidence`` sets the per-item weights :math:`s_i` (see :func:`confidence_weights`);
    ``drop_uncovered`` drops items no source voted on (their soft label is only the prior).

    Attributes
    ----------
    aggregator_, corrector_, classifier_ : the fitted steps (``corrector_`` may be None)
    soft_labels_ : ndarray (n, k) — the (corrected) training targets, all items
    train_mask_ : ndarray (n,) bool — items used to train the classifier
    class_counts_ : ndarray (k,) — soft class counts of the training targets, used to
        bucket classes by frequency in :meth:`evaluate`
    classes_ : ndarray (k,)
    """

    def __init__(
        self,
        aggregator: Any = None,
        prior_correction: Any = None,
        classifier: Any = None,
        *,
        confidence: str | None = None,
        drop_uncovered: bool = True,
    ) -> None:
        self.aggregator = aggregator
        self.prior_correction = prior_correction
        self.classifier = classifier
        self.confidence = confidence
        self.drop_uncovered = drop_uncovered

    def fit(self, L: Any, X: Any, y: Any = None, **fit_params: Any) -> WeakSupervisionPipeline:
        """Fit on label matrix ``L`` (rows aligned with ``X``); ``y`` optional known labels
        for the aggregator; ``fit_params`` go to the classifier's ``fit``."""
        from wsagg._registry import get_aggregator
        from wsagg.downstream._classifier import SoftLabelClassifier

        n_x = X.shape[0] if (sp.issparse(X) or hasattr(X, "shape")) else len(X)
        lm = as_label_matrix(L) if not hasattr(L, "n_items") else L
        if lm.n_items != n_x:
            raise ValueError(
                f"The label matrix has {lm.n_items} items but X has {n_x} rows; row i of X "
                "must be item i of the label matrix."
            )
        agg = get_aggregator("majority") if self.aggregator is None else clone(self.aggregator)
        q = agg.fit_predict_proba(lm, y) if y is not None else agg.fit_predict_proba(lm)
        corrector = self._make_corrector(agg)
        if corrector is not None:
            q = corrector.fit_transform(q)
        mask = lm.covered() if self.drop_uncovered else np.ones(lm.n_items, dtype=bool)
        if not mask.any():
            raise ValueError("No item has a vote; there is nothing to train on.")
        s = confidence_weights(q, self.confidence)
        clf = SoftLabelClassifier() if self.classifier is None else clone(self.classifier)
        Xm = X[mask] if (sp.issparse(X) or hasattr(X, "shape")) else np.asarray(X)[mask]
        if s is not None:
            fit_params = {**fit_params, "sample_weight": s[mask]}
        clf.fit(Xm, q[mask], **fit_params)
        self.aggregator_ = agg
        self.corrector_ = corrector
        self.classifier_ = clf
        self.soft_labels_ = q
        self.train_mask_ = mask
        self.class_counts_ = q[mask].sum(axis=0)
        self.classes_ = getattr(agg, "classes_", np.arange(q.shape[1]))
        return self

    def _make_corrector(self, agg: Any) -> Any:
        pc = self.prior_correction
        if pc is None:
            return None
        if isinstance(pc, str):
            source = agg if hasattr(agg, "class_prior_") else "mean"
            if pc == "pool":
                return PriorCorrector(source_prior=source, target_prior="em")
            if pc == "uniform":
                return PriorCorrector(source_prior=source, target_prior="uniform")
            raise ValueError(
                f"prior_correction must be None, 'pool', 'uniform' or a transformer; got {pc!r}."
            )
        if not hasattr(pc, "fit_transform"):
            raise TypeError("prior_correction must have fit_transform(proba).")
        return clone(pc)

    def predict_proba(self, X: Any) -> np.ndarray:
        """The classifier's class probabilities for new items ``X``."""
        check_is_fitted(self, "classifier_")
        return self.classifier_.predict_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        """The classifier's predicted classes (values of ``classes_``)."""
        check_is_fitted(self, "classifier_")
        idx = np.argmax(self.classifier_.predict_proba(X), axis=1)
        return self.classes_[idx]

    def evaluate(
        self, X: Any, y_true: Any, *, thresholds: tuple[float, float] | None = None
    ) -> dict[str, Any]:
        """Scores on gold ``y_true`` (class indices, ``-1`` unknown) with the classes
        bucketed by their frequency in the *training targets* (``class_counts_``):
        accuracy, balanced accuracy, macro-F1, log loss, Brier, ECE and per-bucket accuracy
        (``wsagg.metrics.evaluate``), plus ``per_class_recall``."""
        from wsagg import metrics

        proba = self.predict_proba(X)
        report = metrics.evaluate(y_true, proba, class_counts=self.class_counts_)
        if thresholds is not None:
            report["buckets"] = metrics.accuracy_by_frequency_bucket(
                y_true, np.argmax(proba, axis=1), self.class_counts_, thresholds
            )
        y = np.asarray(y_true)
        pred = np.argmax(proba, axis=1)
        report["per_class_recall"] = [
            float(np.mean(pred[y == c] == c)) if (y == c).any() else float("nan")
            for c in range(proba.shape[1])
        ]
        return report
