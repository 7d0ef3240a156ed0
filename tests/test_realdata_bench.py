"""Smoke run of benchmarks/bench_realdata.py (so it cannot rot)."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def test_bench_realdata_smoke(tmp_path, data_home, capsys):
    from benchmarks import bench_realdata

    rows = bench_realdata.main(["--smoke", "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "per dataset: best peer vs auto" in out and "leave-one-dataset-out" in out
    payload = json.loads((tmp_path / "realdata_smoke.json").read_text())
    methods = {r["method"] for r in payload["rows"] if "acc" in r}
    assert {"auto", "majority", "dawid-skene"} <= methods
    assert all(0.0 <= r["ece"] <= 1.0 for r in rows if "ece" in r)
    # the tables can be recomputed from the saved rows alone
    again = bench_realdata.main(["--smoke", "--report-only", "--out-dir", str(tmp_path)])
    assert len(again) == len([r for r in payload["rows"]])


def test_ece_is_zero_for_perfect_calibration_and_positive_otherwise():
    import numpy as np

    from benchmarks.bench_realdata import ece

    y = np.array([0, 1, 0, 1])
    assert ece(np.eye(2)[y], y) == 0.0
    assert ece(np.full((4, 2), 0.5) + np.array([[0.4, -0.4]] * 4), y) > 0.3
