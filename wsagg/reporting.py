"""One self-contained HTML page per aggregation run: :func:`report`.

The page holds, for a fitted (or fitted here) aggregator and its label matrix:

* a summary of the votes and of the model (parameters, scores against gold when given);
* the per-source table: coverage, overlap and conflict (:func:`wsagg.source_summary`), the
  quality the model learned for each source where it has one, and the empirical accuracy
  against gold;
* heatmaps of the learned confusion matrices of the most active sources;
* the class prior: learned vs the shares of the votes vs the gold shares;
* a reliability (calibration) diagram with the expected calibration error (needs gold);
* the convergence trace (the per-iteration history the model keeps, if any);
* accuracy per class-frequency bucket (head / medium / tail, by gold class frequency);
* with :class:`wsagg.AutoAggregator`: the candidates it scored and why it chose one.

The page needs nothing but itself: plots are matplotlib PNGs embedded as base64 ``data:``
URIs, the style sheet is inline, there is no script, and every string that comes from the
user (source and class names, the title, parameters, messages) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wsagg import __version__
from wsagg import metrics as _metrics
from wsagg._atomic import write_atomic
from wsagg.diagnostics import label_matrix_summary, source_summary
from wsagg.labels import LabelMatrix, check_known_labels

__all__ = ["report"]

#: the most active sources whose learned confusion matrices are drawn
MAX_HEATMAPS = 6
#: bins of the reliability diagram (the same as :func:`wsagg.metrics.evaluate`'s ECE)
N_BINS = 15

_INSTALL = "pip install 'wsagg[plot]'"

# (attribute, column header, what it is) of a per-source quality a model learns, in order
_SOURCE_QUALITY = (
    ("accuracy_", "learned accuracy", "the model's one-coin accuracy of each source "
     "(<code>accuracy_</code>)"),
    ("source_accuracy_", "learned accuracy", "the probability that a vote of the source is "
     "correct (<code>source_accuracy_</code>)"),
    ("competence_", "learned competence", "the probability that the source knows the true "
     "class, 1 &minus; its spam probability (<code>competence_</code>)"),
    ("ability_", "learned ability &alpha;", "the source's ability &alpha;<sub>j</sub> "
     "(<code>ability_</code>; &sigma;(&alpha;<sub>j</sub>) is its accuracy on an item of "
     "median difficulty)"),
    ("skills_", "learned skill", "the source's skill, its agreement with the aggregate "
     "(<code>skills_</code>)"),
    ("reliability_", "learned reliability", "the source's signed reliability "
     "(<code>reliability_</code>; 0 = chance)"),
)

_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;
 color:#1f2328;background:#fff;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:1.5rem 2rem 3rem}
h1{font-size:1.6rem;margin:.2rem 0 .4rem}
h2{font-size:1.25rem;margin:2rem 0 .5rem;padding-bottom:.2rem;border-bottom:1px solid #d0d7de}
nav{font-size:.9rem;margin:.5rem 0 1rem}
nav a{margin-right:.9rem;color:#0969da;text-decoration:none}
p.note{color:#57606a;font-size:.92rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.25rem .55rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.chosen td{background:#dafbe1;font-weight:600}
img{max-width:100%;height:auto;display:block;margin:.5rem 0}
code{background:#f6f8fa;padding:0 .2rem;border-radius:3px}
.explanation{background:#f6f8fa;border-left:4px solid #2da44e;padding:.5rem .8rem}
"""


def _e(value: Any) -> str:
    """HTML-escaped text of ``value`` (quotes too, so it is safe in attributes)."""
    return html.escape(str(value), quote=True)


def _plain(v: Any) -> Any:
    """NumPy scalars as plain Python values (for messages and tables)."""
    return v.item() if isinstance(v, np.generic) else v


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(
            f"wsagg.report draws its plots with matplotlib, which is not installed: {_INSTALL}"
        ) from None


