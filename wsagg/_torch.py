"""The one torch helper of wsagg: device resolution and scipy CSR -> torch CSR.

Imported only by the torch code paths (``device=`` / ``solver="torch"``), never by
``import wsagg``. Layer L0: imports only ``wsagg._optional``.
"""

from __future__ import annotations

import warnings
from typing import Any

import scipy.sparse as sp

from wsagg._optional import import_optional

__all__ = ["csr_tensor", "resolve_device"]


def resolve_device(device: Any) -> Any:
    """``torch.device(device)`` (``"auto"``: CUDA when available, else CPU), with one error
    type (``ValueError``) and one message for a bad name or a CUDA device that torch cannot
    see; a missing torch is an ``ImportError`` naming the extra."""
    torch = import_optional("torch", f"device={device!r}", alternative="or use the numpy path")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            "device must be a torch device such as 'cpu' or 'cuda' (or 'numpy' where the "
            f"estimator offers it); got {device!r}."
        ) from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available in this torch build; "
            "use device='cpu' (or the numpy path)."
        )
    return dev


def csr_tensor(M: sp.spmatrix, device: Any) -> Any:
    """A float64 sparse CSR tensor on ``device`` from a scipy sparse matrix (32-bit indices
    when they fit)."""
    torch = import_optional("torch", "A torch sparse tensor")

    M = sp.csr_matrix(M)
    if not M.has_canonical_format:
        M.sum_duplicates()
    small = M.nnz < 2**31 - 1 and max(M.shape) < 2**31 - 1
    idx_dtype = torch.int32 if small else torch.int64
    with warnings.catch_warnings():
        # "Sparse CSR tensor support is in beta state": CSR x dense is all we use
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support", category=UserWarning)
        return torch.sparse_csr_tensor(
            torch.as_tensor(M.indptr, dtype=idx_dtype),
            torch.as_tensor(M.indices, dtype=idx_dtype),
            torch.as_tensor(M.data, dtype=torch.float64),
            size=M.shape,
            dtype=torch.float64,
            check_invariants=False,  # canonical scipy CSR
        ).to(device)
