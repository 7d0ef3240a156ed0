"""Fast CPU solver of the adversarial log-loss dual: L-BFGS-B on a split variable.

The dual ``F(theta) = f(theta) + (1/N) e^T |theta|`` is a smooth convex ``f`` (a
pattern-weighted multinomial log-partition minus a linear term) plus a weighted L1 norm. With
``theta = theta_plus - theta_minus`` and ``theta_plus, theta_minus >= 0`` the L1 norm becomes
the *linear* function ``e^T (theta_plus + theta_minus)`` and the problem

.. math::

    \\min_{\\theta^\\pm \\ge 0} \\; f(\\theta^+ - \\theta^-)
        + \\tfrac1N e^\\top(\\theta^+ + \\theta^-)

is smooth with simple bounds, exactly what L-BFGS-B (Byrd, Lu, Nocedal & Zhu 1995) solves;
at an optimum with ``e_f > 0`` at most one of ``theta_f^+``, ``theta_f^-`` is non-zero (else
lowering both by their minimum decreases the objective by ``2 e_f min / N``), so the split
is exact. Features with ``e_f = 0`` (equality constraints) keep a single free variable.

After L-BFGS-B, a few Newton steps on the smooth restriction to the sign pattern found
(zero weights held at zero) polish the solution to near machine precision: the number of
weights is small (``d <= k + m k^2``), so the ``d x d`` Hessian is cheap.

The function/gradient *oracle* is pluggable so that the torch solver reuses this driver
with its evaluation on a GPU.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize

from wsagg._adversarial_constraints import DualProblem

__all__ = ["newton_polish", "solve_lbfgsb"]


class _EmptyPolytope(Exception):
    """Raised inside the objective when an iterate certifies that the polytope is empty."""

    def __init__(self, theta: np.ndarray, value: float) -> None:
        super().__init__(value)
        self.theta, self.value = theta, value

Oracle = Callable[[np.ndarray], tuple[float, np.ndarray]]


def solve_lbfgsb(
    problem: DualProblem,
    **kwargs: object,
) -> dict:
    """Minimise the dual with L-BFGS-B on the split variable (see :func:`_solve_lbfgsb`).

    BLAS is limited to one thread during the solve: the L-BFGS-B update works on tiny
    ``d``-vectors, where multi-threaded BLAS only adds synchronisation (measured 100x slower
    per iteration on a loaded 2-core machine).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _solve_lbfgsb(problem, **kwargs)  # type: ignore[arg-type]


def _solve_lbfgsb(
    problem: DualProblem,
    *,
    oracle: Oracle | None = None,
    tol: float = 1e-10,
    max_iter: int = 10_000,
    theta0: np.ndarray | None = None,
    polish: bool = True,
) -> dict:
    """Minimise the dual with L-BFGS-B on the split variable.

    Returns a dict with ``theta``, ``objective`` (per item), ``status`` (``"optimal"`` or
    ``"inaccurate"``), ``n_iter``, ``message`` and ``kkt`` (the largest violation of the
    optimality conditions ``|grad_f| <= e/N`` off the support, ``grad_f = -sign e/N`` on it).
    """
    smooth = problem.smooth if oracle is None else oracle
    d = problem.dim
    e = problem.e / problem.n_items
    pen = np.flatnonzero(e > 0)
    free = e <= 0

    def unpack(x: np.ndarray) -> np.ndarray:
        theta = x[:d].copy()
        theta[pen] -= x[d:]
        return theta

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        theta = unpack(x)
        f, g = smooth(theta)
        val = f + float(e[pen] @ (x[:d][pen] + x[d:]))
        if val < -1e-6:
            # weak duality: F(theta) >= max entropy >= 0 whenever the polytope is non-empty,
            # so a negative value proves it empty (the dual is unbounded below): stop now.
            raise _EmptyPolytope(theta, val)
        gx = np.empty_like(x)
        gx[:d] = g
        gx[:d][pen] += e[pen]
        gx[d:] = -g[pen] + e[pen]
        return val, gx

    x0 = np.zeros(d + pen.shape[0])
    if theta0 is not None:
        x0[:d] = np.where(free, theta0, np.maximum(theta0, 0.0))
        x0[d:] = np.maximum(-theta0[pen], 0.0)
    bounds = [(None, None) if free[i] else (0.0, None) for i in range(d)] + [
        (0.0, None)
    ] * pen.shape[0]
    try:
        res = minimize(
            fun,
            x0,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": max_iter, "maxcor": 30, "ftol": 1e-16, "gtol": tol, "maxls": 50},
        )
    except _EmptyPolytope as stop:
        return {
            "theta": stop.theta,
            "objective": stop.value,
            "status": "infeasible",
            "n_iter": -1,
            "message": "dual objective < 0: the constraint polytope is empty",
            "kkt": float("nan"),
        }
    theta = unpack(res.x)
    n_iter = int(res.nit)
    if polish:
        theta = newton_polish(problem, theta, smooth)
    kkt = kkt_violation(problem, theta, smooth)
    status = "optimal" if kkt <= max(1e-7, 100 * tol) else "inaccurate"
    f, _ = smooth(theta)
    objective = f + float(e @ np.abs(theta))
    return {
        "theta": theta,
        "objective": objective,
        "status": status,
        "n_iter": n_iter,
        "message": str(res.message),
        "kkt": kkt,
    }


