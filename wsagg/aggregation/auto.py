"""Automatic aggregator selection, with calibrated soft labels.

No single aggregation model wins on real data (measured on 23 crowd sets, the best method
per set was Dawid-Skene on 7, MACE on 6, Snorkel's label model on 4, one-coin on 3, majority
vote on 2, GLAD on 1). :class:`AutoAggregator` fits a small set of registered aggregators
(and a grid of their key knobs) and keeps the one the data support, by one of two honest
criteria:

**With known labels** (some ``y >= 0``): stratified ``K``-fold cross-validation over the
known items. Every candidate sees *all* votes; the training folds' labels are clamped and
the held-out fold's hidden. The held-out predictions are scored by their error rate
(``scoring="accuracy"``, the default, chosen by leave-one-dataset-out) or by their log loss
after the temperature calibration below (``scoring="log_loss"``), and the *one-standard-error
rule* (Breiman et al. 1984; Hastie, Tibshirani & Friedman 2009, sec. 7.10) keeps, among
the candidates whose mean loss is within one standard error of the best, the simplest
(``baseline="simplest"``, the default; ``"unsupervised"`` tries the unsupervised policy's
choice first): majority vote and the accuracy-weighted (one-coin log-odds) vote are always
candidates, so ``auto`` is never worse than them beyond noise.

**Without labels** the default is a fixed policy, MACE, chosen by leave-one-dataset-out over
real and misspecified synthetic data (the ``unsupervised`` parameter; ``docs/auto.md``);
its posteriors are tempered by, and ``unsupervised="criterion"`` chooses among the
candidates by, the *held-out source likelihood*. The sources are dealt into
``n_groups`` groups (by a hash of their content, so that the choice is exactly equivariant
to permuting items or sources and to renaming classes). For each group ``G``, each candidate
is fitted on the votes of the *other* sources and gives posteriors :math:`q_i`; for every
source :math:`j \\in G` its confusion over the outcomes :math:`o` (its votes, plus
"abstain" when abstains are informative — labeling functions, see
:func:`wsagg.diagnostics.abstains_are_informative`) is estimated on one half of the items,

.. math::

    \\hat\\Theta_j[c, o] = \frac{\\sum_{i \\in A} q_{ic} [o_{ij} = o] + \alpha}
                               {\\sum_{i \\in A} q_{ic} + K \alpha}, \\qquad \alpha = 1,

and scored on the other half (and the other way round),

.. math::

    \\mathrm{HSL} = \\operatorname{mean}_{(i, j)} \\log \\sum_c q_{ic} \\,
        \\hat\\Theta_j^{(\text{other half})}[c, o_{ij}] .

Nothing scored was seen by the model that made :math:`q`, nor by the :math:`\\hat\\Theta`
that scores it. The criterion rewards posteriors that predict what a *held-out* source says
about an item and punishes confident mistakes; it needs no gold and is the same number for
every model, whatever its own likelihood. (How well it ranks the aggregators by true
accuracy is measured by ``benchmarks/bench_realdata.py`` with leave-one-dataset-out, see
``docs/auto.md``.)

**Calibration.** The chosen posteriors are tempered, :math:`q_T \\propto q^{1/T}`: ``T`` is
fitted by minimising the held-out log loss of the out-of-fold predictions (labels), or by
maximising the held-out source likelihood (no labels) — a gold-free tempering. ``T > 1``
softens posteriors made over-confident by correlated sources or item-dependent errors.
"""

from __future__ import annotations

from numbers import Integral
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
from wsagg.diagnostics import abstains_are_informative
from wsagg.labels import LabelMatrix, flat_index

__all__ = ["AutoAggregator", "default_candidates", "source_log_likelihoods"]

