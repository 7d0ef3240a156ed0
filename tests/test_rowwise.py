"""The row-wise kernels (wsagg._rowwise) against numpy / scipy's own reductions."""

import numpy as np
import pytest
from scipy.special import logsumexp, softmax

from wsagg._rowwise import col_sum, row_logsumexp, row_reduce, row_softmax, row_sum


@pytest.mark.parametrize("k", [1, 2, 3, 16, 17, 40])
def test_rowwise_kernels_equal_the_library_reductions(k):
    rng = np.random.default_rng(k)
    S = rng.normal(scale=30.0, size=(500, k))
    S[3] = -np.inf  # a row of -inf: log-sum-exp -inf, as scipy gives
    S[5, 0] = 800.0  # exp would overflow without the shift
    np.testing.assert_allclose(row_reduce(S, np.maximum), S.max(axis=1))
    np.testing.assert_allclose(col_sum(S[S[:, 0] > -np.inf]), S[S[:, 0] > -np.inf].sum(0))
    lse = row_logsumexp(S)
    want = logsumexp(S, axis=1)
    assert lse[3] == -np.inf and np.isfinite(np.delete(lse, 3)).all()
    np.testing.assert_allclose(np.delete(lse, 3), np.delete(want, 3), rtol=1e-13, atol=1e-12)
    ok = np.arange(500) != 3
    q, log_z = row_softmax(S[ok])
    np.testing.assert_allclose(q, softmax(S[ok], axis=1), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(log_z, want[ok], rtol=1e-13, atol=1e-12)
    before = S.copy()
    row_softmax(S)
    np.testing.assert_array_equal(S, before)  # (the input is left as it is)


@pytest.mark.parametrize("k", [1, 2, 3, 10, 40])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_row_and_column_sums_equal_numpy(k, dtype):
    rng = np.random.default_rng(k)
    S = rng.random((3000, k)).astype(dtype)
    if k == 3:  # more rows than one block of the float64 column sums
        S = rng.random((200_001, k)).astype(dtype)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(row_sum(S), S.sum(axis=1, dtype=np.float64), rtol=rtol)
    np.testing.assert_allclose(col_sum(S), S.sum(axis=0, dtype=np.float64), rtol=rtol)
    assert row_sum(S[:0]).shape == (0,) and col_sum(S[:0]).shape == (k,)
    np.testing.assert_array_equal(col_sum(S[:0]), np.zeros(k))
    Q = np.zeros((4, 3))
    Q[1, 2] = np.inf  # infinities and NaN propagate as in numpy's sums
    Q[2, 0] = np.nan
    np.testing.assert_array_equal(row_sum(Q), Q.sum(axis=1))
    np.testing.assert_array_equal(col_sum(Q), Q.sum(axis=0))
