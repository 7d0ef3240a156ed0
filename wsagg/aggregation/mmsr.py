r"""M-MSR: source reliabilities by robust rank-one matrix completion (Ma & Olshevsky, 2020).

The model. Most sources follow the one-coin Dawid-Skene model: source ``j`` gives the true
class with probability :math:`p_j` and otherwise one of the ``k - 1`` other classes
uniformly; a few may be adversarial (arbitrary votes). Write the reliability
:math:`s_j = \frac{k p_j - 1}{k - 1}` (0 at chance, 1 for a perfect source). For two
sources ``j != l`` that vote on common items, the rescaled agreement rate

.. math::

    C_{jl} = \frac{k}{k-1} \cdot \frac{\#\{\text{common votes of } j, l \text{ that agree}\}}
    {\#\{\text{common votes of } j, l\}} - \frac{1}{k-1}
    \quad\text{has}\quad \mathbb E[C_{jl}] = s_j s_l,

so the observed entries of ``C`` are those of the rank-one matrix :math:`s s^\top`, some of
them corrupted (adversarial sources, sampling noise), and the diagonal is unobserved.
Pairs of votes count: with repeated votes every pair of a vote of ``j`` and a vote of ``l``
on an item is one comparison.

The algorithm (M-MSR, "matrix mean-subsequence-reduced"), as in crowd-kit's ``MMSR``: with
:math:`X = |C|` on the observed pairs, :math:`F = \lfloor d_{\min} / 2 \rfloor - 1`
(:math:`d_{\min}` the smallest number of sources that a source with votes shares items with)
and ``u = v`` uniform on :math:`(0, 1)^m` (``random_state``), alternate

.. math::

    v_j \leftarrow \operatorname{trim}_F\big(\{X_{lj} / u_l\}_{l \sim j}; v_j\big), \qquad
    u_l \leftarrow \operatorname{trim}_F\big(\{X_{lj} / v_j\}_{j \sim l}; u_l\big),

(the draw assigned to the sources in the order of their first vote, as crowd-kit's worker
order), where :math:`\operatorname{trim}_F(S; a)` drops the ``F`` smallest values of ``S`` below
``a`` (all of them if there are fewer) and the ``F`` largest above ``a`` (likewise) and
averages the rest (a lone kept 0 becomes :math:`1/\sqrt{n}`, ``n`` the items with votes;
``F = -1`` keeps only the largest value, crowd-kit's reading of its formula; an empty set
leaves the value unchanged; a ratio over a zero estimate is infinite, as in crowd-kit, and
is usually trimmed), until :math:`\|u v^\top - u' v'^\top\|_F <` ``tol``. Each half
step updates every source at once (one sort of an ``m x d`` table). Then
:math:`|s| = u \sqrt{\|v\| / \|u\|}`.

Signs. The sign pattern of ``C`` says which sources agree more than chance with which. On
the graph of the observed nonzero pairs, a positive pair is subdivided by a middle node and
a negative pair is an edge; the sources are two-coloured by the eigenvector of the smallest
eigenvalue of the normalised adjacency :math:`D^{-1/2} A D^{-1/2}` (the random-walk matrix
``W`` of crowd-kit has the same eigenvalues and, up to :math:`D^{1/2}`, eigenvectors), and
each connected component is oriented so that most of its sources are better than chance
(on a tie: the larger total :math:`|s|`). A source with no observed nonzero pair gets
:math:`s_j = 0`. Finally :math:`s` is clipped to
:math:`[-\frac{1}{k-1} + \frac{1}{\sqrt n}, 1 - \frac{1}{\sqrt n}]`,
:math:`p_j = \frac{(k-1) s_j + 1}{k}`, and the vote weights are the one-coin log-odds
:math:`w_j = \log\frac{(k-1) p_j}{1 - p_j}` (crowd-kit's ``skills_``).

Output: the one-coin posterior under a uniform class prior,
:math:`q_i = \mathrm{softmax}_c \sum_{v \in i} w_{j(v)} [\lambda_v = c]`, whose argmax is the
weighted vote. Items without votes get ``class_prior_``, the mean of :math:`q_i` over the
covered training items. Known labels ``y`` only set the classes (M-MSR uses none).

Differences from crowd-kit 1.4.2 (same iteration, same initial draw): (1) crowd-kit's sign
step also puts a negative edge between every pair of sources with *no* common item and a
self-loop on every source (its ``C`` is :math:`-1/(k-1)` there), and orients all components
together; here only observed pairs count, per component. On data where every pair of
sources shares items only the self-loops differ. (2) crowd-kit's weighted vote normalises
the weighted counts by their sum, which reverses the ranking when the sum is negative (the
voters mostly worse than chance); here the argmax of the weighted counts is the label.
(3) ``k`` is the number of classes of the label matrix (crowd-kit: the distinct labels in
the votes), and repeated votes count (crowd-kit keeps the last vote of a pair).

Cost: the co-occurrence counts are sparse products, O(sum over items of votes^2); then
O(m d log d) per iteration (``d`` the largest number of sources one source shares items
with) and O(m^2) memory, independent of the number of items.

References
----------
.. [1] Q. Ma and A. Olshevsky (2020). Adversarial crowdsourcing through robust rank-one
   matrix completion. Advances in Neural Information Processing Systems 33 (NeurIPS 2020).
   arXiv:2010.12181.
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import eigsh
from scipy.special import softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from wsagg._validation import user_stacklevel
from wsagg.base import BaseAggregator
from wsagg.labels import LabelMatrix

__all__ = ["MMSR"]

_DENSE_EIG = 300  # components up to this many nodes: dense eigh; larger: Lanczos


def _covariation(lm: LabelMatrix) -> tuple[np.ndarray, np.ndarray]:
    """``(C, observed)``: the rescaled agreement matrix on the pairs of distinct sources with
    common votes (0 elsewhere) and the mask of those pairs."""
    m, k = lm.n_sources, lm.n_classes
    V = lm.one_hot().tocsc()
    P = sp.csr_matrix(
        (np.ones(lm.n_votes), (lm.item, lm.source)), shape=(lm.n_items, m)
    )  # votes per (item, source), repeats summed
    common = np.asarray((P.T @ P).todense(), dtype=np.float64)
    agree = np.zeros((m, m))
    for c in range(k):  # one sparse product per class
        Vc = V[:, c::k]
        agree += np.asarray((Vc.T @ Vc).todense(), dtype=np.float64)
    np.fill_diagonal(common, 0.0)
    observed = common > 0
    C = np.zeros((m, m))
    C[observed] = (k * agree[observed] / common[observed] - 1.0) / (k - 1.0)
    return C, observed


def _padded(X: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row ``j``'s observed entries packed to the left of an ``(m, max degree)`` table:
    ``(values, column indices, mask)`` (padding: index 0, masked out)."""
    m = X.shape[0]
    deg = observed.sum(axis=1)
    width = max(int(deg.max()) if m else 0, 1)
    rows, cols = np.nonzero(observed)  # row-major: each row's columns in order
    slot = np.arange(rows.size) - np.repeat(np.cumsum(deg) - deg, deg)
    idx = np.zeros((m, width), dtype=np.int64)
    mask = np.zeros((m, width), dtype=bool)
    vals = np.zeros((m, width))
    idx[rows, slot] = cols
    mask[rows, slot] = True
    vals[rows, slot] = X[rows, cols]
    return vals, idx, mask


