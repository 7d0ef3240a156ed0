"""The GPU checks that issues 3 and 4 ask for, as one short prepared script.

Run it on a machine with CUDA when one is lent (the suite never needs one):

    python benchmarks/bench_gpu.py                   # device cuda, n = 1e7 for Dawid-Skene
    python benchmarks/bench_gpu.py --device cpu --smoke   # what the tests run

1. ``DawidSkene`` at n items (default 1e7), m = 20, k = 2, coverage 0.5 (about 1e8 votes):
   fit + posteriors with ``device="numpy"`` (scipy.sparse, CPU) and ``device=<device>``
   (torch), their times, the speed-up, and the largest posterior difference (target
   1e-6).
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


def dawid_skene_rows(n: int, device: str) -> list[dict]:
    data = make_dawid_skene(n, 20, 2, coverage=0.5, random_state=0)
    times, probas = {}, {}
    for dev in ("numpy", device, device):  # the second torch run is the timed one (warm)
        t = time.perf_counter()
        probas[dev] = DawidSkene(device=dev, random_state=0).fit_predict_proba(data.L)
        if dev != "numpy":
            _sync(device)
        times[dev] = time.perf_counter() - t
    return [{
        "part": "dawid_skene", "n": n, "votes": data.L.n_votes, "device": device,
        "card": _card(device), "numpy_s": times["numpy"], "torch_s": times[device],
        "speedup": times["numpy"] / times[device],
        "max_posterior_diff": float(np.abs(probas["numpy"] - probas[device]).max()),
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
