"""The aggregator zoo against its peers on every shared real dataset: same data, both fits.

For each wsagg aggregator that has a peer (``benchmarks/_peers.py``: crowd-kit, Snorkel,
flyingsquid, peerannot), on every shared crowd and LF dataset with gold labels (all splits
stacked, one label matrix; crowd sets loaded with ``duplicates="last"`` so that every peer
gets the same dense matrix), fit both with their defaults and report

* ``acc_ours`` / ``acc_peer`` and ``ll_ours`` / ``ll_peer``: accuracy and log loss against
  gold, on the gold items with at least one vote (probabilities clipped at 1e-15);
* ``max_diff`` / ``mean_diff``: the largest and mean absolute posterior difference, and
  ``agree``: the share of equal argmaxes, over every item with at least one vote.

The wsagg side is imported from ``wsagg.aggregation.<module>:<Class>`` (``_peers.WSAGG_CLASSES``)
and skipped with a printed note while its module does not exist; a peer that is not installed
(the main venv) is reported as unavailable and the wsagg side still runs. Binary-only peers
(KOS, flyingsquid) are skipped on k > 2 sets. Peers' hard-label outputs (KOS, IWMV) are
one-hot rows, so their log loss is large and ``max_diff`` is close to 1 by construction.

Usage (the peers are in ``.venv-bench``)::

    nice -n 10 .venv-bench/bin/python benchmarks/bench_zoo_agreement.py \\
        [--data-home DIR] [--methods glad mace ...] [--datasets ...] [--quick] [--out-dir DIR]

Results: ``results/zoo_agreement.{json,csv}`` (``zoo_agreement_quick`` for ``--quick``).
"""

from __future__ import annotations

import argparse
import os
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
    DEFAULT_DATA_HOME,
    RESULTS_DIR,
    merge_saved_rows,
    print_table,
    save_results,
)

#: the two tiny sets of the smoke run (k = 2 and k = 3)
QUICK_DATASETS = ["welinder_bluebirds", "snow2008_wsd"]
LF_DATASETS = {
    "wrench_youtube",
    "wrench_youtube/alt_nhbess_tutorial",
    "wrench_sms",
    "wrench_trec",
    "spouse_snorkel_test",
    "metal_cdr",
    "flyingsquid_tennis_video",
    "bf_uai2024/breast_cancer",
    "bf_uai2024/cardio",
    "bf_uai2024/domain",
    "bf_uai2024/sms",
    "bf_uai2024/youtube",
}
TABLE_COLUMNS = (
    "dataset", "k", "method", "peer", "acc_ours", "acc_peer", "ll_ours", "ll_peer",
    "max_diff", "mean_diff", "agree", "note",
)


def load_stacked(name: str, data_home: Path | str | None):
    """All splits of a shared dataset as one dense matrix; returns (L, y, k)."""
    from wsagg.datasets import load_shared, shared_info

    parts = []
    for split in shared_info(name)["splits"]:
        try:
            d = load_shared(name, split=split, data_home=data_home, duplicates="last")
        except TypeError:  # LF sets: no duplicates option (and no repeats)
            d = load_shared(name, split=split, data_home=data_home)
        parts.append(d)
    k = max(d.L.n_classes for d in parts)
    L = np.concatenate([d.L.to_dense() for d in parts], axis=0)
    y = np.concatenate([np.asarray(d.y, dtype=np.int64) for d in parts])
    return L, y, k


