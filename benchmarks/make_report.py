"""Generate the documentation's benchmark page from the saved results.

    python benchmarks/make_report.py   # writes docs/benchmarks.md, docs/benchmarks_raw.md, docs/img

Every table on the page is read from ``benchmarks/results/<name>.json`` (written by the
benchmark scripts with their environment: machine, versions, date, command); each PNG
saved beside a result is copied next to the page. Nothing on the page is typed by hand, so
regenerating after a benchmark run updates it, and a test checks that the committed page is
what this script produces from the committed results.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import unicodedata
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
    "misspecified": (
        "The unsupervised default under misspecification",
        "Every aggregator on 16 seeded synthetic sets that break Dawid-Skene's assumptions "
        "(Zipf worker activity, spammers, biased workers, item difficulty, cliques; unipolar "
        "and paired labeling functions), and the leave-one-dataset-out choice of the "
        "unsupervised policy over these and the shared real sets together.",
        "benchmarks/bench_misspecified.py",
    ),
    "lf_apply": (
        "Labeling-function application: pandas vs Dask",
        "Throughput of applying labeling functions to text records.",
        "benchmarks/bench_lf_apply.py",
    ),
}

MAX_ROWS = 60


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        text = json.dumps(value)
        return text if len(text) <= 40 else text[:37] + "..."
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def markdown_table(rows: list[dict[str, Any]], max_rows: int | None = None) -> str:
    """Rows (dicts) as a GitHub-flavoured markdown table, columns in first-seen order (at
    most ``max_rows`` rows, default :data:`MAX_ROWS`)."""
    max_rows = MAX_ROWS if max_rows is None else max_rows
    if not rows:
        return "*(no rows)*\n"
    columns: list[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows[:max_rows]:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    if len(rows) > max_rows:
        lines.append(f"\n*{len(rows) - max_rows} more rows in the CSV.*")
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


RAW_PAGE = "benchmarks_raw.md"
#: a table this long or longer is only on the raw page (unless it is the saved summary)
SUMMARY_MAX_ROWS = 25
#: a table wider than this with at most TRANSPOSE_MAX_ROWS rows is shown transposed
TRANSPOSE_MIN_COLUMNS = 10
TRANSPOSE_MAX_ROWS = 4

_INTRO = (
    "Generated by `python benchmarks/make_report.py` from the results that the benchmark "
    "scripts saved in `benchmarks/results/` (JSON with machine, versions, date and "
    "command; CSV beside it). Rerun a script, then this command, to refresh the page. "
    "Timings from a shared 2-core machine are noisy; ratios were measured with the "
    "compared methods in the same process.\n"
)


def slugify(title: str) -> str:
    """The heading anchor Python-Markdown's ``toc`` extension gives ``title``."""
    value = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    value = re.sub(r"[^\w\s-]", "", value).strip().lower()
    return re.sub(r"[-\s]+", "-", value)


def _same(values: list[Any]) -> bool:
    return len({json.dumps(v, sort_keys=True, default=str) for v in values}) == 1


