"""The benchmark page in the docs is exactly what the saved results generate."""

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import make_report  # noqa: E402


def test_committed_page_matches_results(tmp_path):
    text = make_report.build(ROOT / "benchmarks" / "results", tmp_path)
    committed = (ROOT / "docs" / "benchmarks.md").read_text()
    assert text == committed, "docs/benchmarks.md is stale: run python benchmarks/make_report.py"
    for png in (tmp_path / "img").glob("*.png"):
        assert (ROOT / "docs" / "img" / png.name).read_bytes() == png.read_bytes()


def test_which_aggregator_page_is_generated_from_the_realdata_results():
    block = make_report.choosing_block(ROOT / "benchmarks" / "results")
    page = (ROOT / "docs" / "choosing.md").read_text()
    assert make_report.CHOOSING_START + block + make_report.CHOOSING_END in page, (
        "docs/choosing.md is stale: run python benchmarks/make_report.py"
    )


def test_table_rendering_and_parts(tmp_path):
    import json

    results = tmp_path / "results"
    results.mkdir()
    payload = {
        "name": "demo",
        "environment": {"date": "d", "machine": {"cpus": 2}, "versions": {"numpy": "1"},
                        "command": "x"},
        "rows": [{"part": "a", "n": 1, "t": 0.5}, {"part": "b", "n": 2, "u": float("nan")}],
        "slopes": {"fit": -0.5},
    }
    (results / "demo.json").write_text(json.dumps(payload))
    text = make_report.build(results, tmp_path / "docs")
    assert "**a**" in text and "**b**" in text and "| n | t |" in text
    assert "- **slopes**: fit = -0.5" in text
    shutil.rmtree(tmp_path / "docs")
