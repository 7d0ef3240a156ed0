"""Prior correction end to end: aggregator soft labels -> correction -> classifier.

For each dataset, the label matrix of the training items goes through an aggregator
(majority vote and Dawid-Skene by default) and one of these corrections before a linear
``SoftLabelClassifier`` (Adam, full batch) is trained on TF-IDF features of the texts:

``none``          soft cross-entropy on the soft labels;
``prior_swap``    soft labels swapped to a uniform prior (``wsagg.prior.correct``), then soft
                  CE — expected to do little: near one-hot targets stay near one-hot;
``la_loss``       logit-adjusted loss, prior = the soft labels' marginal, tau = 1 (Menon et al.);
``bal_softmax``   balanced softmax, prior = counts of the soft labels' argmax (Ren et al.);
``weighted_ce``   class-weighted CE, w_c = 1 / (k pi_c);
``posthoc_la``    soft CE, then post-hoc z - log pi (Menon et al.);
``p2p``           soft CE, then Prior2Posterior z - log mean_i softmax(z_i) (Bhat et al.).

Scores on gold test labels: accuracy, balanced accuracy, macro-F1, tail recall (recall of the
rarest class of the *gold* training labels — ABBR, spam, spouse, HAM, class 9 — gold used only
to name that class), mean and standard deviation over seeds. The table also shows that class's
share of the gold training labels and of the training soft-label mass (how much the
aggregator under- or over-weights it).

Datasets (``../shared/data``; read its MANIFEST first):
* ``trec``     WRENCH TREC, train -> test; ABBR is 1.6% of the data. Test texts begin with the
               fine-grained gold type (a label leak): the first token is stripped.
* ``sms``      WRENCH SMS **train split only** (valid/test votes look misaligned), split
               70/30 per seed; spam is 13%.
* ``spouse``   Snorkel spouse test split (the only one available), split 70/30 per seed; 8%
               positive.
* ``youtube``  WRENCH YouTube, train -> test; balanced (a control: corrections should not hurt).
* ``synthetic`` long-tailed Gaussian task with known answer: 10 classes, exponential profile with
               imbalance ratio 100, Dawid-Skene votes with a Zipf-free prior equal to the
               class profile, a balanced test set.

Usage::

    python benchmarks/bench_longtail_pipeline.py [--seeds 5] [--aggregators mv ds] [--threads 1]
    python benchmarks/bench_longtail_pipeline.py --smoke --out-dir /tmp/x
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import (
    DEFAULT_DATA_HOME,
    RESULTS_DIR,
    print_table,
    save_figure,
    save_results,
)

METHODS = ("none", "prior_swap", "la_loss", "bal_softmax", "weighted_ce", "posthoc_la", "p2p")


def classifier_for(method: str, seed: int, max_iter: int):
    from wsagg.downstream import SoftLabelClassifier

    kw = {"none": {}, "prior_swap": {}, "la_loss": {"loss": "logit_adjusted"},
          "bal_softmax": {"loss": "balanced_softmax", "class_prior": "counts"},
          "weighted_ce": {"loss": "weighted_cross_entropy", "class_weight": "balanced"},
          "posthoc_la": {"posthoc": "logit_adjust"}, "p2p": {"posthoc": "p2p"}}[method]
    return SoftLabelClassifier(optimizer="adam", lr=1e-2, max_iter=max_iter, alpha=1e-4,
                               progress=False, random_state=seed, **kw)


def make_aggregator(name: str):
    if name == "mv":
        from wsagg.aggregation.majority import MajorityVote

        return MajorityVote()
    if name == "ds":
        from wsagg import DawidSkene

        return DawidSkene()
    raise ValueError(f"unknown aggregator {name!r}")


def _tfidf(train_texts: list[str], test_texts: list[str]):
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    return vec.fit_transform(train_texts), vec.transform(test_texts)


def load_task(name: str, seed: int, data_home: Path, smoke: bool):
    """Return (L_train, X_train, X_test, y_test, class_names, y_train_gold)."""
    from wsagg.datasets import load_shared

    if name in ("trec", "youtube"):
        tr = load_shared(f"wrench_{name}", "train", data_home=data_home)
        te = load_shared(f"wrench_{name}", "test", data_home=data_home)
        test_texts = list(te.texts)
        if name == "trec":  # strip the leaked fine-grained gold type
            test_texts = [t.split(" ", 1)[1] if " " in t else t for t in test_texts]
        L, texts, y_test, y_train = tr.L, list(tr.texts), te.y, tr.y
        if smoke:
            L, texts, y_train = L.take_items(np.arange(2000)), texts[:2000], y_train[:2000]
        Xtr, Xte = _tfidf(texts, test_texts)
        return L, Xtr, Xte, y_test, tr.class_names, y_train
    if name in ("sms", "spouse"):
        ds = load_shared("wrench_sms" if name == "sms" else "spouse_snorkel_test",
                         "train" if name == "sms" else "all", data_home=data_home)
        n = ds.L.n_items
        perm = np.random.default_rng(seed).permutation(n)
        if smoke:
            perm = perm[:800]
        cut = int(0.7 * perm.shape[0])
        tr_idx, te_idx = np.sort(perm[:cut]), np.sort(perm[cut:])
        texts = list(ds.texts)
        Xtr, Xte = _tfidf([texts[i] for i in tr_idx], [texts[i] for i in te_idx])
        return (ds.L.take_items(tr_idx), Xtr, Xte, ds.y[te_idx], ds.class_names,
                ds.y[tr_idx])
    if name == "synthetic":
        return synthetic_task(seed, smoke)
    raise ValueError(name)


def synthetic_task(seed: int, smoke: bool = False):
    """10 classes, n_c = 1000 * 0.01**(c/9) (imbalance ratio 100), Gaussian features with
    overlapping class means, Dawid-Skene votes (5 sources, 70% coverage, accuracy 0.6-0.8),
    balanced test set of 200 per class."""
    from wsagg.datasets import make_dawid_skene

    k, d = 10, 10
    n_c = np.floor(1000 * 0.01 ** (np.arange(k) / (k - 1)))
    prior = n_c / n_c.sum()
    n = 600 if smoke else int(n_c.sum())
    ds = make_dawid_skene(n, 5, k, class_prior=prior, coverage=0.7, accuracy=(0.6, 0.8),
                          random_state=seed)
    rng = np.random.default_rng(seed + 1000)
    mu = rng.normal(size=(k, d)) * 1.0
    X = mu[ds.y] + rng.normal(size=(n, d))
    y_test = np.repeat(np.arange(k), 50 if smoke else 200)
    Xte = mu[y_test] + rng.normal(size=(y_test.shape[0], d))
    return ds.L, X, Xte, y_test, [f"c{c}" for c in range(k)], ds.y


def run_one(task, agg_name: str, method: str, seed: int, max_iter: int) -> dict:
    from wsagg import metrics
    from wsagg.downstream import WeakSupervisionPipeline

    L, Xtr, Xte, y_test, _, y_train = task
    pipe = WeakSupervisionPipeline(
        aggregator=make_aggregator(agg_name),
        prior_correction="uniform" if method == "prior_swap" else None,
        classifier=classifier_for(method, seed, max_iter),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(L, Xtr)
    proba = pipe.predict_proba(Xte)
    pred = np.argmax(proba, axis=1)
    counts = pipe.class_counts_
    gold = np.bincount(y_train[y_train >= 0], minlength=counts.shape[0])
    tail = int(np.argmin(gold))
    has = y_test >= 0
    return {
        "accuracy": metrics.accuracy(y_test, pred),
        "balanced_accuracy": metrics.balanced_accuracy(y_test, pred),
        "macro_f1": metrics.macro_f1(y_test, pred, n_classes=proba.shape[1]),
        "log_loss": metrics.log_loss(y_test[has], proba[has]),
        "ece": metrics.expected_calibration_error(y_test[has], proba[has]),
        "tail_recall": float(np.mean(pred[has & (y_test == tail)] == tail)),
        "tail_class": tail,
        "train_tail_share": float(gold[tail] / gold.sum()),
        "softlabel_tail_share": float(counts[tail] / counts.sum()),
        "eff_prior_max_over_min": float(pipe.classifier_.effective_prior_.max()
                                        / pipe.classifier_.effective_prior_.min()),
    }


def plot(summary: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in summary))
    aggs = list(dict.fromkeys(r["aggregator"] for r in summary))
    metrics_ = ("balanced_accuracy", "macro_f1", "tail_recall")
    fig, axes = plt.subplots(len(metrics_), len(aggs),
                             figsize=(max(1.9 * len(datasets), 5) * len(aggs), 8),
                             squeeze=False, sharey="row", layout="constrained")
    methods = list(dict.fromkeys(r["method"] for r in summary))
    width = 0.8 / len(methods)
    colors = plt.cm.tab10(np.arange(len(methods)))
    by_key = {(r["dataset"], r["aggregator"], r["method"]): r for r in summary}
    for a, met in enumerate(metrics_):
        for b, agg in enumerate(aggs):
            ax = axes[a, b]
            for j, meth in enumerate(methods):
                rs = [by_key.get((ds, agg, meth)) for ds in datasets]
                ax.bar(np.arange(len(datasets)) + j * width,
                       [r[f"{met}_mean"] if r else np.nan for r in rs], width,
                       yerr=[r[f"{met}_std"] if r else 0.0 for r in rs], color=colors[j],
                       label=meth, capsize=2)
            ax.set_xticks(np.arange(len(datasets)) + 0.4 - width / 2)
            ax.set_xticklabels(datasets)
            ax.set_ylim(0, 1.05)
            if b == 0:
                ax.set_ylabel(met)
            if a == 0:
                ax.set_title(f"aggregator: {agg}", fontsize=9)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, ncol=len(methods), fontsize=8, loc="outside lower center")
    fig.suptitle("Aggregator soft labels -> correction -> linear classifier (mean ± sd over "
                 "seeds)", fontsize=10)
    save_figure(fig, path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="+",
                    default=["trec", "sms", "spouse", "youtube", "synthetic"])
    ap.add_argument("--aggregators", nargs="+", default=["mv", "ds"],
                    help="mv: MajorityVote; ds: DawidSkene (its class_prior_ is the source "
                    "prior of prior_swap)")
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--max-iter", type=int, default=150)
    ap.add_argument("--data-home", type=Path, default=DEFAULT_DATA_HOME)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    ap.add_argument("--plot-only", action="store_true",
                    help="redraw <out-dir>/longtail_pipeline.png from the saved JSON")
    args = ap.parse_args(argv)
    if args.plot_only:
        import json

        saved = json.loads((args.out_dir / "longtail_pipeline.json").read_text())
        plot(saved["summary"], args.out_dir / "longtail_pipeline.png")
        return 0
    import torch

    torch.set_num_threads(args.threads)
    seeds, max_iter, datasets = args.seeds, args.max_iter, args.datasets
    if args.smoke:
        seeds, max_iter = 1, 5
        datasets = [d for d in datasets if d == "synthetic" or args.data_home.is_dir()][:2]
    rows = []
    t0 = time.perf_counter()
    for ds in datasets:
        for seed in range(seeds):
            task = load_task(ds, seed, args.data_home, args.smoke)
            for agg in args.aggregators:
                for method in args.methods:
                    r = run_one(task, agg, method, seed, max_iter)
                    rows.append({"dataset": ds, "aggregator": agg, "method": method,
                                 "seed": seed, **r})
        print(f"{ds}: done ({time.perf_counter() - t0:.0f}s)", flush=True)
    import pandas as pd

    df = pd.DataFrame(rows)
    cols = ["accuracy", "balanced_accuracy", "macro_f1", "tail_recall"]
    g = df.groupby(["dataset", "aggregator", "method"], sort=False)
    summary = []
    for (ds, agg, meth), part in g:
        row = {"dataset": ds, "aggregator": agg, "method": meth, "n_seeds": len(part),
               "tail": int(part["tail_class"].iloc[0]),
               "tail_share": round(float(part["train_tail_share"].mean()), 4),
               "softlabel_tail_share": round(float(part["softlabel_tail_share"].mean()), 4)}
        for c in cols:
            row[f"{c}_mean"] = float(part[c].mean())
            row[f"{c}_std"] = float(part[c].std(ddof=0))
        summary.append(row)
    table = [{"dataset": r["dataset"], "agg": r["aggregator"], "method": r["method"],
              "tail(gold;soft share)": f"{r['tail']} ({r['tail_share']:.3f};"
                                       f"{r['softlabel_tail_share']:.3f})",
              **{c: f"{r[c + '_mean']:.3f}±{r[c + '_std']:.3f}" for c in cols}}
             for r in summary]
    print_table(table)
    name = "longtail_pipeline_smoke" if args.smoke else "longtail_pipeline"
    save_results(name, rows, out_dir=args.out_dir, packages=("numpy", "sklearn", "torch"),
                 extra={"summary": summary})
    plot(summary, args.out_dir / f"{name}.png")
    print(f"saved {args.out_dir / name}.json/.csv/.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
