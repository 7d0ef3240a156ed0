"""Heavy-tailed class imbalance: GD vs Adam vs sign descent vs normalised GD.

Reproduces on CPU the linear-model experiment of Kunstner, Yadav, Milligan, Schmidt &
Bietti (NeurIPS 2024, "Heavy-Tailed Class Imbalance and Why Adam Outperforms Gradient
Descent on Language Models"), following their public code
(fKunstner/class-imbalance-sgd-adam, ``generate_dataset`` / ``BalancedXImbalancedY``):

* for ``i = 0..m-1`` there are ``2**i`` classes with ``2**(m-i)`` samples each, so every
  frequency group ``i`` holds ``2**m`` samples; ``n = m 2^m``, ``c = 2^m - 1`` classes,
  ``d = (m+1) 2^m`` features, ``X ~ U[0,1)`` independent of ``y``;
* one ``nn.Linear(d, c)`` with bias (PyTorch default initialisation), full-batch mean
  cross-entropy, **float32** (as the paper's code), one step per epoch; train = evaluation set.

Optimisers (wsagg.downstream.make_optimizer): GD (torch SGD, no momentum), Adam (torch,
betas (0.9, 0.999)), sign descent and normalised GD (no momentum).

**Step-size grid**: half-decades, ``log10 lr`` in GD [-3, 0.5], Adam [-5, -1.5], sign
[-6, -2.5], normalised GD [-2, 1.5] (8 values each).
**Stability rule**: a run is *stable* when its overall training loss is finite and never
rises more than 1% above the lowest loss seen so far (``L_t <= 1.01 min_{s<t} L_s`` for
every step ``t``); the *best stable* step size is the stable one with the lowest final
overall loss.
**Search** (to stay within minutes): the grid is walked from the largest step size down;
a run is stopped at the first step that breaks the rule (``--finish-unstable`` runs it to
the end instead, recording its final loss); the walk stops at the first stable step size
whose final loss is *worse* than that of a larger stable one (smaller ones are recorded as
``skipped``), so the best stable step size is always bracketed by evaluated neighbours
unless it is at the grid's edge (flagged ``edge`` in the summary).

Per-group training loss (mean over the group's samples) is recorded every step.

Part 2 runs the same comparison through wsagg's own pipeline: a Zipf-prior Dawid-Skene
synthetic task (default 64 classes, exponent 1.2, 1024 items, 10 sources), Dawid-Skene soft
labels (``wsagg.DawidSkene``, near one-hot here), ``SoftLabelClassifier`` (linear, float32,
full batch) on uniform random features (``d = 1.25 n``, so the targets are reachable, as in
Part 1) trained with GD vs Adam under the same grid/stability rule. Classes are cut into 4
groups of equal soft-label mass (Kunstner's ``split_classes_by_frequency``); the group loss
is the soft cross-entropy restricted to the group's classes, per unit of soft-label mass,
recorded every step (``--log-every``). The floor of that loss is the targets' entropy
(reported; below 0.01 nats for these near one-hot labels).

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

GRIDS = {  # log10 step sizes, half-decades, 8 per optimizer
    "gd": np.arange(-3.0, 1.0, 0.5),
    "adam": np.arange(-5.0, -1.0, 0.5),
    "sign": np.arange(-6.0, -2.0, 0.5),
    "normalized_gd": np.arange(-2.0, 2.0, 0.5),
}
PIPE_GRIDS = {"gd": np.arange(-3.0, 1.0, 0.5), "adam": np.arange(-5.0, -1.0, 0.5)}
LABELS = {"gd": "GD", "adam": "Adam", "sign": "Sign descent", "normalized_gd": "Normalised GD"}
RULE = "finite and L_t <= 1.01 * min_{s<t} L_s"


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


class StabilityMonitor:
    """Applies the stability rule online: ``update(L_t)`` returns False once the run broke it
    (non-finite, or ``L_t > 1.01 min_{s<t} L_s``) and remembers the first such step."""

    def __init__(self) -> None:
        self.best = np.inf
        self.first_violation: int | None = None
        self.t = 0

    def update(self, loss: float) -> bool:
        ok = bool(np.isfinite(loss)) and loss <= 1.01 * self.best
        if not ok and self.first_violation is None:
            self.first_violation = self.t
        if np.isfinite(loss):
            self.best = min(self.best, loss)
        self.t += 1
        return ok

    @property
    def stable(self) -> bool:
        return self.first_violation is None


def run(
    X: torch.Tensor, y: torch.Tensor, sample_group: torch.Tensor, n_groups: int,
    optimizer: str, lr: float, steps: int, seed: int = 0, finish_unstable: bool = False,
) -> dict:
    """One full-batch run; per-group and overall training loss at every step (the loss at
    step t is at the parameters before update t)."""
    from wsagg.downstream import make_optimizer

    with torch.random.fork_rng(devices=[]):  # nn.Linear's default init, as the paper's code
        torch.manual_seed(seed)
        model = torch.nn.Linear(X.shape[1], int(y.max()) + 1)
    opt = make_optimizer(optimizer, model.parameters(), lr)
    group_size = torch.bincount(sample_group, minlength=n_groups).to(torch.float64)
    curves = torch.full((steps + 1, n_groups), float("nan"), dtype=torch.float64)
    overall = np.full(steps + 1, np.nan)
    mon = StabilityMonitor()
    for t in range(steps + 1):
        opt.zero_grad(set_to_none=True)
        per = torch.nn.functional.cross_entropy(model(X), y, reduction="none")
        loss = per.mean()
        overall[t] = loss.item()
        with torch.no_grad():
            curves[t].zero_().index_add_(0, sample_group, per.detach().double()).div_(
                group_size)
        if not mon.update(overall[t]) and (not finish_unstable or not np.isfinite(overall[t])):
            break
        if t < steps:
            loss.backward()
            opt.step()
    return {"curves": curves.numpy(), "curve_steps": np.arange(steps + 1),
            "overall": overall, "stable": mon.stable,
            "first_violation": mon.first_violation, "steps_run": mon.t}


def sweep(run_fn, grid: np.ndarray, row_base: dict) -> tuple[list, dict | None]:
    """Walk ``grid`` from the largest step size down (see the module docstring); returns the
    rows of every step size and the best stable run (or None)."""
    rows, best, best_final = [], None, np.inf
    stop = False
    for e in sorted(grid, reverse=True):
        e = float(e)
        if stop:
            rows.append({**row_base, "log10_lr": e, "status": "skipped", "final_loss": None,
                         "head_loss": None, "tail_loss": None, "steps_run": 0,
                         "seconds": 0.0})
            continue
        t0 = time.perf_counter()
        r = run_fn(10.0**e)
        secs = round(time.perf_counter() - t0, 2)
        last = int(np.flatnonzero(np.isfinite(r["overall"]))[-1]) if np.isfinite(
            r["overall"]).any() else 0
        if r["stable"]:
            status = "stable"
        elif not np.isfinite(r["overall"][: r["steps_run"]]).all():
            status = f"diverged@{r['first_violation']}"
        else:
            status = f"unstable@{r['first_violation']}"
        glast = r["curves"][-1] if len(r["curves"]) and np.isfinite(r["curves"][-1]).all() \
            else None
        rows.append({**row_base, "log10_lr": e, "status": status,
                     "final_loss": float(r["overall"][last]),
                     "head_loss": None if glast is None else float(glast[0]),
                     "tail_loss": None if glast is None else float(glast[-1]),
                     "steps_run": r["steps_run"], "seconds": secs})
        if r["stable"]:
            final = float(r["overall"][-1])
            if final < best_final:
                best_final, best = final, {"log10_lr": e, **r}
            else:
                stop = True
    if best is not None:
        best["edge"] = best["log10_lr"] in (float(max(grid)), float(min(grid)))
    return rows, best


def kunstner(m: int, steps: int, grids: dict, seed: int = 0,
             finish_unstable: bool = False) -> tuple[list, dict]:
    X, y, class_group = generate_dataset(m, seed)
    sample_group = torch.as_tensor(class_group[y.numpy()])
    rows, best = [], {}
    for opt, grid in grids.items():
        r, b = sweep(lambda lr, opt=opt: run(X, y, sample_group, m, opt, lr, steps, seed,
                                             finish_unstable),
                     grid, {"part": "kunstner", "setting": f"m={m}", "optimizer": opt})
        rows += r
        if b is not None:
            best[opt] = b
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


def pipeline_task(n: int, k: int, zipf: float, seed: int = 0):
    """Zipf-prior Dawid-Skene votes -> Dawid-Skene soft labels; uniform random features."""
    from wsagg import DawidSkene
    from wsagg.datasets import make_dawid_skene

    ds = make_dawid_skene(n, 10, k, class_prior="zipf", zipf_exponent=zipf, coverage=0.6,
                          accuracy=(0.7, 0.95), random_state=seed)
    q = DawidSkene(random_state=seed).fit_predict_proba(ds.L)
    keep = ds.L.covered()
    q, y = q[keep], ds.y[keep]
    X = np.random.default_rng(seed).random((q.shape[0], n + n // 4), dtype=np.float32)
    return X, q, y


def pipeline_part(steps: int, grids: dict, n: int, k: int, zipf: float, seed: int = 0,
                  log_every: int = 1, finish_unstable: bool = False) -> tuple[list, dict, dict]:
    """GD vs Adam through DawidSkene -> SoftLabelClassifier on a Zipf-prior task."""
    from wsagg import metrics
    from wsagg.downstream import SoftLabelClassifier

    X, q, y = pipeline_task(n, k, zipf, seed)
    n_groups = 4
    class_group = split_by_frequency(q.sum(axis=0), n_groups)
    n_groups = int(class_group.max()) + 1
    onehot_g = np.eye(n_groups)[class_group]  # (k, G)
    mass = (q @ onehot_g).sum(axis=0)  # soft-label mass per group
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(q > 0, q * np.log(q), 0.0)
    info = {"n_items": int(q.shape[0]), "n_classes": k, "zipf_exponent": zipf,
            "n_features": int(X.shape[1]),
            "soft_label_accuracy": float(np.mean(q.argmax(1) == y)),
            "soft_label_log_loss": metrics.log_loss(y, q),
            "soft_label_ece": metrics.expected_calibration_error(y, q),
            "target_entropy_per_group": (ent.sum(axis=0) @ onehot_g / mass).tolist(),
            "classes_per_group": np.bincount(class_group).tolist(),
            "largest_class_mass": float(q.sum(0).max()),
            "classes_under_5_items_mass": int((q.sum(0) < 5).sum())}
    Xt = torch.as_tensor(X)
    qt = torch.as_tensor(q, dtype=torch.float32)

    def run_fn(opt: str, lr: float) -> dict:
        curves = np.full((steps + 1, n_groups), np.nan)
        mon = StabilityMonitor()

        def cb(epoch: int, est: SoftLabelClassifier) -> bool:
            ok = mon.update(est.loss_curve_[-1])
            if ok and ((epoch + 1) % log_every == 0 or epoch + 1 == steps):
                with torch.no_grad():  # group loss after update `epoch`
                    z = est.module_(Xt)
                    per_class = -(qt * torch.log_softmax(z, dim=1)).sum(0).numpy()
                curves[epoch + 1] = per_class @ onehot_g / mass
            return not ok and not finish_unstable

        clf = SoftLabelClassifier(optimizer=opt, lr=lr, max_iter=steps, dtype="float32",
                                  progress=False, callback=cb, random_state=seed)
        overall = np.full(steps + 1, np.nan)
        try:
            clf.fit(X, q)
            overall[: len(clf.loss_curve_)] = clf.loss_curve_  # loss before each update
            if mon.stable:  # and after the last one: mass-weighted mean of the group losses
                overall[steps] = float(curves[steps] @ (mass / mass.sum()))
                mon.update(overall[steps])
        except FloatingPointError:  # the classifier refuses a non-finite loss
            mon.update(np.inf)
        logged = np.flatnonzero(np.isfinite(curves).all(axis=1))
        return {"curves": curves[logged], "curve_steps": logged, "overall": overall,
                "stable": mon.stable, "first_violation": mon.first_violation,
                "steps_run": mon.t}

    rows, best = [], {}
    for opt, grid in grids.items():
        r, b = sweep(lambda lr, opt=opt: run_fn(opt, lr), grid,
                     {"part": "pipeline", "setting": f"zipf k={k}", "optimizer": opt})
        rows += r
        if b is not None:
            best[opt] = b
    return rows, best, info


def plot(best_by_setting: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(best_by_setting)
    n_cols = max(max(len(b) for b in best_by_setting.values()), 1)
    fig, axes = plt.subplots(len(settings), n_cols, figsize=(3.6 * n_cols, 3.0 * len(settings)),
                             squeeze=False, sharey="row", layout="constrained")
    for r, setting in enumerate(settings):
        for c, (opt, b) in enumerate(best_by_setting[setting].items()):
            ax = axes[r, c]
            curves, steps = b["curves"], b["curve_steps"]
            colors = plt.cm.viridis(np.linspace(0, 1, curves.shape[1]))
            for g in range(curves.shape[1]):
                ax.plot(steps, curves[:, g], color=colors[g], lw=1.2,
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
        out.append({"setting": setting, "optimizer": opt,
                    "best_stable_log10_lr": b["log10_lr"] if not b["edge"]
                    else f"{b['log10_lr']} (edge)",
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
    ap.add_argument("--sizes", type=int, nargs="*", default=[7, 8],
                    help="Kunstner problem sizes m (none: Part 2 only)")
    ap.add_argument("--steps", type=int, nargs="+", default=[1000, 500],
                    help="steps per size (one value, or one per --sizes entry)")
    ap.add_argument("--pipeline-steps", type=int, default=500)
    ap.add_argument("--pipeline-n", type=int, default=1024)
    ap.add_argument("--pipeline-k", type=int, default=64)
    ap.add_argument("--zipf", type=float, default=1.2)
    ap.add_argument("--log-every", type=int, default=1,
                    help="Part 2: record the group losses every this many steps")
    ap.add_argument("--optimizers", nargs="+", choices=list(GRIDS), default=list(GRIDS),
                    help="Part 1 optimizers (Part 2 always runs gd and adam)")
    ap.add_argument("--no-pipeline", action="store_true", help="skip Part 2")
    ap.add_argument("--name", default="heavy_tail_optim", help="results file stem")
    ap.add_argument("--finish-unstable", action="store_true",
                    help="run unstable step sizes to the end instead of stopping them")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--smoke", action="store_true", help="tiny run (m=4, 15 steps, 2 lrs)")
    ap.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    grids, pipe_grids = {o: GRIDS[o] for o in args.optimizers}, PIPE_GRIDS
    sizes, steps = args.sizes, args.steps
    pipe_n, pipe_k, pipe_steps = args.pipeline_n, args.pipeline_k, args.pipeline_steps
    if args.smoke:
        grids = {o: g[3:5] for o, g in grids.items()}
        sizes, steps = [4], [15]
        pipe_n, pipe_k, pipe_steps = 200, 8, 10
        pipe_grids = {"gd": np.array([-1.0]), "adam": np.array([-2.5])}
    if len(steps) == 1:
        steps = steps * len(sizes)
    steps = steps[: len(sizes)]
    rows, summary, best_all, extra = [], [], {}, {}
    t_all = time.perf_counter()
    for m, s in zip(sizes, steps, strict=True):
        t0 = time.perf_counter()
        r, best = kunstner(m, s, grids, finish_unstable=args.finish_unstable)
        n_run = sum(r_["status"] != "skipped" for r_ in r)
        print(f"m={m}: {n_run} runs (<= {s} steps) in {time.perf_counter() - t0:.0f}s",
              flush=True)
        rows += r
        best_all[f"m={m}"] = best
        summary += summary_rows(f"m={m} ({s} steps)", best)
    if not args.no_pipeline:
        t0 = time.perf_counter()
        r, best, info = pipeline_part(pipe_steps, pipe_grids, pipe_n, pipe_k, args.zipf,
                                      log_every=args.log_every,
                                      finish_unstable=args.finish_unstable)
        print(f"pipeline: {sum(r_['status'] != 'skipped' for r_ in r)} runs in "
              f"{time.perf_counter() - t0:.0f}s", flush=True)
        rows += r
        best_all[f"zipf k={pipe_k}"] = best
        summary += summary_rows(f"pipeline zipf k={pipe_k} s={args.zipf} ({pipe_steps} steps)",
                                best)
        extra["pipeline_task"] = info
    total = time.perf_counter() - t_all
    print(f"\nAll runs (stable = {RULE}; largest step size first):")
    print_table(rows)
    print("\nBest stable step size per optimizer; final training loss per frequency group:")
    print_table(summary)
    if extra:
        print(f"\nPipeline task: {extra['pipeline_task']}")
    try:
        load = " ".join(f"{v:.1f}" for v in __import__("os").getloadavg())
    except OSError:  # pragma: no cover
        load = None
    print(f"total {total:.0f}s, {args.threads} torch thread(s), load average {load}")
    name = f"{args.name}_smoke" if args.smoke else args.name
    save_results(name, rows, out_dir=args.out_dir, packages=("numpy", "torch"),
                 extra={"summary": summary,
                        "grids_log10": {o: g.tolist() for o, g in grids.items()},
                        "pipeline_grids_log10": {o: g.tolist() for o, g in pipe_grids.items()},
                        "stability_rule": RULE, "total_seconds": round(total, 1),
                        "torch_threads": args.threads, "load_average_at_end": load, **extra})
    plot(best_all, args.out_dir / f"{name}.png")
    print(f"saved {args.out_dir / name}.json/.csv/.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
