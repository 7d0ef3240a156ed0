"""Dawid-Skene's defaults chosen by leave-one-dataset-out (LODO) over the shared datasets.

The grid: ``shrinkage`` in {None, "population"} x ``smoothing`` in {0.01, 0.1, 1} x
``abstain`` in {"auto", "ignore", "model"} (18 configurations). Every configuration is fitted
without labels on every shared dataset (all splits stacked) and scored — accuracy, log loss,
ECE — on the same gold items as ``bench_realdata.py`` (gold, not in the validation split,
with a vote).

**Protocol.** For each dataset *i*, the configuration is chosen from the *other* datasets
only (over all of them — the estimator's default — and, for ``auto``'s by-source-type
policy, over the other datasets of the same kind, crowd or labeling functions): the best
mean accuracy over them (ties within 1e-4: the lower mean log loss). The
table gives, per held-out dataset, the configuration chosen without it and what it scores
there, beside the current default. A default is changed only to a configuration that LODO
chooses for (nearly) every held-out dataset; the per-fold choices are printed so that this is
visible. Nothing here is tuned on the held-out set.

Usage::

    .venv/bin/python benchmarks/bench_defaults_lodo.py [--smoke] [--datasets ...]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from benchmarks._common import print_table, save_results
from benchmarks.bench_dawid_skene_realdata import (
    LF_DATASETS,
    known_and_eval,
    stack_splits,
)
from benchmarks.bench_realdata import scores
from wsagg import DawidSkene
from wsagg.datasets import list_shared

GRID = {
    "shrinkage": [None, "population"],
    "smoothing": [0.01, 0.1, 1.0],
    "abstain": ["auto", "ignore", "model"],
}
SMOKE_DATASETS = ["snow2008_temp", "bf_uai2024/cardio", "zheng_face"]


def configs() -> list[dict]:
    keys = list(GRID)
    return [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*GRID.values())]


def label(cfg: dict) -> str:
    return f"shrinkage={cfg['shrinkage']},smoothing={cfg['smoothing']:g},abstain={cfg['abstain']}"


def current_default() -> str:
    p = DawidSkene().get_params()
    return label({k: p[k] for k in GRID})


def run(names: list[str]) -> list[dict]:
    rows = []
    for name in names:
        L, y, split_of = stack_splits(name)
        if not (y >= 0).any():
            continue
        _, eval_mask, _ = known_and_eval(y, split_of, L.covered())
        kind = "LF" if name in LF_DATASETS else "crowd"
        for cfg in configs():
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = DawidSkene(n_classes=L.n_classes, random_state=0, **cfg)
                proba = est.fit_predict_proba(L)
            rows.append({"dataset": name, "kind": kind, "config": label(cfg),
                         **scores(proba[eval_mask], y[eval_mask], L.n_classes),
                         "seconds": round(time.perf_counter() - t0, 3)})
        print(f"done {name}", file=sys.stderr)
    return rows


def lodo(rows: list[dict], kind: str | None = None) -> list[dict]:
    import pandas as pd

    df = pd.DataFrame(rows)
    if kind is not None:
        df = df[df["kind"] == kind]
    acc = df.pivot(index="dataset", columns="config", values="acc")
    ll = df.pivot(index="dataset", columns="config", values="log_loss")
    default = current_default()
    out = []
    for held in acc.index:
        rest_acc = acc.drop(index=held).mean()
        rest_ll = ll.drop(index=held).mean()
        best = rest_acc.max()
        tied = rest_acc[rest_acc >= best - 1e-4].index
        chosen = rest_ll[tied].idxmin()
        out.append({"pool": kind or "all", "held_out": held, "chosen_without_it": chosen,
                    "acc": acc.loc[held, chosen], "log_loss": ll.loc[held, chosen],
                    "default_acc": acc.loc[held, default],
                    "default_log_loss": ll.loc[held, default]})
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="three small datasets")
    ap.add_argument("--datasets", nargs="*", default=None)
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--report-only", action="store_true",
                    help="recompute the tables from the saved defaults_lodo.json")
    args = ap.parse_args(argv)
    names = args.datasets or (SMOKE_DATASETS if args.smoke else list_shared())
    stem = "defaults_lodo" + ("_smoke" if args.smoke else "")
    if args.report_only:
        import json

        results_dir = args.out_dir or Path(__file__).resolve().parent / "results"
        rows = json.loads((results_dir / f"{stem}.json").read_text())["rows"]
    else:
        rows = run(names)
    extra: dict = {}
    for pool in (None, "crowd", "LF"):
        if pool is not None and sum(r["kind"] == pool for r in rows) < 2 * len(configs()):
            continue
        table = lodo(rows, pool)
        name = pool or "all"
        print(f"\nleave-one-dataset-out over {name} datasets: DawidSkene's configuration "
              "chosen without each dataset")
        print_table(table)
        votes = Counter(r["chosen_without_it"] for r in table)
        summary = [{"pool": name, "config": c, "chosen_in_folds": n, "of": len(table)}
                   for c, n in votes.most_common()]
        mean = {
            "pool": name,
            "lodo_mean_acc": float(np.mean([r["acc"] for r in table])),
            "lodo_mean_log_loss": float(np.mean([r["log_loss"] for r in table])),
            "default_mean_acc": float(np.mean([r["default_acc"] for r in table])),
            "default_mean_log_loss": float(np.mean([r["default_log_loss"] for r in table])),
            "current_default": current_default(),
        }
        print(f"\nchoices over the folds ({name})")
        print_table(summary)
        print_table([mean])
        extra[name] = {"lodo": table, "summary": summary, "mean": mean}
    save_results(stem, rows, out_dir=args.out_dir, extra=extra)
    return extra


if __name__ == "__main__":
    main()
