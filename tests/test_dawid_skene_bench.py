"""The Dawid-Skene benchmarks' smoke modes run (so the scripts cannot rot), and the
real-data behaviour the docs describe holds on WRENCH youtube."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from wsagg import DawidSkene, MajorityVote
from wsagg.aggregation.dawid_skene import PriorCollapseWarning


def test_speed_benchmark_smoke(tmp_path):
    from benchmarks import bench_dawid_skene_speed as bench

    rows = bench.main(["--smoke", "--out-dir", str(tmp_path)])
    parts = {r["part"] for r in rows}
    assert {"peers", "peers_k10", "iteration", "scaling", "scaling-slope", "manyclass",
            "huge"} <= parts
    it = next(r for r in rows if r["part"] == "iteration")
    assert it["read_pass_s"] > 0 and it["ratio_iter_over_read_pass"] > 0
    assert it["read_pass_2threads_s"] > 0 and it["machine_2thread_scaling"] > 0
    huge = [r for r in rows if r["part"] == "huge"]
    assert {r.get("dtype") for r in huge} == {"float64", "float32"}, huge
    assert all(r["peak_rss_fit_gib"] > 0 and r["fit_traced_peak_gib"] > 0 for r in huge)
    saved = json.loads((tmp_path / "dawid_skene_speed_smoke.json").read_text())
    assert saved["rows"] and "versions" in saved["environment"]


def test_iteration_floor_benchmark_smoke(tmp_path):
    from benchmarks import bench_iteration_floor as bench

    rows = bench.main(["--smoke", "--out-dir", str(tmp_path)])
    by = {r["method"]: r for r in rows}
    assert {"dawid-skene", "bcc", "glad", "mace"} <= set(by)
    assert by["dawid-skene"]["read_pass_s"] > 0 and "iter_s" in by["dawid-skene"]
    assert by["majority"]["note"] == "not iterative"
    assert (tmp_path / "iteration_floor_smoke.json").exists()


@pytest.mark.realdata
def test_realdata_benchmark_smoke(tmp_path, data_home, monkeypatch):
    monkeypatch.setenv("WSAGG_DATA_HOME", str(data_home))
    from benchmarks import bench_dawid_skene_realdata as bench

    rows = bench.main(["--smoke", "--out-dir", str(tmp_path)])
    assert {r["dataset"] for r in rows} == set(bench.SMOKE_DATASETS)
    assert all(0.0 <= r["acc"] <= 1.0 for r in rows)
    assert (tmp_path / "dawid_skene_realdata_smoke.csv").exists()


@pytest.mark.realdata
def test_youtube_abstain_model_vs_ignore(data_home):
    from wsagg.datasets import load_shared

    d = load_shared("wrench_youtube", split="train", data_home=data_home)
    acc_mv = np.mean(MajorityVote().fit_predict(d.L) == d.y)
    auto = DawidSkene().fit(d.L)
    assert auto.abstain_ == "model"
    assert np.mean(auto.predict(d.L) == d.y) > acc_mv
    with pytest.warns(PriorCollapseWarning, match="Prior collapse"):
        ign = DawidSkene(abstain="ignore").fit(d.L)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.mean(ign.predict(d.L) == d.y) < acc_mv
