r"""Triplet method: FlyingSquid's closed-form label model (Fu et al., ICML 2020).

The model (binary). Item ``i`` has a hidden class :math:`Y_i \in \{-1, +1\}` with
:math:`P(Y = +1) = p`; each source ``j`` votes :math:`\lambda_{ij} \in \{-1, +1\}` or
abstains (:math:`\lambda_{ij} = 0`). Abstains are independent of the class (FlyingSquid's
:math:`P(\lambda_j = 0, Y) = P(\lambda_j = 0) P(Y)`), and the votes are independent given
the class with a symmetric accuracy :math:`a_j = E[\lambda_j Y \mid j \text{ votes}]`. Then,
for two sources that both vote on an item,

.. math::

    M_{jk} = E[\lambda_j \lambda_k \mid j, k \text{ vote}]
    = E[\lambda_j Y \lambda_k Y] = a_j a_k \quad (Y^2 = 1),

and any triplet of distinct sources gives the accuracy in closed form,

.. math::

    |a_i| = \sqrt{\left| \frac{M_{ij} M_{ik}}{M_{jk}} \right|}.

Inference. :math:`M` is computed from the votes, each pair's moment over the items on
which both vote ("conditioning on votes": FlyingSquid's moments average over all items with
abstains as 0, which equals :math:`c_j c_k a_j a_k` only when sources vote independently of
each other; conditioning on the co-votes removes the coverage terms and suits crowd data
where who votes on what is arbitrary). Every triplet ``(i; j, k)`` whose three pairs share at
least ``min_overlap`` items and with :math:`|M_{jk}| \ge 10^{-3}` gives an estimate of
:math:`|a_i|` (clipped to 1); the estimates of a source are combined by their median (or
mean) — FlyingSquid uses one greedily chosen triplet per source. The signs: by default
(``sign_recovery="all_positive"``) FlyingSquid's assumption that every source is better than
random, :math:`a_j \ge 0`; with ``"mean_positive"`` the relative signs are those of the
leading eigenvector of :math:`M` (its diagonal set to :math:`a_i^2`) and the global sign makes
the sources better than random on average, :math:`\sum_j a_j > 0` (with known labels: the
sign that agrees with them).

Given :math:`a_j`, the share :math:`q_j = P(\lambda_j = +1 \mid j \text{ votes})` of its
votes and the class balance :math:`p`, the joint table of :math:`(Y, \lambda_j)` given a
vote is FlyingSquid's solution of its linear system,

.. math::

    J_j(+,+) = \tfrac12\big(q_j + p + \tfrac{1 + a_j}{2} - 1\big), \quad
    J_j(-,+) = q_j - J_j(+,+), \quad J_j(+,-) = p - J_j(+,+), \quad
    J_j(-,-) = \tfrac{1 + a_j}{2} - J_j(+,+),

with negative cells flipped to their absolute value and the table renormalised (its
``flip_negative``). Prediction is the conditional-independence product,

.. math::

    P(Y_i = y \mid \lambda_i) \propto P(Y = y) \prod_{j \text{ votes on } i}
    P(\lambda_{ij} \mid Y = y, j \text{ votes}),

in log space by one sparse product over the votes; items without votes get the class
balance.

More than two classes: one binary problem per class ``c`` (:math:`\lambda^c = +1` for a vote
``c``, ``-1`` for any other vote), each solved as above with balance :math:`p_c`, and the
``k`` posteriors :math:`P(Y^c = +1 \mid \lambda^c)` renormalised to sum to 1. This
one-vs-rest reduction is a heuristic: the symmetric-accuracy assumption rarely holds for
"class ``c`` against the rest", and the ``k`` problems are not a joint model. For ``k = 2``
the two problems mirror each other and the result is the binary model exactly.

Cost: the pair moments are ``k`` sparse products over the votes (O(sum over items of
votes^2)); the triplet work is O(m^3) per class, with at most ``max_pairs`` triplets per
source (sampled with ``random_state`` beyond that, or when there are more than 4 million).

References
----------
.. [1] D. Y. Fu, M. F. Chen, F. Sala, S. M. Hooper, K. Fatahalian, C. Ré (2020). Fast and
   three-rious: speeding up weak supervision with triplet methods. ICML, PMLR 119:3280-3291.
   arXiv:2002.11955.
.. [2] FlyingSquid, ``flyingsquid.label_model.LabelModel``
   (https://github.com/HazyResearch/flyingsquid).
"""