def _trimmed_update(
    padded: tuple[np.ndarray, np.ndarray, np.ndarray], denom: np.ndarray, current: np.ndarray,
    F: int, n_tasks: int,
) -> np.ndarray:
    """One M-MSR half step for every source at once: row ``j`` trims
    ``{X[j, l] / denom[l] : l observed}`` around ``current[j]`` and averages what is left
    (``padded`` is :func:`_padded` of ``X``, so the cost is in the observed pairs)."""
    X_pad, idx, mask = padded
    with np.errstate(divide="ignore", invalid="ignore"):  # over 0: inf (trimmed as large)
        vals = np.where(mask, X_pad / denom[idx], np.nan)
    cnt = mask.sum(axis=1)
    below = (vals < current[:, None]).sum(axis=1)
    above = (vals > current[:, None]).sum(axis=1)
    srt = np.sort(vals, axis=1)  # padding (NaN) last
    if F >= 0:
        start = np.minimum(below, F)
        end = cnt - np.minimum(above, F)
    else:  # crowd-kit's y[F:] with F = -1 keeps the largest value only
        start = np.maximum(cnt - 1, 0)
        end = cnt
    rank = np.arange(vals.shape[1])[None, :]
    keep = (rank >= start[:, None]) & (rank < end[:, None])
    total = np.where(keep, srt, 0.0).sum(axis=1)
    n_kept = end - start
    new = current.copy()
    upd = n_kept > 0
    new[upd] = total[upd] / n_kept[upd]
    new[(n_kept == 1) & (total == 0)] = 1.0 / math.sqrt(n_tasks)
    return new


