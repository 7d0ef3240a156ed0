"""Issue 13, the distributed engine under faults, on a real ``LocalCluster``: corrupt,
missing, replaced and repaired partition files, a partition holding a stray class, a
worker killed mid-fit and ``client.restart()`` mid-fit. Every failure is a
:class:`~wsagg.exceptions.PartitionError` (or a ``ValueError``) that names the partition and
says what to do; a fit that completes equals the in-memory fit."""

from __future__ import annotations

import os
import threading
import time
import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="the dask extra is not installed")
distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")

from wsagg import DawidSkene  # noqa: E402
from wsagg.datasets._synthetic import make_dawid_skene  # noqa: E402
from wsagg.distributed import PartitionError, VotePartitions, save_partition  # noqa: E402

TOL = 1e-8


@pytest.fixture(scope="module")
def data():
    d = make_dawid_skene(900, 5, 3, coverage=0.7, random_state=2)
    return d.L.to_dense()


@pytest.fixture
def own_client():
    """A 2-worker in-process cluster of this test's own (the test breaks it)."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c, cluster


def _quiet_fit(est, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X)


def _files(tmp_path, L, n=3):
    cuts = np.linspace(0, L.shape[0], n + 1).astype(int)
    return [str(save_partition(tmp_path / f"p{i}.npz", L[cuts[i] : cuts[i + 1]],
                               item_ids=np.arange(cuts[i], cuts[i + 1])))
            for i in range(n)]


def _same(a, b, L, atol=TOL):
    np.testing.assert_allclose(a.confusion_, b.confusion_, atol=atol)
    np.testing.assert_allclose(a.predict_proba(L), b.predict_proba(L), atol=atol)


def test_corrupt_partition_is_named_on_the_cluster_and_streamed(client, tmp_path, data):
    paths = _files(tmp_path, data)
    raw = open(paths[1], "rb").read()
    with open(paths[1], "wb") as fh:
        fh.write(raw[: len(raw) // 2])  # truncated: a BadZipFile inside the worker
    for engine in ("dask", "stream"):
        vp = VotePartitions.from_files(paths, engine=engine, n_sources=5, n_classes=3)
        with pytest.raises(PartitionError, match=r"p1\.npz cannot be read \(BadZipFile"):
            _quiet_fit(DawidSkene(), vp)


def test_repaired_partition_is_read_afresh(client, tmp_path, data):
    paths = _files(tmp_path, data)
    good = open(paths[2], "rb").read()
    with open(paths[2], "wb") as fh:
        fh.write(b"garbage")
    # (the failures are kept, as a session keeps its last exception: they hold the failed
    # tasks on the scheduler, which served them again for the same key before the fix)
    with pytest.raises((PartitionError, ValueError, OSError)) as first:  # named: see above
        _quiet_fit(DawidSkene(), list(paths))
    vp = VotePartitions.from_files(paths, n_sources=5, n_classes=3)
    with pytest.raises((PartitionError, ValueError, OSError)) as second:
        _quiet_fit(DawidSkene(), vp)
    with open(paths[2], "wb") as fh:  # repaired in place
        fh.write(good)
    local = _quiet_fit(DawidSkene(), data)
    _same(_quiet_fit(DawidSkene(), list(paths)), local, data)  # not the cached failure
    _same(_quiet_fit(DawidSkene(), vp), local, data)  # the same VotePartitions, too
    assert first.value is not None and second.value is not None


def test_missing_partition_is_named(client, tmp_path, data):
    paths = _files(tmp_path, data)
    vp = VotePartitions.from_files(paths, n_sources=5, n_classes=3)
    os.remove(paths[0])
    with pytest.raises(FileNotFoundError, match=r"p0\.npz does not exist"):
        _quiet_fit(DawidSkene(), vp)


def test_partition_replaced_mid_fit_is_refused(tmp_path, data, monkeypatch):
    paths = _files(tmp_path, data)
    other = data.copy()
    other[other >= 0] = (other[other >= 0] + 1) % 3  # different votes, same shape
    replacement = save_partition(tmp_path / "new.npz", other[600:],
                                 item_ids=np.arange(600, 900))
    vp = VotePartitions.from_files(paths, engine="stream", cache=False, n_sources=5,
                                   n_classes=3)
    reads = []
    real_load = np.load

    def load(file, *args, **kwargs):  # the stream engine re-reads every file each pass
        if str(file) == paths[2]:
            reads.append(1)
            if len(reads) == 2:  # replaced (atomically) while the fit is under way
                os.replace(replacement, paths[2])
        return real_load(file, *args, **kwargs)

    monkeypatch.setattr(np, "load", load)
    with pytest.raises(PartitionError, match=r"p2\.npz changed during the fit"):
        _quiet_fit(DawidSkene(max_iter=50, tol=0.0), vp)
    assert len(reads) >= 2


def test_stray_class_in_one_partition_is_refused(client, tmp_path, data):
    binary = np.where(data >= 0, data % 2, -1)
    stray = binary.copy()
    stray[650, 1] = 7  # one partition holds label 7: k would silently be 8
    paths = _files(tmp_path, stray)
    for engine in ("dask", "stream"):
        vp = VotePartitions.from_files(paths, engine=engine)
        with pytest.raises(ValueError, match=r"partitions' votes.*only 3 distinct.*n_classes"):
            _quiet_fit(DawidSkene(), vp)
    X = da.from_array(stray, chunks=(300, -1))
    with pytest.raises(ValueError, match="n_classes"):
        _quiet_fit(DawidSkene(), X)


def test_killed_worker_mid_fit_recovers_or_explains(own_client, data):
    _, cluster = own_client
    X = da.from_array(data, chunks=(150, -1))
    local = _quiet_fit(DawidSkene(max_iter=200, tol=0.0), data)

    def kill():
        time.sleep(0.8)
        name = sorted(cluster.workers)[0]
        cluster.sync(cluster.workers[name].close, executor_wait=False)

    t = threading.Thread(target=kill)
    t.start()
    try:
        dist = _quiet_fit(DawidSkene(max_iter=200, tol=0.0), X)
    except PartitionError as err:  # acceptable: a clear message, not a raw Dask error
        assert "worker" in str(err) or "cluster" in str(err)
    else:
        # the lost partitions were recomputed (sums in another order over 200 iterations)
        _same(dist, local, data, atol=1e-6)
    finally:
        t.join()


def test_client_restart_mid_fit_is_a_clear_error(own_client, data, monkeypatch):
    import wsagg.distributed.engine as engine

    monkeypatch.setattr(engine, "NO_WORKER_TIMEOUT", 3.0)  # workers without nannies die
    c, _ = own_client
    X = da.from_array(data, chunks=(150, -1))
    started = threading.Event()

    def restart():
        started.wait(10)
        time.sleep(0.5)
        c.restart(wait_for_workers=False)

    t = threading.Thread(target=restart)
    t.start()
    try:
        started.set()
        with pytest.raises(PartitionError, match=r"lost this fit's tasks|no worker for"):
            _quiet_fit(DawidSkene(max_iter=100_000, tol=0.0), X)
    finally:
        t.join()
