"""The adversarial benchmarks' smoke modes run (so the scripts cannot rot)."""

from __future__ import annotations

import json

import pytest


def test_speed_benchmark_smoke(tmp_path):
    from benchmarks import bench_adversarial_speed as bench

    rows = bench.main(["--smoke", "--out-dir", str(tmp_path)])
    assert {r["k"] for r in rows} == {2, 3}
    for r in rows:
        assert r["scipy_status"] == r["cvxpy_status"] == "optimal"
        assert r["obj_diff"] < 1e-6 and r["max_prob_diff"] < 1e-4
        assert r["torch_obj_diff"] < 1e-6
    saved = json.loads((tmp_path / "adversarial_speed_smoke.json").read_text())
    assert saved["rows"] and "versions" in saved["environment"]


@pytest.mark.realdata
def test_paper_benchmark_smoke(tmp_path, data_home):
    from benchmarks import bench_adversarial_paper as bench

    rows = bench.main(["--smoke", "--data-home", str(data_home), "--out-dir", str(tmp_path)])
    assert {r["dataset"] for r in rows} == set(bench.SMOKE_DATASETS)
    for r in rows:
        # our g* reproduces the paper's (1/n) d(eta, g*) row to its 2 decimals
        assert abs(r["gstar_logloss"] - r["paper_gstar_logloss"]) <= 0.005 + 1e-9
        assert r["BF_logloss"] >= r["gstar_logloss"] - 1e-9
    assert (tmp_path / "adversarial_paper_smoke.csv").exists()


@pytest.mark.realdata
def test_convergence_benchmark_smoke(tmp_path, data_home):
    from benchmarks import bench_adversarial_convergence as bench

    rows = bench.main(["--smoke", "--data-home", str(data_home), "--out-dir", str(tmp_path)])
    assert all(r["excess_logloss"] >= -1e-9 for r in rows)  # g* is the floor
    assert (tmp_path / "adversarial_convergence_smoke.png").stat().st_size > 0
