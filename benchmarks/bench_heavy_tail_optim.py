"""Heavy-tailed class imbalance: GD vs Adam vs sign descent vs normalised GD.

Reproduces on CPU the linear-model experiment of Kunstner, Yadav, Milligan, Schmidt &
Bietti (NeurIPS 2024, "Heavy-Tailed Class Imbalance and Why Adam Outperforms Gradient
Descent on Language Models"), following their public code
(fKunstner/class-imbalance-sgd-adam, ``generate_dataset`` / ``BalancedXImbalancedY``):

* for ``i = 0..m-1`` there are ``2**i`` classes with ``2**(m-i)`` samples each, so every
  frequency group ``i`` holds ``2**m`` samples; ``n = m 2^m``, ``c = 2^m - 1`` classes,
  ``d = (m+1) 2^m`` features, ``X ~ U[0,1)`` independent of ``y``;
* one ``nn.Linear(d, c)`` with bias (PyTorch default initialisation), full-batch mean
  cross-entropy, float32, one step per epoch; train = evaluation set.

Optimisers (wsagg.downstream.make_optimizer): GD (torch SGD, no momentum), Adam (torch,
betas (0.9, 0.999)), sign descent and normalised GD (no momentum), each on a half-decade
step-size grid. **Stability rule**: a run is *stable* when its overall training loss is
finite and never rises more than 1% above the lowest loss seen so far (``L_t <= 1.01
min_{s<t} L_s`` for every step ``t``); the *best stable* step size is the stable one with the
lowest final overall loss. Per-group training loss (mean over the group's samples) is recorded
at every step.

Part 2 runs the same comparison through wsagg's own pipeline: a Zipf-prior Dawid-Skene
synthetic task (32 classes), majority-vote soft labels, ``SoftLabelClassifier`` trained with
GD vs Adam, training soft cross-entropy per frequency group (4 groups of equal sample mass).

Usage::

    python benchmarks/bench_heavy_tail_optim.py            # m = 7 (1000 steps), m = 8 (500 steps)
    python benchmarks/bench_heavy_tail_optim.py --smoke --out-dir /tmp/x
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import RESULTS_DIR, print_table, save_figure, save_results

GRIDS = {  # log10 step sizes, half-decades
    "gd": np.arange(-3.0, 1.0, 0.5),
    "adam": np.arange(-5.0, -1.0, 0.5),
    "sign": np.arange(-6.0, -2.0, 0.5),
    "normalized_gd": np.arange(-2.0, 2.0, 0.5),
}
NARROW_GRIDS = {  # 4 half-decades around the region the notes found stable at m = 7
    "gd": np.arange(-2.0, 0.0, 0.5),
    "adam": np.arange(-3.5, -1.5, 0.5),
    "sign": np.arange(-4.5, -2.5, 0.5),
    "normalized_gd": np.arange(-1.5, 0.5, 0.5),
}
LABELS = {"gd": "GD", "adam": "Adam", "sign": "Sign descent", "normalized_gd": "Normalised GD"}


def generate_dataset(m: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Kunstner et al.'s construction; returns X, y and the frequency group of each class."""
    sizes, groups = [], []
    for i in range(m):
        sizes += [2 ** (m - i)] * (2**i)
        groups += [i] * (2**i)
    y = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    n, d = int(y.shape[0]), (m + 1) * 2**m
    gen = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d, generator=gen)
    return X, y, np.asarray(groups)


def run(
    X: torch.Tensor, y: torch.Tensor, sample_group: torch.Tensor, n_groups: int,
    optimizer: str, lr: float, steps: int, seed: int = 0,
) -> dict:
    from wsagg.downstream import make_optimizer

    torch.manual_seed(seed)  # benchmark script only: nn.Linear's default init, as the paper
    model = torch.nn.Linear(X.shape[1], int(y.max()) + 1)
    opt = make_optimizer(optimizer, model.parameters(), lr)
    group_size = torch.bincount(sample_group, minlength=n_groups).double()
    curves = np.full((steps + 1, n_groups), np.nan)
    overall = np.full(steps + 1, np.nan)
    for t in range(steps + 1):
        opt.zero_grad(set_to_none=True)
        per = torch.nn.functional.cross_entropy(model(X), y, reduction="none")
        loss = per.mean()
        with torch.no_grad():
            g = torch.zeros(n_groups, dtype=torch.float64).index_add_(
                0, sample_group, per.detach().double()
            ) / group_size
            curves[t] = g.numpy()
            overall[t] = float(loss)
        if not np.isfinite(overall[t]):
            break
        if t < steps:
            loss.backward()
            opt.step()
    return {"curves": curves, "overall": overall}


