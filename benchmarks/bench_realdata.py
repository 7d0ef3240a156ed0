"""Every registered aggregator, ``auto`` included, on every shared dataset, beside the peers.

For each dataset (all splits stacked, as in ``bench_dawid_skene_realdata.py``) and each
method, unsupervised (``unsup``) and with the validation split's gold as known labels
(``semi``, where the method uses labels), the table gives accuracy, log loss and the expected
calibration error (ECE, 15 equal-width bins of the top probability) on the gold items that
are not known and have a vote — the same items for every method. Peers (crowd-kit DS,
one-coin DS, GLAD, MACE, MV, Wawa, ZeroBasedSkill; Snorkel's LabelModel) run when installed
(the ``.venv-bench`` environment, ``benchmarks/_peers.py``).

Then, per dataset: the best peer, ``auto``, the gap (``auto`` minus best peer).

**Leave-one-dataset-out** (``--lodo``, on by default): for the gold-free criterion of
``auto`` (held-out vote likelihood) the Spearman rank correlation, per dataset, between the
criterion and the true accuracy of the candidates; and the choice between the selection
policies (``auto`` with and without the one-standard-error rule, and always-DS /
always-MV) made for each dataset *from the other datasets only* (best mean accuracy there),
with the accuracy it then gets on the held-out dataset.

Usage::

    .venv-bench/bin/python benchmarks/bench_realdata.py [--smoke] [--datasets ...] [--no-peers]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import warnings
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402
from sklearn.metrics import log_loss  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import print_table, save_results  # noqa: E402
from benchmarks.bench_dawid_skene_realdata import (  # noqa: E402
    LF_DATASETS,
    known_and_eval,
    stack_splits,
)
from wsagg._registry import AGGREGATORS, get_aggregator  # noqa: E402
from wsagg.aggregation.auto import default_candidates  # noqa: E402
from wsagg.datasets import list_shared  # noqa: E402

SMOKE_DATASETS = ["snow2008_temp", "bf_uai2024/cardio"]
# the peers of the "best peer" (crowd-kit DS, one-coin, GLAD, MACE, MV, Wawa, ZBS;
# Snorkel's LabelModel)
BEST_PEER_SET = (
    "crowdkit-DawidSkene", "crowdkit-OneCoinDawidSkene", "crowdkit-GLAD", "crowdkit-MACE",
    "crowdkit-MajorityVote", "crowdkit-Wawa", "crowdkit-ZeroBasedSkill", "snorkel-LabelModel",
)
SKIP_UNSUP = {"adversarial"}  # needs labels
# AutoAggregator's CV settings with labels, chosen between by leave-one-dataset-out
SEMI_VARIANTS = {  # (every setting spelled out: none depends on the current defaults)
    **{f"auto[{sc},argmax]": {"scoring": sc, "one_standard_error": False}
       for sc in ("log_loss", "accuracy")},
    **{f"auto[{sc},simplest-baseline]": {"scoring": sc, "one_standard_error": True,
                                         "baseline": "simplest"}
       for sc in ("log_loss", "accuracy")},
    **{f"auto[{sc},unsupervised-baseline]": {"scoring": sc, "one_standard_error": True,
                                             "baseline": "unsupervised"}
       for sc in ("log_loss", "accuracy")},
}
PEER_TIMEOUT_S = 180  # a peer still running after this is recorded as "> 180 s"


def _alarm(signum, frame):
    raise TimeoutError(f"did not finish in {PEER_TIMEOUT_S} s")
try:
    from benchmarks._peers import PEERS as _PEERS

    PEER_NAMES = set(_PEERS)
except ImportError:  # pragma: no cover
    PEER_NAMES = set(BEST_PEER_SET)


def ece(proba: np.ndarray, y: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error of the top-class probability (equal-width bins)."""
    conf = proba.max(axis=1)
    hit = proba.argmax(axis=1) == y
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        sel = bins == b
        if sel.any():
            total += sel.mean() * abs(hit[sel].mean() - conf[sel].mean())
    return float(total)