# -- output path --------------------------------------------------------------------------
def _check_path(path: Any, overwrite: bool) -> Path:
    """The output path, refused (one line, saying how to fix it) before anything is fitted."""
    out = Path(os.fspath(path))
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValueError(
            f"The report is an HTML page; give a path ending in .html (got {str(out)!r})."
        )
    if out.is_dir():
        raise IsADirectoryError(f"{str(out)!r} is a directory; give a file name ending in .html.")
    if out.exists() and not overwrite:
        raise FileExistsError(
            f"{str(out)!r} already exists; pass overwrite=True to replace it."
        )
    parent = out.parent
    if not parent.is_dir():
        raise FileNotFoundError(
            f"The directory {str(parent)!r} does not exist; create it first or choose another "
            "path."
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"The directory {str(parent)!r} is not writable.")
    return out


# -- plots --------------------------------------------------------------------------------
def _figure(width: float, height: float) -> Any:
    # a bare Figure draws with the Agg canvas: no pyplot state, no GUI backend
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig: Any, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _mpl(text: Any, limit: int = 28) -> str:
    """A user string safe for matplotlib text (no mathtext), shortened for a label."""
    s = str(text)
    if len(s) > limit:
        s = s[: limit - 1] + "\u2026"
    return s.replace("$", r"\$")


# -- tables -------------------------------------------------------------------------------
def _num(v: Any, col: str = "", digits: int = 3) -> str:
    """A numeric cell: rounded text, the exact value in ``data-value``."""
    v = _plain(v)
    attr = f' data-col="{_e(col)}"' if col else ""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return f'<td class="num"{attr} data-value="nan">&ndash;</td>'
    if isinstance(v, (bool, np.bool_)):
        return f"<td{attr}>{'yes' if v else 'no'}</td>"
    if isinstance(v, (int, np.integer)):
        return f'<td class="num"{attr} data-value="{int(v)}">{int(v):,}</td>'
    f = float(v)
    return f'<td class="num"{attr} data-value="{f!r}">{f:.{digits}f}</td>'


def _txt(v: Any, col: str = "") -> str:
    attr = f' data-col="{_e(col)}"' if col else ""
    return f"<td{attr}>{_e(_plain(v))}</td>"


def _table(header: Sequence[str], rows: Sequence[str], table_id: str = "") -> str:
    """``header``: HTML of the header cells (already escaped); ``rows``: ``<tr>`` HTML."""
    tid = f' id="{_e(table_id)}"' if table_id else ""
    head = "".join(f"<th>{h}</th>" for h in header)
    return f"<table{tid}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _section(sid: str, heading: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{_e(heading)}</h2>{body}</section>'


def _note(text_html: str) -> str:
    return f'<p class="note">{text_html}</p>'


# -- the model's learned quantities -------------------------------------------------------
def _inner(model: Any) -> Any:
    """The aggregator whose parameters are shown: ``estimator_`` of an AutoAggregator."""
    inner = getattr(model, "estimator_", None)
    return model if inner is None else inner


def _source_quality(est: Any, m: int) -> tuple[str, np.ndarray | None, str]:
    """(column header HTML, values or None, explanation HTML) of the per-source quality."""
    conf = getattr(est, "confusion_", None)
    prior = getattr(est, "class_prior_", None)
    if conf is not None and prior is not None and np.ndim(conf) == 3 and len(conf) == m:
        conf = np.asarray(conf, dtype=np.float64)
        prior = np.asarray(prior, dtype=np.float64)
        k = prior.shape[0]
        diag = conf[:, np.arange(k), np.arange(k)]
        acc = diag @ prior
        how = ("&Sigma;<sub>c</sub> &pi;<sub>c</sub> &Theta;<sub>j</sub>[c, c], from the "
               "learned confusion matrices <code>confusion_</code> and prior "
               "<code>class_prior_</code>")
        if conf.shape[2] == k + 1:  # abstain modelled: accuracy of the votes given
            with np.errstate(invalid="ignore", divide="ignore"):
                acc = acc / ((1.0 - conf[:, :, k]) @ prior)
            how += (", divided by the probability of voting (the last column is "
                    "&lsquo;abstain&rsquo;), so that it is the accuracy of the votes cast")
        return "learned accuracy", acc, how
    for attr, header, what in _SOURCE_QUALITY:
        vals = getattr(est, attr, None)
        if vals is not None and np.ndim(vals) == 1 and len(vals) == m:
            return header, np.asarray(vals, dtype=np.float64), what
    return "learned accuracy", None, (
        f"{_e(type(est).__name__)} learns no per-source accuracy or skill: n/a"
    )


