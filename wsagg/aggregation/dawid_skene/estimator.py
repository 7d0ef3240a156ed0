"""Dawid-Skene EM: sparse, vectorised, MAP-smoothed, semi-supervised.

The model (Dawid & Skene 1979). Item ``i`` has a hidden class :math:`y_i \\sim
\\mathrm{Cat}(\\pi)`; source ``j``'s votes on it are drawn independently given the class,

.. math::

    P(\\lambda_{ij} = l \\mid y_i = c) = \\Theta_j[c, l], \\qquad
    P(\\text{votes}_i \\mid y_i = c) = \\prod_j \\prod_{\\text{votes } l \\text{ of } j
    \\text{ on } i} \\Theta_j[c, l].

Repeated votes of one source on one item are repeated observations (the 1979 model). How an
*abstain* enters is the ``abstain`` option:

``"ignore"``
    abstains are missing at random: their factor is omitted (crowd data, where a worker
    not seeing an item says nothing about its class).
``"model"``
    whether source ``j`` votes at all on item ``i`` is an observation with class-dependent
    probability :math:`a_j[c] = P(j \\text{ votes on } i \\mid y_i = c)`; given that it
    votes, its votes follow :math:`\\Theta_j[c, \\cdot]`. So the per-pair likelihood is
    :math:`1 - a_j[c]` for an abstain and :math:`a_j[c] \\prod_{\\text{votes}}
    \\Theta_j[c, l]` otherwise. With at most one vote per pair this is exactly the
    ``k+1``-outcome categorical of WRENCH's DS, with ``confusion_[j, c] =
    (a_j[c] \\Theta_j[c, :], 1 - a_j[c])``. This is the right model for unipolar labeling
    functions, which fire (almost) only on one class.

EM as sparse linear algebra. With ``V`` the ``(n, m k)`` one-hot vote-count matrix
(:meth:`wsagg.labels.LabelMatrix.one_hot`) and the log-parameter table
``T[j k + l, c] = log Theta_j[c, l]``, the E-step is

.. math::

    \\log q_{ic} = \\log \\pi_c + (V T)_{ic} + b_c - \\mathrm{logsumexp}_c(\\cdot),

(under ``"model"``, ``T`` also holds ``log a_j[c] - log(1 - a_j[c])`` and the constant row
``b_c = \\sum_j \\log(1 - a_j[c])`` accounts for every source abstaining, so the product
never touches the abstains), and the M-step's sufficient statistics are ``V.T @ q``: one
iteration is two sparse products, O(votes x k).

MAP-EM. Dirichlet priors make every probability positive: confusion rows
:math:`\\Theta_j[c, \\cdot] \\sim \\mathrm{Dir}(1 + s + d\\,e_c)` (``s = smoothing``,
``d = diagonal_smoothing``: a mild pull towards accurate sources), the voting rates
:math:`a_j[c] \\sim \\mathrm{Beta}(1 + s, 1 + s)` and the class prior
:math:`\\pi \\sim \\mathrm{Dir}(1 + \\beta)` (``beta = prior_smoothing``). The updates are
posterior modes, e.g. :math:`\\Theta_j[c, l] = (N_{jcl} + s + d[c = l]) / (\\sum_{l'}
N_{jcl'} + k s + d)` with :math:`N_{jcl} = \\sum_i q_{ic} V_{i, jk+l}`. The objective
``log_likelihood_`` is the observed-data log-likelihood plus the log prior densities
(constants dropped); EM never decreases it. As ``d`` grows past the sources' vote counts,
``Theta_j -> I`` and the posterior mode becomes the majority vote; ``d="auto"`` picks ``d``
by cross-validation on the known labels (``0.1`` without them), so that the fit can fall
back towards majority vote when the known items say DS is worse.

References
----------
.. [1] A. P. Dawid and A. M. Skene (1979). Maximum likelihood estimation of observer
   error-rates using the EM algorithm. JRSS C 28(1):20-28. https://doi.org/10.2307/2346806
.. [2] Y. Zhang, X. Chen, D. Zhou, M. I. Jordan (2016). Spectral methods meet EM: a provably
   optimal algorithm for crowdsourcing. JMLR 17(102).
.. [3] J. Zhang et al. (2021). WRENCH: a comprehensive benchmark for weak supervision.
   NeurIPS Datasets and Benchmarks (DS with abstain as a (k+1)-th outcome).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from wsagg import labels
from wsagg._logging import get_logger, verbose_log
from wsagg._validation import warn
from wsagg.aggregation.dawid_skene.backends import make_backend
from wsagg.aggregation.dawid_skene.backends.numpy import (
    col_sum,
    effective_n_jobs,
    resolve_dtype,
)
from wsagg.aggregation.dawid_skene.em import (
    Design,
    EMResult,
    Params,
    bind_marginal,
    binds_prior,
    build_design,
    initial_posterior,
    log_parameter_table,
    log_prior_density,
    m_step,
    one_hot,
    params_from_vector,
    params_to_vector,
    resolve_abstain,
)
from wsagg.base import BaseAggregator
from wsagg.exceptions import PriorCollapseWarning
from wsagg.labels import LabelMatrix

__all__ = ["DawidSkene", "PriorCollapseWarning"]

_log = get_logger(__name__)

_FLOOR = 1e-300  # log floor: only reached with smoothing=0 and an empty count
_COLLAPSE = 0.2  # a prior below a fifth of the reference share is a collapse
_INFLATE = 10.0  # ... above ten times the vote share (plus 0.05) an inflation
_MIN_KNOWN_FOR_SHARES = 20  # known labels needed to compare the prior with their shares
_AUTO_FALLBACK = 0.1  # diagonal_smoothing="auto" without (enough) known labels
_CV_FOLDS = 5


def _diagonal_grid(lm: LabelMatrix) -> np.ndarray:
    """Decades from 0.1 up to 10x the largest number of votes of one source: the last value
    swamps every confusion count, i.e. the model is majority vote (ties broken by the rest of
    the model)."""
    top = max(float(np.bincount(lm.source, minlength=lm.n_sources).max()), 1.0)
    return 10.0 ** np.arange(-1, int(np.ceil(np.log10(10.0 * top))) + 1)


def _cv_folds(known: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Stratified fold of each known item (-1 for unknown items): items shuffled, then dealt
    round-robin class by class."""
    idx = np.flatnonzero(known >= 0)
    rng = np.random.default_rng(seed)
    idx = idx[rng.permutation(idx.size)]
    idx = idx[np.argsort(known[idx], kind="stable")]
    fold = np.full(known.shape[0], -1, dtype=np.int64)
    fold[idx] = (np.arange(idx.size) + rng.integers(n_folds)) % n_folds
    return fold


