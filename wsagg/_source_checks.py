"""Checks of the sources that every fit runs: dependent sources and sparse sources.

Every aggregator in wsagg treats the sources as conditionally independent given the true
class. Two ways the data break that silently, both warned about at ``fit`` (called from
:meth:`wsagg.base.BaseAggregator._validate_fit`, so every registered aggregator has them):

**Dependent sources** (:class:`~wsagg.exceptions.DependentSourcesWarning`). A source
copied ``r`` times is counted as ``r`` independent pieces of evidence, so posteriors become
certain whatever its accuracy. Two tests on the pairs of sources that vote on at least
``MIN_SHARED`` common items:

* *copies*: the pair's votes (item, class) overlap with Jaccard index at least
  ``COPY_JACCARD`` (the same votes on the same items) — grouped into sets of copies;
* *correlated*: after keeping one source per set of copies, the pair agrees on the items
  they share far more often than the fitted independence model predicts. The model is a
  few Dawid-Skene EM steps on the sampled votes; for pair ``(a, b)`` the reference ``q_i``
  of item ``i`` is the posterior without the votes of ``a`` and ``b`` (the other sources'
  evidence), each of the two confusions ``theta[c, l]`` is re-estimated against that
  reference, and the predicted agreement is ``sum_c q_i[c] sum_l theta_a[c, l]
  theta_b[c, l]`` (1 for two sources that only ever vote one class, as labeling functions
  often do). The ``MAX_CANDIDATES`` most agreeing pairs are tested.
  Flagged when the observed agreement exceeds the prediction by ``EXCESS`` and by ``Z``
  binomial standard deviations.

The checks run on at most ``MAX_ITEMS`` items and ``MAX_PAIRS`` co-votes (evenly spaced
items), so their cost is bounded whatever the data size.

**Sparse sources** (:class:`~wsagg.exceptions.SparseSourcesWarning`): when at least
``SPARSE_MIN_SOURCES`` sources exist and more than half of them have fewer than three votes
per parameter the aggregator estimates for each source (``k (k - 1)`` for a full confusion
matrix, one for a skill or a one-coin accuracy, none for majority vote).

The remedies are documented in ``docs/labels.md`` ("Dependent and sparse sources"), and
:func:`dependent_sources` returns what the warning is about.

Layer L0: imports only :mod:`wsagg.labels`, :mod:`wsagg.exceptions` and
:mod:`wsagg._validation`.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from wsagg._rowwise import row_softmax
from wsagg._validation import warn
from wsagg.exceptions import DependentSourcesWarning, SparseSourcesWarning
from wsagg.labels import LabelMatrix, as_label_matrix, flat_index

__all__ = ["check_sources", "dependent_sources", "emit_findings", "source_findings",
           "source_parameters"]

MIN_SHARED = 25
COPY_JACCARD = 0.97
EXCESS = 0.1
Z = 5.0
MAX_ITEMS = 5_000
MAX_PAIRS = 1_000_000
MAX_CANDIDATES = 100  # pairs (most agreeing first) tested for correlation
MAX_THETA = 5_000_000  # m * k * k confusion entries for the correlation test
SPARSE_MIN_SOURCES = 10
VOTES_PER_PARAMETER = 3


def check_sources(lm: LabelMatrix, estimator: Any) -> None:
    """Warn about dependent sources and sparse sources (see the module docstring)."""
    emit_findings(source_findings(lm, estimator))


def emit_findings(findings: list[tuple[str, type[Warning]]]) -> None:
    """Warn with each ``(message, category)`` of :func:`source_findings`, in order."""
    for message, category in findings:
        warn(message, category)


def source_findings(lm: LabelMatrix, estimator: Any) -> list[tuple[str, type[Warning]]]:
    """What :func:`check_sources` warns about, as ``(message, category)`` pairs, without
    warning: it only reads ``lm``, so it may run on another thread while the fit goes on
    (:meth:`wsagg.base.BaseAggregator._validate_fit`)."""
    out: list[tuple[str, type[Warning]]] = []
    sparse = _sparse_message(lm, estimator)
    if sparse is not None:
        out.append((sparse, SparseSourcesWarning))
    if lm.n_sources < 2 or lm.n_votes < MIN_SHARED:
        return out
    found = _dependence(lm)
    names = lm.source_names
    if found["copies"]:
        groups = found["copies"]
        shown = "; ".join(_names(names, g) for g in groups[:3])
        more = f" (and {len(groups) - 3} more sets)" if len(groups) > 3 else ""
        out.append((
            f"{sum(len(g) for g in groups)} sources look like copies of each other, casting "
            f"the same votes on the same items: {shown}{more}. An aggregator assuming "
            "independent sources counts every copy as separate evidence, so its posteriors "
            "are overconfident. Keep one source per set (e.g. L[:, keep]; see "
            "wsagg._source_checks.dependent_sources and docs/labels.md, 'Dependent and "
            "sparse sources').",
            DependentSourcesWarning,
        ))
    pairs = found["correlated"]
    if len(pairs):
        top = pairs.iloc[:3]
        shown = "; ".join(
            f"{_show(r.source_a)} & {_show(r.source_b)} agree on {r.agreement:.0%} of "
            f"{r.n_shared} shared items vs {r.expected:.0%} expected"
            for r in top.itertuples()
        )
        more = f" (and {len(pairs) - 3} more pairs)" if len(pairs) > 3 else ""
        out.append((
            f"{len(pairs)} pairs of sources agree far more than independent sources "
            f"would: {shown}{more}. They are dependent (the same rule, data or annotator), "
            "so an aggregator assuming independence is overconfident. Merge or drop one "
            "source of each pair (see docs/labels.md, 'Dependent and sparse sources').",
            DependentSourcesWarning,
        ))
    return out


def dependent_sources(L: Any, n_classes: int | None = None) -> dict[str, Any]:
    """The sources :func:`check_sources` warns about.

    Returns ``{"copies": [[name, ...], ...], "correlated": DataFrame}``: the sets of
    sources that cast the same votes, and the pairs (one source per set of copies) that
    agree beyond independence, with columns ``source_a, source_b, n_shared, agreement,
    expected, z``, most excessive first.
    """
    lm = as_label_matrix(L, n_classes=n_classes)
    found = _dependence(lm)
    names = lm.source_names
    return {
        "copies": [[_plain(names[j]) for j in g] for g in found["copies"]],
        "correlated": found["correlated"],
    }


def source_parameters(estimator: Any, k: int) -> int:
    """Parameters the aggregator estimates per source: its ``_source_parameters`` (an int
    or ``callable(k)``) when it declares one, else ``k (k - 1)`` for a full confusion matrix
    (Dawid-Skene, BCC), none for majority vote and one (a skill) otherwise."""
    hook = getattr(estimator, "_source_parameters", None)
    if hook is not None:
        return int(hook(k) if callable(hook) else hook)
    name = type(estimator).__name__
    params = estimator.get_params(deep=False)
    if name == "MajorityVote":
        return 0
    if params.get("model") == "one-coin":
        return 1
    if name in ("DawidSkene", "BCC") or params.get("model") == "full":
        return k * (k - 1)
    return 1


# ----------------------------------------------------------------------------------------


def _sparse_message(lm: LabelMatrix, estimator: Any) -> str | None:
    m, k = lm.n_sources, lm.n_classes
    if m < SPARSE_MIN_SOURCES:
        return None
    p = source_parameters(estimator, k)
    if p <= 0:
        return None
    need = VOTES_PER_PARAMETER * p
    votes = lm.vote_counts().sum(axis=1)
    few = int(np.count_nonzero(votes < need))
    if 2 * few <= m:
        return None
    name = type(estimator).__name__
    params = estimator.get_params(deep=False)
    knobs = []
    if params.get("model") == "full":
        knobs.append(f"{name}(model='one-coin') (one parameter per source)")
    for knob in ("smoothing", "worker_prior_strength", "diagonal_strength"):
        if knob in params:
            knobs.append(f"a larger {knob} (a stronger prior)")
            break
    knobs.append("pooling the rare sources into one source")
    knobs.append("MajorityVote (no per-source parameters)")
    return (
        f"{few:,} of {m:,} sources have fewer than {need} votes, too few to estimate the "
        f"{p} parameter{'s' if p > 1 else ''} per source of {name}; its posteriors will be "
        f"overconfident. Use {', '.join(knobs[:-1])} or {knobs[-1]}."
    )


def _sample(lm: LabelMatrix) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Votes (item-sorted, one per item and source) of at most ``MAX_ITEMS`` evenly spaced
    items holding at most ``MAX_PAIRS`` pairs of co-votes."""
    n, m = lm.n_items, lm.n_sources
    item, src, lab = lm.item, lm.source, lm.label
    if n > MAX_ITEMS:
        chosen = np.unique(np.linspace(0, n - 1, MAX_ITEMS).astype(np.int64))
        if lm.grouped_by_item():  # the chosen items' runs of votes (no pass over the votes)
            at = chosen.astype(item.dtype)  # (an int64 needle would copy item to int64)
            lo, hi = np.searchsorted(item, at), np.searchsorted(item, at, "right")
            sel = np.repeat(lo - (np.cumsum(hi - lo) - (hi - lo)), hi - lo)
            sel += np.arange(sel.shape[0])
        else:
            keep = np.zeros(n, dtype=bool)
            keep[chosen] = True
            sel = keep[item]
        item, src, lab = item[sel], src[sel], lab[sel]
    key = flat_index(item, m, src)
    _, first = np.unique(key, return_index=True)  # sorted by item, then source
    item, src, lab = item[first], src[first], lab[first]
    vpi = np.bincount(item, minlength=n).astype(np.float64)
    total = float((vpi * (vpi - 1) / 2).sum())
    if total > MAX_PAIRS:
        stride = int(np.ceil(total / MAX_PAIRS))
        sel = (item % stride) == 0
        item, src, lab = item[sel], src[sel], lab[sel]
    # sampled items renumbered 0..n_s-1 (item stays sorted)
    new = np.empty(item.shape[0], dtype=bool)
    if item.shape[0]:
        new[0] = True
        np.not_equal(item[1:], item[:-1], out=new[1:])
    item = np.cumsum(new) - 1
    return item, src, lab, int(item[-1]) + 1 if item.shape[0] else 0


