"""Speed and scale of wsagg DawidSkene, with crowd-kit and Snorkel side by side.

Parts (all on the synthetic Dawid-Skene generator, k = 2, m = 20, coverage 0.5 unless said):

1. ``peers``: fit + posteriors at n = 300k and 1M: wsagg (fully converged, default tol,
   timed from the same long DataFrame crowd-kit gets), crowd-kit ``DawidSkene`` (defaults),
   Snorkel ``LabelModel`` (defaults, dense input). Everything pinned to one thread
   (OMP/MKL/OPENBLAS_NUM_THREADS=1, ``torch.set_num_threads(1)``) except the wsagg
   ``n_jobs=2`` column; all run interleaved, 3 repeats, medians reported (all times in
   ``all_times_s``). Each peer is compared from the input it takes: crowd-kit from the long
   DataFrame (``wsagg_s``), Snorkel from the dense matrix (``wsagg_dense_s``:
   ``fit_predict_proba(dense)``, one conversion; ``wsagg_fit_predict_s``: ``fit(dense)`` then
   ``predict_proba(dense)``, two). ``source_checks_s`` is the part of every wsagg fit spent
   in the fit-time source checks (``wsagg._source_checks.check_sources``, a fixed cost
   outside Dawid-Skene), timed separately on the same matrix; ``speedup_vs_snorkel_em``
   is the speed-up with it subtracted. ``load_1m`` is the 1-minute load average. The
   ``n_jobs=2`` column (``wsagg_dense_2threads_s``) is the same call with two threads: the
   dense conversion, the design matrix, the initial posterior and the EM's row blocks run on
   both, and the source checks on a thread of their own beside the fit.
2. ``peers_k10``: the same at k = 10 (n = 1M), against Snorkel only.
3. ``iteration``: time of one EM iteration (1 and 2 threads) vs one read pass over the votes
   (the design's int32 indices and float64 values, ``read_pass_s``; split over two threads,
   ``read_pass_2threads_s``) and vs the two sparse products alone;
   ``machine_2thread_scaling`` is the speed-up a second thread gives GIL-free numpy work on
   this machine (the ceiling for ``n_jobs=2``).
4. ``scaling``: time per iteration and per fit from 1e5 to 1e7 votes; log-log slope.
5. ``huge``: n = 1e7 items (about 1e8 votes; ``--n-huge`` for other sizes): the votes are
   generated and saved by this process, then loaded and fitted in a child process, whose
   peak RSS (``peak_rss_fit_gib``) is the interpreter, the input votes (in the LabelMatrix
   dtypes, ``index_dtypes``) and the fit (float64 and float32), with the fit's own peak
   (tracemalloc) and the times; the gold labels are read only after the fit.
6. ``manyclass``: k = 100, m = 200; Snorkel's dense LabelModel tried in a subprocess with a
   6 GiB address-space limit and a time limit.

Usage::

    python benchmarks/bench_dawid_skene_speed.py [--smoke] [--out-dir DIR]
        [--parts peers peers_k10 iteration scaling huge manyclass] [--keep-other-parts]
        [--n-huge N ...]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import itertools  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import RESULTS_DIR, print_table, save_figure, save_results  # noqa: E402
from wsagg import DawidSkene  # noqa: E402
from wsagg._source_checks import check_sources  # noqa: E402
from wsagg.aggregation.dawid_skene.backends.numpy import NumpyBackend  # noqa: E402
from wsagg.datasets import make_dawid_skene  # noqa: E402
from wsagg.labels import as_label_matrix  # noqa: E402


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _fresh(L):
    L._cache.clear()  # so that building the one-hot matrix is timed too
    return L


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def part_peers(sizes, rows, peers=True, repeats=3, k=2, crowdkit=True, part="peers"):
    """Interleaved: each repeat times wsagg, crowd-kit and Snorkel in turn on the same data
    (so that load from other processes hits all of them alike); medians are reported."""
    for n in sizes:
        d = make_dawid_skene(n, 20, k, coverage=0.5, random_state=0)
        df = d.L.to_long().rename(columns={"item": "task", "source": "worker"})
        y_df = d.y[np.asarray(ds_items(df))]
        has_ck = peers and crowdkit and _has("crowdkit")
        has_sn = peers and _has("snorkel")
        dense = d.L.to_dense()
        names = ("wsagg", "wsagg_dense", "wsagg_fit_predict", "wsagg_dense_2threads",
                 "source_checks", "crowdkit", "snorkel")
        times: dict[str, list[float]] = {name: [] for name in names}
        row = {"part": part, "n": n, "k": k, "votes": d.L.n_votes, "load_1m_start": _load()}
        for _ in range(repeats):
            if crowdkit:
                t0 = time.perf_counter()
                ds = DawidSkene(n_jobs=1)
                p = ds.fit_predict_proba(df)
                times["wsagg"].append(time.perf_counter() - t0)
                row["wsagg_acc"] = float(np.mean(np.argmax(p, 1) == y_df))
            # from the dense (n, m) matrix, the input Snorkel gets
            t0 = time.perf_counter()
            ds = DawidSkene(n_jobs=1)
            p = ds.fit_predict_proba(dense)
            times["wsagg_dense"].append(time.perf_counter() - t0)
            row["wsagg_iter"] = ds.n_iter_
            row["wsagg_converged"] = ds.converged_
            row["wsagg_dense_acc"] = float(np.mean(np.argmax(p, 1) == d.y))
            t0 = time.perf_counter()
            DawidSkene(n_jobs=1).fit(dense).predict_proba(dense)
            times["wsagg_fit_predict"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            DawidSkene(n_jobs=2).fit_predict_proba(dense)
            times["wsagg_dense_2threads"].append(time.perf_counter() - t0)
            lm = as_label_matrix(dense)
            t0 = time.perf_counter()
            check_sources(lm, DawidSkene())
            times["source_checks"].append(time.perf_counter() - t0)
            if has_ck:
                from crowdkit.aggregation import DawidSkene as CK

                t0 = time.perf_counter()
                ck = CK()
                pr = ck.fit_predict_proba(df)
                times["crowdkit"].append(time.perf_counter() - t0)
                row["crowdkit_iter"] = len(ck.loss_history_)
                pred = pr.reindex(columns=list(range(k))).fillna(0).to_numpy().argmax(1)
                row["crowdkit_acc"] = float(np.mean(pred == d.y[pr.index.to_numpy()]))
            if has_sn:
                import torch
                from snorkel.labeling.model import LabelModel

                torch.set_num_threads(1)
                t0 = time.perf_counter()
                lmod = LabelModel(cardinality=k, verbose=False)
                lmod.fit(dense, seed=0, progress_bar=False)
                ps = lmod.predict_proba(dense)
                times["snorkel"].append(time.perf_counter() - t0)
                row["snorkel_acc"] = float(np.mean(ps.argmax(1) == d.y))
        med = {name: float(np.median(v)) for name, v in times.items() if v}
        for name, v in med.items():
            row[f"{name}_s"] = v
        if "crowdkit" in med and "wsagg" in med:
            row["speedup_vs_crowdkit"] = med["crowdkit"] / med["wsagg"]
        if "snorkel" in med:
            row["speedup_vs_snorkel"] = med["snorkel"] / med["wsagg_dense"]
            row["speedup_vs_snorkel_fit_predict"] = med["snorkel"] / med["wsagg_fit_predict"]
            row["speedup_vs_snorkel_2threads"] = med["snorkel"] / med["wsagg_dense_2threads"]
            row["speedup_vs_snorkel_em"] = med["snorkel"] / max(
                med["wsagg_dense"] - med["source_checks"], 1e-9
            )
        row["repeats"] = repeats
        row["load_1m_end"] = _load()
        row["all_times_s"] = "; ".join(
            f"{name} " + "/".join(f"{t:.2f}" for t in v) for name, v in times.items() if v
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


def _read_pass(X, repeats=7):
    """Median time of one streaming read of the design's votes (int32 indices + values)."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.add.reduce(X.data)
        np.bitwise_or.reduce(X.indices)
        out.append(time.perf_counter() - t0)
    return float(np.median(out))


