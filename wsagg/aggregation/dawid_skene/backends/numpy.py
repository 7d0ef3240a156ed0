"""Heavy kernels of Dawid-Skene EM: the two sparse products and the row-wise logsumexp.

A backend owns the design matrix ``X`` (items x outcome-columns, sparse) and the clamped
(known) items. Each EM iteration calls :meth:`NumpyBackend.e_step` once:

* ``S = X @ table + offset`` — the log joint ``log pi_c + log P(votes_i | y_i = c)`` of every
  item and class (``table`` is the log-parameter table, ``offset`` a ``(k,)`` row);
* ``q = softmax(S)`` per row, with known items clamped to their one-hot label;
* the sufficient statistics ``X.T @ q`` and ``q.sum(0)`` for the M-step.

How this backend does it, close to the memory-bandwidth floor:

* **Row blocks.** The rows are cut into contiguous blocks of about ``_BLOCK_VOTES`` votes
  (a few MB: the block's votes are still in cache when the M-step product reads them again
  right after the E-step product, and the ``O(rows x k)`` temporaries of the softmax stay in
  cache too). The blocks depend on ``X`` only, and their partial sums are added in block
  order, so the result is the same for every ``n_jobs``.
* **Threads** (``n_jobs``). The blocks are processed by a thread pool: scipy's sparse
  kernels (``_sparsetools``) and numpy's ufuncs release the GIL, so the two products and the
  softmax of different blocks run on different cores.
* **k = 2 as one log-odds column.** The E-step product is ``r = X (T_1 - T_0) + (b_1 - b_0)``
  (one vector, not two), the posterior is the logistic ``q_1 = 1 / (1 + e^{-r})`` and the row
  log-likelihood is ``S_0 + softplus(r)``, whose sum over the rows needs no ``S_0`` column:
  ``sum_i S_{i0} = c^T T_0 + n b_0`` with ``c`` the column sums of ``X`` (computed once). The
  M-step product is ``X^T q_1``, and ``X^T q_0 = c - X^T q_1``.
* **General k**: in-place log-sum-exp on the block's ``(rows, k)`` array (shift by the row
  maximum, ``exp``, divide by the row sum, all in the same buffer).
* **dtype**: ``float64`` (default) or ``float32`` for the design, the table and the
  posteriors (half the memory traffic of the values); the sums over items (statistics,
  log-likelihood) are always accumulated in ``float64``, block by block.

Only these O(votes x k) and O(n x k) operations live here; the parameter updates work on
tables of size O(m k^2) and are shared by every backend (``..em``), which is what makes
the numpy and torch paths agree to rounding error.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import scipy.sparse as sp

from wsagg._rowwise import col_sum, row_reduce, row_sum  # (re-exported: the backends' names)
from wsagg.labels import bincount_chunked  # (re-exported)

__all__ = [
    "NumpyBackend",
    "bincount_chunked",
    "col_sum",
    "effective_n_jobs",
    "resolve_dtype",
    "row_reduce",
    "row_sum",
    "row_view",
]

_BLOCK_VOTES = 1 << 18  # votes per row block: ~3 MB of float64 CSR, cache-resident
_MIN_BLOCK_ROWS = 1 << 12
# float32: the M-step product of a block is summed (in float32, by scipy) over sub-blocks of
# at most this many votes, and the sub-block sums in float64: a float32 running sum over a
# whole block would cost ~1e-5 relative error in the statistics (measured: posteriors within
# 3e-7 of float64 with 2^14, 1.5e-5 with 2^18)
_F32_SUM_VOTES = 1 << 14
_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


def resolve_dtype(dtype: Any) -> np.dtype:
    """``np.float64`` or ``np.float32`` (also given as a string); anything else is an error."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in _DTYPES:
        raise ValueError(
            f"dtype must be np.float64 (default) or np.float32; got {dtype!r}."
        )
    return dt


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def effective_n_jobs(n_jobs: int | None) -> int:
    """Threads for ``n_jobs``: ``None`` = what the thread-pool settings allow (the smallest
    ``num_threads`` of the loaded BLAS / OpenMP pools as ``threadpoolctl`` reports them, so
    ``OMP_NUM_THREADS=1`` or ``threadpool_limits(1)`` mean one thread); ``-1`` = every CPU
    this process may use, ``-2`` all but one, ...; at most the number of CPUs."""
    cpus = _cpu_count()
    if n_jobs is None:
        try:
            from threadpoolctl import threadpool_info

            limits = [int(p["num_threads"]) for p in threadpool_info()
                      if p.get("user_api") in ("blas", "openmp")]
        except Exception:  # pragma: no cover - threadpoolctl comes with scikit-learn
            limits = []
        n = min(limits) if limits else cpus
    elif n_jobs < 0:
        n = cpus + 1 + int(n_jobs)
    else:
        n = int(n_jobs)
    return max(1, min(n, cpus))


