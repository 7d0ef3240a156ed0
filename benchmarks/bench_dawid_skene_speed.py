"""Speed and scale of wsagg DawidSkene, with crowd-kit and Snorkel side by side.

Parts (all on the synthetic Dawid-Skene generator, k = 2, m = 20, coverage 0.5 unless said):

1. ``peers``: fit + posteriors at n = 300k and 1M: wsagg (fully converged, default tol,
   timed from the same long DataFrame crowd-kit gets), crowd-kit ``DawidSkene`` (defaults),
   Snorkel ``LabelModel`` (defaults, dense input). Everything pinned to one thread
   (OMP/MKL/OPENBLAS_NUM_THREADS=1, ``torch.set_num_threads(1)``); the three run
   interleaved, 3 repeats, medians reported (all times in ``all_times_s``). Each peer is
   compared from the input it takes: crowd-kit from the long DataFrame (``wsagg_s``),
   Snorkel from the dense matrix (``wsagg_dense_s``).
2. ``iteration``: time of one EM iteration vs the two sparse products alone (ratio).
3. ``scaling``: time per iteration and per fit from 1e5 to 1e7 votes; log-log slope.
4. ``huge``: n = 1e7 items (about 1e8 votes) with peak resident memory.
5. ``manyclass``: k = 100, m = 200; Snorkel's dense LabelModel tried in a subprocess with a
   6 GiB address-space limit and a time limit.

Usage::

    python benchmarks/bench_dawid_skene_speed.py [--smoke] [--out-dir DIR]
        [--parts peers iteration scaling huge manyclass]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import print_table, save_figure, save_results  # noqa: E402
from wsagg import DawidSkene  # noqa: E402
from wsagg.aggregation.dawid_skene.backends.numpy import NumpyBackend  # noqa: E402
from wsagg.datasets import make_dawid_skene  # noqa: E402


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _fresh(L):
    L._cache.clear()  # so that building the one-hot matrix is timed too
    return L


def part_peers(sizes, rows, peers=True, repeats=3):
    """Interleaved: each repeat times wsagg, crowd-kit and Snorkel in turn on the same data
    (so that load from other processes hits all of them alike); medians are reported."""
    for n in sizes:
        d = make_dawid_skene(n, 20, 2, coverage=0.5, random_state=0)
        df = d.L.to_long().rename(columns={"item": "task", "source": "worker"})
        y_df = d.y[np.asarray(ds_items(df))]
        has_ck = peers and _has("crowdkit")
        has_sn = peers and _has("snorkel")
        dense = d.L.to_dense()
        times: dict[str, list[float]] = {
            "wsagg": [], "wsagg_dense": [], "crowdkit": [], "snorkel": []
        }
        row = {"part": "peers", "n": n, "votes": d.L.n_votes}
        for _ in range(repeats):
            t0 = time.perf_counter()
            ds = DawidSkene()
            p = ds.fit_predict_proba(df)
            times["wsagg"].append(time.perf_counter() - t0)
            row["wsagg_iter"] = ds.n_iter_
            row["wsagg_converged"] = ds.converged_
            row["wsagg_acc"] = float(np.mean(np.argmax(p, 1) == y_df))
            # from the dense (n, m) matrix, the input Snorkel gets
            t0 = time.perf_counter()
            DawidSkene().fit_predict_proba(dense)
            times["wsagg_dense"].append(time.perf_counter() - t0)
            if has_ck:
                from crowdkit.aggregation import DawidSkene as CK

                t0 = time.perf_counter()
                ck = CK()
                pr = ck.fit_predict_proba(df)
                times["crowdkit"].append(time.perf_counter() - t0)
                row["crowdkit_iter"] = len(ck.loss_history_)
                pred = pr.reindex(columns=[0, 1]).fillna(0).to_numpy().argmax(1)
                row["crowdkit_acc"] = float(np.mean(pred == d.y[pr.index.to_numpy()]))
            if has_sn:
                import torch
                from snorkel.labeling.model import LabelModel

                torch.set_num_threads(1)
                t0 = time.perf_counter()
                lm = LabelModel(cardinality=2, verbose=False)
                lm.fit(dense, seed=0, progress_bar=False)
                ps = lm.predict_proba(dense)
                times["snorkel"].append(time.perf_counter() - t0)
                row["snorkel_acc"] = float(np.mean(ps.argmax(1) == d.y))
        row["wsagg_s"] = float(np.median(times["wsagg"]))
        row["wsagg_dense_s"] = float(np.median(times["wsagg_dense"]))
        # each peer against wsagg on the same input: crowd-kit the long DataFrame, Snorkel
        # the dense matrix
        for peer, ours in (("crowdkit", "wsagg_s"), ("snorkel", "wsagg_dense_s")):
            if times[peer]:
                row[f"{peer}_s"] = float(np.median(times[peer]))
                row[f"speedup_vs_{peer}"] = row[f"{peer}_s"] / row[ours]
        row["repeats"] = repeats
        row["all_times_s"] = "; ".join(
            f"{k} " + "/".join(f"{t:.2f}" for t in v) for k, v in times.items() if v
        )
        rows.append(row)
        print(row, file=sys.stderr)


def ds_items(df):
    import pandas as pd

    return pd.factorize(df["task"], sort=False)[1]


def _has(mod: str) -> bool:
    try:
        __import__(mod)
        return True
    except ImportError:
        return False


def _time_iteration(L, repeats=5):
    """Median time of one EM iteration (M-step + E-step with its statistics, exactly the
    estimator's loop body) and of the two sparse products ``V @ T`` and ``V.T @ q`` alone."""
    from wsagg.aggregation.dawid_skene.em import (
        build_design,
        initial_posterior,
        log_parameter_table,
        m_step,
    )

    ds = DawidSkene(max_iter=0).fit(L)
    hp = ds._hyper(L.n_classes)
    hp["abstain"] = ds.abstain_
    design = build_design(L, ds.abstain_)
    backend = NumpyBackend(design.X)
    q0 = initial_posterior(L, None)
    stats, q_sum = backend.stats(q0), backend.sum_rows(q0)
    V = design.X
    T = np.zeros((V.shape[1], L.n_classes))
    t_prod, t_iter = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        params = m_step(stats, q_sum, design, hp)
        table, offset = log_parameter_table(params, design)
        _, stats, q_sum = backend.e_step(table, offset)
        t_iter.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _ = V @ T
        _ = V.T @ q0
        t_prod.append(time.perf_counter() - t0)
    return float(np.median(t_iter)), float(np.median(t_prod))


def part_iteration(n, rows):
    d = make_dawid_skene(n, 20, 2, coverage=0.5, random_state=0)
    t_iter, t_prod = _time_iteration(d.L, repeats=7)
    rows.append(
        {
            "part": "iteration",
            "n": n,
            "votes": d.L.n_votes,
            "iter_s": t_iter,
            "two_products_s": t_prod,
            "ratio_iter_over_products": t_iter / t_prod,
        }
    )
    print(rows[-1], file=sys.stderr)


def part_scaling(ns, rows):
    out = []
    for n in ns:
        d = make_dawid_skene(n, 20, 2, coverage=0.5, random_state=0)
        t0 = time.perf_counter()
        ds = DawidSkene().fit(_fresh(d.L))
        t_fit = time.perf_counter() - t0
        t_iter, t_prod = _time_iteration(d.L)
        r = {
            "part": "scaling",
            "n": n,
            "votes": d.L.n_votes,
            "fit_s": t_fit,
            "n_iter": ds.n_iter_,
            "iter_s": t_iter,
            "two_products_s": t_prod,
        }
        out.append(r)
        rows.append(r)
        print(r, file=sys.stderr)
    v = np.log([r["votes"] for r in out])
    slope_iter = float(np.polyfit(v, np.log([r["iter_s"] for r in out]), 1)[0])
    slope_fit_per_iter = float(
        np.polyfit(v, np.log([r["fit_s"] / (r["n_iter"] + 1) for r in out]), 1)[0]
    )
    rows.append(
        {
            "part": "scaling-slope",
            "slope_iter": slope_iter,
            "slope_fit_per_iter": slope_fit_per_iter,
        }
    )
    return out


def part_huge(n, rows):
    rss0 = peak_rss_gib()
    t0 = time.perf_counter()
    d = make_dawid_skene(n, 20, 2, coverage=0.5, random_state=0)
    t_gen = time.perf_counter() - t0
    rss_gen = peak_rss_gib()
    t0 = time.perf_counter()
    ds = DawidSkene().fit(d.L)
    p = ds.predict_proba(d.L)
    t_fit = time.perf_counter() - t0
    rows.append(
        {
            "part": "huge",
            "n": n,
            "votes": d.L.n_votes,
            "generate_s": t_gen,
            "fit_predict_s": t_fit,
            "n_iter": ds.n_iter_,
            "acc": float(np.mean(p.argmax(1) == d.y)),
            "peak_rss_gib_before": rss0,
            "peak_rss_gib_after_generate": rss_gen,
            "peak_rss_gib": peak_rss_gib(),
        }
    )
    print(rows[-1], file=sys.stderr)


_SNORKEL_CHILD = """
import resource, sys, time, numpy as np, torch
resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30))
torch.set_num_threads(1)
from snorkel.labeling.model import LabelModel
L = np.load(sys.argv[1])
t0 = time.perf_counter()
lm = LabelModel(cardinality=int(sys.argv[2]), verbose=False)
lm.fit(L, seed=0, progress_bar=False)
lm.predict_proba(L)
print("SNORKEL_OK", time.perf_counter() - t0)
"""


def part_manyclass(n, rows, tmp: Path, snorkel_timeout=300):
    d = make_dawid_skene(n, 200, 100, coverage=0.05, random_state=0)
    t0 = time.perf_counter()
    ds = DawidSkene().fit(_fresh(d.L))
    p = ds.predict_proba(d.L)
    t_ws = time.perf_counter() - t0
    row = {
        "part": "manyclass",
        "n": n,
        "m": 200,
        "k": 100,
        "votes": d.L.n_votes,
        "wsagg_s": t_ws,
        "wsagg_iter": ds.n_iter_,
        "wsagg_acc": float(np.mean(p.argmax(1) == d.y)),
    }
    if _has("snorkel"):
        path = tmp / "manyclass_L.npy"
        np.save(path, d.L.to_dense().astype(np.int64))
        try:
            res = subprocess.run(
                [sys.executable, "-c", _SNORKEL_CHILD, str(path), "100"],
                capture_output=True,
                text=True,
                timeout=snorkel_timeout,
            )
            if "SNORKEL_OK" in res.stdout:
                row["snorkel"] = f"ok in {float(res.stdout.split()[-1]):.1f}s"
            else:
                last = (res.stderr.strip().splitlines() or ["?"])[-1]
                row["snorkel"] = f"failed: {last[:100]}"
        except subprocess.TimeoutExpired:
            row["snorkel"] = f"not finished in {snorkel_timeout}s"
        path.unlink(missing_ok=True)
    rows.append(row)
    print(row, file=sys.stderr)


def plot(scaling, out_dir):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(5, 3.5))
    v = [r["votes"] for r in scaling]
    ax.loglog(v, [r["iter_s"] for r in scaling], "o-", label="one EM iteration")
    ax.loglog(v, [r["two_products_s"] for r in scaling], "s--", label="V@T + V.T@q")
    ax.set_xlabel("votes")
    ax.set_ylabel("seconds")
    ax.legend()
    ax.set_title("wsagg DawidSkene, k=2, m=20, 1 thread")
    save_figure(fig, Path(out_dir) / "dawid_skene_speed_scaling.png")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument(
        "--parts", nargs="*", default=["peers", "iteration", "scaling", "huge", "manyclass"]
    )
    args = ap.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    out_dir = args.out_dir or Path(__file__).resolve().parent / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    scaling = []
    if args.smoke:
        part_peers([2_000], rows, peers=False, repeats=1)
        part_iteration(2_000, rows)
        scaling = part_scaling([1_000, 2_000, 4_000], rows)
        part_manyclass(500, rows, out_dir)
    else:
        if "peers" in args.parts:
            part_peers([300_000, 1_000_000], rows)
        if "iteration" in args.parts:
            part_iteration(1_000_000, rows)
        if "scaling" in args.parts:
            scaling = part_scaling([10_000, 30_000, 100_000, 300_000, 1_000_000], rows)
        if "manyclass" in args.parts:
            part_manyclass(100_000, rows, out_dir)
        if "huge" in args.parts:
            part_huge(10_000_000, rows)
    for part in dict.fromkeys(r["part"] for r in rows):
        print(f"\n== {part}")
        print_table(
            [{k: v for k, v in r.items() if k != "part"} for r in rows if r["part"] == part]
        )
    name = "dawid_skene_speed" + ("_smoke" if args.smoke else "")
    save_results(
        name,
        rows,
        out_dir=out_dir,
        packages=("numpy", "scipy", "sklearn", "pandas", "torch", "crowdkit", "snorkel"),
    )
    if scaling:
        plot(scaling, out_dir)
    return rows


if __name__ == "__main__":
    main()
