"""Smoke run of the prepared GPU check on the CPU (torch device "cpu"): the script cannot rot
between the sessions that get a GPU."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
pytest.importorskip("torch", reason="the torch extra is not installed")

from benchmarks import bench_gpu


def test_gpu_check_smoke_on_cpu(tmp_path):
    rows = bench_gpu.main(["--device", "cpu", "--smoke", "--out-dir", str(tmp_path)])
    ds = [r for r in rows if r["part"] == "dawid_skene"]
    assert ds and ds[0]["max_posterior_diff"] < 1e-6
    bf = [r for r in rows if r["part"] == "adversarial"]
    assert len(bf) == 2 and all(r["objective_diff"] < 1e-6 for r in bf)
    assert (tmp_path / "gpu_check_smoke.json").exists()
