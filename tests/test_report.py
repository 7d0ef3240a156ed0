"""``wsagg.report``: one self-contained HTML page per run."""

from __future__ import annotations

import base64
import html
import io
import os
import re
import subprocess
import sys
import warnings
from html.parser import HTMLParser

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

import wsagg
from wsagg import metrics
from wsagg.datasets import load_demo

_VOID = {"meta", "link", "img", "br", "hr", "input", "col", "area", "base", "source", "wbr"}
_SECTIONS = ("scores", "sources", "confusion", "prior", "calibration", "convergence", "buckets")


class _Page(HTMLParser):
    """A strict-enough reading of the page: balanced tags, ids, tables, images, links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.tags: list[str] = []
        self.urls: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.tables: dict[str, list[list[dict]]] = {}
        self._table: str | None = None
        self._cell: dict | None = None
        self.doctype = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        if "id" in a:
            self.ids.append(a["id"])
        for key in ("src", "href", "srcset", "action", "data", "poster"):
            if key in a:
                self.urls.append((tag, key, a[key] or ""))
        if tag == "table":
            self._table = a.get("id", f"table{len(self.tables)}")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = {"tag": tag, "text": "", **a}
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
            return
        self.stack.pop()
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append(self._cell)
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell["text"] += data


def parse(page: str) -> _Page:
    p = _Page()
    p.feed(page)
    p.close()
    assert p.doctype, "no <!DOCTYPE html>"
    assert p.errors == [], p.errors
    assert p.stack == [], f"unclosed tags {p.stack}"
    for tag in ("html", "head", "body", "title"):
        assert p.tags.count(tag) == 1, tag
    assert len(p.ids) == len(set(p.ids)), "duplicate ids"
    return p


def rows(p: _Page, table_id: str) -> list[dict[str, dict]]:
    """Body rows of a table as {data-col: cell}."""
    return [{c["data-col"]: c for c in r if "data-col" in c}
            for r in p.tables[table_id] if r and r[0]["tag"] == "td"]


def pngs(page: str) -> list[np.ndarray]:
    out = []
    for b64 in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page):
        raw = base64.b64decode(b64, validate=True)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        out.append(mpimg.imread(io.BytesIO(raw), format="png"))
    return out


def assert_self_contained(page: str, p: _Page) -> None:
    assert not re.search(r"https?://", page)  # no network reference anywhere (text included)
    for tag, attr, value in p.urls:
        ok = value.startswith("data:") or value.startswith("#")
        assert ok, f"<{tag} {attr}={value!r}> is not embedded"
    assert "script" not in p.tags
    assert not any(t in p.tags for t in ("iframe", "object", "embed", "video", "audio"))
    assert "@import" not in page and "url(" not in page


_DEMO = load_demo("valid")  # 120 items x 10 LFs, gold for every item
_KNOWN = np.where(np.arange(_DEMO.L.n_items) % 2 == 0, _DEMO.y, -1)  # half given to the fit


@pytest.fixture(scope="module")
def demo():
    return _DEMO


def _report(model, L, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the demo's LFs trigger the fit-time source notes
        return wsagg.report(model, L, **kw)


CASES = {
    "auto": (lambda: wsagg.AutoAggregator(random_state=0), False),
    "auto-with-y": (lambda: wsagg.AutoAggregator(random_state=0), True),
    "dawid-skene": (lambda: wsagg.DawidSkene(random_state=0), False),
    "majority": (lambda: wsagg.MajorityVote(), False),
    "bcc": (lambda: wsagg.BCC(random_state=0), False),
    "mace": (lambda: wsagg.MACE(random_state=0), False),
}
_RUNS: dict[str, tuple] = {}


def _run(name: str) -> tuple:
    """(name, fitted model, y, page, parsed page), computed once per case."""
    if name not in _RUNS:
        make, with_y = CASES[name]
        model = make()
        y = _KNOWN if with_y else None
        page = _report(model, _DEMO.L, y=y, gold=_DEMO.y)
        _RUNS[name] = (name, model, y, page, parse(page))
    return _RUNS[name]


@pytest.fixture(params=sorted(CASES))
def run(request):
    return _run(request.param)


def test_the_page_has_every_section_and_nothing_external(run):
    name, _, _, page, p = run
    for sid in _SECTIONS:
        assert sid in p.ids, sid
    assert ("auto" in p.ids) == name.startswith("auto")
    assert_self_contained(page, p)
    images = pngs(page)
    # scores need none; prior, calibration always; confusion for DS/BCC (and auto's DS)
    assert len(images) >= 2
    for img in images:
        assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50
        assert np.unique(img.reshape(-1, img.shape[2]), axis=0).shape[0] > 10  # not blank


def test_the_source_table_is_source_summarys(run, demo):
    _, _, _, _, p = run
    expected = wsagg.source_summary(demo.L, demo.y)
    got = rows(p, "sources-table")
    assert len(got) == len(expected)
    for r, (src, e) in zip(got, expected.iterrows(), strict=True):
        assert r["source"]["text"] == str(src)
        for col in ("n_votes", "coverage", "overlap", "conflict", "correct", "incorrect",
                    "emp_accuracy"):
            want = e[col]
            cell = r[col]
            if isinstance(want, float) and np.isnan(want):
                assert cell["data-value"] == "nan"
                continue
            assert float(cell["data-value"]) == float(want), (src, col)
            shown = cell["text"].replace(",", "")
            if col in ("n_votes", "correct", "incorrect"):
                assert int(shown) == int(want)
            else:
                assert shown == f"{float(want):.3f}"


def test_the_learned_source_quality(run):
    name, model, _, _, p = run
    learned = [r["learned"] for r in rows(p, "sources-table")]
    est = getattr(model, "estimator_", model)
    if hasattr(est, "confusion_"):
        conf, prior = est.confusion_, est.class_prior_
        k = prior.shape[0]
        for j, cell in enumerate(learned):
            correct = sum(prior[c] * conf[j, c, c] for c in range(k))
            voting = sum(prior[c] * conf[j, c, :k].sum() for c in range(k))
            assert float(cell["data-value"]) == pytest.approx(correct / voting, rel=1e-9)
            assert 0.0 <= float(cell["data-value"]) <= 1.0
    else:
        for attr in ("accuracy_", "source_accuracy_", "competence_", "ability_", "skills_",
                     "reliability_"):
            if hasattr(est, attr):
                got = [float(c["data-value"]) for c in learned]
                assert got == pytest.approx(getattr(est, attr))
                break
        else:
            assert all(c["text"] == "n/a" for c in learned)
    if name == "majority":
        assert all(c["text"] == "n/a" for c in learned)
    if name == "mace":
        assert [float(c["data-value"]) for c in learned] == pytest.approx(model.competence_)


def test_confusion_heatmaps_of_the_most_active_sources(run):
    _, model, _, page, _ = run
    est = getattr(model, "estimator_", model)
    section = page.split('<section id="confusion">')[1].split("</section>")[0]
    if hasattr(est, "confusion_"):
        assert len(pngs(section)) == 1
        assert "The 6 most active sources (of 10" in section
    else:
        assert pngs(section) == []
        assert "learns no per-source confusion matrices" in section


def test_prior_calibration_and_buckets_are_the_metrics(run, demo):
    _, model, y, page, p = run
    est = getattr(model, "estimator_", model)
    proba = model.predict_proba(demo.L)
    prior = {r["class"]["text"]: r for r in rows(p, "prior-table")}
    assert list(prior) == ["0", "1"]
    for c, r in enumerate(prior.values()):
        assert float(r["learned prior"]["data-value"]) == pytest.approx(est.class_prior_[c])
        assert float(r["mean soft label"]["data-value"]) == pytest.approx(proba[:, c].mean())
        assert float(r["share of the gold labels"]["data-value"]) == pytest.approx(
            np.mean(demo.y == c))
    gold_eval = demo.y if y is None else np.where(y >= 0, -1, demo.y)
    ece = metrics.expected_calibration_error(gold_eval, proba, n_bins=15)
    shown = re.search(r'<b id="ece" data-value="([^"]+)">', page)
    assert float(shown.group(1)) == pytest.approx(ece, abs=1e-12)
    n_cal = sum(int(r["n"]["data-value"]) for r in rows(p, "calibration-table"))
    assert n_cal == int((gold_eval >= 0).sum())
    buckets = metrics.accuracy_by_frequency_bucket(gold_eval, proba)
    got = {r["bucket"]["text"]: r for r in rows(p, "buckets-table")}
    assert list(got) == list(buckets)
    for b, r in got.items():
        assert int(r["n_items"]["data-value"]) == buckets[b]["n_items"]
        want = buckets[b]["accuracy"]
        if np.isnan(want):
            assert r["accuracy"]["data-value"] == "nan"
        else:
            assert float(r["accuracy"]["data-value"]) == pytest.approx(want)
    scores = {c["data-col"]: c for r in p.tables["scores-table"] for c in r if "data-col" in c}
    assert float(scores["accuracy"]["data-value"]) == pytest.approx(
        metrics.accuracy(gold_eval, proba))
    if y is not None:
        assert "whose label was not given to the fit" in page


def test_convergence_trace(run):
    _, model, _, page, _ = run
    est = getattr(model, "estimator_", model)
    section = page.split('<section id="convergence">')[1].split("</section>")[0]
    histories = [a for a in vars(est) if a.endswith("_history_")]
    if histories:
        assert len(pngs(section)) == 1
        for a in histories:
            assert a in section
            assert f"after {len(getattr(est, a))} values" in section
    else:
        assert pngs(section) == []
        assert "keeps no per-iteration history" in section


@pytest.mark.parametrize("case", ["auto", "auto-with-y"])
def test_auto_candidates_and_explanation(case):
    name, model, _, page, p = _run(case)
    cand = rows(p, "auto-table")
    assert [r["candidate"]["text"].removeprefix("\u2713 ") for r in cand] == [
        str(c) for c in model.cv_results_["candidate"]]
    chosen = [r["candidate"]["text"] for r in cand if r["candidate"]["text"].startswith("\u2713")]
    assert chosen == [f"\u2713 {model.selected_}"]
    assert html.escape(model.explanation_) in page
    assert model.criterion_ == ("cv_error_rate" if name == "auto-with-y"
                                else "held_out_source_likelihood")
    assert f"<code>{model.criterion_}</code>" in page


def test_without_gold_each_section_says_so(demo):
    page = _report(wsagg.DawidSkene(random_state=0), demo.L)
    p = parse(page)
    assert_self_contained(page, p)
    cal = page.split('<section id="calibration">')[1].split("</section>")[0]
    assert "Calibration needs gold labels" in cal and pngs(cal) == []
    assert "Needs gold labels" in page.split('<section id="buckets">')[1]
    assert "No gold labels were given" in page
    assert "emp_accuracy" not in {c for r in rows(p, "sources-table") for c in r}
    assert "share of the gold labels" not in page


def test_a_fitted_model_is_used_as_is(demo):
    ds = wsagg.DawidSkene(random_state=0).fit(demo.L)
    conf = ds.confusion_
    page = _report(ds, demo.L, gold=demo.y)
    assert ds.confusion_ is conf  # not refitted
    assert "fitted before the report (used as is)" in page
    unfitted = wsagg.DawidSkene(random_state=0)
    page2 = _report(unfitted, demo.L, gold=demo.y)
    assert hasattr(unfitted, "confusion_") and "fitted for this report" in page2
    # the same model gives the same numbers either way
    assert page.replace("fitted before the report (used as is)", "") == page2.replace(
        "fitted for this report", "")
    by_name = parse(_report("dawid-skene", demo.L))
    assert "sources" in by_name.ids


def test_writing_is_atomic_and_refuses_an_existing_file(demo, tmp_path):
    out = tmp_path / "r.html"
    old = os.umask(0o027)
    try:
        page = _report(wsagg.MajorityVote(), demo.L, gold=demo.y, path=out)
    finally:
        os.umask(old)
    assert out.read_text(encoding="utf-8") == page
    assert (out.stat().st_mode & 0o777) == 0o640  # the umask's permissions, not mkstemp's
    assert sorted(x.name for x in tmp_path.iterdir()) == ["r.html"]  # no temporary left
    out.write_text("keep me")
    model = wsagg.DawidSkene()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        _report(model, demo.L, path=out)
    assert out.read_text() == "keep me"
    assert not hasattr(model, "classes_")  # refused before fitting
    page = _report(model, demo.L, path=str(out), overwrite=True)
    assert out.read_text(encoding="utf-8") == page
    assert sorted(x.name for x in tmp_path.iterdir()) == ["r.html"]


@pytest.mark.parametrize(
    ("name", "error", "match"),
    [("r.png", ValueError, "ending in .html"),
     ("missing/r.html", FileNotFoundError, "does not exist"),
     ("adir.html", IsADirectoryError, "is a directory")],
)
def test_a_bad_path_is_refused_before_fitting(demo, tmp_path, name, error, match):
    (tmp_path / "adir.html").mkdir()
    model = wsagg.DawidSkene()
    with pytest.raises(error, match=match):
        wsagg.report(model, demo.L, path=tmp_path / name)
    assert not hasattr(model, "classes_")


def test_user_strings_are_escaped(tmp_path):
    evil = "<script>alert('x')</script>"
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 60)
    votes = []
    for i, t in enumerate(truth):
        for j, src in enumerate([evil, "a&b", 'q"uote', "$x^2$"]):
            if rng.random() < 0.8:
                label = t if rng.random() < 0.6 + 0.1 * j else 1 - t
                votes.append((f"item{i}", src, ["<b>no</b>", "yes"][label]))
    df = pd.DataFrame(votes, columns=["item", "source", "label"])
    gold = pd.Series(np.where(truth == 1, "yes", "<b>no</b>"),
                     index=[f"item{i}" for i in range(60)])
    page = _report(wsagg.DawidSkene(random_state=0), df, gold=gold, title=evil + " & co",
                   path=tmp_path / "e.html")
    p = parse(page)
    assert "<script" not in page.lower() and "<b>no</b>" not in page
    assert html.escape(evil) in page
    assert "&lt;b&gt;no&lt;/b&gt;" in page
    assert "<title>" + html.escape(evil + " & co") + "</title>" in page
    assert [r["source"]["text"] for r in rows(p, "sources-table")] == [
        str(s) for s in wsagg.source_summary(df).index]
    assert sorted(wsagg.source_summary(df).index) == sorted([evil, "a&b", 'q"uote', "$x^2$"])
    assert_self_contained(page, p)


def test_bad_input_gets_one_line_errors(demo):
    with pytest.raises(ValueError, match=r"^gold \(the evaluation labels\): .*120 items"):
        wsagg.report(wsagg.MajorityVote(), demo.L, gold=demo.y[:10])
    with pytest.raises(ValueError, match="class_names has 3 names but the model has 2"):
        wsagg.report(wsagg.MajorityVote(), demo.L, class_names=["a", "b", "c"])
    with pytest.raises(TypeError, match="must be a wsagg aggregator"):
        wsagg.report(object(), demo.L)
    with pytest.raises(ValueError, match="Unknown method 'dawid'"):
        wsagg.report("dawid", demo.L)


def test_class_names_label_the_page(demo):
    page = _report(wsagg.MajorityVote(), demo.L, gold=demo.y, class_names=demo.class_names)
    p = parse(page)
    assert [r["class"]["text"] for r in rows(p, "prior-table")] == demo.class_names


def test_missing_matplotlib_is_one_line_naming_the_extra(demo, monkeypatch):
    for mod in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    model = wsagg.MajorityVote()
    with pytest.raises(ImportError, match=r"pip install 'wsagg\[plot\]'") as err:
        wsagg.report(model, demo.L)
    assert "\n" not in str(err.value)
    assert not hasattr(model, "classes_")


def test_importing_wsagg_reporting_stays_light():
    # (pyarrow is left out: pandas 3, a core dependency, imports it when installed)
    code = ("import sys, wsagg; f = wsagg.report; import wsagg.reporting; "
            "bad = [m for m in ('matplotlib', 'torch', 'cvxpy') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False)
    assert res.returncode == 0, res.stdout + res.stderr
