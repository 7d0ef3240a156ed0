"""Smoke run of benchmarks/bench_misspecified.py, and what its generator promises."""

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def test_bench_misspecified_smoke(tmp_path, capsys):
    from benchmarks import bench_misspecified

    rows = bench_misspecified.main(["--smoke", "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "leave-one-dataset-out" in out and "synthetic sets" in out
    payload = json.loads((tmp_path / "misspecified_smoke.json").read_text())
    assert {r["dataset"] for r in payload["sets"]} == {r["dataset"] for r in rows}
    assert {"auto", "majority", "dawid-skene"} <= {r["method"] for r in rows if "acc" in r}
    assert len(payload["lodo_synthetic"]) == 2 and payload["summary"]


def test_crowd_generator_has_sparse_workers_and_correlated_errors_on_hard_items():
    from benchmarks.bench_misspecified import draw_crowd

    rng = np.random.default_rng(0)
    prior = np.full(3, 1 / 3)
    L, y = draw_crowd(rng, 2000, 200, 3, 5, 1.2, 0.0, 0.0, 0.4, 0.0, prior)
    votes = np.bincount(L.source, minlength=200)
    assert np.median(votes) < 0.5 * votes.mean()  # Zipf activity: most workers cast few
    assert L.n_votes <= 2000 * 5 and not L.has_repeats()
    # item difficulty: the wrong votes on an item concentrate on one class (the confusable
    # one), far more than errors spread over the k - 1 = 2 wrong classes at random would
    wrong = L.label != y[L.item]
    it, lab = L.item[wrong], L.label[wrong]
    per = np.zeros((2000, 3))
    np.add.at(per, (it, lab), 1)
    many = per.sum(axis=1) >= 3
    top_share = (per[many].max(axis=1) / per[many].sum(axis=1)).mean()
    assert top_share > 0.85


def test_lf_generator_is_unipolar():
    from benchmarks.bench_misspecified import draw_lfs

    rng = np.random.default_rng(1)
    L, _ = draw_lfs(rng, 1000, 12, 3, 0.5, np.full(3, 1 / 3))
    per_source = [np.unique(L.label[L.source == j]).size for j in range(12)]
    assert max(per_source) == 1  # every labeling function votes for one class only
