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


# -- the built site: offline, browsable from disk, math rendered ---------------------------

KATEX_VERSION = "0.19.1"
ARITHMATEX = re.compile(r'<(span|div) class="arithmatex">(.*?)</\1>', re.S)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The docs site, built strictly (as ``make docs`` does) into a scratch folder."""
    import os
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(out)],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _pages(site: Path) -> list[Path]:
    # 404.html is served by a web server at any depth, so it uses absolute links by design
    return [p for p in sorted(site.rglob("*.html")) if p.name != "404.html"]


@pytest.mark.slow
def test_site_loads_nothing_from_the_network(site):
    bad = []
    for page in sorted(site.rglob("*.html")):
        html = page.read_text()
        for tag in re.findall(r"<(?:script|link|img|iframe|source)\b[^>]*>", html):
            if re.search(r"""\b(?:src|href)=["']?(?:https?:)?//""", tag):
                bad.append(f"{page.relative_to(site)}: {tag}")
        if "fonts.googleapis" in html or "cdn.jsdelivr" in html or "unpkg.com" in html:
            bad.append(f"{page.relative_to(site)}: mentions a CDN")
    for css in sorted(site.rglob("*.css")):
        for url in re.findall(r"""url\(\s*["']?((?:https?:)?//[^)"']+)""", css.read_text()):
            bad.append(f"{css.relative_to(site)}: url({url})")
        if re.search(r"@import\s+(?:url\()?[\"']?(?:https?:)?//", css.read_text()):
            bad.append(f"{css.relative_to(site)}: @import from the network")
    assert bad == [], "\n".join(bad[:20])


@pytest.mark.slow
def test_every_link_resolves_to_a_file_on_disk(site):
    """``use_directory_urls: false``: a file:// reader follows every internal link and asset."""
    missing = []
    for page in _pages(site):
        html = page.read_text()
        for ref in re.findall(r"""\b(?:href|src)=["']([^"'#?]*)""", html):
            if not ref or re.match(r"^(?:[a-z][a-z0-9+.-]*:|//)", ref):
                continue  # fragment only, or another scheme (http, mailto, data)
            target = (page.parent / ref).resolve()
            if not target.is_file():
                missing.append(f"{page.relative_to(site)} -> {ref}")
    assert missing == [], "\n".join(missing[:20])


@pytest.mark.slow
def test_every_math_page_loads_the_bundled_renderer(site):
    notice = (ROOT / "docs" / "assets" / "katex" / "NOTICE.txt").read_text()
    assert f"KaTeX {KATEX_VERSION}" in notice
    assert "MIT" in (ROOT / "docs" / "assets" / "katex" / "LICENSE.txt").read_text()
    math_pages = 0
    for page in _pages(site):
        html = page.read_text()
        assert ":math:<code>" not in html and ".. math::" not in html, (
            f"{page.relative_to(site)}: unrendered reStructuredText math"
        )
        formulas = ARITHMATEX.findall(html)
        if not formulas:
            continue
        math_pages += 1
        for kind, name in (("script", "katex.min.js"), ("link", "katex.min.css"),
                           ("script", "katex-init.js")):
            refs = re.findall(rf'<{kind}\b[^>]*(?:src|href)="([^"]*{re.escape(name)})"', html)
            assert refs, f"{page.relative_to(site)} has math but does not load {name}"
            assert (page.parent / refs[0]).resolve().is_file(), (page, refs[0])
        for _, tex in formulas:
            # a "$" inside a formula is a math delimiter nested in math (the broken M-step)
            assert "$" not in tex, f"{page.relative_to(site)}: nested $ in {tex[:80]!r}"
    assert math_pages >= 10
    fonts = {p.name for p in (site / "assets" / "katex" / "fonts").glob("*.woff2")}
    css = (site / "assets" / "katex" / "katex.min.css").read_text()
    for font in re.findall(r"url\(fonts/([^)]+\.woff2)\)", css):
        assert font in fonts, f"katex.min.css needs fonts/{font}"


@pytest.mark.slow
def test_no_list_renders_inline(site):
    """Python-Markdown needs a blank line before a list; without it the items end up in the
    paragraph above as text starting with "* " / "- " / "1. "."""
    inline = []
    for page in _pages(site):
        html = re.sub(r"<pre.*?</pre>|<code>.*?</code>", "", page.read_text(), flags=re.S)
        html = ARITHMATEX.sub("", html)
        for block in re.findall(r"<(?:p|li)>(.*?)</(?:p|li)>", html, re.S):
            for m in re.finditer(r"(?:^|\n)\s*((?:[-*+]|\d+\.) \S.{0,60})", block):
                inline.append(f"{page.relative_to(site)}: {m.group(1)}")
    assert inline == [], "\n".join(inline[:20])


def test_no_nested_list_is_flattened():
    """A nested list needs 4 spaces of indentation in Python-Markdown; with 1-3 it becomes
    items of the outer list."""
    bad = []
    for page in PAGES:
        in_code = False
        for n, line in enumerate(page.read_text().splitlines(), 1):
            if line.lstrip().startswith("```"):
                in_code = not in_code
                continue
            if not in_code and re.match(r"^ {1,3}(?:[-*+]|\d+\.) \S", line):
                bad.append(f"{page.relative_to(ROOT)}:{n}: {line.strip()[:60]}")
    assert bad == [], "\n".join(bad)


def test_raw_benchmark_page_matches_results(tmp_path):
    import sys

    sys.path.insert(0, str(ROOT))
    from benchmarks import make_report

    make_report.build(ROOT / "benchmarks" / "results", tmp_path)
    committed = (ROOT / "docs" / make_report.RAW_PAGE).read_text()
    assert (tmp_path / make_report.RAW_PAGE).read_text() == committed, (
        "docs/benchmarks_raw.md is stale: run python benchmarks/make_report.py"
    )
    overview = (ROOT / "docs" / "benchmarks.md").read_text()
    plots = overview.index("## Plots")
    first_section = overview.index("\n## ", plots + 1)
    assert overview.count("![", plots, first_section) == len(
        list((ROOT / "benchmarks" / "results").glob("*.png"))
    )
    assert f"]({make_report.RAW_PAGE}" in overview


def test_readme_says_where_the_site_is_built():
    readme = (ROOT / "README.md").read_text()
    assert "make docs" in readme and "build/site/index.html" in readme
