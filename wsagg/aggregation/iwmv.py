r"""IWMV: iterative weighted majority voting (Li & Yu, 2014).

The rule. Start from the plain majority vote; then alternate between measuring each
source's accuracy against the current labels and re-voting with weights derived from those
accuracies, until the labels stop changing. With :math:`\lambda_v` the class of vote ``v``
(source :math:`j(v)`, item :math:`i(v)`) and :math:`V_j` the votes of source ``j``:

.. math::

    \hat y^{(0)}_i = \arg\max_c \sum_{v \in i} [\lambda_v = c], \qquad
    \hat a^{(t)}_j = \frac{1}{|V_j|} \sum_{v \in V_j} h^{(t-1)}_{i(v)}(\lambda_v),

.. math::

    w^{(t)}_j = f(\hat a^{(t)}_j), \qquad
    \hat y^{(t)}_i = \arg\max_c \sum_{v \in i} w^{(t)}_{j(v)} [\lambda_v = c],

stopping at the first ``t`` with :math:`\hat y^{(t)} = \hat y^{(t-1)}` (``converged_``) or
at ``t = max_iter``. :math:`h_i` is the label as a distribution: one-hot, or uniform over the
tied classes (``ties="split"``, symmetric in the classes; ``"first"`` gives a tie to the
lowest class index). The weight function ``weights``:

``"linear"`` (default, the paper's Algorithm 1)
    :math:`f(a) = k a - 1`: the weights that minimise Li & Yu's bound on the error rate of
    weighted majority voting under the one-coin Dawid-Skene model; it is the first-order
    expansion of the log-odds around chance,
    :math:`\log\frac{(k-1)a}{1-a} \approx \frac{k}{k-1}(k a - 1)`. A source worse than
    chance gets a negative weight (its votes count against their class).
``"log-odds"``
    :math:`f(a) = \log\frac{(k-1)\tilde a}{1-\tilde a}`, the oracle MAP weights of the
    one-coin model (the paper's Section 4), at the smoothed accuracy
    :math:`\tilde a = (c + 1)/(n + k)` (:math:`c` agreeing votes out of :math:`n`) so that it
    stays finite; chance is weight 0.
``"accuracy"``
    :math:`f(a) = a` (peerannot's ``IWMV``, i.e. an iterated Wawa).

Soft output. For ``"log-odds"`` the weights are log-likelihood ratios, and the output is the
one-coin posterior under a uniform prior, :math:`q_i = \mathrm{softmax}_c(\sum_{v \in i}
w_{j(v)} [\lambda_v = c])`; for ``"linear"`` the same with the weights scaled by
:math:`k/(k-1)` (the linearised log-odds above); for ``"accuracy"`` the weighted vote
shares (as Wawa). In every case :math:`\arg\max_c q_i` is the IWMV label.

Known labels ``y`` replace :math:`h_i` on their items in every accuracy step, so the weights
are measured against the truth where it is known. Items with no vote get ``class_prior_``,
the mean of :math:`q_i` over the covered training items. A source that never votes gets
accuracy ``1/k`` (weight 0 for ``"linear"`` and ``"log-odds"``, ``1/k`` for
``"accuracy"``). Every vote counts, repeated ones included. An iteration is two passes over
the votes: O(votes x k).

References
----------
.. [1] H. Li and B. Yu (2014). Error rate bounds and iterative weighted majority voting for
   crowdsourcing. arXiv:1411.4086.
"""

from __future__ import annotations

import warnings
from numbers import Integral
from typing import Any

import numpy as np
from scipy.special import softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions

from wsagg._validation import user_stacklevel
from wsagg._voting import hard_labels
from wsagg.base import BaseAggregator
from wsagg.labels import LabelMatrix

__all__ = ["IWMV"]



