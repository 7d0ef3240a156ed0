"""Reference solver of the adversarial log-loss dual with cvxpy (exponential-cone program).

Solves exactly the problem of :class:`~wsagg.aggregation.adversarial.constraints.DualProblem`, in
per-item units (multiplicities divided by ``N``; in count units Clarabel reports numerical
errors on some of An & Dasgupta's data sets), as a disciplined convex program:
``c/N . log_sum_exp(S, axis=1) - theta.s/N + (e/N).|theta|``. The solver's status is
checked: ``optimal`` is accepted, ``optimal_inaccurate`` gives a warning, anything else an
error naming the solver.
"""

from __future__ import annotations

import warnings

import numpy as np

from wsagg._optional import import_optional
from wsagg._validation import warn
from wsagg.aggregation.adversarial.constraints import DualProblem, SolverResult

__all__ = ["check_status", "solve_cvxpy"]


def check_status(status: str, solver: str) -> str:
    """Map a cvxpy status to ``"optimal"`` / ``"inaccurate"`` (with a warning) or raise."""
    if status == "optimal":
        return "optimal"
    if status == "optimal_inaccurate":
        warn(
            f"cvxpy solver {solver} returned 'optimal_inaccurate' for the adversarial dual; "
            "the weights may be imprecise. Try solver='scipy' or another cvxpy_solver.",
            RuntimeWarning)
        return "inaccurate"
    hint = (
        " An unbounded dual means the constraint polytope is empty: use "
        "on_infeasible='widen' or more labeled data."
        if "unbounded" in str(status)
        else ""
    )
    raise RuntimeError(
        f"cvxpy solver {solver} failed on the adversarial dual with status {status!r}.{hint}"
    )


def solve_cvxpy(
    problem: DualProblem, *, solver: str = "CLARABEL", verbose: bool = False
) -> SolverResult:
    """Solve the dual with cvxpy; returns ``theta``, ``objective``, ``status``."""
    cp = import_optional("cvxpy", "solver='cvxpy'", alternative="or use solver='scipy'")

    N = problem.n_items
    U, k, d = problem.n_patterns, problem.k, problem.dim
    theta = cp.Variable(d)
    if problem.has_bias:
        gamma, tw = theta[:k], theta[k:]
    else:
        gamma, tw = None, theta
    W = cp.reshape(problem.B @ tw, (problem.B.shape[0] // k, k), order="C")
    S = problem.V @ W
    if gamma is not None:
        S = S + np.ones((U, 1)) @ cp.reshape(gamma, (1, k), order="C")
    obj = (
        (problem.counts / N) @ cp.log_sum_exp(S, axis=1)
        - (problem.s / N) @ theta
        + (problem.e / N) @ cp.abs(theta)
    )
    prob = cp.Problem(cp.Minimize(obj))
    try:
        with warnings.catch_warnings():
            # cvxpy's generic "Solution may be inaccurate" UserWarning duplicates the
            # RuntimeWarning that check_status issues (naming the solver) for that status
            warnings.filterwarnings("ignore", message="Solution may be inaccurate",
                                    category=UserWarning)
            prob.solve(solver=solver, verbose=verbose)
    except cp.error.SolverError as err:
        raise RuntimeError(f"cvxpy solver {solver} failed on the adversarial dual: {err}") from err
    status = check_status(prob.status, solver)
    th = np.asarray(theta.value, dtype=np.float64)
    return SolverResult(
        theta=th,
        objective=problem.objective(th),
        status=status,
        n_iter=int(prob.solver_stats.num_iters or 0),
        message=f"cvxpy/{solver}: {prob.status}",
    )
