"""The distributed and LF-application benchmarks' smoke modes run (so they cannot rot)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="the dask extra is not installed")
ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, tmp_path: Path) -> dict:
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--smoke", "--out-dir",
         str(tmp_path)],
        capture_output=True, text=True, check=False, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return res


def test_bench_distributed_smoke(tmp_path):
    _run("bench_distributed.py", tmp_path)
    payload = json.loads((tmp_path / "distributed_smoke.json").read_text())
    modes = {r["mode"] for r in payload["rows"]}
    assert modes == {"inmemory", "stream", "cluster"}
    for row in payload["rows"]:
        assert "error" not in row
        if row["mode"] != "inmemory":
            assert row["max_conf_diff_vs_inmemory"] < 1e-8
    assert payload["estimate_1e9_votes_32_workers"]["per_iter_s"] > 0


def test_bench_lf_apply_smoke(tmp_path):
    _run("bench_lf_apply.py", tmp_path)
    payload = json.loads((tmp_path / "lf_apply_smoke.json").read_text())
    assert payload["identical_label_matrices"] is True
    assert len(payload["rows"]) == 4
