"""Torch kernels of Dawid-Skene EM (CPU or CUDA), same contract as ``NumpyBackend``.

The design matrix and its transpose are stored as float64 sparse CSR tensors on the device
(32-bit indices when they fit), so both sparse products are CSR x dense products; the
``(n, k)`` posterior stays on the device, and only the small ``(columns, k)`` statistics and
the log-parameter table cross between host and device each iteration.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from wsagg._torch import csr_tensor, resolve_device

__all__ = ["TorchBackend"]


class TorchBackend:
    """torch.sparse CSR kernels on ``device`` (float64)."""

    def __init__(self, X: sp.csr_matrix, known: np.ndarray | None, device: Any) -> None:
        import torch

        self.device = resolve_device(device)
        X = sp.csr_matrix(X)
        self.n = X.shape[0]
        self.X = csr_tensor(X, self.device)
        self.Xt = csr_tensor(X.T.tocsr(), self.device)
        if known is not None and (known >= 0).any():
            idx = np.flatnonzero(known >= 0)
            self.known_idx = torch.as_tensor(idx, device=self.device)
            self.known_y = torch.as_tensor(known[idx].astype(np.int64), device=self.device)
        else:
            self.known_idx = None
            self.known_y = None
        self.q: Any = None

    def _log_joint(self, table: np.ndarray, offset: np.ndarray) -> Any:
        import torch

        T = torch.as_tensor(table, dtype=torch.float64, device=self.device)
        b = torch.as_tensor(offset, dtype=torch.float64, device=self.device)
        return self.X @ T + b

    def _softmax(self, S: Any, clamp: bool) -> tuple[Any, float]:
        import torch

        row_ll = torch.logsumexp(S, dim=1)
        q = torch.exp(S - row_ll[:, None])
        if clamp and self.known_idx is not None:
            self._known_free = q[self.known_idx].clone()
            ll_known = S[self.known_idx, self.known_y].sum()
            row_ll[self.known_idx] = 0.0
            q[self.known_idx] = 0.0
            q[self.known_idx, self.known_y] = 1.0
            return q, float(row_ll.sum() + ll_known)
        return q, float(row_ll.sum())

    def e_step(self, table: np.ndarray, offset: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        S = self._log_joint(table, offset)
        q, loglik = self._softmax(S, clamp=True)
        self.q = q
        return loglik, self.stats(q), self.sum_rows(q)

    def last_posterior(self) -> np.ndarray:
        """Unclamped posterior at the parameters of the last :meth:`e_step`."""
        q = self.q
        if self.known_idx is not None:
            q = q.clone()
            q[self.known_idx] = self._known_free
        return q.cpu().numpy()

    def stats(self, q: Any) -> np.ndarray:
        import torch

        q = torch.as_tensor(q, dtype=torch.float64, device=self.device)
        return (self.Xt @ q).cpu().numpy()

    def sum_rows(self, q: Any) -> np.ndarray:
        import torch

        q = torch.as_tensor(q, dtype=torch.float64, device=self.device)
        return q.sum(dim=0).cpu().numpy()

    def posterior(self, table: np.ndarray, offset: np.ndarray) -> np.ndarray:
        S = self._log_joint(table, offset)
        q, _ = self._softmax(S, clamp=False)
        return q.cpu().numpy()