def _select_diagonal(
    est: DawidSkene,
    lm: LabelMatrix,
    design: Design,
    known: np.ndarray,
    hp: dict[str, Any],
) -> dict[str, Any] | None:
    """``diagonal_smoothing="auto"``: K-fold cross-validation on the known items.

    For each fold and each ``d`` of :func:`_diagonal_grid`, EM runs with the other folds'
    labels clamped and the fold's labels hidden (exactly the semi-supervised fit the user
    will run, on fewer labels); the fold's items with at least one vote are scored by the
    accuracy of their posterior mode, ties broken by their log-likelihood. The ``d`` with the
    best pooled score is chosen. ``None`` (keep the fallback) with fewer than ``2 K`` known
    items.
    """
    n_known = int(np.count_nonzero(known >= 0))
    if n_known < 2 * _CV_FOLDS:
        return None
    rs = est.random_state
    seed = 0 if rs is None else int(check_random_state(rs).randint(2**31 - 1))
    fold = _cv_folds(known, _CV_FOLDS, seed)
    covered = np.diff(design.X.indptr) > 0
    grid = _diagonal_grid(lm)
    correct = np.zeros(grid.size)
    loglik = np.zeros(grid.size)
    n_scored = 0
    for f in range(_CV_FOLDS):
        held = np.flatnonzero((fold == f) & covered)
        if held.size == 0:
            continue
        n_scored += held.size
        known_f = np.where(fold == f, -1, known)
        backend = est._backend(design.X, known_f)
        q0 = initial_posterior(lm, known_f, design)
        try:
            for g, dg in enumerate(grid):
                hp_g = {**hp, "diagonal_smoothing": float(dg)}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    proba = est._em_in_memory(backend, design, q0, hp_g,
                                              known_f)[1][held]
                y_held = known[held]
                correct[g] += np.count_nonzero(proba.argmax(axis=1) == y_held)
                loglik[g] += np.log(
                    np.maximum(proba[np.arange(held.size), y_held], _FLOOR)
                ).sum()
        finally:
            backend.close()
    if n_scored == 0:
        return None
    # best accuracy; among equal accuracies the best log-likelihood
    order = np.lexsort((-loglik, -correct))
    return {
        "diagonal_smoothing": grid,
        "accuracy": correct / n_scored,
        "log_likelihood": loglik / n_scored,
        "n_folds": _CV_FOLDS,
        "n_scored": n_scored,
        "chosen": float(grid[order[0]]),
    }


class _BoundPrior:
    """The E-step of a binding fixed class prior (:func:`.em.binds_prior`) on a backend:
    the backend's E-step, then the posterior projected onto :math:`\\sum_i q_i = n\\pi`
    (:func:`.em.bind_marginal`; known items stay clamped), whose M-step statistics it
    returns. Keeps the offsets and the unclamped projected posterior of the last call."""

    def __init__(self, backend: Any, known: np.ndarray | None, prior: np.ndarray) -> None:
        self.backend = backend
        n, k = int(backend.n), prior.shape[0]
        self.target = n * prior
        self.known_idx = np.flatnonzero(known >= 0) if known is not None else np.zeros(0, int)
        self.known_y = known[self.known_idx] if known is not None else np.zeros(0, int)
        self.base = np.bincount(self.known_y, minlength=k).astype(np.float64)
        self.free = np.ones(n, dtype=bool)
        self.free[self.known_idx] = False
        self.delta = np.zeros(k)
        self.q: np.ndarray | None = None

    def e_step(self, table: np.ndarray, offset: np.ndarray) -> tuple[float, np.ndarray,
                                                                      np.ndarray]:
        from scipy.special import log_softmax

        loglik, _, _ = self.backend.e_step(table, offset)
        log_p = np.log(np.maximum(self.backend.last_posterior(), _FLOOR))
        self.delta, gap = bind_marginal(log_p[self.free], self.base, self.target)
        q = np.exp(log_softmax(log_p + self.delta, axis=1))
        self.q = q.copy()
        q[self.known_idx] = 0.0
        q[self.known_idx, self.known_y] = 1.0
        return loglik + gap, self.backend.stats(q), q.sum(axis=0)

    def last_posterior(self) -> np.ndarray:
        assert self.q is not None
        return self.q


# ----------------------------------------------------------------------------------------
# the estimator
# ----------------------------------------------------------------------------------------

_ABSTAIN = ("auto", "ignore", "model")
_MODELS = ("full", "one-coin")
_INITS = ("majority",)
_ACCELERATORS = ("squarem",)
_SQUAREM_STEP_GROWTH = 4.0  # the largest step length grows (shrinks) by this factor
_F32_TOL = 1e-6  # float32: the objective is accurate to ~1e-7 per item, so tol >= this


