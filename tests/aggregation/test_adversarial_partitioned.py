"""The adversarial aggregator on partitioned votes equals the in-memory fit
(wsagg.aggregation.adversarial.partitioned)."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

da = pytest.importorskip("dask.array", reason="the dask extra is not installed")
dd = pytest.importorskip("dask.dataframe", reason="the dask extra is not installed")
distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")

from wsagg import AdversarialLogLoss, DawidSkene  # noqa: E402
from wsagg import distributed as wdist  # noqa: E402
from wsagg.aggregation.adversarial.partitioned import _merge_tables, _table_task  # noqa: E402
from wsagg.datasets._synthetic import make_dawid_skene  # noqa: E402
from wsagg.distributed import (  # noqa: E402
    PartitionError,
    PartitionMeta,
    VotePartitions,
    save_partition,
    write_posteriors,
)
from wsagg.labels import LabelMatrix  # noqa: E402

TOL = 1e-8


@pytest.fixture(scope="module")
def data():
    d = make_dawid_skene(2000, 6, 3, coverage=0.6, class_prior="zipf", random_state=3)
    L = d.L.to_dense()
    y = np.where(np.arange(2000) % 8 == 0, d.y, -1)  # 250 labeled items, spread out
    return d, L, y


def assert_same_fit(local, other, L_local, L_other=None):
    """Weights, game value, bounds, the solved problem and the probabilities agree."""
    np.testing.assert_allclose(other.weight_tensor_, local.weight_tensor_, atol=TOL, rtol=0)
    np.testing.assert_allclose(other.class_bias_, local.class_bias_, atol=TOL, rtol=0)
    np.testing.assert_allclose(other.source_weights_, local.source_weights_, atol=TOL, rtol=0)
    assert abs(other.game_value_ - local.game_value_) <= TOL
    assert other.solver_status_ == local.solver_status_
    assert other.n_patterns_ == local.n_patterns_
    assert other.n_target_items_ == local.n_target_items_
    assert other.widening_factor_ == local.widening_factor_
    pd.testing.assert_frame_equal(other.constraints_, local.constraints_, rtol=0, atol=TOL)
    # the dual handed to the solver is the in-memory one: same patterns, same counts
    p_loc, p_oth = local.dual_problem_, other.dual_problem_
    np.testing.assert_array_equal(p_oth.counts, p_loc.counts)
    assert (p_oth.V != p_loc.V).nnz == 0
    np.testing.assert_array_equal(p_oth.s, p_loc.s)
    np.testing.assert_array_equal(p_oth.e, p_loc.e)
    proba = other.predict_proba(L_local if L_other is None else L_other)
    if hasattr(proba, "compute"):
        proba = proba.compute()
    np.testing.assert_allclose(proba, local.predict_proba(L_local), atol=TOL, rtol=0)


@pytest.mark.parametrize(
    "chunks",
    [
        (2000,),  # one partition
        (700, 600, 700),
        (1, 0, 999, 0, 1000),  # empty partitions and a one-item partition
        (100,) * 20,  # more partitions than the merge tree's fan-in: two merge levels
    ],
)
def test_dask_array_with_dask_y_on_cluster_equals_local(client, data, chunks):
    _, L, y = data
    local = AdversarialLogLoss().fit(L, y)
    X = da.from_array(L, chunks=(chunks, (L.shape[1],)))
    dist = AdversarialLogLoss().fit(X, da.from_array(y, chunks=450))
    info = dist.partition_info_
    assert info["n_partitions"] == len(chunks) and info["engine"] == "dask"
    assert info["n_known"] == int((y >= 0).sum())
    assert info["n_target_items"] == int((y < 0).sum())
    assert_same_fit(local, dist, L, X)
    assert not hasattr(local, "partition_info_")


def test_partition_missing_a_class(client):
    d = make_dawid_skene(900, 5, 3, coverage=0.7, random_state=1)
    order = np.argsort(d.y, kind="stable")  # partitions by true class
    L, y_true = d.L.to_dense()[order], d.y[order]
    first = np.flatnonzero(y_true == 1)[0]
    L[:first][L[:first] > 0] = 0  # the first partition has votes (and labels) of class 0 only
    y = np.where(np.arange(900) % 6 == 0, y_true, -1)
    local = AdversarialLogLoss().fit(L, y)
    X = da.from_array(L, chunks=((first, 900 - first), (5,)))
    dist = AdversarialLogLoss().fit(X, y)  # y as a NumPy array is cut like X
    assert_same_fit(local, dist, L, X)


@pytest.mark.parametrize(
    "params",
    [
        {"constraints": "class_accuracy"},
        {"constraints": "confusion", "confidence": 0.9, "box": "wilson"},
        {"polytope": "all"},
        {"class_frequency": False},
        {"confidence": 0.0, "polytope": "all", "on_infeasible": "widen"},
    ],
)
def test_options_equal_local(client, data, params):
    _, L, y = data
    local = AdversarialLogLoss(**params).fit(L, y)
    dist = AdversarialLogLoss(**params).fit(da.from_array(L, chunks=(600, -1)), y)
    assert_same_fit(local, dist, L)


def test_in_memory_labeled_set_with_partitioned_target(client, data):
    d, L, _ = data
    L_lab, y_lab = L[:150], d.y[:150]
    target = L[150:]
    local = AdversarialLogLoss().fit(target, L_labeled=L_lab, y_labeled=y_lab)
    X = da.from_array(target, chunks=(400, -1))
    dist = AdversarialLogLoss().fit(X, L_labeled=L_lab, y_labeled=y_lab)
    assert_same_fit(local, dist, target, X)
    # the labeled set may itself be a Dask array, with its labels as a Dask array
    dist2 = AdversarialLogLoss().fit(
        X, L_labeled=da.from_array(L_lab, chunks=(40, -1)), y_labeled=da.from_array(y_lab, 60)
    )
    assert_same_fit(local, dist2, target)
    # through wsagg.distributed.fit as well
    dist3 = wdist.fit(AdversarialLogLoss(), X, L_labeled=L_lab, y_labeled=y_lab)
    assert_same_fit(local, dist3, target)


def test_labeled_set_shows_a_class_the_votes_never_do(client):
    """n_classes is inferred from the votes and the labeled set together, as in memory."""
    d = make_dawid_skene(600, 5, 3, coverage=0.7, random_state=2)
    L = d.L.to_dense()
    target = np.where(L[100:] == 2, 1, L[100:])  # no source votes class 2 on the target
    kw = {"L_labeled": L[:100], "y_labeled": d.y[:100]}
    local = AdversarialLogLoss(on_infeasible="widen").fit(target, **kw)
    dist = AdversarialLogLoss(on_infeasible="widen").fit(
        da.from_array(target, chunks=(100, -1)), **kw)
    assert dist.n_classes_ == local.n_classes_ == 3
    assert_same_fit(local, dist, target)


def test_user_bounds_without_labels(client, data):
    _, L, _ = data
    params = {"accuracy_bounds": [0.55, 0.9], "class_freq_bounds": [[0.3, 0.7], [0.1, 0.4],
                                                                     [0.0, 0.3]]}
    local = AdversarialLogLoss(**params).fit(L)
    dist = AdversarialLogLoss(**params).fit(da.from_array(L, chunks=(500, -1)))
    assert_same_fit(local, dist, L)


def test_empty_polytope_raises_or_widens_like_local(client):
    """Two sources 100% correct on 60 labeled items that always disagree on the 80 others:
    their accuracy lower bounds cannot both hold (the case of test_adversarial.py)."""
    L = np.vstack([np.array([[0, 0], [1, 1]] * 30), np.array([[0, 1], [1, 0]] * 40)])
    y = np.concatenate([np.array([0, 1] * 30), np.full(80, -1)])
    perm = np.random.default_rng(0).permutation(140)  # labeled items in every partition
    L, y = L[perm], y[perm]
    X = da.from_array(L, chunks=(50, -1))
    with pytest.raises(ValueError, match=r"polytope is empty.*on_infeasible='widen'"):
        AdversarialLogLoss().fit(X, y)
    local = AdversarialLogLoss(on_infeasible="widen").fit(L, y)
    dist = AdversarialLogLoss(on_infeasible="widen").fit(X, y)
    assert local.widening_factor_ > 1.0 and dist.feasibility_check_ == "lp"
    assert_same_fit(local, dist, L)


def test_npz_files_streamed_and_write_posteriors(tmp_path, data):
    _, L, y = data
    bounds = [0, 300, 300, 1200, 2000]  # includes an empty file
    paths = []
    for i in range(4):
        lo, hi = bounds[i], bounds[i + 1]
        paths.append(save_partition(tmp_path / f"p{i}.npz", L[lo:hi], y[lo:hi],
                                    item_ids=np.arange(lo, hi)))
    local = AdversarialLogLoss().fit(L, y)
    vp = VotePartitions.from_files(paths, engine="stream")
    stream = AdversarialLogLoss().fit(vp)
    assert stream.partition_info_["engine"] == "stream"
    assert_same_fit(local, stream, L)
    out = write_posteriors(stream, VotePartitions.from_files(paths, engine="stream"),
                           tmp_path / "post")
    got = pd.concat([pd.read_parquet(p) for p in out])
    np.testing.assert_array_equal(got["item"].to_numpy(), np.arange(L.shape[0]))
    np.testing.assert_allclose(got.filter(like="proba_").to_numpy(), local.predict_proba(L),
                               atol=TOL, rtol=0)


def test_dask_dataframe_with_label_column(client, data):
    _, L, y = data
    names = [f"lf{j}" for j in range(L.shape[1])]
    frame = pd.DataFrame(L, columns=names)
    frame["gold"] = y
    local = AdversarialLogLoss().fit(L, y)
    dist = AdversarialLogLoss().fit(dd.from_pandas(frame, npartitions=3), "gold")
    assert list(dist.source_names_) == names
    assert_same_fit(local, dist, L)


def test_repeated_votes_in_some_partitions_only(client):
    """Pattern codes use base 1 + the largest vote count; partitions without repeats encode
    in a smaller base, and the merge must still find the in-memory patterns."""
    d = make_dawid_skene(600, 4, 2, coverage=0.6, random_state=5)
    lm = d.L
    rep = np.flatnonzero((lm.item < 150) & (np.arange(lm.n_votes) % 5 == 0))
    lm2 = LabelMatrix(
        item=np.r_[lm.item, lm.item[rep]], source=np.r_[lm.source, lm.source[rep]],
        label=np.r_[lm.label, lm.label[rep]], n_items=lm.n_items, n_sources=4,
        n_classes=2, item_ids=lm.item_ids, source_names=lm.source_names, classes=lm.classes,
    )
    y = np.where(np.arange(600) % 5 == 0, d.y, -1)
    local = AdversarialLogLoss().fit(lm2, y)
    for engine in ("stream", "dask"):
        vp = VotePartitions.from_label_matrix(lm2, y, n_partitions=4, engine=engine)
        assert_same_fit(local, AdversarialLogLoss().fit(vp), lm2)


def test_merge_is_order_free_and_exact(data):
    """Merging partition tables in any grouping gives the table of the whole set."""
    _, L, y = data
    meta = PartitionMeta(6, 3, np.arange(6), np.arange(3))

    def table(lo, hi):
        return _table_task(("dense", L[lo:hi], np.arange(lo, hi), y[lo:hi]), meta, "unlabeled")

    whole = table(0, 2000)
    cuts = [0, 1, 500, 500, 1300, 2000]
    pieces = [table(cuts[i], cuts[i + 1]) for i in range(5)]
    for merged in (_merge_tables(pieces), _merge_tables(
            [_merge_tables(pieces[3:]), _merge_tables(pieces[:3])])):
        np.testing.assert_array_equal(merged.counts, whole.counts)
        assert (merged.V != whole.V).nnz == 0
        np.testing.assert_array_equal(merged.votes, whole.votes)
        for key in whole.lab:
            np.testing.assert_array_equal(merged.lab[key], whole.lab[key])
        assert merged.n_known == whole.n_known == 250


def test_partition_error_surfaces_on_driver(client, data):
    _, L, y = data
    bad = L.copy()
    bad[650, 2] = 7  # class 7 does not exist with n_classes=3
    X = da.from_array(bad, chunks=(300, -1))
    with pytest.raises(PartitionError, match=r"rows 600\.\.899: ValueError: vote 7 .*outside"):
        AdversarialLogLoss(n_classes=3).fit(X, y)
    vp = VotePartitions.from_dask_array(X, y, n_classes=3, engine="stream")
    with pytest.raises(PartitionError, match=r"rows 600\.\.899"):
        AdversarialLogLoss().fit(vp)


def test_unsupported_options_and_bad_input(client, data):
    d, L, y = data
    X = da.from_array(L, chunks=(500, -1))
    with pytest.raises(ValueError, match="group_patterns=False is not supported"):
        AdversarialLogLoss(group_patterns=False).fit(X, y)
    with pytest.raises(ValueError, match="needs constraint information"):
        AdversarialLogLoss().fit(X)
    with pytest.raises(ValueError, match="needs constraint information"):
        AdversarialLogLoss().fit(X, np.full(L.shape[0], -1))
    with pytest.raises(ValueError, match="not both"):
        AdversarialLogLoss().fit(X, y, L_labeled=L[:10], y_labeled=d.y[:10])
    with pytest.raises(ValueError, match="Pass both"):
        AdversarialLogLoss().fit(X, L_labeled=L[:10])
    with pytest.raises(ValueError, match="accuracy_bounds / class_freq_bounds, not both"):
        AdversarialLogLoss(accuracy_bounds=[0.6, 0.9]).fit(X, y)
    with pytest.raises(ValueError, match="Every item is labeled"):
        AdversarialLogLoss().fit(X, d.y)
    with pytest.raises(ValueError, match="L_labeled has 5 sources but L has 6"):
        AdversarialLogLoss().fit(X, L_labeled=L[:50, :5], y_labeled=d.y[:50])
    with pytest.raises(ValueError, match="no -1"):
        AdversarialLogLoss().fit(X, L_labeled=da.from_array(L[:50], 25),
                                 y_labeled=da.from_array(y[:50], 25))
    with pytest.raises(ValueError, match="n_classes=4"):
        AdversarialLogLoss(n_classes=4).fit(VotePartitions.from_dask_array(X, y, n_classes=3))
    with pytest.raises(TypeError, match="unexpected keyword argument 'L_labeled'"):
        wdist.fit(DawidSkene(), X, L_labeled=L[:10])


@settings(max_examples=8, deadline=None)
@given(cuts=st.lists(st.integers(0, 400), min_size=0, max_size=5),
       fan_in=st.sampled_from([2, 8]))
def test_any_partitioning_streams_to_the_same_fit(cuts, fan_in):
    d = make_dawid_skene(400, 5, 2, coverage=0.6, random_state=11)
    L = d.L.to_dense()
    y = np.where(np.arange(400) % 4 == 0, d.y, -1)
    bounds = sorted({0, 400, *cuts})
    chunks = tuple(np.diff(bounds).tolist())
    local = AdversarialLogLoss().fit(L, y)
    vp = VotePartitions.from_dask_array(da.from_array(L, chunks=(chunks, (5,))), y,
                                        engine="stream")
    # fan_in=2: the stream engine merges after every second partition (incremental merges)
    with mock.patch("wsagg.aggregation.adversarial.partitioned._FAN_IN", fan_in):
        assert_same_fit(local, AdversarialLogLoss().fit(vp), L)


def test_bench_distributed_adversarial_smoke(tmp_path):
    """The adversarial part of benchmarks/bench_distributed.py runs (so it cannot rot)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    res = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "bench_distributed.py"), "--smoke",
         "--parts", "adversarial", "--out-dir", str(tmp_path)],
        capture_output=True, text=True, check=False, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    rows = json.loads((tmp_path / "distributed_adversarial_smoke.json").read_text())["rows"]
    assert {r["mode"] for r in rows} == {"inmemory", "stream", "cluster"}
    for row in rows:
        assert "error" not in row and row["status"] == "optimal"
        if row["mode"] != "inmemory":
            assert row["max_weight_diff"] <= TOL and row["game_value_diff"] <= TOL
            assert row["max_proba_diff"] <= TOL
