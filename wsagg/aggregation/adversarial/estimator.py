"""The Balsubramani-Freund adversarial log-loss aggregator (An & Dasgupta's multiclass form).

**The game.** ``N`` target items with votes ``h_j(x_i)`` (``-1`` = abstain), ``k`` classes.
A few labeled items give, for every source, a confidence interval on its accuracy (and for
every class, on its frequency). The adversary picks any soft labeling ``z`` (rows on the
simplex) of the target items whose statistics lie in those intervals — the polytope

.. math::

    P = \\{ z : \\mathrm{lo}_f \\le \\textstyle\\sum_i \\sum_l \\phi_f(x_i, l) z_{il}
    \\le \\mathrm{hi}_f \\ \\forall f \\},

e.g. ``phi_j(x, l) = 1[h_j(x) = l]`` (correct votes of source ``j``, bounds ``n_j [b_lo, b_hi]``)
and ``phi_c(x, l) = 1[l = c]`` (class counts, bounds ``N [tau_lo, tau_hi]``). We predict

.. math::

    g^{bf} = \\arg\\min_g \\max_{z \\in P}
        -\\tfrac1N \\textstyle\\sum_i \\sum_l z_{il} \\log g_{il},

and the value of the game ``V`` is the worst-case average log loss that ``g^bf`` guarantees
whenever the true labeling lies in ``P`` (Balsubramani & Freund, COLT 2015 / NIPS 2015 /
NIPS 2016; An & Dasgupta, "Convergence Behavior of an Adversarial Weak Supervision Method",
UAI 2024).

**The solution.** ``g^bf`` is the maximum-entropy labeling in ``P`` and ``V`` its mean
entropy. By Lagrange duality (box constraints <-> weighted L1),

.. math::

    V = \\min_\\theta \\frac1N\\Big[\\sum_i \\log\\sum_l e^{\\theta^\\top\\phi(x_i, l)}
        - \\theta^\\top s + e^\\top|\\theta|\\Big],
    \\qquad g^{bf}_{il} = \\operatorname{softmax}_l\\, \\theta^{*\\top}\\phi(x_i, l),

a multinomial logistic regression in the one-hot votes whose "labels" are replaced by the
box centres ``s`` and whose L1 weights ``e`` are the box half-widths. The prediction is
``softmax(gamma + sum of the weights of the sources that voted for each class)``; abstains
drop out, and items on which every source abstains get ``softmax(gamma)``.
See ``docs/adversarial.md`` for the derivation.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.special import softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions

from wsagg._validation import warn
from wsagg.aggregation.adversarial.constraints import (
    FAMILIES,
    DualProblem,
    SolverResult,
    check_labeled_set,
    family_operator,
    family_trials,
    group_patterns,
    labeled_statistics,
    min_widening_factor,
    wilson_interval,
)
from wsagg.base import BaseAggregator, _is_partitioned
from wsagg.exceptions import UninformativeFitWarning
from wsagg.labels import LabelMatrix, as_label_matrix

__all__ = ["AdversarialLogLoss"]

_SOLVERS = ("scipy", "cvxpy", "torch")
_DEGENERATE_T = 1.0 - 1e-7


@dataclass(frozen=True)
class _Boxes:
    """The constraint intervals of one fit: per-source (family) boxes ``[lo_w, hi_w]`` on the
    rates ``p_w`` (with their trial counts), and class-frequency boxes when ``has_bias``."""

    family: str
    m: int
    k: int
    N: float  # target items
    B_full: sp.csr_matrix  # family operator, (m k k, features)
    scale_w: np.ndarray  # target trials per feature
    active_w: np.ndarray  # features with target and labeled trials
    lo_w: np.ndarray
    hi_w: np.ndarray
    p_w: np.ndarray
    trials_w: np.ndarray
    has_bias: bool
    lo_c: np.ndarray | None
    hi_c: np.ndarray | None
    p_c: np.ndarray | None
    trials_c: np.ndarray | None


def _dual_problem(b: _Boxes, Vu: sp.csr_matrix, counts: np.ndarray, k: int) -> DualProblem:
    """Box centres ``s`` and half-widths ``e`` of the active constraints, scaled to counts."""
    s_parts, e_parts = [], []
    if b.has_bias:
        s_parts.append(b.N * (b.lo_c + b.hi_c) / 2.0)
        e_parts.append(b.N * (b.hi_c - b.lo_c) / 2.0)
    s_parts.append((b.scale_w * (b.lo_w + b.hi_w) / 2.0)[b.active_w])
    e_parts.append((b.scale_w * (b.hi_w - b.lo_w) / 2.0)[b.active_w])
    return DualProblem(
        V=Vu,
        counts=counts,
        B=b.B_full[:, np.flatnonzero(b.active_w)].tocsr(),
        s=np.concatenate(s_parts),
        e=np.concatenate(e_parts),
        k=k,
        has_bias=b.has_bias,
    )


class AdversarialLogLoss(BaseAggregator):
    """Balsubramani-Freund minimax log-loss aggregator with confidence-interval constraints.

    Parameters
    ----------
    n_classes : int, optional
        Number of classes ``k``; inferred from the votes (and ``y``) when ``None``.
    constraints : {"accuracy", "class_accuracy", "confusion"}
        Constraint family (see :mod:`.constraints`): per-source accuracy
        (the paper's), per-source per-class precision ``P(y = l | h_j = l)``, or the full
        ``P(y = c | h_j = l')``.
    class_frequency : bool
        Also constrain the class frequencies (the paper does); gives the class bias
        ``gamma``. Without it ``gamma = 0``.
    confidence : float in [0, 1)
        Level of the two-sided Wilson intervals (paper: 0.95). ``0`` gives equality
        constraints at the labeled estimates (the "oracle" ``g*`` when the labeled items are
        the target items).
    box : {"symmetric", "wilson"}
        ``"symmetric"`` (the authors' code): the box ``[p_hat - eps, p_hat + eps]`` with
        ``eps = max(p_hat - lo, hi - p_hat)``, which contains the Wilson interval;
        ``"wilson"``: the Wilson interval ``[lo, hi]`` itself.
    polytope : {"unlabeled", "all"}
        With ``fit(L, y)``: the adversary labels the items with ``y == -1`` (the paper's
        protocol: labeled points only define the bounds) or all items of ``L``. With
        ``L_labeled`` or user bounds the polytope is over all items of ``L``.
    accuracy_bounds : array-like (m, 2) or (2,), optional
        ``fit(L)`` without labels: per-source accuracy interval ``[lo, hi]`` (probabilities).
        Only with ``constraints="accuracy"``.
    class_freq_bounds : array-like (k, 2) or (2,), optional
        ``fit(L)`` without labels: per-class frequency interval. ``None``: no class
        constraints (``gamma = 0``).
    on_infeasible : {"raise", "widen"}
        What to do when the intervals admit no labeling (the polytope is empty, common with
        few labels): raise a ``ValueError``, or multiply every half-width by
        ``t* (1 + widen_margin)`` where ``t*`` is the least uniform widening factor that
        makes the polytope non-empty (one LP); ``widening_factor_`` records the factor.
    widen_margin : float
        Relative margin added to ``t*`` when widening (keeps the polytope full-dimensional).
    check_feasibility : bool
        Verify that the boxes admit a labeling. With the fast solvers the verification is
        free when the solve succeeds: at a KKT point the max-entropy labeling
        ``z_u = c_u softmax(S_u)`` satisfies ``|A z - s| <= e`` (the optimality condition
        ``|grad f| <= e/N``), a certificate that the polytope is non-empty. Only when the
        solve does not reach an optimal status (an empty polytope makes the dual unbounded
        below; one without interior makes weights diverge) does the feasibility LP run (one
        LP in ``U k`` variables, ``U`` = distinct vote patterns), to raise the clear error or
        widen. ``solver="cvxpy"`` runs the LP first. When off, an empty polytope is still
        caught from the dual (a negative dual objective certifies emptiness) but cannot be
        widened.
    solver : {"scipy", "cvxpy", "torch"}
        ``"scipy"``: L-BFGS-B on the split variable ``theta = theta+ - theta-`` to identify
        the signs of the weights, then an active-set (orthant-wise) Newton method with the
        exact ``d x d`` Hessian (fast, default); ``"cvxpy"``: exponential-cone reference;
        ``"torch"``: the same driver with the pattern pass evaluated by torch on ``device``.
    device : str
        Torch device for ``solver="torch"`` (``"cpu"``, ``"cuda"``).
    cvxpy_solver : str
        cvxpy solver name (default ``"CLARABEL"``).
    tol : float
        Gradient tolerance of the full-accuracy L-BFGS-B fallback; the solve is
        ``"optimal"`` when the KKT violation is at most ``max(1e-7, 100 tol)``.
    max_iter : int
        Iteration cap of L-BFGS-B.
    group_patterns : bool
        Group items with the same vote pattern (exact; cost then depends on the number of
        distinct patterns). ``False`` treats every item separately (for testing).
    tie_break : {"first", "random"}
        Tie policy of :meth:`predict`: ``"first"`` picks the lowest class index among the
        classes within ``1e-12`` of the maximum; ``"random"`` picks uniformly among them,
        seeded by ``random_state``. Items with no vote get ``softmax(gamma)`` and tie
        whenever the fitted class bias does.
    random_state : int, RandomState or None

    Attributes
    ----------
    classes_ : ndarray of shape (k,)
    n_classes_ : int
    n_sources_ : int
    source_names_ : ndarray of shape (m,)
    class_bias_ : ndarray (k,)
        ``gamma``.
    source_weights_ : ndarray
        ``(m,)`` for ``"accuracy"``, ``(m, k)`` for ``"class_accuracy"`` (source, class),
        ``(m, k, k)`` for ``"confusion"`` (source, vote, class).
    weight_tensor_ : ndarray (m, k, k)
        ``W[j, l', l]``: what a vote ``l'`` of source ``j`` adds to the score of class ``l``.
    constraints_ : pandas.DataFrame
        One row per constraint: kind, source, vote, class, estimate, lo, hi (probabilities,
        after any widening), n_labeled (trials), n_target (scale), active, weight.
    accuracy_bounds_ : ndarray (m, 2) or None
        Per-source accuracy box (``constraints="accuracy"``).
    class_freq_bounds_ : ndarray (k, 2) or None
    game_value_ : float
        Worst-case average log loss over the polytope = max mean entropy = dual optimum.
    class_prior_ : ndarray (k,)
        ``softmax(gamma)``, the prediction for items with no vote.
    solver_status_ : str
        ``"optimal"`` or ``"inaccurate"``.
    n_iter_ : int
    kkt_violation_ : float
        Largest violation of the dual optimality conditions at the returned weights.
    widening_factor_ : float
        ``1.0`` unless ``on_infeasible="widen"`` widened the boxes.
    feasibility_factor_ : float or None
        ``t*`` from the feasibility LP (``<= 1``: the boxes admit a labeling); ``None`` when
        the LP did not run.
    feasibility_check_ : {"dual", "lp", "off"}
        How non-emptiness was established: the KKT certificate of the dual solution, the
        LP, or not checked (``check_feasibility=False``).
    dual_problem_ : DualProblem
        The pattern-grouped dual that was solved (without its cached design matrices).
    n_patterns_ : int
        Distinct vote patterns among the target items.
    n_target_items_ : int
        ``N``.
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_classes": [Interval(Integral, 2, None, closed="left"), None],
        "constraints": [StrOptions(set(FAMILIES))],
        "class_frequency": ["boolean"],
        "confidence": [Interval(Real, 0, 1, closed="left")],
        "box": [StrOptions({"symmetric", "wilson"})],
        "polytope": [StrOptions({"unlabeled", "all"})],
        "accuracy_bounds": ["array-like", None],
        "class_freq_bounds": ["array-like", None],
        "on_infeasible": [StrOptions({"raise", "widen"})],
        "widen_margin": [Interval(Real, 0, None, closed="neither")],
        "check_feasibility": ["boolean"],
        "solver": [StrOptions(set(_SOLVERS))],
        "device": [str, object],
        "cvxpy_solver": [str],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "group_patterns": ["boolean"],
        "tie_break": [StrOptions({"first", "random"})],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_classes: int | None = None,
        *,
        constraints: str = "accuracy",
        class_frequency: bool = True,
        confidence: float = 0.95,
        box: str = "symmetric",
        polytope: str = "unlabeled",
        accuracy_bounds: Any = None,
        class_freq_bounds: Any = None,
        on_infeasible: str = "raise",
        widen_margin: float = 0.05,
        check_feasibility: bool = True,
        solver: str = "scipy",
        device: str = "cpu",
        cvxpy_solver: str = "CLARABEL",
        tol: float = 1e-10,
        max_iter: int = 10_000,
        group_patterns: bool = True,
        tie_break: str = "first",
        random_state: Any = None,
    ) -> None:
        self.n_classes = n_classes
        self.constraints = constraints
        self.class_frequency = class_frequency
        self.confidence = confidence
        self.box = box
        self.polytope = polytope
        self.accuracy_bounds = accuracy_bounds
        self.class_freq_bounds = class_freq_bounds
        self.on_infeasible = on_infeasible
        self.widen_margin = widen_margin
        self.check_feasibility = check_feasibility
        self.solver = solver
        self.device = device
        self.cvxpy_solver = cvxpy_solver
        self.tol = tol
        self.max_iter = max_iter
        self.group_patterns = group_patterns
        self.tie_break = tie_break
        self.random_state = random_state

    # ------------------------------------------------------------------------------------
    def fit(
        self, L: Any, y: Any = None, *, L_labeled: Any = None, y_labeled: Any = None
    ) -> AdversarialLogLoss:
        """Fit on label matrix ``L``.

        Three ways to give the constraint information:

        * ``fit(L, y)``: ``y`` holds class ids of the labeled items and ``-1`` elsewhere;
          the labeled items define the intervals, the polytope is over ``polytope`` items;
        * ``fit(L, L_labeled=..., y_labeled=...)``: a separate labeled set (same sources)
          defines the intervals; the polytope is over all items of ``L`` (the paper's
          protocol: labeled points from the validation split, predictions on train);
        * ``fit(L)`` with ``accuracy_bounds`` (and optionally ``class_freq_bounds``).

        ``L`` may also be partitioned votes (a Dask array / DataFrame, partition files or a
        :class:`wsagg.distributed.VotePartitions`; ``y`` then aligned with them, or a small
        in-memory ``L_labeled``/``y_labeled``): each partition reduces its items to a table
        of distinct vote patterns and the driver solves the same dual, so the result equals
        the in-memory fit (see :mod:`.partitioned`).
        """
        self._reset_fitted()
        if _is_partitioned(L):
            self._fit_partitioned(L, y, L_labeled=L_labeled, y_labeled=y_labeled)
            return self
        self._check_params()
        if L_labeled is not None or y_labeled is not None:
            if L_labeled is None or y_labeled is None:
                raise ValueError("Pass both L_labeled and y_labeled (or neither).")
            if y is not None:
                raise ValueError(
                    "Give the labels either as y (aligned with L) or as L_labeled/y_labeled, "
                    "not both."
                )
            k_hint = self.n_classes
            if k_hint is None:
                lm_a = as_label_matrix(L)
                lm_b = as_label_matrix(L_labeled, y=np.asarray(y_labeled))
                k_hint = max(lm_a.n_classes, lm_b.n_classes)
            lm = as_label_matrix(L, n_classes=k_hint)
            lm_lab, y_lab = check_labeled_set(L_labeled, y_labeled, k_hint, lm.n_sources)
            self.classes_ = lm.classes
            self.n_classes_ = lm.n_classes
            self.n_sources_ = lm.n_sources
            self.source_names_ = lm.source_names
            self._fit_sets(target=lm, labeled=lm_lab, y_lab=y_lab)
            return self
        lm, y_idx = self._validate_fit(L, y)
        self._fit(lm, y_idx)
        return self

    def _fit_partitioned(
        self, L: Any, y: Any = None, *, L_labeled: Any = None, y_labeled: Any = None
    ) -> None:
        from wsagg.aggregation.adversarial.partitioned import fit_partitioned

        fit_partitioned(self, L, y, L_labeled=L_labeled, y_labeled=y_labeled)

    def _predict_partitioned(self, L: Any) -> Any:
        from wsagg.distributed import predict_proba

        return predict_proba(self, L)

    def fit_predict_proba(self, L: Any, y: Any = None, **kwargs: Any) -> np.ndarray:
        """``fit(L, y, ...)`` then ``predict_proba(L)``."""
        self.fit(L, y, **kwargs)
        return self.predict_proba(L)

    def fit_predict(self, L: Any, y: Any = None, **kwargs: Any) -> np.ndarray:
        """``fit(L, y, ...)`` then ``predict(L)``."""
        proba = self.fit_predict_proba(L, y, **kwargs)
        return self.classes_[self._argmax(proba)]

    # ------------------------------------------------------------------------------------
    def _check_params(self) -> None:
        """scikit-learn's parameter validation (``_parameter_constraints``), for the fit
        paths that do not go through :meth:`BaseAggregator._validate_fit`."""
        self._validate_params()

    def _fit(self, lm: LabelMatrix, y: np.ndarray | None) -> None:
        self._check_params()
        if y is None or not (y >= 0).any():
            if self.accuracy_bounds is None:
                raise ValueError(
                    "AdversarialLogLoss needs constraint information: pass y with the classes "
                    "of some labeled items (-1 elsewhere), a labeled set via "
                    "fit(L, L_labeled=..., y_labeled=...), or accuracy_bounds=[lo, hi] "
                    "(and optionally class_freq_bounds) for fit(L)."
                )
            self._fit_sets(target=lm, labeled=None, y_lab=None)
            return
        if self.accuracy_bounds is not None or self.class_freq_bounds is not None:
            raise ValueError(
                "Give either labels y (bounds from Wilson intervals) or accuracy_bounds / "
                "class_freq_bounds, not both."
            )
        known = y >= 0
        labeled = lm.take_items(np.flatnonzero(known))
        if self.polytope == "unlabeled":
            if known.all():
                raise ValueError(
                    "Every item is labeled, so polytope='unlabeled' leaves no item for the "
                    "adversary; use polytope='all' (e.g. for the g* oracle with confidence=0)."
                )
            target = lm.take_items(np.flatnonzero(~known))
        else:
            target = lm
        self._fit_sets(target=target, labeled=labeled, y_lab=y[known])

    # ------------------------------------------------------------------------------------
    def _fit_sets(
        self, target: LabelMatrix, labeled: LabelMatrix | None, y_lab: np.ndarray | None
    ) -> None:
        V = target.one_hot()
        if self.group_patterns:
            Vu, counts, _ = group_patterns(V)
        else:
            Vu, counts = V, np.ones(target.n_items)
        self._fit_patterns(
            Vu,
            counts,
            np.asarray(V.sum(axis=0)).ravel(),
            None if labeled is None else labeled_statistics(labeled, y_lab),
            target.n_sources,
            target.n_classes,
        )

    def _fit_patterns(
        self,
        Vu: sp.csr_matrix,
        counts: np.ndarray,
        target_votes: np.ndarray,
        lab: dict | None,
        m: int,
        k: int,
    ) -> None:
        """Fit from the sufficient statistics of the data (shared by the in-memory and the
        partitioned fit, :mod:`wsagg.aggregation.adversarial.partitioned`).

        ``Vu`` (``U x m k``) and ``counts`` (``U``): the distinct one-hot vote patterns of
        the target items and their multiplicities, as :func:`group_patterns` returns them;
        ``target_votes`` (``m k``): the target items' vote counts per (source, class);
        ``lab``: :func:`labeled_statistics` of the labeled items, or ``None`` (user bounds).
        Four steps: the boxes, the dual problem, the (feasibility-checked) solve, the
        fitted attributes.
        """
        boxes = self._boxes(lab, target_votes, float(counts.sum()), m, k)
        problem = _dual_problem(boxes, Vu, counts, k)
        result, widening, t_star, check = self._solve_checked(problem, user_bounds=lab is None)
        self._set_fitted(boxes, problem, result, widening, t_star, check)
        if np.all(np.abs(self._W_flat) < 1e-9) and np.all(np.abs(self.class_bias_) < 1e-9):
            why = (
                f"the accuracy intervals from {int(lab['n_items'])} labeled item(s) are so "
                "wide that they contain chance level"
                if lab is not None else "the accuracy_bounds given contain chance level"
            )
            warn(
                f"AdversarialLogLoss learned nothing: {why}, so every source gets weight 0 "
                "and every prediction is the uniform distribution. Label more items (tens "
                "per source), lower confidence, or pass tighter accuracy_bounds.",
                UninformativeFitWarning,
            )

    def _boxes(
        self, lab: dict | None, target_votes: np.ndarray, N: float, m: int, k: int
    ) -> _Boxes:
        """The intervals: Wilson/symmetric boxes from the labeled statistics, or the user's
        ``accuracy_bounds`` / ``class_freq_bounds``."""
        family = self.constraints
        B_full = family_operator(family, m, k)
        scale_w = family_trials(family, target_votes, m, k)
        lo_c = hi_c = p_c = trials_c = None
        if lab is not None:
            hits_w = B_full.T @ lab["vote_class"].ravel()
            trials_w = family_trials(family, lab["votes"], m, k)
            p_w = hits_w / np.where(trials_w > 0, trials_w, 1.0)
            lo_w, hi_w = self._interval(hits_w, trials_w, p_w)
            if self.class_frequency:
                hits_c = lab["classes"]
                trials_c = np.full(k, float(lab["n_items"]))
                p_c = hits_c / trials_c
                lo_c, hi_c = self._interval(hits_c, trials_c, p_c)
        else:
            if family != "accuracy":
                raise ValueError(
                    "User-given bounds (accuracy_bounds) are only supported with "
                    "constraints='accuracy'; for finer families pass labeled items."
                )
            lo_w, hi_w = _parse_bounds(self.accuracy_bounds, m, "accuracy_bounds")
            trials_w = np.full(m, np.nan)
            p_w = (lo_w + hi_w) / 2.0
            if self.class_frequency and self.class_freq_bounds is not None:
                lo_c, hi_c = _parse_bounds(self.class_freq_bounds, k, "class_freq_bounds")
                trials_c = np.full(k, np.nan)
                p_c = (lo_c + hi_c) / 2.0
        has_bias = bool(
            self.class_frequency and (lab is not None or self.class_freq_bounds is not None)
        )
        return _Boxes(
            family=family, m=m, k=k, N=N, B_full=B_full, scale_w=scale_w,
            active_w=(scale_w > 0) & ~(trials_w == 0), lo_w=lo_w, hi_w=hi_w, p_w=p_w,
            trials_w=trials_w, has_bias=has_bias, lo_c=lo_c, hi_c=hi_c, p_c=p_c,
            trials_c=trials_c,
        )

    def _solve_checked(
        self, problem: DualProblem, user_bounds: bool = False
    ) -> tuple[SolverResult, float, Any, str]:
        """Solve the dual, with the feasibility check (dual certificate or LP) and the
        widening it may call for; returns ``(result, widening, t_star, check)``.
        ``user_bounds``: the intervals are the user's ``accuracy_bounds`` (the messages
        then blame those, not the labeled items)."""
        widening, t_star, check = 1.0, None, "off"
        if self.check_feasibility and self.solver == "cvxpy":
            # the reference solver cannot tell an empty polytope from a numerical failure
            widening, t_star = self._feasibility_lp(problem, user_bounds)
            check = "lp"
        result = self._solve(problem)
        if self.check_feasibility and self.solver != "cvxpy":
            if result.status == "optimal" and result.objective >= -1e-9:
                # KKT certificate: the max-entropy labeling z_u = c_u softmax(S_u) satisfies
                # |A z - s| <= e up to the KKT tolerance, so the polytope is non-empty
                check = "dual"
            else:
                widening, t_star = self._feasibility_lp(problem, user_bounds)
                check = "lp"
                if widening != 1.0:
                    result = self._solve(problem)
        if result.objective < -1e-9:
            raise ValueError(
                "The adversarial dual is unbounded below (objective "
                f"{result.objective:.3g} < 0 certifies that the constraint polytope is "
                "empty). Use check_feasibility=True with on_infeasible='widen', or "
                + ("wider accuracy_bounds." if user_bounds else "more labeled items.")
            )
        if not np.all(np.isfinite(result.theta)):
            raise RuntimeError(f"Solver {self.solver!r} returned non-finite weights.")
        if result.status != "optimal" and self.solver != "cvxpy":
            warn(
                f"Solver {self.solver!r} stopped before full accuracy (KKT violation "
                f"{result.kkt:.2g}; {result.message}). Increase "
                "max_iter or try solver='cvxpy'.",
                ConvergenceWarning,
            )
        return result, widening, t_star, check

    def _set_fitted(
        self, b: _Boxes, problem: DualProblem, result: SolverResult, widening: float,
        t_star: Any, check: str,
    ) -> None:
        """The fitted attributes from the solved dual."""
        m, k, theta = b.m, b.k, result.theta
        gamma = theta[:k] if b.has_bias else np.zeros(k)
        tw = np.zeros(b.B_full.shape[1])
        tw[b.active_w] = theta[k:] if b.has_bias else theta
        W = (b.B_full @ tw).reshape(m, k, k)
        self.class_bias_ = gamma
        self.weight_tensor_ = W
        self._W_flat = W.reshape(m * k, k)
        if b.family == "accuracy":
            self.source_weights_ = tw.copy()
        elif b.family == "class_accuracy":
            self.source_weights_ = tw.reshape(m, k)
        else:
            self.source_weights_ = tw.reshape(m, k, k)
        self.class_prior_ = softmax(gamma)
        self.game_value_ = float(result.objective)
        self.solver_status_ = result.status
        self.n_iter_ = int(result.n_iter)
        self.kkt_violation_ = float(result.kkt)
        self.widening_factor_ = widening
        self.feasibility_factor_ = t_star
        self.feasibility_check_ = check
        self.n_patterns_ = problem.n_patterns
        self.n_target_items_ = int(b.N)
        self.dual_problem_ = problem.without_cache()  # the caches are O(nnz) arrays

        # bounds as probabilities after widening
        table = self._constraint_rows(b.family, m, k)
        rows_w, bounds_w = _widened_rows(table["weights"], b.lo_w, b.hi_w, widening, b.p_w,
                                         b.trials_w, b.scale_w, b.active_w, tw)
        frames = []
        if b.has_bias:
            rows_c, self.class_freq_bounds_ = _widened_rows(
                table["classes"], b.lo_c, b.hi_c, widening, b.p_c, b.trials_c, b.N, True, gamma)
            frames.append(rows_c)
        else:
            self.class_freq_bounds_ = None
        frames.append(rows_w)
        self.constraints_ = pd.concat(frames, ignore_index=True)
        self.accuracy_bounds_ = bounds_w if b.family == "accuracy" else None

    def _feasibility_lp(
        self, problem: DualProblem, user_bounds: bool = False
    ) -> tuple[float, float]:
        """Run the feasibility LP; raise on an empty polytope or widen ``problem.e`` in place.

        Returns ``(widening_factor, t_star)``.
        """
        t_star, _ = min_widening_factor(problem)
        if t_star <= _DEGENERATE_T:
            return 1.0, t_star
        if self.on_infeasible == "raise" or not np.isfinite(t_star):
            how = (
                "no widening of the intervals helps (an equality constraint cannot be met)"
                if not np.isfinite(t_star)
                else f"the half-widths would need widening by a factor {t_star:.4g}"
            )
            if user_bounds:
                raise ValueError(
                    "The accuracy_bounds / class_freq_bounds given admit no labeling of the "
                    f"votes: {how}. Bounds that pin accuracies (e.g. [1, 1]) cannot hold for "
                    "sources that disagree with each other; widen them (lo < hi) or pass "
                    "on_infeasible='widen'."
                )
            raise ValueError(
                "The constraint polytope is empty (or has no interior): no labeling of the "
                "target items satisfies all the accuracy/class-frequency intervals; "
                f"{how}. This happens with few labeled items. Pass on_infeasible='widen', "
                "raise the confidence level, or use more labeled items."
            )
        widening = float(max(t_star, 1.0) * (1.0 + self.widen_margin))
        problem.e = problem.e * widening
        return widening, t_star

    def _interval(
        self, hits: np.ndarray, trials: np.ndarray, p_hat: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = wilson_interval(hits, trials, float(self.confidence))
        if self.box == "symmetric":
            eps = np.maximum(p_hat - lo, hi - p_hat)
            return p_hat - eps, p_hat + eps
        return lo, hi

    @staticmethod
    def _constraint_rows(family: str, m: int, k: int) -> dict[str, pd.DataFrame]:
        if family == "accuracy":
            w = pd.DataFrame({"source": np.arange(m), "vote": -1, "class": -1})
        elif family == "class_accuracy":
            j, l = np.meshgrid(np.arange(m), np.arange(k), indexing="ij")
            w = pd.DataFrame({"source": j.ravel(), "vote": l.ravel(), "class": l.ravel()})
        else:
            j, lp, l = np.meshgrid(np.arange(m), np.arange(k), np.arange(k), indexing="ij")
            w = pd.DataFrame({"source": j.ravel(), "vote": lp.ravel(), "class": l.ravel()})
        w.insert(0, "kind", family)
        c = pd.DataFrame({"kind": "class_frequency", "source": -1, "vote": -1,
                          "class": np.arange(k)})
        return {"weights": w, "classes": c}

    def _solve(self, problem: DualProblem) -> SolverResult:
        if problem.dim == 0:
            return SolverResult(np.zeros(0), problem.objective(np.zeros(0)), "optimal", 0,
                                "no constraints", 0.0)
        if self.solver == "cvxpy":
            from wsagg.aggregation.adversarial.solvers.cvxpy import solve_cvxpy

            return solve_cvxpy(problem, solver=self.cvxpy_solver)
        if self.solver == "torch":
            from wsagg.aggregation.adversarial.solvers.torch import solve_torch

            return solve_torch(problem, device=self.device, tol=self.tol, max_iter=self.max_iter)
        from wsagg.aggregation.adversarial.solvers.scipy import solve_lbfgsb

        return solve_lbfgsb(problem, tol=self.tol, max_iter=self.max_iter)

    # ------------------------------------------------------------------------------------
    def decision_function(self, L: Any) -> np.ndarray:
        """Scores ``gamma_l + sum_j W[j, h_j(x), l]`` (the softmax logits), shape ``(n, k)``."""
        lm = self._validate_predict(L)
        return self._scores(lm)

    def _scores(self, lm: LabelMatrix) -> np.ndarray:
        return np.asarray(lm.one_hot() @ self._W_flat) + self.class_bias_

    def _predict_proba(self, lm: LabelMatrix) -> np.ndarray:
        return softmax(self._scores(lm), axis=1)


def _parse_bounds(bounds: Any, size: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(bounds, dtype=np.float64)
    if arr.shape == (2,):
        arr = np.broadcast_to(arr, (size, 2))
    if arr.shape != (size, 2):
        raise ValueError(
            f"{name} must have shape ({size}, 2) or (2,) as [lo, hi]; got {arr.shape}."
        )
    if not np.all(np.isfinite(arr)) or (arr[:, 0] > arr[:, 1]).any():
        raise ValueError(f"{name} must be finite with lo <= hi in every row.")
    if (arr < 0).any() or (arr > 1).any():
        raise ValueError(f"{name} are probabilities and must lie in [0, 1].")
    return arr[:, 0].copy(), arr[:, 1].copy()


def _widened_rows(
    rows: pd.DataFrame, lo: Any, hi: Any, widening: float, estimate: Any, n_labeled: Any,
    n_target: Any, active: Any, weight: Any,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Fill a block of the ``constraints_`` table with its intervals widened by ``widening``
    around their midpoints; return it and the ``(lo, hi)`` bounds as a ``(p, 2)`` array."""
    half = (hi - lo) / 2.0 * widening
    mid = (lo + hi) / 2.0
    rows["estimate"] = estimate
    rows["lo"] = mid - half
    rows["hi"] = mid + half
    rows["n_labeled"] = n_labeled
    rows["n_target"] = n_target
    rows["active"] = active
    rows["weight"] = weight
    return rows, np.column_stack([mid - half, mid + half])