def _histories(est: Any) -> list[tuple[str, np.ndarray]]:
    """The per-iteration traces (``*_history_`` attributes) the model keeps."""
    out = []
    for name in sorted(vars(est)):
        if name.endswith("_history_") and not name.startswith("_"):
            h = np.asarray(getattr(est, name))
            if h.ndim == 1 and h.size >= 1 and h.dtype.kind in "iuf":
                out.append((name, h.astype(np.float64)))
    return out


def _non_default_params(model: Any) -> dict[str, Any]:
    import inspect

    if not hasattr(model, "get_params"):
        return {}
    params = model.get_params(deep=False)
    sig = inspect.signature(type(model).__init__)
    out = {}
    for name, value in params.items():
        p = sig.parameters.get(name)
        if p is None or repr(p.default) != repr(value):
            out[name] = value
    return out


# -- the sections -------------------------------------------------------------------------
def _header(model: Any, est: Any, lm: LabelMatrix, n_known: int, n_gold: int,
            fitted_here: bool) -> str:
    summ = label_matrix_summary(lm)
    name = type(model).__name__
    inner = f" (chose {_e(type(est).__name__)})" if est is not model else ""
    params = _non_default_params(model)
    ptxt = ", ".join(f"{_e(k)}={_e(repr(_plain(v)))}" for k, v in params.items()) or "defaults"
    how = "fitted for this report" if fitted_here else "fitted before the report (used as is)"
    rows = [
        f"<tr><th>model</th><td><code>{_e(name)}</code>{inner}; parameters: {ptxt}; {how}"
        "</td></tr>",
        f"<tr><th>votes</th><td>{summ['n_items']:,} items &times; {summ['n_sources']:,} "
        f"sources, {summ['n_classes']:,} classes, {summ['n_votes']:,} votes "
        f"({summ['votes_per_item']:.2f} per item, abstain rate {summ['abstain_rate']:.3f})"
        "</td></tr>",
        f"<tr><th>items</th><td>covered {summ['coverage']:.3f}, with overlap "
        f"{summ['overlap']:.3f}, with conflict {summ['conflict']:.3f}</td></tr>",
        f"<tr><th>labels</th><td>{n_known:,} known labels given to the fit; {n_gold:,} gold "
        "labels for evaluation</td></tr>",
    ]
    return f"<table id=\"run\"><tbody>{''.join(rows)}</tbody></table>"


def _scores_section(gold_eval: np.ndarray | None, proba: np.ndarray, lm: LabelMatrix,
                    eval_note: str) -> str:
    if gold_eval is None:
        return _section("scores", "Scores against gold", _note(
            "No gold labels were given (<code>gold=</code>; <code>--gold FILE</code> on the "
            "command line): the soft labels are not scored."))
    ev = _metrics.evaluate(gold_eval, proba, covered=lm, n_bins=N_BINS)
    names = [("n_gold", "gold items scored"), ("accuracy", "accuracy"),
             ("balanced_accuracy", "balanced accuracy"), ("macro_f1", "macro-F1"),
             ("log_loss", "log loss"), ("brier", "Brier score"),
             ("ece", f"expected calibration error ({N_BINS} bins)"),
             ("n_uncovered", "gold items without any vote"),
             ("accuracy_covered", "accuracy on items with votes")]
    rows = [f"<tr><th>{_e(label)}</th>{_num(ev[key], key, 4)}</tr>" for key, label in names]
    body = _note(eval_note) + f"<table id=\"scores-table\"><tbody>{''.join(rows)}</tbody></table>"
    return _section("scores", "Scores against gold", body)