def _read_pass_threads(X, n_threads=2, repeats=7):
    """Median time of the same read pass split in ``n_threads`` contiguous halves, one per
    thread (numpy's reductions release the GIL): the floor for an iteration on that many
    threads."""
    from concurrent.futures import ThreadPoolExecutor

    cuts = np.linspace(0, X.nnz, n_threads + 1).astype(int)
    parts = [(X.data[a:b], X.indices[a:b]) for a, b in itertools.pairwise(cuts.tolist())]

    def read(part):
        np.add.reduce(part[0])
        np.bitwise_or.reduce(part[1])

    out = []
    with ThreadPoolExecutor(n_threads) as pool:
        for _ in range(repeats):
            t0 = time.perf_counter()
            list(pool.map(read, parts))
            out.append(time.perf_counter() - t0)
    return float(np.median(out))


def _thread_scaling(n_threads=2, repeats=5):
    """The machine's own speed-up from a second thread on GIL-free numpy work (``np.exp``
    into preallocated cache-sized buffers, 1 vs ``n_threads`` threads): the most that
    ``n_jobs`` can gain here."""
    from concurrent.futures import ThreadPoolExecutor

    xs = [np.random.default_rng(i).random(1 << 17) for i in range(n_threads)]
    outs = [np.empty_like(x) for x in xs]

    def work(i):
        for _ in range(400):
            np.exp(xs[i], out=outs[i])

    serial, parallel = [], []
    with ThreadPoolExecutor(n_threads) as pool:
        for _ in range(repeats):
            t0 = time.perf_counter()
            for i in range(n_threads):
                work(i)
            serial.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            list(pool.map(work, range(n_threads)))
            parallel.append(time.perf_counter() - t0)
    return float(np.median(serial) / np.median(parallel))