def is_stable(overall: np.ndarray) -> bool:
    if not np.all(np.isfinite(overall)):
        return False
    running_min = np.minimum.accumulate(overall)
    return bool(np.all(overall[1:] <= 1.01 * running_min[:-1]))


def kunstner(m: int, steps: int, grids: dict, seed: int = 0) -> tuple[list, dict]:
    X, y, class_group = generate_dataset(m, seed)
    sample_group = torch.as_tensor(class_group[y.numpy()])
    rows, best = [], {}
    for opt, grid in grids.items():
        cand = []
        for e in grid:
            t0 = time.perf_counter()
            r = run(X, y, sample_group, m, opt, float(10.0**e), steps, seed)
            stable = is_stable(r["overall"])
            final = r["overall"][-1]
            rows.append({
                "part": "kunstner", "m": m, "optimizer": opt, "log10_lr": float(e),
                "stable": stable, "final_loss": float(final),
                "head_loss": float(r["curves"][-1, 0]), "tail_loss": float(r["curves"][-1, -1]),
                "seconds": round(time.perf_counter() - t0, 2),
            })
            if stable:
                cand.append((final, float(e), r))
        if cand:
            _, e, r = min(cand, key=lambda c: c[0])
            best[opt] = {"log10_lr": e, **r}
    return rows, best


def split_by_frequency(counts: np.ndarray, n_groups: int) -> np.ndarray:
    """Kunstner's ``split_classes_by_frequency``: classes sorted by count, cut into groups
    of (nearly) equal sample mass; group 0 = head."""
    order = np.argsort(-counts, kind="stable")
    before = (np.cumsum(counts[order]) - counts[order]) / counts.sum()
    g = np.minimum((before * n_groups + 1e-9).astype(int), n_groups - 1)
    out = np.empty_like(g)
    out[order] = np.unique(g, return_inverse=True)[1]  # no empty group
    return out


def pipeline_part(steps: int, grids: dict, n: int, k: int, seed: int = 0) -> tuple[list, dict]:
    """GD vs Adam through MajorityVote -> SoftLabelClassifier on a Zipf-prior task."""
    from wsagg.datasets import make_dawid_skene
    from wsagg.downstream import SoftLabelClassifier
    from wsagg.majority import MajorityVote

    ds = make_dawid_skene(n, 8, k, class_prior="zipf", coverage=0.5, accuracy=(0.6, 0.9),
                          random_state=seed)
    q = MajorityVote().fit_predict_proba(ds.L)
    keep = ds.L.covered()
    q = q[keep]
    d = n + n // 4
    X = np.random.default_rng(seed).random((int(keep.sum()), d), dtype=np.float32)
    n_groups = 4
    class_group = split_by_frequency(q.sum(axis=0), n_groups)
    n_groups = int(class_group.max()) + 1
    # per-sample soft CE is split over groups by the soft-label mass of each class
    mass = q @ np.eye(n_groups)[class_group]  # (n, G): share of each sample's target per group
    Xt = torch.as_tensor(X, dtype=torch.float32)
    qt = torch.as_tensor(q, dtype=torch.float32)
    rows, best = [], {}
    for opt, grid in grids.items():
        cand = []
        for e in grid:
            curves = []

            def cb(epoch: int, est: SoftLabelClassifier, curves: list = curves) -> None:
                with torch.no_grad():
                    logp = torch.log_softmax(est.module_(Xt), dim=1)
                    per_class = -(qt * logp).numpy()  # (n, k)
                g = np.zeros(n_groups)
                np.add.at(g, class_group, per_class.sum(axis=0))
                curves.append(g / mass.sum(axis=0))

            clf = SoftLabelClassifier(optimizer=opt, lr=float(10.0**e), max_iter=steps,
                                      dtype="float32", progress=False, callback=cb,
                                      random_state=seed)
            try:
                clf.fit(X, q)
                overall = np.asarray(clf.loss_curve_)
            except FloatingPointError:
                overall = np.array([np.inf])
            stable = is_stable(overall)
            rows.append({"part": "pipeline", "m": None, "optimizer": opt, "log10_lr": float(e),
                         "stable": stable, "final_loss": float(overall[-1]),
                         "head_loss": float(curves[-1][0]) if curves else np.nan,
                         "tail_loss": float(curves[-1][-1]) if curves else np.nan,
                         "seconds": None})
            if stable:
                cand.append((overall[-1], float(e), {"curves": np.asarray(curves),
                                                     "overall": overall}))
        if cand:
            _, e, r = min(cand, key=lambda c: c[0])
            best[opt] = {"log10_lr": e, **r}
    return rows, best