def kkt_violation(problem: DualProblem, theta: np.ndarray, smooth: Oracle) -> float:
    """Largest violation of the subgradient optimality condition ``0 in grad f + (e/N) d|.|``."""
    e = problem.e / problem.n_items
    _, g = smooth(theta)
    on = theta != 0
    viol = np.where(on, np.abs(g + e * np.sign(theta)), np.maximum(np.abs(g) - e, 0.0))
    return float(viol.max()) if viol.size else 0.0


def newton_polish(
    problem: DualProblem, theta: np.ndarray, smooth: Oracle, n_steps: int = 20
) -> np.ndarray:
    """Newton steps on the weights that are non-zero (or free), keeping their signs.

    Accepts a step only if it keeps every sign and lowers the objective; stops as soon as
    no step helps. The Hessian of the log-partition on pattern ``u`` is
    ``X_u^T (diag p_u - p_u p_u^T) X_u``, assembled through the sparse design.
    """
    e = problem.e / problem.n_items
    active = (theta != 0) | (e <= 0)
    if not active.any():
        return theta
    idx = np.flatnonzero(active)
    X = design_matrix(problem)[:, idx]  # (U*k, |idx|)
    R = _row_block_sum(problem.n_patterns, problem.k)

    def full(t: np.ndarray) -> float:
        f, _ = smooth(t)
        return f + float(e @ np.abs(t))

    best = full(theta)
    for _ in range(n_steps):
        _, g = smooth(theta)
        g_act = g[idx] + e[idx] * np.sign(theta[idx])
        P = problem.proba(theta)
        w = (problem.counts / problem.n_items)[:, None] * P  # (U, k)
        Xw = X.multiply(w.reshape(-1, 1)).tocsr()
        H = (X.T @ Xw).toarray()
        G = (Xw.T @ R).T.toarray()  # (U, |idx|): sum_l w_ul X_(u,l)
        H -= G.T @ (G / (problem.counts / problem.n_items)[:, None])
        H += 1e-12 * np.eye(H.shape[0])
        try:
            step = np.linalg.solve(H, g_act)
        except np.linalg.LinAlgError:
            break
        accepted = False
        for scale in (1.0, 0.5, 0.25, 0.1):
            cand = theta.copy()
            cand[idx] -= scale * step
            pen_idx = idx[e[idx] > 0]
            if np.any(np.sign(cand[pen_idx]) != np.sign(theta[pen_idx])):
                continue
            val = full(cand)
            if val <= best:
                accepted = val < best
                theta, best = cand, val
                break
        if not accepted:
            break
    return theta


def _row_block_sum(U: int, k: int):
    import scipy.sparse as sp

    # (U*k, U) matrix summing each pattern's k rows
    return sp.kron(sp.identity(U), np.ones((k, 1)), format="csr")


def design_matrix(problem: DualProblem):
    """Sparse design ``X`` of shape ``(U*k, d)``: ``S.ravel() = X @ theta``."""
    import scipy.sparse as sp

    U, k = problem.n_patterns, problem.k
    Xw = (sp.kron(problem.V, sp.identity(k), format="csr") @ problem.B).tocsr()
    if problem.has_bias:
        Xg = sp.kron(np.ones((U, 1)), sp.identity(k), format="csr")
        return sp.hstack([Xg, Xw]).tocsr()
    return Xw
