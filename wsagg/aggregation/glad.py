r"""GLAD: Generative model of Labels, Abilities, and Difficulties (Whitehill et al., 2009).

The model. Item ``i`` has a hidden class :math:`y_i \sim \mathrm{Cat}(\pi)` and an inverse
difficulty :math:`\beta_i = e^{b_i} > 0` (its difficulty is :math:`1/\beta_i`); source ``j``
has an ability :math:`\alpha_j \in \mathbb{R}`. Each vote of ``j`` on ``i`` is correct with
probability :math:`\sigma(\alpha_j \beta_i)`, and a wrong vote is spread uniformly over the
``k - 1`` other classes (the paper's multiclass extension):

.. math::

    P(\lambda_{ij} = l \mid y_i = c) =
    \begin{cases}
        \sigma(\alpha_j \beta_i) & l = c, \\
        \dfrac{1 - \sigma(\alpha_j \beta_i)}{k - 1} & l \ne c,
    \end{cases}
    \qquad \sigma(x) = \frac{1}{1 + e^{-x}}.

Votes are independent given the class; repeated votes each count; abstains are missing at
random. Priors, as in the authors' code: :math:`\alpha_j \sim \mathcal{N}(\mu_\alpha,
s_\alpha^2)` with :math:`\mu_\alpha = 1` (sources better than chance, which breaks the
label-switching symmetry), :math:`b_i = \log\beta_i \sim \mathcal{N}(\mu_b, s_b^2)` with
:math:`\mu_b = 0`; the class prior is fixed (uniform by default, as in the paper) or, with
``class_prior="learned"``, MAP under :math:`\pi \sim \mathrm{Dir}(1 + s)`.

Inference: MAP by EM. The E-step is exact: with :math:`x_v = \alpha_{j(v)} \beta_{i(v)}` per
vote ``v``,

.. math::

    \log q_{ic} = \log\pi_c + \sum_{v \in i} \Big[\log\frac{1 - \sigma(x_v)}{k - 1}
    + [l_v = c]\Big(\log\sigma(x_v) - \log\frac{1 - \sigma(x_v)}{k - 1}\Big)\Big]
    - \log Z_i,

two ``bincount`` passes over the votes. The M-step maximises the expected complete-data
log-likelihood plus the log priors,

.. math::

    Q(\alpha, b) = \sum_v \Big[p_v \log\sigma(x_v) + (1 - p_v)\log\frac{1 - \sigma(x_v)}{k-1}
    \Big] - \sum_j \frac{(\alpha_j - \mu_\alpha)^2}{2 s_\alpha^2}
    - \sum_i \frac{(b_i - \mu_b)^2}{2 s_b^2},

with :math:`p_v = q_{i(v), l_v}` the posterior probability that vote ``v`` is correct. The
gradients are

.. math::

    \partial_{\alpha_j} Q = \sum_{v \in j} (p_v - \sigma(x_v))\,\beta_{i(v)}
    - \frac{\alpha_j - \mu_\alpha}{s_\alpha^2}, \qquad
    \partial_{b_i} Q = \sum_{v \in i} (p_v - \sigma(x_v))\,\alpha_{j(v)}\beta_i
    - \frac{b_i - \mu_b}{s_b^2}.

Given the difficulties, ``Q`` separates over the sources and is concave in each
:math:`\alpha_j` (:math:`x_v` is linear in it and :math:`p x + \log(1 - \sigma(x))` is
concave in ``x``); given the abilities it separates over the items. So the M-step is block
coordinate ascent warm-started at the current parameters: a Newton step for every
:math:`\alpha_j` at once (curvature
:math:`\sum_{v \in j} \sigma(x_v)(1 - \sigma(x_v))\beta_{i(v)}^2 + s_\alpha^{-2}`), then
a Fisher-scoring step for every :math:`b_i` (curvature
:math:`\sum_{v \in i} \sigma(x_v)(1 - \sigma(x_v)) x_v^2 + s_b^{-2}`, the expected one,
which is always positive), the pair halved until ``Q`` increases, repeated until ``Q``
stops changing by more than a tenth of EM's stopping threshold (``tol`` per item). Each
sweep is a handful of ``bincount`` passes over the votes, so one iteration costs O(votes).
It is a generalised EM step: ``Q`` never decreases, so neither does the objective. The
class prior has the closed-form update :math:`\pi_c \propto \sum_i q_{ic} + s`. The
objective recorded is the observed-data log-likelihood (known labels as complete data) plus
the log prior densities, constants dropped.

Prediction is inductive: an item of a new label matrix has no fitted difficulty, so
``predict_proba`` gives *every* item the prior's median inverse difficulty
:math:`\beta = e^{\mu_b}` (``1`` by default), i.e. a one-coin Dawid-Skene posterior with
accuracies :math:`\sigma(\alpha_j e^{\mu_b})`. The difficulties fitted on the training items
(``item_difficulty_``) shape the abilities but are not used at prediction, so that
``fit(L).predict_proba(L) == fit_predict_proba(L)``.

References
----------
.. [1] J. Whitehill, P. Ruvolo, T. Wu, J. Bergsma and J. R. Movellan (2009). Whose vote
   should count more: optimal integration of labels from labelers of unknown expertise.
   Advances in Neural Information Processing Systems 22 (NIPS 2009), 2035-2043.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions

from wsagg._rowwise import row_softmax
from wsagg._validation import user_stacklevel
from wsagg.base import BaseAggregator
from wsagg.labels import LabelMatrix, flat_index

__all__ = ["GLAD"]



def _softplus(x: np.ndarray) -> np.ndarray:
    """``log(1 + e^x) = max(x, 0) + log1p(e^{-|x|})``: no overflow, and 4x faster than
    scipy's ``log_expit`` (numpy's ``exp`` is vectorised)."""
    out = np.abs(x)
    np.negative(out, out=out)
    np.exp(out, out=out)
    np.log1p(out, out=out)
    out += np.maximum(x, 0.0)
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + e^{-x})`` (an overflowing ``e^{-x}`` gives exactly 0): 2x faster than
    scipy's ``expit``."""
    with np.errstate(over="ignore"):
        out = np.negative(x)
        np.exp(out, out=out)
        out += 1.0
        np.reciprocal(out, out=out)
    return out


