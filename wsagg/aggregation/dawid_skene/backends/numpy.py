"""Heavy kernels of Dawid-Skene EM: the two sparse products and the row-wise logsumexp.

A backend owns the design matrix ``X`` (items x outcome-columns, sparse, on its device) and
the clamped (known) items. Each EM iteration calls :meth:`e_step` once:

* ``S = X @ table + offset`` — the log joint ``log pi_c + log P(votes_i | y_i = c)`` of every
  item and class (``table`` is the log-parameter table, ``offset`` a ``(k,)`` row);
* ``q = softmax(S)`` per row, with known items clamped to their one-hot label;
* the sufficient statistics ``X.T @ q`` and ``q.sum(0)`` for the M-step.

Only these O(votes x k) and O(n x k) operations live here; the parameter updates work on
tables of size O(m k^2) and are shared by every backend (``..em``), which is
what makes the numpy and torch paths agree to rounding error.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["NumpyBackend", "col_sum", "row_reduce"]


def _clamp_arrays(known: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    if known is None:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    idx = np.flatnonzero(known >= 0)
    return idx, known[idx].astype(np.int64)


class NumpyBackend:
    """scipy.sparse CSR kernels (single thread, float64)."""

    def __init__(self, X: sp.csr_matrix, known: np.ndarray | None = None) -> None:
        self.X = X
        self.n = X.shape[0]
        self.known_idx, self.known_y = _clamp_arrays(known, self.n)
        self.q: np.ndarray | None = None

    def _log_joint(self, table: np.ndarray, offset: np.ndarray) -> np.ndarray:
        S = self.X @ table  # (n, k): the E-step sparse product
        S += offset
        return S

    def e_step(self, table: np.ndarray, offset: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Posterior and log-likelihood at the given parameters, plus the M-step statistics.

        Returns ``(loglik, X.T @ q, q.sum(0))``; the posterior is kept in ``self.q``.
        """
        S = self._log_joint(table, offset)
        if self.known_idx.size:  # the unclamped posterior of the known items, for posterior()
            self._known_free = S[self.known_idx]
        q, loglik = _softmax_rows(S, self.known_idx, self.known_y)
        self.q = q
        return loglik, self.stats(q), col_sum(q)

    def last_posterior(self) -> np.ndarray:
        """Unclamped posterior at the parameters of the last :meth:`e_step` (what
        :meth:`posterior` would return for them), without recomputing the products."""
        assert self.q is not None
        q = self.q
        if self.known_idx.size:
            free, _ = _softmax_rows(self._known_free, np.zeros(0, np.int64), np.zeros(0, np.int64))
            q[self.known_idx] = free
        return q

    def stats(self, q: np.ndarray) -> np.ndarray:
        """``X.T @ q``: the M-step sparse product (CSC view of X, no copy)."""
        return np.asarray(self.X.T @ q)

    def sum_rows(self, q: np.ndarray) -> np.ndarray:
        return col_sum(q)

    def posterior(self, table: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """Posterior without clamping (inductive prediction)."""
        S = self._log_joint(table, offset)
        q, _ = _softmax_rows(S, np.zeros(0, np.int64), np.zeros(0, np.int64))
        return q


def _softmax_rows(
    S: np.ndarray, known_idx: np.ndarray, known_y: np.ndarray
) -> tuple[np.ndarray, float]:
    """Row softmax of the log joint ``S`` in place, and the observed-data log-likelihood.

    Rows are shifted by their maximum before ``exp`` so that the largest term is ``exp(0)``:
    no overflow, and underflow only of terms ``e^-745`` below the largest, which are 0 in
    float64 anyway. Known items contribute ``S[i, y_i]`` (complete-data term) and get a
    one-hot posterior.
    """
    ll_known = float(S[known_idx, known_y].sum()) if known_idx.size else 0.0
    if S.shape[1] == 2:
        return _softmax_two(S, known_idx, known_y, ll_known)
    mx = row_reduce(S, np.maximum)
    S -= mx[:, None]
    np.exp(S, out=S)
    tot = row_reduce(S, np.add)
    S /= tot[:, None]
    row_ll = mx + np.log(tot)
    if known_idx.size:
        row_ll[known_idx] = 0.0
        S[known_idx] = 0.0
        S[known_idx, known_y] = 1.0
    return S, float(row_ll.sum()) + ll_known


def _softmax_two(
    S: np.ndarray, known_idx: np.ndarray, known_y: np.ndarray, ll_known: float
) -> tuple[np.ndarray, float]:
    """:func:`_softmax_rows` for two classes, on length-``n`` arrays: with ``g = -|S_0 -
    S_1| <= 0`` the larger class gets ``1 / (1 + e^g)``, the other ``e^g / (1 + e^g)``, and
    the row log-likelihood is ``max + log1p(e^g)`` (no overflow, no cancellation)."""
    s0, s1 = S[:, 0], S[:, 1]
    mx = np.maximum(s0, s1)
    first = s0 >= s1
    g = np.subtract(s1, s0)
    np.negative(np.abs(g, out=g), out=g)
    e = np.exp(g, out=g)
    row_ll = np.log1p(e)
    row_ll += mx
    big = np.divide(1.0, 1.0 + e)
    small = np.multiply(e, big, out=e)
    S[:, 0] = np.where(first, big, small)
    S[:, 1] = np.where(first, small, big)
    if known_idx.size:
        row_ll[known_idx] = 0.0
        S[known_idx] = 0.0
        S[known_idx, known_y] = 1.0
    return S, float(row_ll.sum()) + ll_known


def col_sum(q: np.ndarray) -> np.ndarray:
    """``q.sum(axis=0)`` of an ``(n, k)`` array: for small ``k`` one strided sum per class,
    which is far faster than numpy's axis-0 reduction over rows of length ``k``."""
    k = q.shape[1]
    if k > 16:
        return q.sum(axis=0)
    return np.array([q[:, c].sum() for c in range(k)])


def row_reduce(S: np.ndarray, op: np.ufunc) -> np.ndarray:
    """Row-wise ``op``-reduction of an ``(n, k)`` array. For small ``k`` a loop over the
    *classes* of contiguous column operations is several times faster than numpy's
    ``axis=1`` reduction over short rows."""
    k = S.shape[1]
    if k > 16:
        return op.reduce(S, axis=1)
    out = S[:, 0].copy()
    for c in range(1, k):
        op(out, S[:, c], out=out)
    return out