def log_loss(P: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(P[np.arange(y.shape[0]), y], 1e-15, 1.0)
    return float(-np.mean(np.log(p)))


def compare(P_ours, P_peer, y, covered) -> dict:
    """The row's numbers: scores on covered gold items, differences on covered items."""
    ev = covered & (y >= 0)
    out = {}
    for tag, P in (("ours", P_ours), ("peer", P_peer)):
        if P is None:
            out[f"acc_{tag}"] = out[f"ll_{tag}"] = None
            continue
        out[f"acc_{tag}"] = float(np.mean(P[ev].argmax(axis=1) == y[ev])) if ev.any() else None
        out[f"ll_{tag}"] = log_loss(P[ev], y[ev]) if ev.any() else None
    if P_ours is not None and P_peer is not None and covered.any():
        d = np.abs(P_ours[covered] - P_peer[covered])
        out["max_diff"] = float(d.max())
        out["mean_diff"] = float(d.mean())
        out["agree"] = float(
            np.mean(P_ours[covered].argmax(axis=1) == P_peer[covered].argmax(axis=1))
        )
    else:
        out["max_diff"] = out["mean_diff"] = out["agree"] = None
    return out


def _run(fn, *args):
    """(posterior, seconds, error text) of one fit, warnings collected, never raising."""
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            P = np.asarray(fn(*args), dtype=np.float64)
        except Exception as err:  # a crash is a result
            return None, time.perf_counter() - t0, f"{type(err).__name__}: {err}"[:200]
    return P, time.perf_counter() - t0, ""


def fit_ours(cls, params, L, k):
    model = _peers.make_wsagg(cls, k, **params)
    return model.fit(L).predict_proba(L)


def selected_peers(methods: list[str] | None) -> list[str]:
    """Peers whose wsagg name or own name is in ``methods`` (all when None)."""
    if not methods:
        return list(_peers.PEERS)
    return [p for p, (ours, _) in _peers.PEERS.items() if ours in methods or p in methods]


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-home", type=Path, default=DEFAULT_DATA_HOME)
    ap.add_argument("--methods", nargs="*", default=None,
                    help="wsagg registry names (glad, mace, ...) or peer names; default all")
    ap.add_argument("--datasets", nargs="*", default=None)
    ap.add_argument("--quick", action="store_true", help=f"smoke run on {QUICK_DATASETS}")
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--keep-other-rows", action="store_true",
                    help="keep the saved rows (dataset, peer) not run now, each with the date "
                    "it was measured; the summary is of all of them")
    args = ap.parse_args(argv)

    from wsagg.datasets import list_shared

    peers = selected_peers(args.methods)
    reasons = _peers.available()
    notes: list[str] = []
    ours: dict[str, tuple[type | None, str]] = {}
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

    names = args.datasets or (QUICK_DATASETS if args.quick else list_shared())
    rows: list[dict] = []
    skipped: list[str] = []
    for ds in names:
        try:
            L, y, k = load_stacked(ds, args.data_home)
        except Exception as err:
            skipped.append(f"{ds}: cannot load ({type(err).__name__}: {err})"[:200])
            continue
        if not (y >= 0).any():
            skipped.append(f"{ds}: no gold labels")
            continue
        covered = (L >= 0).any(axis=1)
        kind = "LF" if ds in LF_DATASETS else "crowd"
        done_ours: dict[tuple, tuple] = {}
        for p in peers:
            name, peer_fn = _peers.PEERS[p]
            cls, where = ours[name]
            params = _peers.WSAGG_PARAMS.get(p, {})
            row = {"dataset": ds, "kind": kind, "n": int(L.shape[0]), "m": int(L.shape[1]),
                   "k": k, "method": name + (f"({params['model']})" if params else ""),
                   "peer": p, "wsagg_class": where if cls is not None else None}
            if k > 2 and p in _peers.BINARY_ONLY:
                rows.append({**row, "note": "peer is binary-only; skipped (k > 2)"})
                continue
            P_ours, t_ours, err_ours = None, None, ""
            if cls is None:
                err_ours = "wsagg module missing"
            else:
                key = (name, tuple(sorted(params.items())))
                if key not in done_ours:
                    done_ours[key] = _run(fit_ours, cls, params, L, k)
                P_ours, t_ours, err_ours = done_ours[key]
            P_peer, t_peer, err_peer = None, None, ""
            if reasons[p] is not None:
                err_peer = "peer unavailable"
            else:
                P_peer, t_peer, err_peer = _run(peer_fn, L, k)
            note = "; ".join(
                s for s in (err_ours and f"ours: {err_ours}", err_peer and f"peer: {err_peer}")
                if s
            )
            rows.append({**row, **compare(P_ours, P_peer, y, covered),
                         "s_ours": t_ours, "s_peer": t_peer, "note": note})
        print(f"done {ds}", file=sys.stderr)

    name = "zoo_agreement" + ("_quick" if args.quick else "")
    out_dir = args.out_dir or RESULTS_DIR
    if args.keep_other_rows:
        rows = merge_saved_rows(out_dir / f"{name}.json", rows, ("dataset", "peer"))
    print_table([{c: r.get(c) for c in TABLE_COLUMNS} for r in rows], floatfmt=".3g")
    summary = summarize(rows)
    if summary:
        print()
        print_table(summary, floatfmt=".4g")
    for s in skipped:
        print("skipped:", s)
    if _peers.SHIMS:
        print("shims applied:", ", ".join(_peers.SHIMS))
    save_results(
        name,
        rows,
        out_dir=out_dir,
        packages=("numpy", "scipy", "sklearn", "pandas", "torch", "crowdkit", "snorkel",
                  "flyingsquid", "peerannot", "pgmpy"),
        extra={"summary": summary, "skipped": skipped, "notes": notes,
               "shims": dict(_peers.SHIMS), "peer_versions": _peers.peer_versions()},
    )
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Per (method, peer): sets compared, mean accuracies, mean/max difference, agreement."""
    import pandas as pd

    df = pd.DataFrame([r for r in rows if r.get("agree") is not None])
    if df.empty:
        return []
    out = (
        df.groupby(["method", "peer"], sort=False)
        .agg(sets=("dataset", "size"), acc_ours=("acc_ours", "mean"),
             acc_peer=("acc_peer", "mean"), ll_ours=("ll_ours", "mean"),
             ll_peer=("ll_peer", "mean"), max_diff=("max_diff", "max"),
             mean_diff=("mean_diff", "mean"), agree=("agree", "mean"),
             s_ours=("s_ours", "sum"), s_peer=("s_peer", "sum"))
        .reset_index()
    )
    return out.to_dict("records")


if __name__ == "__main__":
    main()