def _log_joint(
    lm: LabelMatrix, x: np.ndarray, log_prior: np.ndarray
) -> np.ndarray:
    """``(n, k)`` log P(votes of i, y_i = c) given the per-vote ``x = alpha_j beta_i``:
    every vote adds ``log P(one given wrong class) = -softplus(x) - log(k - 1)`` to every
    class, and ``log P(correct) - log P(one given wrong class) = x + log(k - 1)`` to its
    own (``log sigma(x) = x - softplus(x)``: one transcendental pass)."""
    n, k = lm.n_items, lm.n_classes
    log_k1 = np.log(k - 1)
    log_wrong = _softplus(x)
    log_wrong += log_k1
    np.negative(log_wrong, out=log_wrong)
    base = np.bincount(lm.item, weights=log_wrong, minlength=n)
    gain = np.bincount(
        flat_index(lm.item, k, lm.label), weights=x + log_k1, minlength=n * k
    ).reshape(n, k)
    return gain + base[:, None] + log_prior[None, :]


def _posterior(
    log_joint: np.ndarray, known: np.ndarray | None
) -> tuple[np.ndarray, float]:
    """Posterior ``q`` (known items clamped to one-hot) and the observed-data log-likelihood
    (the complete-data one for known items)."""
    q, log_z = row_softmax(log_joint)
    if known is None:
        return q, float(log_z.sum())
    idx = np.flatnonzero(known >= 0)
    log_z[idx] = log_joint[idx, known[idx]]
    q[idx] = 0.0
    q[idx, known[idx]] = 1.0
    return q, float(log_z.sum())


_M_STEP_RTOL = 1e-12  # sweeps stop when Q gains less than this (relative to |Q|, or 1)
_MAX_HALVINGS = 30
_MAX_LOG_STEP = 2.0  # largest change of a log inverse difficulty in one Fisher step