def _sources_section(lm: LabelMatrix, est: Any, gold_idx: np.ndarray | None,
                     cls_names: list[str]) -> str:
    table = source_summary(lm, gold_idx)
    header_q, quality, how = _source_quality(est, lm.n_sources)
    cols = ["source", "polarity", "votes", "coverage", "overlap", "conflict", header_q]
    if gold_idx is not None:
        cols += ["correct", "incorrect", "empirical accuracy"]
    names = {c: i for i, c in enumerate(lm.classes.tolist())}
    rows = []
    for j, (src, r) in enumerate(table.iterrows()):
        pol = ", ".join(cls_names[names[c]] for c in r["polarity"])
        cells = [_txt(src, "source"), _txt(pol, "polarity"), _num(r["n_votes"], "n_votes"),
                 _num(r["coverage"], "coverage"), _num(r["overlap"], "overlap"),
                 _num(r["conflict"], "conflict")]
        if quality is None:
            cells.append('<td data-col="learned">n/a</td>')
        else:
            cells.append(_num(quality[j], "learned"))
        if gold_idx is not None:
            cells += [_num(r["correct"], "correct"), _num(r["incorrect"], "incorrect"),
                      _num(r["emp_accuracy"], "emp_accuracy")]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    notes = [
        "<b>coverage</b>: share of the items the source votes on; <b>overlap</b>: share on "
        "which it votes and another source votes too; <b>conflict</b>: share on which "
        f"another source votes a different class. <b>{header_q}</b>: {how}."
    ]
    if gold_idx is not None:
        notes.append("<b>empirical accuracy</b>: correct / (correct + incorrect) over the "
                     "source's votes on gold items (&ndash; when it never votes on one).")
    else:
        notes.append("Pass gold labels for each source's empirical accuracy.")
    body = _table([_e(c) if c != header_q else c for c in cols], rows, "sources-table")
    return _section("sources", "Sources", body + _note(" ".join(notes)))


def _confusion_section(lm: LabelMatrix, est: Any, cls_names: list[str]) -> str:
    conf = getattr(est, "confusion_", None)
    if conf is None or np.ndim(conf) != 3 or len(conf) != lm.n_sources:
        return _section("confusion", "Learned confusion matrices", _note(
            f"{_e(type(est).__name__)} learns no per-source confusion matrices (one-coin or "
            "vote-weighting models summarise a source by one number, in the table above)."))
    conf = np.asarray(conf, dtype=np.float64)
    k = conf.shape[1]
    n_votes = np.bincount(lm.source, minlength=lm.n_sources)
    order = np.lexsort((np.arange(lm.n_sources), -n_votes))[:MAX_HEATMAPS]
    cols = min(3, order.size)
    rows = int(np.ceil(order.size / cols))
    outcomes = [*cls_names, "abstain"] if conf.shape[2] == k + 1 else list(cls_names)
    cell = 0.45 * max(k, 2) + 1.6
    fig = _figure(min(cols * cell + 1.0, 13.0), rows * (0.45 * max(k, 2) + 1.5))
    axes = fig.subplots(rows, cols, squeeze=False)
    im = None
    for ax, j in zip(axes.flat, order, strict=False):
        im = ax.imshow(conf[j], vmin=0.0, vmax=1.0, cmap="Blues", aspect="auto")
        ax.set_title(f"{_mpl(lm.source_names[j])} ({n_votes[j]:,} votes)", fontsize=9)
        ax.set_xticks(range(len(outcomes)))
        ax.set_yticks(range(k))
        if len(outcomes) <= 20:
            ax.set_xticklabels([_mpl(o, 10) for o in outcomes], rotation=45, ha="right",
                               fontsize=8)
            ax.set_yticklabels([_mpl(c, 10) for c in cls_names], fontsize=8)
        ax.set_xlabel("vote", fontsize=8)
        ax.set_ylabel("true class", fontsize=8)
        if k <= 8:
            for c in range(k):
                for v in range(len(outcomes)):
                    x = conf[j, c, v]
                    ax.text(v, c, f"{x:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if x > 0.6 else "black")
    for ax in list(axes.flat)[order.size:]:
        ax.set_visible(False)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8, label="P(vote | true class)")
    img = _png(fig, "learned confusion matrices of the most active sources")
    body = img + _note(
        f"The {order.size} most active sources (of {lm.n_sources}, by number of votes). Row "
        "<i>c</i>, column <i>l</i>: the learned probability that the source votes <i>l</i> "
        "on an item of true class <i>c</i>. A good source is dark on the diagonal; a row "
        "spread over the columns is a source that guesses on that class; a dark "
        "off-diagonal cell is a systematic confusion.")
    return _section("confusion", "Learned confusion matrices", body)


