"""Speed of the adversarial dual solvers: scipy (L-BFGS-B on the split variable, then
active-set Newton) vs the cvxpy/Clarabel reference, the torch oracle (CPU here; CUDA when
lent), and the full ``fit`` (grouping + solve + feasibility certificate).

Synthetic Dawid-Skene votes, m = 20 sources with coverage 0.2, k = 2 and k = 10, n = 1e4,
1e5, 1e6 target items, 1,000 labeled items. All solvers get the *same* grouped dual problem
(a fresh copy each time, so the scipy/torch times include building their design matrix);
``fit_s`` is the whole default ``AdversarialLogLoss(n_classes=k).fit(L, y)``. Each timing is
the median of ``--repeats`` runs, the methods interleaved within each repeat (the machine
is shared); a method whose single run exceeds ``--max-repeat-s`` is not repeated (its
``*_runs`` column says how many runs the median is over). Target of the issue: scipy at
least 50x faster than cvxpy at n = 1e5.

    python benchmarks/bench_adversarial_speed.py [--sizes 1e4 1e5 1e6] [--cvxpy-max-n 1e5]
        [--repeats 3] [--max-repeat-s 120] [--device cpu] [--smoke] [--out-dir DIR]
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
from wsagg.aggregation.adversarial import AdversarialLogLoss
from wsagg.datasets import make_dawid_skene


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def run(sizes, ks, m, cvxpy_max_n, device, torch_on, repeats=3, max_repeat_s=120.0, seed=0):
    from wsagg.aggregation.adversarial.solvers.cvxpy import solve_cvxpy
    from wsagg.aggregation.adversarial.solvers.scipy import solve_lbfgsb

    rows = []
    for k in ks:
        for n in sizes:
            d = make_dawid_skene(n + 1000, m, k, coverage=0.2, accuracy=(0.4, 0.8),
                                 random_state=seed)
            L = d.L
            y = np.full(n + 1000, -1)
            y[n:] = d.y[n:]
            methods = {
                "fit": lambda L=L, y=y, k=k: AdversarialLogLoss(n_classes=k).fit(L, y),
            }
            est = methods["fit"]()
            prob = est.dual_problem_
            methods["scipy"] = lambda prob=prob: solve_lbfgsb(prob.without_cache())
            if n <= cvxpy_max_n:
                methods["cvxpy"] = lambda prob=prob: solve_cvxpy(prob.without_cache())
            if torch_on:
                from wsagg.aggregation.adversarial.solvers.torch import solve_torch

                methods["torch"] = lambda prob=prob: solve_torch(prob.without_cache(),
                                                                 device=device)
            times = {name: [] for name in methods}
            outs = {}
            for _ in range(repeats):
                for name, fn in methods.items():
                    if times[name] and max(times[name]) > max_repeat_s:
                        continue
                    t, outs[name] = _timed(fn)
                    times[name].append(t)
            med = {name: float(np.median(ts)) for name, ts in times.items()}
            row = {"k": k, "n": n, "patterns": prob.n_patterns, "d": prob.dim,
                   "fit_s": med["fit"], "fit_check": est.feasibility_check_,
                   "scipy_s": med["scipy"]}
            sc = outs["scipy"]
            row["scipy_status"] = sc.status
            row["scipy_iter"] = sc.n_iter
            row["scipy_obj"] = sc.objective
            if "cvxpy" in outs:
                cv = outs["cvxpy"]
                row["cvxpy_s"] = med["cvxpy"]
                row["cvxpy_runs"] = len(times["cvxpy"])
                row["cvxpy_status"] = cv.status
                row["obj_diff"] = abs(sc.objective - cv.objective)
                row["max_prob_diff"] = float(np.abs(prob.proba(sc.theta)
                                                    - prob.proba(cv.theta)).max())
                row["speedup"] = row["cvxpy_s"] / row["scipy_s"]
            if "torch" in outs:
                row[f"torch_{device}_s"] = med["torch"]
                row["torch_obj_diff"] = abs(outs["torch"].objective - sc.objective)
            rows.append(row)
            print_table([row], floatfmt=".4g")
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[1e4, 1e5, 1e6])
    ap.add_argument("--ks", type=int, nargs="+", default=[2, 10])
    ap.add_argument("--m", type=int, default=20)
    ap.add_argument("--cvxpy-max-n", type=float, default=1e5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-repeat-s", type=float, default=120.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    sizes = [2000] if args.smoke else [int(s) for s in args.sizes]
    ks = [2, 3] if args.smoke else args.ks
    m = 5 if args.smoke else args.m
    repeats = 1 if args.smoke else args.repeats
    rows = run(sizes, ks, m, args.cvxpy_max_n, args.device, not args.no_torch,
               repeats=repeats, max_repeat_s=args.max_repeat_s)
    print("\nall rows:")
    print_table(rows, floatfmt=".4g")
    tag = "_smoke" if args.smoke else ""
    save_results("adversarial_speed" + tag, rows, out_dir=args.out_dir,
                 packages=("numpy", "scipy", "cvxpy", "torch"))
    return rows


if __name__ == "__main__":
    main()
