"""Dawid-Skene beyond one process: in-memory vs chunked (streamed) vs a Dask LocalCluster.

Synthetic Dawid-Skene votes, k = 2, m = 20, coverage 0.5 (so n items give about 10 n
votes), written once as npz partitions of ``--items-per-part`` items (dense int8 blocks).
Every configuration runs in its own subprocess so that its peak resident memory
(``getrusage(RUSAGE_SELF).ru_maxrss``; for the cluster also each worker process's) is its
own:

* ``inmemory``: load all partitions into one LabelMatrix and ``DawidSkene().fit`` it;
* ``stream``: ``VotePartitions.from_files(paths, engine="stream")``: partitions read, used
  and dropped one at a time every EM iteration (bounded memory);
* ``cluster``: ``distributed.LocalCluster(n_workers=2, threads_per_worker=1,
  processes=True)``, partitions read and cached on the workers, map-reduce EM;
  plus a *scheduler overhead* run: the same number of partitions holding 50 items each,
  a fixed number of iterations, so its time per iteration is almost only scheduling.

All three fits must agree (max |confusion difference| is reported). A paper estimate for
1e9 votes on 32 workers is derived from the measured cost per vote and per task.

Part ``adversarial`` (results in ``distributed_adversarial.{json,csv}``):
``AdversarialLogLoss`` on the same partitions (``--n-adversarial`` items) with an in-memory
labeled set of 500 items from the same sources, in memory vs streamed vs the LocalCluster
(one map-reduce to the table of distinct vote patterns, then the solve on the driver);
reported: wall time, distinct patterns, peak memory, and the largest differences from the
in-memory fit (weights, game value, probabilities of the first partition).

Usage::

    python benchmarks/bench_distributed.py [--smoke] [--out-dir DIR]
        [--parts single cluster adversarial] [--n-single 1e7] [--n-cluster 1e6 1e7]
        [--n-adversarial 1e6]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import print_table, save_results  # noqa: E402

M, K, COVERAGE = 20, 2, 0.5


def _rss_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_partitions(n: int, per_part: int, root: Path) -> list[Path]:
    """Write (or reuse) the npz partitions of an n-item synthetic data set."""
    from wsagg.datasets import make_dawid_skene
    from wsagg.distributed import save_partition

    folder = root / f"ds_n{n}_m{M}_k{K}_p{per_part}"
    done = folder / "DONE"
    n_parts = -(-n // per_part)
    paths = [folder / f"part-{p:05d}.npz" for p in range(n_parts)]
    if done.exists():
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    conf = _confusion()
    for p, path in enumerate(paths):
        size = min(per_part, n - p * per_part)
        d = make_dawid_skene(size, M, K, coverage=COVERAGE, confusion=conf,
                             random_state=1000 + p)
        dense = d.L.to_dense().astype(np.int8)
        save_partition(path, dense, item_ids=np.arange(p * per_part, p * per_part + size))
    done.write_text("ok")
    return paths


def _confusion() -> np.ndarray:
    from wsagg.datasets import make_dawid_skene

    return make_dawid_skene(10, M, K, accuracy=(0.6, 0.85), random_state=0).confusion


def _labeled_set(n_lab: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """A labeled set voted by the same sources as the partitions (same confusions)."""
    from wsagg.datasets import make_dawid_skene

    d = make_dawid_skene(n_lab, M, K, coverage=COVERAGE, confusion=_confusion(),
                         random_state=7)
    return d.L.to_dense(), d.y


# ----------------------------------------------------------------------------------------
# one configuration (runs in a subprocess)
# ----------------------------------------------------------------------------------------


def run_adversarial(mode: str, paths: list[str], processes: bool = True) -> dict:
    """``AdversarialLogLoss`` with an in-memory labeled set: in memory / stream / cluster."""
    from wsagg import AdversarialLogLoss
    from wsagg.distributed import VotePartitions

    warnings.simplefilter("ignore")
    L_lab, y_lab = _labeled_set()
    est = AdversarialLogLoss(n_classes=K)
    out: dict = {"mode": mode}
    t0 = time.perf_counter()
    if mode == "inmemory":
        from wsagg.labels import as_label_matrix

        L = np.concatenate([np.load(p)["L"] for p in paths])
        lm = as_label_matrix(L, n_classes=K)
        del L
        out["load_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        est.fit(lm, L_labeled=L_lab, y_labeled=y_lab)
        out["fit_s"] = time.perf_counter() - t1
    elif mode == "stream":
        vp = VotePartitions.from_files(paths, engine="stream", n_classes=K)
        t1 = time.perf_counter()
        est.fit(vp, L_labeled=L_lab, y_labeled=y_lab)
        out["fit_s"] = time.perf_counter() - t1
    elif mode == "cluster":
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=processes,
                          dashboard_address=None, memory_limit=0) as cluster, \
                Client(cluster) as client:
            client.run(__import__, "wsagg.aggregation.adversarial.partitioned")  # warm imports
            vp = VotePartitions.from_files(paths, client=client, n_classes=K)
            t1 = time.perf_counter()
            est.fit(vp, L_labeled=L_lab, y_labeled=y_lab)
            out["fit_s"] = time.perf_counter() - t1
            out["worker_peak_rss_mib"] = max(client.run(_rss_peak_mib).values())
    else:
        raise ValueError(mode)
    out["n_items"] = est.n_target_items_
    out["n_patterns"] = est.n_patterns_
    out["solver_status"] = est.solver_status_
    out["peak_rss_mib"] = _rss_peak_mib()
    out["game_value"] = est.game_value_
    out["weights"] = np.concatenate([est.class_bias_, est.source_weights_]).tolist()
    with np.load(paths[0]) as f:
        out["proba_part0"] = est.predict_proba(f["L"].astype(np.int64)).tolist()
    return out


def _adv_row(n: int, r: dict, ref: dict | None) -> dict:
    row = {"part": "adversarial", "n_items": n, "mode": r["mode"]}
    if "error" in r:
        row["error"] = " ".join(r["error"])
        return row
    row.update({
        "n_patterns": r["n_patterns"],
        "status": r["solver_status"],
        "fit_s": round(r["fit_s"], 3),
        "peak_rss_mib": round(r["peak_rss_mib"], 1),
        "worker_peak_rss_mib": round(r.get("worker_peak_rss_mib", float("nan")), 1),
        "game_value": round(r["game_value"], 8),
    })
    if ref is not None and "weights" in ref:
        row["max_weight_diff"] = float(
            np.abs(np.asarray(r["weights"]) - np.asarray(ref["weights"])).max())
        row["game_value_diff"] = abs(r["game_value"] - ref["game_value"])
        row["max_proba_diff"] = float(
            np.abs(np.asarray(r["proba_part0"]) - np.asarray(ref["proba_part0"])).max())
    return row


def run_one(mode: str, paths: list[str], overhead_parts: int, processes: bool = True) -> dict:
    if mode.startswith("adv-"):
        return run_adversarial(mode[4:], paths, processes)
    from wsagg import DawidSkene
    from wsagg.distributed import VotePartitions

    warnings.simplefilter("ignore")
    out: dict = {"mode": mode}
    t0 = time.perf_counter()
    if mode == "inmemory":
        blocks = []
        for p in paths:
            with np.load(p) as f:
                blocks.append(f["L"])
        L = np.concatenate(blocks)
        del blocks
        from wsagg.labels import as_label_matrix

        lm = as_label_matrix(L, n_classes=K)
        del L
        out["load_s"] = time.perf_counter() - t0
        out["rss_after_load_mib"] = _rss_peak_mib()
        out["n_votes"] = lm.n_votes
        t1 = time.perf_counter()
        ds = DawidSkene(n_classes=K).fit(lm)
        out["fit_s"] = time.perf_counter() - t1
    elif mode == "stream":
        vp = VotePartitions.from_files(paths, engine="stream", n_classes=K)
        t1 = time.perf_counter()
        ds = DawidSkene(n_classes=K).fit(vp)
        out["fit_s"] = time.perf_counter() - t1
        out["n_votes"] = ds.partition_info_["n_votes"]
    elif mode == "cluster":
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=processes,
                          dashboard_address=None, memory_limit=0) as cluster, \
                Client(cluster) as client:
            client.run(__import__, "wsagg.aggregation.dawid_skene")  # warm the workers' imports
            client.run(__import__, "wsagg.distributed")
            out["cluster_start_s"] = time.perf_counter() - t0
            vp = VotePartitions.from_files(paths, client=client, n_classes=K)
            t1 = time.perf_counter()
            ds = DawidSkene(n_classes=K).fit(vp)
            out["fit_s"] = time.perf_counter() - t1
            out["n_votes"] = ds.partition_info_["n_votes"]
            peaks = client.run(_rss_peak_mib)
            out["worker_peak_rss_mib"] = max(peaks.values())
            # scheduler overhead: same number of partitions, 50 items each, fixed iterations
            from wsagg.datasets import make_dawid_skene

            tiny = make_dawid_skene(50 * overhead_parts, M, K, coverage=COVERAGE,
                                    random_state=0).L
            vp_tiny = VotePartitions.from_label_matrix(tiny, n_partitions=overhead_parts,
                                                       client=client)
            t2 = time.perf_counter()
            tiny_ds = DawidSkene(n_classes=K, max_iter=20, tol=0.0).fit(vp_tiny)
            out["overhead_per_iter_s"] = (time.perf_counter() - t2) / (tiny_ds.n_iter_ + 3)
    else:
        raise ValueError(mode)
    out["n_iter"] = int(ds.n_iter_)
    # EM passes over the data: init statistics + initial E-step + n_iter E-steps
    out["per_iter_s"] = out["fit_s"] / (ds.n_iter_ + 2)
    out["peak_rss_mib"] = _rss_peak_mib()
    out["confusion"] = ds.confusion_.tolist()
    out["log_likelihood"] = ds.log_likelihood_
    return out


def spawn(mode: str, paths: list[Path], overhead_parts: int, processes: bool = True) -> dict:
    cmd = [sys.executable, __file__, "--run", mode, "--overhead-parts", str(overhead_parts),
           *([] if processes else ["--threads"]), "--paths", *map(str, paths)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        return {"mode": mode, "error": res.stderr.strip().splitlines()[-1:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def _row(part: str, n: int, r: dict, ref: dict | None) -> dict:
    row = {"part": part, "n_items": n, "mode": r["mode"]}
    if "error" in r:
        row["error"] = " ".join(r["error"])
        return row
    row.update({
        "n_votes": r["n_votes"],
        "n_iter": r["n_iter"],
        "fit_s": round(r["fit_s"], 3),
        "per_iter_s": round(r["per_iter_s"], 4),
        "peak_rss_mib": round(r["peak_rss_mib"], 1),
        "worker_peak_rss_mib": round(r.get("worker_peak_rss_mib", float("nan")), 1),
        "overhead_per_iter_s": round(r.get("overhead_per_iter_s", float("nan")), 4),
    })
    if ref is not None and "confusion" in ref:
        row["max_conf_diff_vs_inmemory"] = float(
            np.abs(np.asarray(r["confusion"]) - np.asarray(ref["confusion"])).max()
        )
    return row


def estimate(rows: list[dict], votes: float = 1e9, workers: int = 32,
             votes_per_part: float = 5e6) -> dict:
    """Paper estimate of one EM iteration on a cluster from the measured costs."""
    stream = [r for r in rows if r.get("mode") == "inmemory" and "per_iter_s" in r]
    clus = [r for r in rows if r.get("mode") == "cluster" and "overhead_per_iter_s" in r]
    if not stream or not clus:
        return {}
    big = max(stream, key=lambda r: r["n_votes"])
    # seconds per vote per EM iteration on one core (in-memory fit: pure compute, as on
    # workers that cache their partitions)
    c_vote = big["per_iter_s"] / big["n_votes"]
    oc = max(clus, key=lambda r: r["n_items"])
    n_parts_measured = oc["n_parts"]
    tau = oc["overhead_per_iter_s"] / n_parts_measured  # scheduler seconds per task
    parts = votes / votes_per_part
    compute = votes * c_vote / workers
    sched = parts * tau
    reduce_bytes = parts * (M * K + M) * K * 8
    return {
        "votes": votes, "workers": workers, "partitions": parts,
        "sec_per_vote_iter": c_vote, "sched_sec_per_task": tau,
        "compute_per_iter_s": compute, "scheduler_per_iter_s": sched,
        "reduce_bytes_per_iter": reduce_bytes,
        "per_iter_s": compute + sched,
        "fit_30_iter_s": 30 * (compute + sched),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (seconds)")
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="where the npz partitions are written (default: a temp dir)")
    ap.add_argument("--parts", nargs="+", default=["single", "cluster", "adversarial"],
                    choices=["single", "cluster", "adversarial"])
    ap.add_argument("--n-adversarial", type=float, default=1e6)
    ap.add_argument("--n-single", type=float, default=1e7)
    ap.add_argument("--n-cluster", type=float, nargs="+", default=[1e6, 1e7])
    ap.add_argument("--items-per-part", type=int, default=500_000)
    ap.add_argument("--threads", action="store_true",
                    help="LocalCluster with processes=False (smoke mode uses it)")
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--paths", nargs="*", help=argparse.SUPPRESS)
    ap.add_argument("--overhead-parts", type=int, default=20, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run:
        print(json.dumps(run_one(args.run, args.paths, args.overhead_parts,
                                 processes=not args.threads)))
        return
    if args.smoke:
        args.n_single, args.n_cluster, args.items_per_part = 4000, [4000], 1000
        args.n_adversarial = 4000
        args.threads = True
    tmp = None
    if args.data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="wsagg_bench_dist_")
        args.data_dir = Path(tmp.name)
    rows: list[dict] = []
    adv_rows: list[dict] = []
    raws: dict = {}
    try:
        if "adversarial" in args.parts:
            n = int(args.n_adversarial)
            per = min(args.items_per_part, max(n // 4, 1))
            paths = make_partitions(n, per, args.data_dir)
            ref = spawn("adv-inmemory", paths, len(paths))
            adv_rows.append(_adv_row(n, ref, None))
            for mode in ("adv-stream", "adv-cluster"):
                r = spawn(mode, paths, len(paths), processes=not args.threads)
                adv_rows.append(_adv_row(n, r, ref) | {"n_parts": len(paths)})
        if "single" in args.parts:
            n = int(args.n_single)
            paths = make_partitions(n, args.items_per_part, args.data_dir)
            raws[n] = spawn("inmemory", paths, len(paths))
            rows.append(_row("single", n, raws[n], None))
            rows.append(_row("single", n, spawn("stream", paths, len(paths)), raws[n]))
        if "cluster" in args.parts:
            for nf in args.n_cluster:
                n = int(nf)
                per = min(args.items_per_part, max(n // 4, 1))
                paths = make_partitions(n, per, args.data_dir)
                if n not in raws:
                    raws[n] = spawn("inmemory", paths, len(paths))
                    rows.append(_row("cluster", n, raws[n], None))
                r = spawn("cluster", paths, len(paths), processes=not args.threads)
                row = _row("cluster", n, r, raws[n])
                row["n_parts"] = len(paths)
                rows.append(row)
    finally:
        if tmp is not None:
            tmp.cleanup()
    if adv_rows:
        print("AdversarialLogLoss (500 labeled items in memory) on partitioned votes:")
        print_table(adv_rows)
        name = "distributed_adversarial_smoke" if args.smoke else "distributed_adversarial"
        path = save_results(name, adv_rows, out_dir=args.out_dir,
                            packages=("numpy", "scipy", "dask", "distributed"))
        print(f"\nsaved {path}\n")
    if not rows:
        return
    print_table(rows)
    est = estimate(rows)
    if est:
        print("\nPaper estimate, one EM iteration on 1e9 votes / 32 workers:")
        print_table([{k: (round(v, 6) if isinstance(v, float) else v) for k, v in est.items()}])
    name = "distributed_smoke" if args.smoke else "distributed"
    path = save_results(name, rows, out_dir=args.out_dir,
                        packages=("numpy", "scipy", "pandas", "dask", "distributed"),
                        extra={"estimate_1e9_votes_32_workers": est})
    print(f"\nsaved {path}")


if __name__ == "__main__":
    main()