from __future__ import annotations

import sys
import warnings
from numbers import Integral
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import log_expit, logsumexp
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from wsagg._validation import resolve_class_balance
from wsagg.base import BaseAggregator
from wsagg.labels import LabelMatrix

__all__ = ["Triplet"]

_MIN_MOMENT = 1e-3  # |M_jk| below this: the triplet's ratio is noise, skip it
_EPS = 1e-6  # floor of a conditional probability (a zero would veto a class)
_GRAM_MAX_ENTRIES = 2.5e7  # (m k)^2 up to this: the pair moments from one Gram matrix
_ENUMERATE_MAX_TRIPLETS = 4e6  # up to this many valid triplets: enumerate them all
_ENUMERATE_MAX_M = 400  # ... and up to this many sources (an m^3 boolean cube)
_P_CLIP = 1e-3  # a learned class balance stays in [_P_CLIP, 1 - _P_CLIP]


def _user_stacklevel() -> int:
    """``stacklevel`` that points a warning at the first frame outside wsagg (the user's
    ``fit`` call), counted from the caller of this function."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] == "wsagg":
        frame = frame.f_back
        level += 1
    return level


def _pair_moments(lm: LabelMatrix) -> tuple[np.ndarray, np.ndarray]:
    """Per class ``c``: ``S[c, j, k] = sum_i lambda^c_ij lambda^c_ik`` over the items where
    both vote (repeated votes: every pair of votes), and the co-vote counts ``N[j, k]``.

    With ``V^c`` the ``(n, m)`` votes for ``c`` and ``B = sum_c V^c`` all votes,
    ``lambda^c = 2 V^c - B``, so ``S[c] = 4 V^c'V^c - 2 V^c'B - 2 B'V^c + B'B``: blocks of
    the one Gram matrix ``V^T V`` of the one-hot votes (or, when that ``(m k)^2`` matrix
    would be large, ``2 k + 1`` products of ``(n, m)`` matrices)."""
    n, m, k = lm.n_items, lm.n_sources, lm.n_classes
    V = lm.one_hot()
    if (m * k) ** 2 <= _GRAM_MAX_ENTRIES:
        G = np.asarray((V.T @ V).toarray(), dtype=np.float64).reshape(m, k, m, k)
        N = G.sum(axis=(1, 3))
        A = np.einsum("jckc->cjk", G)  # A[c] = V^c' V^c
        E = np.transpose(G.sum(axis=3), (1, 0, 2))  # E[c] = V^c' B
    else:
        V = V.tocsc()
        B = sp.csr_matrix((np.ones(lm.n_votes), (lm.item, lm.source)), shape=(n, m))
        N = np.asarray((B.T @ B).toarray(), dtype=np.float64)
        A = np.empty((k, m, m))
        E = np.empty((k, m, m))
        for c in range(k):  # loop over classes
            Vc = V[:, np.arange(m) * k + c]
            A[c] = (Vc.T @ Vc).toarray()
            E[c] = (Vc.T @ B).toarray()
    S = 4.0 * A - 2.0 * E - 2.0 * np.transpose(E, (0, 2, 1)) + N[None]
    return S, N


def _triplets(valid: np.ndarray, max_pairs: int, rng: np.random.RandomState) -> np.ndarray:
    """``(T, 3)`` triplets ``(i, j, k)``, ``j < k``, all distinct, whose three pairs are
    valid; at most ``max_pairs`` per ``i`` (a uniform sample beyond that).

    All are enumerated when there are few enough (``_ENUMERATE_MAX_TRIPLETS``, and ``m`` at
    most ``_ENUMERATE_MAX_M`` for the boolean ``m^3`` cube); otherwise each source draws
    ``4 max_pairs`` pairs among its valid partners (with replacement) and keeps the valid
    ones."""
    m = valid.shape[0]
    A = valid.astype(np.float64)
    n_valid = float(((A @ A) * A).sum()) / 2.0  # triangles through each vertex, summed
    if m <= _ENUMERATE_MAX_M and n_valid <= _ENUMERATE_MAX_TRIPLETS:
        upper = np.triu(valid, 1)
        i, j, kk = np.nonzero(valid[:, :, None] & valid[:, None, :] & upper[None, :, :])
        trip = np.stack([i, j, kk], axis=1)
    else:
        deg = valid.sum(axis=1)
        partners = np.nonzero(valid)[1]  # row-major: the partners of source 0, then 1, ...
        start = np.r_[0, np.cumsum(deg)[:-1]]
        draws = 4 * max_pairs
        i = np.repeat(np.flatnonzero(deg >= 2), draws)
        a = (rng.random_sample(i.size) * deg[i]).astype(np.int64)
        b = (rng.random_sample(i.size) * (deg[i] - 1)).astype(np.int64)
        b = b + (b >= a)
        j, kk = partners[start[i] + a], partners[start[i] + b]
        j, kk = np.minimum(j, kk), np.maximum(j, kk)
        keep = valid[j, kk]
        trip = np.stack([i[keep], j[keep], kk[keep]], axis=1)
    if trip.shape[0] == 0:
        return trip.reshape(0, 3)
    counts = np.bincount(trip[:, 0], minlength=m)
    if counts.max() > max_pairs:  # random subsample per source: rank by a random key
        order = np.lexsort((rng.random_sample(trip.shape[0]), trip[:, 0]))
        trip = trip[order]
        first = np.r_[0, np.cumsum(counts)[:-1]]
        rank = np.arange(trip.shape[0]) - first[trip[:, 0]]
        trip = trip[rank < max_pairs]
    return trip


def _group_reduce(
    group: np.ndarray, values: np.ndarray, n_groups: int, how: str
) -> tuple[np.ndarray, np.ndarray]:
    """Median or mean of ``values`` per group id (0 for empty groups), and the counts."""
    counts = np.bincount(group, minlength=n_groups)
    out = np.zeros(n_groups)
    if values.size == 0:
        return out, counts
    if how == "mean":
        sums = np.bincount(group, weights=values, minlength=n_groups)
        np.divide(sums, counts, out=out, where=counts > 0)
        return out, counts
    order = np.lexsort((values, group))
    v = values[order]
    start = np.r_[0, np.cumsum(counts)[:-1]]
    has = counts > 0
    lo = start[has] + (counts[has] - 1) // 2
    hi = start[has] + counts[has] // 2
    out[has] = 0.5 * (v[lo] + v[hi])
    return out, counts


class Triplet(BaseAggregator):
    r"""FlyingSquid's triplet label model: closed-form source accuracies, no iterations.

    The model, the estimator and the one-vs-rest extension are in the module docstring of
    :mod:`wsagg.aggregation.triplet`; ``docs/aggregators/triplet.md`` has the derivation
    and advice on when to use it.

    Parameters
    ----------
    n_classes : int, optional
        Number of classes ``k``; inferred from the votes (and ``y``) when ``None``.
    class_balance : {"auto", "uniform", "learned"} or array-like of shape (k,), default="auto"
        The class prior. ``"auto"``: the class shares of the known labels ``y`` when some
        are given (add-one smoothed when a class is missing from them), else uniform
        (FlyingSquid's default). ``"uniform"``: ``1/k``. ``"learned"``: from the first
        moments, :math:`E[\lambda^c_j \mid \text{vote}] = a_j (2 p_c - 1)`, by least squares
        over the sources weighted by their votes (then renormalised over the classes). An
        array: that distribution (positive, summing to 1).
    aggregate : {"median", "mean"}, default="median"
        How the triplet estimates of one source's ``|a_j|`` are combined.
    sign_recovery : {"all_positive", "mean_positive"}, default="all_positive"
        ``"all_positive"``: every source is better than random, ``a_j >= 0``
        (FlyingSquid's assumption; it breaks the label-switching symmetry).
        ``"mean_positive"``: relative signs from the leading eigenvector of the moment
        matrix, global sign from the known labels if any, else such that the sources are
        better than random on average — detects adversarial crowd workers, but misreads
        unipolar labeling functions (two sources that fire on different classes look
        anti-correlated), so not for labeling-function data.
    min_overlap : int, default=5
        A pair of sources enters a triplet only if both vote on at least this many items.
    max_pairs : int, default=2000
        At most this many triplets per source and class (a uniform sample, drawn with
        ``random_state``, beyond that).
    tie_break : {"first", "random"}, default="first"
        Tie policy of :meth:`predict`.
    random_state : int, RandomState or None
        Seeds the sampling of triplets (only when some source has more than
        ``max_pairs``) and ``tie_break="random"``.

    Attributes
    ----------
    classes_ : ndarray of shape (k,)
    n_classes_ : int
    n_sources_ : int
    source_names_ : ndarray of shape (m,)
    class_prior_ : ndarray of shape (k,)
        The class prior used.
    alpha_ : ndarray of shape (k, m)
        ``alpha_[c, j]``: the estimated accuracy :math:`a_j = E[\lambda^c_j Y^c \mid j
        \text{ votes}] \in [-1, 1]` in the binary problem "class ``c`` against the rest";
        0 for a source without a usable triplet. For ``k = 2`` both rows are equal.
    conditional_probs_ : ndarray of shape (k, m, 2, 2)
        ``conditional_probs_[c, j, a, b] = P(lambda^c_j = b | Y^c = a, j votes)``, with
        index 1 for "class ``c``" and 0 for "another class"; rows sum to 1. A source with
        no usable triplet gets two equal rows (its votes are ignored).
    source_accuracy_ : ndarray of shape (m,)
        ``(1 + a_j) / 2``: the probability that a vote of ``j`` is correct (for ``k > 2``,
        with ``a_j`` the mean of ``alpha_[:, j]`` over the one-vs-rest problems).
    n_triplets_ : ndarray of shape (k, m)
        Number of triplets behind each estimate of ``alpha_``.

    Notes
    -----
    The estimator needs at least 3 sources, and a source's accuracy is identified only if
    it overlaps two other sources that overlap each other (``min_overlap``); sources
    without such a triplet get ``alpha_ = 0`` and do not influence the posteriors.
    Compared with FlyingSquid (``LabelModel(m).fit(L)``): moments are conditioned on the
    co-votes instead of taken over all items, each accuracy is the median over all (or
    ``max_pairs`` sampled) triplets instead of one, signs may be recovered
    (``"mean_positive"``) instead of assumed positive, and the
    posterior uses :math:`P(Y)` once (FlyingSquid's junction-tree product divides by
    :math:`P(Y)^{m-2}` where :math:`P(Y)^{m-1}` is due, i.e. it squares the prior; the
    two agree under a uniform balance). With one vote per source, independent voting and
    exact moments, the accuracies are those of FlyingSquid.

    Known labels ``y`` set the class balance (``class_balance="auto"``) and, under
    ``sign_recovery="mean_positive"``, the global sign of each one-vs-rest problem; they
    are not clamped (the estimator is closed-form).

    Examples
    --------
    >>> import numpy as np
    >>> from wsagg.aggregation.triplet import Triplet
    >>> L = np.array([[0, 0, 1, 0], [1, 1, 1, 0], [0, -1, 0, 0], [1, 1, -1, 1],
    ...               [0, 0, 0, 1], [1, 0, 1, 1], [0, 1, 0, 0], [1, 1, 0, 1]])
    >>> tr = Triplet(min_overlap=1).fit(L)
    >>> tr.predict(L)
    array([0, 1, 0, 1, 0, 1, 0, 1])
    >>> np.round(tr.source_accuracy_, 2)
    array([1.  , 0.79, 0.79, 0.7 ])
    """

    _parameter_constraints: dict = {  # noqa: RUF012 (scikit-learn's convention)
        "n_classes": [Interval(Integral, 2, None, closed="left"), None],
        "class_balance": [StrOptions({"auto", "uniform", "learned"}), "array-like"],
        "aggregate": [StrOptions({"median", "mean"})],
        "sign_recovery": [StrOptions({"mean_positive", "all_positive"})],
        "min_overlap": [Interval(Integral, 1, None, closed="left")],
        "max_pairs": [Interval(Integral, 1, None, closed="left")],
        "tie_break": [StrOptions({"first", "random"})],
        "random_state": ["random_state"],
    }

    # one accuracy per source (and per one-vs-rest problem when k > 2), for the base's
    # sparse-source check
    _source_parameters = staticmethod(lambda k: 1 if k == 2 else k)

    def __init__(
        self,
        n_classes: int | None = None,
        *,
        class_balance: Any = "auto",
        aggregate: str = "median",
        sign_recovery: str = "all_positive",
        min_overlap: int = 5,
        max_pairs: int = 2000,
        tie_break: str = "first",
        random_state: Any = None,
    ) -> None:
        self.n_classes = n_classes
        self.class_balance = class_balance
        self.aggregate = aggregate
        self.sign_recovery = sign_recovery
        self.min_overlap = min_overlap
        self.max_pairs = max_pairs
        self.tie_break = tie_break
        self.random_state = random_state

    def _fixed_prior(self, k: int, known: np.ndarray | None) -> np.ndarray | None:
        return resolve_class_balance(self.class_balance, k, known)

    # -- fitting -------------------------------------------------------------------------
    def _fit(self, lm: LabelMatrix, y: np.ndarray | None) -> None:
        m, k = lm.n_sources, lm.n_classes
        if m < 3:
            raise ValueError(
                f"Triplet needs at least 3 sources (got {m}): each accuracy is solved from "
                "a triplet of sources."
            )
        if lm.n_votes == 0:
            raise ValueError(
                "The label matrix has no votes (every source abstains on every item); "
                "there is nothing to learn from. Check the abstain encoding."
            )
        known = y if y is not None and (y >= 0).any() else None
        rng = check_random_state(self.random_state)
        S, N = _pair_moments(lm)
        valid = N >= self.min_overlap
        np.fill_diagonal(valid, False)
        with np.errstate(divide="ignore", invalid="ignore"):
            Mom = np.where(valid[None], S / np.where(valid, N, 1.0)[None], 0.0)  # (k, m, m)

        # |a_i| per class from every usable triplet (i; j, k)
        trip = _triplets(valid, int(self.max_pairs), rng)
        i, j, kk = trip.T
        num = Mom[:, i, j] * Mom[:, i, kk]  # (k, T)
        den = Mom[:, j, kk]
        usable = np.abs(den) >= _MIN_MOMENT
        with np.errstate(divide="ignore", invalid="ignore"):
            est = np.minimum(np.sqrt(np.abs(num / np.where(usable, den, 1.0))), 1.0)
        cls = np.broadcast_to(np.arange(k)[:, None], usable.shape)
        group = (cls * m + i[None, :])[usable]
        magnitude, n_trip = _group_reduce(group, est[usable], k * m, self.aggregate)
        magnitude = magnitude.reshape(k, m)
        n_trip = n_trip.reshape(k, m)

        alpha = magnitude.copy()
        if self.sign_recovery == "mean_positive":
            for c in range(k):  # loop over classes
                alpha[c] = _signed(Mom[c], magnitude[c], n_trip[c] > 0)
            if known is not None:
                alpha = _orient_by_labels(alpha, lm, known)

        votes = np.bincount(lm.source, minlength=m).astype(np.float64)  # (m,)
        share = np.bincount(lm.source * k + lm.label, minlength=m * k).reshape(m, k).T
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(votes > 0, share / np.where(votes > 0, votes, 1.0), 0.5)  # (k, m)

        p = self._fixed_prior(k, known)
        if p is None:  # first moments: E[lambda^c_j | vote] = a_j (2 p_c - 1)
            w = votes[None, :] * (n_trip > 0)
            den_p = np.sum(w * alpha**2, axis=1)
            num_p = np.sum(w * alpha * (2.0 * q - 1.0), axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                two_p = np.where(den_p > 0, num_p / np.where(den_p > 0, den_p, 1.0), 0.0)
            pc = np.clip(0.5 * (1.0 + two_p), _P_CLIP, 1.0 - _P_CLIP)
            p = pc / pc.sum()

        silent = (votes > 0) & (n_trip.max(axis=0) == 0)
        if silent.any():
            name = lm.source_names[np.flatnonzero(silent)[0]]
            name = name.item() if isinstance(name, np.generic) else name
            warnings.warn(
                f"Triplet: {int(silent.sum())} of {int((votes > 0).sum())} voting source(s) "
                f"(e.g. {name!r}) share no triplet of pairs "
                f"with >= min_overlap={self.min_overlap} common items; their accuracy is not "
                "identified and their votes are ignored. Lower min_overlap to use them.",
                UserWarning,
                stacklevel=_user_stacklevel(),
            )
        self.class_prior_ = p
        self.alpha_ = alpha
        self.n_triplets_ = n_trip
        self.conditional_probs_ = _conditional_tables(alpha, q, p, n_trip > 0)
        self.source_accuracy_ = 0.5 * (1.0 + alpha.mean(axis=0))

    def _predict_proba(self, lm: LabelMatrix) -> np.ndarray:
        m, k = self.n_sources_, self.n_classes_
        log_theta = np.log(self.conditional_probs_)  # (c, j, a, b)
        # vote column (j, l) -> for task c, log P(b = [l == c] | a): table (m k, k * 2)
        eye = np.eye(k, dtype=bool)  # eye[l, c]
        table = np.where(
            eye[None, :, :, None],
            np.transpose(log_theta[..., 1], (1, 0, 2))[:, None, :, :],
            np.transpose(log_theta[..., 0], (1, 0, 2))[:, None, :, :],
        )  # (j, l, c, a)
        X = np.asarray(lm.one_hot() @ table.reshape(m * k, k * 2)).reshape(-1, k, 2)
        p = self.class_prior_
        z = np.log(p) - np.log1p(-p) + X[:, :, 1] - X[:, :, 0]  # log-odds of Y^c = +1
        logq = log_expit(z)
        return np.exp(logq - logsumexp(logq, axis=1, keepdims=True))


def _signed(Mom: np.ndarray, magnitude: np.ndarray, identified: np.ndarray) -> np.ndarray:
    """Signs of the accuracies: the leading eigenvector of the moment matrix (diagonal
    ``a^2``), globally oriented so that the sources are better than random on average."""
    W = Mom.copy()
    np.fill_diagonal(W, magnitude**2)
    W[~identified] = 0.0
    W[:, ~identified] = 0.0
    if not identified.any():
        return np.zeros_like(magnitude)
    _, vecs = np.linalg.eigh(W)
    v = vecs[:, -1]
    sign = np.where(v < 0, -1.0, 1.0)
    alpha = sign * magnitude * identified
    if alpha.sum() < 0 or (alpha.sum() == 0 and v[np.argmax(np.abs(v))] < 0):
        alpha = -alpha
    return alpha


def _orient_by_labels(alpha: np.ndarray, lm: LabelMatrix, known: np.ndarray) -> np.ndarray:
    """Flip a one-vs-rest problem's signs when the known labels disagree with them: the
    votes on known items give each source's empirical ``E[lambda^c Y^c]``."""
    k, m = alpha.shape
    lab = known[lm.item]
    on_known = lab >= 0
    src, vote, truth = lm.source[on_known], lm.label[on_known], lab[on_known]
    out = alpha.copy()
    for c in range(k):  # loop over classes
        agree = np.where((vote == c) == (truth == c), 1.0, -1.0)
        empirical = np.bincount(src, weights=agree, minlength=m)  # sum over known votes
        score = float(np.sum(empirical * alpha[c]))
        if score < 0:
            out[c] = -alpha[c]
    return out


def _conditional_tables(
    alpha: np.ndarray, q: np.ndarray, p: np.ndarray, identified: np.ndarray
) -> np.ndarray:
    """``(k, m, 2, 2)`` tables ``P(lambda^c_j = b | Y^c = a, vote)`` from FlyingSquid's joint
    solution (module docstring), negative cells flipped, floored at ``_EPS``."""
    pc = p[:, None]
    r = 0.5 * (1.0 + np.clip(alpha, -1.0, 1.0))  # P(lambda = Y | vote)
    j11 = 0.5 * (q + pc + r - 1.0)
    J = np.stack(
        [np.stack([r - j11, q - j11], axis=-1), np.stack([pc - j11, j11], axis=-1)],
        axis=-2,
    )  # (k, m, a, b)
    J = np.abs(J)
    J /= J.sum(axis=(2, 3), keepdims=True)
    rows = J.sum(axis=3, keepdims=True)
    theta = J / np.maximum(rows, 1e-300)
    # sources without a usable triplet: both rows = their vote shares (uninformative)
    flat = np.stack([1.0 - q, q], axis=-1)[:, :, None, :]  # (k, m, 1, 2)
    theta = np.where(identified[:, :, None, None], theta, flat)
    theta = np.maximum(theta, _EPS)
    return theta / theta.sum(axis=3, keepdims=True)