_EPS = 1e-15
_LOG_T_BOUNDS = (-2.5, 2.5)  # temperatures between 0.08 and 12
# without labels only soften (T >= 1): a gold-free criterion can reward over-confidence
# (e.g. sharpened vote shares on items with few votes), never trust it to sharpen
_LOG_T_BOUNDS_UNSUP = (0.0, 2.5)
# the "by-source-type" policy: labeling functions (abstains informative) / crowd workers
_LF_CHOICE = "mace"
_CROWD_CHOICE = "dawid-skene"

# (label, method, params), simplest first: the order of the one-standard-error rule
_CANDIDATES: list[tuple[str, str, dict[str, Any], str]] = [
    ("majority", "majority", {}, "any"),
    ("majority-accuracy", "majority", {"weights": "accuracy"}, "labels"),
    ("wawa", "wawa", {}, "any"),
    ("zero-based-skill", "zero-based-skill", {}, "any"),
    ("iwmv", "iwmv", {}, "any"),
    ("dawid-skene-one-coin", "dawid-skene", {"model": "one-coin"}, "any"),
    ("mace", "mace", {}, "any"),
    ("mace-learned-prior", "mace", {"class_prior": "learned"}, "any"),
    ("glad", "glad", {}, "any"),
    ("triplet", "triplet", {}, "binary"),
    ("matrix-completion", "matrix-completion", {}, "any"),
    ("dawid-skene", "dawid-skene", {}, "any"),
    ("dawid-skene-population", "dawid-skene", {"shrinkage": "population"}, "any"),
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


def _frac_hash(x: np.ndarray, salt: float) -> np.ndarray:
    """A deterministic pseudo-random number in [0, 1) for each float of ``x``."""
    return np.modf(np.abs(np.sin(x * 12.9898 + salt) * 43758.5453))[0]


def _source_groups(lm: LabelMatrix, n_groups: int, salt: float) -> np.ndarray:
    """Group of each source, from a hash of its *content* (its sorted class histogram and
    the agreement of its votes with the other votes on the same items), not its position.

    Sources with the same content — duplicated sources, whose copies would predict each
    other perfectly and fool the criterion — always fall in the same group."""
    k = lm.n_classes
    hist = np.bincount(lm.source * k + lm.label, minlength=lm.n_sources * k).reshape(-1, k)
    key = flat_index(lm.item, k, lm.label)  # (int64: n k may pass 2**31)
    agree = np.bincount(key, minlength=lm.n_items * k)[key]
    agree_sum = np.bincount(lm.source, weights=agree, minlength=lm.n_sources)
    key = np.sort(hist, axis=1) @ (1.0 + np.arange(k)) * 0.001 + agree_sum * 0.0137
    uniq, inverse = np.unique(key, return_inverse=True)
    order = np.argsort(_frac_hash(uniq, salt), kind="stable")  # deal the keys round-robin
    rank = np.empty(uniq.size, dtype=np.int64)
    rank[order] = np.arange(uniq.size)
    return (rank[inverse] + int(1e3 * salt)) % n_groups


def _item_halves(lm: LabelMatrix, salt: float) -> np.ndarray:
    """A content-hashed split of the items in two halves: the weight of each item in the
    first half, 1 or 0, and 0.5 for the items whose hash ties with the median (so that
    items equal up to a renaming of classes are treated alike, whatever their order)."""
    k = lm.n_classes
    hist = np.bincount(lm.source * k + lm.label, minlength=lm.n_sources * k).reshape(-1, k)
    src_key = _frac_hash(np.sort(hist, axis=1) @ (1.0 + np.arange(k)), 0.75)
    key = flat_index(lm.item, k, lm.label)  # (int64: n k may pass 2**31)
    agree = np.bincount(key, minlength=lm.n_items * k)[key]
    sig = np.bincount(lm.item, weights=_frac_hash(agree + src_key[lm.source], 0.25),
                      minlength=lm.n_items)
    u = _frac_hash(sig * 3.1 + k, salt)
    med = np.median(u)
    return np.where(u < med, 1.0, np.where(u > med, 0.0, 0.5))


def source_log_likelihoods(
    q: np.ndarray, lm: LabelMatrix, hidden: np.ndarray, with_abstain: bool, half: np.ndarray,
    return_items: bool = False,
) -> tuple[np.ndarray, ...]:
    """Log predictive probability of every scored outcome of the ``hidden`` sources under
    posteriors ``q`` (made without them), cross-fitted over the two item halves (module
    docstring); returns ``(log_likelihoods, weights)``. Outcomes: the votes, plus one
    abstain per (item, source) without a vote when ``with_abstain``; an item of weight
    ``half`` in the first half counts ``half`` in the estimate on it, ``1 - half`` in the
    score on it. ``return_items``: also the item of every outcome (for standard errors
    clustered by item: the outcomes of one item share its posterior)."""
    k = lm.n_classes
    n_out = k + 1 if with_abstain else k
    sel = hidden[lm.source]
    item, source, label = lm.item[sel], lm.source[sel], lm.label[sel]
    m = lm.n_sources
    hid = np.flatnonzero(hidden)
    values, weights, items = [], [], []
    if with_abstain:
        has_vote = np.zeros((lm.n_items, hid.size), dtype=bool)
        has_vote[item, np.searchsorted(hid, source)] = True
        ii, jj = np.nonzero(~has_vote)
    for w_est in (half, 1.0 - half):  # estimate on one half, score on the other
        wv = w_est[item]
        cell = source * n_out + label
        counts = np.stack(
            [np.bincount(cell, weights=wv * q[item, c], minlength=m * n_out) for c in range(k)],
            axis=1,
        ).reshape(m, n_out, k).transpose(0, 2, 1)  # [j, c, o]
        if with_abstain:
            q_mass = (w_est[:, None] * q).sum(axis=0)  # (k,)
            voted = counts[:, :, :k].sum(axis=2)
            counts[:, :, k] = np.maximum(q_mass[None, :] - voted, 0.0)
        theta = (counts + 1.0) / (counts.sum(axis=2, keepdims=True) + n_out)
        pred = np.einsum("vc,vc->v", q[item], theta[source, :, label])
        values.append(np.log(np.maximum(pred, _EPS)))
        weights.append(1.0 - wv)
        items.append(item)
        if with_abstain:
            pred = np.einsum("vc,vc->v", q[ii], theta[hid[jj], :, k])
            values.append(np.log(np.maximum(pred, _EPS)))
            weights.append(1.0 - w_est[ii])
            items.append(ii)
    out = np.concatenate(values), np.concatenate(weights)
    return (*out, np.concatenate(items)) if return_items else out


def _paired_std_err(diff: np.ndarray, w: np.ndarray | None,
                    clusters: np.ndarray | None) -> float:
    """Standard error of the weighted mean of the paired differences ``diff``: with
    ``clusters`` (the item of each held-out outcome) the cluster-robust one (outcomes of one
    item are not independent: they share its posterior), ``sqrt(sum_g (sum_{s in g} w_s
    (d_s - mean))^2) / sum_s w_s``; else the weighted i.i.d. one (per held-out item)."""
    w = np.ones(diff.size) if w is None else w
    total = float(w.sum())
    if diff.size < 2 or total <= 0:
        return 0.0
    mean = float(np.average(diff, weights=w))
    if clusters is not None:
        per = np.bincount(clusters, weights=w * (diff - mean))
        if np.count_nonzero(np.bincount(clusters)) < 2:
            return 0.0
        return float(np.sqrt((per**2).sum()) / total)
    n_eff = total**2 / max(float((w**2).sum()), 1e-300)
    var = np.average((diff - mean) ** 2, weights=w)
    return float(np.sqrt(var / n_eff)) if n_eff > 1 else 0.0


class _Collapsed(ValueError):
    """A candidate whose predictions ignore what the votes say about a class."""


def _check_not_collapsed(proba: np.ndarray, lm: LabelMatrix, known: np.ndarray | None) -> None:
    """Exclude a degenerate fixed point: on the unlabeled items with votes, a class that gets
    at least 5% of the (per-item normalised) votes must get at least a fifth of that share of
    the predictions (the prior-collapse rule of ``DawidSkene``, applied to a candidate)."""
    counts = lm.class_counts()
    tot = counts.sum(axis=1)
    sel = tot > 0
    if known is not None:
        sel &= known < 0
    if sel.sum() < 20:
        return
    vote_share = (counts[sel] / tot[sel, None]).mean(axis=0)
    pred_share = np.bincount(proba[sel].argmax(axis=1), minlength=lm.n_classes) / sel.sum()
    bad = np.flatnonzero((vote_share >= 0.05) & (pred_share < 0.2 * vote_share))
    if bad.size:
        c = bad[0]
        name = lm.classes[c]
        name = name.item() if isinstance(name, np.generic) else name  # (not np.int64(0))
        raise _Collapsed(
            f"collapsed: class {name!r} has {vote_share[c]:.3f} of "
            f"the votes but {pred_share[c]:.3f} of the predictions"
        )


def _subset(lm: LabelMatrix, keep: np.ndarray) -> LabelMatrix:
    return LabelMatrix(
        item=lm.item[keep], source=lm.source[keep], label=lm.label[keep], n_items=lm.n_items,
        n_sources=lm.n_sources, n_classes=lm.n_classes, item_ids=lm.item_ids,
        source_names=lm.source_names, classes=lm.classes,
    )


class AutoAggregator(BaseAggregator):
    """Chooses an aggregator from the data and calibrates its soft labels.

    The criteria (cross-validated error rate with known labels, held-out source likelihood
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
    n_groups : int, default=4
        Groups of sources held out in turn by the held-out source likelihood (each
        candidate is fitted ``n_groups`` times).
    calibration : bool, default=True
        Temper the chosen posteriors (module docstring).
    one_standard_error : bool, default=True
        Prefer, among the candidates within one paired standard error of the best score,
        the ``baseline`` one.
    scoring : {"log_loss", "accuracy"}, default="accuracy"
        With known labels, what the cross-validation compares: the held-out log loss
        (after each candidate's temperature calibration) or the held-out error rate
        (``1 - accuracy``); both are reported in ``cv_results_``, and the temperature is
        fitted by log loss either way. The default is the one leave-one-dataset-out over
        the shared datasets chose (``benchmarks/bench_realdata.py``, ``docs/auto.md``).
    baseline : {"simplest", "unsupervised"}, default="simplest"
        Which candidate the one-standard-error rule keeps when several are within noise
        of the best (with known labels, and without them under
        ``unsupervised="criterion"``): the simplest (the candidates' order, majority vote
        first), or the choice the ``unsupervised`` policy would make (then the simplest;
        under ``unsupervised="criterion"``, the ``"by-source-type"`` choice) — so that the
        labels, or the criterion, override that choice only when another candidate is
        better by more than one paired standard error. Chosen by leave-one-dataset-out
        (``docs/auto.md``).
    unsupervised : str, default="mace"
        What to do without (enough) known labels. A registry name: that method (the
        default, ``"mace"``). ``"criterion"``: choose among the candidates by the held-out
        source likelihood. ``"by-source-type"``: ``MACE`` when the sources look like
        labeling functions (abstains informative,
        :func:`wsagg.diagnostics.abstains_are_informative`), ``DawidSkene`` for crowd
        workers. The default is the policy that leave-one-dataset-out chose over the 21
        shared real datasets *and* 16 synthetic ones that break Dawid-Skene's assumptions
        (sparse workers, spammers, item difficulty, cliques, unipolar labeling functions;
        ``benchmarks/bench_misspecified.py``): "always MACE" for most held-out sets
        (``docs/auto.md``). The criterion ranked the aggregators too poorly on
        labeling-function data to beat a fixed choice. The posteriors are still tempered
        by the criterion (softened only, ``T >= 1``).
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
    criterion_ : {"cv_log_loss", "cv_error_rate", "held_out_source_likelihood"}
    cv_results_ : dict of arrays
        One entry per candidate: ``"candidate"``, ``"method"``, ``"params"``, ``"score"``
        (mean CV log loss or error rate — ``scoring`` —, lower is better; or mean held-out
        source likelihood, higher is better), ``"accuracy"`` and ``"log_loss"`` (held-out,
        with labels; else nan),
        ``"score_std_err"`` (the paired standard error of its difference from the best),
        ``"temperature"``, ``"error"`` (why a candidate was excluded — it failed, or it
        *collapsed*: its predictions on the unlabeled items give a class under a fifth of
        its share of the votes — else "").
    temperature_ : float
        The calibration temperature applied (1.0 without calibration).
    class_prior_ : ndarray of shape (k,)
        The distribution given to items without votes: the known labels' class
        frequencies (Laplace-smoothed) when some are given — the candidates are chosen on
        the items with votes only, where they differ — else the chosen aggregator's prior,
        tempered.
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
        "n_groups": [Interval(Integral, 2, None, closed="left")],
        "calibration": ["boolean"],
        "scoring": [StrOptions({"log_loss", "accuracy"})],
        "baseline": [StrOptions({"simplest", "unsupervised"})],
        "one_standard_error": ["boolean"],
        "unsupervised": [str],
        "tie_break": [StrOptions({"first", "random"})],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_classes: int | None = None,
        *,
        candidates: Any = "default",
        n_folds: int = 5,
        n_groups: int = 4,
        calibration: bool = True,
        one_standard_error: bool = True,
        scoring: str = "accuracy",
        baseline: str = "simplest",
        unsupervised: str = "mace",
        tie_break: str = "first",
        random_state: Any = None,
    ) -> None:
        self.n_classes = n_classes
        self.candidates = candidates
        self.n_folds = n_folds
        self.n_groups = n_groups
        self.calibration = calibration
        self.one_standard_error = one_standard_error
        self.scoring = scoring
        self.baseline = baseline
        self.unsupervised = unsupervised
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

    def _policy_candidate(self, policy: str, lm: LabelMatrix, k: int) -> tuple[str, str, dict]:
        """The fixed choice of an unsupervised policy (``unsupervised`` parameter)."""
        if policy == "by-source-type":
            counts = np.bincount(lm.source * k + lm.label, minlength=lm.n_sources * k)
            lf = abstains_are_informative(counts.reshape(-1, k), lm.n_votes, lm.n_items)
            policy = _LF_CHOICE if lf else _CROWD_CHOICE
        if policy not in AGGREGATORS:
            raise ValueError(f"unsupervised={policy!r} is not a registered method.")
        return (policy, policy, {})

    def _make(self, method: str, params: dict, k: int, seed: int) -> BaseAggregator:
        est = get_aggregator(method).set_params(**params)  # (params may hold 'method')
        est._skip_source_checks = True  # the checks ran once, on auto's own fit
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
        covered = lm.covered()
        use_cv = False
        if known is not None:
            # the candidates differ only on the items with votes: score those
            n_per_class = np.bincount(known[(known >= 0) & covered], minlength=k)
            use_cv = bool(n_per_class.sum()) and int(n_per_class[n_per_class > 0].min()) >= 2
        cands = self._candidates(k, has_labels=known is not None)
        policy = self.unsupervised
        if not use_cv and policy != "criterion":
            cands = [self._policy_candidate(policy, lm, k)]
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
                           "log_loss": np.nan, "temperature": 1.0,
                           "error": str(e).splitlines()[0]}
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
            rows[i]["score_std_err"] = _paired_std_err(
                sign * (rows[i]["samples"] - best_samples), rows[i].get("sample_weights"),
                rows[i].get("sample_clusters"))
        for r in rows:
            r.pop("samples", None)
            r.pop("sample_weights", None)
            r.pop("sample_clusters", None)
        chosen = best
        base_label = (self._policy_candidate(
            "by-source-type" if policy == "criterion" else policy, lm, k)[0]
            if self.baseline == "unsupervised" else None)
        if self.one_standard_error:
            # the simplest candidate whose loss is within one (paired) standard error; with
            # baseline="unsupervised" the unsupervised policy's choice is tried first
            order = list(ok)
            if base_label is not None:
                order = sorted(ok, key=lambda i: rows[i]["candidate"] != base_label)
            chosen = next(
                i for i in order
                if sign * (rows[i]["score"] - rows[best]["score"]) <= rows[i]["score_std_err"]
            )
        label, method, params = rows[chosen]["candidate"], rows[chosen]["method"], rows[chosen][
            "params"]
        est = self._make(method, params, k, seed)
        est.fit(lm, y)
        del est._skip_source_checks  # a refit by the user checks the sources again
        self.estimator_ = est
        self.selected_ = label
        self.criterion_ = (("cv_error_rate" if self.scoring == "accuracy" else "cv_log_loss")
                           if use_cv else "held_out_source_likelihood")
        self.temperature_ = float(rows[chosen]["temperature"]) if self.calibration else 1.0
        self.cv_results_ = {
            key: np.asarray([r[key] for r in rows], dtype=object if key in (
                "candidate", "method", "params", "error") else float)
            for key in ("candidate", "method", "params", "score", "score_std_err", "accuracy",
                        "log_loss", "temperature", "error")
        }
        if known is not None:
            # items without a vote: the known labels' class frequencies (Laplace-smoothed)
            self.class_prior_ = (np.bincount(known[known >= 0], minlength=k) + 1.0) / (
                np.count_nonzero(known >= 0) + k)
        else:
            self.class_prior_ = _temper(_log(est.class_prior_[None, :]), self.temperature_)[0]
        self.explanation_ = self._explain(rows, best, chosen, use_cv, base_label)

    def _explain(self, rows: list[dict], best: int, chosen: int, use_cv: bool,
                 base_label: str | None) -> str:
        r = rows[chosen]
        if use_cv:
            what = (f"lowest {self.n_folds}-fold cross-validated "
                    + ("error rate" if self.scoring == "accuracy" else "log loss")
                    + f" on the known labels ({r['score']:.4f}; held-out accuracy "
                    f"{r['accuracy']:.3f}, log loss {r['log_loss']:.4f})")
        elif len(rows) == 1 and self.unsupervised != "criterion":
            what = (f"the unsupervised policy {self.unsupervised!r} (no or too few known "
                    "labels; chosen by leave-one-dataset-out, see docs/auto.md); its held-out "
                    f"source likelihood is {r['score']:.4f} per held-out outcome")
        else:
            what = (f"held-out source likelihood {r['score']:.4f} per held-out "
                    f"outcome ({self.n_groups} groups of sources held out in turn)")
            if chosen == best:
                what = "the highest " + what
        text = f"chose {r['candidate']}: {what}"
        if chosen != best:
            b = rows[best]
            why = ("the unsupervised policy's choice" if r["candidate"] == base_label
                   else "the simpler candidate")
            text += (f"; the best, {b['candidate']}, scored {b['score']:.4f}: the difference is "
                     f"within one paired standard error ({r['score_std_err']:.4f}), so "
                     f"{why}, {r['candidate']}, was kept")
        if self.calibration:
            text += f"; posteriors tempered with T = {self.temperature_:.3g}"
        failed = [x["candidate"] for x in rows if x["error"]]
        if failed:
            text += f"; excluded (failed or collapsed): {', '.join(failed)}"
        return text + "."

    # -- with labels ---------------------------------------------------------------------
    def _cv_score(self, lm, known, method, params, k, seed) -> dict[str, Any]:
        idx = np.flatnonzero((known >= 0) & lm.covered())
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
            if f == 0:
                _check_not_collapsed(proba, lm, known)
        log_p = _log(oof)
        t = 1.0
        if self.calibration:
            def loss(log_t: float) -> float:
                lp = log_softmax(log_p / np.exp(log_t), axis=1)
                return -float(np.mean(lp[np.arange(idx.size), y_known]))

            res = minimize_scalar(loss, bounds=_LOG_T_BOUNDS, method="bounded",
                                  options={"xatol": 0.01})
            t = float(np.exp(res.x))
        lp = log_softmax(log_p / t, axis=1)[np.arange(idx.size), y_known]
        errors = (oof.argmax(axis=1) != y_known).astype(np.float64)
        samples = errors if self.scoring == "accuracy" else -lp
        return {
            "score": float(samples.mean()),
            "samples": samples,
            "accuracy": float(1.0 - errors.mean()),
            "log_loss": float(-lp.mean()),
            "temperature": t,
        }

    # -- without labels ------------------------------------------------------------------
    def _hvl_score(self, lm, known, method, params, k, seed) -> dict[str, Any]:
        """The held-out source likelihood of one candidate (module docstring)."""
        counts = np.bincount(lm.source * k + lm.label, minlength=lm.n_sources * k)
        with_abstain = abstains_are_informative(
            counts.reshape(-1, k), lm.n_votes, lm.n_items
        )
        salt = float(seed % 1000) / 1000.0
        groups = _source_groups(lm, min(self.n_groups, lm.n_sources), salt)
        half = _item_halves(lm, salt)
        parts, wts, its, temps = [], [], [], []
        for g in range(min(self.n_groups, lm.n_sources)):  # the same groups for all candidates
            hidden = groups == g
            kept = _subset(lm, ~hidden[lm.source])
            if kept.n_votes == 0 or not hidden.any():
                continue
            est = self._make(method, params, k, seed)
            q = est.fit(kept, known).predict_proba(kept)
            _check_not_collapsed(q, kept, known)
            log_q = _log(q)
            t = 1.0
            if self.calibration:
                def neg(log_t: float, log_q=log_q, hidden=hidden) -> float:
                    q_t = _temper(log_q, np.exp(log_t))
                    v, w = source_log_likelihoods(q_t, lm, hidden, with_abstain, half)
                    return -float(np.average(v, weights=w))

                t = float(np.exp(minimize_scalar(neg, bounds=_LOG_T_BOUNDS_UNSUP,
                                                 method="bounded",
                                                 options={"xatol": 0.01}).x))
            v, w, it = source_log_likelihoods(_temper(log_q, t), lm, hidden, with_abstain,
                                              half, return_items=True)
            keep = w > 0
            parts.append(v[keep])
            wts.append(w[keep])
            its.append(it[keep])
            temps.append(t)
        if not parts:
            raise ValueError("too few sources to hold any out.")
        ll, wt = np.concatenate(parts), np.concatenate(wts)
        return {
            "score": float(np.average(ll, weights=wt)),
            "samples": ll,
            "sample_weights": wt,
            "sample_clusters": np.concatenate(its),
            "accuracy": np.nan,
            "log_loss": np.nan,
            "temperature": float(np.exp(np.mean(np.log(temps)))),
        }

    # ------------------------------------------------------------------------------------
    def _predict_proba(self, lm: LabelMatrix) -> np.ndarray:
        proba = self.estimator_.predict_proba(lm)
        if self.temperature_ != 1.0:
            proba = _temper(_log(proba), self.temperature_)
        proba[~lm.covered()] = self.class_prior_
        return proba

    def get_estimator(self) -> BaseAggregator:
        """An unfitted copy of the chosen aggregator (with its parameters)."""
        return clone(self.estimator_)
