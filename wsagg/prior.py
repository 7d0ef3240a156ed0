"""Class priors: estimation and correction, kept apart.

Two different priors meet when aggregated soft labels become a classifier (see
``docs/prior.md``):

* the **aggregator prior** :math:`\\pi_{agg}` under which the soft labels
  :math:`q_i(y) \\propto \\pi_{agg}(y)\\,\\ell_i(y)` were computed. It should equal the class
  distribution of the training pool :math:`\\pi_{pool}`; when it does not (e.g. Snorkel's
  default uniform ``class_balance``), the exact Bayes swap of :func:`correct` fixes it;
* the **deployment prior** :math:`\\pi_{tgt}` (uniform for balanced error). Rebalancing
  towards it belongs in the downstream *loss* (logit-adjusted / balanced softmax, see
  :mod:`wsagg.downstream`) or in the *decision rule* (:func:`logit_adjust`,
  :func:`prior2posterior`), not in the targets.

Estimation
    :func:`estimate_prior` — from soft labels (mean posterior), by the EM of Saerens,
    Latinne & Decaestecker (2002) on unlabeled items (:func:`saerens_em`), from a labeled
    dev set (counts, or BBSE of Lipton, Wang & Smola 2018, :func:`bbse`), or from a fitted
    aggregator's ``class_prior_``.
Correction
    :func:`correct` / :class:`PriorCorrector` — the Bayes swap
    :math:`q'(y) \\propto q(y)\\,\\pi_{tgt}(y)/\\pi_{src}(y)`;
    :func:`logit_adjust` — post-hoc logit adjustment :math:`z_y - \\tau\\log\\pi_y`
    (Menon et al., ICLR 2021); :func:`prior2posterior` — Prior2Posterior (Bhat et al., WACV
    2025): divide by the model's *effective* prior, the mean of its own posteriors.
Guard
    :func:`check_double_correction` warns (:class:`DoubleCorrectionWarning`) when a prior
    used for rebalancing disagrees with the class marginal the soft labels actually carry —
    the signature of correcting twice.

Everything is vectorised numpy in float64; products of probabilities are done in log space.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from wsagg._validation import user_stacklevel
from wsagg.exceptions import DoubleCorrectionWarning

__all__ = [
    "DoubleCorrectionWarning",
    "PriorCorrector",
    "bbse",
    "check_double_correction",
    "check_prior",
    "check_proba",
    "correct",
    "effective_prior",
    "estimate_prior",
    "logit_adjust",
    "prior2posterior",
    "saerens_em",
]

_SUM_TOL = 1e-6




# ----------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------


def check_proba(proba: Any, n_classes: int | None = None, *, name: str = "proba") -> np.ndarray:
    """Validate an ``(n, k)`` array of distributions (rows >= 0 summing to 1); float64 copy."""
    try:
        arr = np.array(proba, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a numeric (n_samples, n_classes) array.") from err
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_classes); got shape {arr.shape}. For hard "
            "labels use one-hot rows (np.eye(k)[y])."
        )
    if arr.shape[0] == 0 or arr.shape[1] < 2:
        raise ValueError(f"{name} has shape {arr.shape}; it needs >= 1 row and >= 2 classes.")
    if n_classes is not None and arr.shape[1] != n_classes:
        raise ValueError(f"{name} has {arr.shape[1]} columns but {n_classes} classes are expected.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(
            f"{name} contains NaN or infinite values; every row must be a distribution."
        )
    if (arr < 0).any():
        raise ValueError(f"{name} contains negative values; probabilities must be >= 0.")
    sums = arr.sum(axis=1)
    bad = np.abs(sums - 1.0) > _SUM_TOL
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} rows must sum to 1 (row {i} sums to {sums[i]:.6g}); normalise with "
            "p / p.sum(axis=1, keepdims=True)."
        )
    return arr


def check_prior(
    prior: Any, n_classes: int | None = None, *, name: str = "prior", allow_zero: bool = False
) -> np.ndarray:
    """Validate a class prior: 1-D, finite, positive (unless ``allow_zero``), summing to 1.

    ``"uniform"`` is accepted when ``n_classes`` is known.
    """
    if isinstance(prior, str):
        if prior == "uniform":
            if n_classes is None:
                raise ValueError(f"{name}='uniform' needs the number of classes.")
            return np.full(n_classes, 1.0 / n_classes)
        raise ValueError(
            f"{name} must be 'uniform' or an array of class probabilities; got {prior!r}."
        )
    try:
        arr = np.array(prior, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a 1-D array of class probabilities.") from err
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one probability per class); got shape {arr.shape}.")
    if n_classes is not None and arr.shape[0] != n_classes:
        raise ValueError(f"{name} has {arr.shape[0]} entries but there are {n_classes} classes.")
    if arr.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 classes; got {arr.shape[0]}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    if (arr < 0).any():
        raise ValueError(f"{name} contains negative values; a prior is a distribution.")
    if not allow_zero and (arr == 0).any():
        c = int(np.flatnonzero(arr == 0)[0])
        raise ValueError(
            f"{name} gives class {c} probability 0, so log-prior corrections divide by zero. "
            "Smooth it (e.g. (counts + 1) / (n + k)) or drop the class."
        )
    if abs(arr.sum() - 1.0) > _SUM_TOL:
        raise ValueError(
            f"{name} must sum to 1 (sums to {arr.sum():.6g}); normalise it with p / p.sum()."
        )
    return arr


# ----------------------------------------------------------------------------------------
# estimation
# ----------------------------------------------------------------------------------------


def effective_prior(proba: Any, sample_weight: Any = None) -> np.ndarray:
    """Mean posterior :math:`\\bar P(y) = \\frac1N\\sum_i P(y\\mid x_i)` (optionally weighted).

    This is the class marginal a set of soft labels carries, the Dawid-Skene M-step for the
    class prior, the first Saerens-EM estimate, and the *effective prior* of a trained model
    in Prior2Posterior (Bhat et al. 2025).
    """
    p = check_proba(proba)
    if sample_weight is None:
        return p.mean(axis=0)
    w = _check_sample_weight(sample_weight, p.shape[0])
    return (w @ p) / w.sum()


def saerens_em(
    proba: Any,
    source_prior: Any,
    *,
    init: Any = None,
    max_iter: int = 1000,
    tol: float = 1e-8,
) -> tuple[np.ndarray, np.ndarray, int]:
    """EM estimate of a shifted class prior (Saerens, Latinne & Decaestecker 2002).

    Given posteriors :math:`p_s(y\\mid x_i)` calibrated under the source prior
    :math:`\\pi_s`, on unlabeled items drawn under an unknown prior :math:`\\pi`:

    .. math::

        q_i^{(t)}(y) \\propto p_s(y\\mid x_i)\\,\\pi^{(t)}(y)/\\pi_s(y), \\qquad
        \\pi^{(t+1)}(y) = \\tfrac1N \\textstyle\\sum_i q_i^{(t)}(y),

    which maximises the likelihood of the new items over :math:`\\pi` (the E-step is the
    Bayes swap of :func:`correct`). Starts at ``init`` (default: :math:`\\pi_s`); stops when
    every coordinate moves by at most ``tol``.

    Returns
    -------
    prior : ndarray (k,)
    adapted_proba : ndarray (n, k)
        The posteriors swapped to the estimated prior.
    n_iter : int
    """
    p = check_proba(proba)
    k = p.shape[1]
    src = check_prior(source_prior, k, name="source_prior")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be >= 1; got {max_iter}.")
    pi = src.copy() if init is None else check_prior(init, k, name="init")
    base = _safe_log(p) - np.log(src)
    q = p
    n_iter = 0
    for n_iter in range(1, int(max_iter) + 1):  # noqa: B007 - n_iter is returned
        q = softmax(base + np.log(np.maximum(pi, 1e-300)), axis=1)
        new = q.mean(axis=0)
        done = np.max(np.abs(new - pi)) <= tol
        pi = new
        if done:
            break
    q = softmax(base + np.log(np.maximum(pi, 1e-300)), axis=1)
    return pi, q, n_iter


def bbse(
    val_proba: Any,
    val_y: Any,
    target_proba: Any,
    *,
    soft: bool = False,
    clip: bool = True,
) -> np.ndarray:
    """Black-box shift estimation of the target prior (Lipton, Wang & Smola, ICML 2018).

    With the joint :math:`C_{ij} = \\frac1{n}\\sum_v \\hat y_v(i)\\,[y_v = j]` of the
    classifier's predictions and the true labels on a labeled *source* set and the mean
    prediction :math:`\\hat\\mu_i` on the unlabeled *target* set, the importance weights solve
    :math:`C w = \\hat\\mu`; the target prior is :math:`\\pi_t(j) = w_j\\,\\pi_s(j)`.
    ``soft=False`` uses one-hot (argmax) predictions as in the paper, ``soft=True`` the
    probabilities. Negative weights are clipped to 0 (as in kundajelab/abstention) and the
    result renormalised. Solved with a least-squares solver, so a singular ``C`` gives the
    minimum-norm solution instead of failing.
    """
    pv = check_proba(val_proba, name="val_proba")
    k = pv.shape[1]
    pt = check_proba(target_proba, k, name="target_proba")
    y = _check_hard_labels(val_y, k, pv.shape[0], name="val_y")
    if not soft:
        pv = np.eye(k)[np.argmax(pv, axis=1)]
        pt = np.eye(k)[np.argmax(pt, axis=1)]
    onehot_y = np.eye(k)[y]
    C = pv.T @ onehot_y / pv.shape[0]  # C[i, j] = P(pred i, true j)
    mu = pt.mean(axis=0)
    w, *_ = np.linalg.lstsq(C, mu, rcond=None)
    if clip:
        w = np.maximum(w, 0.0)
    src = onehot_y.mean(axis=0)
    pi = w * src
    if pi.sum() <= 0:
        raise ValueError(
            "BBSE produced no positive class weight; the confusion matrix is too poorly "
            "conditioned for this data. Use method='em' instead."
        )
    return pi / pi.sum()


def estimate_prior(
    source: Any,
    method: str = "mean",
    *,
    y: Any = None,
    n_classes: int | None = None,
    source_prior: Any = None,
    val_proba: Any = None,
    smoothing: float = 0.0,
    sample_weight: Any = None,
    max_iter: int = 1000,
    tol: float = 1e-8,
) -> np.ndarray:
    """Estimate a class prior, returning a distribution over the ``k`` classes.

    ``source`` and ``method`` select the estimator:

    ``estimate_prior(aggregator)``
        a fitted aggregator's ``class_prior_`` (``method`` is ignored).
    ``estimate_prior(proba, "mean")``
        the mean posterior :math:`\\frac1N\\sum_i q_i` (:func:`effective_prior`) — the
        Dawid-Skene M-step; right when the soft labels are calibrated for the pool.
    ``estimate_prior(proba, "em", source_prior=pi_s)``
        Saerens et al. (2002) EM (:func:`saerens_em`) on unlabeled items whose posteriors
        were computed under ``pi_s`` (e.g. Snorkel's uniform default).
    ``estimate_prior(y, "counts", n_classes=k, smoothing=a)``
        labeled dev-set frequencies :math:`(n_c + a)/(n + k a)`; ``y`` may be hard labels
        (``-1`` = unknown, skipped) or an ``(n, k)`` array of soft labels.
    ``estimate_prior(target_proba, "bbse", val_proba=p_val, y=y_val)``
        BBSE (:func:`bbse`) from a labeled source set and unlabeled target predictions.
    """
    if hasattr(source, "class_prior_"):
        return check_prior(np.asarray(source.class_prior_, float), name="class_prior_",
                           allow_zero=True)
    if hasattr(source, "fit") and not hasattr(source, "shape"):
        raise ValueError(
            f"{type(source).__name__} has no class_prior_: fit it first, or pass its soft "
            "labels (aggregator.predict_proba(L)) with method='mean' or 'em'."
        )
    if method == "mean":
        return effective_prior(source, sample_weight)
    if method == "em":
        if source_prior is None:
            raise ValueError(
                "method='em' needs source_prior: the prior the posteriors were computed under "
                "(e.g. 'uniform' for Snorkel's default class_balance)."
            )
        p = check_proba(source)
        return saerens_em(p, check_prior(source_prior, p.shape[1], name="source_prior"),
                          max_iter=max_iter, tol=tol)[0]
    if method == "counts":
        return _counts_prior(source, n_classes, smoothing, sample_weight)
    if method == "bbse":
        if val_proba is None or y is None:
            raise ValueError("method='bbse' needs val_proba and y (a labeled source set).")
        return bbse(val_proba, y, source)
    raise ValueError(
        f"method must be 'mean', 'em', 'counts' or 'bbse'; got {method!r}."
    )


def _counts_prior(
    y: Any, n_classes: int | None, smoothing: float, sample_weight: Any
) -> np.ndarray:
    if smoothing < 0:
        raise ValueError(f"smoothing must be >= 0; got {smoothing}.")
    arr = np.asarray(y)
    if arr.ndim == 2:
        p = check_proba(arr, n_classes, name="y")
        w = np.ones(p.shape[0]) if sample_weight is None else _check_sample_weight(
            sample_weight, p.shape[0])
        counts = w @ p
    else:
        if n_classes is None:
            raise ValueError("method='counts' with hard labels needs n_classes.")
        labels = _check_hard_labels(arr, n_classes, None, name="y", allow_unknown=True)
        keep = labels >= 0
        if not keep.any():
            raise ValueError("y has no known label (all -1); cannot count classes.")
        w = None if sample_weight is None else _check_sample_weight(
            sample_weight, labels.shape[0])[keep]
        counts = np.bincount(labels[keep], weights=w, minlength=n_classes).astype(float)
    counts = counts + smoothing
    return counts / counts.sum()


# ----------------------------------------------------------------------------------------
# correction
# ----------------------------------------------------------------------------------------


def correct(proba: Any, source_prior: Any, target_prior: Any = "uniform") -> np.ndarray:
    """Bayes prior swap of posteriors from ``source_prior`` to ``target_prior``.

    .. math::

        q'_i(y) = \\frac{q_i(y)\\,\\pi_t(y)/\\pi_s(y)}{\\sum_{y'} q_i(y')\\,\\pi_t(y')/\\pi_s(y')}

    Exact when :math:`q_i(y) \\propto \\pi_s(y)\\,\\ell_i(y)` with a likelihood
    :math:`\\ell_i` that does not depend on the prior (Saerens et al. 2002; the
    Dawid-Skene and Snorkel label-model posteriors factor this way). Computed in log space;
    the identity when source = target, and swaps compose (a→b then b→c equals a→c).

    Use it to fix the *aggregator's* prior assumption. Swapping confident (near one-hot)
    targets to a uniform prior does **not** rebalance a downstream classifier — see
    ``docs/prior.md``.
    """
    p = check_proba(proba)
    k = p.shape[1]
    src = check_prior(source_prior, k, name="source_prior")
    tgt = check_prior(target_prior, k, name="target_prior", allow_zero=True)
    with np.errstate(divide="ignore"):
        log_tgt = np.log(tgt)
    return softmax(_safe_log(p) + (log_tgt - np.log(src)), axis=1)


def logit_adjust(
    logits: Any, prior: Any, tau: float = 1.0, target_prior: Any = "uniform"
) -> np.ndarray:
    """Post-hoc logit adjustment (Menon et al., ICLR 2021): :math:`z_y - \\tau\\log\\pi_y
    + \\tau\\log\\pi_{t,y}`.

    ``prior`` is the training class prior the model learnt (e.g. label counts); with the
    default uniform ``target_prior`` this is Menon's ``logits - tau * log(prior)`` (the
    constant ``tau log(1/k)`` does not change the softmax or the argmax). Returns adjusted
    logits; ``scipy.special.softmax(out, axis=1)`` gives the adjusted posteriors.
    """
    z = _check_logits(logits)
    k = z.shape[1]
    pi = check_prior(prior, k, name="prior")
    tgt = check_prior(target_prior, k, name="target_prior")
    if not np.isfinite(tau):
        raise ValueError(f"tau must be finite; got {tau}.")
    return z - tau * (np.log(pi) - np.log(tgt))


def prior2posterior(
    proba: Any,
    effective: Any = None,
    target_prior: Any = "uniform",
    *,
    log_input: bool = False,
) -> np.ndarray:
    """Prior2Posterior correction (Bhat, More, Soni & Agrawal, WACV 2025).

    .. math::

        P^a(y\\mid x) \\propto \\bar P(y\\mid x)\\,\\frac{P^t(y)}{\\bar P(y)},\\qquad
        \\bar P(y) = \\tfrac1N \\textstyle\\sum_i \\bar P(y\\mid x_i),

    i.e. post-hoc logit adjustment by the model's *effective* prior — the mean of its own
    posteriors — instead of the label counts. ``effective`` defaults to the mean of
    ``proba`` itself; pass the mean over the training inputs (as a fitted
    :class:`~wsagg.downstream.SoftLabelClassifier` stores in ``effective_prior_``) to
    correct new items. ``log_input=True`` takes logits instead of probabilities.
    [The paper's exact estimator split and any temperature are not verified; see
    ``docs/prior.md``.]
    """
    if log_input:
        z = _check_logits(proba)
        p = softmax(z, axis=1)
        logp = log_softmax(z, axis=1)
    else:
        p = check_proba(proba)
        logp = _safe_log(p)
    k = p.shape[1]
    eff = p.mean(axis=0) if effective is None else check_prior(effective, k, name="effective")
    eff = np.maximum(eff, 1e-300)
    tgt = check_prior(target_prior, k, name="target_prior", allow_zero=True)
    with np.errstate(divide="ignore"):
        log_tgt = np.log(tgt)
    return softmax(logp + log_tgt - np.log(eff), axis=1)


class PriorCorrector(TransformerMixin, BaseEstimator):
    """Composable transformer for the Bayes prior swap of soft labels (:func:`correct`).

    Parameters
    ----------
    source_prior : "mean", "uniform", array-like (k,) or a fitted aggregator
        The prior the posteriors were computed under. ``"mean"`` takes their mean at fit
        (right for Dawid-Skene-type aggregators, whose prior is the mean posterior); a fitted
        aggregator gives its ``class_prior_``.
    target_prior : "em", "uniform", "source" or array-like (k,)
        Where to move them. ``"em"``: the pool prior estimated by Saerens EM from the items
        seen at fit (use it to undo an aggregator's uniform prior assumption). ``"uniform"``:
        balanced posteriors (a decision rule, not a training target — see the module notes).
        ``"source"``: identity.

    Attributes
    ----------
    source_prior_, target_prior_ : ndarray (k,)
    n_classes_ : int
    """

    def __init__(self, source_prior: Any = "mean", target_prior: Any = "em") -> None:
        self.source_prior = source_prior
        self.target_prior = target_prior

    def fit(self, proba: Any, y: Any = None) -> PriorCorrector:
        """Resolve the source and target priors (estimating them from ``proba`` if asked)."""
        p = check_proba(proba)
        k = p.shape[1]
        sp_ = self.source_prior
        if hasattr(sp_, "class_prior_"):
            src = estimate_prior(sp_)
        elif isinstance(sp_, str) and sp_ == "mean":
            src = p.mean(axis=0)
        else:
            src = check_prior(sp_, k, name="source_prior")
        if (src <= 0).any():
            raise ValueError(
                "source_prior gives some class probability 0; the swap would divide by zero. "
                "Pass an explicit smoothed prior."
            )
        tp = self.target_prior
        if isinstance(tp, str) and tp == "em":
            tgt = saerens_em(p, src)[0]
        elif isinstance(tp, str) and tp == "source":
            tgt = src
        else:
            tgt = check_prior(tp, k, name="target_prior", allow_zero=True)
        self.source_prior_ = src
        self.target_prior_ = tgt
        self.n_classes_ = k
        return self

    def transform(self, proba: Any) -> np.ndarray:
        """Swap ``proba`` from ``source_prior_`` to ``target_prior_``."""
        check_is_fitted(self, "source_prior_")
        return correct(check_proba(proba, self.n_classes_), self.source_prior_,
                       self.target_prior_)

    def inverse_transform(self, proba: Any) -> np.ndarray:
        """Swap back from ``target_prior_`` to ``source_prior_``."""
        check_is_fitted(self, "source_prior_")
        if (self.target_prior_ <= 0).any():
            raise ValueError("target_prior_ has zeros; the swap cannot be inverted.")
        return correct(check_proba(proba, self.n_classes_), self.target_prior_,
                       self.source_prior_)


# ----------------------------------------------------------------------------------------
# double-correction guard
# ----------------------------------------------------------------------------------------


def check_double_correction(
    soft_labels: Any,
    rebalance_prior: Any,
    *,
    sample_weight: Any = None,
    max_log_ratio: float = float(np.log(2.0)),
    stacklevel: int | None = None,
    what: str = "the rebalancing prior",
) -> bool:
    """Warn when the prior used for rebalancing is not the class marginal of the targets.

    A logit-adjusted or balanced-softmax loss with prior :math:`\\pi` is consistent (its
    minimiser is the balanced posterior) when :math:`\\pi` is the class marginal of the
    training targets, :math:`\\bar q = \\frac1N\\sum_i q_i`. If the soft labels were made
    under a *different* prior — e.g. an aggregator run with a uniform prior (Snorkel's
    default), or labels already swapped towards uniform with :func:`correct` — their
    marginal is tail-inflated, and adjusting by the pool's class counts removes the
    imbalance a second time. The check warns with a :class:`DoubleCorrectionWarning` if
    :math:`\\max_y |\\log(\\bar q_y / \\pi_y)| >` ``max_log_ratio`` (default: a factor 2),
    and returns whether it warned. ``stacklevel`` (default: the caller outside wsagg)
    is passed to :func:`warnings.warn`.
    """
    p = check_proba(soft_labels, name="soft_labels")
    k = p.shape[1]
    pi = check_prior(rebalance_prior, k, name="rebalance_prior")
    qbar = effective_prior(p, sample_weight)
    ratio = np.log(np.maximum(qbar, 1e-300)) - np.log(pi)
    worst = int(np.argmax(np.abs(ratio)))
    if abs(ratio[worst]) > max_log_ratio:
        warnings.warn(
            f"Possible double prior correction: {what} gives class {worst} probability "
            f"{pi[worst]:.4g} but the soft labels' class marginal is {qbar[worst]:.4g} "
            f"(ratio {np.exp(ratio[worst]):.3g}). If the soft labels were made under a uniform "
            "or otherwise rebalanced prior (e.g. Snorkel's default class_balance, or "
            "wsagg.prior.correct(..., target_prior='uniform')), adjusting by the pool's class "
            "counts corrects the imbalance twice. Use the soft labels' own marginal "
            "(class_prior='auto'), or first swap the soft labels to the pool prior "
            "(PriorCorrector(target_prior='em')).",
            DoubleCorrectionWarning,
            stacklevel=user_stacklevel() if stacklevel is None else stacklevel,
        )
        return True
    return False


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------


def _safe_log(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(p)


def _check_logits(logits: Any) -> np.ndarray:
    try:
        z = np.array(logits, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError("logits must be a numeric (n_samples, n_classes) array.") from err
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"logits must be 2-D (n_samples, n_classes >= 2); got shape {z.shape}.")
    if not np.all(np.isfinite(z)):
        raise ValueError("logits contain NaN or infinite values.")
    return z


def _check_sample_weight(w: Any, n: int) -> np.ndarray:
    arr = np.asarray(w, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},); got {arr.shape}.")
    if not np.all(np.isfinite(arr)) or (arr < 0).any():
        raise ValueError("sample_weight must be finite and non-negative.")
    if arr.sum() <= 0:
        raise ValueError("sample_weight sums to 0; at least one sample needs a positive weight.")
    return arr


def _check_hard_labels(
    y: Any, k: int, n: int | None, *, name: str = "y", allow_unknown: bool = False
) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D class ids; got shape {arr.shape}.")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries; expected {n}.")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{name} must hold integer class ids.")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer class ids 0..{k - 1}; got dtype {arr.dtype}.")
    lo = -1 if allow_unknown else 0
    if (arr < lo).any() or (arr >= k).any():
        raise ValueError(f"{name} must hold class ids in {lo}..{k - 1}.")
    return arr.astype(np.int64)
