"""The threaded input passes of a Dawid-Skene fit give what the one-thread passes give.

``n_jobs > 1`` converts a large dense matrix (:func:`wsagg.labels.as_label_matrix`), builds
the one-hot design and its column sums by runs of chunks on threads, and runs the
fit-time source checks beside the fit; none of that may change a number or lose a warning.
The chunk sizes are shrunk here so that small inputs cross many chunk and run seams.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from wsagg import DawidSkene
from wsagg import labels as labels_mod
from wsagg.aggregation.dawid_skene import em
from wsagg.aggregation.dawid_skene import estimator as est_mod
from wsagg.datasets import make_dawid_skene
from wsagg.exceptions import DependentSourcesWarning, SparseSourcesWarning
from wsagg.labels import LabelMatrix, as_label_matrix


def _dense(n=3000, m=9, k=3, seed=0):
    d = make_dawid_skene(n, m, k, coverage=0.6, random_state=seed)
    return d.L.to_dense()


@pytest.mark.parametrize("n_jobs", [2, 3])
def test_threaded_dense_conversion_is_the_same(monkeypatch, n_jobs):
    monkeypatch.setattr(labels_mod, "_DENSE_BLOCK", 64)  # ~7 rows per block
    monkeypatch.setattr(labels_mod, "DENSE_THREADED_CELLS", 1)
    L = _dense()
    one = as_label_matrix(L)
    many = as_label_matrix(L, n_jobs=n_jobs)
    for name in ("item", "source", "label"):
        a, b = getattr(one, name), getattr(many, name)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert many.n_classes == one.n_classes


def test_threaded_dense_conversion_refuses_bad_values(monkeypatch):
    monkeypatch.setattr(labels_mod, "_DENSE_BLOCK", 64)
    monkeypatch.setattr(labels_mod, "DENSE_THREADED_CELLS", 1)
    L = _dense()
    L[-1, 0] = -2  # in the last block, converted by the last thread
    with pytest.raises(ValueError, match="contains -2; the only negative value allowed is -1"):
        as_label_matrix(L, n_jobs=2)


def _lm(item, source, label, n, m, k):
    return LabelMatrix(item, source, label, n, m, k, np.arange(n), np.arange(m), np.arange(k))


def _grouped_votes(seed, disorder):
    """Votes grouped by item; ``disorder``: sources out of order (and repeated) within
    some items, so the CSR is not canonical and is fixed by ``sum_duplicates``."""
    rng = np.random.default_rng(seed)
    n, m, k = 400, 6, 3
    item = np.sort(rng.integers(0, n, 2000))
    source = rng.integers(0, m, item.size)
    if not disorder:
        key = np.unique(item * m + source)
        item, source = key // m, key % m
    label = rng.integers(0, k, item.size)
    return item, source, label, n, m, k


@pytest.mark.parametrize("disorder", [False, True])
@pytest.mark.parametrize("n_jobs", [2, 4])
def test_threaded_one_hot_is_the_same_matrix(monkeypatch, disorder, n_jobs):
    monkeypatch.setattr(em, "_CHUNK", 37)  # chunk and run seams inside items
    votes = _grouped_votes(1, disorder)
    one = em.one_hot(_lm(*votes))
    many = em.one_hot(_lm(*votes), n_jobs=n_jobs)
    assert one.has_canonical_format and many.has_canonical_format
    np.testing.assert_array_equal(one.indptr, many.indptr)
    np.testing.assert_array_equal(one.indices, many.indices)
    np.testing.assert_array_equal(one.data, many.data)
    ref = _lm(*votes).one_hot()  # LabelMatrix's own (COO) construction
    assert (many != ref).nnz == 0


def test_seam_between_runs_that_breaks_the_order_is_seen(monkeypatch):
    """Two votes of one item in decreasing column order, exactly where two runs meet: the
    per-run checks cannot see it, the seam check must (else the CSR is wrongly canonical)."""
    monkeypatch.setattr(em, "_CHUNK", 4)
    # chunks (= runs) of 4 votes: [item 0: 0, 1 | item 1: 2, 3] [item 1: 0 | item 2: 0, 1, 2]
    item = np.array([0, 0, 1, 1, 1, 2, 2, 2])
    source = np.array([0, 1, 2, 3, 0, 0, 1, 2])  # item 1: source 3 then 0, across the seam
    label = np.zeros(8, dtype=np.int64)
    lm = _lm(item, source, label, 3, 4, 2)
    V = em.one_hot(lm, n_jobs=2)
    ref = _lm(item, source, label, 3, 4, 2).one_hot()
    assert (V != ref).nnz == 0
    assert np.all(np.diff(V.indices[V.indptr[1] : V.indptr[2]]) > 0)  # sorted after all


def test_vote_counts_are_the_design_column_sums(monkeypatch):
    """The fit takes the design's column sums from LabelMatrix.vote_counts (shared with the
    source checks) instead of a pass over the design."""
    monkeypatch.setattr(em, "_CHUNK", 50)
    lm = as_label_matrix(_dense())
    V = em.one_hot(lm, n_jobs=2)
    np.testing.assert_array_equal(em.column_sums(V), lm.vote_counts().ravel().astype(float))


def test_threaded_fit_equals_one_thread(monkeypatch):
    monkeypatch.setattr(labels_mod, "_DENSE_BLOCK", 64)
    monkeypatch.setattr(labels_mod, "DENSE_THREADED_CELLS", 1)
    monkeypatch.setattr(est_mod, "_BACKGROUND_CHECK_VOTES", 1)
    monkeypatch.setattr(em, "_CHUNK", 333)
    L = _dense(n=4000)
    p1 = DawidSkene(n_jobs=1).fit_predict_proba(L)
    p2 = DawidSkene(n_jobs=2).fit_predict_proba(L)
    np.testing.assert_allclose(p2, p1, rtol=0, atol=1e-12)


def _copied(n=3000):
    L = _dense(n=n, m=6, k=2, seed=3)
    return np.hstack([L, L[:, :1]])  # source 6 copies source 0


@pytest.mark.parametrize("method", ["fit", "fit_predict_proba"])
def test_background_source_checks_warn_in_the_callers_thread(monkeypatch, method):
    monkeypatch.setattr(est_mod, "_BACKGROUND_CHECK_VOTES", 1)
    started = []
    real = est_mod.DawidSkene._source_checks_in_background

    def spy(self, lm):
        started.append(real(self, lm))
        return started[-1]

    monkeypatch.setattr(est_mod.DawidSkene, "_source_checks_in_background", spy)
    ds = DawidSkene(n_jobs=2)
    with pytest.warns(DependentSourcesWarning, match="look like copies"):
        getattr(ds, method)(_copied())
    assert started == [True]  # the checks did run on the background thread
    assert "_pending_source_checks" not in ds.__dict__  # joined, nothing left on the model
    with warnings.catch_warnings():
        warnings.simplefilter("error", DependentSourcesWarning)
        DawidSkene(n_jobs=1).fit(_dense(m=6, k=2))  # (independent sources: no warning)


def test_background_source_checks_same_findings_as_in_line(monkeypatch):
    L = np.hstack([_copied(), np.full((3000, 9), -1)])  # 9 silent sources: sparse warning
    L[:5, 7:] = 0
    with warnings.catch_warnings(record=True) as inline:
        warnings.simplefilter("always")
        DawidSkene(n_jobs=2).fit(L)  # (small: in line)
    monkeypatch.setattr(est_mod, "_BACKGROUND_CHECK_VOTES", 1)
    with warnings.catch_warnings(record=True) as background:
        warnings.simplefilter("always")
        DawidSkene(n_jobs=2).fit(L)
    picked = (DependentSourcesWarning, SparseSourcesWarning)

    def keep(ws):
        return [(w.category, str(w.message)) for w in ws if issubclass(w.category, picked)]

    assert keep(inline) and keep(background) == keep(inline)


def test_background_source_checks_are_joined_when_the_fit_fails(monkeypatch):
    monkeypatch.setattr(est_mod, "_BACKGROUND_CHECK_VOTES", 1)

    def boom(self, lm, y):
        raise RuntimeError("fit failed")

    monkeypatch.setattr(est_mod.DawidSkene, "_fit_core", boom)
    ds = DawidSkene(n_jobs=2)
    with pytest.warns(DependentSourcesWarning), pytest.raises(RuntimeError, match="fit failed"):
        ds.fit(_copied())
    assert "_pending_source_checks" not in ds.__dict__


def test_covered_argmax_counts_fast_paths():
    rng = np.random.default_rng(0)
    for k in (2, 3):
        p = rng.random((5000, k))
        p[::7, 1] = p[::7, 0]  # ties go to class 0, as np.argmax does
        for indptr in (np.arange(5001), np.concatenate([[0], np.cumsum(rng.integers(0, 3, 5000))])):
            cov = np.diff(indptr) > 0
            counts, n_cov = est_mod._covered_argmax_counts(p, indptr)
            np.testing.assert_array_equal(counts, np.bincount(p[cov].argmax(1), minlength=k))
            assert n_cov == cov.sum()


@pytest.mark.parametrize("k", [2, 4])
def test_threaded_initial_posterior(monkeypatch, k):
    monkeypatch.setattr(em, "_CHUNK", 100)
    L = _dense(k=k)
    L[::5] = -1  # items without a vote: uniform
    lm = as_label_matrix(L)
    design = em.build_design(lm, "ignore")
    one = em.initial_posterior(lm, None, design)
    np.testing.assert_array_equal(em.initial_posterior(lm, None, design, n_jobs=3), one)
    np.testing.assert_allclose(one, em.initial_posterior(lm, None), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(one[::5], np.full((len(one[::5]), k), 1 / k))


def test_one_item_spanning_several_runs(monkeypatch):
    """An item with more votes than a run: three runs add to its row count; only the run
    where it starts writes that entry, the others hand their share back."""
    monkeypatch.setattr(em, "_CHUNK", 5)
    rng = np.random.default_rng(4)
    item = np.array([0, 0] + [1] * 30 + [2, 3, 3])
    source = np.concatenate([[0, 1], rng.integers(0, 4, 30), [2, 0, 3]])
    label = rng.integers(0, 2, item.size)
    one = em.one_hot(_lm(item, source, label, 5, 4, 2))
    for n_jobs in (2, 3, 7):
        many = em.one_hot(_lm(item, source, label, 5, 4, 2), n_jobs=n_jobs)
        np.testing.assert_array_equal(many.indptr, one.indptr)
        assert (many != one).nnz == 0


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork (POSIX)")
def test_background_checks_work_in_a_forked_child(monkeypatch):
    """A child forked after a background check inherits the pool but not its thread: the
    child's fit must start its own (a hang here would time the test out)."""
    import multiprocessing as mp

    monkeypatch.setattr(est_mod, "_BACKGROUND_CHECK_VOTES", 1)
    with pytest.warns(DependentSourcesWarning):
        DawidSkene(n_jobs=2).fit(_copied())  # the parent's pool thread now exists
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        found = pool.apply_async(_fit_and_count_warnings).get(timeout=60)
    assert found >= 1


def _fit_and_count_warnings() -> int:
    est_mod._BACKGROUND_CHECK_VOTES = 1
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        DawidSkene(n_jobs=2).fit(_copied())
    return sum(issubclass(w.category, DependentSourcesWarning) for w in ws)
