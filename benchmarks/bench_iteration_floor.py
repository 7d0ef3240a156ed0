"""Every iterative aggregator against the memory-bandwidth floor: time per iteration / time
of one read pass over the votes.

Synthetic Dawid-Skene votes (``make_dawid_skene(n, 20, k, coverage=0.5, accuracy=(0.55,
0.75))``, seed 0, k = 2; ``--n`` items, default 2e5, i.e. about 2e6 votes). The *read
pass* is one streaming read of the votes as the Dawid-Skene design matrix stores them:
int32 column indices and float64 values, 12 bytes a vote (``np.add.reduce`` of the values,
``np.bitwise_or.reduce`` of the indices; median of 7). An aggregator's *time per
iteration* is measured from two fits that differ only in ``max_iter`` (``tol=0`` where it
has one, so that both run to ``max_iter``): ``(min t(max_iter=b) - min t(max_iter=a)) /
(n_iter_b - n_iter_a)``, minima over ``--repeats`` (3) fits each, so the fixed costs
(conversion, initialisation, source checks, posteriors) cancel; ``b - a`` is chosen from a
probe so that the extra iterations take about ``--budget`` seconds (1.5). A difference
below the fixed costs' jitter is reported as such. The ratio is the number of read passes
one iteration costs; EM's floor is about 2 (the E-step and the M-step each read every vote
once).

Every registered aggregator with a ``max_iter`` parameter is timed (the non-iterative ones,
and ``auto``, which fits others, are listed as such). ``adversarial`` iterates over the
distinct vote patterns (its grouping is a single pass, outside the iteration), not over the
votes, and gets the last ``n/20`` items' true labels; ``matrix-completion`` and ``mmsr``
iterate over moment / covariance matrices built in one pass. All pinned to one thread; ``load_1m``
is the 1-minute load average at the start of each row.

Usage::

    nice python benchmarks/bench_iteration_floor.py [--n 2e5] [--k 2] [--budget 1.5]
        [--methods dawid-skene bcc ...] [--repeats 3] [--smoke] [--out-dir DIR]

Results: ``results/iteration_floor.{json,csv}``.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import inspect  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import print_table, save_results  # noqa: E402
from wsagg._registry import AGGREGATORS  # noqa: E402
from wsagg.aggregation.dawid_skene.em import one_hot  # noqa: E402
from wsagg.datasets import make_dawid_skene  # noqa: E402

_EXTRA = {"DawidSkene": {"n_jobs": 1}}  # pinned to one thread like everything else
# iterations that do not read the votes (they run on statistics computed in one pass)
_NOT_OVER_VOTES = {
    "adversarial": "iterations over the distinct vote patterns (grouped in one pass), "
                   "labels for n/20 items",
    "matrix-completion": "iterations over the (m k)^2 moment matrix (one pass to build it)",
    "mmsr": "iterations over the m x m worker covariance (one pass to build it)",
}


def read_pass_s(X, repeats: int = 7) -> float:
    """Median time of one streaming read of the design's int32 indices and values."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.add.reduce(X.data)
        np.bitwise_or.reduce(X.indices)
        out.append(time.perf_counter() - t0)
    return float(np.median(out))


def _fit(cls, params: dict, L, y):
    est = cls(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        est.fit(L, y)
        return time.perf_counter() - t0, est


def time_per_iteration(cls, L, y, a: int, budget_s: float, repeats: int,
                       max_steps: int) -> dict:
    """``(min t_b - min t_a) / (n_iter_b - n_iter_a)``: the minimum over the repeats of
    each fit's time (the least disturbed by other processes), ``b - a`` chosen from a probe
    so that the extra iterations take about ``budget_s``."""
    params = inspect.signature(cls.__init__).parameters
    base = {k: v for k, v in _EXTRA.get(cls.__name__, {}).items() if k in params}
    if "tol" in params:
        base["tol"] = 0.0
    ta, ea = _fit(cls, {**base, "max_iter": a}, L, y)
    tb, eb = _fit(cls, {**base, "max_iter": a + 10}, L, y)
    probe = max((tb - ta) / max(int(getattr(eb, "n_iter_", a + 10)) - a, 1), 1e-4)
    b = a + int(np.clip(budget_s / probe, 10, max_steps))
    times_a, times_b = [], []
    for _ in range(repeats):
        ta, ea = _fit(cls, {**base, "max_iter": a}, L, y)
        tb, eb = _fit(cls, {**base, "max_iter": b}, L, y)
        times_a.append(ta)
        times_b.append(tb)
    na = int(getattr(ea, "n_iter_", a))
    nb = int(getattr(eb, "n_iter_", b))
    per = (min(times_b) - min(times_a)) / (nb - na) if nb > na else float("nan")
    return {"iter_s": per, "n_iter_a": na, "n_iter_b": nb, "fit_s_at_b": float(min(times_b))}


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=float, default=2e5)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--budget", type=float, default=1.5,
                    help="seconds the extra iterations should take (sets b - a)")
    ap.add_argument("--max-steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", nargs="*", default=None)
    ap.add_argument("--smoke", action="store_true", help="n = 2000, 1 repeat")
    ap.add_argument("--out-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    n = 2_000 if args.smoke else int(args.n)
    repeats = 1 if args.smoke else args.repeats
    # moderately accurate sources, so that the iterative models do not stop early
    data = make_dawid_skene(n, 20, args.k, coverage=0.5, accuracy=(0.55, 0.75),
                            random_state=0)
    L = data.L
    X = one_hot(L)
    t_read = read_pass_s(X)
    n_labeled = max(n // 20, 50)
    y_lab = np.full(n, -1)
    y_lab[-n_labeled:] = data.y[-n_labeled:]
    rows = []
    for name, spec in AGGREGATORS.items():
        if args.methods and name not in args.methods:
            continue
        row = {"method": name, "n": n, "k": args.k, "votes": L.n_votes,
               "read_pass_s": t_read, "load_1m": round(os.getloadavg()[0], 2)}
        cls = spec.load()
        params = inspect.signature(cls.__init__).parameters
        if name == "auto" or "max_iter" not in params:
            row["note"] = "not iterative" if name != "auto" else "fits other aggregators"
            rows.append(row)
            continue
        if spec.binary_only and args.k != 2:
            row["note"] = "binary only"
            rows.append(row)
            continue
        y = y_lab if spec.needs_labels else None
        low = 2 if name != "adversarial" else 5
        res = time_per_iteration(cls, L, y, low, 0.05 if args.smoke else args.budget,
                                 repeats, args.max_steps)
        row.update(res)
        notes = [_NOT_OVER_VOTES[name]] if name in _NOT_OVER_VOTES else []
        if res["iter_s"] > 0:
            row["ratio_iter_over_read_pass"] = res["iter_s"] / t_read
        else:  # the extra iterations cost less than the fixed costs vary between fits
            row["iter_s"] = float("nan")
            notes.append("per-iteration cost below the timing noise")
        if notes:
            row["note"] = "; ".join(notes)
        rows.append(row)
        print(row, file=sys.stderr)
    print_table(rows)
    save_results("iteration_floor" + ("_smoke" if args.smoke else ""), rows,
                 out_dir=args.out_dir, packages=("numpy", "scipy", "sklearn"))
    return rows


if __name__ == "__main__":
    main()