def scores(proba: np.ndarray, y: np.ndarray, k: int) -> dict:
    p = np.clip(proba, 1e-15, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    return {
        "acc": float(np.mean(p.argmax(axis=1) == y)),
        "log_loss": float(log_loss(y, p, labels=np.arange(k))),
        "ece": ece(p, y),
    }


def _fit(method: str, params: dict, L, known, k: int):
    est = get_aggregator(method, **params)
    est.set_params(n_classes=k)
    if "random_state" in est.get_params() and "random_state" not in params:
        est.set_params(random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proba = est.fit(L, known).predict_proba(L)
    return est, proba


def _peers():
    try:
        from benchmarks import _peers
    except ImportError:  # pragma: no cover
        return None, {}
    avail = _peers.available()
    return _peers, {name: fn for name, (_, fn) in _peers.PEERS.items()
                    if avail.get(name) is None and name in BEST_PEER_SET}


def record_fit(rows: list, base: dict, method: str, mode: str, fn, y: np.ndarray,
               eval_mask: np.ndarray, k: int, timeout: int = 0):
    """Time ``fn() -> (estimator, proba)`` and append its scores on ``eval_mask`` to
    ``rows`` (or the error: a crash, or a time-out after ``timeout`` s, is a result too);
    returns the estimator, ``None`` on error."""
    t0 = time.perf_counter()
    try:
        if timeout:
            signal.signal(signal.SIGALRM, _alarm)
            signal.alarm(timeout)
        try:
            est, proba = fn()
        finally:
            if timeout:
                signal.alarm(0)
    except Exception as err:
        rows.append({**base, "method": method, "mode": mode,
                     "error": f"{type(err).__name__}: {str(err)[:100]}"})
        return None
    rows.append({**base, "method": method, "mode": mode,
                 **scores(proba[eval_mask], y[eval_mask], k),
                 "seconds": round(time.perf_counter() - t0, 3),
                 "chosen": getattr(est, "selected_", "") if est is not None else ""})
    return est


def run_dataset(
    name: str, peers_mod, peers: dict, rows: list, lodo: dict, wsagg_methods: bool = True
) -> None:
    L, y, split_of = stack_splits(name)
    covered = L.covered()
    if not (y >= 0).any():
        return
    known, eval_mask, protocol = known_and_eval(y, split_of, covered)
    k = L.n_classes
    kind = "LF" if name in LF_DATASETS else "crowd"
    base = {"dataset": name, "kind": kind, "n_eval": int(eval_mask.sum())}

    def record(method: str, mode: str, fn, timeout: int = 0):
        return record_fit(rows, base, method, mode, fn, y, eval_mask, k, timeout)

    for method, spec in (AGGREGATORS.items() if wsagg_methods else ()):
        if spec.binary_only and k != 2:
            continue
        if method not in SKIP_UNSUP:
            est = record(method, "unsup", lambda m=method: _fit(m, {}, L, None, k))
            if method == "auto" and est is not None:
                lodo[name] = _lodo_entry(est, L, y, eval_mask, k)
        if method == "auto":
            # every CV setting (scoring x one-standard-error rule), for the leave-one-
            # dataset-out choice of the default (semi_lodo_table); "auto" is the default's
            default = _default_variant()
            for variant, params in SEMI_VARIANTS.items():
                record(variant, "semi",
                       lambda p=params: _fit("auto", dict(p), L, known, k))
                if variant == default and "acc" in rows[-1]:
                    rows.append({**rows[-1], "method": "auto"})
        elif spec.semi_supervised or spec.needs_labels:
            record(method, "semi", lambda m=method: _fit(m, {}, L, known, k))
    dense = None
    for pname, fn in peers.items():
        if L.has_repeats() and pname in getattr(peers_mod, "DENSE_ONLY", set()):
            continue
        if pname in getattr(peers_mod, "BINARY_ONLY", set()) and k != 2:
            continue
        if dense is None:
            dense = L.to_dense() if not L.has_repeats() else L
        data = dense if "snorkel" in pname else L
        record(pname, "unsup", lambda fn=fn, data=data: (None, fn(data, k)),
               timeout=PEER_TIMEOUT_S)
    print(f"done {name} ({protocol})", file=sys.stderr)


def _lodo_entry(auto, L, y, eval_mask, k) -> dict:
    """Per candidate of ``auto(unsupervised="criterion")``: its criterion score and true
    accuracy; and the source type the "by-source-type" policy sees."""
    from wsagg import AutoAggregator
    from wsagg.diagnostics import abstains_are_informative

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        crit_auto = AutoAggregator(n_classes=k, unsupervised="criterion", baseline="simplest",
                                   random_state=0).fit(L)
    res = crit_auto.cv_results_
    counts = np.bincount(L.source * k + L.label, minlength=L.n_sources * k).reshape(-1, k)
    lf_like = abstains_are_informative(counts, L.n_votes, L.n_items)
    crit_pred = crit_auto.predict_proba(L)[eval_mask].argmax(axis=1)
    acc = {}
    for label, method, params in default_candidates(k, has_labels=False):
        try:
            _, proba = _fit(method, params, L, None, k)
            acc[label] = float(np.mean(proba[eval_mask].argmax(axis=1) == y[eval_mask]))
        except Exception:
            acc[label] = np.nan
    crit = {c: s for c, s in zip(res["candidate"], res["score"], strict=True)}
    # each candidate's paired (item-clustered) standard error of its difference from the best
    se = {c: s for c, s in zip(res["candidate"], res["score_std_err"], strict=True)}
    labels = [c for c in crit if c in acc and np.isfinite(crit[c]) and np.isfinite(acc[c])]
    rho = spearmanr([crit[c] for c in labels], [acc[c] for c in labels]).statistic
    return {"rho": float(rho), "acc": acc, "crit": crit, "se": se, "lf_like": bool(lf_like),
            "criterion_acc": float(np.mean(crit_pred == y[eval_mask]))}


def _baseline_first(e: dict) -> float:
    """Accuracy of the 1-SE rule over the criterion with the by-source-type choice tried
    first, then the candidates simplest first (the rule of ``AutoAggregator``)."""
    from wsagg.aggregation.auto import _CROWD_CHOICE, _LF_CHOICE

    crit = {c: v for c, v in e["crit"].items() if np.isfinite(v)}
    if not crit:
        return np.nan
    best = max(crit.values())
    base = _LF_CHOICE if e["lf_like"] else _CROWD_CHOICE
    order = [base] + [c for c in e["crit"] if c != base]
    for c in order:
        if c in crit and best - crit[c] <= e["se"][c]:
            return e["acc"].get(c, np.nan)
    return np.nan


def lodo_table(rows: list[dict], lodo: dict) -> list[dict]:
    """Leave-one-dataset-out choice of the selection policy; rank correlations."""
    import pandas as pd

    df = pd.DataFrame([r for r in rows if "acc" in r and r["mode"] == "unsup"])
    if df.empty:
        return []
    acc = df.pivot_table(index="dataset", columns="method", values="acc")
    fixed = [m for m in acc.columns
             if m != "auto" and not m.startswith(("crowdkit", "snorkel", "flyingsquid",
                                                   "peerannot"))]
    if lodo:  # auto's candidates that are not registry defaults (e.g. hierarchical DS)
        extra = {c for e in lodo.values() for c in e["acc"]} - set(acc.columns)
        for c in sorted(extra):
            acc[c] = pd.Series({d: e["acc"].get(c, np.nan) for d, e in lodo.items()})
            fixed.append(c)
    # the candidate policies: fixed rules, none learned from the data they are scored on
    table = pd.DataFrame({f"always {m}": acc[m] for m in fixed})
    if lodo:
        # the gold-free criterion with the 1-SE rule, and without it (argmax)
        table["criterion (1-SE)"] = pd.Series({d: e["criterion_acc"] for d, e in lodo.items()})
        table["criterion (argmax)"] = pd.Series(
            {d: e["acc"].get(max(e["crit"], key=lambda c: e["crit"][c]), np.nan)
             for d, e in lodo.items()})
        # the criterion overriding the by-source-type choice only beyond one standard error
        # (AutoAggregator(unsupervised="criterion", baseline="unsupervised"))
        table["criterion (1-SE, by-source-type first)"] = pd.Series(
            {d: _baseline_first(e) for d, e in lodo.items() if "se" in e})
        lf_like = pd.Series({d: bool(e["lf_like"]) for d, e in lodo.items()})
        # by source type: method a where abstains are informative (labeling functions),
        # method b elsewhere (crowd workers), for every pair (a, b)
        pairs = {
            f"by source type (LF: {a_m}, crowd: {b_m})": pd.Series(
                {d: acc.loc[d, a_m] if lf_like.get(d, False) else acc.loc[d, b_m]
                 for d in acc.index})
            for a_m in fixed for b_m in fixed if a_m != b_m
        }
        table = pd.concat([table, pd.DataFrame(pairs)], axis=1)  # (one insert, not 169)
    out = []
    for d in table.index:
        rest = table.drop(index=d)
        # a policy must be defined on every other set (a binary-only method, or one that
        # failed somewhere, is not a default): its mean over fewer sets is not comparable
        others = rest.loc[:, rest.notna().all()].mean()
        choice = others.idxmax()
        out.append({"dataset": d, "policy chosen without it": choice,
                    "its accuracy": table.loc[d, choice],
                    "rank corr (criterion vs acc)": lodo.get(d, {}).get("rho", np.nan)})
    return out


def _default_variant() -> str | None:
    """The SEMI_VARIANTS setting that is ``auto``'s current default (``None`` if none is)."""
    defaults = get_aggregator("auto").get_params()
    for variant, params in SEMI_VARIANTS.items():
        if all(defaults[key] == v for key, v in params.items()):
            return variant
    return None


def _semi_auto_rows(rows: list[dict]) -> list[dict]:
    """Saved rows with the ``auto`` semi rows taken again from the setting that is the
    default *now* (each setting's rows are real fits; ``auto``'s are copies of one of them),
    so that ``--report-only`` reflects a default chosen after the run."""
    variant = _default_variant()
    if variant is None:
        return rows
    out = [r for r in rows if not (r["method"] == "auto" and r["mode"] == "semi")]
    out += [{**r, "method": "auto"} for r in rows if r["method"] == variant and "acc" in r]
    return out


def semi_lodo_table(rows: list[dict]) -> list[dict]:
    """Leave-one-dataset-out choice of ``auto``'s CV setting (with the validation labels):
    for each dataset, the setting with the best mean accuracy over the *other* datasets, and
    what it gets on the held-out one."""
    import pandas as pd

    names = list(SEMI_VARIANTS)
    df = pd.DataFrame([r for r in rows if "acc" in r and r["mode"] == "semi"
                       and r["method"] in names])
    if df.empty:
        return []
    acc = df.pivot_table(index="dataset", columns="method", values="acc")
    ll = df.pivot_table(index="dataset", columns="method", values="log_loss")
    out = []
    for d in acc.index:
        choice = acc.drop(index=d).mean().idxmax()
        out.append({"dataset": d, "setting chosen without it": choice,
                    "its accuracy": acc.loc[d, choice], "its log loss": ll.loc[d, choice],
                    **{f"{m} acc": acc.loc[d, m] for m in acc.columns}})
    return out


def gap_table(rows: list[dict]) -> list[dict]:
    import pandas as pd

    df = pd.DataFrame([r for r in rows if "acc" in r])
    out = []
    for (d, kind), g in df.groupby(["dataset", "kind"]):
        peers = g[g.method.isin(BEST_PEER_SET)]
        row = {"dataset": d, "kind": kind}
        if not peers.empty:
            best = peers.loc[peers.acc.idxmax()]
            row.update(best_peer=best.method, best_peer_acc=best.acc)
        for mode in ("unsup", "semi"):
            a = g[(g.method == "auto") & (g["mode"] == mode)]
            if not a.empty:
                row[f"auto_{mode}_acc"] = float(a.acc.iloc[0])
                row[f"auto_{mode}_log_loss"] = float(a.log_loss.iloc[0])
                row[f"auto_{mode}_chose"] = a.chosen.iloc[0]
        mv = g[(g.method == "majority") & (g["mode"] == "unsup")]
        if not mv.empty:
            row["mv_acc"], row["mv_log_loss"] = float(mv.acc.iloc[0]), float(mv.log_loss.iloc[0])
        if "best_peer_acc" in row and "auto_unsup_acc" in row:
            row["gap_unsup"] = row["auto_unsup_acc"] - row["best_peer_acc"]
        if "best_peer_acc" in row and "auto_semi_acc" in row:
            row["gap_semi"] = row["auto_semi_acc"] - row["best_peer_acc"]
        out.append(row)
    return out


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="two small datasets, no peers")
    ap.add_argument("--datasets", nargs="*", default=None)
    ap.add_argument("--no-peers", action="store_true",
                    help="skip the peers; their rows are read from realdata_peers.json if present")
    ap.add_argument("--peers-only", action="store_true",
                    help="run the peers only and save realdata_peers.json")
    ap.add_argument("--report-only", action="store_true",
                    help="recompute the tables from the saved realdata.json and "
                         "realdata_peers.json (no fitting)")
    ap.add_argument("--out-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    names = args.datasets or (SMOKE_DATASETS if args.smoke else list_shared())
    if args.peers_only and not args.datasets:  # the crowd sets first: the gap target is there
        names = sorted(names, key=lambda n: n in LF_DATASETS)
    peers_mod, peers = (None, {}) if (args.smoke or args.no_peers) else _peers()
    rows: list[dict] = []
    lodo: dict = {}
    results_dir = args.out_dir or Path(__file__).resolve().parent / "results"
    if args.report_only:
        import json

        stem = "realdata" + ("_smoke" if args.smoke else "")
        saved = json.loads((results_dir / f"{stem}.json").read_text())
        rows = _semi_auto_rows([r for r in saved["rows"] if r["method"] not in PEER_NAMES])
        lodo = saved["lodo_entries"]
        names = sorted({r["dataset"] for r in rows})
    else:
        for name in names:
            run_dataset(name, peers_mod, peers, rows, lodo, wsagg_methods=not args.peers_only)
            if args.peers_only:  # save as we go: peers are slow
                save_results("realdata_peers", rows, out_dir=args.out_dir)
    if args.peers_only:
        save_results("realdata_peers", rows, out_dir=args.out_dir,
                     packages=("numpy", "scipy", "sklearn", "pandas", "crowdkit", "snorkel"))
        print_table([{c: r.get(c) for c in ("dataset", "method", "acc", "log_loss", "ece",
                                            "seconds")} for r in rows if "acc" in r])
        return rows
    peer_file = results_dir / "realdata_peers.json"
    if not peers and peer_file.exists() and not args.smoke:
        import json

        saved = json.loads(peer_file.read_text())["rows"]
        rows.extend(r for r in saved if r["dataset"] in names)
        print(f"(peer rows read from {peer_file})", file=sys.stderr)
    cols = ("dataset", "method", "mode", "acc", "log_loss", "ece", "seconds", "chosen")
    print_table([{c: r.get(c) for c in cols} for r in rows if "acc" in r])
    errors = [r for r in rows if "error" in r]
    for r in errors:
        print(f"error: {r['dataset']} {r['method']} {r['mode']}: {r['error']}")
    gaps = gap_table(rows)
    print("\nper dataset: best peer vs auto")
    print_table(gaps)
    lt = lodo_table(rows, lodo)
    print("\nleave-one-dataset-out: the selection policy chosen from the other sets")
    print_table(lt)
    st = semi_lodo_table(rows)
    print("\nleave-one-dataset-out: auto's CV setting (validation labels known) chosen from "
          "the other sets")
    print_table(st)
    summary = _summary(rows, gaps, lt)
    print("\nsummary")
    print_table(summary)
    save_results("realdata" + ("_smoke" if args.smoke else ""), rows, out_dir=args.out_dir,
                 packages=("numpy", "scipy", "sklearn", "pandas", "crowdkit", "snorkel"),
                 extra={"gaps": gaps, "lodo": lt, "semi_lodo": st, "summary": summary,
                        "lodo_entries": lodo})
    return rows


def _summary(rows, gaps, lt) -> list[dict]:
    import pandas as pd

    df = pd.DataFrame([r for r in rows if "acc" in r])
    if df.empty:
        return []
    out = (df.groupby(["kind", "method", "mode"])
           .agg(datasets=("acc", "size"), mean_acc=("acc", "mean"),
                mean_log_loss=("log_loss", "mean"), mean_ece=("ece", "mean"))
           .reset_index().to_dict("records"))
    g = pd.DataFrame(gaps)
    for kind, gg in g.groupby("kind"):
        rec = {"kind": kind, "method": "best peer per set", "mode": "unsup",
               "datasets": int(gg.best_peer_acc.notna().sum()) if "best_peer_acc" in gg else 0}
        if "best_peer_acc" in gg:
            rec["mean_acc"] = float(gg.best_peer_acc.mean())
        out.append(rec)
    if lt:
        ltd = pd.DataFrame(lt)
        out.append({"kind": "all", "method": "LODO-chosen policy", "mode": "unsup",
                    "datasets": len(ltd), "mean_acc": float(ltd["its accuracy"].mean())})
    return out


if __name__ == "__main__":
    main()