def _time_iteration(L, repeats=5, n_jobs=1):
    """Median time of one EM iteration (M-step + E-step with its statistics, exactly the
    estimator's loop body) and of the two sparse products ``X @ w`` and ``X.T @ q`` alone
    (the k = 2 E-step's log-odds product and the M-step's product)."""
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
    backend = NumpyBackend(design.X, n_jobs=n_jobs)
    q0 = initial_posterior(L, None, design)
    stats, q_sum = backend.stats(q0), backend.sum_rows(q0)
    X = design.X
    w = np.zeros(X.shape[1])
    q1 = np.ascontiguousarray(q0[:, 1])
    t_prod, t_iter = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        params = m_step(stats, q_sum, design, hp)
        table, offset = log_parameter_table(params, design)
        _, stats, q_sum = backend.e_step(table, offset)
        t_iter.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _ = X @ w
        _ = X.T @ q1
        t_prod.append(time.perf_counter() - t0)
    backend.close()
    return float(np.median(t_iter)), float(np.median(t_prod)), _read_pass(X), X


def part_iteration(n, rows):
    d = make_dawid_skene(n, 20, 2, coverage=0.5, random_state=0)
    load0 = _load()
    t_iter, t_prod, t_read, X = _time_iteration(d.L, repeats=7)
    t_iter2, _, _, _ = _time_iteration(d.L, repeats=7, n_jobs=2)
    t_read2 = _read_pass_threads(X)
    nbytes = X.data.nbytes + X.indices.nbytes
    rows.append(
        {
            "part": "iteration",
            "n": n,
            "votes": d.L.n_votes,
            "iter_s": t_iter,
            "iter_2threads_s": t_iter2,
            "read_pass_s": t_read,
            "read_pass_mb": nbytes / 1e6,
            "read_gb_per_s": nbytes / t_read / 1e9,
            "ratio_iter_over_read_pass": t_iter / t_read,
            "ratio_iter_2threads_over_read_pass": t_iter2 / t_read,
            "read_pass_2threads_s": t_read2,
            "ratio_iter_2threads_over_read_pass_2threads": t_iter2 / t_read2,
            "machine_2thread_scaling": _thread_scaling(),
            "two_products_s": t_prod,
            "ratio_iter_over_products": t_iter / t_prod,
            "speedup_2threads": t_iter / t_iter2,
            "load_1m_start": load0,
            "load_1m_end": _load(),
        }
    )
    print(rows[-1], file=sys.stderr)


