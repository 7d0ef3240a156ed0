r"""Zero-Based Skill (ZBS): skills learned by small steps towards agreement with the vote.

The rule (crowd-kit's ``ZeroBasedSkill``). Every source starts with the same skill
:math:`s^{(0)}_j = 1/K + 10^{-5}` (``K`` = the number of distinct classes among the votes,
as crowd-kit); each iteration ``t = 1, 2, ...`` takes the skill-weighted vote and moves the
skills a step towards each source's agreement with it:

.. math::

    h^{(t)}_i = \operatorname{hard}\Big(\sum_{v \in i} s^{(t-1)}_{j(v)} [\lambda_v = c]\Big)_c,
    \qquad
    a^{(t)}_j = \frac{1}{|V_j|} \sum_{v \in V_j} h^{(t)}_{i(v)}(\lambda_v),

.. math::

    s^{(t)}_j = s^{(t-1)}_j + \eta_t \big(a^{(t)}_j - s^{(t-1)}_j\big), \qquad
    \eta_t = \eta_0 \, \rho^{\lfloor t / T \rfloor},

a gradient step on :math:`\tfrac12 \sum_j (a_j - s_j)^2` with learning rate :math:`\eta_0`
(``lr``), multiplied by :math:`\rho` (``lr_reduce_factor``) at every ``T``-th iteration
(``lr_steps_to_reduce``; crowd-kit multiplies when ``t % T == 0``, before the step). Here
:math:`\lambda_v` is the class of vote ``v`` of source :math:`j(v)` on item :math:`i(v)`,
:math:`V_j` the votes of ``j``, and :math:`\operatorname{hard}` the winning class as a
distribution: one-hot, or uniform over tied classes under ``ties="split"`` (symmetric in the
classes; ``"first"`` gives a tie to the lowest class index, as crowd-kit). With
:math:`\eta_t = 1` the step sets the skills to the agreements: the first iteration is
:class:`~wsagg.aggregation.wawa.Wawa`.

Stopping. crowd-kit always runs ``n_iter`` iterations; here the loop also stops when no
skill moves by more than ``tol`` (``converged_``). Once the labels are stable a step with
:math:`\eta = 1` moves nothing, so the result is the same; with :math:`\eta < 1` the skills
approach their limit geometrically and stopping early changes them by about ``tol``.
``tol=0`` runs exactly crowd-kit's iterations.

Output. The skill-weighted vote shares with the final skills,
:math:`q_i(c) = \sum_{v \in i} s_{j(v)} [\lambda_v = c] / \sum_{v \in i} s_{j(v)}`. Known labels
``y`` replace :math:`h_i` on their items, so the skills are measured against the truth where
it is known. Items without votes, or whose voters all have skill 0, get ``class_prior_``
(the mean of :math:`q_i` over the other training items). A source that never votes keeps its
initial skill. Every vote counts, repeated ones included (crowd-kit's agreement counts a
repeated identical vote once). An iteration is two passes over the votes: O(votes x k).

References
----------
.. [1] D. Ustalov, N. Pavlichenko and B. Tseitlin (2024). Learning from crowds with
   Crowd-Kit. Journal of Open Source Software 9(96), 6227. https://doi.org/10.21105/joss.06227
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions

from wsagg._validation import user_stacklevel
from wsagg._voting import hard_labels
from wsagg.base import BaseAggregator
from wsagg.labels import LabelMatrix

__all__ = ["ZeroBasedSkill"]

_INIT_EPS = 1e-5  # crowd-kit's eps: the initial skill is 1/K + eps


def _weighted_shares(lm: LabelMatrix, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted vote shares (rows of zero total weight left 0) and the mask of rows with
    positive total weight."""
    counts = lm.class_counts(weights)
    total = counts.sum(axis=1)
    ok = total > 0
    proba = np.zeros_like(counts)
    proba[ok] = counts[ok] / total[ok, None]
    return proba, ok


