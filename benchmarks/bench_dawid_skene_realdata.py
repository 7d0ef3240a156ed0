"""Dawid-Skene on every public real dataset in ../shared/data, side by side with the peers.

For each dataset (all its splits stacked into one label matrix, the same sources), the table
gives accuracy, balanced accuracy and log loss of

* wsagg ``MajorityVote``;
* wsagg ``DawidSkene`` with ``abstain="auto"`` (the default), ``"ignore"`` and ``"model"``,
  unsupervised (``unsup``) and with known labels (``semi``), all with the default
  ``diagonal_smoothing="auto"`` (``semi``: chosen by 5-fold cross-validation on the known
  items; column ``diag``); and ``DS-model-d1``: ``abstain="model", diagonal_smoothing=1``
  with known labels (the earlier fixed default, for comparison);
* crowd-kit ``DawidSkene`` (defaults; ``semi``: its ``true_labels`` argument) and Snorkel
  ``LabelModel`` (defaults, one thread; ``semi``: class balance from ``Y_dev``), when installed
  (run with the benchmark venv ``.venv-bench``).

Known labels (``semi``): the gold labels of the validation split (``valid`` / ``dev``) when
the dataset has one and other splits have gold; otherwise a seeded random 10% of the gold
items. Scores are computed on the *other* gold items that have at least one vote, the same
items for every method (for WRENCH sets: train + test).

Usage::

    python benchmarks/bench_dawid_skene_realdata.py [--smoke] [--out-dir DIR]
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
from sklearn.metrics import balanced_accuracy_score, log_loss  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import print_table, save_figure, save_results  # noqa: E402, F401
from wsagg import DawidSkene, MajorityVote  # noqa: E402
from wsagg.datasets import list_shared, load_shared, shared_info  # noqa: E402
from wsagg.labels import LabelMatrix  # noqa: E402

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
SMOKE_DATASETS = ["bf_uai2024/cardio", "snow2008_temp"]
VALID_SPLITS = ("valid", "dev")


def stack_splits(name: str) -> tuple[LabelMatrix, np.ndarray, np.ndarray]:
    """All splits of a dataset as one label matrix; returns (L, y, split name per item)."""
    splits = shared_info(name)["splits"]
    parts = [load_shared(name, split=s) for s in splits]
    offset = 0
    item, source, label, ys, split_of = [], [], [], [], []
    for s, d in zip(splits, parts, strict=True):
        item.append(d.L.item + offset)
        source.append(d.L.source)
        label.append(d.L.label)
        ys.append(d.y)
        split_of.append(np.full(d.L.n_items, s, dtype=object))
        offset += d.L.n_items
    k = max(d.L.n_classes for d in parts)
    m = parts[0].L.n_sources
    L = LabelMatrix(
        item=np.concatenate(item),
        source=np.concatenate(source),
        label=np.concatenate(label),
        n_items=offset,
        n_sources=m,
        n_classes=k,
        item_ids=np.arange(offset),
        source_names=parts[0].L.source_names,
        classes=np.arange(k),
    )
    return L, np.concatenate(ys), np.concatenate(split_of)


def known_and_eval(y: np.ndarray, split_of: np.ndarray, covered: np.ndarray, seed: int = 0):
    """Known-label vector (-1 unknown) for ``semi`` fits and the evaluation mask."""
    gold = y >= 0
    is_valid = np.isin(split_of, VALID_SPLITS)
    if is_valid.any() and (gold & ~is_valid).any() and (gold & is_valid).any():
        known_mask = gold & is_valid
        protocol = "valid split"
    else:
        rng = np.random.default_rng(seed)
        idx = np.flatnonzero(gold)
        n_known = max(1, round(0.1 * idx.size))
        known_mask = np.zeros(y.shape[0], dtype=bool)
        known_mask[rng.choice(idx, size=n_known, replace=False)] = True
        protocol = "random 10%"
    known = np.where(known_mask, y, -1)
    eval_mask = gold & ~known_mask & covered
    return known, eval_mask, protocol


def scores(proba: np.ndarray, y: np.ndarray, k: int) -> dict:
    pred = np.argmax(proba, axis=1)
    p = np.clip(proba, 1e-15, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    return {
        "acc": float(np.mean(pred == y)),
        "bal_acc": float(balanced_accuracy_score(y, pred)),
        "log_loss": float(log_loss(y, p, labels=np.arange(k))),
    }


def run_wsagg(L, known, **params):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = DawidSkene(**params) if params else MajorityVote()
        proba = model.fit_predict_proba(L, known)
    notes = sorted({type(w.message).__name__ for w in caught})
    diag = getattr(model, "diagonal_smoothing_", None)
    if diag is not None:
        notes.insert(0, f"d={diag:g}")
    return proba, getattr(model, "n_iter_", None), ",".join(notes)


def run_crowdkit(L: LabelMatrix, known: np.ndarray | None):
    import pandas as pd
    from crowdkit.aggregation import DawidSkene as CKDawidSkene

    # copies: crowd-kit writes into its input arrays, and loaders return read-only ones
    df = pd.DataFrame(
        {"task": L.item.copy(), "worker": L.source.copy(), "label": L.label.copy()}
    )
    ck = CKDawidSkene()
    if known is not None:
        idx = np.flatnonzero(known >= 0)
        ck.fit(df, true_labels=pd.Series(known[idx], index=idx))
    else:
        ck.fit(df)
    probas = ck.probas_.reindex(index=np.arange(L.n_items), columns=np.arange(L.n_classes))
    probas = probas.fillna(0.0).to_numpy(copy=True)  # pandas 3: to_numpy() can be read-only
    empty = probas.sum(axis=1) == 0
    probas[empty] = 1.0 / L.n_classes
    return probas, len(ck.loss_history_), ""


def run_snorkel(L: LabelMatrix, known: np.ndarray | None):
    import torch
    from snorkel.labeling.model import LabelModel

    torch.set_num_threads(1)
    dense = L.to_dense()
    lm = LabelModel(cardinality=L.n_classes, verbose=False)
    kwargs = {"seed": 0, "progress_bar": False}
    if known is not None:
        idx = np.flatnonzero(known >= 0)
        # snorkel's own use of dev labels: the class balance
        lm.fit(dense, Y_dev=known[idx], **kwargs)
    else:
        lm.fit(dense, **kwargs)
    return lm.predict_proba(dense), None, ""


def peers_available() -> dict[str, bool]:
    out = {}
    for mod in ("crowdkit", "snorkel"):
        try:
            __import__(mod)
            out[mod] = True
        except ImportError:
            out[mod] = False
    return out


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="two small datasets, wsagg only")
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--datasets", nargs="*", default=None)
    ap.add_argument("--no-peers", action="store_true")
    args = ap.parse_args(argv)

    names = args.datasets or (SMOKE_DATASETS if args.smoke else list_shared())
    peers = {} if (args.no_peers or args.smoke) else peers_available()
    rows: list[dict] = []
    skipped = []
    for name in names:
        L, y, split_of = stack_splits(name)
        covered = L.covered()
        if not (y >= 0).any():
            skipped.append(f"{name}: no gold labels")
            continue
        known, eval_mask, protocol = known_and_eval(y, split_of, covered)
        kind = "LF" if name in LF_DATASETS else "crowd"
        methods = [("MV", run_wsagg, {}, False)]
        for ab in ("auto", "ignore", "model"):
            for semi in (False, True):
                methods.append((f"DS-{ab}", run_wsagg, {"abstain": ab}, semi))
        # the earlier fixed default diagonal_smoothing=1, for comparison with "auto"
        methods.append(
            ("DS-model-d1", run_wsagg, {"abstain": "model", "diagonal_smoothing": 1.0}, True)
        )
        if peers.get("crowdkit"):
            methods += [("crowdkit-DS", run_crowdkit, None, s) for s in (False, True)]
        if peers.get("snorkel"):
            if L.has_repeats():
                skipped.append(f"{name}: snorkel needs a dense matrix (repeated votes)")
            else:
                methods += [("snorkel-LM", run_snorkel, None, s) for s in (False, True)]
        for label, fn, params, semi in methods:
            kn = known if semi else None
            t0 = time.perf_counter()
            try:
                if fn is run_wsagg:
                    proba, n_iter, notes = fn(L, kn, **params)
                else:
                    proba, n_iter, notes = fn(L, kn)
            except Exception as err:
                rows.append(
                    {
                        "dataset": name,
                        "kind": kind,
                        "method": label,
                        "mode": "semi" if semi else "unsup",
                        "error": repr(err)[:120],
                    }
                )
                continue
            dt = time.perf_counter() - t0
            row = {
                "dataset": name,
                "kind": kind,
                "method": label,
                "mode": "semi" if semi else "unsup",
                **scores(proba[eval_mask], y[eval_mask], L.n_classes),
                "n_iter": n_iter,
                "seconds": dt,
                "n_eval": int(eval_mask.sum()),
                "known": protocol if semi else "",
                "notes": notes,
            }
            rows.append(row)
        print(f"done {name}", file=sys.stderr)

    print_table(
        [
            {
                k: r.get(k)
                for k in (
                    "dataset",
                    "method",
                    "mode",
                    "acc",
                    "bal_acc",
                    "log_loss",
                    "n_iter",
                    "notes",
                )
            }
            for r in rows
        ]
    )
    summary = summarize(rows)
    print()
    print_table(summary)
    for s in skipped:
        print("skipped:", s)
    save_results(
        "dawid_skene_realdata" + ("_smoke" if args.smoke else ""),
        rows,
        out_dir=args.out_dir,
        packages=("numpy", "scipy", "sklearn", "pandas", "torch", "crowdkit", "snorkel"),
        extra={"summary": summary, "skipped": skipped},
    )
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Mean accuracy per (kind, method, mode), and the gap to majority vote."""
    import pandas as pd

    df = pd.DataFrame([r for r in rows if "acc" in r])
    if df.empty:
        return []
    mv = df[df.method == "MV"].set_index("dataset")["acc"]
    df["acc_minus_mv"] = df["acc"] - df["dataset"].map(mv)
    out = (
        df.groupby(["kind", "method", "mode"])
        .agg(
            datasets=("acc", "size"),
            mean_acc=("acc", "mean"),
            mean_bal_acc=("bal_acc", "mean"),
            mean_log_loss=("log_loss", "mean"),
            mean_acc_minus_mv=("acc_minus_mv", "mean"),
            worst_acc_minus_mv=("acc_minus_mv", "min"),
        )
        .reset_index()
    )
    return out.to_dict("records")


if __name__ == "__main__":
    main()
