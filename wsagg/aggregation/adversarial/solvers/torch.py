"""Torch solver of the adversarial log-loss dual (CPU or CUDA).

The expensive part of every iteration is the pass over the distinct vote patterns: one
sparse matrix-vector product with the design ``X`` (class-major, see
:attr:`DualProblem.X`) for the scores, a log-sum-exp over the classes, and one with ``X^T``
for the gradient — ``O(nnz(X))`` work that a GPU does well. This module evaluates that
oracle with torch (float64, sparse CSR) on ``device`` and hands the small ``d``-dimensional
optimisation (``d <= k + m k^2`` weights) to the same driver as the scipy solver
(:mod:`.scipy`: L-BFGS-B, then active-set Newton whose ``d x d`` Hessian
is assembled on the host): per iteration only a ``d``-vector crosses between host and
device.
"""

from __future__ import annotations

import numpy as np

from wsagg.aggregation.adversarial.constraints import DualProblem
from wsagg.aggregation.adversarial.solvers.scipy import solve_lbfgsb

__all__ = ["make_torch_oracle", "solve_torch"]


def _csr_to_torch(M, device):
    import warnings

    import torch

    M = M.tocsr()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(M.indptr.astype(np.int64)),
            torch.from_numpy(M.indices.astype(np.int64)),
            torch.from_numpy(M.data.astype(np.float64)),
            size=M.shape,
            dtype=torch.float64,
            device=device,
            check_invariants=False,
        )


def make_torch_oracle(problem: DualProblem, device: str = "cpu"):
    """``theta -> (f, grad)`` of the smooth part of the dual, evaluated with torch."""
    try:
        import torch
    except ImportError as err:  # pragma: no cover - torch is installed in dev
        raise ImportError(
            "solver='torch' needs torch: pip install 'wsagg[torch]' (or use solver='scipy')."
        ) from err
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "device='cuda' was requested but torch sees no CUDA device; use device='cpu'."
        )
    k, U, N = problem.k, problem.n_patterns, problem.n_items
    X = _csr_to_torch(problem.X, dev)  # (k U, d), class-major rows
    XT = _csr_to_torch(problem.XT, dev)  # (d, k U)
    w = torch.from_numpy(problem.counts / N).to(dev)
    s = torch.from_numpy(problem.s / N).to(dev)

    def oracle(theta_np: np.ndarray) -> tuple[float, np.ndarray]:
        theta = torch.from_numpy(np.ascontiguousarray(theta_np, dtype=np.float64)).to(dev)
        St = torch.mv(X, theta).reshape(k, U)
        lse = torch.logsumexp(St, dim=0)
        CP = torch.exp(St - lse) * w
        grad = torch.mv(XT, CP.reshape(-1)) - s
        f = w @ lse - theta @ s
        return float(f.item()), grad.cpu().numpy()

    return oracle


def solve_torch(
    problem: DualProblem, *, device: str = "cpu", tol: float = 1e-10, max_iter: int = 10_000
) -> dict:
    """L-BFGS-B on the split variable with the oracle evaluated by torch on ``device``."""
    oracle = make_torch_oracle(problem, device)
    out = solve_lbfgsb(problem, oracle=oracle, tol=tol, max_iter=max_iter)
    out["message"] = f"torch[{device}] + L-BFGS-B: {out['message']}"
    return out