def plot(best_by_setting: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(best_by_setting)
    n_cols = max(len(b) for b in best_by_setting.values())
    fig, axes = plt.subplots(len(settings), n_cols, figsize=(3.6 * n_cols, 3.0 * len(settings)),
                             squeeze=False, sharey="row")
    for r, setting in enumerate(settings):
        for c, (opt, b) in enumerate(best_by_setting[setting].items()):
            ax = axes[r, c]
            curves = b["curves"]
            colors = plt.cm.viridis(np.linspace(0, 1, curves.shape[1]))
            for g in range(curves.shape[1]):
                ax.plot(curves[:, g], color=colors[g], lw=1.2,
                        label="head" if g == 0 else ("tail" if g == curves.shape[1] - 1 else None))
            ax.set_yscale("log")
            ax.set_title(f"{setting}: {LABELS[opt]} (lr=1e{b['log10_lr']:+.1f})", fontsize=9)
            ax.set_xlabel("step")
            if c == 0:
                ax.set_ylabel("train loss per frequency group")
                ax.legend(fontsize=7)
        for c in range(len(best_by_setting[setting]), n_cols):
            axes[r, c].axis("off")
    fig.suptitle("Per-frequency-group training loss at the best stable step size "
                 "(viridis: head → tail)", fontsize=10)
    save_figure(fig, path)
    plt.close(fig)


def summary_rows(setting: str, best: dict) -> list[dict]:
    out = []
    for opt, b in best.items():
        last = b["curves"][-1]
        out.append({"setting": setting, "optimizer": opt, "best_stable_log10_lr": b["log10_lr"],
                    "overall": float(b["overall"][-1]), "head_group": float(last[0]),
                    "tail_group": float(last[-1]),
                    "groups_head_to_tail": " ".join(f"{v:.3g}" for v in last)})
    if "gd" in best and "adam" in best:
        gd, ad = best["gd"]["curves"][-1], best["adam"]["curves"][-1]
        out.append({"setting": setting, "optimizer": "GD/Adam ratio",
                    "best_stable_log10_lr": None,
                    "overall": float(best["gd"]["overall"][-1] / best["adam"]["overall"][-1]),
                    "head_group": float(gd[0] / ad[0]), "tail_group": float(gd[-1] / ad[-1]),
                    "groups_head_to_tail": " ".join(f"{a / b:.3g}" for a, b in zip(gd, ad,
                                                                                  strict=True))})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[7, 8])
    ap.add_argument("--steps", type=int, nargs="+", default=[1000, 500],
                    help="steps per size (one value, or one per --sizes entry)")
    ap.add_argument("--pipeline-steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--grid", choices=["full", "narrow"], default="full",
                    help="full: 8 half-decades per optimizer; narrow: 4 (for a loaded machine)")
    ap.add_argument("--smoke", action="store_true", help="tiny run (m=4, 15 steps, 2 lrs)")
    ap.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    grids = GRIDS if args.grid == "full" else NARROW_GRIDS
    sizes, steps = args.sizes, args.steps
    pipe_n, pipe_k, pipe_steps = 1024, 32, args.pipeline_steps
    pipe_grids = {"gd": np.arange(-2.0, 1.0, 0.5), "adam": np.arange(-4.0, -1.0, 0.5)}
    if args.smoke:
        grids = {o: g[2:4] for o, g in GRIDS.items()}
        sizes, steps = [4], [15]
        pipe_n, pipe_k, pipe_steps = 200, 8, 10
        pipe_grids = {o: g[2:3] for o, g in pipe_grids.items()}
    if len(steps) == 1:
        steps = steps * len(sizes)
    rows, summary, best_all = [], [], {}
    for m, s in zip(sizes, steps, strict=True):
        t0 = time.perf_counter()
        r, best = kunstner(m, s, grids)
        print(f"m={m}: {len(r)} runs of {s} steps in {time.perf_counter() - t0:.0f}s",
              flush=True)
        rows += r
        best_all[f"m={m}"] = best
        summary += summary_rows(f"m={m} ({s} steps)", best)
    r, best = pipeline_part(pipe_steps, pipe_grids, pipe_n, pipe_k)
    rows += r
    best_all["pipeline"] = best
    summary += summary_rows(f"pipeline zipf k={pipe_k} ({pipe_steps} steps)", best)
    print("\nAll runs (stable = loss never > 1.01 x running minimum):")
    print_table(rows)
    print("\nBest stable step size per optimizer; final training loss per frequency group:")
    print_table(summary)
    name = "heavy_tail_optim_smoke" if args.smoke else "heavy_tail_optim"
    save_results(name, rows, out_dir=args.out_dir, packages=("numpy", "torch"),
                 extra={"summary": summary, "grids_log10": {o: g.tolist() for o, g in
                                                            grids.items()},
                        "stability_rule": "finite and L_t <= 1.01 * min_{s<t} L_s"})
    plot(best_all, args.out_dir / f"{name}.png")
    print(f"saved {args.out_dir / name}.json/.csv/.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
