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

from dataclasses import replace

import numpy as np

from wsagg._optional import import_optional
from wsagg._torch import csr_tensor, resolve_device
from wsagg.aggregation.adversarial.constraints import DualProblem, SolverResult
from wsagg.aggregation.adversarial.solvers.scipy import solve_lbfgsb

__all__ = ["make_torch_oracle", "solve_torch"]


def make_torch_oracle(problem: DualProblem, device: str = "cpu"):
    """``theta -> (f, grad)`` of the smooth part of the dual, evaluated with torch."""
    dev = resolve_device(device)
    torch = import_optional("torch", "solver='torch'", alternative="or use solver='scipy'")
    k, U, N = problem.k, problem.n_patterns, problem.n_items
    X = csr_tensor(problem.X, dev)  # (k U, d), class-major rows
    XT = csr_tensor(problem.XT, dev)  # (d, k U)
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
) -> SolverResult:
    """L-BFGS-B on the split variable with the oracle evaluated by torch on ``device``."""
    oracle = make_torch_oracle(problem, device)
    out = solve_lbfgsb(problem, oracle=oracle, tol=tol, max_iter=max_iter)
    return replace(out, message=f"torch[{device}] + L-BFGS-B: {out.message}")
