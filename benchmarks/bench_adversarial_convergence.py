"""Convergence of the BF aggregator to g* as the number of labeled points grows.

Excess log loss over the best approximator g* of the exponential family (the oracle: BF
with equality constraints at the true statistics of the target items), i.e.
``logloss(g_bf) - logloss(g*) = mean KL(g* || g_bf)`` (Pythagorean identity), for ``v`` =
25 .. 1600 labeled points drawn from a separate pool, on synthetic one-coin Dawid-Skene data
(where g* is the true posterior up to sampling noise) and on the shared real sets (``v`` up
to the validation-split size). Dawid-Skene EM (one-coin, unsupervised) on the same data for
contrast. Log-log plot with the fitted slope against the O(1/sqrt(v)) reference.

    python benchmarks/bench_adversarial_convergence.py [--reps 5] [--smoke] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (
    DEFAULT_DATA_HOME,
    RESULTS_DIR,
    print_table,
    save_figure,
    save_results,
)
from wsagg.aggregation.adversarial import AdversarialLogLoss
from wsagg.datasets import make_dawid_skene
from wsagg.datasets._bf import load_bf_mat


def _ll(y: np.ndarray, p: np.ndarray) -> float:
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-15, 1.0)).mean())


def one_coin(n: int, m: int, k: int, seed: int):
    rng = np.random.default_rng(seed)
    acc = rng.uniform(0.45, 0.8, size=m)
    prior = rng.dirichlet(np.full(k, 3.0))
    d = make_dawid_skene(n, m, k, class_prior=prior, coverage=0.7, accuracy=acc,
                         errors="uniform", random_state=seed)
    return d.L.to_dense(), d.y


def curve(name, L_t, y_t, L_pool, y_pool, k, vs, reps, seed):
    from wsagg import DawidSkene

    oracle = AdversarialLogLoss(n_classes=k, confidence=0.0, polytope="all").fit(L_t, y_t)
    g_ll = _ll(y_t, oracle.predict_proba(L_t))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = DawidSkene(n_classes=k, model="one-coin", random_state=0).fit(L_t)
    ds_excess = _ll(y_t, ds.predict_proba(L_t)) - g_ll
    rng = np.random.default_rng(seed)
    rows = []
    for v in vs:
        ex, widened = [], 0
        for _ in range(reps):
            idx = rng.choice(y_pool.shape[0], v, replace=False)
            est = AdversarialLogLoss(n_classes=k, on_infeasible="widen").fit(
                L_t, L_labeled=L_pool[idx], y_labeled=y_pool[idx])
            widened += est.widening_factor_ > 1
            ex.append(_ll(y_t, est.predict_proba(L_t)) - g_ll)
        rows.append({"data": name, "v": v, "excess_logloss": float(np.mean(ex)),
                     "excess_sd": float(np.std(ex)), "gstar_logloss": g_ll,
                     "ocds_em_excess": ds_excess, "widened_draws": widened, "reps": reps})
    return rows


def slope(rows):
    v = np.array([r["v"] for r in rows], float)
    e = np.array([r["excess_logloss"] for r in rows], float)
    ok = e > 0
    return float(np.polyfit(np.log(v[ok]), np.log(e[ok]), 1)[0]) if ok.sum() >= 2 else np.nan


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--n-target", type=int, default=20_000)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--data-home", type=Path, default=DEFAULT_DATA_HOME)
    ap.add_argument("--out-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    reps = 1 if args.smoke else args.reps
    n_t = 2000 if args.smoke else args.n_target
    vs = [25, 100] if args.smoke else [25, 50, 100, 200, 400, 800, 1600]
    rows = []
    for k in (2, 3):
        L, y = one_coin(n_t + 1600, 5, k, seed=k)
        rows += curve(f"one-coin DS k={k}", L[:n_t], y[:n_t], L[n_t:], y[n_t:], k, vs,
                      reps, seed=k)
    real = ["cardio"] if args.smoke else ["cardio", "domain", "sms", "breast_cancer"]
    if (args.data_home / "bf_uai2024").is_dir():
        for name in real:
            d = load_bf_mat(args.data_home, name)
            nv = d["val_y"].shape[0]
            vr = [v for v in vs if v <= nv]
            rows += curve(name, d["train_L"], d["train_y"], d["val_L"], d["val_y"],
                          d["n_classes"], vr, reps, seed=0)
    slopes = {}
    for name in dict.fromkeys(r["data"] for r in rows):
        slopes[name] = slope([r for r in rows if r["data"] == name])
    for r in rows:
        r["fitted_slope"] = slopes[r["data"]]
    print_table(rows, floatfmt=".4g")
    tag = "_smoke" if args.smoke else ""
    save_results("adversarial_convergence" + tag, rows, out_dir=args.out_dir,
                 extra={"slopes": slopes})
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return rows
    fig, ax = plt.subplots(figsize=(7, 5))
    for name in slopes:
        rr = [r for r in rows if r["data"] == name]
        v = [r["v"] for r in rr]
        e = [max(r["excess_logloss"], 1e-6) for r in rr]
        line = ax.loglog(v, e, "o-", label=f"BF {name} (slope {slopes[name]:.2f})")[0]
        ax.axhline(max(rr[0]["ocds_em_excess"], 1e-6), color=line.get_color(), ls=":", lw=1)
    v0 = np.array(vs, float)
    first = rows[0]["excess_logloss"]
    ax.loglog(v0, first * np.sqrt(v0[0] / v0), "k--", label="O(1/sqrt(v))")
    ax.set_xlabel("labeled points v")
    ax.set_ylabel("excess train log loss over g*")
    ax.set_title("BF -> g* as labels grow (dotted: one-coin DS EM, v = 0)")
    ax.legend(fontsize=7)
    out = (args.out_dir or RESULTS_DIR) / f"adversarial_convergence{tag}.png"
    save_figure(fig, out)
    plt.close(fig)
    return rows


if __name__ == "__main__":
    main()
