"""Speed of each wsagg aggregator against its peer, in one process, on synthetic votes.

Synthetic Dawid-Skene data (``wsagg.datasets.make_dawid_skene``: m = 20 sources, coverage
0.5, accuracies U(0.6, 0.9), seed 0) at each size in ``--sizes`` and k = 2 and k = 10.
Both sides get the same dense ``(n, m)`` matrix and are timed from it to the ``(n, k)``
posterior (``fit(L).predict_proba(L)``; the peer's conversion to its own format included),
all pinned to one thread. The two are interleaved (ours, peer, ours, peer, ...), and each
figure is the median of ``--repeats`` runs (3; at n >= 1e6 a single run; a side whose first
run took more than ``--max-repeat-s`` seconds, 60, is not repeated). A fit that runs
past ``--timeout`` seconds (300) is stopped (SIGALRM) and reported as ``> 300 s``; a peer
whose time at the previous size, scaled linearly in n, would pass it is not started and is
reported the same way (``(est.)``). KOS, M-MSR and Triplet are binary models: not run at
k = 10 (nor are binary-only peers).

Usage (the peers are in ``.venv-bench``)::

    nice -n 10 .venv-bench/bin/python benchmarks/bench_zoo_speed.py \\
        [--sizes 1e5 1e6] [--classes 2 10] [--methods glad ...] [--repeats 3] [--quick]

Results: ``results/zoo_speed.{json,csv}`` (``zoo_speed_quick`` for ``--quick``, n = 2000).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time
import warnings
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _peers  # noqa: E402
from benchmarks._common import (  # noqa: E402
    RESULTS_DIR,
    merge_saved_rows,
    print_table,
    save_results,
)

#: wsagg models that are binary (not timed at k > 2)
BINARY_MODELS = {"kos", "mmsr", "triplet"}
TABLE_COLUMNS = (
    "n", "k", "method", "peer", "s_ours", "s_peer", "ratio", "acc_ours", "acc_peer", "agree",
    "note",
)


class FitTimeout(Exception):
    """A fit ran past the time limit."""


def _alarm(signum, frame):  # pragma: no cover - signal handler
    raise FitTimeout


def timed(fn, *args, limit: float):
    """(result, seconds, error) of ``fn(*args)``, stopped after ``limit`` seconds."""
    use_alarm = limit > 0 and hasattr(signal, "setitimer")
    if use_alarm:
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, limit)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = np.asarray(fn(*args), dtype=np.float64)
        return out, time.perf_counter() - t0, ""
    except FitTimeout:
        return None, time.perf_counter() - t0, f"> {limit:g} s"
    except Exception as err:  # a crash is a result
        return None, time.perf_counter() - t0, f"{type(err).__name__}: {err}"[:200]
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)


def fit_ours(cls, params, L, k):
    return _peers.make_wsagg(cls, k, **params).fit(L).predict_proba(L)


def _fmt_time(times: list[float], err: str) -> float | str | None:
    if times:
        return statistics.median(times)
    return err or None


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="*", type=float, default=[1e5, 1e6])
    ap.add_argument("--classes", nargs="*", type=int, default=[2, 10])
    ap.add_argument("--sources", type=int, default=20)
    ap.add_argument("--coverage", type=float, default=0.5)
    ap.add_argument("--methods", nargs="*", default=None,
                    help="wsagg registry names (glad, mace, ...) or peer names; default all")
    ap.add_argument("--repeats", type=int, default=3, help="runs per figure below n = 1e6")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per fit")
    ap.add_argument("--max-repeat-s", type=float, default=60.0,
                    help="a side whose first run takes longer is not repeated")
    ap.add_argument("--quick", action="store_true", help="smoke run: n = 2000, one repeat")
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--keep-other-rows", action="store_true",
                    help="keep the saved rows (size, k, peer) not run now, each with the date "
                    "it was measured (a rerun of some methods then updates the one table)")
    args = ap.parse_args(argv)

    try:  # the peers' torch (Snorkel) on one thread too
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass

    sizes = [2000] if args.quick else [int(s) for s in args.sizes]
    repeats_small = 1 if args.quick else args.repeats
    from benchmarks.bench_zoo_agreement import selected_peers

    peers = selected_peers(args.methods)
    reasons = _peers.available()
    notes: list[str] = []
    ours: dict[str, tuple] = {}
    for p in peers:
        name = _peers.PEERS[p][0]
        if name not in ours:
            ours[name] = _peers.wsagg_class(name)
            if ours[name][0] is None:
                notes.append(f"wsagg {name!r} skipped: {ours[name][1]}")
        if reasons[p] is not None:
            notes.append(f"peer {p} unavailable: {reasons[p]}")
    for n in notes:
        print("note:", n)

    from wsagg.datasets import make_dawid_skene

    rows: list[dict] = []
    last_peer_time: dict[tuple[str, int], tuple[int, float]] = {}
    for k in args.classes:
        for n in sorted(sizes):
            data = make_dawid_skene(n, args.sources, k, coverage=args.coverage, random_state=0)
            L, y = data.L.to_dense(), np.asarray(data.y)
            reps = 1 if n >= 1_000_000 else repeats_small
            for p in peers:
                name, peer_fn = _peers.PEERS[p]
                params = _peers.WSAGG_PARAMS.get(p, {})
                cls = ours[name][0]
                row = {"n": n, "k": k, "m": args.sources, "n_votes": int((L >= 0).sum()),
                       "method": name + (f"({params['model']})" if params else ""), "peer": p}
                if k > 2 and (name in BINARY_MODELS or p in _peers.BINARY_ONLY):
                    continue
                run_ours = cls is not None
                run_peer = reasons[p] is None
                peer_err = "" if run_peer else "peer unavailable"
                if run_peer and (p, k) in last_peer_time:
                    n0, t0 = last_peer_time[(p, k)]
                    est = t0 * n / n0
                    if est > args.timeout:
                        run_peer = False
                        peer_err = f"> {args.timeout:g} s (est. {est:.0f} s)"
                t_ours: list[float] = []
                t_peer: list[float] = []
                ours_err = "" if run_ours else "wsagg module missing"
                P_ours = P_peer = None
                for rep in range(reps):
                    if rep and t_ours and t_ours[0] > args.max_repeat_s:
                        run_ours = False  # one slow run is enough
                    if rep and t_peer and t_peer[0] > args.max_repeat_s:
                        run_peer = False
                    if run_ours:
                        P, t, err = timed(fit_ours, cls, params, L, k, limit=args.timeout)
                        if err:
                            ours_err, run_ours = err, False
                        else:
                            t_ours.append(t)
                            P_ours = P
                    if run_peer:
                        P, t, err = timed(peer_fn, L, k, limit=args.timeout)
                        if err:
                            peer_err, run_peer = err, False
                            if err.startswith(">"):
                                last_peer_time[(p, k)] = (n, args.timeout + 1)
                        else:
                            t_peer.append(t)
                            P_peer = P
                if t_peer:
                    last_peer_time[(p, k)] = (n, statistics.median(t_peer))
                s_ours = _fmt_time(t_ours, ours_err)
                s_peer = _fmt_time(t_peer, peer_err)
                ratio = (
                    statistics.median(t_peer) / statistics.median(t_ours)
                    if t_ours and t_peer else None
                )
                acc = {}
                for tag, P in (("ours", P_ours), ("peer", P_peer)):
                    acc[f"acc_{tag}"] = float(np.mean(P.argmax(1) == y)) if P is not None else None
                agree = (
                    float(np.mean(P_ours.argmax(1) == P_peer.argmax(1)))
                    if P_ours is not None and P_peer is not None else None
                )
                note = "; ".join(
                    s for s in (ours_err and f"ours: {ours_err}", peer_err and f"peer: {peer_err}")
                    if s
                )
                rows.append({**row, "s_ours": s_ours, "s_peer": s_peer, "ratio": ratio, **acc,
                             "agree": agree, "runs_ours": t_ours, "runs_peer": t_peer,
                             "repeats": reps, "note": note})
                print(f"done n={n} k={k} {p}", file=sys.stderr)

    name = "zoo_speed" + ("_quick" if args.quick else "")
    out_dir = args.out_dir or RESULTS_DIR
    if args.keep_other_rows:
        rows = merge_saved_rows(out_dir / f"{name}.json", rows, ("n", "k", "peer"))
    print_table([{c: r.get(c) for c in TABLE_COLUMNS} for r in rows], floatfmt=".3g")
    if _peers.SHIMS:
        print("shims applied:", ", ".join(_peers.SHIMS))
    save_results(
        name,
        rows,
        out_dir=out_dir,
        packages=("numpy", "scipy", "sklearn", "pandas", "torch", "crowdkit", "snorkel",
                  "flyingsquid", "peerannot", "pgmpy"),
        extra={"notes": notes, "shims": dict(_peers.SHIMS), "peer_versions":
               _peers.peer_versions(), "settings": {"sources": args.sources,
               "coverage": args.coverage, "timeout_s": args.timeout, "sizes": sizes,
               "max_repeat_s": args.max_repeat_s, "classes": args.classes, "threads": 1}},
    )
    return rows


if __name__ == "__main__":
    main()