class ZeroBasedSkill(BaseAggregator):
    r"""Zero-Based Skill: skill-weighted vote, skills moved towards agreement by gradient
    steps with a decaying learning rate (crowd-kit's ``ZeroBasedSkill``).

    See the module docstring of :mod:`wsagg.aggregation.zero_based_skill` for the updates.

    Parameters
    ----------
    n_classes : int, optional
        Number of classes ``k``; inferred from the votes (and ``y``) when ``None``.
    lr : float in (0, 1], default=1.0
        Initial learning rate :math:`\eta_0` (crowd-kit's ``lr_init``). At most 1, so that
        the skills stay in ``[0, 1]``.
    lr_steps_to_reduce : int >= 1, default=20
        The learning rate is multiplied by ``lr_reduce_factor`` at every iteration ``t``
        with ``t % lr_steps_to_reduce == 0``.
    lr_reduce_factor : float in (0, 1], default=0.5
        Factor of the learning-rate decay.
    ties : {"split", "first"}, default="split"
        How a tie in the weighted vote counts when the agreements are measured: shared
        equally among the tied classes (symmetric in the classes) or given to the lowest
        class index (crowd-kit).
    max_iter : int >= 1, default=100
        Maximum number of iterations (crowd-kit's ``n_iter``).
    tol : float >= 0, default=1e-5
        Stop when no skill changes by more than ``tol`` in an iteration; ``0`` runs all
        ``max_iter`` iterations unless the skills stop moving exactly.
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
        Final skills (vote weights), in ``[0, 1]``; a source that never votes keeps the
        initial ``1/K + 1e-5``. crowd-kit's ``skills_``.
    class_prior_ : ndarray of shape (k,)
        Mean soft label over the training items with positive total weight; given to items
        without votes (or whose voters all have skill 0).
    n_iter_ : int
        Iterations run.
    converged_ : bool
        Whether the largest skill change fell to ``tol`` or below within ``max_iter``.
    skill_change_history_ : ndarray of shape (n_iter_,)
        Largest absolute skill change of each iteration: the progress trace (ZBS optimises
        no likelihood).

    Notes
    -----
    A smoothed, damped version of iterating Wawa: with ``lr=1`` and no decay it is
    :class:`~wsagg.aggregation.iwmv.IWMV` with ``weights="accuracy"``. It suits crowd data
    where each source votes on many items; the decaying step stops label oscillations that
    a plain iteration can fall into. Weights are linear in the agreement, so a source at
    chance still counts; for likelihood-based weights use IWMV with ``weights="log-odds"``
    or Dawid-Skene.

    Examples
    --------
    >>> import numpy as np
    >>> from wsagg.aggregation.zero_based_skill import ZeroBasedSkill
    >>> L = np.array([[0, 0, 1], [1, 1, 1], [0, -1, 0], [1, 1, -1], [0, 0, 0]])
    >>> zbs = ZeroBasedSkill().fit(L)
    >>> zbs.skills_
    array([1.  , 1.  , 0.75])
    >>> zbs.predict(L)
    array([0, 1, 0, 1, 0])
    """

    _parameter_constraints: dict = {  # noqa: RUF012 (scikit-learn's convention)
        "n_classes": [Interval(Integral, 2, None, closed="left"), None],
        "lr": [Interval(Real, 0, 1, closed="right")],
        "lr_steps_to_reduce": [Interval(Integral, 1, None, closed="left")],
        "lr_reduce_factor": [Interval(Real, 0, 1, closed="right")],
        "ties": [StrOptions({"split", "first"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "tie_break": [StrOptions({"first", "random"})],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_classes: int | None = None,
        *,
        lr: float = 1.0,
        lr_steps_to_reduce: int = 20,
        lr_reduce_factor: float = 0.5,
        ties: str = "split",
        max_iter: int = 100,
        tol: float = 1e-5,
        tie_break: str = "first",
        random_state: Any = None,
    ) -> None:
        self.n_classes = n_classes
        self.lr = lr
        self.lr_steps_to_reduce = lr_steps_to_reduce
        self.lr_reduce_factor = lr_reduce_factor
        self.ties = ties
        self.max_iter = max_iter
        self.tol = tol
        self.tie_break = tie_break
        self.random_state = random_state

    def _fit(self, lm: LabelMatrix, y: np.ndarray | None) -> None:
        m, k = lm.n_sources, lm.n_classes
        known = None if y is None or not (y >= 0).any() else y
        n_seen = max(int(np.count_nonzero(np.bincount(lm.label, minlength=k))), 1)
        skills = np.full(m, 1.0 / n_seen + _INIT_EPS)
        n_votes = np.bincount(lm.source, minlength=m)
        voted = n_votes > 0
        lr = float(self.lr)
        history: list[float] = []
        converged = False
        n_iter = 0
        while n_iter < self.max_iter:
            n_iter += 1
            if n_iter % self.lr_steps_to_reduce == 0:
                lr *= float(self.lr_reduce_factor)
            h = hard_labels(lm, skills, self.ties, known)
            agree = np.bincount(lm.source, weights=h[lm.item, lm.label], minlength=m)
            acc = skills.copy()  # a source without votes does not move
            acc[voted] = agree[voted] / n_votes[voted]
            new = skills + lr * (acc - skills)
            change = float(np.max(np.abs(new - skills))) if m else 0.0
            history.append(change)
            skills = new
            if change <= self.tol:
                converged = True
                break
        self.skills_ = skills
        self.n_iter_ = n_iter
        self.converged_ = converged
        self.skill_change_history_ = np.asarray(history)
        proba, ok = _weighted_shares(lm, skills)
        prior = proba[ok].mean(axis=0) if ok.any() else np.full(k, 1.0 / k)
        self.class_prior_ = prior / prior.sum()
        if not converged:
            warnings.warn(
                f"ZeroBasedSkill did not converge in max_iter={self.max_iter} iterations "
                f"(last skill change {history[-1]:.3g} > tol={self.tol}). Increase max_iter, "
                "lower lr_reduce_factor or loosen tol; the last skills are kept.",
                ConvergenceWarning,
                stacklevel=user_stacklevel(),
            )

    def _predict_proba(self, lm: LabelMatrix) -> np.ndarray:
        proba, ok = _weighted_shares(lm, self.skills_)
        proba[~ok] = self.class_prior_
        return proba
