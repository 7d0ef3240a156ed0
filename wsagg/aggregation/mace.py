r"""MACE: Multi-Annotator Competence Estimation (Hovy et al., 2013).

The model. Item ``i`` has a hidden class :math:`T_i \sim \mathrm{Cat}(\pi)` (uniform in the
paper). For each vote of source ``j`` on item ``i`` a hidden spamming indicator decides how
the vote is produced: with probability :math:`\theta_j` (the source's *competence*) the
source knows and votes the true class; otherwise (probability :math:`1 - \theta_j`, the
*spam probability*) it votes from its own spamming distribution :math:`\xi_j` over the
``k`` classes:

.. math::

    S_{ij} \sim \mathrm{Bernoulli}(1 - \theta_j), \qquad
    \lambda_{ij} \mid T_i, S_{ij} =
    \begin{cases} T_i & S_{ij} = 0, \\ \sim \mathrm{Cat}(\xi_j) & S_{ij} = 1, \end{cases}
    \qquad
    P(\lambda_{ij} = l \mid T_i = c) = (1 - \theta_j)\,\xi_{jl} + \theta_j\,[l = c].

Every vote has its own indicator (repeated votes each count); abstains are missing at random.
Priors (the paper's and MACE's defaults): :math:`\theta_j \sim \mathrm{Beta}(b, a)` with
spam pseudo-count ``a = spam_prior = 0.5`` and knowing pseudo-count
``b = competence_prior = 0.5``; :math:`\xi_j \sim \mathrm{Dir}(\gamma)` with
``gamma = strategy_prior = 10``; a learned class prior :math:`\pi \sim \mathrm{Dir}(1)`.

Inference. ``method="vb"`` (default): mean-field variational Bayes, :math:`q(T, S)
\prod_j q(\theta_j) q(\xi_j)\,q(\pi)`, by coordinate ascent (VB-EM). Given the Beta/Dirichlet
factors, the E-step is the exact posterior over :math:`(T, S)` under the weights
:math:`\tilde\theta_j = e^{\mathbb{E}\log\theta_j}`, :math:`\tilde s_j =
e^{\mathbb{E}\log(1-\theta_j)}`, :math:`\tilde\xi_{jl} = e^{\mathbb{E}\log\xi_{jl}}`
(digammas). With :math:`u_v = \tilde s_j \tilde\xi_{j l_v}` for vote ``v`` of ``j`` on ``i``,

.. math::

    \log q(T_i = c) = \log\tilde\pi_c + \sum_{v \in i} \log u_v
    + \sum_{v \in i} [l_v = c] \log\Big(1 + \frac{\tilde\theta_j}{u_v}\Big) - \log Z_i,

and a vote is "known" with probability :math:`q(T_i = l_v)\,\tilde\theta_j / (u_v +
\tilde\theta_j)`. Its expected counts update the factors: :math:`q(\theta_j) =
\mathrm{Beta}(b + N^{\text{know}}_j, a + N^{\text{spam}}_j)`, :math:`q(\xi_j) =
\mathrm{Dir}(\gamma + N^{\text{spam}}_{j\cdot})`, :math:`q(\pi) = \mathrm{Dir}(1 +
\sum_i q(T_i))`. The recorded objective is the evidence lower bound

.. math::

    \mathrm{ELBO} = \sum_i \log Z_i - \sum_j \mathrm{KL}(q(\theta_j)\,\|\,p(\theta_j))
    - \sum_j \mathrm{KL}(q(\xi_j)\,\|\,p(\xi_j)) - \mathrm{KL}(q(\pi)\,\|\,p(\pi)),

which never decreases. ``method="em"``: MAP-EM with the additive-smoothing M-step of MACE's
EM (``smoothing`` added to every expected count, i.e. Dirichlet(1 + smoothing) priors); the
objective is then the log-likelihood plus the log prior densities (constants dropped).

MACE is Dawid-Skene with confusion rows :math:`(1 - \theta_j)\xi_j + \theta_j e_c`, so an
iteration is two sparse products with the one-hot vote matrix ``V``: the E-step is
``V @ T`` with the ``(m k, k)`` table :math:`T[jk + l, c] = \log(\tilde s_j\tilde\xi_{jl} +
\tilde\theta_j [l = c])`, and the expected "known" counts are the diagonal blocks of
``V.T @ q``: O(votes * k) per iteration.

Restarts. The first run starts from a deterministic, symmetric point (competence 1/2, each
source's spamming distribution its own smoothed vote distribution); the other
``n_restarts - 1`` runs start from random parameters drawn from ``random_state`` (as MACE
does). The run with the highest final objective (ELBO, or the MAP objective for ``"em"``;
crowd-kit compares the log marginal likelihood at the E-step weights) is kept; a later
run replaces an earlier one only when it beats it by more than ``tol * n_items``, so that
runs reaching the same optimum keep the deterministic one.

Prediction is inductive: ``predict_proba`` computes :math:`q(T_i)` of the E-step above with
the fitted weights, for any label matrix with the same sources.

References
----------
.. [1] D. Hovy, T. Berg-Kirkpatrick, A. Vaswani and E. Hovy (2013). Learning whom to trust
   with MACE. Proceedings of NAACL-HLT 2013, 1120-1130. https://aclanthology.org/N13-1132
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
from scipy.special import digamma, gammaln, logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from wsagg._rowwise import col_sum, row_softmax
from wsagg._validation import user_stacklevel
from wsagg.base import BaseAggregator
from wsagg.labels import LabelMatrix

__all__ = ["MACE"]


@dataclass
class _Weights:
    """Log weights of the E-step: point estimates (EM) or ``E log`` (VB)."""

    log_know: np.ndarray  # (m,)  log theta_j
    log_spam: np.ndarray  # (m,)  log (1 - theta_j)
    log_xi: np.ndarray  # (m, k) log xi_j
    log_prior: np.ndarray  # (k,)


@dataclass
class _Run:
    weights: _Weights
    spam: np.ndarray  # (m,) posterior mean / point estimate of 1 - theta
    xi: np.ndarray  # (m, k)
    history: list[float]
    n_iter: int
    converged: bool


def _vote_table(w: _Weights) -> tuple[np.ndarray, np.ndarray]:
    """Log-parameter table ``T[j k + l, c] = log P(vote l | T = c)`` of shape ``(m k, k)``
    (MACE is Dawid-Skene with confusion rows ``(1 - theta_j) xi_j + theta_j e_c``), and the
    ``(m, k)`` probability that a vote ``l`` of ``j`` on an item of class ``l`` is known,
    ``theta_j / (u_jl + theta_j)``, with ``u_jl = (1 - theta_j) xi_jl``."""
    m, k = w.log_xi.shape
    log_u = w.log_spam[:, None] + w.log_xi  # (m, k)
    log_ut = np.logaddexp(log_u, w.log_know[:, None])  # log P(vote l | T = l)
    table = np.repeat(log_u[:, :, None], k, axis=2)  # (m, l, c)
    idx = np.arange(k)
    table[:, idx, idx] = log_ut
    return table.reshape(m * k, k), np.exp(w.log_know[:, None] - log_ut)


def _log_joint(lm: LabelMatrix, w: _Weights) -> np.ndarray:
    """``(n, k)`` log joint of the votes of each item and ``T_i = c`` (summed over the
    spamming indicators): one sparse product ``V T`` with the one-hot vote matrix."""
    table, _ = _vote_table(w)
    return np.asarray(lm.one_hot() @ table) + w.log_prior[None, :]


def _kl_dirichlet(post: np.ndarray, prior: np.ndarray) -> float:
    """Sum over rows of KL(Dir(post) || Dir(prior)) (last axis = the simplex)."""
    p0, q0 = post.sum(axis=-1), prior.sum(axis=-1)
    out = gammaln(p0) - gammaln(q0) - (gammaln(post) - gammaln(prior)).sum(axis=-1)
    out += ((post - prior) * (digamma(post) - digamma(p0)[..., None])).sum(axis=-1)
    return float(np.sum(out))


class MACE(BaseAggregator):
    r"""MACE: each source either knows the true class or spams from its own distribution.

    See the module docstring for the model, the variational Bayes / EM algorithm and the
    restarts (Hovy et al., 2013).

    Parameters
    ----------
    n_classes : int, optional
        Number of classes ``k``; inferred from the votes (and ``y``) when ``None``.
    method : {"vb", "em"}
        ``"vb"``: variational Bayes with the Beta and Dirichlet priors (the paper's
        recommended training); ``"em"``: MAP-EM with additive ``smoothing``.
    class_prior : {"uniform", "learned"} or array-like of shape (k,)
        ``"uniform"`` (the paper): fixed ``1/k``; ``"learned"``: ``Dir(1)`` prior, learned
        with the rest (VB factor, or smoothed MAP under ``"em"``); an array: fixed.
    spam_prior, competence_prior : float > 0
        Pseudo-counts ``a`` (spamming) and ``b`` (knowing) of the Beta prior on the
        competence (``"vb"``). MACE's defaults ``0.5, 0.5``.
    strategy_prior : float > 0
        Symmetric Dirichlet concentration ``gamma`` on the spamming distributions
        (``"vb"``). MACE's default ``10``.
    smoothing : float >= 0
        Pseudo-count added to every expected count under ``"em"`` (MACE uses ``0.01 / k``).
    n_restarts : int >= 1
        Number of runs; the first from a deterministic start, the others random (MACE's
        default is 10; on eight real crowd sets the deterministic start was as good, so the
        default is 1).
    max_iter : int >= 0
        Maximum number of iterations per run.
    tol : float >= 0
        A run stops when its objective changes by at most ``tol * n_items``.
    tie_break : {"first", "random"}
        Tie policy of :meth:`predict` (see :mod:`wsagg.base`).
    random_state : int, RandomState or None
        Seeds the random restarts and ``tie_break="random"``.

    Attributes
    ----------
    classes_ : ndarray of shape (k,)
    n_classes_ : int
    n_sources_ : int
    source_names_ : ndarray of shape (m,)
    class_prior_ : ndarray of shape (k,)
        The class distribution used by ``predict_proba`` (and given to items without votes):
        normalised :math:`e^{\mathbb{E}\log\pi}` under ``"vb"``.
    spam_probability_ : ndarray of shape (m,)
        Posterior mean (``"vb"``) or estimate (``"em"``) of :math:`1 - \theta_j`, the
        probability that a vote of source ``j`` is spam.
    competence_ : ndarray of shape (m,)
        ``1 - spam_probability_``: the probability that source ``j`` knows the true class.
    spam_distribution_ : ndarray of shape (m, k)
        Posterior mean (``"vb"``) or estimate (``"em"``) of :math:`\xi_j`.
    n_iter_ : int
        Iterations run by the kept run.
    converged_ : bool
        Whether the kept run converged.
    elbo_ : float
        Final objective of the kept run (ELBO under ``"vb"``, MAP objective under ``"em"``).
    elbo_history_ : ndarray of shape (n_iter_ + 1,)
        The objective of the kept run after its first update and after each iteration
        (never decreases).
    restart_elbos_ : ndarray of shape (n_restarts,)
        Final objective of every run.

    Notes
    -----
    ``predict_proba`` uses the E-step weights :math:`e^{\mathbb{E}\log(\cdot)}` of the
    variational factors, so it reproduces the fitted posterior over the training items;
    ``spam_probability_`` and ``spam_distribution_`` are the posterior means, which differ
    from those weights by O(1 / votes of the source). Items whose true label is known
    (``y``) are clamped during fitting; ``predict_proba`` does not copy them. A source that
    never votes keeps its prior and does not affect any posterior.

    Examples
    --------
    >>> import numpy as np
    >>> from wsagg.aggregation.mace import MACE
    >>> L = np.array([[0, 0, 1], [1, 1, 1], [0, -1, 0], [1, 1, -1], [0, 0, 0]])
    >>> MACE(random_state=0).fit(L).predict(L)
    array([0, 1, 0, 1, 0])
    """

    _parameter_constraints: dict = {  # noqa: RUF012 (scikit-learn's convention)
        "n_classes": [Interval(Integral, 2, None, closed="left"), None],
        "method": [StrOptions({"vb", "em"})],
        "class_prior": [StrOptions({"uniform", "learned"}), "array-like"],
        "spam_prior": [Interval(Real, 0, None, closed="neither")],
        "competence_prior": [Interval(Real, 0, None, closed="neither")],
        "strategy_prior": [Interval(Real, 0, None, closed="neither")],
        "smoothing": [Interval(Real, 0, None, closed="left")],
        "n_restarts": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "tie_break": [StrOptions({"first", "random"})],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_classes: int | None = None,
        *,
        method: str = "vb",
        class_prior: Any = "uniform",
        spam_prior: float = 0.5,
        competence_prior: float = 0.5,
        strategy_prior: float = 10.0,
        smoothing: float = 0.01,
        n_restarts: int = 1,
        max_iter: int = 200,
        tol: float = 1e-6,
        tie_break: str = "first",
        random_state: Any = None,
    ) -> None:
        self.n_classes = n_classes
        self.method = method
        self.class_prior = class_prior
        self.spam_prior = spam_prior
        self.competence_prior = competence_prior
        self.strategy_prior = strategy_prior
        self.smoothing = smoothing
        self.n_restarts = n_restarts
        self.max_iter = max_iter
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
                f"class_prior must be 'uniform', 'learned' or {k} positive probabilities "
                f"summing to 1; got {self.class_prior!r}."
            )
        return prior / prior.sum()

    def _update(
        self,
        stats: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
        fixed_prior: np.ndarray | None,
    ) -> tuple[_Weights, np.ndarray, np.ndarray, float]:
        """Parameter update from the expected counts ``(know (m,), spam (m,), spam per class
        (m, k), class totals (k,))``: the new E-step weights, the point / mean estimates of
        ``1 - theta`` and ``xi``, and the parameter part of the objective (minus the KLs
        under ``"vb"``, the log prior densities under ``"em"``)."""
        n_know, n_spam, n_xi, n_cls = stats
        k = n_xi.shape[1]
        if self.method == "vb":
            a, b, g = float(self.spam_prior), float(self.competence_prior), float(
                self.strategy_prior
            )
            post_t = np.stack([b + n_know, a + n_spam], axis=1)  # (know, spam)
            dig = digamma(post_t) - digamma(post_t.sum(axis=1, keepdims=True))
            post_x = g + n_xi
            log_xi = digamma(post_x) - digamma(post_x.sum(axis=1, keepdims=True))
            penalty = -_kl_dirichlet(post_t, np.broadcast_to([b, a], post_t.shape))
            penalty -= _kl_dirichlet(post_x, np.full_like(post_x, g))
            if fixed_prior is None:
                post_p = 1.0 + n_cls
                log_prior = digamma(post_p) - digamma(post_p.sum())
                penalty -= _kl_dirichlet(post_p, np.ones(k))
            else:
                log_prior = np.log(fixed_prior)
            weights = _Weights(dig[:, 0], dig[:, 1], log_xi, log_prior)
            spam = post_t[:, 1] / post_t.sum(axis=1)
            xi = post_x / post_x.sum(axis=1, keepdims=True)
            return weights, spam, xi, penalty
        s = float(self.smoothing)
        tot = n_know + n_spam + 2 * s
        with np.errstate(divide="ignore", invalid="ignore"):
            spam = np.where(tot > 0, (n_spam + s) / np.where(tot > 0, tot, 1.0), 0.5)
            xt = n_xi.sum(axis=1, keepdims=True) + k * s
            xi = np.where(xt > 0, (n_xi + s) / np.where(xt > 0, xt, 1.0), 1.0 / k)
            log_spam, log_know, log_xi = np.log(spam), np.log1p(-spam), np.log(xi)
        penalty = s * float(
            np.sum(np.where(spam > 0, log_spam, 0.0)) + np.sum(np.where(spam < 1, log_know, 0.0))
            + np.sum(np.where(xi > 0, log_xi, 0.0))
        )
        if fixed_prior is None:
            prior = (n_cls + s) / (n_cls.sum() + k * s)
            log_prior = np.log(prior)
            penalty += s * float(log_prior.sum())
        else:
            log_prior = np.log(fixed_prior)
        return _Weights(log_know, log_spam, log_xi, log_prior), spam, xi, penalty

    # -- fitting ---------------------------------------------------------------------
    def _fit(self, lm: LabelMatrix, y: np.ndarray | None) -> None:
        n, m, k = lm.n_items, lm.n_sources, lm.n_classes
        fixed = self._fixed_prior(k)
        known = None if y is None or not (y >= 0).any() else y
        known_idx = None if known is None else np.flatnonzero(known >= 0)
        informs = lm.covered()
        if known_idx is not None:
            informs[known_idx] = True

        all_inform = bool(informs.all())
        informs_f = informs.astype(np.float64)
        V = lm.one_hot()
        vote_counts = np.asarray(V.sum(axis=0)).reshape(m, k)  # votes of j for class l
        n_votes = vote_counts.sum(axis=1)
        cls = np.arange(k)

        def e_step(w: _Weights) -> tuple[float, tuple[np.ndarray, ...]]:
            table, p_known = _vote_table(w)
            log_joint = np.asarray(V @ table) + w.log_prior[None, :]
            q, log_z = row_softmax(log_joint)
            if known_idx is not None:
                log_z[known_idx] = log_joint[known_idx, known[known_idx]]
                q[known_idx] = 0.0
                q[known_idx, known[known_idx]] = 1.0
            # posterior mass of "vote l of j is right": (V^T q)[j k + l, l]
            right = np.asarray(V.T @ q).reshape(m, k, k)[:, cls, cls]
            know = right * p_known  # (m, k) expected known votes per voted class
            n_know = know.sum(axis=1)
            stats = (n_know, n_votes - n_know, vote_counts - know,
                     col_sum(q) if all_inform else informs_f @ q)
            return float(log_z.sum()), stats

        rng = check_random_state(self.random_state)
        threshold = float(self.tol) * n
        runs: list[_Run] = []
        best: _Run | None = None
        for r in range(self.n_restarts):
            w0 = self._initial_weights(lm, fixed, rng if r > 0 else None)
            _, stats = e_step(w0)
            weights, spam, xi, penalty = self._update(stats, fixed)
            loglik, stats = e_step(weights)
            obj = loglik + penalty
            history = [obj]
            converged = False
            n_iter = 0
            while n_iter < self.max_iter:
                n_iter += 1
                weights, spam, xi, penalty = self._update(stats, fixed)
                loglik, stats = e_step(weights)
                new = loglik + penalty
                history.append(new)
                if abs(new - obj) <= threshold:
                    converged = True
                    break
                obj = new
            run = _Run(weights, spam, xi, history, n_iter, converged)
            runs.append(run)
            if best is None or run.history[-1] > best.history[-1] + threshold:
                best = run
        assert best is not None
        self._weights = best.weights
        self.class_prior_ = np.exp(best.weights.log_prior - logsumexp(best.weights.log_prior))
        self.spam_probability_ = best.spam
        self.competence_ = 1.0 - best.spam
        self.spam_distribution_ = best.xi
        self.n_iter_ = best.n_iter
        self.converged_ = best.converged
        self.elbo_history_ = np.asarray(best.history)
        self.elbo_ = float(best.history[-1])
        self.restart_elbos_ = np.array([run.history[-1] for run in runs])
        if not best.converged and self.max_iter > 0:
            h = best.history
            warnings.warn(
                f"MACE did not converge in max_iter={self.max_iter} iterations (last "
                f"objective change {h[-1] - h[-2]:.3g}, tol={self.tol} per item x {n} "
                "items). Increase max_iter or loosen tol.",
                ConvergenceWarning,
                stacklevel=user_stacklevel(),
            )

    def _initial_weights(
        self, lm: LabelMatrix, fixed: np.ndarray | None, rng: np.random.RandomState | None
    ) -> _Weights:
        """Deterministic start (``rng=None``): competence 1/2 and each source's smoothed vote
        distribution as its spamming distribution; else random parameters (MACE's: both
        normalised from uniform draws on [1, 2.5])."""
        m, k = lm.n_sources, lm.n_classes
        if rng is None:
            counts = np.bincount(lm.source * k + lm.label, minlength=m * k).reshape(m, k)
            xi = (counts + 1.0) / (counts.sum(axis=1, keepdims=True) + k)
            spam = np.full(m, 0.5)
        else:
            t = rng.uniform(1.0, 2.5, size=(m, 2))
            spam = t[:, 0] / t.sum(axis=1)
            x = rng.uniform(1.0, 2.5, size=(m, k))
            xi = x / x.sum(axis=1, keepdims=True)
        log_prior = np.log(np.full(k, 1.0 / k) if fixed is None else fixed)
        return _Weights(np.log1p(-spam), np.log(spam), np.log(xi), log_prior)

    # -- prediction ------------------------------------------------------------------
    def _predict_proba(self, lm: LabelMatrix) -> np.ndarray:
        log_joint = _log_joint(lm, self._weights)
        return np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