def _smallest_eigvec(A: sp.csr_matrix) -> np.ndarray:
    """Eigenvector of the smallest eigenvalue of ``D^{-1/2} A D^{-1/2}`` (connected ``A``)."""
    deg = np.asarray(A.sum(axis=1)).ravel()
    d = 1.0 / np.sqrt(deg)
    N = sp.diags(d) @ A @ sp.diags(d)
    n = N.shape[0]
    if n <= _DENSE_EIG:
        _, vec = np.linalg.eigh(N.toarray())
        return vec[:, 0]
    v0 = np.sqrt(deg) * (1.0 + 0.5 * np.cos(np.arange(n)))  # fixed start: deterministic
    _, vec = eigsh(N.tocsc(), k=1, which="SA", v0=v0, tol=1e-12, maxiter=100 * n)
    return vec[:, 0]


def _signs(C: np.ndarray, observed: np.ndarray, s_abs: np.ndarray) -> np.ndarray:
    """Signed reliabilities: ``s_abs`` with the signs of the two-colouring of the sign graph
    of ``C`` (0 for sources without an observed nonzero pair)."""
    S = np.where(observed, np.sign(C), 0.0)
    idx = np.flatnonzero((S != 0).any(axis=1))
    out = np.zeros_like(s_abs)
    kk = idx.size
    if kk == 0:
        return out
    S = S[np.ix_(idx, idx)]
    pi, pj = np.nonzero(np.triu(S > 0, 1))  # positive pairs: a middle node each
    ni, nj = np.nonzero(S < 0)  # negative pairs (both directions): an edge
    n_pos = pi.size
    mid = kk + np.arange(n_pos)
    rows = np.concatenate([ni, pi, pj, mid, mid])
    cols = np.concatenate([nj, mid, mid, pi, pj])
    size = kk + n_pos
    A = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(size, size))
    n_comp, comp = connected_components(A, directed=False)
    sign = np.zeros(kk)
    for c in range(n_comp):  # a loop over connected components of the sign graph
        nodes = np.flatnonzero(comp == c)
        workers = nodes[nodes < kk]
        if workers.size == 0:
            continue
        vec = np.sign(_smallest_eigvec(A[nodes][:, nodes])[: workers.size])
        # (nodes are sorted and the source nodes come first, so they lead ``vec``)
        orient = np.sign(vec.sum()) or np.sign(np.dot(vec, s_abs[idx[workers]])) or 1.0
        sign[workers] = orient * vec
    out[idx] = sign * s_abs[idx]
    return out


