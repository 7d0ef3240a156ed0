"""Distributed / chunked Dawid-Skene EM equals the single-machine fit (wsagg.distributed)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

da = pytest.importorskip("dask.array", reason="the dask extra is not installed")
dd = pytest.importorskip("dask.dataframe", reason="the dask extra is not installed")
distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")

from wsagg import DawidSkene, MajorityVote  # noqa: E402
from wsagg.datasets._synthetic import make_dawid_skene  # noqa: E402
from wsagg.distributed import (  # noqa: E402
    PartitionError,
    VotePartitions,
    save_partition,
    write_posteriors,
)
from wsagg.labels import LabelMatrix  # noqa: E402

TOL = 1e-8


@pytest.fixture(scope="module")
def data():
    d = make_dawid_skene(1500, 7, 3, coverage=0.6, class_prior="zipf", random_state=3)
    return d, d.L.to_dense()


def _fit_quiet(est, X, y=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y)


def assert_same_fit(local, other, L_local, L_other=None, source_order=None):
    assert other.n_iter_ == local.n_iter_
    assert other.converged_ == local.converged_
    assert other.abstain_ == local.abstain_
    conf = local.confusion_ if source_order is None else local.confusion_[source_order]
    np.testing.assert_allclose(other.confusion_, conf, atol=TOL, rtol=0)
    np.testing.assert_allclose(other.class_prior_, local.class_prior_, atol=TOL, rtol=0)
    np.testing.assert_allclose(
        other.log_likelihood_history_, local.log_likelihood_history_, rtol=1e-10
    )
    p_local = local.predict_proba(L_local)
    p_other = other.predict_proba(L_local if L_other is None else L_other)
    if hasattr(p_other, "compute"):
        p_other = p_other.compute()
    np.testing.assert_allclose(p_other, p_local, atol=TOL, rtol=0)


@pytest.mark.parametrize(
    "chunks",
    [
        (1500,),  # one partition
        (500, 500, 500),
        (1, 0, 700, 0, 799),  # empty partitions and a one-item partition
        (100,) * 15,
    ],
)
def test_dask_array_on_cluster_equals_local(client, data, chunks):
    _, L = data
    local = _fit_quiet(DawidSkene(), L)
    X = da.from_array(L, chunks=(chunks, (L.shape[1],)))
    dist = _fit_quiet(DawidSkene(), X)
    assert dist.partition_info_["n_partitions"] == len(chunks)
    assert_same_fit(local, dist, L)


@pytest.mark.parametrize(
    "params",
    [
        {"abstain": "model"},
        {"abstain": "auto"},
        {"model": "one-coin", "smoothing": 0.0},
        {"class_prior": [0.5, 0.3, 0.2], "max_iter": 5},
        {"max_iter": 0},
    ],
)
def test_options_equal_local(client, data, params):
    _, L = data
    local = _fit_quiet(DawidSkene(**params), L)
    dist = _fit_quiet(DawidSkene(**params), da.from_array(L, chunks=(400, -1)))
    assert_same_fit(local, dist, L)


def test_partition_where_a_class_never_appears(client):
    d = make_dawid_skene(900, 5, 3, coverage=0.7, random_state=1)
    L = d.L.to_dense()
    order = np.argsort(d.y, kind="stable")  # partitions by true class: one holds only class 0
    L = L[order]
    first = np.flatnonzero(d.y[order] == 1)[0]
    L[:first][L[:first] > 0] = 0  # no vote for classes 1, 2 in the first partition
    local = _fit_quiet(DawidSkene(), L)
    dist = _fit_quiet(DawidSkene(), da.from_array(L, chunks=((first, 900 - first), (5,))))
    assert_same_fit(local, dist, L)


def test_semi_supervised_with_dask_y(client, data):
    d, L = data
    y = np.where(np.arange(L.shape[0]) % 7 == 0, d.y, -1)
    # known labels: "auto" cross-validates in memory only, so fix d for the comparison
    local = _fit_quiet(DawidSkene(diagonal_smoothing=0.1), L, y)
    X, y_dask = da.from_array(L, chunks=(300, -1)), da.from_array(y, 450)
    dist = _fit_quiet(DawidSkene(diagonal_smoothing=0.1), X, y_dask)
    assert_same_fit(local, dist, L)


def test_predict_proba_returns_lazy_dask_array(client, data):
    _, L = data
    ds = _fit_quiet(DawidSkene(), L)
    X = da.from_array(L, chunks=(333, 3))  # column chunks are merged
    out = ds.predict_proba(X)
    assert isinstance(out, da.Array) and out.shape == (L.shape[0], 3)
    np.testing.assert_allclose(out.compute(), ds.predict_proba(L), atol=1e-12)
    mv = MajorityVote().fit(L)  # any aggregator predicts on a Dask array
    np.testing.assert_allclose(mv.predict_proba(X).compute(), mv.predict_proba(L), atol=1e-12)


def test_repeated_votes_model_abstain_stream_and_cluster(client, tmp_path):
    d = make_dawid_skene(600, 4, 2, coverage=0.6, random_state=5)
    lm = d.L
    rep = np.flatnonzero(np.arange(lm.n_votes) % 9 == 0)  # some sources vote twice
    lm2 = LabelMatrix(
        item=np.r_[lm.item, lm.item[rep]], source=np.r_[lm.source, lm.source[rep]],
        label=np.r_[lm.label, 1 - lm.label[rep]], n_items=lm.n_items, n_sources=4,
        n_classes=2, item_ids=lm.item_ids, source_names=lm.source_names, classes=lm.classes,
    )
    local = _fit_quiet(DawidSkene(abstain="model"), lm2)
    for engine in ("stream", "dask"):
        vp = VotePartitions.from_label_matrix(lm2, n_partitions=5, engine=engine)
        dist = _fit_quiet(DawidSkene(abstain="model"), vp)
        assert_same_fit(local, dist, lm2)


def test_npz_files_streamed_equal_in_memory(tmp_path, data):
    d, L = data
    y = np.where(np.arange(L.shape[0]) % 11 == 0, d.y, -1)
    bounds = [0, 200, 200, 900, 1500]  # includes an empty file
    paths = []
    for i in range(4):
        lo, hi = bounds[i], bounds[i + 1]
        paths.append(save_partition(tmp_path / f"p{i}.npz", L[lo:hi], y[lo:hi],
                                    item_ids=np.arange(lo, hi)))
    local = _fit_quiet(DawidSkene(diagonal_smoothing=0.1), L, y)  # "auto": in memory only
    for cache in (False, True):
        vp = VotePartitions.from_files(paths, engine="stream", cache=cache)
        stream = _fit_quiet(DawidSkene(diagonal_smoothing=0.1), vp)
        assert_same_fit(local, stream, L)
    out = write_posteriors(stream, VotePartitions.from_files(paths, engine="stream"),
                           tmp_path / "post")
    got = pd.concat([pd.read_parquet(p) for p in out])
    np.testing.assert_array_equal(got["item"].to_numpy(), np.arange(L.shape[0]))
    np.testing.assert_allclose(got.filter(like="proba_").to_numpy(), local.predict_proba(L),
                               atol=TOL)


def test_file_list_goes_through_fit_on_cluster(client, tmp_path, data):
    _, L = data
    paths = [save_partition(tmp_path / f"q{i}.npz", L[i * 500 : (i + 1) * 500])
             for i in range(3)]
    local = _fit_quiet(DawidSkene(), L)
    dist = _fit_quiet(DawidSkene(), [str(p) for p in paths])  # plain list of files
    assert dist.partition_info_["engine"] == "dask"
    assert_same_fit(local, dist, L)


def test_wide_parquet_and_dask_dataframe(client, tmp_path, data):
    _, L = data
    names = [f"lf{j}" for j in range(L.shape[1])]
    frame = pd.DataFrame(L, columns=names, index=pd.Index(np.arange(L.shape[0]) + 10**6))
    local = _fit_quiet(DawidSkene(), frame.to_numpy())
    ddf = dd.from_pandas(frame, npartitions=4)
    dist = _fit_quiet(DawidSkene(), ddf)
    assert list(dist.source_names_) == names
    assert_same_fit(local, dist, L, L_other=L)
    files = []
    for i in range(3):
        f = tmp_path / f"w{i}.parquet"
        frame.iloc[i * 500 : (i + 1) * 500].to_parquet(f)
        files.append(f)
    post = write_posteriors(dist, VotePartitions.from_files(files), tmp_path / "wpost")
    got = pd.concat([pd.read_parquet(p) for p in post])
    np.testing.assert_array_equal(got["item"].to_numpy(), frame.index.to_numpy())
    np.testing.assert_allclose(got.filter(like="proba_").to_numpy(), local.predict_proba(L),
                               atol=TOL)


def test_long_dask_dataframe_needs_item_index(client, data):
    d, _ = data
    long = d.L.to_long()
    local = _fit_quiet(DawidSkene(), d.L)
    ddf = dd.from_pandas(long, npartitions=3)
    with pytest.raises(ValueError, match="set_index"):
        DawidSkene().fit(ddf)
    dist = _fit_quiet(DawidSkene(), ddf.set_index("item"))
    assert_same_fit(local, dist, d.L)


def test_worker_error_surfaces_on_driver(client, data):
    _, L = data
    bad = L.copy()
    bad[650, 2] = 7  # class 7 does not exist with n_classes=3
    X = da.from_array(bad, chunks=(300, -1))
    with pytest.raises(PartitionError, match=r"rows 600\.\.899: ValueError: vote 7 .*outside"):
        DawidSkene(n_classes=3).fit(X)
    with pytest.raises(PartitionError, match="non-integer"):
        DawidSkene(n_classes=3).fit(da.from_array(L + 0.5, chunks=(500, -1)))


def test_corrupt_file_is_named(tmp_path, data):
    _, L = data
    good = save_partition(tmp_path / "good.npz", L[:100])
    broken = tmp_path / "broken.npz"
    np.savez(broken, something=np.zeros(3))
    vp = VotePartitions.from_files([good, broken], engine="stream", n_classes=3)
    with pytest.raises(PartitionError, match=r"broken\.npz.*'L'"):
        DawidSkene().fit(vp)


def test_unsupported_estimator_and_options(client, data):
    _, L = data
    X = da.from_array(L, chunks=(500, -1))
    with pytest.raises(TypeError, match=r"MajorityVote cannot be fitted.*DawidSkene"):
        MajorityVote().fit(X)
    with pytest.raises(ValueError, match="n_init=1 only"):
        DawidSkene(n_init=3).fit(X)
    with pytest.raises(ValueError, match="no votes"):
        DawidSkene(n_classes=2).fit(da.full((10, 3), -1, chunks=5))
    with pytest.raises(ValueError, match="engine must be"):
        VotePartitions([], n_sources=1, engine="spark")


def test_scheduler_address_string(client, data):
    _, L = data
    vp = VotePartitions.from_dask_array(
        da.from_array(L, chunks=(750, -1)), client=client.scheduler.address
    )
    local = _fit_quiet(DawidSkene(), L)
    assert_same_fit(local, _fit_quiet(DawidSkene(), vp), L)


@settings(max_examples=8, deadline=None)
@given(cuts=st.lists(st.integers(0, 300), min_size=0, max_size=5))
@example(cuts=[144, 145])  # a partition holding one item with no vote (found by hypothesis)
def test_any_partitioning_streams_to_the_same_fit(cuts):
    d = make_dawid_skene(300, 4, 2, coverage=0.5, random_state=11)
    L = d.L.to_dense()
    bounds = sorted({0, 300, *cuts})
    chunks = tuple(np.diff(bounds).tolist())
    local = _fit_quiet(DawidSkene(), L)
    vp = VotePartitions.from_dask_array(da.from_array(L, chunks=(chunks, (4,))), engine="stream")
    assert_same_fit(local, _fit_quiet(DawidSkene(), vp), L)
