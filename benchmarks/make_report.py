"""Generate the documentation's benchmark page from the saved results.

    python benchmarks/make_report.py            # writes docs/benchmarks.md and docs/img/*.png

Every table on the page is read from ``benchmarks/results/<name>.json`` (written by the
benchmark scripts with their environment: machine, versions, date, command); each PNG
saved beside a result is copied next to the page. Nothing on the page is typed by hand, so
regenerating after a benchmark run updates it, and a test checks that the committed page is
what this script produces from the committed results.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import RESULTS_DIR, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]

#: results file stem -> (section title, one-line description, script)
SECTIONS: dict[str, tuple[str, str, str]] = {
    "dawid_skene_speed": (
        "Dawid-Skene: speed against crowd-kit and Snorkel",
        "Fit + posteriors on the synthetic Dawid-Skene generator, all methods pinned to one "
        "thread; EM iteration cost against the two sparse products; scaling in the number "
        "of votes; many classes; 1e8 votes.",
        "benchmarks/bench_dawid_skene_speed.py",
    ),
    "dawid_skene_realdata": (
        "Dawid-Skene: accuracy on every real dataset",
        "wsagg Dawid-Skene (both abstain modes, unsupervised and with validation gold), "
        "majority vote, crowd-kit DawidSkene and Snorkel LabelModel side by side.",
        "benchmarks/bench_dawid_skene_realdata.py",
    ),
    "realdata": (
        "Every aggregator and auto on every real dataset",
        "Each registered aggregator (defaults), unsupervised and with the validation gold "
        "as known labels: accuracy, log loss and ECE on the gold items not known and with a "
        "vote; per set the best peer and the gap; leave-one-dataset-out choice of the "
        "unsupervised policy; the gold-free criterion's rank correlation with accuracy.",
        "benchmarks/bench_realdata.py",
    ),
    "realdata_peers": (
        "The peers on every real dataset",
        "crowd-kit (DS, one-coin, GLAD, MACE, MV, Wawa, ZBS) and Snorkel's LabelModel, "
        "defaults, same items as the table above (180 s time limit per fit).",
        "benchmarks/bench_realdata.py --peers-only",
    ),
    "zoo_agreement": (
        "Each aggregator against the peer implementation of the same model",
        "Accuracy, log loss, max / mean posterior difference and argmax agreement on every "
        "shared set with gold.",
        "benchmarks/bench_zoo_agreement.py",
    ),
    "zoo_speed": (
        "Each aggregator's speed against its peer",
        "Synthetic Dawid-Skene data, m = 20, k = 2 and 10, one thread, median of 3, "
        "interleaved in one process.",
        "benchmarks/bench_zoo_speed.py",
    ),
    "adversarial_paper": (
        "Adversarial log-loss aggregator: the An & Dasgupta (UAI 2024) table",
        "100 labeled points from the validation split, 10 draws, train-set log loss and "
        "0-1 loss (%), next to the paper's reported numbers and the g* floor.",
        "benchmarks/bench_adversarial_paper.py",
    ),
    "adversarial_convergence": (
        "Adversarial log-loss aggregator: convergence as labeled data grows",
        "Excess log loss over the best-in-family predictor g* against the number of "
        "labeled points, with the fitted log-log slope (theory: -1/2).",
        "benchmarks/bench_adversarial_convergence.py",
    ),
    "adversarial_speed": (
        "Adversarial log-loss aggregator: fast solver against the cvxpy reference",
        "Same dual objective; time of the scipy solver and of cvxpy (Clarabel).",
        "benchmarks/bench_adversarial_speed.py",
    ),
    "heavy_tail_optim": (
        "Heavy-tailed class imbalance: GD vs Adam vs sign descent (Kunstner et al. 2024)",
        "Training loss per class-frequency group, full batch, each optimiser at its best "
        "stable step size.",
        "benchmarks/bench_heavy_tail_optim.py",
    ),
    "longtail_pipeline": (
        "Prior correction end to end on real text data",
        "Aggregator soft labels, a prior-correction strategy, a linear classifier; test "
        "accuracy, balanced accuracy, macro-F1 and tail recall over seeds.",
        "benchmarks/bench_longtail_pipeline.py",
    ),
    "distributed": (
        "Scaling out: chunked and Dask-distributed Dawid-Skene",
        "In-memory vs chunked vs LocalCluster map-reduce EM: wall time, peak memory, time "
        "per iteration.",
        "benchmarks/bench_distributed.py",
    ),
    "distributed_adversarial": (
        "Scaling out: the adversarial aggregator on partitions",
        "Pattern histograms reduced over partitions, solved on the driver; in-memory vs "
        "streamed vs LocalCluster, with the differences to the in-memory fit.",
        "benchmarks/bench_distributed.py --parts adversarial",
    ),
    "gpu_check": (
        "GPU check: torch on CUDA against the CPU",
        "Dawid-Skene at 1e8 votes and the adversarial solver at 1e5 items, CPU vs CUDA.",
        "benchmarks/bench_gpu.py",
    ),
    "lf_apply": (
        "Labeling-function application: pandas vs Dask",
        "Throughput of applying labeling functions to text records.",
        "benchmarks/bench_lf_apply.py",
    ),
}

MAX_ROWS = 60


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        text = json.dumps(value)
        return text if len(text) <= 40 else text[:37] + "..."
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Rows (dicts) as a GitHub-flavoured markdown table, columns in first-seen order."""
    if not rows:
        return "*(no rows)*\n"
    columns: list[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows[:MAX_ROWS]:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    if len(rows) > MAX_ROWS:
        lines.append(f"\n*{len(rows) - MAX_ROWS} more rows in the CSV.*")
    return "\n".join(lines) + "\n"


def _environment_line(env: dict[str, Any]) -> str:
    machine = env.get("machine", {})
    versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items() if v)
    return (
        f"Run {env.get('date', '?')} on {machine.get('cpus', '?')} CPU cores / "
        f"{machine.get('memory_gib', '?')} GiB ({machine.get('platform', '?')}); {versions}. "
        f"Command: `{env.get('command', '?')}`."
    )