def _accuracy(lm: LabelMatrix, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per source: number of votes and number (fractional under split ties) agreeing with
    ``h``."""
    m = lm.n_sources
    n_votes = np.bincount(lm.source, minlength=m).astype(np.float64)
    agree = np.bincount(lm.source, weights=h[lm.item, lm.label], minlength=m)
    return n_votes, agree


class IWMV(BaseAggregator):
    r"""Iterative weighted majority voting (Li & Yu, 2014).

    Alternates a weighted majority vote with re-estimating each source's accuracy against
    its labels, until the labels stop changing. See the module docstring of
    :mod:`wsagg.aggregation.iwmv` for the updates, the weight functions and the soft output.

    Parameters
    ----------
    n_classes : int, optional
        Number of classes ``k``; inferred from the votes (and ``y``) when ``None``.
    weights : {"linear", "log-odds", "accuracy"}, default="linear"
        Weight of a source of accuracy ``a``: ``k a - 1`` (the paper's Algorithm 1),
        ``log((k-1) a / (1-a))`` at the Laplace-smoothed accuracy (the one-coin MAP
        weights), or ``a`` itself (peerannot's ``IWMV``).
    ties : {"split", "first"}, default="split"
        How a tie in a weighted vote counts when the accuracies are measured: shared equally
        among the tied classes (symmetric in the classes) or given to the lowest class index.
    max_iter : int >= 1, default=100
        Maximum number of re-weighting steps (``1``: one weighted vote after the majority
        vote, i.e. Wawa's labels for ``weights="accuracy"``).
    tie_break : {"first", "random"}, default="first"
        Tie policy of :meth:`predict` (see :mod:`wsagg.base`).
    random_state : int, RandomState or None
        Seeds ``tie_break="random"`` (the fit is deterministic).

    Attributes
    ----------
    classes_ : ndarray of shape (k,)
    n_classes_ : int
    n_sources_ : int
    source_names_ : ndarray of shape (m,)
    accuracy_ : ndarray of shape (m,)
        Each source's accuracy against the labels of the last step (unsmoothed; ``1/k`` for
        a source that never votes).
    weights_ : ndarray of shape (m,)
        The vote weights ``f(accuracy_)`` that give the final labels.
    class_prior_ : ndarray of shape (k,)
        Mean soft label over the covered training items; given to items without votes.
    n_iter_ : int
        Re-weighting steps run.
    converged_ : bool
        Whether the labels stopped changing within ``max_iter`` steps.
    n_changed_history_ : ndarray of shape (n_iter_,)
        Number of items whose label changed at each step (0 at convergence): the
        algorithm's progress trace (IWMV optimises no likelihood).

    Notes
    -----
    IWMV suits crowd data with many votes per source (the accuracies are then well
    estimated) and sources that err roughly uniformly over the classes (the one-coin model);
    with class-dependent errors prefer Dawid-Skene. It is about as fast as majority vote.
    The labels are those of the paper's Algorithm 1 (``weights="linear"``); with
    ``weights="accuracy"``, ``ties="first"`` they equal peerannot's ``IWMV`` (whose ties are
    random) wherever no tie occurs, once both have converged.

    Examples
    --------
    >>> import numpy as np
    >>> from wsagg.aggregation.iwmv import IWMV
    >>> L = np.array([[0, 0, 1], [1, 1, 1], [0, -1, 0], [1, 1, -1], [0, 0, 0]])
    >>> est = IWMV().fit(L)
    >>> est.weights_
    array([1. , 1. , 0.5])
    >>> est.predict(L)
    array([0, 1, 0, 1, 0])
    """

    _parameter_constraints: dict = {  # noqa: RUF012 (scikit-learn's convention)
        "n_classes": [Interval(Integral, 2, None, closed="left"), None],
        "weights": [StrOptions({"linear", "log-odds", "accuracy"})],
        "ties": [StrOptions({"split", "first"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tie_break": [StrOptions({"first", "random"})],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_classes: int | None = None,
        *,
        weights: str = "linear",
        ties: str = "split",
        max_iter: int = 100,
        tie_break: str = "first",
        random_state: Any = None,
    ) -> None:
        self.n_classes = n_classes
        self.weights = weights
        self.ties = ties
        self.max_iter = max_iter
        self.tie_break = tie_break
        self.random_state = random_state

    def _weight_function(self, n_votes: np.ndarray, agree: np.ndarray, k: int):
        """``(accuracy, weights)`` from the per-source vote and agreement counts."""
        acc = np.full(n_votes.shape[0], 1.0 / k)
        np.divide(agree, n_votes, out=acc, where=n_votes > 0)
        if self.weights == "linear":
            return acc, k * acc - 1.0
        if self.weights == "accuracy":
            return acc, acc.copy()
        smooth = (agree + 1.0) / (n_votes + k)
        return acc, np.log((k - 1) * smooth / (1.0 - smooth))

    def _fit(self, lm: LabelMatrix, y: np.ndarray | None) -> None:
        k = lm.n_classes
        known = None if y is None or not (y >= 0).any() else y
        h = hard_labels(lm, np.ones(lm.n_sources), self.ties, known)
        changed: list[int] = []
        converged = False
        n_iter = 0
        while n_iter < self.max_iter:
            n_iter += 1
            acc, w = self._weight_function(*_accuracy(lm, h), k)
            h_new = hard_labels(lm, w, self.ties, known)
            n_changed = int(np.count_nonzero(np.any(h_new != h, axis=1)))
            changed.append(n_changed)
            h = h_new
            if n_changed == 0:
                converged = True
                break
        self.accuracy_ = acc
        self.weights_ = w
        self.n_iter_ = n_iter
        self.converged_ = converged
        self.n_changed_history_ = np.asarray(changed, dtype=np.int64)
        proba, ok = self._soft(lm)
        prior = proba[ok].mean(axis=0) if ok.any() else np.full(k, 1.0 / k)
        self.class_prior_ = prior / prior.sum()
        if not converged:
            warnings.warn(
                f"IWMV did not converge in max_iter={self.max_iter} iterations: "
                f"{changed[-1]} item label(s) still changed at the last step (the labels may "
                "cycle). Increase max_iter; the last weights are kept.",
                ConvergenceWarning,
                stacklevel=user_stacklevel(),
            )

    def _soft(self, lm: LabelMatrix) -> tuple[np.ndarray, np.ndarray]:
        """Soft output of every row, and the mask of rows it is defined for (with votes;
        for ``weights="accuracy"`` with positive total weight); the others are uniform."""
        k = lm.n_classes
        if self.weights == "accuracy":
            counts = lm.class_counts(self.weights_)
            total = counts.sum(axis=1, keepdims=True)
            ok = total[:, 0] > 0
            out = np.full_like(counts, 1.0 / k)
            np.divide(counts, total, out=out, where=ok[:, None])
            return out, ok
        scale = k / (k - 1.0) if self.weights == "linear" else 1.0
        return softmax(lm.class_counts(scale * self.weights_), axis=1), lm.votes_per_item() > 0

    def _predict_proba(self, lm: LabelMatrix) -> np.ndarray:
        proba, ok = self._soft(lm)
        proba[~ok] = self.class_prior_
        return proba
