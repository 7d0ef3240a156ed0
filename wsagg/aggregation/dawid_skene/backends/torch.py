"""Torch kernels of Dawid-Skene EM (CPU or CUDA), same contract as ``NumpyBackend``.

The design matrix and its transpose are stored as sparse CSR tensors on the device (32-bit
indices when they fit), in float64 or float32 (``dtype``), so both sparse products are CSR x
dense products; the ``(n, k)`` posterior stays on the device, and only the small
``(columns, k)`` statistics and the log-parameter table cross between host and device each
iteration. Sums over the items (the log-likelihood) are accumulated in float64. On the CPU,
``n_jobs`` sets torch's intra-op threads for the duration of each call (restored after).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import numpy as np
import scipy.sparse as sp

from wsagg._optional import import_optional
from wsagg._torch import csr_tensor, resolve_device

__all__ = ["TorchBackend"]


class TorchBackend:
    """torch.sparse CSR kernels on ``device`` (float64 or float32)."""

    def __init__(self, X: sp.csr_matrix, known: np.ndarray | None, device: Any, *,
                 dtype: Any = np.float64, n_jobs: int = 1) -> None:
        torch = import_optional("torch", f"device={device!r}", alternative="or device='numpy'")

        self.device = resolve_device(device)
        self.dtype = torch.float32 if np.dtype(dtype) == np.float32 else torch.float64
        self.n_jobs = int(n_jobs)
        X = sp.csr_matrix(X, dtype=np.float64)
        self.n = X.shape[0]
        self.X = csr_tensor(X, self.device)
        self.Xt = csr_tensor(X.T.tocsr(), self.device)
        if self.dtype != torch.float64:
            self.X = self.X.to(self.dtype)
            self.Xt = self.Xt.to(self.dtype)
        if known is not None and (known >= 0).any():
            idx = np.flatnonzero(known >= 0)
            self.known_idx = torch.as_tensor(idx, device=self.device)
            self.known_y = torch.as_tensor(known[idx].astype(np.int64), device=self.device)
        else:
            self.known_idx = None
            self.known_y = None
        self.q: Any = None

    @contextmanager
    def _threads(self) -> Any:
        import torch

        if self.device.type != "cpu" or self.n_jobs < 1:
            yield
            return
        before = torch.get_num_threads()
        if before != self.n_jobs:
            torch.set_num_threads(self.n_jobs)
        try:
            yield
        finally:
            if before != self.n_jobs:
                torch.set_num_threads(before)

    def close(self) -> None:
        """Nothing to release (same interface as the numpy backend)."""

    def _log_joint(self, table: np.ndarray, offset: np.ndarray) -> Any:
        import torch

        T = torch.as_tensor(table, dtype=self.dtype, device=self.device)
        b = torch.as_tensor(offset, dtype=self.dtype, device=self.device)
        return self.X @ T + b

    def _softmax(self, S: Any, clamp: bool) -> tuple[Any, float]:
        import torch

        row_ll = torch.logsumexp(S, dim=1)
        q = torch.exp(S - row_ll[:, None])
        if clamp and self.known_idx is not None:
            self._known_free = q[self.known_idx].clone()
            ll_known = S[self.known_idx, self.known_y].sum(dtype=torch.float64)
            row_ll[self.known_idx] = 0.0
            q[self.known_idx] = 0.0
            q[self.known_idx, self.known_y] = 1.0
            return q, float(row_ll.sum(dtype=torch.float64) + ll_known)
        return q, float(row_ll.sum(dtype=torch.float64))

    def e_step(self, table: np.ndarray, offset: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        with self._threads():
            S = self._log_joint(table, offset)
            q, loglik = self._softmax(S, clamp=True)
            self.q = q
            return loglik, self._stats(q), self._sum_rows(q)

    def last_posterior(self) -> np.ndarray:
        """Unclamped posterior at the parameters of the last :meth:`e_step` (float64)."""
        q = self.q
        if self.known_idx is not None:
            q = q.clone()
            q[self.known_idx] = self._known_free
        return q.cpu().numpy().astype(np.float64, copy=False)

    def _stats(self, q: Any) -> np.ndarray:
        import torch

        q = torch.as_tensor(q, dtype=self.dtype, device=self.device)
        return (self.Xt @ q).cpu().numpy().astype(np.float64, copy=False)

    def _sum_rows(self, q: Any) -> np.ndarray:
        import torch

        q = torch.as_tensor(q, dtype=self.dtype, device=self.device)
        return q.sum(dim=0, dtype=torch.float64).cpu().numpy()

    def stats(self, q: Any) -> np.ndarray:
        with self._threads():
            return self._stats(q)

    def sum_rows(self, q: Any) -> np.ndarray:
        with self._threads():
            return self._sum_rows(q)

    def posterior(self, table: np.ndarray, offset: np.ndarray) -> np.ndarray:
        with self._threads():
            S = self._log_joint(table, offset)
            q, _ = self._softmax(S, clamp=False)
            return q.cpu().numpy().astype(np.float64, copy=False)