class DawidSkene(BaseAggregator):
    """Dawid-Skene EM aggregator (per-source confusion matrices), sparse and vectorised.

    The generative model, the two abstain modes, the MAP smoothing and the EM updates are
    given in this module's docstring; ``docs/dawid_skene.md`` has
    the full derivation and advice on which mode to use.

    Parameters
    ----------
    n_classes : int, optional
        Number of classes ``k``; inferred from the votes (and ``y``) when ``None``.
    abstain : {"auto", "ignore", "model"}, default="auto"
        ``"ignore"``: abstains are missing at random (crowd data). ``"model"``: whether a
        source votes is a class-dependent observation (labeling functions, which are
        mostly unipolar). ``"auto"``: ``"model"`` when at least half of the sources with
        5 or more votes are unipolar (99% of their votes on one class) and some pair
        (item, source) is an abstain, else ``"ignore"``; the choice is in ``abstain_``.
    model : {"full", "one-coin"}, default="full"
        ``"full"``: a ``k x k`` confusion matrix per source. ``"one-coin"``: one accuracy
        ``a_j`` per source, errors spread uniformly, ``Theta_j = a_j I + (1-a_j)/(k-1)
        (1 - I)``.
    smoothing : float, default=0.01
        Dirichlet pseudo-count ``s >= 0`` added to every confusion cell (and to both
        outcomes of the voting rate under ``abstain="model"``).
    diagonal_smoothing : float or "auto", default="auto"
        Extra pseudo-count ``d >= 0`` on the correct-class cell of each confusion row: a
        prior belief that sources are better than chance, which also breaks the
        label-switching symmetry. For ``model="one-coin"`` the accuracy gets a
        Beta(1 + s + d, 1 + (k-1) s) prior. As ``d`` grows past the sources' vote counts
        the model becomes majority vote (ties broken by the rest of the model).
        ``"auto"``: with at least 10 known labels ``y``, ``d`` is chosen by stratified
        5-fold cross-validation on the known items from the decades ``0.1, 1, 10, ...``
        up to ten times the largest number of votes of one source (the majority-vote end),
        scoring held-out accuracy (ties: held-out log-likelihood) of the semi-supervised
        fit with the other folds clamped; this costs ``5 x grid`` extra EM runs, and the
        scores are in ``cv_results_``. Without known labels ``"auto"`` means ``d = 0.1``:
        a weak prior, a tenth of a vote per confusion row, next to which any source's
        counts dominate (close to the 1979 maximum-likelihood estimate).
    shrinkage : {None, "population"}, default=None
        ``None``: each source's confusion rows get only the ``smoothing`` /
        ``diagonal_smoothing`` pseudo-counts. ``"population"`` (``model="full"`` only):
        hierarchical Dawid-Skene (Paun et al. 2018): every row has a
        :math:`\\mathrm{Dir}(\\alpha\\mu_c)` prior around the population's pooled row
        :math:`\\mu_c`, with the strength :math:`\\alpha` learned by empirical Bayes
        (Dirichlet-multinomial marginal likelihood of the expected counts) at each M-step,
        and the row estimate is the posterior mean — so a worker with five votes stays close
        to the population instead of getting a full confusion matrix of its own
        (:func:`wsagg.aggregation.dawid_skene.em.population_prior`). The learned
        :math:`\\alpha` is ``shrinkage_strength_``. With hyperparameters re-estimated inside
        EM the objective is not guaranteed to increase at every step (the loop still stops
        when it changes by less than ``tol``).
    prior_smoothing : float, default=1.0
        Dirichlet pseudo-count ``beta >= 0`` per class for the class prior.
    class_prior : array-like of shape (k,), optional
        If given, the class prior is fixed to it (positive, summing to 1) instead of being
        learned. Under ``abstain="model"`` it *binds*: the abstain terms would otherwise act
        as a free class bias that absorbs any fixed prior, so there the E-step posteriors
        are projected (posterior regularization, Ganchev et al. 2010) onto the set whose
        mean over the items is ``class_prior``; the class offsets of that projection are
        kept and applied by :meth:`predict_proba` (see
        :func:`wsagg.aggregation.dawid_skene.em.binds_prior`). In-memory fits only.
    init : {"majority"}, default="majority"
        Initial posterior: the soft majority vote (items without votes: uniform).
    n_init : int, default=1
        Number of EM runs; run 0 starts from the soft majority vote, the others from it
        mixed with Dirichlet noise (weight 0.5). The run with the best final objective is
        kept.
    max_iter : int, default=1000
        Maximum number of EM iterations (an iteration = M-step then E-step). ``0`` keeps
        the parameters of the initial M-step.
    tol : float, default=1e-7
        Stop when the objective changes by less than ``tol`` per item.
    accelerator : {None, "squarem"}, default=None
        ``None``: plain EM. ``"squarem"``: SQUAREM (Varadhan & Roland 2008, scheme S3):
        two EM steps from the current parameters, an extrapolation along them (in the
        unconstrained log / logit parameters), kept only if the MAP objective does not
        decrease, else the plain second EM step is taken instead. The objective stays
        monotone and the fit reaches the same fixed point in fewer passes over the votes
        when EM converges slowly. ``n_iter_`` then counts the kept E-steps (a rejected
        extrapolation costs one more E-step, not counted); convergence is tested on the
        plain EM steps, as without the accelerator.
    device : str, default="numpy"
        ``"numpy"`` (scipy.sparse), or a torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``)
        to run the same algorithm in torch. Results agree with numpy to rounding error.
    dtype : {np.float64, np.float32}, default=np.float64
        Floating type of the design matrix, the E-step and the posteriors during the fit
        (the sums over items are accumulated in float64 either way; the returned
        probabilities and fitted parameters are float64). ``np.float32`` halves the memory
        of the votes' values and posteriors; after the same iterations, posteriors agree
        with float64 to about ``1e-6``. The float32 objective is accurate to about ``1e-7``
        per item, so the stopping test then uses ``max(tol, 1e-6)`` (unless ``tol=0``).
        In-memory fits only
        (a partitioned fit computes in float64).
    n_jobs : int or None, default=None
        Threads for the sparse products and the E-step (row blocks; the result does not
        depend on it). On large inputs (about a million votes and more) they also convert a
        dense matrix and build the design matrix (runs of chunks), and the fit-time source
        checks run on a thread of their own beside the fit (their warnings are raised, in
        the caller's thread, when the fit ends). ``None``: what the thread-pool settings
        allow (the BLAS / OpenMP thread limits, e.g. ``OMP_NUM_THREADS`` or
        ``threadpoolctl.threadpool_limits``); ``-1``: every CPU. With a torch device:
        torch's intra-op threads during the fit.
    tie_break : {"first", "random"}, default="first"
        Tie policy of :meth:`predict`.
    random_state : int, RandomState or None
        Seeds the restarts of ``n_init`` and ``tie_break="random"``.
    verbose : int, default=0
        ``1``: one line per run; ``2``: one line per iteration. The lines are records of
        the ``wsagg.aggregation.dawid_skene.estimator`` logger (INFO per run, DEBUG per
        iteration); with no logging configured they are written to stderr.

    Attributes
    ----------
    classes_ : ndarray of shape (k,)
    n_classes_ : int
    n_sources_ : int
    source_names_ : ndarray of shape (m,)
    abstain_ : {"ignore", "model"}
        The abstain mode used (``abstain`` with ``"auto"`` resolved).
    confusion_ : ndarray of shape (m, k, k) or (m, k, k+1)
        ``confusion_[j, c, l] = P(source j votes l | class c)``; under ``abstain="model"``
        the last column is the probability of abstaining and rows sum to 1 over ``k+1``
        outcomes.
    class_prior_ : ndarray of shape (k,)
    shrinkage_strength_ : float or None
        With ``shrinkage="population"``: the learned strength :math:`\\alpha` of the
        population prior (pseudo-votes per confusion row); else ``None``.
    diagonal_smoothing_ : float
        The diagonal pseudo-count used (``diagonal_smoothing`` with ``"auto"`` resolved).
    cv_results_ : dict or None
        With ``diagonal_smoothing="auto"`` and known labels: the grid
        (``"diagonal_smoothing"``), pooled held-out ``"accuracy"`` and mean
        ``"log_likelihood"`` per grid value, ``"n_folds"``, ``"n_scored"`` and the
        ``"chosen"`` value; else ``None``.
    n_iter_ : int
        EM iterations run by the kept run.
    converged_ : bool
    log_likelihood_ : float
        Final MAP objective: observed-data log-likelihood (known labels as complete data)
        plus the log prior densities, constants dropped.
    log_likelihood_history_ : ndarray of shape (n_iter_ + 1,)
        The objective after the initial M-step and after each iteration (never decreases).

    Notes
    -----
    On labeling-function data, unsupervised EM often drifts to a fixed point where the class
    prior collapses onto a few classes (the sources are not conditionally independent); a
    :class:`PriorCollapseWarning` is emitted when the learned prior of a class falls below a
    fifth of its majority-vote share, rises above ten times it (plus 0.05), or — with at
    least 20 known labels — strays more than a factor five from the known labels' class
    shares. Pass some known labels ``y`` (semi-supervised: those items are clamped), fix
    ``class_prior``, or use :class:`~wsagg.AutoAggregator` / :class:`~wsagg.MajorityVote`.

    ``predict_proba`` is inductive: it applies the learned parameters to any label matrix
    with the same sources, and does not copy known labels into the output, so
    ``fit(L, y).predict_proba(L) == fit_predict_proba(L, y)``.

    Examples
    --------
    >>> import numpy as np
    >>> from wsagg import DawidSkene
    >>> L = np.array([[0, 0, 1], [1, 1, 1], [0, -1, 0], [1, 1, -1], [0, 0, 0]])
    >>> ds = DawidSkene(random_state=0).fit(L)
    >>> ds.predict(L)
    array([0, 1, 0, 1, 0])
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_classes": [Interval(Integral, 2, None, closed="left"), None],
        "abstain": [StrOptions(set(_ABSTAIN))],
        "model": [StrOptions(set(_MODELS))],
        "smoothing": [Interval(Real, 0, None, closed="left")],
        "diagonal_smoothing": [Interval(Real, 0, None, closed="left"), StrOptions({"auto"})],
        "shrinkage": [StrOptions({"population"}), None],
        "prior_smoothing": [Interval(Real, 0, None, closed="left")],
        "class_prior": ["array-like", None],
        "init": [StrOptions(set(_INITS))],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "accelerator": [StrOptions(set(_ACCELERATORS)), None],
        "device": [str, object],
        "dtype": "no_validation",  # checked by resolve_dtype (a numpy dtype or its name)
        "n_jobs": [Integral, None],
        "tie_break": [StrOptions({"first", "random"})],
        "random_state": ["random_state"],
        "verbose": [Interval(Integral, 0, None, closed="left"), "boolean"],
    }

    def __init__(
        self,
        n_classes: int | None = None,
        *,
        abstain: str = "auto",
        model: str = "full",
        smoothing: float = 0.01,
        diagonal_smoothing: float | str = "auto",
        shrinkage: str | None = None,
        prior_smoothing: float = 1.0,
        class_prior: Any = None,
        init: str = "majority",
        n_init: int = 1,
        max_iter: int = 1000,
        tol: float = 1e-7,
        accelerator: str | None = None,
        device: str = "numpy",
        dtype: Any = np.float64,
        n_jobs: int | None = None,
        tie_break: str = "first",
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        self.n_classes = n_classes
        self.abstain = abstain
        self.model = model
        self.smoothing = smoothing
        self.diagonal_smoothing = diagonal_smoothing
        self.shrinkage = shrinkage
        self.prior_smoothing = prior_smoothing
        self.class_prior = class_prior
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.accelerator = accelerator
        self.device = device
        self.dtype = dtype
        self.n_jobs = n_jobs
        self.tie_break = tie_break
        self.random_state = random_state
        self.verbose = verbose

    # -- validation ----------------------------------------------------------------------
    def _hyper(self, k: int) -> dict[str, Any]:
        # the parameters' types and ranges are checked by _parameter_constraints at fit
        auto_diag = isinstance(self.diagonal_smoothing, str) and self.diagonal_smoothing == "auto"
        if not auto_diag and not np.isfinite(self.diagonal_smoothing):
            raise ValueError(
                "The 'diagonal_smoothing' parameter of DawidSkene must be 'auto' or a finite "
                f"float >= 0. Got {self.diagonal_smoothing!r} instead."
            )
        if self.shrinkage is not None and self.model == "one-coin":
            raise ValueError(
                "shrinkage='population' shrinks full confusion matrices towards the "
                "population's; model='one-coin' has one accuracy per source already. Use "
                "model='full' or shrinkage=None."
            )
        prior = None
        if self.class_prior is not None:
            prior = np.asarray(self.class_prior, dtype=np.float64)
            if (
                prior.shape != (k,)
                or not np.all(np.isfinite(prior))
                or (prior <= 0).any()
                or not np.isclose(prior.sum(), 1.0)
            ):
                raise ValueError(
                    f"class_prior must be None (learned) or {k} positive probabilities summing "
                    f"to 1; got {self.class_prior!r}."
                )
            prior = prior / prior.sum()
        return {
            "abstain": self.abstain,
            "model": self.model,
            "smoothing": float(self.smoothing),
            "diagonal_smoothing": _AUTO_FALLBACK if auto_diag else float(self.diagonal_smoothing),
            "auto_diagonal": auto_diag,
            "prior_smoothing": float(self.prior_smoothing),
            "class_prior": prior,
            "shrinkage": self.shrinkage,
        }

    # -- fitting -------------------------------------------------------------------------
    def fit_predict_proba(self, L: Any, y: Any = None) -> np.ndarray:
        """``fit(L, y)`` then ``predict_proba(L)``; the posteriors come from the final E-step
        of the fit (the same numbers, without a second pass over the votes)."""
        lm, y_idx = self._validate_fit(L, y)
        try:
            return self._fit_core(lm, y_idx)
        finally:
            self._finish_source_checks()

    def _fit_threads(self, L: Any) -> int:
        """``n_jobs`` threads convert a large dense matrix (see
        :func:`wsagg.labels.as_label_matrix`)."""
        small = int(getattr(L, "size", 0) or 0) < labels.DENSE_THREADED_CELLS
        if self.device != "numpy" or small:  # (no threadpoolctl inspection for small input)
            return 1
        return effective_n_jobs(self.n_jobs)

    def _source_checks_in_background(self, lm: LabelMatrix) -> bool:
        """On another thread when the fit has more than one (``n_jobs``) and the votes are
        many: the checks' fixed cost (tens of ms) then overlaps the building of the design
        matrix and the initial posterior, which run on one thread."""
        return (lm.n_votes >= _BACKGROUND_CHECK_VOTES and self.device == "numpy"
                and effective_n_jobs(self.n_jobs) > 1)

    def _fit(self, lm: LabelMatrix, y: np.ndarray | None) -> None:
        self._fit_core(lm, y)

    def _fit_partitioned(self, L: Any, y: Any = None) -> None:
        """Map-reduce EM over partitioned votes (:mod:`.partitioned`): the same fit as in
        memory, the sums over items done by the partitions."""
        from wsagg.aggregation.dawid_skene.partitioned import fit_partitioned

        fit_partitioned(self, L, y)

    def _predict_partitioned(self, L: Any) -> Any:
        from wsagg.distributed import predict_proba

        return predict_proba(self, L)

    def _backend(self, X: Any, known: np.ndarray | None = None) -> Any:
        """The backend of ``device`` on the design ``X``, with this fit's dtype and
        threads (:meth:`_fit_core` resolves them once per fit)."""
        return make_backend(self.device, X, known, dtype=self._dtype, n_jobs=self._n_jobs,
                            colsum=self._colsum)

    def _fit_core(self, lm: LabelMatrix, y: np.ndarray | None) -> np.ndarray:
        """Fit, and return the (unclamped) posteriors of the training items.

        The design matrix is built once (:func:`.em.one_hot`, cached on ``lm``): the
        vote counts, the initial posterior, every EM run and the returned posteriors all
        read it."""
        hp = self._hyper(lm.n_classes)
        self._dtype = resolve_dtype(self.dtype)
        self._n_jobs = effective_n_jobs(self.n_jobs)
        known = None if y is None or not (y >= 0).any() else y
        one_hot(lm, self._dtype, self._n_jobs)  # (on n_jobs threads; cached on lm for
        # build_design below and for predict_proba on the same LabelMatrix)
        counts = lm.vote_counts()  # (V's column sums: shared with the source checks)
        sums = counts.ravel().astype(np.float64)
        self._start_fit(hp, counts, lm.n_items, lm.source_names)
        design = build_design(lm, self.abstain_, dtype=self._dtype)
        self._colsum = None if design.separate_presence else sums
        if hp["auto_diagonal"] and known is not None:
            cv = _select_diagonal(self, lm, design, known, hp)
            if cv is not None:
                hp["diagonal_smoothing"] = cv["chosen"]
                self.cv_results_ = cv
        self.diagonal_smoothing_ = hp["diagonal_smoothing"]
        backend = self._backend(design.X, known)
        # the soft majority vote's class totals (for the prior-collapse check below), taken
        # now so that no (n, k) array but the EM's own is alive during the EM
        mv_total = (col_sum(initial_posterior(lm, None, design, self._n_jobs))
                    if known is not None else None)
        q0: np.ndarray | None = initial_posterior(lm, known, design, self._n_jobs)
        if mv_total is None:
            mv_total = col_sum(q0)
        rng = check_random_state(self.random_state)
        best = None
        try:
            for run in range(self.n_init):
                assert q0 is not None
                q_start = q0
                if run > 0:
                    noise = rng.dirichlet(np.ones(lm.n_classes), size=lm.n_items)
                    q_start = 0.5 * q0 + 0.5 * noise
                    if known is not None:
                        idx = np.flatnonzero(known >= 0)
                        q_start[idx] = q0[idx]
                stats0, qsum0 = backend.stats(q_start), backend.sum_rows(q_start)
                del q_start
                if run == self.n_init - 1:
                    q0 = None  # (not needed any more: its memory is free for the EM)
                result, proba = self._em_from_stats(backend, design, stats0, qsum0, hp,
                                                    known)
                verbose_log(
                    _log, self.verbose, 1,
                    f"[DawidSkene] run {run}: objective {result.objective:.6f} after "
                    f"{result.n_iter} iterations, converged={result.converged}",
                )
                if best is None or result.objective > best[0].objective:
                    best = result, proba
        finally:
            backend.close()
        del backend
        self._colsum = None
        assert best is not None
        result, proba = best
        self._set_fitted(result, n_items=lm.n_items)
        if hp["class_prior"] is None:
            # class shares over the covered items: of the soft majority vote q0 and of the
            # posterior (uncovered items are uniform in q0 and follow the prior in proba)
            pred_count, n_covered = _covered_argmax_counts(proba, design.X.indptr)
            n_cov = max(n_covered, 1)
            n_unc = lm.n_items - n_covered
            label_share = None
            if known is not None:
                n_known = int(np.count_nonzero(known >= 0))
                if n_known >= _MIN_KNOWN_FOR_SHARES:
                    label_share = np.bincount(known[known >= 0], minlength=lm.n_classes) / n_known
            # (of the votes' own shares, unclamped)
            mv_share = (mv_total - n_unc / lm.n_classes) / n_cov
            # (predicted shares of a handful of items say nothing: only from 50 covered items)
            post_share = pred_count / n_cov
            self._check_prior_collapse(
                mv_share, post_share if n_cov >= 50 and known is None else None, label_share
            )
        return proba

    # The steps below are shared with the partitioned fit (.partitioned), which computes
    # the same sums over the votes partition by partition.

    def _start_fit(
        self, hp: dict[str, Any], counts: np.ndarray, n_items: int, source_names: np.ndarray
    ) -> None:
        """Checks and choices made from the ``(m, k)`` vote counts :func:`vote_counts`: no
        votes at all (error), ``abstain_`` (into ``hp``), sources that never vote (warning)."""
        n_votes = int(counts.sum())
        if n_votes == 0:
            raise ValueError(
                "The label matrix has no votes (every source abstains on every item); "
                "Dawid-Skene has nothing to learn from. Check the abstain encoding (-1 dense, "
                "absent entries sparse)."
            )
        self.abstain_ = resolve_abstain(self.abstain, counts, n_votes, n_items)
        hp["abstain"] = self.abstain_
        silent = np.flatnonzero(counts.sum(axis=1) == 0)
        if silent.size:
            warn(
                f"{silent.size} source(s) never vote (e.g. {source_names[silent[0]]!r}); "
                "their confusion matrices stay at the smoothing prior and do not affect the "
                "posteriors. Drop them to save memory.",
                UserWarning)
        self.cv_results_ = None
        self.diagonal_smoothing_ = hp["diagonal_smoothing"]

    def _em_in_memory(
        self, backend: Any, design: Design, q0: np.ndarray, hp: dict[str, Any],
        known: np.ndarray | None = None,
    ) -> tuple[EMResult, np.ndarray]:
        """:meth:`_run_em` on an in-memory backend from the posterior ``q0``; also returns
        the unclamped posterior of the last E-step."""
        return self._em_from_stats(backend, design, backend.stats(q0), backend.sum_rows(q0),
                                   hp, known)

    def _em_from_stats(
        self, backend: Any, design: Design, stats0: np.ndarray, qsum0: np.ndarray,
        hp: dict[str, Any], known: np.ndarray | None = None,
    ) -> tuple[EMResult, np.ndarray]:
        """:meth:`_em_in_memory` from the initial posterior's statistics (``known``: the
        clamped labels the backend was built with)."""
        f32 = str(getattr(backend, "dtype", "")) in ("float32", "torch.float32")
        source = _BoundPrior(backend, known, hp["class_prior"]) if binds_prior(hp) else backend
        result = self._run_em(
            source.e_step, stats0, qsum0, design, hp, backend.n,
            min_tol=_F32_TOL if f32 else 0.0,
        )
        if source is not backend:  # (the last E-step was at the kept parameters)
            result.params.prior_offset = source.delta
        return result, source.last_posterior()

    def _squarem(
        self,
        evaluate: Callable[[Params], tuple[float, np.ndarray, np.ndarray]],
        start: tuple[Params, float, np.ndarray, np.ndarray],
        design: Design,
        hp: dict[str, Any],
        threshold: float,
        name: str,
    ) -> EMResult:
        """SQUAREM (Varadhan & Roland 2008, S3 step length, monotone). Each cycle from
        ``p0`` (whose E-step is known): the plain EM step ``p1 = F(p0)`` (evaluated: its
        objective is recorded and is the convergence test), ``p2 = F(p1)`` (not evaluated),
        and in the unconstrained parameters ``x`` (:func:`.em.params_to_vector`) with
        ``r = x1 - x0``, ``v = x2 - 2 x1 + x0`` and ``a = clip(|r| / |v|, 1, a_max)`` the
        extrapolation ``x0 + 2 a r + a^2 v`` (``a = 1`` gives ``p2``). The extrapolated
        point is evaluated and kept when its objective is at least that of ``p1``; else the
        plain step ``p2`` is evaluated and kept instead. ``a_max`` starts at 1 and grows
        by 4 each time the step length hits it, shrinking by 4 after a rejection."""
        p0, obj0, s0, qs0 = start
        history = [obj0]
        step_max = 1.0
        converged = False
        n_iter = 0
        while n_iter < self.max_iter:
            p1 = m_step(s0, qs0, design, hp)
            obj1, s1, qs1 = evaluate(p1)
            n_iter += 1
            history.append(obj1)
            last = p1
            verbose_log(_log, self.verbose, 2,
                        f"[{name}]   iter {n_iter}: objective {obj1:.8f} (EM step)")
            if abs(obj1 - obj0) <= threshold:
                converged = True
                break
            if n_iter >= self.max_iter:
                break
            p2 = m_step(s1, qs1, design, hp)
            x0, x1 = params_to_vector(p0, hp), params_to_vector(p1, hp)
            r = x1 - x0
            v = params_to_vector(p2, hp) - x1 - r
            nv = float(np.linalg.norm(v))
            alpha = float(np.linalg.norm(r)) / nv if nv > 0 else 1.0
            alpha = min(max(alpha, 1.0), step_max) if np.isfinite(alpha) else 1.0
            at_max = alpha >= step_max  # (then the next cycle may take longer steps)
            plain = alpha == 1.0
            cand = p2
            if not plain:
                x = x0 + 2.0 * alpha * r + alpha**2 * v
                cand = params_from_vector(x, p0, hp) if np.all(np.isfinite(x)) else None
            obj2 = -np.inf
            if cand is not None:
                obj2, s2, qs2 = evaluate(cand)
            if plain or (np.isfinite(obj2) and obj2 >= obj1):
                if at_max:
                    step_max *= _SQUAREM_STEP_GROWTH
                how = "EM step" if plain else f"extrapolated, step {alpha:.3g}"
            else:  # the extrapolation would decrease the objective: the plain EM step
                step_max = max(1.0, step_max / _SQUAREM_STEP_GROWTH)
                cand = p2
                obj2, s2, qs2 = evaluate(cand)
                plain = True
                how = "EM step (extrapolation rejected)"
            n_iter += 1
            history.append(obj2)
            last = cand
            verbose_log(_log, self.verbose, 2,
                        f"[{name}]   iter {n_iter}: objective {obj2:.8f} ({how})")
            if plain and abs(obj2 - obj1) <= threshold:
                converged = True
                break
            p0, obj0, s0, qs0 = cand, obj2, s2, qs2
        else:
            last = p0
        return EMResult(last, np.asarray(history), n_iter, converged)

    def _run_em(
        self,
        e_step: Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray, np.ndarray]],
        stats0: np.ndarray,
        qsum0: np.ndarray,
        design: Design,
        hp: dict[str, Any],
        n_items: int,
        name: str = "DawidSkene",
        min_tol: float = 0.0,
    ) -> EMResult:
        """The EM loop, from the sufficient statistics ``X.T @ q0`` and ``q0.sum(0)`` of the
        initial posterior. ``e_step(table, offset)`` returns ``(loglik, X.T @ q, q.sum(0))``
        at the parameters of the log-parameter table (:func:`.em.log_parameter_table`),
        however the sums over the items are computed (one backend, or partitions). Stops
        when the objective changes by at most ``max(tol, min_tol) * n_items`` (``min_tol``:
        the resolution of a float32 objective; ``tol=0`` runs ``max_iter`` iterations);
        returns an :class:`EMResult`."""
        params = m_step(stats0, qsum0, design, hp)
        loglik, stats, q_sum = e_step(*log_parameter_table(params, design))
        obj = loglik + log_prior_density(params, hp)
        threshold = (max(self.tol, min_tol) if self.tol > 0 else 0.0) * n_items
        if self.accelerator == "squarem":

            def evaluate(p: Params) -> tuple[float, np.ndarray, np.ndarray]:
                ll, st, qs = e_step(*log_parameter_table(p, design))
                return ll + log_prior_density(p, hp), st, qs

            return self._squarem(evaluate, (params, obj, stats, q_sum), design, hp,
                                 threshold, name)
        history = [obj]
        converged = False
        n_iter = 0
        for n_iter in range(1, self.max_iter + 1):
            params = m_step(stats, q_sum, design, hp)
            loglik, stats, q_sum = e_step(*log_parameter_table(params, design))
            new = loglik + log_prior_density(params, hp)
            history.append(new)
            verbose_log(_log, self.verbose, 2, f"[{name}]   iter {n_iter}: objective {new:.8f}")
            if abs(new - obj) <= threshold:
                converged = True
                break
            obj = new
        return EMResult(params, np.asarray(history), n_iter, converged)

    def _set_fitted(self, result: EMResult, n_items: int) -> None:
        """The fitted attributes of the kept EM run, and a ``ConvergenceWarning`` if it hit
        ``max_iter``."""
        params, history, n_iter, converged = (
            result.params, result.history, result.n_iter, result.converged
        )
        self._params = params
        self.n_iter_ = n_iter
        self.converged_ = converged
        self.log_likelihood_history_ = np.asarray(history)
        self.log_likelihood_ = float(history[-1])
        self.class_prior_ = np.exp(params.log_prior)
        self.shrinkage_strength_ = params.shrinkage_strength
        conf = np.exp(params.log_conf)
        if params.log_vote is not None:
            vote = np.exp(params.log_vote)
            conf = np.concatenate([conf * vote[:, :, None], (1.0 - vote)[:, :, None]], axis=2)
        self.confusion_ = conf
        if not converged and self.max_iter > 0:
            warn(
                f"DawidSkene did not converge in max_iter={self.max_iter} iterations (last "
                f"objective change {history[-1] - history[-2]:.3g}, tol={self.tol} per item "
                f"x {n_items} items). Increase max_iter, loosen tol, add smoothing, or "
                "check for sources that never fire.",
                ConvergenceWarning,
            )

    def _check_prior_collapse(
        self,
        mv_share: np.ndarray,
        post_share: np.ndarray | None = None,
        label_share: np.ndarray | None = None,
    ) -> None:
        """:class:`PriorCollapseWarning` when the learned class prior disagrees with what
        the data say about the class frequencies:

        * *collapse*: the prior of a class (or its share of the predicted items,
          ``post_share``, where given) falls below a fifth of its share ``mv_share`` of the
          soft majority vote over the covered items;
        * *inflation*: the prior of a class exceeds ten times its vote share plus 0.05 (a
          class the sources almost never vote for gets a large prior: EM follows the
          sources' firing rates, not the classes);
        * with at least 20 known labels, the prior of a class is below a fifth, or above five
          times plus 0.05, of its share ``label_share`` among the known labels.
        """
        prior = self.class_prior_
        share = prior if post_share is None else np.minimum(prior, post_share)
        problems: list[tuple[int, str]] = []
        for c in np.flatnonzero((mv_share >= 0.01) & (share < _COLLAPSE * mv_share)):
            what = "prior" + (" or predicted share" if post_share is not None else "")
            problems.append((c, f"{what} {share[c]:.3g} far below its majority-vote share "
                                f"{mv_share[c]:.3g}"))
        for c in np.flatnonzero(prior > _INFLATE * mv_share + 0.05):
            problems.append((c, f"prior {prior[c]:.3g} far above its majority-vote share "
                                f"{mv_share[c]:.3g}"))
        if label_share is not None:
            bad = (prior < _COLLAPSE * label_share) | (prior > label_share / _COLLAPSE + 0.05)
            for c in np.flatnonzero(bad):
                problems.append((c, f"prior {prior[c]:.3g} vs {label_share[c]:.3g} among the "
                                    "known labels"))
        if problems:
            c, text = problems[0]
            warn(
                f"Prior collapse: the learned class prior disagrees with the data for "
                f"{len({p[0] for p in problems})} class(es) "
                f"(class {np.asarray(self.classes_)[c:c + 1].tolist()[0]!r}: "
                f"{text}). This is a degenerate fixed point, common on labeling-function "
                "data that breaks conditional independence. Pass known labels y for some "
                "items, fix class_prior, try abstain='model', or use AutoAggregator / "
                "MajorityVote.",
                PriorCollapseWarning,
            )

    # -- prediction ----------------------------------------------------------------------
    def _predict_proba(self, lm: LabelMatrix) -> np.ndarray:
        """Posteriors of ``lm``'s items, block by block (memory: the ``(n, k)`` result and
        one block's temporaries); the design is :func:`.em.one_hot`'s, cached on ``lm``
        (so ``fit(lm)`` then ``predict_proba(lm)`` on one LabelMatrix converts once)."""
        dtype = resolve_dtype(self.dtype)
        design = build_design(lm, self.abstain_, dtype=dtype)
        table, offset = log_parameter_table(self._params, design)
        # (n_jobs=None was resolved at fit: threadpoolctl's inspection costs milliseconds,
        # and the base class predicts a large matrix in many blocks)
        n_jobs = getattr(self, "_n_jobs", 1) if self.n_jobs is None else self.n_jobs
        backend = make_backend(self.device, design.X, dtype=dtype,
                               n_jobs=effective_n_jobs(n_jobs))
        try:
            return backend.posterior(table, offset)
        finally:
            backend.close()


_SHARE_BLOCK = 1 << 16  # rows per block of _covered_argmax_counts
# votes from which the source checks run beside the fit (below, their ~10-100 ms fixed cost
# is not worth a thread hand-off)
_BACKGROUND_CHECK_VOTES = 1 << 20


def _covered_argmax_counts(proba: np.ndarray, indptr: np.ndarray) -> tuple[np.ndarray, int]:
    """How many covered items (a row of the design with an entry) have each class as their
    argmax, and how many are covered: block by block (no ``(n,)`` temporaries). A block
    whose rows are all covered (the usual case) is counted without selecting them, and for
    two classes the argmax is the comparison ``q_1 > q_0`` (a tie goes to class 0, as with
    ``np.argmax``)."""
    n, k = proba.shape
    counts = np.zeros(k, dtype=np.int64)
    covered = 0
    for a in range(0, n, _SHARE_BLOCK):
        b = min(a + _SHARE_BLOCK, n)
        cov = indptr[a + 1 : b + 1] != indptr[a:b]
        n_cov = int(np.count_nonzero(cov))
        blk = proba[a:b] if n_cov == b - a else proba[a:b][cov]
        if k == 2:
            ones = int(np.count_nonzero(blk[:, 1] > blk[:, 0]))
            counts += (n_cov - ones, ones)
        else:
            counts += np.bincount(np.argmax(blk, axis=1), minlength=k)
        covered += n_cov
    return counts, covered
