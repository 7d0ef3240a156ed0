"""Row-wise kernels of narrow ``(n, k)`` arrays (posteriors, log joints): numpy only.

numpy's ``axis=1`` reductions over rows of a few elements, and ``axis=0`` ones over many
such rows, are several times slower than a loop over the ``k`` *columns* of contiguous
operations; scipy's ``logsumexp`` adds its own temporaries on top. Every aggregator's
E-step normalises an ``(n, k)`` array per iteration, so these are the shared kernels.

Layer L0: imports nothing of wsagg.
"""

from __future__ import annotations

import numpy as np

__all__ = ["col_sum", "row_logsumexp", "row_reduce", "row_softmax", "row_sum"]

# loop over the columns up to this many of them (measured on (250k, k) float64 arrays: the
# loop is 2.6x faster at k = 2, even at k = 10, slower at k = 16)
_FEW_ROWS = 10  # for row-wise reductions
_FEW_COLS = 16  # for column sums
_COL_BLOCK = 1 << 16  # rows per block of the BLAS column sums


def col_sum(q: np.ndarray) -> np.ndarray:
    """``q.sum(axis=0)`` of an ``(n, k)`` array. float64: the BLAS product ``1^T q``
    (4x faster than a loop over the columns at k = 10, 6x than numpy's axis-0 reduction);
    otherwise, for small ``k``, one strided sum per class (numpy's pairwise summation,
    which keeps float32 sums accurate), far faster than the axis-0 reduction over rows of
    length ``k``."""
    k = q.shape[1]
    if q.dtype == np.float64 and q.shape[0] > 0:
        n = q.shape[0]
        ones = np.ones(min(n, _COL_BLOCK))  # (by blocks of rows: no (n,) vector of ones)
        out = ones @ q[:_COL_BLOCK]
        for a in range(_COL_BLOCK, n, _COL_BLOCK):
            blk = q[a : a + _COL_BLOCK]
            out += ones[: blk.shape[0]] @ blk
        return out
    if k > _FEW_COLS:
        return q.sum(axis=0)
    return np.array([q[:, c].sum() for c in range(k)])


def row_sum(S: np.ndarray) -> np.ndarray:
    """Row sums of an ``(n, k)`` array: float64 with ``k > 2`` as the BLAS product
    ``S 1`` (3.5x faster than the loop over the columns at k = 10), else
    :func:`row_reduce` with ``np.add``."""
    if S.dtype == np.float64 and S.shape[1] > 2 and S.shape[0] > 0:
        return S @ np.ones(S.shape[1])
    return row_reduce(S, np.add)


def row_reduce(S: np.ndarray, op: np.ufunc) -> np.ndarray:
    """Row-wise ``op``-reduction of an ``(n, k)`` array. For small ``k`` a loop over the
    *classes* of contiguous column operations is several times faster than numpy's
    ``axis=1`` reduction over short rows."""
    k = S.shape[1]
    if k > _FEW_ROWS:
        return op.reduce(S, axis=1)
    out = S[:, 0].copy()
    for c in range(1, k):
        op(out, S[:, c], out=out)
    return out


def _shifted_exp(S: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``E = exp(S - max_row)``, its row sums and the row maxima (0 for rows of ``-inf``)."""
    mx = row_reduce(S, np.maximum)
    mx[~np.isfinite(mx)] = 0.0
    E = S - mx[:, None]
    np.exp(E, out=E)
    return E, row_sum(E), mx


def row_logsumexp(S: np.ndarray) -> np.ndarray:
    """``log sum_c exp(S[i, c])`` per row, shifted by the row maximum (no overflow; a row
    of ``-inf`` gives ``-inf``)."""
    _, tot, mx = _shifted_exp(S)
    with np.errstate(divide="ignore"):
        return np.log(tot) + mx


def row_softmax(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The row-normalised ``exp(S)`` and the row log-sum-exp, in one pass of ``exp`` (a row
    of ``-inf`` gives ``nan`` probabilities and ``-inf``, as scipy's ``softmax`` and
    ``logsumexp`` do; ``S`` is left as it is)."""
    E, tot, mx = _shifted_exp(S)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_z = np.log(tot) + mx
        E /= tot[:, None]
    return E, log_z
