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

L-BFGS-B is run only until the signs of the weights are found (relative decrease 1e-12);
then an active-set (orthant-wise) Newton method (:func:`newton_polish`) converges
quadratically: the number of weights is small (``d <= k + m k^2``), so the exact ``d x d``
Hessian (:meth:`DualProblem.hessian`) is cheap — about eight oracle evaluations — and one
or two Newton steps take the KKT violation from ~1e-6 to ~1e-14. If they do not, L-BFGS-B
runs again at full accuracy from the polished point. See ``docs/adversarial.md`` §4 for
the measurements behind this design.

The function/gradient *oracle* is pluggable so that the torch solver reuses this driver
with its evaluation on a GPU.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import Bounds, minimize

from wsagg.aggregation.adversarial.constraints import DualProblem, SolverResult

__all__ = ["kkt_violation", "newton_polish", "solve_lbfgsb"]


class _EmptyPolytope(Exception):
    """Raised inside the objective when an iterate certifies that the polytope is empty."""

    def __init__(self, theta: np.ndarray, value: float) -> None:
        super().__init__(value)
        self.theta, self.value = theta, value

Oracle = Callable[[np.ndarray], tuple[float, np.ndarray]]


def solve_lbfgsb(
    problem: DualProblem,
    **kwargs: object,
) -> SolverResult:
    """Minimise the dual: L-BFGS-B on the split variable, then active-set Newton (see
    :func:`_solve_lbfgsb`).

    BLAS is limited to one thread during the solve: the updates work on tiny ``d``-vectors,
    where multi-threaded BLAS only adds synchronisation (measured 100x slower per iteration
    on a loaded 2-core machine).
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
    """Minimise the dual: L-BFGS-B on the split variable, then active-set Newton.

    Stage 1 runs L-BFGS-B to a moderate accuracy (relative decrease ``1e-12``), enough to
    identify the sign pattern of the weights; stage 2 (:func:`newton_polish`) converges
    quadratically on it. Only if stage 2 does not reach the KKT tolerance does L-BFGS-B run
    again, from the polished point, at full accuracy (``ftol = 1e-16``, ``gtol = tol``), and
    Newton polishes once more.

    Returns a dict with ``theta``, ``objective`` (per item), ``status`` (``"optimal"``,
    ``"inaccurate"`` or ``"infeasible"``), ``n_iter`` (L-BFGS-B iterations + Newton steps),
    ``message`` and ``kkt`` (the largest violation of the optimality conditions
    ``|grad_f| <= e/N`` off the support, ``grad_f = -sign e/N`` on it).
    """
    smooth = problem.smooth if oracle is None else oracle
    target = max(1e-7, 100 * tol)
    stages = [(1e-12, 1e-8)] if polish else []
    stages.append((1e-16, tol))
    theta = None if theta0 is None else np.asarray(theta0, dtype=np.float64)
    n_iter, message, kkt = 0, "", float("inf")
    for ftol, gtol in stages:
        try:
            theta, res = _lbfgsb(problem, smooth, theta, ftol=ftol, gtol=gtol,
                                 max_iter=max(max_iter - n_iter, 1))
        except _EmptyPolytope as stop:
            return SolverResult(
                theta=stop.theta,
                objective=stop.value,
                status="infeasible",
                n_iter=-1,
                message="dual objective < 0: the constraint polytope is empty",
                kkt=float("nan"),
            )
        n_iter += int(res.nit)
        message = f"L-BFGS-B: {res.message}"
        if polish:
            theta, steps = newton_polish(problem, theta, smooth)
            n_iter += steps
            message += f"; {steps} Newton steps"
        kkt = kkt_violation(problem, theta, smooth)
        if kkt <= 1e-3 * target:
            break
    status = "optimal" if kkt <= target else "inaccurate"
    f, _ = smooth(theta)
    e = problem.e / problem.n_items
    objective = f + float(e @ np.abs(theta))
    return SolverResult(
        theta=theta,
        objective=objective,
        status=status,
        n_iter=n_iter,
        message=message,
        kkt=kkt,
    )


def _lbfgsb(problem: DualProblem, smooth: Oracle, theta0: np.ndarray | None, *, ftol: float,
            gtol: float, max_iter: int):
    """One L-BFGS-B run on the split variable; returns ``(theta, OptimizeResult)``."""
    d = problem.dim
    e = problem.e / problem.n_items
    pen = np.flatnonzero(e > 0)
    free = e <= 0
    e_pen = e[pen]

    def unpack(x: np.ndarray) -> np.ndarray:
        theta = x[:d].copy()
        theta[pen] -= x[d:]
        return theta

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        theta = unpack(x)
        f, g = smooth(theta)
        val = f + float(e_pen @ (x[:d][pen] + x[d:]))
        if val < -1e-6:
            # weak duality: F(theta) >= max entropy >= 0 whenever the polytope is non-empty,
            # so a negative value proves it empty (the dual is unbounded below): stop now.
            raise _EmptyPolytope(theta, val)
        gx = np.empty_like(x)
        gx[:d] = g
        gx[:d][pen] += e_pen
        gx[d:] = e_pen - g[pen]
        return val, gx

    x0 = np.zeros(d + pen.shape[0])
    if theta0 is not None:
        x0[:d] = np.where(free, theta0, np.maximum(theta0, 0.0))
        x0[d:] = np.maximum(-theta0[pen], 0.0)
    lower = np.where(free, -np.inf, 0.0)
    bounds = Bounds(np.concatenate([lower, np.zeros(pen.shape[0])]), np.inf)
    res = minimize(
        fun,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": max_iter, "maxcor": 30, "ftol": ftol, "gtol": gtol, "maxls": 50},
    )
    return unpack(res.x), res


def kkt_violation(problem: DualProblem, theta: np.ndarray, smooth: Oracle) -> float:
    """Largest violation of the subgradient optimality condition ``0 in grad f + (e/N) d|.|``."""
    e = problem.e / problem.n_items
    _, g = smooth(theta)
    return _kkt(theta, g, e)


def _kkt(theta: np.ndarray, g: np.ndarray, e: np.ndarray) -> float:
    on = (theta != 0) | (e <= 0)
    viol = np.where(on, np.abs(g + e * np.sign(theta)), np.maximum(np.abs(g) - e, 0.0))
    return float(viol.max()) if viol.size else 0.0


def newton_polish(
    problem: DualProblem, theta: np.ndarray, smooth: Oracle, n_steps: int = 30
) -> tuple[np.ndarray, int]:
    """Active-set (orthant-wise) Newton method on the weighted-L1 dual, from ``theta``.

    On an orthant (fixed signs ``sigma``) the objective ``f(theta) + (e/N)^T |theta|`` is
    the smooth ``f(theta) + (e/N)^T (sigma * theta)``. Each step takes the free weights, the
    non-zero weights and the zero weights whose optimality condition ``|grad_f| <= e_f/N``
    is violated (entering with sign ``-sign(grad_f)``), solves the Newton system on them
    with the exact ``|A| x |A|`` Hessian (:meth:`DualProblem.hessian`; ``d`` is small), and
    projects the step back onto the orthant — a weight that would change sign is set to
    zero (as in OWL-QN, Andrew & Gao 2007). A backtracking line search accepts the first
    step length that lowers the objective, or — at the level of rounding, where objective
    differences are noise — that keeps it and lowers the KKT violation. Stops at a KKT
    violation ``<= 1e-13`` or when no step helps. Returns ``(theta, n_steps_taken)``.
    """
    e = problem.e / problem.n_items
    free = e <= 0
    theta = np.asarray(theta, dtype=np.float64).copy()

    def full(t: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = smooth(t)
        return f + float(e @ np.abs(t)), g

    best, g = full(theta)
    viol = _kkt(theta, g, e)
    steps = 0
    for _ in range(n_steps):
        if viol <= 1e-13:
            break
        sgn = np.sign(theta)
        enter = (theta == 0) & ~free & (np.abs(g) > e)
        sgn[enter] = -np.sign(g[enter])
        idx = np.flatnonzero((sgn != 0) | free)
        if idx.size == 0:
            break
        g_act = g[idx] + e[idx] * sgn[idx]
        H = problem.hessian(theta, idx)
        H[np.diag_indices_from(H)] += 1e-12 * max(1.0, float(np.abs(np.diag(H)).max()))
        try:
            step = np.linalg.solve(H, g_act)
        except np.linalg.LinAlgError:
            break
        tiny = 8 * np.finfo(float).eps * max(1.0, abs(best))
        accepted = False
        for scale in (1.0, 0.5, 0.25, 0.1, 0.01):
            cand = theta.copy()
            cand[idx] -= scale * step
            crossed = ~free & (sgn != 0) & (np.sign(cand) != sgn)
            cand[crossed] = 0.0
            val, g_cand = full(cand)
            v_cand = _kkt(cand, g_cand, e)
            if val < best - tiny or (val <= best + tiny and v_cand < viol):
                theta, best, g, viol = cand, val, g_cand, v_cand
                accepted = True
                break
        if not accepted:
            break
        steps += 1
    return theta, steps
