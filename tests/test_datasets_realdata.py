"""Every shared real dataset, loaded through the registry, checked against the numbers in the
shared data's own MANIFEST.md (parsed at test time, not copied here): item, source and class
counts, gold class distribution, abstain %, and majority-vote accuracy to 3 decimals."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from wsagg.datasets import (
    list_shared,
    load_demo,
    load_shared,
    load_youtube_spam_uci,
    shared_info,
)

pytestmark = pytest.mark.realdata

CASES = [(name, split) for name in list_shared() for split in shared_info(name)["splits"]]


def _table_rows(text: str, header_start: str) -> list[list[str]]:
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(header_start))
    rows = []
    for ln in lines[start + 2 :]:
        if not ln.startswith("|"):
            break
        rows.append([c.strip() for c in ln.strip().strip("|").split("|")])
    return rows


@pytest.fixture(scope="module")
def manifest(data_home: Path) -> dict:
    text = (data_home / "MANIFEST.md").read_text(encoding="utf-8")
    stats = {}
    for ds, split, items, sources, k, dist, abstain, coverage, mv in _table_rows(
        text, "| dataset | split |"
    ):
        gold = int(re.search(r"\((\d+)\)", coverage).group(1))
        classes = dict(
            (name.strip(), int(c)) for name, c in (p.rsplit(":", 1) for p in dist.split(", "))
        )
        stats[(ds, split)] = {
            "items": int(items),
            "sources": int(sources),
            "K": int(k),
            "gold_classes": classes,
            "abstain_pct": None if abstain == "-" else float(abstain),
            "gold": gold,
            "mv_acc": None if mv == "-" else float(mv),
        }
    bf = {}
    for f, train, lfs, k, val, test, *_ in _table_rows(text, "| file | train items |"):
        bf[f"bf_uai2024/{f.removesuffix('.mat')}"] = {
            "train": int(train), "valid": int(val), "test": int(test), "sources": int(lfs),
            "K": int(k),
        }
    return {"stats": stats, "bf": bf}


def test_registry_covers_every_manifest_row(manifest):
    assert len(manifest["stats"]) >= 20 and len(manifest["bf"]) == 5  # the parse found the tables
    label_matrix_rows = {k for k in manifest["stats"] if k[0] != "youtube_spam_uci"}
    assert label_matrix_rows <= set(CASES)
    assert set(manifest["bf"]) <= set(list_shared())


@pytest.mark.parametrize(("name", "split"), CASES, ids=[f"{n}:{s}" for n, s in CASES])
def test_shared_dataset_matches_manifest(manifest, data_home, name, split):
    ds = load_shared(name, split, data_home=data_home)
    s = ds.summary()
    # internal consistency, whatever the source
    assert ds.y.shape == (ds.n_items,) and ds.y.dtype == np.int64
    assert ds.y.min() >= -1 and ds.y.max() < ds.n_classes
    assert ds.L.label.min() >= 0 and ds.L.label.max() < ds.n_classes
    assert len(ds.source_names) == ds.n_sources == len(set(ds.source_names))
    assert len(set(map(str, ds.item_ids))) == ds.n_items
    if name.startswith("bf_uai2024/"):
        ref = manifest["bf"][name]
        assert (s["items"], s["sources"], s["K"]) == (ref[split], ref["sources"], ref["K"])
        assert s["gold"] == s["items"]
        return
    ref = manifest["stats"][(name, split)]
    assert (s["items"], s["sources"], s["K"]) == (ref["items"], ref["sources"], ref["K"])
    assert s["gold"] == ref["gold"]
    assert s["gold_classes"] == ref["gold_classes"]  # class names and order, and counts
    assert s["dup_pairs"] == 0
    assert round(s["abstain_pct"], 1) == pytest.approx(ref["abstain_pct"], abs=1e-9)
    if ref["mv_acc"] is None:
        assert math.isnan(s["mv_acc"])
    else:
        assert round(s["mv_acc"], 3) == pytest.approx(ref["mv_acc"], abs=1e-9)


@pytest.mark.parametrize(
    "name", ["snow2008_rte", "zheng_dog", "zhou2012_web", "welinder_bluebirds"]
)
def test_crowd_duplicate_policies_agree_without_duplicates(data_home, name):
    count = load_shared(name, data_home=data_home)
    last = load_shared(name, data_home=data_home, duplicates="last")
    err = load_shared(name, data_home=data_home, duplicates="error")
    for other in (last, err):
        np.testing.assert_array_equal(count.dense(), other.dense())
        np.testing.assert_array_equal(count.y, other.y)


def test_dawid_skene_count_representation(data_home):
    five = load_shared("dawid_skene_1979", data_home=data_home, repeats="count")
    assert (five.n_items, five.n_sources, five.n_classes) == (45, 5, 4)
    assert np.bincount(five.L.source).tolist() == [135, 45, 45, 45, 45]


def test_snow_every_item_has_ten_votes(data_home):
    for task in ("rte", "temp", "wsd"):
        ds = load_shared(f"snow2008_{task}", data_home=data_home)
        assert (ds.L.votes_per_item() == 10).all()


def test_alt_youtube_differs_only_in_lf7(data_home):
    """MANIFEST: on the 1586 shared train items, 218 rows differ only in LF index 7."""
    main = load_shared("wrench_youtube", "train", data_home=data_home)
    alt = load_shared("wrench_youtube/alt_nhbess_tutorial", "train", data_home=data_home)
    a, b = main.dense()[:1586], alt.dense()
    diff = a != b
    assert diff.any(axis=1).sum() == 218
    assert set(np.flatnonzero(diff.any(axis=0))) == {7}
    # the bf_uai2024 youtube train matrix is this same alt copy
    bf = load_shared("bf_uai2024/youtube", "train", data_home=data_home)
    np.testing.assert_array_equal(bf.dense(), b)
    np.testing.assert_array_equal(bf.y, alt.y)


def test_demo_equals_shared_wrench_youtube(data_home):
    for split in ("train", "valid", "test"):
        demo = load_demo(split)
        shared = load_shared("wrench_youtube", split, data_home=data_home)
        np.testing.assert_array_equal(demo.dense(), shared.dense())
        np.testing.assert_array_equal(demo.y, shared.y)
        np.testing.assert_array_equal(demo.item_ids, shared.item_ids)
        assert demo.source_names == shared.source_names
        assert demo.class_names == shared.class_names


def test_youtube_spam_uci_texts(manifest, data_home):
    df = load_youtube_spam_uci(data_home)
    ref = manifest["stats"][("youtube_spam_uci", "all")]
    assert len(df) == ref["items"]
    counts = df.CLASS.value_counts().to_dict()
    assert {str(k): v for k, v in counts.items()} == ref["gold_classes"]


def test_bf_majority_vote_matches_paper_table(data_home):
    """An & Dasgupta (UAI 2024) report MV's average 0-1 loss (%) on the train split; on the
    abstain-free sets (Cancer, Cardio, Domain) it must equal 100 * (1 - our MV accuracy).
    (On SMS / Youtube the paper also scores items without any vote, so it differs.)"""
    text = (data_home / "bf_uai2024" / "labeled_zero_one_brier_score_table.txt").read_text()
    header = re.search(r"\\multicolumn\{1\}\{c\}\{Method\}(.*?)\\\\", text).group(1)
    names = re.findall(r"\\multicolumn\{2\}\{c\}\{(\w+)\}", header)
    mv_row = re.search(r"^\s*MV &(.*?)\\\\", text, re.MULTILINE).group(1)
    values = [float(v) for v in re.findall(r"(\d+\.\d+)", mv_row)]
    zero_one = dict(zip(names, values[::2], strict=True))
    for paper_name, stem in (("Cancer", "breast_cancer"), ("Cardio", "cardio"),
                             ("Domain", "domain")):
        ds = load_shared(f"bf_uai2024/{stem}", "train", data_home=data_home)
        assert ds.L.covered().all()
        assert 100 * (1 - ds.majority_vote_accuracy()) == pytest.approx(
            zero_one[paper_name], abs=0.005
        )