def _pairs(item: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``a < b`` of the (item-sorted) votes that share an item."""
    nv = item.shape[0]
    end = np.cumsum(np.bincount(item, minlength=n))[item]
    after = end - np.arange(nv) - 1
    total = int(after.sum())
    a = np.repeat(np.arange(nv), after)
    run_start = np.cumsum(after) - after
    b = a + 1 + (np.arange(total) - np.repeat(run_start, after))
    return a, b


def _dependence(lm: LabelMatrix) -> dict[str, Any]:
    m, k = lm.n_sources, lm.n_classes
    empty = pd.DataFrame(
        columns=["source_a", "source_b", "n_shared", "agreement", "expected", "z"]
    )
    item, src, lab, n = _sample(lm)
    a, b = _pairs(item, n)
    if a.size == 0:
        return {"copies": [], "correlated": empty}
    sa, sb = src[a], src[b]  # sa < sb: votes are sorted by source within an item
    agree = lab[a] == lab[b]
    pair_key, inv = np.unique(flat_index(sa, m, sb), return_inverse=True)
    n_agree = np.bincount(inv, weights=agree)
    votes = np.bincount(src, minlength=m)
    pi, pj = pair_key // m, pair_key % m
    jaccard = n_agree / np.maximum(votes[pi] + votes[pj] - n_agree, 1)
    dup = (n_agree >= MIN_SHARED) & (jaccard >= COPY_JACCARD)
    groups = _components(pi[dup], pj[dup], m)
    copies = sorted(groups, key=lambda g: (-len(g), g[0]))

    # one source per set of copies (the one with the most votes) for the correlation test
    keep = np.ones(m, dtype=bool)
    for g in copies:
        best = g[int(np.argmax(votes[g]))]
        keep[[j for j in g if j != best]] = False
    correlated = empty
    if int(keep.sum()) >= 3 and m * k * k <= MAX_THETA:
        correlated = _correlated(item, src, lab, n, keep, lm.source_names, m, k)
    return {"copies": copies, "correlated": correlated}


def _fit_confusions(
    item: np.ndarray, src: np.ndarray, lab: np.ndarray, n: int, m: int, k: int,
    n_iter: int = 25,
) -> tuple[np.ndarray, np.ndarray]:
    """A few Dawid-Skene EM steps (the independence model) on the sampled votes: the log
    confusions ``(m, k, k)`` and the unnormalised log posteriors ``(n, k)``. Both steps are
    products with the one-hot vote matrix ``B`` (``n x m k``): ``B^T q`` (the expected
    counts) and ``B log_theta`` (the log likelihoods)."""
    cell = flat_index(src, k, lab)
    B = sp.csr_matrix((np.ones(cell.shape[0]), (item, cell)), shape=(n, m * k))
    BT = B.T.tocsr()
    C = np.asarray(B @ np.tile(np.eye(k), (m, 1)))  # votes per item and class
    tot = C.sum(axis=1, keepdims=True)
    q = np.where(tot > 0, (C + 1e-3) / (tot + k * 1e-3), 1.0 / k)
    for _ in range(n_iter):
        q_old = q
        counts = np.asarray(BT @ q).reshape(m, k, k)  # [j, l, c]
        theta = counts.transpose(0, 2, 1) + 0.01  # [j, c, l]
        theta /= theta.sum(axis=2, keepdims=True)
        log_theta = np.log(theta)
        log_prior = np.log(q.sum(axis=0) + 1.0) - np.log(n + k)
        log_q = np.asarray(B @ log_theta.transpose(0, 2, 1).reshape(m * k, k))
        log_q += log_prior
        q = row_softmax(log_q)[0]
        if float(np.max(np.abs(q - q_old))) < _FIT_TOL:  # (converged: the same posteriors)
            break
    return log_theta, log_q


def _correlated(
    item: np.ndarray, src: np.ndarray, lab: np.ndarray, n: int, keep: np.ndarray,
    names: np.ndarray, m: int, k: int,
) -> pd.DataFrame:
    empty = pd.DataFrame(
        columns=["source_a", "source_b", "n_shared", "agreement", "expected", "z"]
    )
    sel = keep[src]
    item, src, lab = item[sel], src[sel], lab[sel]
    a, b = _pairs(item, n)
    if a.size == 0:
        return empty
    pair_key, inv = np.unique(flat_index(src[a], m, src[b]), return_inverse=True)
    shared = np.bincount(inv)
    rate = np.bincount(inv, weights=(lab[a] == lab[b])) / shared
    cand = np.flatnonzero(shared >= MIN_SHARED)
    if cand.size == 0:
        return empty
    cand = cand[np.argsort(-rate[cand], kind="stable")[:MAX_CANDIDATES]]
    log_theta, log_q = _fit_confusions(item, src, lab, n, m, k)
    ja, jb = pair_key[cand] // m, pair_key[cand] % m
    # each source's confusion against the evidence of the *other* sources only: side a
    # (the votes of a, with b's vote removed where b voted too) and side b (the reverse)
    votes = _VoteIndex(item, src, lab, n, m, k)  # (shared by the two sides)
    theta_a, (pid, q_hit, agree) = _cavity_confusions(votes, log_q, log_theta, ja, jb)
    theta_b, _ = _cavity_confusions(votes, log_q, log_theta, jb, ja)
    agree_given = (theta_a * theta_b).sum(axis=2)  # (P, k): P(a, b agree | y = c)
    pr = np.clip(np.einsum("nc,nc->n", q_hit, agree_given[pid]), 0.0, 1.0)
    n_pairs = cand.size
    cnt = np.bincount(pid, minlength=n_pairs)
    obs = np.bincount(pid, weights=agree, minlength=n_pairs)
    exp = np.bincount(pid, weights=pr, minlength=n_pairs)
    var = np.bincount(pid, weights=pr * (1 - pr), minlength=n_pairs)
    z = (obs - exp) / np.sqrt(var + 1e-9)
    safe = np.maximum(cnt, 1)
    flag = (cnt > 0) & ((obs - exp) / safe >= EXCESS) & (z >= Z)
    rows = [
        (_plain(names[ja[p]]), _plain(names[jb[p]]), int(cnt[p]), obs[p] / cnt[p],
         exp[p] / cnt[p], float(z[p]))
        for p in np.flatnonzero(flag).tolist()
    ]
    out = pd.DataFrame(rows, columns=empty.columns)
    if out.empty:
        return empty
    excess = (out["agreement"] - out["expected"]).to_numpy()
    return out.iloc[np.argsort(-excess, kind="stable")].reset_index(drop=True)


_CAVITY_BLOCK = 1 << 22  # (votes x k) elements per block of pairs in _cavity_confusions
_FEW_CLASSES = 4  # up to this many classes, the per-pair sums are weighted bincounts


class _VoteIndex:
    """The sampled votes (item-sorted, sources ascending within an item) by source
    (``order``, ``bounds``), each vote's confusion row ``cell = j k + l``, and ``lookup``:
    ``(items, sources)`` -> the row of that source's vote on each item, or ``m k``."""

    def __init__(self, item: np.ndarray, src: np.ndarray, lab: np.ndarray, n: int, m: int,
                 k: int) -> None:
        self.item, self.lab, self.m, self.k = item, lab, m, k
        self.order = np.argsort(src, kind="stable")  # votes by source, items ascending
        self.bounds = np.searchsorted(src[self.order], np.arange(m + 1))
        self.cell = flat_index(src, k, lab)
        self.lookup = _vote_lookup(item, src, self.cell, n, m, k)


def _cavity_confusions(
    votes: _VoteIndex, log_q: np.ndarray, log_theta: np.ndarray, own: np.ndarray,
    other: np.ndarray,
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """For every pair ``p``: the confusion ``theta[y, l]`` of source ``own[p]`` against the
    cavity posterior of its items (``log_q`` without the votes of ``own[p]`` and
    ``other[p]``), all pairs at once (blocks of pairs bound the temporaries).

    ``theta`` solves ``R = E[q 1(vote = l)] = E[q q^T] theta`` (the reference posterior
    ``q`` is uncertain: solving by ``E[q q^T]`` undoes that blur). Also returns, for the
    items where ``other[p]`` voted too: the pair index, the cavity posterior and whether
    the two votes agree."""
    item, lab, m, k = votes.item, votes.lab, votes.m, votes.k
    order, bounds, cell, lookup = votes.order, votes.bounds, votes.cell, votes.lookup
    n_pairs = own.shape[0]
    seg = (bounds[own + 1] - bounds[own]).astype(np.int64)
    # the log confusion rows [j k + l, c], and a zero row m k for "the other did not vote"
    rows = np.zeros((m * k + 1, k))
    rows[: m * k] = log_theta.transpose(0, 2, 1).reshape(m * k, k)
    theta = np.empty((n_pairs, k, k))
    hits: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    step = max(1, _CAVITY_BLOCK // max(1, int(seg.max(initial=1)) * k))
    eye = np.eye(k)
    for p0 in range(0, n_pairs, step):
        ps = np.arange(p0, min(p0 + step, n_pairs))
        sg = seg[ps]
        start = np.cumsum(sg) - sg
        local = np.repeat(np.arange(ps.size), sg)
        v = order[np.repeat(bounds[own[ps]] - start, sg) + np.arange(int(sg.sum()))]
        ij, lj = item[v], lab[v]
        o_cell = lookup(ij, np.repeat(other[ps], sg))  # the other's vote row, or m k
        r = np.take(log_q, ij, axis=0)
        r -= np.take(rows, cell[v], axis=0)
        r -= np.take(rows, o_cell, axis=0)
        q = row_softmax(r)[0]
        # R[p, c, l] and M[p, c, d] summed over each pair's votes
        if k <= _FEW_CLASSES:  # a few weighted bincounts over all the pairs' votes
            R = np.empty((ps.size, k, k))
            M = np.empty((ps.size, k, k))
            rl = flat_index(local, k, lj)
            for c in range(k):
                R[:, c, :] = np.bincount(rl, weights=q[:, c],
                                         minlength=ps.size * k).reshape(-1, k)
                for d in range(c, k):
                    M[:, c, d] = M[:, d, c] = np.bincount(local, weights=q[:, c] * q[:, d],
                                                          minlength=ps.size)
        else:  # one (BLAS) product per pair
            hot = eye[lj]
            cuts = [*start.tolist(), q.shape[0]]
            R = np.stack([q[a:b].T @ hot[a:b] for a, b in itertools.pairwise(cuts)])
            M = np.stack([q[a:b].T @ q[a:b] for a, b in itertools.pairwise(cuts)])
        t = np.linalg.solve(M + 1e-6 * eye, R)
        np.clip(t, 1e-3, None, out=t)
        theta[ps] = t / t.sum(axis=2, keepdims=True)
        h = np.flatnonzero(o_cell < m * k)
        hits.append((ps[local[h]], q[h], lj[h] == o_cell[h] % k))
    return theta, tuple(np.concatenate(x) for x in zip(*hits, strict=True))  # type: ignore[return-value]


_FIT_TOL = 1e-6  # posterior change at which _fit_confusions stops early
_LOOKUP_MAX = 1 << 24  # entries of the dense (item, source) table of _vote_lookup


def _vote_lookup(item: np.ndarray, src: np.ndarray, cell: np.ndarray, n: int, m: int,
                 k: int) -> Any:
    """``f(items, sources)`` -> the row ``j k + l`` of source ``j``'s vote ``l`` on each item,
    or ``m k`` where it did not vote: a dense table when it is small, else a binary search
    in the sorted ``(item, source)`` keys."""
    none = m * k
    if n * m <= _LOOKUP_MAX:
        table = np.full(n * m, none, dtype=np.int64)
        table[flat_index(item, m, src)] = cell
        return lambda i, j: table[flat_index(i, m, j)]
    key = flat_index(item, m, src)  # ascending

    def search(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        target = flat_index(i, m, j)
        pos = np.minimum(np.searchsorted(key, target), key.shape[0] - 1)
        return np.where(key[pos] == target, cell[pos], none)

    return search


def _components(i: np.ndarray, j: np.ndarray, m: int) -> list[list[int]]:
    """Connected components (of size >= 2) of the graph with edges ``(i, j)``."""
    parent = np.arange(m)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for u, v in zip(i.tolist(), j.tolist(), strict=True):
        ru, rv = find(u), find(v)
        if ru != rv:
            parent[max(ru, rv)] = min(ru, rv)
    members: dict[int, list[int]] = {}
    for x in sorted({*i.tolist(), *j.tolist()}):
        members.setdefault(find(x), []).append(x)
    return [g for g in members.values() if len(g) >= 2]


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _show(v: Any) -> str:
    return repr(_plain(v))


def _names(names: np.ndarray, group: list[int]) -> str:
    shown = [_show(names[j]) for j in group[:6]]
    if len(group) > 6:
        shown.append(f"... ({len(group)} sources)")
    return ", ".join(shown)
