r"""Matrix-completion label model: Snorkel's ``LabelModel`` (Ratner et al., AAAI 2019).

The model. Item ``i`` has a hidden class :math:`Y_i \sim \mathrm{Cat}(p)`; the sources vote
independently given the class (an abstain is a vote "nothing" that carries no factor at
prediction time). The parameter is the ``(m k, k)`` matrix of class-conditional vote
probabilities

.. math::

    \mu_{jk + l,\, c} = P(\lambda_j = l \mid Y = c), \qquad l, c \in \{0, \dots, k-1\},

whose block of source ``j`` is a ``k x k`` sub-stochastic matrix (its columns sum to the
probability of voting; the rest is the probability of abstaining). With ``V`` the ``(n, m k)``
one-hot vote matrix (:meth:`wsagg.labels.LabelMatrix.one_hot`) and ``P = diag(p)``,
conditional independence gives, for two *different* sources, the second moments

.. math::

    O = \tfrac{1}{n} V^\top V, \qquad O_{ab} = (\mu P \mu^\top)_{ab}
    \quad \text{for } a, b \text{ in different source blocks},

and the first moments :math:`o = \tfrac{1}{n} V^\top \mathbf 1 = \mu p`. The diagonal
``k x k`` blocks of ``O`` (a source with itself) do not factor and are left out: this is
the *matrix completion* view of the paper.

Inference. ``mu`` minimises Snorkel's loss

.. math::

    \mathcal L(\mu) = \big\| M \circ (O - \mu P \mu^\top) \big\|_F^2
    + \big\| \mu p - o \big\|_2^2
    + \ell_2^2 \, \| \mu - \mu_0 \|_F^2 + \tfrac{\ell_2}{2} \| \mu \|_F^2,

with ``M`` the mask that is 0 on the ``(j, j)`` blocks (and on the blocks of known-dependent
pairs ``(j, j')``, ``dependencies=``) and 1 elsewhere. The third term is Snorkel's centred
penalty around the initial value :math:`\mu_0` and the fourth the weight decay that its
optimizer applies with the same ``l2`` (both vanish at the default ``l2=0``). The initial
value is Snorkel's: :math:`\mu_0[jk + c, c] = \min(1, o_{jk+c}\, \text{prec}_j / p_c)`, zero
off the diagonal of each block (a prior that every source is correct with probability
``prec_init``, which also breaks the label-switching symmetry), and the optimisation starts
from :math:`u\,\mu_0` with one uniform draw :math:`u \in [0, 1)` from ``random_state``
(Snorkel's ``mu_init * np.random.random()``: with an integer seed the same ``u`` as Snorkel
draws). The loss and its analytic gradient

.. math::

    \nabla_\mu \mathcal L = -4\, R\, \mu P + 2\, (\mu p - o)\, p^\top
    + 2 \ell_2^2 (\mu - \mu_0) + \ell_2\, \mu,
    \qquad R = M \circ (O - \mu P \mu^\top),

go to L-BFGS (``scipy.optimize.minimize``), which solves the problem *to convergence*, where
Snorkel runs a fixed number of SGD steps (``n_epochs``, ``lr``: those knobs have no
counterpart here). The class prior is not identified by the loss (for ``k = 2``,
:math:`O_{jk} = o_j o_k^\top + p_0 p_1 d_j d_k^\top` with :math:`d_j` the difference of
the two columns of block ``j``: any ``p`` fits equally well), so it is given, taken from known
labels, uniform (Snorkel's default), or, with ``class_balance="learned"``, the maximiser of
the profile likelihood :math:`\ell(p) = \sum_i \log \sum_c p_c \prod_j
P(\lambda_{ij} \mid Y = c; \mu(p))` of the whole label matrix — abstains included, with
probability :math:`1 - \sum_l \mu_{jk+l, c}` (clipped to ``mu_eps``). Here :math:`\mu(p)`
is a loss minimiser at prior ``p`` in closed form: with :math:`\mu_u` the solution at the
uniform prior :math:`p_u`, :math:`\mu(p) = \mu_u P_u^{1/2} Q P^{-1/2}` with ``Q`` the
rotation taking :math:`\sqrt p` to :math:`\sqrt{p_u}` leaves :math:`\mu P \mu^\top` and
:math:`\mu p` unchanged (for ``k > 2`` the loss has a continuum of minimisers; this is the
one closest to :math:`\mu_u`). The softmax logits of ``p`` are fitted by L-BFGS with
finite differences, one pass over the votes per evaluation.

After the solve, as in Snorkel, ``mu`` is clipped to ``[mu_eps, 1 - mu_eps]`` and the
columns of classes of equal prior are permuted (Hungarian algorithm) to the assignment that
maximises :math:`\sum_j \sum_c P(\lambda_j = c, Y = c)` — the solution that trusts the
sources most; with known labels, to the relabelling under which they are likeliest (then
solved again when the prior is fixed).

Prediction is the conditional-independence product over the votes (abstains omitted):

.. math::

    P(Y_i = c \mid \lambda_i) \propto p_c \prod_{\text{votes } l \text{ of } j \text{ on } i}
    \mu_{jk + l,\, c},

one sparse product :math:`V \log \mu` and a log-sum-exp per item; items without votes get
``p``. Cost: ``O = V^T V`` is one pass over the votes (O(sum over items of votes^2)); each
loss evaluation is O((m k)^2 k), independent of ``n``.

References
----------
.. [1] A. Ratner, B. Hancock, J. Dunnmon, F. Sala, S. Pandey, C. Ré (2019). Training complex
   models with multi-task weak supervision. AAAI 33:4763-4771. arXiv:1810.02840.
.. [2] Snorkel 0.9/0.10, ``snorkel.labeling.model.LabelModel``
   (https://github.com/snorkel-team/snorkel).
"""