def _prior_section(lm: LabelMatrix, est: Any, proba: np.ndarray, gold_idx: np.ndarray | None,
                   cls_names: list[str]) -> str:
    k = lm.n_classes
    series: list[tuple[str, np.ndarray]] = []
    learned = getattr(est, "class_prior_", None)
    if learned is not None and np.shape(learned) == (k,):
        series.append(("learned prior", np.asarray(learned, dtype=np.float64)))
    series.append(("mean soft label", proba.mean(axis=0) if proba.shape[0] else np.full(k, np.nan)))
    votes = lm.class_counts().sum(axis=0).astype(np.float64)
    series.append(("share of the votes", votes / max(votes.sum(), 1.0)))
    if gold_idx is not None and (gold_idx >= 0).any():
        g = np.bincount(gold_idx[gold_idx >= 0], minlength=k).astype(np.float64)
        series.append(("share of the gold labels", g / g.sum()))
    header = ["class", *(_e(s) for s, _ in series)]
    rows = [
        "<tr>" + _txt(cls_names[c], "class")
        + "".join(_num(v[c], s) for s, v in series) + "</tr>"
        for c in range(k)
    ]
    fig = _figure(min(4.0 + 0.25 * k * len(series), 11.0), 3.2)
    ax = fig.subplots()
    width = 0.8 / len(series)
    x = np.arange(k)
    for i, (label, v) in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, v, width, label=label)
    if k <= 30:
        ax.set_xticks(x, [_mpl(c, 12) for c in cls_names], fontsize=8)
    ax.set_ylabel("share")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    img = _png(fig, "class prior: learned, mean soft label, vote shares, gold shares")
    body = img + _table(header, rows, "prior-table") + _note(
        "The prior the model learned beside the mean of its soft labels, the classes' shares "
        "of the votes and (with gold) of the gold labels. A learned prior far from the gold "
        "shares is a prior collapse or a bias of the sources; vote shares are biased towards "
        "the classes the sources vote for most.")
    return _section("prior", "Class prior", body)


def _calibration_section(gold_eval: np.ndarray | None, proba: np.ndarray) -> str:
    if gold_eval is None or not (gold_eval >= 0).any():
        return _section("calibration", "Reliability diagram", _note(
            "Calibration needs gold labels (<code>gold=</code>; <code>--gold FILE</code>), "
            "none were given for items not used in the fit: no reliability diagram."))
    has = gold_eval >= 0
    p = proba[has]
    conf = p.max(axis=1)
    correct = (np.argmax(p, axis=1) == gold_eval[has]).astype(float)
    bins = np.minimum((conf * N_BINS).astype(int), N_BINS - 1)
    cnt = np.bincount(bins, minlength=N_BINS)
    acc_b = np.bincount(bins, weights=correct, minlength=N_BINS)
    conf_b = np.bincount(bins, weights=conf, minlength=N_BINS)
    ece = _metrics.expected_calibration_error(gold_eval, proba, n_bins=N_BINS)
    nz = cnt > 0
    fig = _figure(8.0, 3.4)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    ax1.plot(conf_b[nz] / cnt[nz], acc_b[nz] / cnt[nz], "o-", color="C0", label="model")
    ax1.set_xlim(0, 1)
    ax1.set_ylim(0, 1.02)
    ax1.set_xlabel("confidence (top-class probability)")
    ax1.set_ylabel("accuracy")
    ax1.set_title(f"ECE = {ece:.4f}", fontsize=10)
    ax1.legend(fontsize=8, loc="upper left")
    edges = np.linspace(0, 1, N_BINS + 1)
    ax2.bar(edges[:-1], cnt, width=1.0 / N_BINS, align="edge", color="C1", edgecolor="white")
    ax2.set_xlim(0, 1)
    ax2.set_xlabel("confidence")
    ax2.set_ylabel("gold items")
    img = _png(fig, f"reliability diagram, ECE {ece:.4f}")
    rows = [
        "<tr>" + _txt(f"{edges[b]:.3f}\u2013{edges[b + 1]:.3f}", "bin")
        + _num(int(cnt[b]), "n") + _num(conf_b[b] / cnt[b], "confidence")
        + _num(acc_b[b] / cnt[b], "accuracy") + "</tr>"
        for b in np.flatnonzero(nz)
    ]
    body = (
        f'<p>Expected calibration error: <b id="ece" data-value="{ece!r}">{ece:.4f}</b> '
        f"({N_BINS} equal-width bins of the top-class probability, "
        "<code>wsagg.metrics.expected_calibration_error</code>).</p>" + img
        + _table(["confidence bin", "gold items", "mean confidence", "accuracy"], rows,
                 "calibration-table")
        + _note("Each point is the accuracy of the items whose top-class probability falls in "
                "a bin, against their mean confidence. Points below the diagonal are "
                "over-confident soft labels (common for EM on correlated sources); above, "
                "under-confident. The histogram shows where the items are.")
    )
    return _section("calibration", "Reliability diagram", body)


