r"""Wawa: worker agreement with aggregate, then a vote weighted by that agreement.

The rule (crowd-kit's ``Wawa``; "worker agreement with aggregate" is a quality metric of
the CrowdFlower / Appen platform). With :math:`\lambda_v` the class of vote ``v``, cast by
source :math:`j(v)` on item :math:`i(v)`, and :math:`V_j` the votes of source ``j``:

1. the hard majority vote :math:`\hat h_i = \arg\max_c \sum_{v \in i} [\lambda_v = c]`,
   as a distribution :math:`h_i` over the classes (see *ties* below);
2. each source's *skill*, its agreement with that aggregate,

   .. math::

       s_j = \frac{1}{|V_j|} \sum_{v \in V_j} h_{i(v)}(\lambda_v) ;

3. the skill-weighted vote, whose shares are the soft output,

   .. math::

       q_i(c) = \frac{\sum_{v \in i} s_{j(v)} [\lambda_v = c]}{\sum_{v \in i} s_{j(v)}} .

Ties in step 1 (``ties``): ``"split"`` (default) makes :math:`h_i` uniform over the tied
classes, so a source's agreement on a tied item is ``1/t``; the rule is then symmetric in
the classes (relabelling them relabels the output). ``"first"`` gives the whole agreement to
the lowest class index, as crowd-kit's ``MajorityVote`` does (its labels are the
``idxmax`` of the sorted label columns); use it to reproduce crowd-kit.

Known labels ``y`` replace the majority vote on their items in step 1 (:math:`h_i` is
one-hot at the known class), so the skills are measured against the truth where it is
known. Items with no vote, or whose voters all have skill 0, get ``class_prior_``: the mean
of :math:`q_i` over the other training items. Every vote counts, repeated ones included
(crowd-kit's skill counts a repeated identical vote once). One pass over the votes per
step: O(votes x k) time, no loop over items or sources.

References
----------
.. [1] D. Ustalov, N. Pavlichenko and B. Tseitlin (2024). Learning from crowds with
   Crowd-Kit. Journal of Open Source Software 9(96), 6227. https://doi.org/10.21105/joss.06227
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from wsagg._voting import hard_labels
from wsagg.base import BaseAggregator
from wsagg.labels import LabelMatrix

__all__ = ["Wawa"]



def _agreement(lm: LabelMatrix, h: np.ndarray, default: float) -> np.ndarray:
    """Each source's mean agreement :math:`h_{i(v)}(\\lambda_v)` over its votes (``default``
    for a source without votes)."""
    m = lm.n_sources
    n_votes = np.bincount(lm.source, minlength=m)
    agree = np.bincount(lm.source, weights=h[lm.item, lm.label], minlength=m)
    out = np.full(m, float(default))
    np.divide(agree, n_votes, out=out, where=n_votes > 0)
    return out


def _weighted_shares(lm: LabelMatrix, weights: np.ndarray, prior: np.ndarray | None):
    """Weighted vote shares; rows of zero total weight get ``prior`` (``None``: left 0).
    Also returns the mask of rows with positive total weight."""
    counts = lm.class_counts(weights)
    total = counts.sum(axis=1)
    ok = total > 0
    proba = np.zeros_like(counts)
    proba[ok] = counts[ok] / total[ok, None]
    if prior is not None:
        proba[~ok] = prior
    return proba, ok


def _mean_prior(proba: np.ndarray, ok: np.ndarray, k: int) -> np.ndarray:
    """Mean soft label over the rows in ``ok`` (uniform when there is none)."""
    if not ok.any():
        return np.full(k, 1.0 / k)
    prior = proba[ok].mean(axis=0)
    return prior / prior.sum()


class Wawa(BaseAggregator):
    r"""Worker agreement with aggregate: a vote weighted by agreement with majority vote.

    Each source's skill is the fraction of its votes that agree with the (hard) majority
    vote; the soft output is the skill-weighted share of the votes. See the module
    docstring of :mod:`wsagg.aggregation.wawa` for the formulas.

    Parameters
    ----------
    n_classes : int, optional
        Number of classes ``k``; inferred from the votes (and ``y``) when ``None``.
    ties : {"split", "first"}, default="split"
        How a tie in the majority vote counts when the skills are measured: ``"split"``
        shares the agreement equally among the tied classes (symmetric in the classes);
        ``"first"`` gives it to the lowest class index (crowd-kit).
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
    skills_ : ndarray of shape (m,)
        Agreement of each source with the majority vote (with the known labels where
        given), in ``[0, 1]``; ``0`` for a source that never votes (its votes are then
        ignored by :meth:`predict_proba`). crowd-kit's ``skills_``.
    class_prior_ : ndarray of shape (k,)
        Mean soft label over the training items with positive total weight; given to items
        without votes (or whose voters all have skill 0).

    Notes
    -----
    Wawa is one step of an iterative weighted vote; :class:`~wsagg.aggregation.iwmv.IWMV`
    with ``weights="accuracy", max_iter=1`` gives the same labels (its soft output differs).
    It needs no model and no tuning, suits crowd data where most sources vote on many items,
    and is only as good as the majority vote it is measured against. With ``ties="first"``
    and no repeated votes it reproduces crowd-kit's ``Wawa`` (skills and probabilities) to
    rounding error.

    Examples
    --------
    >>> import numpy as np
    >>> from wsagg.aggregation.wawa import Wawa
    >>> L = np.array([[0, 0, 1], [1, 1, 1], [0, -1, 0], [1, 1, -1], [0, 0, 0]])
    >>> w = Wawa().fit(L)
    >>> w.skills_
    array([1.  , 1.  , 0.75])
    >>> w.predict(L)
    array([0, 1, 0, 1, 0])
    """

    _parameter_constraints: dict = {  # noqa: RUF012 (scikit-learn's convention)
        "n_classes": [Interval(Integral, 2, None, closed="left"), None],
        "ties": [StrOptions({"split", "first"})],
        "tie_break": [StrOptions({"first", "random"})],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_classes: int | None = None,
        *,
        ties: str = "split",
        tie_break: str = "first",
        random_state: Any = None,
    ) -> None:
        self.n_classes = n_classes
        self.ties = ties
        self.tie_break = tie_break
        self.random_state = random_state

    def _fit(self, lm: LabelMatrix, y: np.ndarray | None) -> None:
        known = None if y is None or not (y >= 0).any() else y
        h = hard_labels(lm, np.ones(lm.n_sources), self.ties, known)
        self.skills_ = _agreement(lm, h, default=0.0)
        proba, ok = _weighted_shares(lm, self.skills_, None)
        self.class_prior_ = _mean_prior(proba, ok, lm.n_classes)

    def _predict_proba(self, lm: LabelMatrix) -> np.ndarray:
        return _weighted_shares(lm, self.skills_, self.class_prior_)[0]
