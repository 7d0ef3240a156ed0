"""Bayesian classifier combination (BCC) by mean-field variational Bayes, with communities.

**The model** (Kim & Ghahramani 2012). Item ``i`` has a hidden class :math:`z_i`; source
(worker) ``j``'s votes on it are independent draws from row :math:`z_i` of its confusion
matrix :math:`\\pi_j`, and every parameter has a Dirichlet prior:

.. math::

    \\pi \\sim \\mathrm{Dir}(\\nu), \\qquad z_i \\mid \\pi \\sim \\mathrm{Cat}(\\pi), \\qquad
    \\pi_j[c, \\cdot] \\sim \\mathrm{Dir}(s\\,\\mu_c), \\qquad
    \\lambda_{ij} \\mid z_i = c \\sim \\mathrm{Cat}(\\pi_j[c, \\cdot]),

with :math:`\\nu = \\nu_0 \\mathbf{1}` (``class_prior_strength``), the prior mean row
:math:`\\mu_c = (\\mathbf{1} + d\\,e_c) / (k + d)` (``d = diagonal_strength``: "sources are
better than chance", symmetric in the classes) and the concentration ``s``
(``worker_prior_strength``, default :math:`k + d`, so that the prior is exactly
:math:`\\mathrm{Dir}(\\mathbf{1} + d\\,e_c)`). Abstains are missing at random (no factor);
repeated votes are repeated observations.

**Communities** (Venanzi, Guiver, Kazai, Kohli & Shokouhi 2014), ``communities=C``: worker
``j`` belongs to a community :math:`m_j \\sim \\mathrm{Cat}(\\rho)`,
:math:`\\rho \\sim \\mathrm{Dir}(\\mathbf{1})`, and its confusion rows are drawn around the
community's confusion matrix :math:`P_m`:

.. math::

    \\pi_j[c, \\cdot] \\mid m_j = m \\sim \\mathrm{Dir}(s\\, P_m[c, \\cdot]), \\qquad
    P_m[c, \\cdot] \\sim \\mathrm{Dir}(2 \\cdot \\mathbf{1} + d\\,e_c).

This replaces CBCC's Gaussian-softmax worker scores (inferred by expectation propagation in
the paper) with a Dirichlet hierarchy that keeps every update in closed form: the community
matrices are estimated by MAP (empirical Bayes, type II), everything else by variational
Bayes. The hyper-prior's mode is :math:`\\mu_c`, so with ``s = k + d`` and no data the model
is BCC.

**Inference.** Structured mean-field VB with
:math:`q(z)\\,q(\\pi)\\,q(\\rho)\\prod_j q(m_j)\\,q(\\pi_j \\mid m_j)`, by coordinate
ascent on the evidence lower bound (ELBO). Each worker's posterior is thus a *mixture of
Dirichlets* over the communities: a worker's membership and confusion are not assumed
independent, and the membership is scored by the worker's marginal (Dirichlet-multinomial)
evidence under each community, which is what a worker with a handful of votes can support.
With ``V`` the ``(n, m k)`` one-hot
vote-count matrix, :math:`r_{ic} = q(z_i = c)` and the expected counts
:math:`N_{jcl} = (V^\\top r)_{jk+l, c}`:

* :math:`q(\\pi) = \\mathrm{Dir}(\\nu + \\sum_i r_i)`,
  :math:`q(\\pi_j[c, \\cdot] \\mid m_j = m) = \\mathrm{Dir}(a_{jmc})`,
  :math:`a_{jmc} = s P_m[c, \\cdot] + N_{jc}`;
* :math:`q(m_j = m) \\propto \\exp(\\mathbb{E}[\\log \\rho_m]) \\prod_c
  B(a_{jmc}) / B(s P_m[c, \\cdot])`: the Dirichlet-multinomial evidence of the worker's
  expected counts under each community (``B`` the multivariate beta function);
  :math:`q(\\rho) = \\mathrm{Dir}(\\mathbf{1} + \\sum_j q(m_j))`;
  :math:`P_m` by a guarded constrained Newton ascent of its (concave) part of the ELBO;
* the E-step uses the *expected log* parameters, never point estimates,

  .. math::

      \\log r_{ic} = \\mathbb{E}[\\log \\pi_c] + \\sum_{\\text{votes } l \\text{ of } j
      \\text{ on } i} \\mathbb{E}[\\log \\pi_j[c, l]] - \\mathrm{logsumexp}_c(\\cdot), \\qquad
      \\mathbb{E}[\\log \\pi_j[c, l]] = \\sum_m q(m_j = m)\\,\\bigl(\\psi(a_{jmcl})
      - \\psi(\\textstyle\\sum_{l'} a_{jmcl'})\\bigr),

  one sparse product ``V @ T``; known labels are clamped (one-hot ``r_i``).

Without communities this is the plain mean-field VB of Kim & Ghahramani (one "community"
fixed at the prior mean). Each step maximises the ELBO over its block (the Newton step only
increases it), so ``elbo_history_`` never decreases. One iteration costs O(votes x k) plus
O(m C k^2).

**Prediction** is inductive: for new items, :math:`q(z)` is the VB update above with the
fitted :math:`q(\\pi), q(\\pi_j)` held fixed, i.e. the normalised geometric means
:math:`\\exp \\mathbb{E}[\\log \\theta]` (the mean-field posterior predictive). On the
training items this is the fit's own last E-step (before clamping).

References
----------
.. [1] H.-C. Kim and Z. Ghahramani (2012). Bayesian classifier combination. Proceedings of
   the 15th International Conference on Artificial Intelligence and Statistics (AISTATS),
   PMLR 22:619-627.
.. [2] M. Venanzi, J. Guiver, G. Kazai, P. Kohli and M. Shokouhi (2014). Community-based
   Bayesian aggregation models for crowdsourcing. Proceedings of the 23rd International
   Conference on World Wide Web (WWW), 155-164.
.. [3] E. Simpson, S. Roberts, I. Psorakis and A. Smith (2013). Dynamic Bayesian combination
   of multiple imperfect classifiers. In Decision Making and Imperfection, Springer (the
   variational treatment of IBCC).
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import digamma, gammaln, log_softmax, polygamma, softmax, xlogy
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from wsagg._validation import user_stacklevel
from wsagg.base import BaseAggregator
from wsagg.exceptions import ConvergenceWarning
from wsagg.labels import LabelMatrix

__all__ = ["BCC"]

_NEWTON_STEPS = 2  # Newton steps on the community rows per VB iteration (each one ascends)
_LLOYD_STEPS = 25  # k-means iterations of the community initialisation


# ----------------------------------------------------------------------------------------
# Dirichlet helpers (along the last axis)
# ----------------------------------------------------------------------------------------
def _expected_log(a: np.ndarray) -> np.ndarray:
    """:math:`E[\\log \\theta]` under :math:`\\mathrm{Dir}(a)`."""
    return digamma(a) - digamma(a.sum(axis=-1, keepdims=True))


def _kl_dirichlet(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """KL(Dir(a) || Dir(b)) over the last axis."""
    a0 = a.sum(axis=-1)
    b0 = b.sum(axis=-1)
    return (
        gammaln(a0)
        - gammaln(a).sum(axis=-1)
        - gammaln(b0)
        + gammaln(b).sum(axis=-1)
        + ((a - b) * _expected_log(a)).sum(axis=-1)
    )


def _in_wsagg(frame: Any) -> bool:
    name = frame.f_globals.get("__name__", "")
    return name == "wsagg" or name.startswith("wsagg.")


# ----------------------------------------------------------------------------------------
# communities: the MAP update of P, the membership evidence and the initialisation
# ----------------------------------------------------------------------------------------
def _community_objective(
    P: np.ndarray, R: np.ndarray, S: np.ndarray, s: float, alpha0: np.ndarray
) -> np.ndarray:
    """The part of the ELBO that depends on the community row ``P[m, c]``, shape ``(C, k)``:
    :math:`-R_m \\sum_l \\log\\Gamma(s P_{mcl}) + s \\sum_l P_{mcl} S_{mcl} + \\sum_l
    \\alpha_{0,cl} \\log P_{mcl}`."""
    return (
        -R[:, None, None] * gammaln(s * P) + s * P * S + alpha0[None] * np.log(P)
    ).sum(axis=2)


def _update_communities(
    P: np.ndarray, resp: np.ndarray, elog: np.ndarray, s: float, alpha0: np.ndarray
) -> np.ndarray:
    """MAP update of the community confusion rows given the responsibilities ``(m, C)`` and
    the workers' expected log confusions under each community, ``elog[j, m] = E[log pi_j |
    m_j = m]`` of shape ``(m, C, k, k)``: guarded Newton ascent on the simplex, vectorised over
    all ``(community, row)`` pairs. The objective is concave; a step is kept only where it
    does not decrease it, so the ELBO stays monotone."""
    R = resp.sum(axis=0)  # (C,)
    S = np.einsum("jm,jmcl->mcl", resp, elog)  # (C, k, k)
    A = alpha0[None]
    f = _community_objective(P, R, S, s, alpha0)
    for _ in range(_NEWTON_STEPS):
        g = -R[:, None, None] * s * digamma(s * P) + s * S + A / P
        h = -R[:, None, None] * s * s * polygamma(1, s * P) - A / P**2  # < 0
        lam = (g / h).sum(axis=2, keepdims=True) / (1.0 / h).sum(axis=2, keepdims=True)
        delta = -(g - lam) / h  # rows sum to 0: stays on the simplex
        # largest step keeping every entry above a tenth of its value
        shrink = np.where(delta < 0, -0.9 * P / np.where(delta < 0, delta, -1.0), np.inf)
        t = np.minimum(1.0, shrink.min(axis=2))  # (C, k)
        todo = np.ones_like(t, dtype=bool)
        newP = P.copy()
        for _half in range(40):
            cand = P + t[:, :, None] * delta
            cand /= cand.sum(axis=2, keepdims=True)
            fc = _community_objective(cand, R, S, s, alpha0)
            ok = todo & (fc >= f)
            newP[ok] = cand[ok]
            f = np.where(ok, fc, f)
            todo &= ~ok
            if not todo.any():
                break
            t = np.where(todo, 0.5 * t, t)
        step = np.abs(newP - P).max()
        P = newP
        if step < 1e-10:
            break
    return P


def _log_evidence(N: np.ndarray, P: np.ndarray, s: float) -> np.ndarray:
    """``(m, C)``: log Dirichlet-multinomial evidence of each worker's expected counts under
    each community, :math:`\\sum_c \\log B(s P_m[c] + N_j[c]) - \\log B(s P_m[c])`."""
    sP = s * P[None]  # (1, C, k, k)
    Nx = N[:, None]  # (m, 1, k, k)
    rows = gammaln(s) - gammaln(s + N.sum(axis=2))  # (m, k)
    return rows.sum(axis=1)[:, None] + (gammaln(sP + Nx) - gammaln(sP)).sum(axis=(2, 3))


def _init_communities(
    N0: np.ndarray, n_votes: np.ndarray, alpha0: np.ndarray, C: int, rng: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (given ``rng``) community start: weighted k-means++ seeding and Lloyd
    iterations on the workers' smoothed empirical confusion against the initial posterior.

    Workers are visited in a canonical order (by vote count and class-permutation-invariant
    summaries of their confusion), so the result does not depend on the order of the
    sources or the naming of the classes. Returns the responsibilities ``(m, C)`` (hard) and
    the community rows ``(C, k, k)``."""
    m, k, _ = N0.shape
    F = N0 + alpha0[None]
    F = (F / F.sum(axis=2, keepdims=True)).reshape(m, k * k)
    w = n_votes.astype(np.float64)
    diag = np.sort(np.einsum("jcc->jc", F.reshape(m, k, k)), axis=1)
    keys = np.column_stack([np.sort(F, axis=1), diag, diag.sum(axis=1), w])
    order = np.lexsort(np.round(keys, 12).T)  # last column (vote count) is the primary key
    Fo, wo = F[order], w[order]

    def sq_dist(X: np.ndarray, centres: np.ndarray) -> np.ndarray:
        return ((X[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)

    centres = np.empty((C, k * k))
    d2 = np.ones(m)
    for c in range(C):  # k-means++ seeding (a loop over communities)
        p = wo * d2
        if p.sum() <= 0:
            p = np.ones(m)
        idx = int(np.searchsorted(np.cumsum(p), rng.random_sample() * p.sum(), side="right"))
        centres[c] = Fo[min(idx, m - 1)]
        d2 = sq_dist(Fo, centres[: c + 1]).min(axis=1)
    assign = sq_dist(Fo, centres).argmin(axis=1)
    for _ in range(_LLOYD_STEPS):
        onehot = np.eye(C)[assign] * wo[:, None]
        mass = onehot.sum(axis=0)
        upd = (onehot.T @ Fo) / np.where(mass > 0, mass, 1.0)[:, None]
        centres = np.where(mass[:, None] > 0, upd, centres)
        new = sq_dist(Fo, centres).argmin(axis=1)
        if np.array_equal(new, assign):
            break
        assign = new
    resp = np.empty((m, C))
    resp[order] = np.eye(C)[assign]
    P = centres.reshape(C, k, k)
    return resp, P / P.sum(axis=2, keepdims=True)


# ----------------------------------------------------------------------------------------
# the estimator
# ----------------------------------------------------------------------------------------
class BCC(BaseAggregator):
    """Bayesian classifier combination (Kim & Ghahramani 2012) by mean-field variational
    Bayes, optionally with worker communities (Venanzi et al. 2014).

    Parameters
    ----------
    n_classes : int, optional
        Number of classes ``k``; inferred from the votes (and ``y``) when ``None``.
    communities : int or None, default=None
        ``None``: plain BCC, every worker has its own confusion matrix under a fixed prior.
        An int ``C``: community BCC — workers belong (softly) to ``C`` communities and their
        confusion rows are drawn around the community's, so workers with few votes borrow
        strength from workers like them. At most the number of sources.
    diagonal_strength : float, default=1.0
        ``d``: the prior mean confusion row of class ``c`` is ``(1 + d e_c) / (k + d)``
        ("better than chance" by one pseudo-vote; ``0`` = uniform, which leaves the label
        switching symmetry to the initialisation).
    worker_prior_strength : float or None, default=None
        ``s``: concentration of each worker's confusion-row Dirichlet, the number of
        pseudo-votes per row that a worker borrows from the prior (BCC) or from its
        community. ``None``: ``k + d``, i.e. the prior ``Dir(1 + d e_c)``.
    class_prior_strength : float, default=1.0
        ``nu_0``: the class prior is ``Dir(nu_0 * 1)`` (``1`` = uniform over the simplex).
    max_iter : int, default=500
        Maximum number of VB iterations.
    tol : float, default=1e-6
        Stop when the ELBO changes by at most ``tol * n_items``.
    tie_break : {"first", "random"}, default="first"
        Tie policy of :meth:`predict` (see :mod:`wsagg.base`).
    random_state : int, RandomState or None
        Seeds the community initialisation (k-means++) and ``tie_break="random"``.

    Attributes
    ----------
    classes_ : ndarray of shape (k,)
    n_classes_ : int
    n_sources_ : int
    source_names_ : ndarray of shape (m,)
    class_prior_ : ndarray of shape (k,)
        Distribution predicted for items without votes: the normalised
        ``exp E[log pi]`` under ``q(pi)``.
    class_prior_concentration_ : ndarray of shape (k,)
        Parameters of the variational posterior ``q(pi) = Dir(.)``.
    confusion_ : ndarray of shape (m, k, k)
        Posterior mean confusion matrices, ``confusion_[j, c, l] = E[pi_j[c, l]]``
        (row ``c``: the worker's votes on items of class ``c``).
    confusion_concentration_ : ndarray of shape (m, C, k, k)
        Parameters of the variational posteriors: ``q(pi_j[c, :] | m_j = g) =
        Dir(confusion_concentration_[j, g, c, :])``, mixed over the communities ``g`` with
        weights ``community_responsibilities_[j]``; ``C = 1`` without communities.
    community_confusion_ : ndarray of shape (C, k, k) or None
        The communities' confusion matrices ``P_m`` (MAP); ``None`` without communities.
    community_responsibilities_ : ndarray of shape (m, C) or None
        ``q(m_j = m)``, each worker's community membership; ``None`` without communities.
    community_weights_ : ndarray of shape (C,) or None
        Posterior mean community sizes ``E[rho]``; ``None`` without communities.
    worker_prior_strength_ : float
        The concentration ``s`` used.
    n_iter_ : int
        VB iterations run (after the initial one).
    converged_ : bool
    elbo_ : float
        Final evidence lower bound (with the log hyper-prior density of the community
        matrices when ``communities`` is set).
    elbo_history_ : ndarray of shape (n_iter_ + 1,)
        The ELBO after the initial update and after each iteration (never decreases).

    Notes
    -----
    Known labels ``y`` are clamped: those items' ``q(z_i)`` are one-hot throughout the fit.
    :meth:`predict_proba` applies the fitted variational posteriors to any label matrix with
    the same sources through the expected log parameters (the mean-field predictive, the
    same formula as the fit's E-step) and does not copy known labels into the output, so
    ``fit(L, y).predict_proba(L) == fit_predict_proba(L, y)``. For well-observed rows this
    agrees with plugging in the posterior means ``confusion_``; on sparsely observed rows the
    geometric mean shrinks rare outcomes (``exp psi(a) ~ a - 1/2``) more than the mean does.

    Communities are initialised by weighted k-means++ (seeded by ``random_state``) on the
    workers' smoothed confusion against the soft majority vote; VB then refines soft
    memberships. Label switching is broken by ``diagonal_strength`` and the majority-vote
    start, never by a class index, so the model is equivariant to relabelling the classes.

    Examples
    --------
    >>> import numpy as np
    >>> from wsagg.aggregation.bcc import BCC
    >>> L = np.array([[0, 0, 1], [1, 1, 1], [0, -1, 0], [1, 1, -1], [0, 0, 0]])
    >>> BCC().fit(L).predict(L)
    array([0, 1, 0, 1, 0])
    >>> BCC(communities=2, random_state=0).fit(L).community_responsibilities_.shape
    (3, 2)
    """

    _parameter_constraints: dict = {  # noqa: RUF012 (scikit-learn's convention)
        "n_classes": [Interval(Integral, 2, None, closed="left"), None],
        "communities": [Interval(Integral, 1, None, closed="left"), None],
        "diagonal_strength": [Interval(Real, 0, None, closed="left")],
        "worker_prior_strength": [Interval(Real, 0, None, closed="neither"), None],
        "class_prior_strength": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "tie_break": [StrOptions({"first", "random"})],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_classes: int | None = None,
        *,
        communities: int | None = None,
        diagonal_strength: float = 1.0,
        worker_prior_strength: float | None = None,
        class_prior_strength: float = 1.0,
        max_iter: int = 500,
        tol: float = 1e-6,
        tie_break: str = "first",
        random_state: Any = None,
    ) -> None:
        self.n_classes = n_classes
        self.communities = communities
        self.diagonal_strength = diagonal_strength
        self.worker_prior_strength = worker_prior_strength
        self.class_prior_strength = class_prior_strength
        self.max_iter = max_iter
        self.tol = tol
        self.tie_break = tie_break
        self.random_state = random_state

    # -- fitting -------------------------------------------------------------------------
    def _fit(self, lm: LabelMatrix, y: np.ndarray | None) -> None:
        n, m, k = lm.n_items, lm.n_sources, lm.n_classes
        if lm.n_votes == 0:
            raise ValueError(
                "The label matrix has no votes (every source abstains on every item); BCC has "
                "nothing to learn from. Check the abstain encoding (-1 dense, absent entries "
                "sparse)."
            )
        C = self.communities
        if C is not None and C > m:
            raise ValueError(
                f"communities={C} exceeds the number of sources ({m}); use at most {m}."
            )
        d = float(self.diagonal_strength)
        alpha0 = 1.0 + d * np.eye(k)  # BCC prior rows Dir(1 + d e_c)
        mu0 = alpha0 / alpha0.sum(axis=1, keepdims=True)
        s = self.worker_prior_strength
        s = float(k + d) if s is None else float(s)
        nu0 = np.full(k, float(self.class_prior_strength))

        V = lm.one_hot()
        Vt = V.T.tocsr()
        known_idx = np.empty(0, dtype=np.int64)
        known_lab = np.empty(0, dtype=np.int64)
        if y is not None:
            known_idx = np.flatnonzero(y >= 0)
            known_lab = y[known_idx]

        # initial posterior: the soft majority vote, known labels clamped
        counts = lm.class_counts()
        total = counts.sum(axis=1, keepdims=True)
        r = np.where(total > 0, counts / np.where(total > 0, total, 1.0), 1.0 / k)
        r[known_idx] = np.eye(k)[known_lab]
        N = _stats(Vt, r, m, k)

        if C is None:
            P = mu0[None]
            resp = np.ones((m, 1))
        else:
            rng = check_random_state(self.random_state)
            n_votes = np.bincount(lm.source, minlength=m)
            resp, P = _init_communities(N, n_votes, alpha0, C, rng)

        fit = _variational_bayes(
            V, Vt, r, N, known_idx, known_lab, resp, P, s, alpha0, nu0, C is not None,
            self.max_iter, self.tol * n,
        )
        resp, P, a = fit["resp"], fit["P"], fit["a"]
        history = fit["history"]
        self._table = fit["table"]
        self._log_prior = fit["elog_pi"]
        self.class_prior_ = softmax(fit["elog_pi"])
        self.class_prior_concentration_ = fit["nu"]
        self.confusion_concentration_ = a
        self.confusion_ = np.einsum("jm,jmcl->jcl", resp, a / a.sum(axis=3, keepdims=True))
        if C is None:
            self.community_confusion_ = None
            self.community_responsibilities_ = None
            self.community_weights_ = None
        else:
            g = 1.0 + resp.sum(axis=0)
            self.community_confusion_ = P
            self.community_responsibilities_ = resp
            self.community_weights_ = g / g.sum()
        self.worker_prior_strength_ = s
        self.n_iter_ = fit["n_iter"]
        self.converged_ = fit["converged"]
        self.elbo_history_ = np.asarray(history)
        self.elbo_ = float(history[-1])
        if not self.converged_:
            warnings.warn(
                f"BCC did not converge in max_iter={self.max_iter} iterations (last ELBO "
                f"change {history[-1] - history[-2]:.3g}, tol={self.tol} per item x {n} "
                "items). Increase max_iter or loosen tol.",
                ConvergenceWarning,
                stacklevel=user_stacklevel(),
            )

    # -- prediction ----------------------------------------------------------------------
    def _predict_proba(self, lm: LabelMatrix) -> np.ndarray:
        logits = np.asarray(lm.one_hot() @ self._table) + self._log_prior
        return softmax(logits, axis=1)


def _stats(Vt: sp.csr_matrix, r: np.ndarray, m: int, k: int) -> np.ndarray:
    """Expected vote counts ``N[j, c, l] = sum_i r[i, c] V[i, j k + l]``, shape ``(m, k, k)``."""
    return np.transpose(np.asarray(Vt @ r).reshape(m, k, k), (0, 2, 1))


def _variational_bayes(
    V: sp.csr_matrix,
    Vt: sp.csr_matrix,
    r: np.ndarray,
    N: np.ndarray,
    known_idx: np.ndarray,
    known_lab: np.ndarray,
    resp: np.ndarray,
    P: np.ndarray,
    s: float,
    alpha0: np.ndarray,
    nu0: np.ndarray,
    learn_communities: bool,
    max_iter: int,
    threshold: float,
) -> dict[str, Any]:
    """Coordinate ascent on the ELBO from the initial ``q(z) = r`` (with expected counts
    ``N``), memberships ``resp`` and community rows ``P``; without communities ``P`` is the
    fixed prior mean ``(1, k, k)`` and ``resp`` is all ones ``(m, 1)``.

    One iteration: ``q(pi)``; the communities (``q(rho)``, the joint
    ``q(m_j) q(pi_j | m_j)`` through the Dirichlet-multinomial evidence, the MAP of ``P``);
    ``q(pi_j | m_j)``; the E-step; the ELBO. Stops when the ELBO changes by at most
    ``threshold``."""
    n, k = r.shape
    m = N.shape[0]
    C = P.shape[0]
    eye = np.eye(k)
    unknown = np.ones(n, dtype=bool)
    unknown[known_idx] = False
    gamma0 = np.ones(C)
    hyper = 1.0 + alpha0  # community rows ~ Dir(1 + alpha0): mode alpha0 / sum(alpha0)
    hyper_norm = C * float((gammaln(hyper.sum(axis=1)) - gammaln(hyper).sum(axis=1)).sum())
    history: list[float] = []
    converged = False
    n_iter = 0
    for it in range(max_iter + 1):
        # -- parameters, given q(z) ----------------------------------------------------
        nu = nu0 + r.sum(axis=0)
        elog_pi = _expected_log(nu)
        if learn_communities:
            g = gamma0 + resp.sum(axis=0)
            resp = softmax(_expected_log(g)[None, :] + _log_evidence(N, P, s), axis=1)
            P = _update_communities(P, resp, _expected_log(s * P[None] + N[:, None]), s, alpha0)
        sP = s * P[None]  # (1, C, k, k)
        a = sP + N[:, None]  # (m, C, k, k): q(pi_j[c, :] | m_j = m)
        elog_m = _expected_log(a)
        elog = np.einsum("jm,jmcl->jcl", resp, elog_m)
        # -- E-step --------------------------------------------------------------------
        table = np.transpose(elog, (0, 2, 1)).reshape(m * k, k)  # [j k + l, c]
        logits = np.asarray(V @ table) + elog_pi
        log_r = log_softmax(logits, axis=1)
        lse = logits[:, 0] - log_r[:, 0]  # logsumexp over the classes
        r = np.exp(log_r)
        r[known_idx] = eye[known_lab]
        # -- ELBO (the E-step term is sum_i logsumexp_i; clamped items: their logit) ------
        elbo = float(lse[unknown].sum() + logits[known_idx, known_lab].sum())
        elbo -= float(_kl_dirichlet(nu, nu0))
        # KL(Dir(a) || Dir(sP)) per (worker, community), with a - sP = N
        kl = (
            gammaln(a.sum(axis=3)).sum(axis=2)
            - gammaln(a).sum(axis=(2, 3))
            - (k * gammaln(s) - gammaln(sP).sum(axis=(2, 3)))
            + (N[:, None] * elog_m).sum(axis=(2, 3))
        )
        elbo -= float((resp * kl).sum())
        if learn_communities:
            g = gamma0 + resp.sum(axis=0)
            elbo += float((resp @ _expected_log(g)).sum() - xlogy(resp, resp).sum())
            elbo -= float(_kl_dirichlet(g, gamma0))
            elbo += float((alpha0[None] * np.log(P)).sum()) + hyper_norm
        history.append(elbo)
        N = _stats(Vt, r, m, k)
        if it > 0:
            n_iter = it
            if abs(history[-1] - history[-2]) <= threshold:
                converged = True
                break
    return {
        "resp": resp, "P": P, "a": a, "nu": nu, "elog_pi": elog_pi, "table": table,
        "history": history, "n_iter": n_iter, "converged": converged,
    }