def _convergence_section(est: Any) -> str:
    hist = _histories(est)
    n_iter = getattr(est, "n_iter_", None)
    conv = getattr(est, "converged_", None)
    facts = []
    if n_iter is not None:
        facts.append(f"{int(n_iter):,} iterations")
    if conv is not None:
        facts.append("converged" if bool(conv) else "<b>did not converge</b>")
    fact = f" ({', '.join(facts)})" if facts else ""
    if not hist:
        return _section("convergence", "Convergence", _note(
            f"{_e(type(est).__name__)} keeps no per-iteration history{fact}: it is computed "
            "in closed form or its iterations are not recorded."))
    fig = _figure(7.0, 3.0)
    axes = fig.subplots(1, len(hist), squeeze=False)[0]
    for ax, (name, h) in zip(axes, hist, strict=True):
        it = np.arange(1, h.size + 1)
        ax.plot(it, h, "o-" if h.size < 40 else "-", ms=3)
        pos = h[np.isfinite(h)]
        if pos.size and (pos > 0).all() and pos.max() / pos.min() > 1e3:
            ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_title(name, fontsize=9)
    img = _png(fig, "convergence trace: " + ", ".join(n for n, _ in hist))
    last = ", ".join(f"<code>{_e(n)}</code> ends at {h[-1]:.6g} after {h.size} values"
                     for n, h in hist)
    body = _note(f"{_e(type(est).__name__)}{fact}: {last}. A likelihood or ELBO should rise "
                 "and flatten; a change history should fall towards the tolerance.") + img
    return _section("convergence", "Convergence", body)


def _buckets_section(gold_eval: np.ndarray | None, proba: np.ndarray,
                     cls_names: list[str]) -> str:
    if gold_eval is None or not (gold_eval >= 0).any():
        return _section("buckets", "Accuracy by class frequency", _note(
            "Needs gold labels: the classes are bucketed by their gold frequency."))
    res = _metrics.accuracy_by_frequency_bucket(gold_eval, proba)
    rows = []
    for name, b in res.items():
        classes = ", ".join(cls_names[c] for c in b["classes"]) or "(none)"
        rows.append("<tr>" + _txt(name, "bucket") + _txt(classes, "classes")
                    + _num(b["n_items"], "n_items") + _num(b["accuracy"], "accuracy")
                    + _num(b["balanced_accuracy"], "balanced_accuracy") + "</tr>")
    body = _table(["bucket", "classes", "gold items", "accuracy", "balanced accuracy"], rows,
                  "buckets-table") + _note(
        "Classes ranked by their number of gold items and cut into three groups of nearly "
        "equal size (two classes: head and tail; <code>wsagg.metrics.frequency_buckets</code>)"
        ". A tail much worse than the head means the aggregate favours the frequent classes.")
    return _section("buckets", "Accuracy by class frequency", body)


