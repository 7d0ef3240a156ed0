"""Every python code block in README.md and docs/*.md runs (blocks of a page share a namespace)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_code_blocks_run(page, monkeypatch, tmp_path, request):
    text = page.read_text()
    if "load_shared" in text or "WSAGG_DATA_HOME" in text:
        request.getfixturevalue("data_home")  # skips (or fails in CI) without the real data
    blocks = FENCE.findall(text)
    # run in a scratch folder (pages may write files) where repository paths such as
    # tests/data/ still resolve
    (tmp_path / "tests").symlink_to(ROOT / "tests")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__docs__"}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"{page.name}[block {i}]", "exec"), namespace)
        except Exception as err:  # pragma: no cover - the failure message is the point
            pytest.fail(f"{page.name}, code block {i} failed: {type(err).__name__}: {err}")
