"""The O(votes x k) kernels of Dawid-Skene EM, one module per array library.

A backend owns the design matrix and the clamped items; its ``e_step(table, offset)``
returns ``(loglik, X.T @ q, q.sum(0))``. ``numpy`` (scipy.sparse, row blocks on threads) is
the default; ``torch`` (CPU or CUDA) is imported only when a torch device is asked for.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from wsagg.aggregation.dawid_skene.backends.numpy import NumpyBackend

__all__ = ["NumpyBackend", "make_backend"]


def make_backend(
    device: Any,
    X: sp.csr_matrix,
    known: np.ndarray | None = None,
    *,
    dtype: Any = np.float64,
    n_jobs: int = 1,
    colsum: np.ndarray | None = None,
) -> Any:
    """Backend for ``device``: ``"numpy"`` or a torch device (``"cpu"``, ``"cuda"``, ...),
    computing in ``dtype`` (float64 or float32) on ``n_jobs`` threads (``colsum``: ``X``'s
    column sums when the caller has them)."""
    if isinstance(device, str) and device == "numpy":
        return NumpyBackend(X, known, dtype=dtype, n_jobs=n_jobs, colsum=colsum)
    from wsagg.aggregation.dawid_skene.backends.torch import TorchBackend  # torch only here

    return TorchBackend(X, known, device, dtype=dtype, n_jobs=n_jobs)
