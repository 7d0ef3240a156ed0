"""Constraint families, Wilson intervals and the pattern-grouped dual problem of the
Balsubramani-Freund adversarial log-loss aggregator (see :mod:`wsagg.aggregation.adversarial`).

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

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import ndtri, softmax

from wsagg.labels import LabelMatrix, as_label_matrix, check_known_labels

__all__ = [
    "FAMILIES",
    "DualProblem",
    "SolverResult",
    "check_labeled_set",
    "family_operator",
    "family_trials",
    "group_patterns",
    "labeled_statistics",
    "min_widening_factor",
    "wilson_interval",
]

FAMILIES = ("accuracy", "class_accuracy", "confusion")


@dataclass(frozen=True)
class SolverResult:
    """What every solver of the dual returns.

    ``status``: ``"optimal"``, ``"inaccurate"`` (stopped before the KKT tolerance) or
    ``"infeasible"`` (a negative dual objective certifies an empty polytope);
    ``objective``: the dual objective (the game value when optimal); ``kkt``: the KKT
    violation of ``theta`` (``nan`` where the solver does not compute it)."""

    theta: np.ndarray
    objective: float
    status: str
    n_iter: int
    message: str
    kkt: float = float("nan")
# largest U * d for which the Hessian's M (U x d) is formed densely (128 MiB)
_DENSE_GRAM_MAX = 2**24


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


def group_patterns(V: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Distinct rows of the one-hot vote matrix ``V``: ``(V_unique, counts, inverse)``.

    The dual depends on an item only through its row of ``V``, so grouping is exact. Each
    row is encoded exactly as a few integers — its entries (vote counts, ``0/1`` unless a
    source votes twice) are the digits, in base ``1 + max count``, of one integer per block
    of columns small enough that the code stays below ``2^52`` (exact in the float64 sums
    of ``np.bincount``) — and the codes are sorted (``argsort`` for one word, ``lexsort``
    for several): ``O(nnz + n log n)``, no Python loop over items, and no ``np.unique``
    (whose hash-based path is slow on large arrays in numpy 2.x).
    """
    V = sp.csr_matrix(V)
    V.sum_duplicates()
    n, n_cols = V.shape
    if n == 0:
        return V, np.zeros(0), np.zeros(0, dtype=np.int64)
    row = np.repeat(np.arange(n), np.diff(V.indptr))
    counts_v = np.rint(V.data).astype(np.int64)
    base = int(counts_v.max()) + 1 if counts_v.size else 2
    per = max(1, int(52 // np.log2(base)))
    words = []
    for start in range(0, max(n_cols, 1), per):
        sel = (V.indices >= start) & (V.indices < start + per)
        weights = counts_v[sel] * np.power(float(base), V.indices[sel] - start)
        words.append(np.bincount(row[sel], weights=weights, minlength=n).astype(np.int64))
    order = np.argsort(words[0]) if len(words) == 1 else np.lexsort(words)
    new_group = np.zeros(n, dtype=bool)
    new_group[0] = True
    for w in words:
        ws = w[order]
        new_group[1:] |= ws[1:] != ws[:-1]
    starts = np.flatnonzero(new_group)
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.cumsum(new_group) - 1
    counts = np.diff(np.append(starts, n)).astype(np.float64)
    return V[order[starts]].tocsr(), counts, inverse


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
    _X: sp.csr_matrix | None = field(default=None, repr=False)
    _XT: sp.csr_matrix | None = field(default=None, repr=False)
    _nnz_row: tuple | None = field(default=None, repr=False)
    _memo: tuple | None = field(default=None, repr=False)

    def without_cache(self) -> DualProblem:
        """A copy sharing the data but none of the cached design matrices / evaluations."""
        return replace(self, _VT=None, _X=None, _XT=None, _nnz_row=None, _memo=None)

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

    @property
    def X(self) -> sp.csr_matrix:
        """Design matrix of shape ``(k U, d)``, class-major: row ``l U + u`` is the feature
        vector ``phi(x_u, l)``, so that ``(X @ theta).reshape(k, U)`` are the scores ``S^T``.

        Class-major rows make every per-pattern reduction over the ``k`` classes an
        element-wise operation on ``k`` contiguous length-``U`` vectors (a reduction over a
        short inner axis is many times slower in numpy).
        """
        if self._X is None:
            U, k = self.n_patterns, self.k
            blocks = []
            for cls in range(k):
                # B's rows (j, l', l) for scored class l = cls: W[:, cls] = B_cls @ theta_w
                Xl = (self.V @ self.B[cls::k]).tocsr()
                if self.has_bias:
                    e_l = sp.csr_matrix(
                        (np.ones(U), (np.arange(U), np.full(U, cls))), shape=(U, k)
                    )
                    Xl = sp.hstack([e_l, Xl], format="csr")
                blocks.append(Xl)
            X = sp.vstack(blocks, format="csr")
            X.sum_duplicates()
            self._X = X
        return self._X

    @property
    def XT(self) -> sp.csr_matrix:
        """``X.T`` in CSR (gradient ``X^T r`` is then one row-wise sparse pass)."""
        if self._XT is None:
            self._XT = self.X.T.tocsr()
        return self._XT

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
        """Scores ``S`` of shape ``(U, k)``."""
        return self._scores_t(theta).T

    def _scores_t(self, theta: np.ndarray) -> np.ndarray:
        return (self.X @ np.asarray(theta, dtype=np.float64)).reshape(self.k, self.n_patterns)

    def _evaluate(self, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """``(f, grad f, CP)`` at ``theta`` with ``CP[l, u] = (c_u / N) p_ul``; memoised for
        the last point (the solvers ask for value, gradient and Hessian at the same point)."""
        theta = np.asarray(theta, dtype=np.float64)
        key = theta.tobytes()
        if self._memo is not None and self._memo[0] == key:
            return self._memo[1], self._memo[2].copy(), self._memo[3]
        N = self.n_items
        w = self.counts / N
        P = self._scores_t(theta)  # (k, U) scores, then probabilities in place
        mx = P.max(axis=0)
        P -= mx
        np.exp(P, out=P)
        tot = P.sum(axis=0)
        lse = mx + np.log(tot)
        P *= w / tot  # CP
        grad = self.XT @ P.ravel() - self.s / N
        f = float(w @ lse) - float(theta @ self.s) / N
        self._memo = (key, f, grad, P)
        return f, grad.copy(), P

    def smooth(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Smooth part ``(1/N)[sum_u c_u lse(S_u) - theta.s]`` and its gradient (numpy)."""
        f, g, _ = self._evaluate(theta)
        return f, g

    def hessian(self, theta: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        """Dense Hessian of the smooth part, restricted to the coordinates ``idx``.

        ``H = sum_u (c_u/N) Cov_{p_u}[phi(x_u, .)] = X^T diag(cp) X - M^T diag(N/c) M`` where
        ``cp_{lu} = (c_u/N) p_ul`` and ``M = sum_l diag(cp_l) X_l`` (``X_l`` the rows of class
        ``l``, so row ``u`` of ``M`` is ``(c_u/N) E_{p_u}[phi(x_u, .)]``). Cost: one sparse
        product ``O(sum_r nnz(X_r)^2)`` and, for ``M``, a scatter-add plus a dense ``U x d``
        Gram product (a sparse one when ``U d`` is large); ``d`` is small.
        """
        _, _, CP = self._evaluate(theta)
        U, d = self.n_patterns, self.dim
        X = self.X
        if self._nnz_row is None:
            itype = np.int32 if X.shape[0] < 2**31 else np.int64
            row = np.repeat(np.arange(X.shape[0], dtype=itype), np.diff(X.indptr))
            self._nnz_row = (row, row % itype(U))
        row, u = self._nnz_row
        DX = sp.csr_matrix((X.data * CP.ravel()[row], X.indices, X.indptr), shape=X.shape)
        H = (self.XT @ DX).toarray()
        scale = 1.0 / np.sqrt(self.counts / self.n_items)
        if U * d <= _DENSE_GRAM_MAX:
            flat = u.astype(np.int64) * d + X.indices
            M = np.bincount(flat, weights=DX.data, minlength=U * d).reshape(U, d)
            M *= scale[:, None]
            H -= M.T @ M
        else:
            Ms = sp.csr_matrix((DX.data * scale[u], (u, X.indices)), shape=(U, d))
            H -= (Ms.T @ Ms).toarray()
        if idx is not None:
            H = H[np.ix_(idx, idx)]
        return H

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


def labeled_statistics(labeled: LabelMatrix, y_lab: np.ndarray) -> dict:
    """What the intervals need from labeled items (all sums over items, so partitions add):
    ``vote_class`` (``m k x k``, votes of (source, class) on items of each true class),
    ``votes`` (``m k``), ``classes`` (``k``, true-class counts) and ``n_items``."""
    k = labeled.n_classes
    Vl = labeled.one_hot()
    Y = np.zeros((labeled.n_items, k))
    Y[np.arange(labeled.n_items), y_lab] = 1.0
    return {
        "vote_class": np.asarray(Vl.T @ Y),
        "votes": np.asarray(Vl.sum(axis=0)).ravel(),
        "classes": Y.sum(axis=0),
        "n_items": int(labeled.n_items),
    }


def check_labeled_set(
    L_labeled: Any, y_labeled: Any, n_classes: int | None, n_sources: int, classes: Any = None
) -> tuple[LabelMatrix, np.ndarray]:
    """A separate labeled set (``fit(L, L_labeled=..., y_labeled=...)``) as a label matrix
    and class indices, checked against the target votes: same sources, same classes (when
    ``classes`` is given), a class for every labeled item."""
    lm_lab = as_label_matrix(L_labeled, n_classes=n_classes)
    if lm_lab.n_sources != n_sources:
        raise ValueError(
            f"L_labeled has {lm_lab.n_sources} sources but L has {n_sources}; the "
            "labeled set must be voted on by the same sources, in the same order."
        )
    if classes is not None and not np.array_equal(np.asarray(lm_lab.classes), np.asarray(classes)):
        raise ValueError(
            f"L_labeled has classes {list(lm_lab.classes)} but the votes have {list(classes)}."
        )
    y_lab = check_known_labels(y_labeled, lm_lab)
    if (y_lab < 0).any():
        raise ValueError("y_labeled must hold a class for every labeled item (no -1).")
    return lm_lab, y_lab
