"""The GPU checks that issues 3 and 4 ask for, as one short prepared script.

Run it on a machine with CUDA when one is lent (the suite never needs one):

    python benchmarks/bench_gpu.py                   # device cuda, n = 1e7 for Dawid-Skene
    python benchmarks/bench_gpu.py --device cpu --smoke   # what the tests run

1. ``DawidSkene`` at n items (default 1e7), m = 20, k = 2, coverage 0.5 (about 1e8 votes):
   fit + posteriors with ``device="numpy"`` (scipy.sparse, CPU, ``n_jobs`` threads: all
   the CPUs) and ``device=<device>`` (torch), in float64 and float32 (``dtype=``), their
   times, the speed-ups, and the largest posterior differences to the numpy float64 fit
   (targets 1e-6 for float64, 1e-5 for float32 at the same iterations: the float32 fits
   run ``max_iter`` iterations with ``tol=0``, as does the float64 reference for them).
2. ``AdversarialLogLoss`` at n = 1e5, m = 20, k = 2 and 10: ``solver="scipy"`` vs
   ``solver="torch", device=<device>``: times and the objective difference.

Prints a table and saves ``results/gpu_check.{json,csv}`` (card name, sizes, times).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import print_table, save_results
from wsagg import AdversarialLogLoss, DawidSkene
from wsagg.datasets import make_dawid_skene


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _card(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return "cpu"


def dawid_skene_rows(n: int, device: str, fixed_iter: int = 10) -> list[dict]:
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    data = make_dawid_skene(n, 20, 2, coverage=0.5, random_state=0)
    times, probas = {}, {}
    runs = [("numpy", "numpy", np.float64, {}), ("torch", device, np.float64, {}),
            ("torch", device, np.float64, {}),  # the second torch run is the timed one
            ("numpy_fixed", "numpy", np.float64, {"tol": 0.0, "max_iter": fixed_iter}),
            ("numpy_f32", "numpy", np.float32, {"tol": 0.0, "max_iter": fixed_iter}),
            ("torch_f32", device, np.float32, {"tol": 0.0, "max_iter": fixed_iter})]
    for key, dev, dtype, kw in runs:
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est = DawidSkene(device=dev, dtype=dtype, n_jobs=-1, random_state=0, **kw)
            probas[key] = est.fit_predict_proba(data.L)
        if dev != "numpy":
            _sync(device)
        times[key] = time.perf_counter() - t

    def diff(a: str, b: str) -> float:
        return float(np.abs(probas[a] - probas[b]).max())

    return [{
        "part": "dawid_skene", "n": n, "votes": data.L.n_votes, "device": device,
        "card": _card(device), "numpy_s": times["numpy"], "torch_s": times["torch"],
        "speedup": times["numpy"] / times["torch"],
        "max_posterior_diff": diff("numpy", "torch"),
        "fixed_iter": fixed_iter, "numpy_fixed_s": times["numpy_fixed"],
        "numpy_f32_s": times["numpy_f32"], "torch_f32_s": times["torch_f32"],
        "max_posterior_diff_numpy_f32": diff("numpy_fixed", "numpy_f32"),
        "max_posterior_diff_torch_f32": diff("numpy_fixed", "torch_f32"),
    }]


def adversarial_rows(n: int, device: str) -> list[dict]:
    rows = []
    for k in (2, 10):
        data = make_dawid_skene(n + 500, 20, k, coverage=0.5, random_state=k)
        y = np.full(n + 500, -1)
        y[n:] = data.y[n:]
        fitted, times = {}, {}
        for solver in ("scipy", "torch", "torch"):
            t = time.perf_counter()
            fitted[solver] = AdversarialLogLoss(solver=solver, device=device).fit(data.L, y)
            times[solver] = time.perf_counter() - t
        rows.append({
            "part": "adversarial", "n": n, "k": k, "device": device, "card": _card(device),
            "scipy_s": times["scipy"], "torch_s": times["torch"],
            "objective_diff": abs(fitted["scipy"].game_value_ - fitted["torch"].game_value_),
        })
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--n", type=float, default=1e7, help="items for Dawid-Skene")
    parser.add_argument("--n-adversarial", type=float, default=1e5)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (the test)")
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    n_ds = 2_000 if args.smoke else int(args.n)
    n_bf = 1_000 if args.smoke else int(args.n_adversarial)
    rows = dawid_skene_rows(n_ds, args.device) + adversarial_rows(n_bf, args.device)
    print_table(rows)
    save_results("gpu_check" + ("_smoke" if args.smoke else ""), rows, out_dir=args.out_dir,
                 packages=("numpy", "scipy", "torch"))
    return rows


if __name__ == "__main__":
    main()
