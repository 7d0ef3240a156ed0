"""Speed of the adversarial dual solvers: scipy (L-BFGS-B on the split variable + Newton
polish) vs the cvxpy/Clarabel reference, and the torch oracle (CPU here; CUDA when lent).

Synthetic Dawid-Skene votes, m = 20 sources with coverage 0.2, k = 2 and k = 10, n = 1e4,
1e5, 1e6 target items, 1,000 labeled items; all solvers get the *same* grouped dual problem
(so the times exclude the shared grouping, which is reported separately). Target of the
issue: scipy at least 50x faster than cvxpy at n = 1e5.

    python benchmarks/bench_adversarial_speed.py [--sizes 1e4 1e5 1e6] [--cvxpy-max-n 1e5]
        [--device cpu] [--smoke] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import print_table, save_results
from wsagg.adversarial import AdversarialLogLoss
from wsagg.datasets import make_dawid_skene


def run(sizes, ks, m, cvxpy_max_n, device, torch_on, seed=0):
    from wsagg._adversarial_cvxpy import solve_cvxpy
    from wsagg._adversarial_scipy import solve_lbfgsb

    rows = []
    for k in ks:
        for n in sizes:
            d = make_dawid_skene(n + 1000, m, k, coverage=0.2, accuracy=(0.4, 0.8),
                                 random_state=seed)
            L = d.L
            y = np.full(n + 1000, -1)
            y[n:] = d.y[n:]
            t0 = time.perf_counter()
            est = AdversarialLogLoss(n_classes=k, check_feasibility=False).fit(L, y)
            t_fit = time.perf_counter() - t0
            prob = est.dual_problem_
            row = {"k": k, "n": n, "patterns": prob.n_patterns, "d": prob.dim,
                   "fit_scipy_s": t_fit}
            t0 = time.perf_counter()
            sc = solve_lbfgsb(prob)
            row["scipy_s"] = time.perf_counter() - t0
            row["scipy_status"] = sc["status"]
            row["scipy_obj"] = sc["objective"]
            if n <= cvxpy_max_n:
                t0 = time.perf_counter()
                cv = solve_cvxpy(prob)
                row["cvxpy_s"] = time.perf_counter() - t0
                row["cvxpy_status"] = cv["status"]
                row["obj_diff"] = abs(sc["objective"] - cv["objective"])
                row["max_prob_diff"] = float(np.abs(prob.proba(sc["theta"])
                                                    - prob.proba(cv["theta"])).max())
                row["speedup"] = row["cvxpy_s"] / row["scipy_s"]
            if torch_on:
                from wsagg._adversarial_torch import solve_torch

                t0 = time.perf_counter()
                to = solve_torch(prob, device=device)
                row[f"torch_{device}_s"] = time.perf_counter() - t0
                row["torch_obj_diff"] = abs(to["objective"] - sc["objective"])
            rows.append(row)
            print_table([row], floatfmt=".4g")
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[1e4, 1e5, 1e6])
    ap.add_argument("--ks", type=int, nargs="+", default=[2, 10])
    ap.add_argument("--m", type=int, default=20)
    ap.add_argument("--cvxpy-max-n", type=float, default=1e5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    sizes = [2000] if args.smoke else [int(s) for s in args.sizes]
    ks = [2, 3] if args.smoke else args.ks
    m = 5 if args.smoke else args.m
    rows = run(sizes, ks, m, args.cvxpy_max_n, args.device, not args.no_torch)
    print("\nall rows:")
    print_table(rows, floatfmt=".4g")
    tag = "_smoke" if args.smoke else ""
    save_results("adversarial_speed" + tag, rows, out_dir=args.out_dir,
                 packages=("numpy", "scipy", "cvxpy", "torch"))
    return rows


if __name__ == "__main__":
    main()