def _q_value(alpha: np.ndarray, b: np.ndarray, p: np.ndarray, item: np.ndarray,
             src: np.ndarray, prior: tuple[float, float, float, float]) -> float:
    """``Q(alpha, b)`` of the module docstring, constants dropped: with
    ``log P(right) - log P(one wrong class) = x + log(k - 1)``, the votes' part is
    ``sum_v p_v x_v + log(1 - sigma(x_v))``."""
    mu_a, var_a, mu_b, var_b = prior
    x = alpha[src] * np.exp(b)[item]
    val = float(np.sum(p * x) - np.sum(_softplus(x)))
    val -= 0.5 * float(np.sum((alpha - mu_a) ** 2)) / var_a
    return val - 0.5 * float(np.sum((b - mu_b) ** 2)) / var_b


def m_step(alpha: np.ndarray, b: np.ndarray, p: np.ndarray, item: np.ndarray,
           src: np.ndarray, prior: tuple[float, float, float, float],
           max_sweeps: int, min_gain: float = 0.0) -> tuple[np.ndarray, np.ndarray, int]:
    """Abilities and log inverse difficulties that increase ``Q`` from ``(alpha, b)`` (see
    the module docstring), by block coordinate ascent; ``prior`` is ``(mu_alpha,
    s_alpha^2, mu_b, s_b^2)``. The sweeps stop after ``max_sweeps``, or once one gains at
    most ``min_gain`` (or a relative ``1e-12``). Returns the new ``alpha``, ``b`` and the
    sweeps run."""
    mu_a, var_a, mu_b, var_b = prior
    m, n = alpha.shape[0], b.shape[0]
    q_old = _q_value(alpha, b, p, item, src, prior)
    sweeps = 0
    while sweeps < max_sweeps:
        sweeps += 1
        beta_v = np.exp(b)[item]
        # abilities: one Newton step each (Q is concave in every alpha_j)
        x = alpha[src] * beta_v
        sig = _sigmoid(x)
        w = sig * (1.0 - sig)
        g = np.bincount(src, weights=(p - sig) * beta_v, minlength=m) - (alpha - mu_a) / var_a
        h = np.bincount(src, weights=w * beta_v**2, minlength=m) + 1.0 / var_a
        d_alpha = g / h
        # difficulties: one Fisher-scoring step each, at the new abilities
        x = (alpha + d_alpha)[src] * beta_v
        sig = _sigmoid(x)
        w = sig * (1.0 - sig)
        g = np.bincount(item, weights=(p - sig) * x, minlength=n) - (b - mu_b) / var_b
        h = np.bincount(item, weights=w * x**2, minlength=n) + 1.0 / var_b
        d_b = np.clip(g / h, -_MAX_LOG_STEP, _MAX_LOG_STEP)
        t = 1.0
        for _ in range(_MAX_HALVINGS):  # the pair of steps, halved until Q increases
            q_new = _q_value(alpha + t * d_alpha, b + t * d_b, p, item, src, prior)
            if q_new >= q_old:
                break
            t *= 0.5
        else:
            break  # (no increase along the steps: at the optimum to rounding)
        alpha, b = alpha + t * d_alpha, b + t * d_b
        gain, q_old = q_new - q_old, q_new
        if gain <= max(min_gain, _M_STEP_RTOL * max(1.0, abs(q_new))):
            break
    return alpha, b, sweeps


