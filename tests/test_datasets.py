"""Format tests for the dataset loaders on the small vendored copies in tests/data (no shared
data needed), bad-file errors, the Dataset type and the embedded demo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io as sio
import scipy.sparse as sp

from wsagg import MajorityVote
from wsagg.datasets import (
    Dataset,
    list_shared,
    load_crowd_triples,
    load_cubam_yaml,
    load_dawid_skene_1979,
    load_demo,
    load_label_matrix_csv,
    load_label_matrix_mat,
    load_label_matrix_npy,
    load_label_matrix_npz,
    load_shared,
    load_wrench,
    shared_info,
)
from wsagg.datasets._base import dataset_from_dense, dataset_from_triples

DATA = Path(__file__).resolve().parent / "data"


# ------------------------------------------------------------------------------- WRENCH
def test_wrench_tiny_matches_json():
    d = DATA / "wrench_youtube_tiny"
    ds = load_wrench(d, "train")
    raw = json.loads((d / "train.json").read_text())
    assert ds.n_items == 14 and ds.n_sources == 10 and ds.n_classes == 2
    assert ds.class_names == ["HAM", "SPAM"]
    assert ds.source_names[0] == "keyword_my" and ds.source_names[-1] == "textblob_subjectivity"
    np.testing.assert_array_equal(ds.dense(), np.array([r["weak_labels"] for r in raw.values()]))
    np.testing.assert_array_equal(ds.y, [r["label"] for r in raw.values()])
    assert list(ds.item_ids) == list(raw)
    assert ds.texts[0] == raw["0"]["data"]["text"]
    np.testing.assert_array_equal(ds.metadata["labeled"], [False] * 12 + [True, True])
    assert ds.split == "train" and ds.name == "wrench_youtube_tiny"
    assert load_wrench(d, "valid").n_items == 6
    assert load_wrench(d, "test", texts=False).texts is None


def test_wrench_errors(tmp_path):
    d = DATA / "wrench_youtube_tiny"
    with pytest.raises(
        ValueError, match=r"Unknown split 'dev'.*Available splits: \['test', 'train', 'valid'\]"
    ):
        load_wrench(d, "dev")
    with pytest.raises(FileNotFoundError, match="WRENCH directory not found"):
        load_wrench(tmp_path / "nope", "train")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train.json").write_text('{"0": {"label": 0, "weak_labels": [0, -1]}, '
                                    '"1": {"label": 1, "weak_labels": [1]}}')
    with pytest.raises(ValueError, match="different numbers of weak labels"):
        load_wrench(bad, "train")
    (bad / "train.json").write_text('{"0": {"label": 0}}')
    with pytest.raises(ValueError, match="needs a 'weak_labels' list"):
        load_wrench(bad, "train")
    (bad / "train.json").write_text('{"0": ')
    with pytest.raises(ValueError, match="not valid JSON"):
        load_wrench(bad, "train")
    (bad / "train.json").write_text('{"0": {"label": 0, "weak_labels": [0, 3]}}')
    (bad / "label.json").write_text('{"0": "a", "1": "b"}')
    with pytest.raises(ValueError, match=r"vote value 3 is neither abstain"):
        load_wrench(bad, "train")


def test_wrench_without_label_json_names_classes_by_index(tmp_path):
    (tmp_path / "train.json").write_text(
        '{"a": {"label": 2, "weak_labels": [0, -1]}, "b": {"label": -1, "weak_labels": [1, 1]}}'
    )
    ds = load_wrench(tmp_path, "train")
    assert ds.class_names == ["0", "1", "2"]
    np.testing.assert_array_equal(ds.y, [2, -1])
    assert ds.source_names == ["lf0", "lf1"]


# ---------------------------------------------------------------------- crowd triples
def test_crowd_triples_with_truth_file_keeps_gold_only_items():
    d = DATA / "zhou2012_web_tiny"
    ds = load_crowd_triples(d / "label.csv", d / "truth.csv")
    votes = pd.read_csv(d / "label.csv")
    truth = pd.read_csv(d / "truth.csv")
    assert ds.n_items == 10  # 8 voted items + 2 items with gold only
    assert ds.n_sources == votes.worker.nunique()
    assert ds.n_votes == len(votes)
    assert ds.n_classes == 5 and ds.class_names == ["0", "1", "2", "3", "4"]
    assert list(ds.item_ids[-2:]) == ["8", "9"]
    assert (ds.L.votes_per_item()[-2:] == 0).all()
    gold = dict(zip(truth.item.astype(str), truth.truth, strict=True))
    np.testing.assert_array_equal(ds.y, [gold[i] for i in ds.item_ids])
    # the long view gives back the file's triples
    back = ds.long()
    got = sorted(zip(back.item, back.source, back.label, strict=True))
    want = sorted(zip(votes.item.astype(str), votes.worker.astype(str), votes.label, strict=True))
    assert got == want


def test_crowd_triples_gold_column_and_numeric_class_order():
    ds = load_crowd_triples(
        DATA / "snow2008_temp_tiny" / "temp.standardized.tsv",
        item_col="orig_id", worker_col="!amt_worker_ids", label_col="response", gold_col="gold",
    )
    assert ds.n_items == 5 and ds.n_votes == 50 and ds.n_classes == 2
    np.testing.assert_array_equal(ds.classes, [1, 2])  # raw classes 1/2 -> indices 0/1
    assert (ds.L.votes_per_item() == 10).all()
    raw = pd.read_csv(DATA / "snow2008_temp_tiny" / "temp.standardized.tsv", sep="\t")
    first = raw.drop_duplicates("orig_id").set_index("orig_id").gold
    np.testing.assert_array_equal(ds.y, first.loc[ds.item_ids].to_numpy() - 1)


def test_crowd_triples_numeric_classes_sort_numerically(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text("item,worker,label\na,w1,10\na,w2,9\nb,w1,2\n")
    ds = load_crowd_triples(f)
    assert ds.class_names == ["2", "9", "10"]
    np.testing.assert_array_equal(ds.L.label, [2, 1, 0])


def test_crowd_triples_headerless_positions():
    d = DATA / "gal_adultcontent"
    # default truth columns for headerless files: first = item, second = truth
    ds = load_crowd_triples(
        d / "labels.txt", d / "gold.txt", header=False, worker_col=0, item_col=1, label_col=2
    )
    assert ds.n_items == 5
    np.testing.assert_array_equal(ds.y, [0, 1, -1, -1, -1])
    ds = load_crowd_triples(
        d / "labels.txt", d / "gold.txt", header=False, worker_col=0, item_col=1, label_col=2,
        truth_item_col=0, truth_col=1,
    )
    assert (ds.n_items, ds.n_sources, ds.n_classes) == (5, 5, 2)
    assert ds.class_names == ["notporn", "porn"]
    assert (ds.y >= 0).sum() == 2


def test_crowd_triples_duplicate_policies(tmp_path):
    f = tmp_path / "dup.csv"
    f.write_text("task,worker,label\nx,w1,a\nx,w1,b\nx,w2,a\ny,w2,b\n")
    count = load_crowd_triples(f)
    last = load_crowd_triples(f, duplicates="last")
    first = load_crowd_triples(f, duplicates="first")
    assert count.n_votes == 4 and last.n_votes == 3 and first.n_votes == 3
    assert count.L.has_repeats() and not last.L.has_repeats()
    np.testing.assert_array_equal(last.dense(), [[1, 0], [-1, 1]])
    np.testing.assert_array_equal(first.dense(), [[0, 0], [-1, 1]])
    with pytest.raises(ValueError, match="repeated votes"):
        count.dense()
    with pytest.raises(ValueError, match=r"1 \(item, source\) pairs have repeated votes"):
        load_crowd_triples(f, duplicates="error")
    assert count.summary()["dup_pairs"] == 1


def test_crowd_triples_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="answers file not found"):
        load_crowd_triples(tmp_path / "missing.csv")
    f = tmp_path / "cols.csv"
    f.write_text("foo,bar,baz\n1,2,3\n")
    with pytest.raises(ValueError, match=r"cannot find the item column.*Pass item_col="):
        load_crowd_triples(f)
    with pytest.raises(ValueError, match="no label column 'lab'"):
        load_crowd_triples(f, item_col="foo", worker_col="bar", label_col="lab")
    g = tmp_path / "ok.csv"
    g.write_text("item,worker,label\n1,a,0\n1,b,1\n2,a,1\n2,b,1\n")
    t = tmp_path / "truth.csv"
    t.write_text("item,truth\n1,0\n2,7\n")
    with pytest.raises(ValueError, match=r"gold value 7 is not one of the classes \[0, 1\]"):
        load_crowd_triples(g, t, classes=[0, 1])
    t.write_text("item,truth\n1,0\n1,1\n")
    with pytest.raises(ValueError, match="lists item '1' more than once"):
        load_crowd_triples(g, t)
    with pytest.raises(ValueError, match=r"label 1 is not one of the classes \[0, 9\]"):
        load_crowd_triples(g, classes=[0, 9])
    t.write_text("id,truth\nx1,0\nx2,1\n")
    with pytest.raises(ValueError, match=r"none of the 2 gold items \(e\.g\. 'x1'\)"):
        load_crowd_triples(g, t)
    t.write_text("item\n1\n")
    with pytest.raises(ValueError, match="needs two columns"):
        load_crowd_triples(g, t)
    c = tmp_path / "conflict.tsv"
    c.write_text("item\tworker\tlabel\tgold\n1\ta\t0\t0\n1\tb\t0\t1\n")
    with pytest.raises(ValueError, match="conflicting gold values"):
        load_crowd_triples(c, gold_col="gold")
    e = tmp_path / "empty.csv"
    e.write_text("")
    with pytest.raises(ValueError, match="is empty"):
        load_crowd_triples(e)
    one = tmp_path / "one.csv"
    one.write_text("item,worker,label\n1,a,x\n")
    with pytest.raises(ValueError, match="only 1 distinct class"):
        load_crowd_triples(one)


# ---------------------------------------------------------------------- dense formats
def test_npz_metal_encoding_zero_is_abstain():
    f = DATA / "metal_cdr_tiny" / "cdr_metal_tiny.npz"
    raw = np.load(f)
    ds = load_label_matrix_npz(f, "L_train", "Y_train", abstain_value=0, class_values=[1, 2])
    expected = raw["L_train"].astype(int) - 1  # 0 -> -1, 1 -> 0, 2 -> 1
    np.testing.assert_array_equal(ds.dense(), expected)
    np.testing.assert_array_equal(ds.y, raw["Y_train"].astype(int) - 1)
    assert (ds.n_items, ds.n_sources, ds.n_classes) == (40, 33, 2)
    # inferred class values give the same result
    inferred = load_label_matrix_npz(f, "L_dev", "Y_dev", abstain_value=0)
    np.testing.assert_array_equal(inferred.classes, [1, 2])
    np.testing.assert_array_equal(inferred.dense(), raw["L_dev"].astype(int) - 1)


def test_npz_errors(tmp_path):
    f = DATA / "metal_cdr_tiny" / "cdr_metal_tiny.npz"
    with pytest.raises(ValueError, match=r"no array 'L'.*Pass L_key="):
        load_label_matrix_npz(f)
    with pytest.raises(ValueError, match="no array 'Y_test'"):
        load_label_matrix_npz(f, "L_train", "Y_test")
    with pytest.raises(ValueError, match=r"value 0 is neither abstain \(-1\).*abstain_value=0"):
        load_label_matrix_npz(f, "L_train", "Y_train", class_values=[1, 2])
    with pytest.raises(ValueError, match="gold has 20 entries but the label matrix has 40 rows"):
        load_label_matrix_npz(f, "L_train", "Y_dev", abstain_value=0)
    with pytest.raises(FileNotFoundError, match="npz file not found"):
        load_label_matrix_npz(tmp_path / "x.npz")
    g = tmp_path / "three_d.npz"
    np.savez(g, L=np.zeros((2, 2, 2), dtype=int))
    with pytest.raises(ValueError, match="expected a 2-D"):
        load_label_matrix_npz(g)
    with pytest.raises(ValueError, match="also listed as a class value"):
        load_label_matrix_npz(f, "L_train", abstain_value=0, class_values=[0, 1, 2])


def test_npy_flyingsquid_float_pm1():
    d = DATA / "flyingsquid_tennis_tiny"
    raw = np.load(d / "L_dev_video.npy")
    ds = load_label_matrix_npy(
        d / "L_dev_video.npy", d / "Y_dev_video.npy", abstain_value=0, class_values=[-1, 1]
    )
    dense = ds.dense()
    np.testing.assert_array_equal(dense == -1, raw == 0)
    np.testing.assert_array_equal(dense[raw == 1], 1)
    np.testing.assert_array_equal(dense[raw == -1], 0)
    np.testing.assert_array_equal(ds.y, (np.load(d / "Y_dev_video.npy") + 1) // 2)


def test_npy_errors(tmp_path):
    f = tmp_path / "frac.npy"
    np.save(f, np.array([[0.5, -1.0]]))
    with pytest.raises(ValueError, match=r"non-integer value 0\.5"):
        load_label_matrix_npy(f)
    g = tmp_path / "nan.npy"
    np.save(g, np.array([[np.nan, 1.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="contains NaN"):
        load_label_matrix_npy(g)
    s = tmp_path / "str.npy"
    np.save(s, np.array([["a", "b"]]))
    with pytest.raises(TypeError, match="is not numeric"):
        load_label_matrix_npy(s)
    with pytest.raises(FileNotFoundError, match=r"gold \.npy file not found"):
        load_label_matrix_npy(
            DATA / "flyingsquid_tennis_tiny" / "L_dev_video.npy", tmp_path / "y.npy"
        )


def test_mat_int_and_uint8(tmp_path):
    d = DATA / "bf_uai2024_tiny"
    yt = load_label_matrix_mat(d / "youtube_tiny.mat", "train_pred", "train_labels")
    raw = sio.loadmat(d / "youtube_tiny.mat")
    np.testing.assert_array_equal(yt.dense(), raw["train_pred"])
    np.testing.assert_array_equal(yt.y, raw["train_labels"].ravel())
    bc = load_label_matrix_mat(d / "breast_cancer_tiny.mat", "train_pred", "train_labels",
                               class_values=[0, 1])
    raw = sio.loadmat(d / "breast_cancer_tiny.mat")
    assert raw["train_pred"].dtype == np.uint8
    assert bc.L.label.dtype.kind == "i"  # signed (the small dtype of k classes)
    np.testing.assert_array_equal(bc.dense(), raw["train_pred"].astype(int))
    # a uint8 matrix holding 255 (a wrapped -1) is read as abstain, not as class 255
    f = tmp_path / "wrapped.mat"
    sio.savemat(f, {"L": np.array([[0, 255], [1, 1]], dtype=np.uint8)})
    np.testing.assert_array_equal(load_label_matrix_mat(f, "L").dense(), [[0, -1], [1, 1]])
    with pytest.raises(ValueError, match=r"no array 'val_pred'.*Pass L_key="):
        load_label_matrix_mat(d / "youtube_tiny.mat", "val_pred")
    bad = tmp_path / "bad.mat"
    bad.write_bytes(b"not a mat file at all")
    with pytest.raises(ValueError, match=r"could not be read by scipy.io.loadmat"):
        load_label_matrix_mat(bad, "L")


def test_wide_csv_spouse():
    f = DATA / "spouse_tiny" / "test_spouse_snorkel_tiny.csv"
    ds = load_label_matrix_csv(f, text_col="sentence", class_values=[0, 1])
    raw = pd.read_csv(f)
    assert ds.source_names == [f"LF{i}" for i in range(1, 10)]
    np.testing.assert_array_equal(ds.dense(), raw[ds.source_names].to_numpy())
    np.testing.assert_array_equal(ds.y, raw.label)
    assert ds.texts[0] == raw.sentence[0]
    with pytest.raises(ValueError, match=r"no column matches source_cols=.*Pass source_cols="):
        load_label_matrix_csv(f, source_cols=r"rule_\d+")
    with pytest.raises(ValueError, match=r"LF columns \['LF99'\] not found"):
        load_label_matrix_csv(f, source_cols=["LF1", "LF99"])
    with pytest.raises(ValueError, match="no label_col column 'gold'"):
        load_label_matrix_csv(f, label_col="gold")


def test_cubam_yaml(tmp_path):
    d = DATA / "welinder_bluebirds_tiny"
    ds = load_cubam_yaml(d / "labels.yaml", d / "gt.yaml")
    assert (ds.n_items, ds.n_sources, ds.n_classes) == (10, 4, 2)
    assert ds.n_votes == 40  # dense: every worker labelled every image
    import yaml

    gt = yaml.safe_load((d / "gt.yaml").read_text())
    labels = yaml.safe_load((d / "labels.yaml").read_text())
    np.testing.assert_array_equal(ds.y, [int(gt[i]) for i in ds.item_ids])
    dense = ds.dense()
    for j, w in enumerate(labels):
        np.testing.assert_array_equal(dense[:, j], [int(labels[w][i]) for i in ds.item_ids])
    bad = tmp_path / "bad.yaml"
    bad.write_text("[1, 2, 3]\n")
    with pytest.raises(ValueError, match=r"expected a mapping \{worker: \{item: label\}\}"):
        load_cubam_yaml(bad)
    bad.write_text("{a: [1, \n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_cubam_yaml(bad)


# ----------------------------------------------------------------- registry on tiny copies
def test_gal_toy_truth_sources():
    ds = load_shared("gal_adultcontent_toy", data_home=DATA)
    assert (ds.n_items, ds.n_sources, ds.n_classes) == (5, 5, 2)
    # README: url1, url3, url5 notporn; url2, url4 porn
    np.testing.assert_array_equal(ds.y, [0, 1, 0, 1, 0])
    gold_only = load_shared("gal_adultcontent_toy", data_home=DATA, truth="gold")
    np.testing.assert_array_equal(gold_only.y, [0, 1, -1, -1, -1])
    # worker5 is adversarial: always wrong against the README truth
    w5 = ds.dense()[:, ds.source_names.index("worker5")]
    assert (w5 != ds.y).all()
    with pytest.raises(ValueError, match="truth must be 'readme', 'gold' or 'evaluation'"):
        load_shared("gal_adultcontent_toy", data_home=DATA, truth="paper")


def test_dawid_skene_two_representations():
    f = DATA / "dawid_skene_1979" / "dawid_skene_1979_table1.csv"
    seven = load_dawid_skene_1979(f)
    five = load_dawid_skene_1979(f, repeats="count")
    assert (seven.n_items, seven.n_sources, seven.n_classes) == (45, 7, 4)
    assert (five.n_items, five.n_sources, five.n_classes) == (45, 5, 4)
    assert (seven.y == -1).all() and (five.y == -1).all()
    assert seven.n_votes == five.n_votes == 45 * 7
    assert not seven.L.has_repeats() and five.L.has_repeats()
    assert seven.source_names[:3] == ["obs1_r0", "obs1_r1", "obs1_r2"]
    assert seven.dense().min() >= 0  # dense, no abstain
    # observer 1's count vector = the sum of its three examinations
    k = 4
    v7, v5 = seven.L.one_hot().toarray(), five.L.one_hot().toarray()
    np.testing.assert_array_equal(v7[:, : 3 * k].reshape(45, 3, k).sum(1), v5[:, :k])
    np.testing.assert_array_equal(v7[:, 3 * k :], v5[:, k:])
    # majority vote is the same object either way (every vote counted)
    np.testing.assert_allclose(
        MajorityVote().fit(seven.L).predict_proba(seven.L),
        MajorityVote().fit(five.L).predict_proba(five.L),
    )
    with pytest.raises(ValueError, match="repeats must be 'sources' or 'count'"):
        load_dawid_skene_1979(f, repeats="merge")


def test_load_shared_errors(tmp_path):
    with pytest.raises(ValueError, match="Unknown shared dataset 'wrench_yelp'"):
        load_shared("wrench_yelp")
    with pytest.raises(ValueError, match=r"Unknown split 'test' for 'metal_cdr'.*'train', 'dev'"):
        load_shared("metal_cdr", "test", data_home=tmp_path)
    with pytest.raises(FileNotFoundError, match="WSAGG_DATA_HOME"):
        load_shared("metal_cdr", data_home=tmp_path / "nowhere")
    with pytest.raises(TypeError, match="does not accept"):
        load_shared("gal_adultcontent_toy", data_home=DATA, repeats="count")
    assert "wrench_youtube" in list_shared()
    assert shared_info("metal_cdr")["splits"] == ["train", "dev"]


# --------------------------------------------------------------------------- Dataset type
def test_dataset_views_agree_and_mv_identical_across_inputs():
    d = DATA / "zhou2012_web_tiny"
    ds = load_crowd_triples(d / "label.csv", d / "truth.csv")
    dense, sparse = ds.dense(), ds.sparse()
    assert sp.issparse(sparse)
    np.testing.assert_array_equal(sparse.toarray(), dense + 1)  # stored value = label + 1
    p_lm = MajorityVote(n_classes=5).fit(ds.L).predict_proba(ds.L)
    p_dense = MajorityVote(n_classes=5).fit(dense).predict_proba(dense)
    p_sparse = MajorityVote(n_classes=5).fit(sparse).predict_proba(sparse)
    long = ds.long()
    p_long = MajorityVote(n_classes=5).fit(long).predict_proba(long)  # 8 voted items only
    np.testing.assert_allclose(p_lm, p_dense)
    np.testing.assert_allclose(p_lm, p_sparse)
    np.testing.assert_allclose(p_lm[:8], p_long)
    s = ds.gold_series()
    assert s.loc["0"] == ds.class_names[ds.y[0]]


def test_majority_vote_accuracy_scores_ties_as_expected_accuracy():
    # item 0: 1 vs 1 tie (gold 0 -> 1/2), item 1: clear win (gold 1 -> 1), item 2: no vote
    # (excluded), item 3: no gold (excluded)
    L = np.array([[0, 1], [1, 1], [-1, -1], [0, 0]])
    ds = dataset_from_dense(L, np.array([0, 1, 1, -1]), y_unknown_value=-1, name="t")
    assert ds.majority_vote_accuracy() == pytest.approx(0.75)
    s = ds.summary()
    assert s["gold"] == 3 and s["votes"] == 6 and s["abstain_pct"] == pytest.approx(25.0)
    nogold = dataset_from_dense(L, None, name="t")
    assert np.isnan(nogold.majority_vote_accuracy())


def test_dataset_validates_its_fields():
    ds = dataset_from_triples(np.array(["a", "b"]), np.array(["w", "w"]), np.array([0, 1]),
                              name="t")
    with pytest.raises(ValueError, match="y has shape"):
        Dataset(L=ds.L, y=np.zeros(3, int), class_names=["0", "1"], source_names=["w"], name="t")
    with pytest.raises(ValueError, match="3 class names for 2 classes"):
        Dataset(L=ds.L, y=ds.y, class_names=["a", "b", "c"], source_names=["w"], name="t")
    assert "items=2" in repr(ds)


# ------------------------------------------------------------------------------ demo
def test_demo_dataset():
    sizes = {"train": 1686, "valid": 120, "test": 250}
    for split, n in sizes.items():
        ds = load_demo(split)
        assert (ds.n_items, ds.n_sources, ds.n_classes) == (n, 10, 2)
        assert ds.class_names == ["HAM", "SPAM"]
        assert (ds.y >= 0).all()
        assert ds.dense().min() == -1 and ds.dense().max() == 1
    train = load_demo()
    assert train.metadata["labeled"].sum() == 100
    assert train.source_names[0] == "keyword_my"
    # majority vote beats the majority class, as it should on this set
    acc = train.majority_vote_accuracy()
    assert acc > np.bincount(train.y).max() / train.n_items
    with pytest.raises(ValueError, match="Unknown split 'dev' for the demo dataset"):
        load_demo("dev")


def test_demo_source_note_is_packaged():
    from importlib import resources

    note = resources.files("wsagg.datasets").joinpath("data", "SOURCE.md").read_text()
    assert "CC BY 4.0" in note and "41902c324779157a272548a008a6e487f6d81acc" in note


def test_docs_datasets_code_blocks_run(monkeypatch, capsys):
    """Every ```python block of docs/datasets.md runs as written from the repository root."""
    import re

    root = Path(__file__).resolve().parents[1]
    text = (root / "docs" / "datasets.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert len(blocks) >= 5
    monkeypatch.chdir(root)
    for i, code in enumerate(blocks):
        exec(compile(code, f"docs/datasets.md[block {i}]", "exec"), {"__name__": "__docs__"})
    assert "youtube (embedded demo)" in capsys.readouterr().out


def test_npz_gold_unknown_value(tmp_path):
    f = tmp_path / "m.npz"
    np.savez(f, L=np.array([[0, -1], [1, 1]]), y=np.array([-1, 1]))
    ds = load_label_matrix_npz(f, class_values=[0, 1], y_unknown_value=-1)
    np.testing.assert_array_equal(ds.y, [-1, 1])
    with pytest.raises(ValueError, match=r"gold value -1 is neither abstain"):
        load_label_matrix_npz(f, class_values=[0, 1])


def test_make_dawid_skene_uniform_errors_is_one_coin():
    import numpy as np

    from wsagg.datasets import make_dawid_skene

    acc = np.array([0.5, 0.6, 0.7, 0.9])
    d = make_dawid_skene(200, 4, 3, accuracy=acc, errors="uniform", random_state=0)
    for j in range(4):
        expected = np.full((3, 3), (1 - acc[j]) / 2)
        np.fill_diagonal(expected, acc[j])
        np.testing.assert_allclose(d.confusion[j], expected)
    with pytest.raises(ValueError, match="errors must be"):
        make_dawid_skene(10, 2, 2, errors="gaussian")