def part_scaling(ns, rows):
    out = []
    for n in ns:
        d = make_dawid_skene(n, 20, 2, coverage=0.5, random_state=0)
        t0 = time.perf_counter()
        ds = DawidSkene(n_jobs=1).fit(_fresh(d.L))
        t_fit = time.perf_counter() - t0
        t_iter, t_prod, t_read, _ = _time_iteration(d.L)
        r = {
            "part": "scaling",
            "n": n,
            "votes": d.L.n_votes,
            "fit_s": t_fit,
            "n_iter": ds.n_iter_,
            "iter_s": t_iter,
            "two_products_s": t_prod,
            "read_pass_s": t_read,
            "load_1m": _load(),
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


_HUGE_CHILD = """
import json, resource, sys, time, tracemalloc, numpy as np
sys.path.insert(0, sys.argv[3])


def hwm_gib():
    # the peak RSS of this process (VmHWM: ru_maxrss is inherited across fork + exec, so
    # a child's would start at its parent's peak)
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20



from wsagg import DawidSkene
from wsagg.labels import LabelMatrix
d = np.load(sys.argv[1])  # (lazy: each array is read when asked for)
n, m, k = (int(v) for v in d["shape"])
L = LabelMatrix(d["item"], d["source"], d["label"], n, m, k, np.arange(n), np.arange(m),
                np.arange(k))
gib = 2**30
rss0 = hwm_gib()
tracemalloc.start()
t0 = time.perf_counter()
ds = DawidSkene(dtype=np.dtype(sys.argv[2]), n_jobs=1).fit(L)
t_fit = time.perf_counter() - t0
fit_peak = tracemalloc.get_traced_memory()[1] / gib
rss_fit = hwm_gib()
held = tracemalloc.get_traced_memory()[0] / gib  # kept after the fit (the cached design)
tracemalloc.reset_peak()
t0 = time.perf_counter()
p = ds.predict_proba(L)
t_pred = time.perf_counter() - t0
pred_peak = tracemalloc.get_traced_memory()[1] / gib - held
y = d["y"]  # (the gold labels, read only now: not part of the fit's memory)
print("HUGE_OK", json.dumps({
    "dtype": sys.argv[2], "fit_s": t_fit, "predict_s": t_pred, "n_iter": ds.n_iter_,
    "acc": float(np.mean(p.argmax(1) == y)),
    "input_gib": (L.item.nbytes + L.source.nbytes + L.label.nbytes) / gib,
    "index_dtypes": f"{L.item.dtype}/{L.source.dtype}/{L.label.dtype}",
    "rss_after_load_gib": rss0, "peak_rss_fit_gib": rss_fit,
    "fit_extra_rss_gib": rss_fit - rss0, "fit_traced_peak_gib": fit_peak,
    "kept_after_fit_gib": held, "predict_traced_peak_gib": pred_peak,
    "result_gib": p.nbytes / gib, "peak_rss_gib": hwm_gib(),
}))
"""


def part_huge(n, rows, tmp: Path):
    """Generate here (the generator's own peak is recorded), fit in a child process that
    holds only the loaded votes: its peak RSS is the input plus the fit."""
    import json

    rss0 = peak_rss_gib()
    t0 = time.perf_counter()
    d = make_dawid_skene(n, 20, 2, coverage=0.5, random_state=0)
    t_gen = time.perf_counter() - t0
    rss_gen = peak_rss_gib()
    path = tmp / "huge_votes.npz"
    np.savez(path, item=d.L.item, source=d.L.source, label=d.L.label, y=d.y,
             shape=np.array([d.L.n_items, d.L.n_sources, d.L.n_classes]))
    votes = d.L.n_votes
    del d
    repo = str(Path(__file__).resolve().parents[1])
    for dtype in ("float64", "float32"):
        row = {"part": "huge", "n": n, "votes": votes, "generate_s": t_gen,
               "peak_rss_gib_before_generate": rss0, "peak_rss_gib_generate": rss_gen,
               "load_1m_start": _load()}
        res = subprocess.run([sys.executable, "-c", _HUGE_CHILD, str(path), dtype, repo],
                             capture_output=True, text=True, timeout=900)
        if "HUGE_OK" in res.stdout:
            row.update(json.loads(res.stdout.split("HUGE_OK", 1)[1]))
        else:
            row["error"] = (res.stderr.strip().splitlines() or ["?"])[-1][:200]
        row["load_1m_end"] = _load()
        rows.append(row)
        print(row, file=sys.stderr)
    path.unlink(missing_ok=True)


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
    ds = DawidSkene(n_jobs=1).fit(_fresh(d.L))
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
        print("note: matplotlib is not installed, so the scaling plot was not redrawn "
              "(pip install matplotlib, or: python -c 'from benchmarks.bench_dawid_skene_speed "
              "import replot; replot()')", file=sys.stderr)
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


def replot(out_dir: Path | None = None) -> None:
    """Redraw the scaling plot from the saved results (``dawid_skene_speed.json``)."""
    import json

    out_dir = out_dir or RESULTS_DIR
    rows = json.loads((out_dir / "dawid_skene_speed.json").read_text())["rows"]
    plot([r for r in rows if r["part"] == "scaling"], out_dir)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument(
        "--parts", nargs="*",
        default=["peers", "peers_k10", "iteration", "scaling", "huge", "manyclass"],
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--keep-other-parts", action="store_true",
                    help="keep the saved rows of the parts not run now (several short runs "
                    "make one results file)")
    ap.add_argument("--n-peers", type=float, nargs="*", default=[3e5, 1e6])
    ap.add_argument("--n-huge", type=float, nargs="*", default=[1e7],
                    help="items of the 'huge' part (m = 20, coverage 0.5: 10 votes per item; "
                    "default 1e7, about 1e8 votes)")
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
        part_peers([2_000], rows, peers=False, repeats=1, k=10, crowdkit=False,
                   part="peers_k10")
        part_iteration(2_000, rows)
        scaling = part_scaling([1_000, 2_000, 4_000], rows)
        part_manyclass(500, rows, out_dir)
        part_huge(3_000, rows, out_dir)
    else:
        if "peers" in args.parts:
            part_peers([int(v) for v in args.n_peers], rows, repeats=args.repeats)
        if "peers_k10" in args.parts:
            part_peers([1_000_000], rows, repeats=args.repeats, k=10, crowdkit=False,
                       part="peers_k10")
        if "iteration" in args.parts:
            part_iteration(1_000_000, rows)
        if "scaling" in args.parts:
            scaling = part_scaling([10_000, 30_000, 100_000, 300_000, 1_000_000], rows)
        if "manyclass" in args.parts:
            part_manyclass(100_000, rows, out_dir)
        if "huge" in args.parts:
            for n_huge in args.n_huge:
                part_huge(int(n_huge), rows, out_dir)
    for part in dict.fromkeys(r["part"] for r in rows):
        print(f"\n== {part}")
        print_table(
            [{k: v for k, v in r.items() if k != "part"} for r in rows if r["part"] == part]
        )
    name = "dawid_skene_speed" + ("_smoke" if args.smoke else "")
    if args.keep_other_parts and (out_dir / f"{name}.json").exists():
        import json

        old = json.loads((out_dir / f"{name}.json").read_text())["rows"]
        done = {r["part"] for r in rows} | ({"scaling-slope"} if scaling else set())
        rows = [r for r in old if r["part"] not in done] + rows
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