def _clamp_arrays(known: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    if known is None:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    idx = np.flatnonzero(known >= 0)
    return idx, known[idx].astype(np.int64)


class _Block:
    """Rows ``a:b`` of ``X`` (CSR view, no copy of the votes), its transpose (a CSC view),
    and the known items among them (local indices)."""

    __slots__ = ("X", "XT", "a", "b", "kidx", "ky", "parts")

    def __init__(self, X: sp.csr_matrix, a: int, b: int, known_idx: np.ndarray,
                 known_y: np.ndarray, sum_votes: int | None = None) -> None:
        self.X = row_view(X, a, b)
        self.XT = _transpose(self.X)
        self.a, self.b = a, b
        lo, hi = np.searchsorted(known_idx, [a, b])
        self.kidx = known_idx[lo:hi] - a
        self.ky = known_y[lo:hi]
        self.parts: list[tuple[int, int, Any]] | None = None
        nv = int(X.indptr[b] - X.indptr[a])
        if sum_votes is not None and nv > sum_votes:  # sub-blocks for the M-step sums
            per = max(1, int(sum_votes * (b - a) / nv))
            cuts = [*range(0, b - a, per), b - a]
            self.parts = [(u, v, _transpose(row_view(self.X, u, v)))
                          for u, v in itertools.pairwise(cuts)]

    def mstat(self, q: np.ndarray) -> np.ndarray:
        """``X_block.T @ q`` in float64 (summed over sub-blocks in float32 mode)."""
        if self.parts is None:
            return _as64(self.XT @ q)
        out = _as64(self.parts[0][2] @ q[self.parts[0][0] : self.parts[0][1]])
        for u, v, XT in self.parts[1:]:
            out += XT @ q[u:v]
        return out


def row_view(X: sp.csr_matrix, a: int, b: int) -> sp.csr_matrix:
    """Rows ``a:b`` of CSR ``X`` as a CSR matrix sharing ``X``'s votes (no copy: ``X[a:b]`` copies).

    The arrays are assigned after construction: scipy's constructor "prunes" (copies)
    arrays that are small views of larger ones, which would duplicate the votes."""
    s, e = int(X.indptr[a]), int(X.indptr[b])
    M = sp.csr_matrix((b - a, X.shape[1]), dtype=X.dtype)
    M.indptr = (X.indptr[a : b + 1] - X.indptr[a]).astype(X.indices.dtype, copy=False)
    M.indices = X.indices[s:e]
    M.data = X.data[s:e]
    M.has_canonical_format = X.has_canonical_format
    return M


def _transpose(M: sp.csr_matrix) -> sp.csc_matrix:
    """``M.T`` as a CSC matrix on ``M``'s arrays (``M.T`` itself copies views, see
    :func:`row_view`)."""
    T = sp.csc_matrix((M.shape[1], M.shape[0]), dtype=M.dtype)
    T.indptr, T.indices, T.data = M.indptr, M.indices, M.data
    T.has_canonical_format = M.has_canonical_format
    return T


class NumpyBackend:
    """scipy.sparse CSR kernels on row blocks, ``n_jobs`` threads, float64 or float32.

    Parameters
    ----------
    X : csr_matrix
        The design matrix (:func:`..em.build_design`); converted to ``dtype`` if needed.
    known : ndarray or None
        Known class per item (``-1`` = unknown): those items are clamped in :meth:`e_step`.
    dtype : np.float64 or np.float32
    n_jobs : int
        Threads (see :func:`effective_n_jobs`; resolved by the caller).
    colsum : ndarray, optional
        The column sums of ``X`` if the caller has them (else computed when first needed).
    """

    def __init__(self, X: sp.csr_matrix, known: np.ndarray | None = None, *,
                 dtype: Any = np.float64, n_jobs: int = 1,
                 colsum: np.ndarray | None = None) -> None:
        self.dtype = resolve_dtype(dtype)
        if not isinstance(X, sp.csr_matrix):  # (re-wrapping a CSR matrix would drop its
            X = sp.csr_matrix(X)  # known canonical format, re-checked per block)
        if X.dtype != self.dtype:
            X = X.astype(self.dtype)
        self.X = X
        self.n = X.shape[0]
        self.known_idx, self.known_y = _clamp_arrays(known, self.n)
        rows = self.n
        if rows:
            per = max(_MIN_BLOCK_ROWS, int(_BLOCK_VOTES * rows / max(X.nnz, 1)))
            cuts = [*range(0, rows, per), rows]
        else:
            cuts = [0]
        sum_votes = _F32_SUM_VOTES if self.dtype == np.float32 else None
        self.blocks = [_Block(X, a, b, self.known_idx, self.known_y, sum_votes)
                       for a, b in itertools.pairwise(cuts)]
        self.n_jobs = max(1, min(int(n_jobs), len(self.blocks)))
        self._pool: ThreadPoolExecutor | None = None
        self._colsum: np.ndarray | None = colsum
        # the unclamped posterior (n, k) float64 of the last E-step, written block by block
        # by the E-step itself (no per-block copies to assemble afterwards)
        self._q: np.ndarray | None = None

    # -- plumbing ------------------------------------------------------------------------
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_pool"] = None
        return state

    def close(self) -> None:
        """Shut the thread pool down (a later call starts a new one)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _map(self, fn: Any) -> list:
        """``[fn(block) for block in blocks]``, on ``n_jobs`` threads, in block order."""
        if self.n_jobs == 1:
            return [fn(b) for b in self.blocks]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.n_jobs, thread_name_prefix="wsagg-ds")
        return list(self._pool.map(fn, self.blocks))

    def colsum(self) -> np.ndarray:
        """Column sums ``c`` of ``X`` (vote counts per outcome column), float64, cached."""
        if self._colsum is None:
            X = self.X
            if X.dtype == np.float64:  # X.T @ 1 (see em.column_sums)
                self._colsum = np.asarray(X.T @ np.ones(X.shape[0]))
            else:
                self._colsum = bincount_chunked(X.indices, X.data, X.shape[1])
        return self._colsum

    # -- the E-step ----------------------------------------------------------------------
    def e_step(self, table: np.ndarray, offset: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Posterior and log-likelihood at the given parameters, plus the M-step statistics.

        Returns ``(loglik, X.T @ q, q.sum(0))`` (float64); the posterior is kept for
        :meth:`last_posterior`.
        """
        self._q = None  # (the previous posteriors: freed before the new ones are made)
        k = table.shape[1]
        if k == 2:
            return self._e_step_two(table, offset)
        ll_shift = 0.0
        if self.dtype == np.float32:
            # each table row shifted by its maximum: the log joints keep only the
            # differences between classes (small numbers, which float32 holds to ~1e-7),
            # the shift of every row (the same for every class) goes to the log-likelihood
            shift = table.max(axis=1)
            table = table - shift[:, None]
            ll_shift = float(self.colsum() @ shift)
        T = np.ascontiguousarray(table, dtype=self.dtype)
        b = np.asarray(offset, dtype=self.dtype)
        f32 = self.dtype == np.float32

        out = np.empty((self.n, k), dtype=np.float64)

        def run(blk: _Block) -> tuple:
            S = blk.X @ T
            S += b
            free = S[blk.kidx] if blk.kidx.size else None  # unclamped, for last_posterior
            q, ll = _softmax_rows(S, blk.kidx, blk.ky)
            out[blk.a : blk.b] = q
            if free is not None:
                free, _ = _softmax_rows(free, _NONE, _NONE)
                out[blk.a + blk.kidx] = free
            return ll, blk.mstat(q), _col_sum64(q)

        parts = self._map(run)
        self._q = out
        ll = float(sum(p[0] for p in parts)) + ll_shift
        stats = np.zeros((self.X.shape[1], k))
        q_sum = np.zeros(k)
        for p in parts:
            stats += p[1]
            q_sum += p[2]
        if f32:  # the rounding of the table to float32, to first order (see _e_step_two)
            ll -= float(np.einsum("lc,lc->", T - table, stats)) + float((b - offset) @ q_sum)
        return ll, stats, q_sum

    def _e_step_two(self, table: np.ndarray, offset: np.ndarray) -> tuple[float, np.ndarray,
                                                                            np.ndarray]:
        t0 = np.asarray(table[:, 0], dtype=np.float64)
        w64 = table[:, 1] - table[:, 0]
        w = np.ascontiguousarray(w64, dtype=self.dtype)
        gap = self.dtype.type(offset[1] - offset[0])
        f32 = self.dtype == np.float32

        out = np.empty((self.n, 2), dtype=np.float64)

        def run(blk: _Block) -> tuple:
            r = blk.X @ w
            r += gap
            q0, q1, ll = _logistic(r)
            out[blk.a : blk.b, 0] = q0  # (unclamped, for last_posterior)
            out[blk.a : blk.b, 1] = q1
            if blk.kidx.size:
                ky = blk.ky
                rk = r[blk.kidx].astype(np.float64)
                # known items: the complete-data term S_y = S_0 + y r instead of S_0 + sp(r)
                ll += float((ky * rk).sum() - _softplus64(rk).sum())
                q1[blk.kidx] = ky
                q0[blk.kidx] = 1 - ky
            return ll, blk.mstat(q1), _sum64(q0), _sum64(q1)

        parts = self._map(run)
        self._q = out
        c = self.colsum()
        ll = float(c @ t0) + self.n * float(offset[0]) + float(sum(p[0] for p in parts))
        s1 = np.zeros(self.X.shape[1])
        for p in parts:
            s1 += p[1]
        if f32:
            # float32 rounds w by dw (relative 6e-8), which shifts every r_i by x_i . dw: a
            # bias of sum_i q1_i x_i . dw = dw . X^T q1 in the sum of the softplus terms,
            # removed here to first order in float64 (the rest is unbiased rounding)
            dw = w.astype(np.float64) - w64
            dgap = float(gap) - float(offset[1] - offset[0])
            ll -= float(dw @ s1) + dgap * sum(p[3] for p in parts)
        stats = np.empty((self.X.shape[1], 2))
        stats[:, 1] = s1
        np.subtract(c, s1, out=stats[:, 0])
        np.maximum(stats[:, 0], 0.0, out=stats[:, 0])  # (rounding can leave -1e-13)
        q_sum = np.array([sum(p[2] for p in parts), sum(p[3] for p in parts)])
        return ll, stats, q_sum

    def last_posterior(self) -> np.ndarray:
        """Unclamped posterior ``(n, k)`` (float64) at the parameters of the last
        :meth:`e_step` (what :meth:`posterior` would return for them), without recomputing
        the products: the array the E-step wrote, handed over (not copied)."""
        assert self._q is not None
        out, self._q = self._q, None
        return out

    # -- the other passes ----------------------------------------------------------------
    def stats(self, q: np.ndarray) -> np.ndarray:
        """``X.T @ q`` (float64) of an ``(n, k)`` posterior, block by block."""
        q = np.asarray(q)
        two = q.shape[1] == 2  # X.T @ q_0 = c - X.T @ q_1, as in the E-step
        parts = self._map(
            lambda blk: blk.mstat(np.ascontiguousarray(q[blk.a : blk.b, 1] if two
                                                       else q[blk.a : blk.b], dtype=self.dtype))
        )
        if two:
            out = np.empty((self.X.shape[1], 2))
            out[:, 1] = sum(parts) if parts else 0.0
            np.maximum(self.colsum() - out[:, 1], 0.0, out=out[:, 0])
            return out
        out = np.zeros((self.X.shape[1], q.shape[1]))
        for p in parts:
            out += p
        return out

    def sum_rows(self, q: np.ndarray) -> np.ndarray:
        return col_sum(q)

    def posterior(self, table: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """Posterior without clamping (inductive prediction), ``(n, k)`` float64, computed
        block by block into the result (memory: the result plus one block's temporaries)."""
        k = table.shape[1]
        out = np.empty((self.n, k), dtype=np.float64)
        if k == 2:
            w = np.ascontiguousarray(table[:, 1] - table[:, 0], dtype=self.dtype)
            gap = self.dtype.type(offset[1] - offset[0])

            def run(blk: _Block) -> None:
                r = blk.X @ w
                r += gap
                q0, q1, _ = _logistic(r)
                out[blk.a : blk.b, 0] = q0
                out[blk.a : blk.b, 1] = q1
        else:
            if self.dtype == np.float32:  # (see e_step)
                table = table - table.max(axis=1)[:, None]
            T = np.ascontiguousarray(table, dtype=self.dtype)
            b = np.asarray(offset, dtype=self.dtype)

            def run(blk: _Block) -> None:
                S = blk.X @ T
                S += b
                out[blk.a : blk.b] = _softmax_rows(S, _NONE, _NONE)[0]

        self._map(run)
        return out


_NONE = np.zeros(0, dtype=np.int64)


def _as64(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def _sum64(a: np.ndarray) -> float:
    return float(np.add.reduce(a, dtype=np.float64))


def _col_sum64(q: np.ndarray) -> np.ndarray:
    if q.dtype == np.float64:  # (see col_sum)
        return col_sum(q)
    if q.shape[1] > 16:
        return q.sum(axis=0, dtype=np.float64)
    return np.array([_sum64(q[:, c]) for c in range(q.shape[1])])


def _logistic(r: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """``(q_0, q_1, sum_i softplus(r_i))`` of log-odds ``r`` (``r`` is left as it is).

    ``q_1 = 1 / (1 + e^{-r})`` and ``q_0 = 1 / (1 + e^{r})`` are each accurate to a few ulp
    *relative* to their value (an ``exp`` that overflows gives exactly 0, for a true value
    below ``1e-308``), so tiny posteriors keep their digits; ``softplus(r) = max(r, 0) -
    log(max(q_0, q_1))`` (the log of a number in ``[1/2, 1]``: no cancellation, no overflow).
    Only SIMD-vectorised ufuncs (``exp``, ``log``, ``reciprocal``): numpy's ``log1p`` and
    ``where`` are an order of magnitude slower per element."""
    with np.errstate(over="ignore"):
        q1 = np.negative(r)
        np.exp(q1, out=q1)
        q1 += 1
        np.reciprocal(q1, out=q1)
        q0 = np.exp(r)
        q0 += 1
        np.reciprocal(q0, out=q0)
    t = np.maximum(q0, q1)
    np.log(t, out=t)
    sp_total = -_sum64(t)
    np.maximum(r, 0, out=t)
    sp_total += _sum64(t)
    return q0, q1, sp_total


def _softplus64(r: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, np.asarray(r, dtype=np.float64))


def _softmax_rows(
    S: np.ndarray, known_idx: np.ndarray, known_y: np.ndarray
) -> tuple[np.ndarray, float]:
    """Row softmax of the log joint ``S`` in place, and the observed-data log-likelihood
    (float64).

    Rows are shifted by their maximum before ``exp`` so that the largest term is ``exp(0)``:
    no overflow, and underflow only of terms ``e^-745`` below the largest, which are 0 in
    float64 anyway. Known items contribute ``S[i, y_i]`` (complete-data term) and get a
    one-hot posterior.
    """
    ll_known = float(S[known_idx, known_y].astype(np.float64).sum()) if known_idx.size else 0.0
    if S.shape[1] == 2:
        return _softmax_two(S, known_idx, known_y, ll_known)
    mx = row_reduce(S, np.maximum)
    S -= mx[:, None]
    np.exp(S, out=S)
    tot = row_sum(S)
    S /= tot[:, None]
    row_ll = np.log(tot)
    row_ll += mx
    if known_idx.size:
        row_ll[known_idx] = 0.0
        S[known_idx] = 0.0
        S[known_idx, known_y] = 1.0
    return S, _sum64(row_ll) + ll_known


def _softmax_two(
    S: np.ndarray, known_idx: np.ndarray, known_y: np.ndarray, ll_known: float
) -> tuple[np.ndarray, float]:
    """:func:`_softmax_rows` for an ``(n, 2)`` log joint: the logistic of ``S_1 - S_0``
    (:func:`_logistic`), row log-likelihood ``S_0 + softplus(S_1 - S_0)``."""
    s0 = S[:, 0].copy()
    r = S[:, 1] - s0
    q0, q1, ll = _logistic(r)
    ll += _sum64(s0)
    S[:, 0] = q0
    S[:, 1] = q1
    if known_idx.size:  # (their complete-data terms are in ll_known)
        ll -= float((s0[known_idx] + _softplus64(r[known_idx])).sum())
        S[known_idx] = 0.0
        S[known_idx, known_y] = 1.0
    return S, ll + ll_known


