"""Constraint families, Wilson intervals and the pattern-grouped dual problem of the
Balsubramani-Freund adversarial log-loss aggregator (see :mod:`wsagg.adversarial`).

Every constraint is a box on a *linear statistic* of the adversary's soft labeling
``z`` (``(N, k)``, rows on the simplex) over the ``N`` target items:

.. math::

    \\mathrm{lo}_f \\le \\sum_i \\sum_l \\phi_f(x_i, l)\\, z_{il} \\le \\mathrm{hi}_f,
    \\qquad s_f = (\\mathrm{lo}_f + \\mathrm{hi}_f)/2,
    \\quad e_f = (\\mathrm{hi}_f - \\mathrm{lo}_f)/2,

with features ``phi`` built from the one-hot votes ``V[i, (j, l')]`` (source ``j`` voted
``l'``). The score of class ``l`` on an item is ``gamma_l + sum_{j,l'} V[i,(j,l')] W[j,l',l]``
where the weight tensor ``W`` is a linear function ``W = B theta_w`` of the free weights:

* ``"accuracy"``: ``W[j,l',l] = sigma_j 1[l' = l]`` (feature: source ``j``'s correct votes);
* ``"class_accuracy"``: ``W[j,l',l] = sigma_{j l} 1[l' = l]`` (feature: votes of ``j`` for
  class ``l`` that are correct, i.e. per-class precision ``P(y = l | h_j = l)``);
* ``"confusion"``: ``W[j,l',l] = sigma_{j l' l}`` (feature: ``1[h_j = l'] 1[y = l]``, i.e.
  ``P(y = l | h_j = l')``), the full Dawid-Skene parameterisation;

plus, optionally, the class frequencies ``sum_i z_il`` with bias weights ``gamma``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.special import ndtri, softmax

__all__ = [
    "FAMILIES",
    "DualProblem",
    "family_operator",
    "family_trials",
    "group_patterns",
    "min_widening_factor",
    "wilson_interval",
]

FAMILIES = ("accuracy", "class_accuracy", "confusion")


def wilson_interval(
    hits: np.ndarray, trials: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided Wilson score interval ``(lo, hi)`` for binomial proportions ``hits/trials``.

    ``z = Phi^{-1}(1/2 + confidence/2)``; ``confidence = 0`` gives ``z = 0`` and the
    degenerate interval ``[p_hat, p_hat]`` (equality constraints). Entries with
    ``trials = 0`` get ``(0, 1)``. Same formula as ``statsmodels.proportion_confint(...,
    method="wilson")`` and ``scipy.stats.binomtest(...).proportion_ci(method="wilson")``.
    """
    hits = np.asarray(hits, dtype=np.float64)
    trials = np.asarray(trials, dtype=np.float64)
    z = float(ndtri(0.5 + 0.5 * confidence)) if confidence > 0 else 0.0
    safe = np.where(trials > 0, trials, 1.0)
    p = hits / safe
    z2n = z * z / safe
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * np.sqrt(p * (1.0 - p) / safe + z2n / (4.0 * safe))
    lo = np.where(trials > 0, np.clip(centre - half, 0.0, 1.0), 0.0)
    hi = np.where(trials > 0, np.clip(centre + half, 0.0, 1.0), 1.0)
    if z == 0.0:  # exact equality, free of rounding in the centre formula
        lo = np.where(trials > 0, p, 0.0)
        hi = np.where(trials > 0, p, 1.0)
    return lo, hi


def family_operator(family: str, m: int, k: int) -> sp.csr_matrix:
    """Sparse 0/1 matrix ``B`` of shape ``(m*k*k, d_w)`` with ``W.ravel() = B @ theta_w``,
    ``W`` indexed ``[(j*k + l')*k + l]`` (source, vote, scored class)."""
    j, lp, l = np.meshgrid(np.arange(m), np.arange(k), np.arange(k), indexing="ij")
    row = ((j * k + lp) * k + l).ravel()
    if family == "accuracy":
        keep = (lp == l).ravel()
        col, d = j.ravel()[keep], m
    elif family == "class_accuracy":
        keep = (lp == l).ravel()
        col, d = (j * k + l).ravel()[keep], m * k
    elif family == "confusion":
        keep = np.ones(row.shape[0], dtype=bool)
        col, d = row, m * k * k
    else:
        raise ValueError(f"constraints must be one of {FAMILIES}; got {family!r}.")
    row = row[keep]
    return sp.csr_matrix(
        (np.ones(row.shape[0]), (row, col)), shape=(m * k * k, d), dtype=np.float64
    )


