"""Automatic aggregator selection, with calibrated soft labels.

No single aggregation model wins on real data (measured on 23 crowd sets, the best method
per set was Dawid-Skene on 7, MACE on 6, Snorkel's label model on 4, one-coin on 3, majority
vote on 2, GLAD on 1). :class:`AutoAggregator` fits a small set of registered aggregators
(and a grid of their key knobs) and keeps the one the data support, by one of two honest
criteria:

**With known labels** (some ``y >= 0``): stratified ``K``-fold cross-validation over the
known items. Every candidate sees *all* votes; the training folds' labels are clamped and
the held-out fold's hidden. The held-out predictions are scored by log loss (accuracy is
reported beside it), after the temperature calibration below, and the *one-standard-error
rule* (Breiman et al. 1984; Hastie, Tibshirani & Friedman 2009, sec. 7.10) picks the
simplest candidate whose mean loss is within one standard error of the best: majority vote
and the accuracy-weighted (one-coin log-odds) vote are always candidates, so ``auto`` is
never worse than them beyond noise.

**Without labels**: the *held-out vote likelihood*. A share ``mask_fraction`` of the votes
(only from items that keep at least one vote) is hidden; each candidate is fitted on the
rest and gives posteriors :math:`q_i`; each source's confusion matrix is estimated from those
posteriors and the remaining votes,

.. math::

    \\hat\\Theta_j[c, l] = \\frac{\\sum_i q_{ic} [\\lambda_{ij} = l] + \\alpha}
                               {\\sum_i q_{ic} + k \\alpha}, \\qquad \\alpha = 1,

and the score is the mean log predictive probability of the hidden votes,

.. math::

    \\mathrm{HVL} = \\frac{1}{|M|} \\sum_{(i, j, l) \\in M}
        \\log \\sum_c q_{ic} \\, \\hat\\Theta_j[c, l].

It rewards posteriors that predict what *other* sources say about an item, and punishes
confident mistakes; it needs no gold and is the same number for every model, whatever its
own likelihood. (How well it ranks the aggregators by true accuracy is measured by
``benchmarks/bench_realdata.py`` with leave-one-dataset-out, see ``docs/auto.md``.)

**Calibration.** The chosen posteriors are tempered, :math:`q_T \\propto q^{1/T}`: ``T`` is
fitted by minimising the held-out log loss of the out-of-fold predictions (labels), or by
maximising the held-out vote likelihood (no labels) — a gold-free tempering. ``T > 1``
softens posteriors made over-confident by correlated sources or item-dependent errors.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from wsagg._registry import AGGREGATORS, get_aggregator
from wsagg.base import BaseAggregator
from wsagg.labels import LabelMatrix

__all__ = [
    "AutoAggregator",
    "default_candidates",
    "held_out_vote_likelihood",
    "vote_log_likelihoods",
]

_EPS = 1e-15
_LOG_T_BOUNDS = (-2.5, 2.5)  # temperatures between 0.08 and 12

# (label, method, params), simplest first: the order of the one-standard-error rule
_CANDIDATES: list[tuple[str, str, dict[str, Any], str]] = [
    ("majority", "majority", {}, "any"),
    ("majority-accuracy", "majority", {"weights": "accuracy"}, "labels"),
    ("wawa", "wawa", {}, "any"),
    ("zero-based-skill", "zero-based-skill", {}, "any"),
    ("iwmv", "iwmv", {}, "any"),
    ("dawid-skene-one-coin", "dawid-skene", {"model": "one-coin"}, "any"),
    ("mace", "mace", {}, "any"),
    ("glad", "glad", {}, "any"),
    ("triplet", "triplet", {}, "binary"),
    ("matrix-completion", "matrix-completion", {}, "any"),
    ("dawid-skene", "dawid-skene", {}, "any"),
    ("bcc", "bcc", {}, "any"),
    ("bcc-communities", "bcc", {"communities": 2}, "any"),
]


def default_candidates(n_classes: int, has_labels: bool) -> list[tuple[str, str, dict]]:
    """The registered candidates that apply: ``(label, method, params)``, simplest first."""
    out = []
    for label, method, params, when in _CANDIDATES:
        if method not in AGGREGATORS:
            continue
        if when == "labels" and not has_labels:
            continue
        if when == "binary" and n_classes != 2:
            continue
        out.append((label, method, dict(params)))
    return out


def _temper(log_p: np.ndarray, t: float) -> np.ndarray:
    return np.exp(log_softmax(log_p / t, axis=1))


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p, _EPS, 1.0))


def _confusions(q: np.ndarray, lm: LabelMatrix, alpha: float = 1.0) -> np.ndarray:
    """Per-source confusion ``(m, k, k)`` from posteriors ``q`` and the votes of ``lm``."""
    m, k = lm.n_sources, lm.n_classes
    V = lm.one_hot()  # (n, m k)
    counts = np.asarray(V.T @ q).reshape(m, k, k).transpose(0, 2, 1)  # [j, c, l]
    return (counts + alpha) / (counts.sum(axis=2, keepdims=True) + k * alpha)


def vote_log_likelihoods(
    q: np.ndarray, kept: LabelMatrix, item: np.ndarray, source: np.ndarray, label: np.ndarray
) -> np.ndarray:
    """Log predictive probability of each hidden vote ``(item, source, label)`` under
    posteriors ``q`` (from the kept votes) and the confusions they imply (module docstring)."""
    theta = _confusions(q, kept)
    pred = np.einsum("vc,vc->v", q[item], theta[source, :, label])
    return np.log(np.maximum(pred, _EPS))


def held_out_vote_likelihood(
    q: np.ndarray, kept: LabelMatrix, item: np.ndarray, source: np.ndarray, label: np.ndarray
) -> float:
    """The mean of :func:`vote_log_likelihoods`: the gold-free criterion."""
    return float(vote_log_likelihoods(q, kept, item, source, label).mean())


def _frac_hash(x: np.ndarray, salt: float) -> np.ndarray:
    """A deterministic pseudo-random number in [0, 1) for each float of ``x``."""
    return np.modf(np.abs(np.sin(x * 12.9898 + salt) * 43758.5453))[0]


def _mask_votes(lm: LabelMatrix, fraction: float, salt: float) -> np.ndarray:
    """Boolean mask of the hidden votes: about a ``fraction`` of them, never all of an item's.

    The draw is a hash of the *content* of each vote, not of its position, so that
    permuting items or sources, or renaming classes, hides the same votes (the selection is
    then exactly equivariant): a source is described by its sorted class histogram, an
    item by the multiset of its voters' descriptions and of how many of its votes agree
    with each vote."""
    k = lm.n_classes
    hist = np.bincount(lm.source * k + lm.label, minlength=lm.n_sources * k).reshape(-1, k)
    src = _frac_hash(np.sort(hist, axis=1) @ (1.0 + np.arange(k)) / (1.0 + hist.sum()), 0.5)
    agree = np.bincount(lm.item * k + lm.label, minlength=lm.n_items * k)[
        lm.item * k + lm.label]
    per_vote = _frac_hash(src[lm.source] + 0.618 * agree, 1.5)
    item_sig = np.bincount(lm.item, weights=per_vote, minlength=lm.n_items)
    u = _frac_hash(item_sig[lm.item] + src[lm.source] + 0.37 * agree, salt)
    hide = u < fraction
    # every item keeps its vote(s) of largest u
    top = np.full(lm.n_items, -np.inf)
    np.maximum.at(top, lm.item, u)
    return hide & (u < top[lm.item])


def _subset(lm: LabelMatrix, keep: np.ndarray) -> LabelMatrix:
    return LabelMatrix(
        item=lm.item[keep], source=lm.source[keep], label=lm.label[keep], n_items=lm.n_items,
        n_sources=lm.n_sources, n_classes=lm.n_classes, item_ids=lm.item_ids,
        source_names=lm.source_names, classes=lm.classes,
    )


class AutoAggregator(BaseAggregator):
    """Chooses an aggregator from the data and calibrates its soft labels.

    The criteria (cross-validated log loss with known labels, held-out vote likelihood
    without) and the calibration are stated in the module docstring of
    :mod:`wsagg.aggregation.auto`; ``docs/auto.md`` explains how the defaults were chosen
    (leave-one-dataset-out).

    Parameters
    ----------
    n_classes : int, optional
        Number of classes ``k``; inferred from the votes (and ``y``) when ``None``.
    candidates : "default" or list of (label, method, params)
        The candidates: registry method names with constructor parameters.
        ``"default"``: :func:`default_candidates`, simplest first.
    n_folds : int, default=5
        Folds of the cross-validation over the known items (fewer when a class has fewer
        known items; with fewer than 2 per class the gold-free criterion is used, the
        labels still clamped in the final fit).
    mask_fraction : float, default=0.2
        Share of the votes hidden by the held-out vote likelihood.
    n_masks : int, default=3
        Independent masks averaged by the held-out vote likelihood.
    calibration : bool, default=True
        Temper the chosen posteriors (module docstring).
    one_standard_error : bool, default=True
        Prefer the simplest candidate within one standard error of the best CV loss.
    tie_break : {"first", "random"}, default="first"
    random_state : int, RandomState or None
        Seeds the folds, the masks and the candidates.

    Attributes
    ----------
    classes_ : ndarray of shape (k,)
    n_classes_ : int
    n_sources_ : int
    source_names_ : ndarray of shape (m,)
    selected_ : str
        Label of the chosen candidate.
    estimator_ : BaseAggregator
        The chosen aggregator, refitted on all votes and all known labels.
    criterion_ : {"cv_log_loss", "held_out_vote_likelihood"}
    cv_results_ : dict of arrays
        One entry per candidate: ``"candidate"``, ``"method"``, ``"params"``, ``"score"``
        (mean CV log loss, lower is better; or mean held-out vote likelihood, higher is
        better), ``"accuracy"`` (held-out, with labels; else nan),
        ``"score_std_err"`` (the paired standard error of its difference from the best),
        ``"temperature"``, ``"error"`` (the message of a candidate that failed, else "").
    temperature_ : float
        The calibration temperature applied (1.0 without calibration).
    class_prior_ : ndarray of shape (k,)
        The (tempered) prior given to items without votes.
    explanation_ : str
        What was chosen and why, in words.

    Examples
    --------
    >>> import numpy as np
    >>> from wsagg import AutoAggregator
    >>> L = np.array([[0, 0, 1], [1, 1, 1], [0, -1, 0], [1, 1, -1], [0, 0, 0]] * 20)
    >>> auto = AutoAggregator(random_state=0).fit(L)
    >>> auto.predict(L[:5])
    array([0, 1, 0, 1, 0])
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_classes": [Interval(Integral, 2, None, closed="left"), None],
        "candidates": [StrOptions({"default"}), list],
        "n_folds": [Interval(Integral, 2, None, closed="left")],
        "mask_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_masks": [Interval(Integral, 1, None, closed="left")],
        "calibration": ["boolean"],
        "one_standard_error": ["boolean"],
        "tie_break": [StrOptions({"first", "random"})],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_classes: int | None = None,
        *,
        candidates: Any = "default",
        n_folds: int = 5,
        mask_fraction: float = 0.2,
        n_masks: int = 3,
        calibration: bool = True,
        one_standard_error: bool = True,
        tie_break: str = "first",
        random_state: Any = None,
    ) -> None:
        self.n_classes = n_classes
        self.candidates = candidates
        self.n_folds = n_folds
        self.mask_fraction = mask_fraction
        self.n_masks = n_masks
        self.calibration = calibration
        self.one_standard_error = one_standard_error
        self.tie_break = tie_break
        self.random_state = random_state

    # ------------------------------------------------------------------------------------
    def _candidates(self, k: int, has_labels: bool) -> list[tuple[str, str, dict]]:
        if isinstance(self.candidates, str):
            return default_candidates(k, has_labels)
        out = []
        for entry in self.candidates:
            if isinstance(entry, str):
                entry = (entry, entry, {})
            if len(entry) == 2:
                entry = (entry[0], entry[0], entry[1])
            label, method, params = entry
            if method not in AGGREGATORS:
                raise ValueError(
                    f"Unknown candidate method {method!r}; choose from {sorted(AGGREGATORS)}."
                )
            out.append((str(label), method, dict(params)))
        if not out:
            raise ValueError("candidates is empty; give at least one (label, method, params).")
        return out

    def _make(self, method: str, params: dict, k: int, seed: int) -> BaseAggregator:
        est = get_aggregator(method, **params)
        extra: dict[str, Any] = {"n_classes": k}
        if "random_state" in est.get_params() and "random_state" not in params:
            extra["random_state"] = seed
        return est.set_params(**extra)

    def _fit(self, lm: LabelMatrix, y: np.ndarray | None) -> None:
        import warnings

        k = lm.n_classes
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(2**31 - 1))
        known = None if y is None or not (y >= 0).any() else y
        n_per_class = np.bincount(known[known >= 0], minlength=k) if known is not None else None
        use_cv = known is not None and int(n_per_class[n_per_class > 0].min()) >= 2
        cands = self._candidates(k, has_labels=known is not None)
        if not use_cv:  # no labels: drop the candidates that need them
            cands = [c for c in cands if not AGGREGATORS[c[1]].needs_labels
                     or (c[1] == "majority" and c[2].get("weights") != "accuracy")]
            if not cands:
                raise ValueError(
                    "Every candidate needs known labels, and too few were given (at least 2 "
                    "per class); pass more labels or unsupervised candidates."
                )
        rows: list[dict[str, Any]] = []
        with warnings.catch_warnings():
            # the candidates' own warnings during selection are noise; the refit warns
            warnings.simplefilter("ignore")
            for label, method, params in cands:
                try:
                    if use_cv:
                        row = self._cv_score(lm, known, method, params, k, seed)
                    else:
                        row = self._hvl_score(lm, known, method, params, k, seed)
                    row["error"] = ""
                except (ValueError, RuntimeError, FloatingPointError, np.linalg.LinAlgError) as e:
                    row = {"score": np.nan, "score_std_err": np.nan, "accuracy": np.nan,
                           "temperature": 1.0, "error": str(e).splitlines()[0]}
                if not np.isfinite(row["score"]):
                    row["score_std_err"] = np.nan
                rows.append({"candidate": label, "method": method, "params": params, **row})
        ok = [i for i, r in enumerate(rows) if np.isfinite(r["score"])]
        if not ok:
            raise ValueError(
                "Every candidate aggregator failed on these votes: "
                + "; ".join(f"{r['candidate']}: {r['error']}" for r in rows)
            )
        sign = 1.0 if use_cv else -1.0  # minimise loss / maximise likelihood
        best = min(ok, key=lambda i: sign * rows[i]["score"])
        # paired standard errors: each candidate's per-sample loss (held-out item or hidden
        # vote, the same samples for every candidate) minus the best one's
        best_samples = rows[best]["samples"]
        for i in ok:
            diff = sign * (rows[i]["samples"] - best_samples)
            rows[i]["score_std_err"] = (
                float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else 0.0
            )
        for r in rows:
            r.pop("samples", None)
        chosen = best
        if self.one_standard_error:
            # the simplest candidate whose loss is within one (paired) standard error
            chosen = next(
                i for i in ok
                if sign * (rows[i]["score"] - rows[best]["score"]) <= rows[i]["score_std_err"]
            )
        label, method, params = rows[chosen]["candidate"], rows[chosen]["method"], rows[chosen][
            "params"]
        est = self._make(method, params, k, seed)
        est.fit(lm, y)
        self.estimator_ = est
        self.selected_ = label
        self.criterion_ = "cv_log_loss" if use_cv else "held_out_vote_likelihood"
        self.temperature_ = float(rows[chosen]["temperature"]) if self.calibration else 1.0
        self.cv_results_ = {
            key: np.asarray([r[key] for r in rows], dtype=object if key in (
                "candidate", "method", "params", "error") else float)
            for key in ("candidate", "method", "params", "score", "score_std_err", "accuracy",
                        "temperature", "error")
        }
        self.class_prior_ = _temper(_log(est.class_prior_[None, :]), self.temperature_)[0]
        self.explanation_ = self._explain(rows, best, chosen, use_cv)

    def _explain(self, rows: list[dict], best: int, chosen: int, use_cv: bool) -> str:
        r = rows[chosen]
        if use_cv:
            what = (f"lowest {self.n_folds}-fold cross-validated log loss on the known labels "
                    f"({r['score']:.4f}, held-out accuracy {r['accuracy']:.3f})")
        else:
            what = (f"highest held-out vote likelihood ({r['score']:.4f} per hidden vote, "
                    f"{self.n_masks} mask(s) of {self.mask_fraction:.0%} of the votes)")
        text = f"chose {r['candidate']}: {what}"
        if chosen != best:
            b = rows[best]
            text += (f"; the best, {b['candidate']}, scored {b['score']:.4f}: the difference is "
                     f"within one paired standard error ({r['score_std_err']:.4f}), so the "
                     f"simpler {r['candidate']} was kept")
        if self.calibration:
            text += f"; posteriors tempered with T = {self.temperature_:.3g}"
        failed = [x["candidate"] for x in rows if x["error"]]
        if failed:
            text += f"; failed: {', '.join(failed)}"
        return text + "."

    # -- with labels ---------------------------------------------------------------------
    def _cv_score(self, lm, known, method, params, k, seed) -> dict[str, Any]:
        idx = np.flatnonzero(known >= 0)
        y_known = known[idx]
        n_splits = int(min(self.n_folds, np.bincount(y_known)[np.bincount(y_known) > 0].min()))
        folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        oof = np.zeros((idx.size, k))
        fold_of = np.zeros(idx.size, dtype=np.int64)
        for f, (_, test) in enumerate(folds.split(idx, y_known)):
            y_train = known.copy()
            y_train[idx[test]] = -1
            est = self._make(method, params, k, seed)
            proba = est.fit(lm, y_train).predict_proba(lm)
            oof[test] = proba[idx[test]]
            fold_of[test] = f
        log_p = _log(oof)
        t = 1.0
        if self.calibration:
            def loss(log_t: float) -> float:
                lp = log_softmax(log_p / np.exp(log_t), axis=1)
                return -float(np.mean(lp[np.arange(idx.size), y_known]))

            res = minimize_scalar(loss, bounds=_LOG_T_BOUNDS, method="bounded")
            t = float(np.exp(res.x))
        lp = log_softmax(log_p / t, axis=1)[np.arange(idx.size), y_known]
        return {
            "score": float(-lp.mean()),
            "samples": -lp,
            "accuracy": float(np.mean(oof.argmax(axis=1) == y_known)),
            "temperature": t,
        }

    # -- without labels ------------------------------------------------------------------
    def _hvl_score(self, lm, known, method, params, k, seed) -> dict[str, Any]:
        samples, temps = [], []
        for r in range(self.n_masks):  # the same masks for every candidate
            hide = _mask_votes(lm, self.mask_fraction, salt=float(seed % 1000) + 7.0 * r)
            if not hide.any():
                raise ValueError("too few votes to hide any (every item has one vote).")
            kept = _subset(lm, ~hide)
            est = self._make(method, params, k, seed)
            q = est.fit(kept, known).predict_proba(kept)
            log_q = _log(q)
            h = (lm.item[hide], lm.source[hide], lm.label[hide])
            t = 1.0
            if self.calibration:
                def neg_hvl(log_t: float, log_q=log_q, kept=kept, h=h) -> float:
                    return -held_out_vote_likelihood(_temper(log_q, np.exp(log_t)), kept, *h)

                res = minimize_scalar(neg_hvl, bounds=_LOG_T_BOUNDS, method="bounded")
                t = float(np.exp(res.x))
            samples.append(vote_log_likelihoods(_temper(log_q, t), kept, *h))
            temps.append(t)
        ll = np.concatenate(samples)
        return {
            "score": float(ll.mean()),
            "samples": ll,
            "accuracy": np.nan,
            "temperature": float(np.exp(np.mean(np.log(temps)))),
        }

    # ------------------------------------------------------------------------------------
    def _predict_proba(self, lm: LabelMatrix) -> np.ndarray:
        proba = self.estimator_.predict_proba(lm)
        if self.temperature_ == 1.0:
            return proba
        return _temper(_log(proba), self.temperature_)

    def get_estimator(self) -> BaseAggregator:
        """An unfitted copy of the chosen aggregator (with its parameters)."""
        return clone(self.estimator_)