def _initial_uv(lm: LabelMatrix, random_state: Any) -> tuple[np.ndarray, np.ndarray]:
    """Initial ``u, v``: uniform draws assigned to the sources with votes in the order of
    their first vote (crowd-kit's workers and their order); 0 for sources without votes,
    which then stay out of every update and norm. An int (or ``None``) seeds one draw used
    for both, as crowd-kit's two calls with the same seed; a ``RandomState`` draws ``u``
    then ``v``."""
    m = lm.n_sources
    seen, pos = np.unique(lm.source, return_index=True)
    order = seen[np.argsort(pos, kind="stable")]
    if random_state is None or isinstance(random_state, Integral):
        draw_u = check_random_state(random_state).uniform(size=order.size)
        draw_v = draw_u
    else:
        rng = check_random_state(random_state)
        draw_u, draw_v = rng.uniform(size=order.size), rng.uniform(size=order.size)
    u, v = np.zeros(m), np.zeros(m)
    u[order], v[order] = draw_u, draw_v
    return u, v


class MMSR(BaseAggregator):
    r"""M-MSR (Ma & Olshevsky, 2020): one-coin source reliabilities by robust rank-one
    completion of the source agreement matrix, then the log-odds weighted vote.

    See the module docstring of :mod:`wsagg.aggregation.mmsr` for the model, the iteration,
    the sign step and the (documented) differences from crowd-kit's ``MMSR``.

    Parameters
    ----------
    n_classes : int, optional
        Number of classes ``k``; inferred from the votes (and ``y``) when ``None``.
    max_iter : int >= 1, default=10000
        Maximum number of M-MSR iterations (crowd-kit's ``n_iter``).
    tol : float >= 0, default=1e-10
        Stop when :math:`\|u v^\top - u' v'^\top\|_F` falls below ``tol``.
    tie_break : {"first", "random"}, default="first"
        Tie policy of :meth:`predict` (see :mod:`wsagg.base`).
    random_state : int, RandomState or None, default=0
        Seeds the initial ``u = v`` (an int seeds both with the same draw, as crowd-kit's
        default ``random_state=0``; a ``RandomState`` draws ``u`` then ``v``) and
        ``tie_break="random"``. The converged result hardly depends on it.

    Attributes
    ----------
    classes_ : ndarray of shape (k,)
    n_classes_ : int
    n_sources_ : int
    source_names_ : ndarray of shape (m,)
    reliability_ : ndarray of shape (m,)
        Clipped signed reliability :math:`s_j` (0 at chance, negative below chance; 0 for a
        source without an observed nonzero agreement pair, e.g. one that never votes).
    accuracy_ : ndarray of shape (m,)
        One-coin accuracy :math:`p_j = ((k-1) s_j + 1) / k`.
    weights_ : ndarray of shape (m,)
        Vote weights :math:`\log((k-1) p_j / (1 - p_j))` (crowd-kit's ``skills_``).
    class_prior_ : ndarray of shape (k,)
        Mean soft label over the covered training items; given to items without votes.
    n_iter_ : int
        M-MSR iterations run.
    converged_ : bool
    loss_history_ : ndarray of shape (n_iter_,)
        :math:`\|u v^\top - u' v'^\top\|_F` per iteration (crowd-kit's ``loss_history_``).

    Notes
    -----
    M-MSR suits crowd data in which a minority of sources may be adversarial or spammers
    (their agreement rows are trimmed away), with enough overlap between sources for the
    agreement matrix to be informative: ``F`` grows with the smallest number of sources any
    source shares items with, and a single poorly connected source makes ``F`` small for
    everyone. It assumes one-coin sources; for class-dependent confusions use Dawid-Skene.
    Its cost does not grow with the items after the co-occurrence counts, but memory is
    ``O(m^2)`` in the number of sources.

    Examples
    --------
    >>> from wsagg.aggregation.mmsr import MMSR
    >>> from wsagg.datasets import make_dawid_skene
    >>> acc = [0.9, 0.8, 0.8, 0.7, 0.7, 0.6, 0.6, 0.1]  # the last source is adversarial
    >>> d = make_dawid_skene(500, 8, 3, accuracy=acc, coverage=0.6, errors="uniform",
    ...                      random_state=0)
    >>> mmsr = MMSR().fit(d.L)
    >>> mmsr.reliability_.round(2)  # truth: (3 acc - 1) / 2
    array([ 0.85,  0.67,  0.74,  0.6 ,  0.45,  0.48,  0.42, -0.32])
    >>> float((mmsr.predict(d.L) == d.y).mean())  # majority vote: 0.826
    0.898
    """

    _parameter_constraints: dict = {  # noqa: RUF012 (scikit-learn's convention)
        "n_classes": [Interval(Integral, 2, None, closed="left"), None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "tie_break": [StrOptions({"first", "random"})],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_classes: int | None = None,
        *,
        max_iter: int = 10000,
        tol: float = 1e-10,
        tie_break: str = "first",
        random_state: Any = 0,
    ) -> None:
        self.n_classes = n_classes
        self.max_iter = max_iter
        self.tol = tol
        self.tie_break = tie_break
        self.random_state = random_state

    def _fit(self, lm: LabelMatrix, y: np.ndarray | None) -> None:
        m, k = lm.n_sources, lm.n_classes
        if lm.n_votes == 0:
            raise ValueError("The label matrix has no votes; M-MSR has nothing to compare.")
        covered = lm.votes_per_item() > 0
        n_tasks = int(np.count_nonzero(covered))
        C, observed = _covariation(lm)
        padded = _padded(np.abs(C), observed)
        voted = np.bincount(lm.source, minlength=m) > 0  # crowd-kit's workers
        sparsity = int(observed.sum(axis=0)[voted].min())
        F = sparsity // 2 - 1
        u, v = _initial_uv(lm, self.random_state)
        history: list[float] = []
        converged = False
        n_iter = 0
        while n_iter < self.max_iter:
            n_iter += 1
            v_new = _trimmed_update(padded, u, v, F, n_tasks)
            u_new = _trimmed_update(padded, v_new, u, F, n_tasks)
            du, dv = u_new - u, v_new - v  # u'v'^T - uv^T = du v'^T + u dv^T
            sq = (
                np.dot(du, du) * np.dot(v_new, v_new) + np.dot(u, u) * np.dot(dv, dv)
                + 2.0 * np.dot(du, u) * np.dot(v_new, dv)
            )
            loss = math.sqrt(max(float(sq), 0.0))
            history.append(loss)
            u, v = u_new, v_new
            if loss < self.tol:
                converged = True
                break
        with np.errstate(divide="ignore", invalid="ignore"):
            s_abs = u * math.sqrt(np.linalg.norm(v) / np.linalg.norm(u))
        s_abs = np.where(np.isfinite(s_abs), s_abs, 0.0)
        s = _signs(C, observed, s_abs)
        root = 1.0 / math.sqrt(max(n_tasks, 1))
        s = np.maximum(np.minimum(s, 1.0 - root), -1.0 / (k - 1) + root)
        p = (s * (k - 1) + 1.0) / k
        self.reliability_ = s
        self.accuracy_ = p
        self.weights_ = np.log(p * (k - 1) / (1.0 - p))
        self.n_iter_ = n_iter
        self.converged_ = converged
        self.loss_history_ = np.asarray(history)
        prior = softmax(lm.class_counts(self.weights_)[covered], axis=1).mean(axis=0)
        self.class_prior_ = prior / prior.sum()
        if not converged:
            warnings.warn(
                f"MMSR did not converge in max_iter={self.max_iter} iterations (last change "
                f"{history[-1]:.3g} >= tol={self.tol}). Increase max_iter or loosen tol; the "
                "last reliabilities are kept.",
                ConvergenceWarning,
                stacklevel=user_stacklevel(),
            )

    def _predict_proba(self, lm: LabelMatrix) -> np.ndarray:
        proba = softmax(lm.class_counts(self.weights_), axis=1)
        proba[lm.votes_per_item() == 0] = self.class_prior_
        return proba
