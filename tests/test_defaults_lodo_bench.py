"""Smoke run of benchmarks/bench_defaults_lodo.py (so it cannot rot)."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def test_bench_defaults_lodo_smoke(tmp_path, data_home, capsys):
    from benchmarks import bench_defaults_lodo as bench

    out = bench.main(["--smoke", "--out-dir", str(tmp_path)])
    text = capsys.readouterr().out
    assert "leave-one-dataset-out over all datasets" in text
    payload = json.loads((tmp_path / "defaults_lodo_smoke.json").read_text())
    n_sets = len({r["dataset"] for r in payload["rows"]})
    assert len(payload["rows"]) == n_sets * len(bench.configs())
    table = out["all"]["lodo"]
    assert len(table) == n_sets
    # the choice for a held-out set is made without it: recompute one fold by hand
    import pandas as pd

    df = pd.DataFrame(payload["rows"])
    held = table[0]["held_out"]
    rest = df[df["dataset"] != held].groupby("config")["acc"].mean()
    assert rest[table[0]["chosen_without_it"]] >= rest.max() - 1e-4
