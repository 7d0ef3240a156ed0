"""Source diagnostics agree with a direct per-item computation, dense and sparse."""

import numpy as np
import scipy.sparse as sp

from wsagg.datasets import make_dawid_skene
from wsagg.diagnostics import label_matrix_summary, source_summary


def _direct(L, y):
    n, m = L.shape
    rows = []
    for j in range(m):
        votes = L[:, j] >= 0
        others = (L >= 0).sum(axis=1) - votes > 0
        conflict = np.array(
            [votes[i] and any(L[i, jj] >= 0 and L[i, jj] != L[i, j] for jj in range(m) if jj != j)
             for i in range(n)]
        )
        gold = votes & (y >= 0)
        rows.append((votes.mean(), (votes & others).mean(), conflict.mean(),
                     int((L[gold, j] == y[gold]).sum()), int((L[gold, j] != y[gold]).sum())))
    return np.array(rows)


def test_matches_direct_computation():
    data = make_dawid_skene(60, 5, 3, coverage=0.5, random_state=3)
    L = data.L.to_dense()
    y = data.y.copy()
    y[::4] = -1
    table = source_summary(L, y)
    direct = _direct(L, y)
    np.testing.assert_allclose(table[["coverage", "overlap", "conflict"]].to_numpy(), direct[:, :3])
    np.testing.assert_array_equal(table["correct"].to_numpy(), direct[:, 3])
    np.testing.assert_array_equal(table["incorrect"].to_numpy(), direct[:, 4])
    sparse_table = source_summary(sp.csr_matrix(np.where(L >= 0, L + 1, 0)), y)
    np.testing.assert_allclose(
        sparse_table[["coverage", "overlap", "conflict"]].to_numpy(), direct[:, :3]
    )


def test_polarity_and_never_voting_source():
    L = np.array([[0, -1, 1], [0, -1, 1], [-1, -1, 0]])
    table = source_summary(L)
    assert table["polarity"].tolist() == [[0], [], [0, 1]]
    assert table.loc[1, "coverage"] == 0
    summary = label_matrix_summary(L)
    assert summary["n_votes"] == 5 and summary["coverage"] == 1.0
    assert np.isnan(source_summary(L, y=np.array([-1, -1, -1]))["emp_accuracy"]).all()