def _split_parts(rows: list[dict[str, Any]]) -> list[tuple[str | None, list[dict[str, Any]]]]:
    """Rows tagged with a ``part`` column become one table per part, without empty columns."""
    if not all("part" in r for r in rows):
        return [(None, rows)]
    parts: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        parts.setdefault(str(r["part"]), []).append(r)
    out = []
    for name, group in parts.items():
        keep = [
            c for c in dict.fromkeys(k for r in group for k in r)
            if c != "part" and any(r.get(c) not in (None, "") and r.get(c) == r.get(c)
                                   for r in group)
        ]
        out.append((name, [{c: r.get(c) for c in keep} for r in group]))
    return out


def _tables(payload: dict[str, Any]) -> list[tuple[str | None, list[dict[str, Any]]]]:
    """The tables of a results payload: ``summary`` first, then ``rows`` (split by part),
    then any other list of dicts."""
    out: list[tuple[str | None, list[dict[str, Any]]]] = []
    keys = [k for k in ("summary", "rows") if k in payload]
    keys += [k for k in payload if k not in {"name", "environment", "summary", "rows"}]
    for key in keys:
        value = payload[key]
        if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
            if key == "rows":
                label = "all rows" if "summary" in payload else None
                for part, rows in _split_parts(value):
                    out.append((part if part is not None else label, rows))
            else:
                out.append((key, value))
    return out


def _scalars(payload: dict[str, Any]) -> list[str]:
    """Other saved values (fitted slopes, estimates, rules) as bullet lines."""
    lines = []
    for key, value in payload.items():
        if key in {"name", "environment", "summary", "rows"}:
            continue
        if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
            continue
        if isinstance(value, dict):
            inner = ", ".join(f"{k} = {_fmt(v)}" for k, v in value.items())
            lines.append(f"- **{key}**: {inner}")
        else:
            lines.append(f"- **{key}**: {_fmt(value)}")
    return lines


def build(results_dir: Path, docs_dir: Path) -> str:
    """Write ``docs_dir/benchmarks.md`` (and copy PNGs to ``docs_dir/img``); return the text."""
    parts = [
        "# Benchmarks\n",
        "Generated by `python benchmarks/make_report.py` from the results that the benchmark "
        "scripts saved in `benchmarks/results/` (JSON with machine, versions, date and "
        "command; CSV beside it). Rerun a script, then this command, to refresh the page. "
        "Timings from a shared 2-core machine are noisy; ratios were measured with the "
        "compared methods in the same process.\n",
    ]
    img_dir = docs_dir / "img"
    known = [s for s in SECTIONS if (results_dir / f"{s}.json").exists()]
    extra = sorted(
        p.stem for p in results_dir.glob("*.json") if p.stem not in SECTIONS
    )
    for stem in [*known, *extra]:
        payload = json.loads((results_dir / f"{stem}.json").read_text())
        title, description, script = SECTIONS.get(
            stem, (stem.replace("_", " ").capitalize(), "", f"benchmarks/ (results {stem})")
        )
        parts.append(f"\n## {title}\n")
        if description:
            parts.append(description + f" Script: `{script}`.\n")
        parts.append(_environment_line(payload.get("environment", {})) + "\n")
        for name, rows in _tables(payload):
            if name:
                parts.append(f"\n**{name}**\n")
            parts.append("\n" + markdown_table(rows))
        scalars = _scalars(payload)
        if scalars:
            parts.append("\n" + "\n".join(scalars) + "\n")
        for png in sorted(results_dir.glob(f"{stem}*.png")):
            img_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(png, img_dir / png.name)
            parts.append(f"\n![{png.stem}](img/{png.name})\n")
    text = "".join(parts)
    atomic_write_text(docs_dir / "benchmarks.md", text)
    _choosing_block(results_dir, docs_dir)
    return text


CHOOSING_START = "<!-- realdata:start -->\n"
CHOOSING_END = "<!-- realdata:end -->"


def choosing_block(results_dir: Path) -> str:
    """The generated part of ``docs/choosing.md``: the mean of each aggregator over the real
    datasets (``bench_realdata.py``), by kind and mode, best accuracy first."""
    path = results_dir / "realdata.json"
    if not path.exists():
        return "(run benchmarks/bench_realdata.py)\n"
    payload = json.loads(path.read_text())
    rows = sorted(payload.get("summary", []),
                  key=lambda r: (r["kind"], r["mode"], -(r.get("mean_acc") or 0)))
    keep = ("kind", "mode", "method", "datasets", "mean_acc", "mean_log_loss", "mean_ece")
    table = [{k: r.get(k) for k in keep} for r in rows if r.get("mean_acc") is not None]
    return (
        _environment_line(payload.get("environment", {})) + "\n\n" + markdown_table(table)
    )


def _choosing_block(results_dir: Path, docs_dir: Path) -> None:
    page = docs_dir / "choosing.md"
    if not page.exists():
        return
    text = page.read_text()
    if CHOOSING_START not in text:
        return
    head, rest = text.split(CHOOSING_START)
    _, tail = rest.split(CHOOSING_END)
    atomic_write_text(page, head + CHOOSING_START + choosing_block(results_dir) + CHOOSING_END
                      + tail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--docs-dir", type=Path, default=ROOT / "docs")
    args = parser.parse_args(argv)
    text = build(args.results_dir, args.docs_dir)
    print(f"wrote {args.docs_dir / 'benchmarks.md'} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
