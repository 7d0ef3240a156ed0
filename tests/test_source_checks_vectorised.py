"""The vectorised correlation test of ``wsagg._source_checks`` against a pair-by-pair
reference (the straightforward loop it replaced), on data with correlated sources: the
same pairs flagged, the same statistics to 1e-9 (relative)."""

from __future__ import annotations

import numpy as np
import pytest

from wsagg import _source_checks as sc
from wsagg.datasets import make_dawid_skene
from wsagg.labels import as_label_matrix, flat_index


def _reference(item, src, lab, n, keep, names, m, k):
    """Pair by pair: the cavity posterior of each source's items without the pair's votes,
    each confusion solved from ``R = E[q q^T] theta``, predicted vs observed agreement."""
    sel = keep[src]
    item, src, lab = item[sel], src[sel], lab[sel]
    a, b = sc._pairs(item, n)
    pair_key, inv = np.unique(flat_index(src[a], m, src[b]), return_inverse=True)
    shared = np.bincount(inv)
    rate = np.bincount(inv, weights=(lab[a] == lab[b])) / shared
    cand = np.flatnonzero(shared >= sc.MIN_SHARED)
    cand = cand[np.argsort(-rate[cand], kind="stable")[: sc.MAX_CANDIDATES]]
    log_theta, log_q = sc._fit_confusions(item, src, lab, n, m, k)
    rows = []
    for p in cand.tolist():
        ja, jb = int(pair_key[p] // m), int(pair_key[p] % m)
        ia, la = item[src == ja], lab[src == ja]
        ib, lb = item[src == jb], lab[src == jb]

        def cavity(j, ij, lj, o, io, lo):
            r = log_q[ij] - log_theta[j, :, lj]
            pos = np.minimum(np.searchsorted(io, ij), io.shape[0] - 1)
            hit = io[pos] == ij
            r[hit] -= log_theta[o, :, lo[pos[hit]]]
            r = np.exp(r - r.max(axis=1, keepdims=True))
            return r / r.sum(axis=1, keepdims=True), hit, pos

        def confusion(q, lj):
            R = np.stack([q[lj == v].sum(axis=0) for v in range(k)], axis=1)
            t = np.linalg.lstsq(q.T @ q + 1e-6 * np.eye(k), R, rcond=None)[0]
            t = np.clip(t, 1e-3, None)
            return t / t.sum(axis=1, keepdims=True)

        qa, hit, pos = cavity(ja, ia, la, jb, ib, lb)
        qb, _, _ = cavity(jb, ib, lb, ja, ia, la)
        agree_given = (confusion(qa, la) * confusion(qb, lb)).sum(axis=1)
        pr = np.clip(qa[hit] @ agree_given, 0.0, 1.0)
        obs = float(np.count_nonzero(la[hit] == lb[pos[hit]]))
        exp, var, cnt = float(pr.sum()), float((pr * (1 - pr)).sum()), int(hit.sum())
        z = (obs - exp) / np.sqrt(var + 1e-9)
        if cnt and (obs - exp) / cnt >= sc.EXCESS and z >= sc.Z:
            rows.append((ja, jb, cnt, obs / cnt, exp / cnt, z))
    rows.sort(key=lambda r: -(r[3] - r[4]))
    return rows


@pytest.mark.parametrize("k", [2, 3, 5, sc._FEW_CLASSES + 4])
@pytest.mark.parametrize("seed", [0, 1])
def test_vectorised_correlation_test_equals_the_pair_by_pair_reference(k, seed):
    d = make_dawid_skene(2000, 10, k, coverage=0.6, random_state=seed)
    L = d.L.toarray()
    rng = np.random.default_rng(seed)
    c = L[:, 0].copy()
    flip = rng.random(len(c)) < 0.3
    c[flip] = L[flip, 1]  # a source copying one of two others
    c2 = L[:, 2].copy()
    c2[rng.random(len(c)) < 0.2] = -1  # a thinned copy
    lm = as_label_matrix(np.hstack([L, c[:, None], c2[:, None]]))
    item, src, lab, n = sc._sample(lm)
    keep = np.ones(lm.n_sources, dtype=bool)
    m = lm.n_sources
    names = np.arange(m)
    got = sc._correlated(item, src, lab, n, keep, names, m, k)
    want = _reference(item, src, lab, n, keep, names, m, k)
    assert len(want) >= 2  # the test has something to find
    assert [(r.source_a, r.source_b, r.n_shared) for r in got.itertuples()] == [
        (r[0], r[1], r[2]) for r in want
    ]
    np.testing.assert_allclose(got[["agreement", "expected", "z"]].to_numpy(float),
                               np.array([r[3:] for r in want]), rtol=1e-9)


def test_item_sample_is_the_same_whether_or_not_the_votes_are_grouped_by_item(monkeypatch):
    """The grouped path (binary search for the chosen items' runs of votes) and the mask
    over every vote give the same sample."""
    from wsagg.labels import LabelMatrix

    monkeypatch.setattr(sc, "MAX_ITEMS", 300)
    d = make_dawid_skene(3000, 8, 3, coverage=0.5, random_state=3)
    grouped = as_label_matrix(d.L.toarray())
    assert grouped.grouped_by_item()
    perm = np.random.default_rng(0).permutation(grouped.n_votes)
    shuffled = LabelMatrix(item=grouped.item[perm], source=grouped.source[perm],
                           label=grouped.label[perm], n_items=grouped.n_items,
                           n_sources=grouped.n_sources, n_classes=3,
                           item_ids=grouped.item_ids, source_names=grouped.source_names,
                           classes=grouped.classes)
    assert not shuffled.grouped_by_item()
    a, b = sc._sample(grouped), sc._sample(shuffled)
    assert a[3] == b[3] > 0
    for x, y in zip(a[:3], b[:3], strict=True):
        np.testing.assert_array_equal(x, y)
