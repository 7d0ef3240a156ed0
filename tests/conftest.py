"""Shared pytest fixtures.

``data_home``: the directory of real datasets (``../shared/data`` next to the repository, or
``$WSAGG_DATA_HOME``). When it is missing, tests that use it are skipped with a clear reason,
unless ``WSAGG_REQUIRE_SHARED_DATA=1``, in which case they fail (so CI with the data mounted
cannot silently skip them).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = Path(__file__).resolve().parent / "data"


def _data_home_path() -> Path:
    env = os.environ.get("WSAGG_DATA_HOME")
    if env:
        return Path(env).expanduser()
    return REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_home() -> Path:
    """Path of the shared real-data directory (skip, or fail if required, when missing)."""
    path = _data_home_path()
    if not path.is_dir():
        msg = (
            f"real-data directory {path} not found; set WSAGG_DATA_HOME to the folder that "
            "holds MANIFEST.md (the shared datasets)"
        )
        if os.environ.get("WSAGG_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(msg + " (WSAGG_REQUIRE_SHARED_DATA=1 makes this an error)")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def test_data_dir() -> Path:
    """Path of the small vendored test datasets (``tests/data``)."""
    return TEST_DATA


@pytest.fixture(scope="module")
def client():
    """A 2-worker in-process Dask ``LocalCluster`` and its client, started and closed by
    the test module that uses it."""
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c