def _auto_section(model: Any) -> str:
    cv = getattr(model, "cv_results_", None)
    if not isinstance(cv, dict) or "candidate" not in cv or not hasattr(model, "selected_"):
        return ""
    crit = getattr(model, "criterion_", "")
    better = "lower is better" if crit == "cv_log_loss" else "higher is better"
    cols = [c for c in ("candidate", "method", "params", "score", "score_std_err", "accuracy",
                        "temperature", "error") if c in cv]
    rows = []
    n = len(cv["candidate"])
    for i in range(n):
        chosen = str(cv["candidate"][i]) == str(model.selected_)
        cells = []
        for c in cols:
            v = _plain(cv[c][i])
            if c in ("candidate", "method", "error"):
                cells.append(_txt(("\u2713 " if chosen and c == "candidate" else "") + str(v), c))
            elif c == "params":
                cells.append(_txt(repr(v) if v not in (None, {}) else "", c))
            else:
                cells.append(_num(v, c, 4))
        cls = ' class="chosen"' if chosen else ""
        rows.append(f"<tr{cls}>{''.join(cells)}</tr>")
    score = np.asarray(cv.get("score", []), dtype=np.float64)
    img = ""
    if score.size and np.isfinite(score).any():
        err = np.asarray(cv.get("score_std_err", np.zeros(n)), dtype=np.float64)
        fig = _figure(7.0, 0.3 * n + 1.2)
        ax = fig.subplots()
        y = np.arange(n)[::-1]
        colors = ["C2" if str(c) == str(model.selected_) else "C0" for c in cv["candidate"]]
        ax.barh(y, np.where(np.isfinite(score), score, 0.0), color=colors,
                xerr=np.where(np.isfinite(err), err, 0.0))
        ax.set_yticks(y, [_mpl(c, 30) for c in cv["candidate"]], fontsize=8)
        ax.set_xlabel(f"{crit} ({better})")
        fin = score[np.isfinite(score)]
        lo, hi = fin.min(), fin.max()
        pad = 0.1 * (hi - lo) if hi > lo else 0.1 * abs(hi) + 1e-3
        ax.set_xlim(min(lo - pad, 0) if lo >= 0 else lo - pad, hi + pad)
        img = _png(fig, "AutoAggregator candidates and their scores")
    body = (
        f'<p class="explanation" id="explanation">{_e(getattr(model, "explanation_", ""))}</p>'
        f"<p>Criterion: <code>{_e(crit)}</code> ({better}); chosen: "
        f"<b>{_e(model.selected_)}</b>.</p>" + img + _table([_e(c) for c in cols], rows,
                                                            "auto-table")
        + _note("<b>score_std_err</b>: the paired standard error of a candidate's difference "
                "from the best; the simplest candidate within one of the best is kept. A "
                "non-empty <b>error</b> is why a candidate was excluded.")
    )
    return _section("auto", "AutoAggregator: candidates and choice", body)