from __future__ import annotations

import sys
import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment, minimize
from scipy.special import logsumexp, softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from wsagg._validation import resolve_class_balance
from wsagg.base import BaseAggregator
from wsagg.labels import LabelMatrix

__all__ = ["MatrixCompletion"]


def _user_stacklevel() -> int:
    """``stacklevel`` that points a warning at the first frame outside wsagg (the user's
    ``fit`` call), counted from the caller of this function."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] == "wsagg":
        frame = frame.f_back
        level += 1
    return level


def _moments(lm: LabelMatrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``O = V^T V / n`` (dense ``(m k, m k)``), first moments ``V^T 1 / n`` and the coverage
    of each source (share of items with at least one of its votes)."""
    n, m, k = lm.n_items, lm.n_sources, lm.n_classes
    V = lm.one_hot()
    O = np.asarray((V.T @ V).toarray(), dtype=np.float64) / n
    first = np.asarray(V.sum(axis=0)).ravel() / n
    blocks = sp.csr_matrix(
        (np.ones(m * k), (np.arange(m * k), np.arange(m * k) // k)), shape=(m * k, m)
    )
    voted = V @ blocks  # (n, m) votes per item and source
    coverage = np.asarray((voted > 0).sum(axis=0)).ravel() / n
    return O, first, coverage


def _mask(m: int, k: int, dependencies: list[tuple[int, int]]) -> np.ndarray:
    """1 on the entries of ``O`` that the model explains, 0 on the ``(j, j)`` blocks and on
    the blocks of known-dependent pairs."""
    src = np.arange(m * k) // k
    M = (src[:, None] != src[None, :]).astype(np.float64)
    if dependencies:
        dep = np.zeros((m, m), dtype=bool)
        a, b = np.asarray(dependencies, dtype=np.int64).T
        dep[a, b] = dep[b, a] = True
        M[dep[src[:, None], src[None, :]]] = 0.0
    return M


class _Loss:
    """Snorkel's loss (module docstring) and its gradient in float64, on the flat vector of
    ``mu`` at the class prior ``p`` (an attribute, updated by the class-balance fit); scaled
    by ``1 / scale`` so that L-BFGS's tolerances are relative."""

    def __init__(
        self, O: np.ndarray, first: np.ndarray, M: np.ndarray, mu_init: np.ndarray, l2: float
    ) -> None:
        self.O, self.o, self.M, self.mu_init, self.l2 = O, first, M, mu_init, l2
        self.d, self.k = mu_init.shape
        self.p = np.full(self.k, 1.0 / self.k)
        self.scale = 1.0

    def raw(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        mu, p = x.reshape(self.d, self.k), self.p
        R = self.M * (self.O - (mu * p) @ mu.T)
        r = mu @ p - self.o
        diff = mu - self.mu_init
        loss = (
            float(np.sum(R * R) + r @ r)
            + self.l2**2 * float(np.sum(diff * diff))
            + 0.5 * self.l2 * float(np.sum(mu * mu))
        )
        grad = -4.0 * (R @ mu) * p + 2.0 * np.outer(r, p) + 2.0 * self.l2**2 * diff + self.l2 * mu
        return loss, grad.ravel()

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        loss, grad = self.raw(x)
        return loss / self.scale, grad / self.scale


class _Solver:
    """L-BFGS solves of the loss, counting iterations and recording the loss history."""

    def __init__(self, loss: _Loss, max_iter: int, tol: float) -> None:
        self.loss, self.max_iter, self.tol = loss, max_iter, tol
        self.history: list[float] = []
        self.n_iter = 0
        self.converged = True

    def solve(self, x0: np.ndarray) -> np.ndarray:
        f0 = self.loss.raw(x0)[0]
        self.loss.scale = f0 if f0 > 0 else 1.0
        self.history.append(f0)

        def record(intermediate_result: Any) -> None:
            self.history.append(float(intermediate_result.fun) * self.loss.scale)

        res = minimize(
            self.loss,
            x0,
            jac=True,
            method="L-BFGS-B",
            callback=record,
            options={
                "maxiter": self.max_iter, "ftol": self.tol, "gtol": self.tol, "maxcor": 20
            },
        )
        self.n_iter += int(res.nit)
        self.converged &= bool(res.nit < self.max_iter)
        return np.asarray(res.x, dtype=np.float64)


def _permutation(score: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``perm`` with new class ``c`` = old class ``perm[c]``, maximising
    ``sum_c score[c, perm[c]]`` among the permutations within groups of classes of equal
    prior (rounded to 3 decimals, as Snorkel does)."""
    k = p.shape[0]
    perm = np.arange(k)
    rounded = np.round(p, 3)
    for value in np.unique(rounded):
        group = np.flatnonzero(rounded == value)
        if group.size < 2:
            continue
        rows, cols = linear_sum_assignment(score[np.ix_(group, group)], maximize=True)
        perm[group[rows]] = group[cols]
    return perm


class MatrixCompletion(BaseAggregator):
    r"""Snorkel's matrix-completion label model, solved to convergence by L-BFGS.

    The model, the loss and the algorithm are in the module docstring of
    :mod:`wsagg.aggregation.matrix_completion`; ``docs/aggregators/matrix_completion.md``
    has the derivation and advice on when to use it.

    Parameters
    ----------
    n_classes : int, optional
        Number of classes ``k``; inferred from the votes (and ``y``) when ``None``.
    class_balance : {"auto", "uniform", "learned"} or array-like of shape (k,), default="auto"
        The class prior ``p``. ``"auto"``: the class shares of the known labels ``y`` when
        some are given (Snorkel's ``Y_dev`` rule; add-one smoothed when a class is missing
        from them), else uniform (Snorkel's default). ``"uniform"``: ``1/k``.
        ``"learned"``: the maximiser of the profile likelihood of the votes and abstains
        (module docstring; no extra solve when ``l2 = 0``).
        An array: that distribution (positive, summing to 1).
    prec_init : float or array-like of shape (m,), default=0.7
        Snorkel's prior precision of each source, ``P(Y = c | lambda_j = c)``, that sets
        the initial value ``mu_0`` (and the centre of the ``l2`` penalty).
    l2 : float, default=0.0
        Snorkel's ``l2``: the centred penalty ``l2**2 ||mu - mu_0||^2`` plus the weight
        decay ``(l2 / 2) ||mu||^2`` its optimizer applies.
    mu_eps : float, optional
        ``mu`` is clipped to ``[mu_eps, 1 - mu_eps]`` after the solve; ``None``: Snorkel's
        ``min(0.01, 10 ** -ceil(log10 n))``.
    dependencies : list of (int, int), optional
        Pairs of sources known to be dependent given the class: their cross blocks of ``O``
        are left out of the loss (see Notes).
    max_iter : int, default=1000
        Maximum number of L-BFGS iterations.
    tol : float, default=1e-12
        L-BFGS stops when the loss, relative to its initial value, changes by less than
        ``tol`` per iteration or its largest scaled gradient entry is below ``tol``.
    tie_break : {"first", "random"}, default="first"
        Tie policy of :meth:`predict`.
    random_state : int, RandomState or None
        Draws the scale ``u`` of the starting point ``u mu_0`` (with an int, Snorkel's
        ``seed``) and seeds ``tie_break="random"``.

    Attributes
    ----------
    classes_ : ndarray of shape (k,)
    n_classes_ : int
    n_sources_ : int
    source_names_ : ndarray of shape (m,)
    class_prior_ : ndarray of shape (k,)
        The class prior ``p`` used (given, from ``y``, uniform or learned).
    mu_ : ndarray of shape (m, k + 1, k)
        ``mu_[j, l, c] = P(lambda_j = l | Y = c)`` for ``l < k`` (clipped to
        ``[mu_eps, 1 - mu_eps]``), and ``mu_[j, k, c] = 1 - sum_l mu_[j, l, c]``, the
        implied probability of abstaining (not clipped: it can be slightly negative when
        the moments are noisy). ``mu_[:, :k].reshape(m * k, k)`` is Snorkel's
        ``LabelModel.mu``; ``np.roll(mu_, 1, axis=1)`` is its ``get_conditional_probs()``
        (abstain row first).
    source_accuracy_ : ndarray of shape (m,)
        ``sum_c mu_[j, c, c] p_c / coverage_j``, clipped to ``[1e-6, 1]``: the probability
        that a vote of ``j`` is correct (Snorkel's ``get_weights()``); NaN for a source
        that never votes.
    loss_ : float
        Final value of the loss (unscaled: Snorkel's ``train/loss`` at the optimum).
    loss_history_ : ndarray of shape (n_iter_ + n_solves,)
        The loss at the starting point and after each L-BFGS iteration of each solve, the
        solves concatenated (one solve, unless ``class_balance="learned"`` or the
        relabelling by known labels ran more).
    n_iter_ : int
        L-BFGS iterations run, over all solves.
    converged_ : bool
        Whether every solve stopped before ``max_iter`` (and the class-balance search
        converged).

    Notes
    -----
    Snorkel's ``LabelModel.fit(L, n_epochs=..., lr=..., seed=...)`` takes ``n_epochs``
    steps of SGD with momentum on the same loss (in float32) and usually stops short of its
    minimum; this estimator minimises it, so its ``mu_`` is the limit that Snorkel's
    approaches as ``n_epochs`` grows (for the same seed, hence the same starting point).

    Known labels ``y`` are used twice: for the class prior (``class_balance="auto"``) and to
    resolve the label-switching ambiguity, instead of Snorkel's "the sources are accurate"
    heuristic: the relabelling of the columns of ``mu`` (any permutation, Hungarian
    algorithm) under which the known items are most likely is applied and, when the prior
    is fixed, the loss is solved again from the relabelled solution. So sources that are
    worse than random are recognised as such from a few labels. The labels are not clamped:
    the loss only sees moments of the votes.

    ``dependencies`` is a simplification of the paper's junction-tree handling: the paper
    (and Snorkel's ``higher_order`` path, unused by its public API) adds clique indicator
    columns and fits the higher-order moments; here the cross blocks of dependent pairs are
    only left out of the loss, which removes the bias that the dependency puts into them,
    and prediction keeps the conditional-independence product.

    Repeated votes are counted: ``O`` and the first moments are sums of vote counts, and
    each vote contributes its factor to the posterior. At least 3 sources are needed (the
    model is not identifiable with fewer).

    Examples
    --------
    >>> import numpy as np
    >>> from wsagg.aggregation.matrix_completion import MatrixCompletion
    >>> L = np.array([[0, 0, 1], [1, 1, 1], [0, -1, 0], [1, 1, -1], [0, 0, 0], [1, 0, 1]])
    >>> mc = MatrixCompletion(random_state=0).fit(L)
    >>> mc.predict(L)
    array([0, 1, 0, 1, 0, 1])
    """

    _parameter_constraints: dict = {  # noqa: RUF012 (scikit-learn's convention)
        "n_classes": [Interval(Integral, 2, None, closed="left"), None],
        "class_balance": [StrOptions({"auto", "uniform", "learned"}), "array-like"],
        "prec_init": [Interval(Real, 0, 1, closed="both"), "array-like"],
        "l2": [Interval(Real, 0, None, closed="left")],
        "mu_eps": [Interval(Real, 0, 0.5, closed="left"), None],
        "dependencies": ["array-like", None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "tie_break": [StrOptions({"first", "random"})],
        "random_state": ["random_state"],
    }

    # a k x k block of mu per source (vote rates included), for the base's sparse-source
    # check
    _source_parameters = staticmethod(lambda k: k * k)

    def __init__(
        self,
        n_classes: int | None = None,
        *,
        class_balance: Any = "auto",
        prec_init: Any = 0.7,
        l2: float = 0.0,
        mu_eps: float | None = None,
        dependencies: Any = None,
        max_iter: int = 1000,
        tol: float = 1e-12,
        tie_break: str = "first",
        random_state: Any = None,
    ) -> None:
        self.n_classes = n_classes
        self.class_balance = class_balance
        self.prec_init = prec_init
        self.l2 = l2
        self.mu_eps = mu_eps
        self.dependencies = dependencies
        self.max_iter = max_iter
        self.tol = tol
        self.tie_break = tie_break
        self.random_state = random_state

    # -- validation ----------------------------------------------------------------------
    def _prior(self, k: int, y: np.ndarray | None) -> np.ndarray | None:
        """The fixed class prior, or ``None`` when it is learned."""
        return resolve_class_balance(self.class_balance, k, y)

    def _precisions(self, m: int) -> np.ndarray:
        prec = np.asarray(self.prec_init, dtype=np.float64)
        if prec.ndim == 0:
            prec = np.full(m, float(prec))
        if prec.shape != (m,) or not np.all((prec >= 0) & (prec <= 1)):
            raise ValueError(
                f"prec_init must be a float in [0, 1] or {m} such values (one per source); "
                f"got {self.prec_init!r}."
            )
        return prec

    def _dependencies(self, m: int) -> list[tuple[int, int]]:
        if self.dependencies is None:
            return []
        dep = np.asarray(self.dependencies)
        if dep.size == 0:
            return []
        if (
            dep.ndim != 2
            or dep.shape[1] != 2
            or dep.dtype.kind not in "iu"
            or (dep < 0).any()
            or (dep >= m).any()
            or (dep[:, 0] == dep[:, 1]).any()
        ):
            raise ValueError(
                "dependencies must be a list of (j, j') pairs of distinct source indices in "
                f"0..{m - 1}; got {self.dependencies!r}."
            )
        return [(int(a), int(b)) for a, b in dep]

    # -- fitting -------------------------------------------------------------------------
    def _fit(self, lm: LabelMatrix, y: np.ndarray | None) -> None:
        n, m, k = lm.n_items, lm.n_sources, lm.n_classes
        if m < 3:
            raise ValueError(
                f"MatrixCompletion needs at least 3 sources (got {m}): with fewer the "
                "class-conditional probabilities are not identifiable from the votes."
            )
        if lm.n_votes == 0:
            raise ValueError(
                "The label matrix has no votes (every source abstains on every item); "
                "there is nothing to learn from. Check the abstain encoding."
            )
        known = y if y is not None and (y >= 0).any() else None
        p_fixed = self._prior(k, known)
        learned = p_fixed is None
        p = np.full(k, 1.0 / k) if learned else p_fixed
        prec = self._precisions(m)
        deps = self._dependencies(m)
        O, first, coverage = _moments(lm)
        d = m * k
        mu_init = np.zeros((d, k))
        rows = np.arange(d)
        cls = rows % k
        mu_init[rows, cls] = np.clip(first * prec[rows // k] / p[cls], 0.0, 1.0)
        rng = check_random_state(self.random_state)
        mu_start = mu_init * rng.random_sample()  # Snorkel: mu_init * np.random.random()
        eps = self.mu_eps if self.mu_eps is not None else min(0.01, 10.0 ** -np.ceil(np.log10(n)))

        loss = _Loss(O, first, _mask(m, k, deps), mu_init, float(self.l2))
        loss.p = p
        solver = _Solver(loss, int(self.max_iter), float(self.tol))
        x = solver.solve(mu_start.ravel())
        balance_converged = True
        if learned:
            x, p, balance_converged = _learn_balance(solver, x, lm, eps)

        # label switching
        mu = np.clip(x.reshape(d, k), eps, 1.0 - eps)
        if known is not None:  # the relabelling under which the known items are likeliest
            idx = np.flatnonzero(known >= 0)
            logq = _log_posterior(lm.take_items(idx).one_hot(), mu, p)
            score = np.eye(k)[known[idx]].T @ logq  # [c, c']: sum log q_c' over items of c
            perm = _permutation(score, np.zeros(k))  # any permutation
            if not np.array_equal(perm, np.arange(k)):
                if learned:  # an exact symmetry: the prior follows the columns
                    x, p = x.reshape(d, k)[:, perm].ravel(), p[perm]
                else:  # the prior is fixed: re-solve from the relabelled solution
                    x = solver.solve(x.reshape(d, k)[:, perm].ravel())
        else:  # Snorkel: trust the sources most, among classes of equal prior
            score = mu.reshape(m, k, k).sum(axis=0) * p  # sum_j P(lambda_j = l, Y = c)
            perm = _permutation(score, np.zeros(k) if learned else p)
            x, p = x.reshape(d, k)[:, perm].ravel(), p[perm]
        mu = np.clip(x.reshape(d, k), eps, 1.0 - eps)
        loss.p = p
        self.loss_ = float(loss.raw(x)[0])
        self.loss_history_ = np.asarray(solver.history, dtype=np.float64)
        self.n_iter_ = solver.n_iter
        self.converged_ = bool(solver.converged and balance_converged)
        if not self.converged_:
            what = (
                f"L-BFGS reached max_iter={self.max_iter}"
                if not solver.converged
                else "the class-balance search did not converge"
            )
            warnings.warn(
                f"MatrixCompletion: {what} before converging (final loss {self.loss_:.3e}); "
                "increase max_iter or tol.",
                ConvergenceWarning,
                stacklevel=_user_stacklevel(),
            )

        blocks = mu.reshape(m, k, k)
        self.mu_ = np.concatenate([blocks, 1.0 - blocks.sum(axis=1, keepdims=True)], axis=1)
        correct = np.einsum("jcc,c->j", blocks, p)
        with np.errstate(divide="ignore", invalid="ignore"):
            acc = np.where(coverage > 0, correct / np.where(coverage > 0, coverage, 1.0), np.nan)
        self.source_accuracy_ = np.where(np.isnan(acc), np.nan, np.clip(acc, 1e-6, 1.0))
        self.class_prior_ = p

    def _predict_proba(self, lm: LabelMatrix) -> np.ndarray:
        k = self.n_classes_
        mu = self.mu_[:, :k, :].reshape(self.n_sources_ * k, k)
        return np.exp(_log_posterior(lm.one_hot(), mu, self.class_prior_))


_BALANCE_P_MIN = 1e-3  # a learned class share stays at least this large


def _reprior(mu_u: np.ndarray, p_u: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The minimiser of the loss at prior ``p`` from one at prior ``p_u`` (``l2 = 0``):
    ``mu_u T`` with ``T = P_u^(1/2) Q P^(-1/2)`` and ``Q`` the rotation in the plane of
    ``sqrt(p)`` and ``sqrt(p_u)`` that maps the first onto the second. Then
    ``T P T^T = P_u`` and ``T p = p_u``, so ``mu P mu^T`` and ``mu p`` — all the loss sees —
    are unchanged."""
    a, b = np.sqrt(p), np.sqrt(p_u)
    s = a + b
    Q = np.eye(p.shape[0]) - np.outer(s, s) / (1.0 + a @ b) + 2.0 * np.outer(b, a)
    return mu_u @ (b[:, None] * Q / a[None, :])


def _learn_balance(
    solver: _Solver, x: np.ndarray, lm: LabelMatrix, eps: float
) -> tuple[np.ndarray, np.ndarray, bool]:
    """``class_balance="learned"``: the prior ``p`` that maximises the likelihood of the
    votes *and abstains* under the conditional-independence model with ``mu(p)``, a loss
    minimiser at prior ``p`` (a profile likelihood: the minimum of the loss does not depend
    on ``p``). ``mu(p)`` is :func:`_reprior` of the solution at the uniform prior, so an
    evaluation is one pass over the votes; the softmax logits of ``p`` are fitted by L-BFGS
    with finite-difference gradients. With ``l2 > 0`` (which breaks the invariance) the loss
    is solved again at the chosen prior, from ``mu(p)``. Returns the solution, the prior and
    whether the search converged."""
    m, k = lm.n_sources, lm.n_classes
    V = lm.one_hot()
    blocks = sp.csr_matrix(
        (np.ones(m * k), (np.arange(m * k), np.arange(m * k) // k)), shape=(m * k, m)
    )
    present = (V @ blocks).astype(bool).astype(np.float64)  # (n, m): j voted on i
    p_u = solver.loss.p.copy()
    mu_u = x.reshape(m * k, k)
    lo = np.log(_BALANCE_P_MIN)

    def neg_loglik(theta: np.ndarray) -> float:
        p = np.clip(softmax(theta), _BALANCE_P_MIN, None)
        p = p / p.sum()
        mu = np.clip(_reprior(mu_u, p_u, p), eps, 1.0 - eps)
        log_abst = np.log(np.clip(1.0 - mu.reshape(m, k, k).sum(axis=1), eps, 1.0))  # (m, k)
        logits = (
            np.asarray(V @ np.log(mu)) - np.asarray(present @ log_abst)
            + (np.log(p) + log_abst.sum(axis=0))
        )
        return -float(logsumexp(logits, axis=1).sum()) / lm.n_items

    res = minimize(
        neg_loglik,
        np.zeros(k),
        method="L-BFGS-B",
        bounds=[(lo, -lo)] * k,
        options={"maxiter": 200, "ftol": 1e-12, "gtol": 1e-8},
    )
    p = np.clip(softmax(res.x), _BALANCE_P_MIN, None)
    p = p / p.sum()
    x_p = _reprior(mu_u, p_u, p).ravel()
    solver.loss.p = p
    if solver.loss.l2 > 0:
        x_p = solver.solve(x_p)
    return x_p, p, bool(res.nit < 200)


def _log_posterior(V: sp.csr_matrix, mu: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``log P(Y = c | votes)``: ``V log mu + log p``, normalised per row."""
    logits = np.asarray(V @ np.log(mu)) + np.log(p)
    return logits - logsumexp(logits, axis=1, keepdims=True)
