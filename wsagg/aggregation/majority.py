"""Majority vote, plain and weighted: the baseline aggregator.

For item ``i`` with votes ``lambda_ij`` (abstains skipped) and source weights ``w_j >= 0``,

.. math::

    q_i(c) = \\frac{\\sum_j w_j \\, [\\lambda_{ij} = c]}{\\sum_j w_j \\, [\\lambda_{ij} \\ne -1]},

the (weighted) share of the votes that went to class ``c`` — a *soft* majority vote. Items
with no vote (or zero total weight) get ``class_prior_``. Repeated votes by one source on
one item each count.

With ``weights="accuracy"`` and known labels ``y`` at fit, each source gets the log-odds
weight of the one-coin (symmetric) Dawid-Skene model,
``w_j = max(0, log(a_j (k-1) / (1-a_j)))``, where ``a_j`` is the source's Laplace-smoothed
accuracy on the known labels: the Bayes-optimal weighted vote when sources are conditionally
independent and err uniformly (Nitzan & Paroush 1982; Dawid & Skene 1979).
"""

from __future__ import annotations

from numbers import Integral
from typing import Any, ClassVar

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from wsagg.base import BaseAggregator
from wsagg.labels import LabelMatrix

__all__ = ["MajorityVote"]


class MajorityVote(BaseAggregator):
    """(Weighted) majority vote over the sources that did not abstain.

    Parameters
    ----------
    n_classes : int, optional
        Number of classes ``k``; inferred from the votes (and ``y``) when ``None``.
    weights : None, array-like of shape (m,), or "accuracy"
        ``None``: every vote counts 1. An array: non-negative weight per source.
        ``"accuracy"``: one-coin log-odds weights estimated from the known labels ``y``.
    prior : {"empirical", "uniform"} or array-like of shape (k,)
        ``class_prior_`` given to items with no vote. ``"empirical"``: the class
        frequencies of the known labels ``y`` (Laplace-smoothed) when some are given, else
        the mean soft vote over the covered items — which on labeling-function data follows
        what the sources fire on, not how frequent the classes are among the items nobody
        votes on (pass a few known labels, or use ``DawidSkene(abstain="model")`` /
        ``AutoAggregator``); ``"uniform"``; or a given distribution.
    tie_break : {"first", "random"}
        Tie policy of :meth:`predict` (see :mod:`wsagg.base`).
    random_state : int, RandomState or None
        Seeds ``tie_break="random"``.

    Attributes
    ----------
    classes_ : ndarray of shape (k,)
    n_classes_ : int
    n_sources_ : int
    source_names_ : ndarray of shape (m,)
    weights_ : ndarray of shape (m,)
        The source weights used.
    class_prior_ : ndarray of shape (k,)
        Distribution predicted for items without votes.
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_classes": [Interval(Integral, 2, None, closed="left"), None],
        "weights": [StrOptions({"accuracy"}), "array-like", None],
        "prior": [StrOptions({"empirical", "uniform"}), "array-like"],
        "tie_break": [StrOptions({"first", "random"})],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_classes: int | None = None,
        *,
        weights: Any = None,
        prior: Any = "empirical",
        tie_break: str = "first",
        random_state: Any = None,
    ) -> None:
        self.n_classes = n_classes
        self.weights = weights
        self.prior = prior
        self.tie_break = tie_break
        self.random_state = random_state

    def _fit(self, lm: LabelMatrix, y: np.ndarray | None) -> None:
        m, k = lm.n_sources, lm.n_classes
        if self.weights is None:
            w = np.ones(m)
        elif isinstance(self.weights, str):
            if self.weights != "accuracy":
                raise ValueError(
                    f"weights must be None, an array of {m} source weights, or 'accuracy'; "
                    f"got {self.weights!r}."
                )
            if y is None or not (y >= 0).any():
                raise ValueError(
                    "weights='accuracy' estimates each source's accuracy from known labels: "
                    "pass y with at least some labels (-1 where unknown)."
                )
            w = _log_odds_weights(lm, y)
        else:
            w = np.asarray(self.weights, dtype=np.float64)
            if w.shape != (m,):
                raise ValueError(f"weights must have shape ({m},) (one per source); got {w.shape}.")
            if not np.all(np.isfinite(w)) or (w < 0).any():
                raise ValueError("weights must be finite and non-negative.")
        self.weights_ = w
        counts = lm.class_counts(w)
        total = counts.sum(axis=1)
        covered = total > 0
        if isinstance(self.prior, str) and self.prior == "empirical":
            if y is not None and (y >= 0).any():
                # the class frequencies of the known labels (Laplace-smoothed): what the
                # items without a vote most likely are, whatever the sources fire on
                prior = (np.bincount(y[y >= 0], minlength=k) + 1.0) / (np.sum(y >= 0) + k)
            elif covered.any():
                prior = (counts[covered] / total[covered, None]).mean(axis=0)
            else:
                prior = np.full(k, 1.0 / k)
        elif isinstance(self.prior, str) and self.prior == "uniform":
            prior = np.full(k, 1.0 / k)
        elif isinstance(self.prior, str):
            raise ValueError(
                f"prior must be 'empirical', 'uniform' or a distribution; got {self.prior!r}."
            )
        else:
            prior = np.asarray(self.prior, dtype=np.float64)
            if prior.shape != (k,) or (prior < 0).any() or not np.isclose(prior.sum(), 1.0):
                raise ValueError(f"prior must be a distribution over the {k} classes.")
        self.class_prior_ = prior

    def _predict_partitioned(self, L: Any) -> Any:
        from wsagg.distributed import predict_proba

        return predict_proba(self, L)

    def _predict_proba(self, lm: LabelMatrix) -> np.ndarray:
        counts = lm.class_counts(self.weights_)
        total = counts.sum(axis=1, keepdims=True)
        proba = np.empty_like(counts)
        covered = total[:, 0] > 0
        proba[covered] = counts[covered] / total[covered]
        proba[~covered] = self.class_prior_
        return proba


def _log_odds_weights(lm: LabelMatrix, y: np.ndarray) -> np.ndarray:
    """One-coin log-odds weights from Laplace-smoothed accuracies on the known labels."""
    known = y[lm.item] >= 0
    correct = (lm.label == y[lm.item]) & known
    n_known = np.bincount(lm.source[known], minlength=lm.n_sources)
    n_correct = np.bincount(lm.source[correct], minlength=lm.n_sources)
    acc = (n_correct + 1.0) / (n_known + 2.0)
    k = lm.n_classes
    return np.maximum(0.0, np.log(acc * (k - 1) / (1.0 - acc)))