# -- the entry point ----------------------------------------------------------------------
def report(
    model: Any,
    L: Any,
    *,
    y: Any = None,
    gold: Any = None,
    path: str | os.PathLike[str] | None = None,
    title: str | None = None,
    overwrite: bool = False,
    class_names: Sequence[Any] | None = None,
) -> str:
    """One self-contained HTML page describing an aggregation run.

    Parameters
    ----------
    model : aggregator or str
        A wsagg aggregator, fitted (used as is) or not (fitted here, in place, on ``L`` and
        ``y``), or a registered method name (``"auto"``, ``"dawid-skene"``, ...).
    L : label matrix
        The votes, in any form ``fit`` accepts.
    y : array or Series, optional
        Known labels given to the fit (same forms as ``fit``; ``-1`` = unknown). With an
        already fitted model they are not used for fitting; they still mark the items whose
        labels the model saw.
    gold : array or Series, optional
        Gold labels used only for evaluation (same forms as ``y``). The model's scores,
        calibration and per-bucket accuracy use the gold items whose label was *not* in
        ``y`` (when every gold item was, all of them, with a note saying so); the per-source
        empirical accuracy uses every gold item, like :func:`wsagg.source_summary`.
    path : str or path-like, optional
        Where to write the page (``.html``), atomically. Checked before anything is fitted.
    title : str, optional
        The page's title (default ``"wsagg report: <model class>"``).
    overwrite : bool, default False
        Replace an existing file at ``path``; without it an existing file is an error.
    class_names : sequence, optional
        Readable names of the classes in class-index order (default: the label matrix's
        class values).

    Returns
    -------
    str
        The HTML page (also written to ``path`` when given).

    Raises
    ------
    ImportError
        matplotlib is missing (``pip install 'wsagg[plot]'``).
    FileExistsError
        ``path`` exists and ``overwrite`` is false.

    Examples
    --------
    >>> import wsagg
    >>> from wsagg.datasets import load_demo
    >>> data = load_demo("valid")
    >>> page = wsagg.report(wsagg.DawidSkene(random_state=0), data.L, gold=data.y)
    >>> page.startswith("<!DOCTYPE html>")
    True
    """
    _require_matplotlib()
    out = None if path is None else _check_path(path, overwrite)
    if isinstance(model, str):
        from wsagg._registry import get_aggregator

        model = get_aggregator(model)
    if not (hasattr(model, "fit") and hasattr(model, "predict_proba")):
        raise TypeError(
            f"model must be a wsagg aggregator (fitted or not) or a method name; got "
            f"{type(model).__name__}."
        )
    fitted_here = not hasattr(model, "classes_")
    if fitted_here:
        model.fit(L, y)
    lm = model._validate_predict(L)  # the votes aligned with the fitted sources and classes
    proba = np.asarray(model.predict_proba(lm), dtype=np.float64)
    est = _inner(model)
    k = lm.n_classes

    known = None
    if y is not None:
        known = check_known_labels(y, lm)
    gold_idx = None
    if gold is not None:
        try:
            gold_idx = check_known_labels(gold, lm)
        except ValueError as err:
            raise ValueError(f"gold (the evaluation labels): {err}") from None
    n_known = 0 if known is None else int((known >= 0).sum())
    n_gold = 0 if gold_idx is None else int((gold_idx >= 0).sum())

    gold_eval, eval_note = gold_idx, f"Scored on the {n_gold:,} gold items."
    if gold_idx is not None and known is not None:
        seen = (gold_idx >= 0) & (known >= 0)
        if seen.any() and seen.sum() < n_gold:
            gold_eval = np.where(known >= 0, -1, gold_idx)
            eval_note = (f"Scored on the {n_gold - int(seen.sum()):,} gold items whose label "
                         f"was not given to the fit ({int(seen.sum()):,} gold items were "
                         "known labels and are left out).")
        elif seen.any():
            eval_note = ("Every gold item's label was also given to the fit as a known label: "
                         "these scores are optimistic (they are not held out).")

    if class_names is None:
        cls_names = [str(_plain(c)) for c in lm.classes]
    else:
        cls_names = [str(c) for c in class_names]
        if len(cls_names) != k:
            raise ValueError(
                f"class_names has {len(cls_names)} names but the model has {k} classes; give "
                "one name per class, in class-index order."
            )
    title = title if title is not None else f"wsagg report: {type(model).__name__}"

    sections = [
        _scores_section(gold_eval, proba, lm, eval_note),
        _sources_section(lm, est, gold_idx, cls_names),
        _confusion_section(lm, est, cls_names),
        _prior_section(lm, est, proba, gold_idx, cls_names),
        _calibration_section(gold_eval, proba),
        _convergence_section(est),
        _buckets_section(gold_eval, proba, cls_names),
        _auto_section(model),
    ]
    sections = [s for s in sections if s]
    nav_items = [
        ("scores", "scores"), ("sources", "sources"), ("confusion", "confusion matrices"),
        ("prior", "class prior"), ("calibration", "calibration"),
        ("convergence", "convergence"), ("buckets", "class-frequency buckets"),
        ("auto", "auto: candidates"),
    ]
    nav = "".join(f'<a href="#{sid}">{_e(label)}</a>' for sid, label in nav_items
                  if any(s.startswith(f'<section id="{sid}"') for s in sections))
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<meta name=\"generator\" content=\"wsagg {_e(__version__)}\">"
        '<link rel="icon" href="data:,">'  # no favicon request
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body><main>"
        f"<h1>{_e(title)}</h1>"
        + _header(model, est, lm, n_known, n_gold, fitted_here)
        + f"<nav>{nav}</nav>\n" + "\n".join(sections)
        + f'\n<p class="note">Made by wsagg {_e(__version__)} (<code>wsagg.report</code>).</p>'
        "</main></body></html>\n"
    )
    if out is not None:
        write_atomic(out, page, overwrite=overwrite)
    return page