def family_trials(family: str, vote_counts: np.ndarray, m: int, k: int) -> np.ndarray:
    """Denominator of each weight feature's proportion, from per-(source, vote) counts
    ``vote_counts`` (shape ``(m*k,)``): votes of ``j`` (accuracy), votes of ``j`` for ``l``
    (class accuracy), votes of ``j`` for ``l'`` repeated over the classes (confusion)."""
    if family == "accuracy":
        return vote_counts.reshape(m, k).sum(axis=1)
    if family == "class_accuracy":
        return vote_counts.copy()
    return np.repeat(vote_counts, k)


def group_patterns(
    V: sp.csr_matrix, dense_rows: np.ndarray | None = None
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Distinct rows of the one-hot vote matrix ``V``: ``(V_unique, counts, inverse)``.

    ``dense_rows`` (the ``(n, m)`` label matrix with ``-1`` = abstain, when no source votes
    twice on an item) is the cheaper key; otherwise the rows of ``V`` itself are the key.
    The dual depends on an item only through its row of ``V``, so grouping is exact.
    """
    if dense_rows is not None:
        key = dense_rows
    else:
        key = V.toarray()
    small = np.int8 if key.size == 0 or (key.min() >= -128 and key.max() < 127) else np.int64
    key = np.ascontiguousarray(key.astype(small, copy=False))
    # one opaque bytes value per row: a 1-D sort instead of np.unique(axis=0)'s lexsort
    rows = key.view(np.dtype((np.void, key.dtype.itemsize * key.shape[1]))).ravel()
    _, first, inverse, counts = np.unique(
        rows, return_index=True, return_inverse=True, return_counts=True
    )
    return V[first].tocsr(), counts.astype(np.float64), inverse.ravel()


@dataclass
class DualProblem:
    """The dual of the max-entropy problem over a grouped constraint polytope.

    Minimise, in per-item units (divide counts by ``N``),

    .. math::

        F(\\theta) = \\frac{1}{N}\\Big[\\sum_u c_u \\operatorname{logsumexp}_l S_{ul}(\\theta)
        - \\theta^\\top s + e^\\top |\\theta|\\Big], \\qquad
        S(\\theta) = \\mathbf{1}\\gamma^\\top + V\\,\\mathrm{reshape}(B\\theta_w),

    with ``theta = (gamma, theta_w)`` when class-frequency constraints are present, else
    ``theta = theta_w`` and ``gamma = 0``.
    """

    V: sp.csr_matrix  # (U, m*k) one-hot votes of the distinct patterns
    counts: np.ndarray  # (U,) multiplicities
    B: sp.csr_matrix  # (m*k*k, d_w) active weight features
    s: np.ndarray  # (d,) box centres, count units
    e: np.ndarray  # (d,) box half-widths, count units
    k: int
    has_bias: bool
    _VT: sp.csr_matrix | None = field(default=None, repr=False)

    @property
    def n_items(self) -> float:
        return float(self.counts.sum())

    @property
    def n_patterns(self) -> int:
        return int(self.V.shape[0])

    @property
    def dim(self) -> int:
        return int(self.s.shape[0])

    @property
    def VT(self) -> sp.csr_matrix:
        if self._VT is None:
            self._VT = self.V.T.tocsr()
        return self._VT

    def split(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(gamma, W)`` with ``W`` of shape ``(m*k, k)``."""
        k = self.k
        if self.has_bias:
            gamma, tw = theta[:k], theta[k:]
        else:
            gamma, tw = np.zeros(k), theta
        W = (self.B @ tw).reshape(-1, k)
        return gamma, W

    def scores(self, theta: np.ndarray) -> np.ndarray:
        gamma, W = self.split(theta)
        return np.asarray(self.V @ W) + gamma

    def smooth(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Smooth part ``(1/N)[sum_u c_u lse(S_u) - theta.s]`` and its gradient (numpy)."""
        N = self.n_items
        S = self.scores(theta)
        mx = S.max(axis=1)
        P = np.exp(S - mx[:, None])
        tot = P.sum(axis=1)
        lse = mx + np.log(tot)
        CP = P * ((self.counts / N) / tot)[:, None]
        G = np.asarray(self.VT @ CP).ravel()
        grad_w = self.B.T @ G
        grad = np.concatenate([CP.sum(axis=0), grad_w]) if self.has_bias else grad_w
        f = float(self.counts @ lse) / N - float(theta @ self.s) / N
        return f, grad - self.s / N

    def objective(self, theta: np.ndarray) -> float:
        """Full dual objective ``F(theta)`` in per-item units."""
        f, _ = self.smooth(theta)
        return f + float(self.e @ np.abs(theta)) / self.n_items

    def proba(self, theta: np.ndarray) -> np.ndarray:
        return softmax(self.scores(theta), axis=1)

    def constraint_matrix(self) -> sp.csr_matrix:
        """``A`` of shape ``(d, U*k)``: feature sums ``A @ Z.ravel()`` for pattern-level
        class masses ``Z`` (``(U, k)``, rows summing to the multiplicities)."""
        U, k = self.n_patterns, self.k
        blocks = []
        if self.has_bias:
            blocks.append(sp.kron(np.ones((1, U)), sp.identity(k), format="csr"))
        blocks.append((self.B.T @ sp.kron(self.VT, sp.identity(k), format="csr")).tocsr())
        return sp.vstack(blocks).tocsr()


def min_widening_factor(problem: DualProblem) -> tuple[float, np.ndarray | None]:
    """Smallest ``t >= 0`` such that the boxes ``[s - t e, s + t e]`` admit a labeling.

    One linear program (HiGHS) over the pattern-level class masses ``Z >= 0`` with
    ``Z 1 = c``: ``min t`` s.t. ``|A Z - s| <= t e``. ``t* <= 1`` means the polytope is
    non-empty; ``t* > 1`` means it is empty and widening every half-width by ``t*`` is the
    least uniform widening that makes it non-empty. Returns ``(inf, None)`` when no ``t``
    works (an equality constraint, ``e_f = 0``, cannot be met). Also returns the
    pattern-level masses ``Z`` of the LP solution.
    """
    from scipy.optimize import linprog

    U, k, d = problem.n_patterns, problem.k, problem.dim
    A = problem.constraint_matrix()
    n_z = U * k
    # variables: [Z (U*k), t]
    e_col = sp.csr_matrix(problem.e.reshape(-1, 1))
    A_ub = sp.vstack([sp.hstack([A, -e_col]), sp.hstack([-A, -e_col])]).tocsr()
    b_ub = np.concatenate([problem.s, -problem.s])
    A_eq = sp.hstack(
        [sp.kron(sp.identity(U), np.ones((1, k)), format="csr"), sp.csr_matrix((U, 1))]
    ).tocsr()
    cost = np.zeros(n_z + 1)
    cost[-1] = 1.0
    # scale rows by 1/N so that the LP is in per-item units
    N = problem.n_items
    res = linprog(
        cost,
        A_ub=A_ub / N,
        b_ub=b_ub / N,
        A_eq=A_eq / N,
        b_eq=problem.counts / N,
        bounds=[(0, None)] * (n_z + 1),
        method="highs",
    )
    if res.status == 2:  # infeasible even for unbounded t
        return float("inf"), None
    if res.status != 0:
        raise RuntimeError(
            f"The feasibility LP of the constraint polytope failed (HiGHS: {res.message}). "
            "Pass check_feasibility=False to skip it."
        )
    _ = d
    return float(res.x[-1]), res.x[:-1].reshape(U, k)