class GLAD(BaseAggregator):
    r"""GLAD: source abilities and item difficulties, fitted by MAP-EM.

    A vote of source ``j`` on item ``i`` is correct with probability
    :math:`\sigma(\alpha_j \beta_i)` and otherwise uniform over the other classes; see the
    module docstring for the model, the priors and the EM algorithm (Whitehill et al., 2009).

    Parameters
    ----------
    n_classes : int, optional
        Number of classes ``k``; inferred from the votes (and ``y``) when ``None``.
    class_prior : {"uniform", "learned"} or array-like of shape (k,)
        ``"uniform"`` (default, as in the paper and crowd-kit): fixed ``1/k``;
        ``"learned"``: MAP under a symmetric ``Dir(1 + prior_smoothing)`` prior; an array:
        a fixed distribution. (On eight real crowd sets the learned prior lost 1.6 points
        of mean accuracy.)
    prior_smoothing : float >= 0
        Dirichlet pseudo-count ``s`` of the learned class prior.
    ability_mean, ability_std : float
        Gaussian prior on the abilities :math:`\alpha_j` (mean ``1``: sources better than
        chance; also the initial value).
    log_difficulty_mean, log_difficulty_std : float
        Gaussian prior on :math:`b_i = \log\beta_i` (mean ``0``; also the initial value).
        ``predict_proba`` uses :math:`\beta = e^{\mu_b}` for every item. crowd-kit uses
        ``log_difficulty_mean=1``.
    max_iter : int >= 0
        Maximum number of EM iterations.
    m_step_max_iter : int >= 1
        Maximum sweeps of the M-step's block coordinate ascent (each: a Newton step for
        every ability, then a Fisher-scoring step for every difficulty); it stops earlier
        once ``Q`` stops changing.
    tol : float >= 0
        EM stops when the objective changes by at most ``tol * n_items``.
    tie_break : {"first", "random"}
        Tie policy of :meth:`predict` (see :mod:`wsagg.base`).
    random_state : int, RandomState or None
        Seeds ``tie_break="random"`` (the fit itself is deterministic).

    Attributes
    ----------
    classes_ : ndarray of shape (k,)
    n_classes_ : int
    n_sources_ : int
    source_names_ : ndarray of shape (m,)
    class_prior_ : ndarray of shape (k,)
        The class prior :math:`\pi` (what items without votes get).
    ability_ : ndarray of shape (m,)
        Source abilities :math:`\alpha_j` (``ability_mean`` for a source that never votes);
        :math:`\sigma(\alpha_j)` is the accuracy of ``j`` on an item of median difficulty.
    item_difficulty_ : ndarray of shape (n_train,)
        Difficulty :math:`1/\beta_i` of each training item (``exp(-log_difficulty_mean)``
        for items without votes). Not used by ``predict_proba``.
    n_iter_ : int
        EM iterations run.
    converged_ : bool
    log_likelihood_ : float
        Final MAP objective: observed-data log-likelihood plus the log prior densities.
    log_likelihood_history_ : ndarray of shape (n_iter_ + 1,)
        The objective after the initial E-step and after each iteration (never decreases).

    Notes
    -----
    GLAD is the one-coin Dawid-Skene model with accuracies that depend on the item: a hard
    item (small :math:`\beta_i`) pulls every source towards chance, so disagreement on it
    costs the sources little ability. Sources that never vote keep the prior ability and do
    not affect the posteriors. Items whose true label is known (``y``) are clamped during EM;
    ``predict_proba`` does not copy them into its output.

    Examples
    --------
    >>> import numpy as np
    >>> from wsagg.aggregation.glad import GLAD
    >>> L = np.array([[0, 0, 1], [1, 1, 1], [0, -1, 0], [1, 1, -1], [0, 0, 0]])
    >>> GLAD().fit(L).predict(L)
    array([0, 1, 0, 1, 0])
    """

    _parameter_constraints: dict = {  # noqa: RUF012 (scikit-learn's convention)
        "n_classes": [Interval(Integral, 2, None, closed="left"), None],
        "class_prior": [StrOptions({"learned", "uniform"}), "array-like"],
        "prior_smoothing": [Interval(Real, 0, None, closed="left")],
        "ability_mean": [Interval(Real, None, None, closed="neither")],
        "ability_std": [Interval(Real, 0, None, closed="neither")],
        "log_difficulty_mean": [Interval(Real, None, None, closed="neither")],
        "log_difficulty_std": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "m_step_max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "tie_break": [StrOptions({"first", "random"})],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_classes: int | None = None,
        *,
        class_prior: Any = "uniform",
        prior_smoothing: float = 1.0,
        ability_mean: float = 1.0,
        ability_std: float = 1.0,
        log_difficulty_mean: float = 0.0,
        log_difficulty_std: float = 1.0,
        max_iter: int = 100,
        m_step_max_iter: int = 25,
        tol: float = 1e-5,
        tie_break: str = "first",
        random_state: Any = None,
    ) -> None:
        self.n_classes = n_classes
        self.class_prior = class_prior
        self.prior_smoothing = prior_smoothing
        self.ability_mean = ability_mean
        self.ability_std = ability_std
        self.log_difficulty_mean = log_difficulty_mean
        self.log_difficulty_std = log_difficulty_std
        self.max_iter = max_iter
        self.m_step_max_iter = m_step_max_iter
        self.tol = tol
        self.tie_break = tie_break
        self.random_state = random_state

    # -- helpers ---------------------------------------------------------------------
    def _fixed_prior(self, k: int) -> np.ndarray | None:
        """The fixed class prior, or ``None`` when it is learned."""
        if isinstance(self.class_prior, str):
            return None if self.class_prior == "learned" else np.full(k, 1.0 / k)
        prior = np.asarray(self.class_prior, dtype=np.float64)
        if (
            prior.shape != (k,)
            or not np.all(np.isfinite(prior))
            or (prior <= 0).any()
            or not np.isclose(prior.sum(), 1.0)
        ):
            raise ValueError(
                f"class_prior must be 'learned', 'uniform' or {k} positive probabilities "
                f"summing to 1; got {self.class_prior!r}."
            )
        return prior / prior.sum()

    def _log_prior_density(self, alpha: np.ndarray, b: np.ndarray, log_pi: np.ndarray,
                           learned: bool) -> float:
        out = -0.5 * float(np.sum(((alpha - self.ability_mean) / self.ability_std) ** 2))
        out -= 0.5 * float(np.sum(((b - self.log_difficulty_mean) / self.log_difficulty_std) ** 2))
        if learned:
            out += float(self.prior_smoothing * log_pi.sum())
        return out

    # -- fitting ---------------------------------------------------------------------
    def _fit(self, lm: LabelMatrix, y: np.ndarray | None) -> None:
        n, m, k = lm.n_items, lm.n_sources, lm.n_classes
        fixed = self._fixed_prior(k)
        learned = fixed is None
        known = None if y is None or not (y >= 0).any() else y
        item, src = lm.item, lm.source
        # items that inform the class prior: with a vote, or with a known label
        informs = np.bincount(item, minlength=n) > 0
        if known is not None:
            informs |= known >= 0
        s = float(self.prior_smoothing)
        mu_a, var_a = float(self.ability_mean), float(self.ability_std) ** 2
        mu_b, var_b = float(self.log_difficulty_mean), float(self.log_difficulty_std) ** 2

        alpha = np.full(m, mu_a)
        b = np.full(n, mu_b)
        log_pi = np.log(np.full(k, 1.0 / k) if fixed is None else fixed)

        def e_step(alpha: np.ndarray, b: np.ndarray, log_pi: np.ndarray):
            x = alpha[src] * np.exp(b)[item]
            q, loglik = _posterior(_log_joint(lm, x, log_pi), known)
            return q, loglik + self._log_prior_density(alpha, b, log_pi, learned)

        q, obj = e_step(alpha, b, log_pi)
        history = [obj]
        threshold = float(self.tol) * n
        converged = False
        n_iter = 0
        while n_iter < self.max_iter:
            n_iter += 1
            # M-step: class prior in closed form, abilities and difficulties by m_step
            if learned:
                counts = q[informs].sum(axis=0)
                log_pi = np.log((counts + s) / (counts.sum() + k * s))
            p = q[item, lm.label]
            # (sweeps gaining less than a tenth of EM's own stopping threshold are not run:
            # a generalised EM step only has to increase Q)
            alpha, b, _ = m_step(alpha, b, p, item, src, (mu_a, var_a, mu_b, var_b),
                                 int(self.m_step_max_iter), 0.1 * threshold)
            q, new = e_step(alpha, b, log_pi)
            history.append(new)
            if abs(new - obj) <= threshold:
                converged = True
                break
            obj = new

        self.class_prior_ = np.exp(log_pi - logsumexp(log_pi))
        self.ability_ = alpha
        self.item_difficulty_ = np.exp(-b)
        self.n_iter_ = n_iter
        self.converged_ = converged
        self.log_likelihood_history_ = np.asarray(history)
        self.log_likelihood_ = float(history[-1])
        if not converged and self.max_iter > 0:
            warnings.warn(
                f"GLAD did not converge in max_iter={self.max_iter} iterations (last "
                f"objective change {history[-1] - history[-2]:.3g}, tol={self.tol} per item "
                f"x {n} items). Increase max_iter or loosen tol.",
                ConvergenceWarning,
                stacklevel=user_stacklevel(),
            )

    # -- prediction ------------------------------------------------------------------
    def _predict_proba(self, lm: LabelMatrix) -> np.ndarray:
        x = self.ability_[lm.source] * np.exp(float(self.log_difficulty_mean))
        log_joint = _log_joint(lm, x, np.log(self.class_prior_))
        return np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
