r"""KOS: iterative message passing for binary crowd labels (Karger, Oh & Shah, 2011).

The model. Items have a hidden class in :math:`\{+1, -1\}` (here class index 0 is
:math:`+1`, index 1 is :math:`-1`; the result does not depend on this choice); source ``j``
is right with probability :math:`p_j` (the spammer-hammer / one-coin model). The votes form a
bipartite graph between items and sources: each vote ``v`` is an edge :math:`(i, j)` carrying
:math:`A_v = \pm 1`. Repeated votes are parallel edges, each counted.

The algorithm. Real messages flow along the edges: an item message :math:`x_{i \to j}`
(how likely ``i`` is :math:`+1`, leaving out ``j``'s own vote) and a source message
:math:`y_{j \to i}` (how reliable ``j`` is, leaving out item ``i``). From
:math:`y^{(0)}_{j \to i} \sim \mathcal N(1, 1)` (``init="gaussian"``, the paper) or
:math:`y^{(0)} = 1` (``init="ones"``, the default: deterministic, so that the first item
messages are leave-one-out majority votes), iterate

.. math::

    x^{(t)}_{i \to j} = \sum_{j' \in \partial i \setminus j} A_{ij'} \, y^{(t-1)}_{j' \to i},
    \qquad
    y^{(t)}_{j \to i} = \sum_{i' \in \partial j \setminus i} A_{i'j} \, x^{(t)}_{i' \to j}.

Vectorised over the edges: with the per-vote products :math:`m_v = A_v y_v`, the item sums
:math:`S_i = \sum_{v \in i} m_v` are one ``bincount`` and the leave-one-out message of edge
``v`` is :math:`S_{i(v)} - m_v` (the "exclude own edge" correction); the same over sources.
One iteration is O(votes). The messages grow geometrically; each half-step is divided by its
largest magnitude, which changes no sign (the recursion is linear), while its log-scale is
tracked: the loop stops, as crowd-kit's does, where the unnormalised messages would pass
:math:`10^{300}`, after ``max_iter`` iterations, or when the normalised source messages change
by at most ``tol`` (``converged_``).

Decision and soft output. The paper's estimate is :math:`\hat y_i = \operatorname{sign}
\sum_{j \in \partial i} A_{ij} y_{j \to i}`. To predict inductively (any label matrix with
the same sources) each source keeps one message, the full sum
:math:`y_j = \sum_{i \in \partial j} A_{ij} x_{i \to j}` of the last item messages; on the
training items :math:`\sum_j A_{ij} y_j = \sum_j A_{ij} y_{j \to i} + (d_i - 1) x^{\text{prev}}_i`,
which has the paper's sign once the messages have converged (borderline items of an
unconverged run can differ). The soft output is a logistic of the item message in log-odds
units:

.. math::

    w_j = \ell \, \frac{y_j}{\bar y}, \qquad
    P(y_i = +1) = \sigma\Big(\sum_{v \in i} w_{j(v)} A_v\Big), \qquad
    \ell = \operatorname{logit} \bar a,

with :math:`\bar y` the mean of :math:`|y_{j(v)}|` over the votes and :math:`\bar a` the
(Laplace-smoothed) fraction of training votes that agree with the KOS labels: a vote of a
source of average message weighs the log-odds of the average vote accuracy. This is the
one-coin posterior with weights proportional to the KOS source messages; its sign is the KOS
decision (ties give 1/2). Items without votes get ``class_prior_``, the mean output over the
covered training items. Known labels ``y`` only set the classes (KOS has no use for them).

References
----------
.. [1] D. R. Karger, S. Oh and D. Shah (2011). Iterative learning for reliable crowdsourcing
   systems. Advances in Neural Information Processing Systems 24 (NIPS 2011), 1953-1961.
.. [2] D. R. Karger, S. Oh and D. Shah (2014). Budget-optimal task allocation for reliable
   crowdsourcing systems. Operations Research 62(1):1-24.
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
from scipy.special import logit, softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from wsagg._validation import user_stacklevel
from wsagg.base import BaseAggregator
from wsagg.labels import LabelMatrix

__all__ = ["KOS"]

_LOG_MAX = math.log(1e300)  # crowd-kit stops before a message passes 1e300
_MIN_LOGODDS = 1e-2  # floor of the per-vote log-odds scale (keeps the KOS decision's sign)


def _leave_one_out(group: np.ndarray, prod: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """Per edge: the sum of ``prod`` over the edge's group minus its own term, and the
    largest group sum in magnitude (crowd-kit's overflow test)."""
    sums = np.bincount(group, weights=prod, minlength=size)
    top = float(np.max(np.abs(sums))) if sums.size else 0.0
    return sums[group] - prod, top


def _normalise(v: np.ndarray) -> tuple[np.ndarray, float]:
    """``v`` over its largest magnitude, and the log of that factor (0 for a zero vector)."""
    top = float(np.max(np.abs(v))) if v.size else 0.0
    if top == 0.0 or not math.isfinite(top):
        return v, 0.0
    return v / top, math.log(top)


class KOS(BaseAggregator):
    r"""KOS message passing (Karger, Oh & Shah, 2011) for binary labels.

    Item and source messages are passed along the votes, each leaving out its own edge;
    the sign of an item's message is its label. See the module docstring of
    :mod:`wsagg.aggregation.kos` for the updates and for how the soft output is made.

    Parameters
    ----------
    n_classes : int, optional
        Number of classes; must be 2 (inferred from the votes when ``None``).
    init : {"ones", "gaussian"}, default="ones"
        Initial source messages: all 1 (deterministic), or drawn per vote from
        :math:`\mathcal N(1, 1)` with ``random_state``, in vote order (the paper; with
        ``random_state=0``, ``tol=0`` and the votes in the same order this is crowd-kit's
        ``KOS()`` draw).
    max_iter : int >= 1, default=100
        Maximum number of iterations (crowd-kit's ``n_iter``).
    tol : float >= 0, default=1e-6
        Stop when the source messages, each divided by the largest, change by at most
        ``tol``. ``0``: run to ``max_iter`` (or to crowd-kit's overflow stop).
    tie_break : {"first", "random"}, default="first"
        Tie policy of :meth:`predict` (see :mod:`wsagg.base`).
    random_state : int, RandomState or None
        Seeds ``init="gaussian"`` and ``tie_break="random"``.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
    n_classes_ : int
    n_sources_ : int
    source_names_ : ndarray of shape (m,)
    reliability_ : ndarray of shape (m,)
        Final source messages :math:`y_j` divided by their vote-weighted mean magnitude
        (1 for a source of average message; negative for a source that votes against the
        consensus; 0 for a source that never votes).
    weights_ : ndarray of shape (m,)
        Log-odds weight of each source's vote, ``vote_log_odds_ * reliability_``.
    vote_log_odds_ : float
        :math:`\ell`, the log-odds of the smoothed fraction of votes that agree with the
        KOS labels (at least 0.01).
    class_prior_ : ndarray of shape (2,)
        Mean soft label over the covered training items; given to items without votes.
    n_iter_ : int
        Iterations run (completed item and source half-steps).
    converged_ : bool
        Whether the normalised source messages settled to ``tol``.
    message_change_history_ : ndarray of shape (n_iter_,)
        Largest change of the normalised source messages per iteration (the progress trace;
        KOS optimises no likelihood).

    Notes
    -----
    KOS is designed for crowdsourcing with a random (ideally regular) assignment of many
    items to many workers, each worker labelling several items, and binary questions; it
    then matches the oracle error rate with the fewest votes. Its messages are sums, so a
    prolific source weighs more. On labeling-function data (few dense sources, abstains that
    depend on the class) or with ``k > 2`` classes use Dawid-Skene, GLAD or majority vote.

    Examples
    --------
    >>> from wsagg.aggregation.kos import KOS
    >>> from wsagg.datasets import make_dawid_skene
    >>> d = make_dawid_skene(500, 20, 2, coverage=0.3, random_state=0)
    >>> kos = KOS().fit(d.L)
    >>> kos.converged_, float((kos.predict(d.L) == d.y).mean())
    (True, 0.938)

    On a tiny graph the messages can alternate in sign from one iteration to the next (the
    largest eigenvalue of the message recursion is then negative) and never settle; KOS
    needs many votes per source.
    """

    _parameter_constraints: dict = {  # noqa: RUF012 (scikit-learn's convention)
        "n_classes": [Interval(Integral, 2, None, closed="left"), None],
        "init": [StrOptions({"ones", "gaussian"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "tie_break": [StrOptions({"first", "random"})],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_classes: int | None = None,
        *,
        init: str = "ones",
        max_iter: int = 100,
        tol: float = 1e-6,
        tie_break: str = "first",
        random_state: Any = None,
    ) -> None:
        self.n_classes = n_classes
        self.init = init
        self.max_iter = max_iter
        self.tol = tol
        self.tie_break = tie_break
        self.random_state = random_state

    def _fit(self, lm: LabelMatrix, y: np.ndarray | None) -> None:
        n, m, k = lm.n_items, lm.n_sources, lm.n_classes
        if k != 2:
            raise ValueError(
                f"KOS is binary (k=2) but the votes have k={k} classes; use wsagg.GLAD, "
                "wsagg.DawidSkene or wsagg.MajorityVote."
            )
        if lm.n_votes == 0:
            raise ValueError("The label matrix has no votes; KOS has nothing to pass.")
        item, src = lm.item, lm.source
        sign = np.where(lm.label == 0, 1.0, -1.0)
        if self.init == "gaussian":
            msg_y = check_random_state(self.random_state).normal(1.0, 1.0, size=lm.n_votes)
        else:
            msg_y = np.ones(lm.n_votes)
        msg_y, log_y = _normalise(msg_y)
        msg_x_used = None  # item messages that produced msg_y
        history: list[float] = []
        converged = False
        n_iter = 0
        while n_iter < self.max_iter:
            prod = sign * msg_y
            msg_x, top = _leave_one_out(item, prod, n)
            if top > 0 and math.log(top) + log_y > _LOG_MAX:
                break
            msg_x, log_step = _normalise(msg_x)
            log_x = log_y + log_step
            prod = sign * msg_x
            new_y, top = _leave_one_out(src, prod, m)
            if top > 0 and math.log(top) + log_x > _LOG_MAX:
                break
            new_y, log_step = _normalise(new_y)
            n_iter += 1
            change = float(np.max(np.abs(new_y - msg_y)))
            history.append(change)
            msg_y, log_y, msg_x_used = new_y, log_x + log_step, msg_x
            if change <= self.tol:
                converged = True
                break

        if msg_x_used is None:  # stopped before one source update: mean initial message
            cnt = np.bincount(src, minlength=m)
            full = np.bincount(src, weights=msg_y, minlength=m) / np.maximum(cnt, 1)
        else:
            full = np.bincount(src, weights=sign * msg_x_used, minlength=m)
        mean_abs = float(np.mean(np.abs(full[src])))
        self.reliability_ = full / mean_abs if mean_abs > 0 else np.zeros(m)
        score = np.bincount(item, weights=sign * self.reliability_[src], minlength=n)
        label = np.where(score[item] > 0, 0, np.where(score[item] < 0, 1, -1))
        agree = np.count_nonzero(label == lm.label) + 0.5 * np.count_nonzero(label < 0)
        self.vote_log_odds_ = max(
            float(logit((agree + 1.0) / (lm.n_votes + 2.0))), _MIN_LOGODDS
        )
        self.weights_ = self.vote_log_odds_ * self.reliability_
        self.n_iter_ = n_iter
        self.converged_ = converged
        self.message_change_history_ = np.asarray(history)
        covered = lm.votes_per_item() > 0
        prior = softmax(lm.class_counts(self.weights_)[covered], axis=1).mean(axis=0)
        self.class_prior_ = prior / prior.sum()
        if not converged:
            why = (
                f"max_iter={self.max_iter} iterations"
                if n_iter >= self.max_iter
                else f"{n_iter} iterations, where the unnormalised messages pass 1e300 "
                "(crowd-kit's stop)"
            )
            last = f"{history[-1]:.3g}" if history else "n/a"
            warnings.warn(
                f"KOS did not converge in {why}: the normalised source messages still "
                f"changed by {last} > tol={self.tol}. Increase max_iter or loosen tol.",
                ConvergenceWarning,
                stacklevel=user_stacklevel(),
            )

    def _predict_proba(self, lm: LabelMatrix) -> np.ndarray:
        proba = softmax(lm.class_counts(self.weights_), axis=1)
        proba[lm.votes_per_item() == 0] = self.class_prior_
        return proba