def _merge_spread(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``x_mean`` + ``x_std`` (or ``x`` + ``x_sd`` / ``x_std``) columns as one ``x`` column
    ``"mean ± sd"``."""
    columns = list(dict.fromkeys(c for r in rows for c in r))
    pairs: dict[str, tuple[str, str]] = {}
    for c in columns:
        for suffix in ("_std", "_sd"):
            if not c.endswith(suffix):
                continue
            stem = c[: -len(suffix)]
            base = stem + "_mean" if stem + "_mean" in columns else stem
            if base in columns and base != c:
                pairs[base] = (stem, c)
    if not pairs:
        return rows
    spread_cols = {sd for _, sd in pairs.values()}
    out = []
    for r in rows:
        new: dict[str, Any] = {}
        for c in columns:
            if c in spread_cols:
                continue
            if c in pairs:
                stem, sd = pairs[c]
                m, s = r.get(c), r.get(sd)
                ok = isinstance(m, int | float) and isinstance(s, int | float) and s == s
                new[stem] = f"{_fmt(float(m))} ± {_fmt(float(s))}" if ok else r.get(c)
            else:
                new[c] = r.get(c)
        out.append(new)
    return out


def readable_table(rows: list[dict[str, Any]]) -> str:
    """A summary table for the overview page: mean ± sd merged, list-valued columns left
    out, columns with one value in every row (3 rows or more) stated once below, short wide
    tables transposed."""
    rows = _merge_spread(rows)
    columns = list(dict.fromkeys(c for r in rows for c in r))
    # per-repeat timing lists and other nested values stay on the raw page
    columns = [c for c in columns if not any(isinstance(r.get(c), list | dict) for r in rows)]
    constant = [c for c in columns if len(rows) >= 3 and _same([r.get(c) for r in rows])]
    keep = [c for c in columns if c not in constant]
    body = [{c: r.get(c, "") for c in keep} for r in rows]
    if len(keep) > TRANSPOSE_MIN_COLUMNS and len(body) <= TRANSPOSE_MAX_ROWS:
        names = ["value"] if len(body) == 1 else [f"row {i + 1}" for i in range(len(body))]
        head = ["", *names]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for c in keep:
            lines.append("| " + " | ".join([f"**{c}**", *(_fmt(r[c]) for r in body)]) + " |")
        text = "\n".join(lines) + "\n"
    else:
        text = markdown_table(body, max_rows=100)
    if constant:
        same = ", ".join(f"{c} = {_fmt(rows[0].get(c))}" for c in constant)
        text += f"\nIn every row: {same}.\n"
    return text


def _summary_tables(
    payload: dict[str, Any],
) -> tuple[list[tuple[str | None, list[dict[str, Any]]]], int]:
    """The tables shown on the overview page (the saved ``summary`` when there is one, else
    every table shorter than :data:`SUMMARY_MAX_ROWS`) and the number left to the raw page."""
    tables = _tables(payload)
    if "summary" in payload:
        shown = [(None, rows) for name, rows in tables if name == "summary"]
    else:
        shown = [(n, r) for n, r in tables if len(r) < SUMMARY_MAX_ROWS]
    return shown, len(tables) - len(shown)


def _png_owner(png: Path, stems: list[str]) -> str | None:
    """The results stem a plot belongs to: the longest stem its name starts with."""
    owners = [s for s in stems if png.stem == s or png.stem.startswith(s + "_")]
    return max(owners, key=len) if owners else None


def _section_title(stem: str) -> tuple[str, str, str]:
    return SECTIONS.get(
        stem, (stem.replace("_", " ").capitalize(), "", f"benchmarks/ (results {stem})")
    )


def build(results_dir: Path, docs_dir: Path) -> str:
    """Write the overview ``docs_dir/benchmarks.md`` (summary tables, the plots on top) and
    ``docs_dir/benchmarks_raw.md`` (every saved table), copy the PNGs to ``docs_dir/img``;
    return the overview's text."""
    img_dir = docs_dir / "img"
    known = [s for s in SECTIONS if (results_dir / f"{s}.json").exists()]
    extra = sorted(p.stem for p in results_dir.glob("*.json") if p.stem not in SECTIONS)
    stems = [*known, *extra]
    payloads = {s: json.loads((results_dir / f"{s}.json").read_text()) for s in stems}
    plots: dict[str, list[Path]] = {}
    for png in sorted(results_dir.glob("*.png")):
        owner = _png_owner(png, stems)
        if owner is not None:
            plots.setdefault(owner, []).append(png)
            img_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(png, img_dir / png.name)

    main = ["# Benchmarks\n\n", _INTRO, "\n"]
    main.append(
        f"This page shows each benchmark's summary; every saved table, row by row, is on the "
        f"[raw results]({RAW_PAGE}) page.\n"
    )
    if plots:
        main.append("\n## Plots\n")
        for stem, pngs in plots.items():
            title = _section_title(stem)[0]
            for png in pngs:
                main.append(f"\n![{png.stem}](img/{png.name})\n\n*[{title}](#{slugify(title)})*\n")
    raw = ["# Benchmarks: raw results\n\n", _INTRO, "\n",
           "Every table the benchmark scripts saved; the summaries and plots are on the "
           "[Benchmarks](benchmarks.md) page.\n"]
    for stem in stems:
        payload = payloads[stem]
        title, description, script = _section_title(stem)
        env = _environment_line(payload.get("environment", {}))
        head = f"\n## {title}\n\n" + (f"{description} Script: `{script}`.\n\n" if description
                                       else "")
        main.append(head + env + "\n")
        raw.append(head + env + "\n")
        shown, left = _summary_tables(payload)
        for name, rows in shown:
            if name:
                main.append(f"\n**{name}**\n")
            main.append("\n" + readable_table(rows))
        scalars = _scalars(payload)
        if scalars:
            main.append("\n" + "\n".join(scalars) + "\n")
        if stem in plots:
            main.append("\nPlots: " + ", ".join(
                f"[{png.stem}](#plots)" for png in plots[stem]) + ".\n")
        rows_total = sum(len(r) for _, r in _tables(payload))
        main.append(
            f"\nAll {rows_total} saved rows" + (f" ({left} more table(s))" if left else "")
            + f": [raw results]({RAW_PAGE}#{slugify(title)}).\n"
        )
        for name, rows in _tables(payload):
            if name:
                raw.append(f"\n**{name}**\n")
            raw.append("\n" + markdown_table(rows))
        if scalars:
            raw.append("\n" + "\n".join(scalars) + "\n")
    text = "".join(main)
    atomic_write_text(docs_dir / "benchmarks.md", text)
    atomic_write_text(docs_dir / RAW_PAGE, "".join(raw))
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
