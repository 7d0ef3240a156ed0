"""The wsagg console script: aggregate, analyze, demo, help and errors."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from wsagg.cli import main

VOTES = pd.DataFrame(
    {"task": ["a", "a", "a", "b", "b", "c"], "worker": ["w1", "w2", "w3", "w1", "w2", "w3"],
     "label": ["pos", "pos", "neg", "neg", "neg", "pos"]}
)


def test_aggregate_csv_long(tmp_path, capsys):
    src = tmp_path / "votes.csv"
    VOTES.to_csv(src, index=False)
    out = tmp_path / "soft.csv"
    assert main(["aggregate", str(src), "-o", str(out), "--method", "majority"]) == 0
    res = pd.read_csv(out)
    assert list(res.columns) == ["item", "p_neg", "p_pos", "label"]
    assert res["item"].tolist() == ["a", "b", "c"]  # rows in == rows out, input order
    np.testing.assert_allclose(res["p_pos"], [2 / 3, 0.0, 1.0])
    assert res["label"].tolist() == ["pos", "neg", "pos"]
    assert "aggregated 3 items" in capsys.readouterr().out


def test_aggregate_refuses_overwrites(tmp_path, capsys):
    src = tmp_path / "votes.csv"
    VOTES.to_csv(src, index=False)
    before = src.read_bytes()
    assert main(["aggregate", str(src), "-o", str(src)]) == 2
    assert "refusing to overwrite the input" in capsys.readouterr().err
    assert src.read_bytes() == before
    out = tmp_path / "soft.csv"
    out.write_text("precious")
    assert main(["aggregate", str(src), "-o", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert out.read_text() == "precious"
    assert main(["aggregate", str(src), "-o", str(out), "--force"]) == 0
    assert out.read_text() != "precious"


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    src = tmp_path / "votes.csv"
    VOTES.to_csv(src, index=False)
    out = tmp_path / "soft.csv"

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    assert main(["aggregate", str(src), "-o", str(out)]) == 2
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["votes.csv"]


def test_aggregate_npz_sparse_and_dense_agree(tmp_path):
    L = np.array([[0, 1, -1], [1, 1, 0], [-1, -1, -1]])
    sparse_path = tmp_path / "L_sparse.npz"
    sp.save_npz(sparse_path, sp.csr_matrix(np.where(L >= 0, L + 1, 0)))
    dense_path = tmp_path / "L_dense.npz"
    np.savez(dense_path, L=L)
    npy_path = tmp_path / "L.npy"
    np.save(npy_path, L)
    outs = []
    for i, p in enumerate([sparse_path, dense_path, npy_path]):
        out = tmp_path / f"out{i}.parquet"
        assert main(["aggregate", str(p), "-o", str(out), "--method", "majority"]) == 0
        outs.append(pd.read_parquet(out))
    for o in outs[1:]:
        pd.testing.assert_frame_equal(outs[0], o)
    assert outs[0].shape[0] == 3  # the all-abstain row is kept


def test_aggregate_npz_output_and_wide(tmp_path):
    wide = pd.DataFrame({"id": ["x", "y"], "lf1": [0, -1], "lf2": [0, 1]})
    src = tmp_path / "wide.csv"
    wide.to_csv(src, index=False)
    out = tmp_path / "soft.npz"
    assert main(["aggregate", str(src), "--wide", "--item-col", "id", "-o", str(out),
                 "--method", "majority"]) == 0
    with np.load(out) as z:
        assert z["item"].tolist() == ["x", "y"]
        np.testing.assert_allclose(z["p_1"], [0.0, 1.0])


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["aggregate", "missing.csv", "-o", "o.csv"], "does not exist"),
        (["aggregate", "{bad}", "-o", "o.txt"], "unsupported output format"),
        (["aggregate", "{bad}", "-o", "o.csv", "--method", "majority", "--param", "oops"],
         "KEY=VALUE"),
        (["analyze", "{bad}"], "label column"),
    ],
)
def test_bad_input_one_line_error(tmp_path, capsys, args, match):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"item": [1], "source": [1], "answer": [1]}).to_csv(bad, index=False)
    good = tmp_path / "good.csv"
    VOTES.to_csv(good, index=False)
    args = [a.replace("{bad}", str(good if "o.txt" in args or "oops" in args else bad))
            for a in args]
    args = [str(tmp_path / a) if a in {"o.csv", "o.txt"} else a for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wsagg: error:") and match in err and "\n" not in err


def test_analyze_prints_table(tmp_path, capsys):
    src = tmp_path / "votes.csv"
    VOTES.to_csv(src, index=False)
    out = tmp_path / "diag.csv"
    assert main(["analyze", str(src), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "coverage" in text and "w1" in text
    table = pd.read_csv(out)
    assert table["source"].tolist() == ["w1", "w2", "w3"]
    np.testing.assert_allclose(table["coverage"], [2 / 3, 2 / 3, 2 / 3])


def test_console_script_help_and_exit_codes(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    res = subprocess.run([sys.executable, "-m", "wsagg", "--help"], capture_output=True,
                         text=True, env=env, check=False)
    assert res.returncode == 0
    for word in ("demo", "aggregate", "analyze", "examples"):
        assert word in res.stdout
    res = subprocess.run([sys.executable, "-m", "wsagg", "aggregate", "nope.csv", "-o",
                          str(tmp_path / "x.csv")], capture_output=True, text=True, env=env,
                         check=False)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "does not exist" in res.stderr


def test_demo_prints_majority_accuracy(capsys):
    from wsagg.datasets import load_demo
    from wsagg.metrics import accuracy

    assert main(["demo", "--method", "majority"]) == 0
    out = capsys.readouterr().out
    data = load_demo("train")
    expected = accuracy(data.y, np.asarray(
        __import__("wsagg").MajorityVote().fit_predict_proba(data.L)))
    assert f"accuracy {expected:.4f} against gold on 1686 items" in out
    assert "1686 items, 10 labeling functions" in out


def _one_line_error(capsys, args):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wsagg: error:") and "\n" not in err
    return err


def test_input_edge_cases_name_the_problem(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    out = str(tmp_path / "o.csv")
    # pandas' own "No columns to parse from file" named neither the file nor the fix
    assert "'empty.csv' is empty" in _one_line_error(capsys, ["aggregate", str(empty), "-o", out])
    assert "'empty.csv' is empty" in _one_line_error(capsys, ["analyze", str(empty)])
    # a directory gave "[Errno 21] ..." or, without a suffix, "unsupported input format ''"
    for d in (tmp_path / "votes.csv", tmp_path / "votes"):
        d.mkdir()
        assert "is a directory" in _one_line_error(capsys, ["aggregate", str(d), "-o", out])
    # a wide table with a text id column gave "dtype object ... use long format"
    wide = tmp_path / "wide.csv"
    pd.DataFrame({"id": ["a", "b"], "lf1": [0, 1], "lf2": [-1, 1]}).to_csv(wide, index=False)
    err = _one_line_error(capsys, ["aggregate", str(wide), "--wide", "-o", out])
    assert "--item-col id" in err
    assert main(["aggregate", str(wide), "--wide", "--item-col", "id", "-o", out]) == 0


def test_output_path_problems(tmp_path, capsys):
    src = tmp_path / "votes.csv"
    VOTES.to_csv(src, index=False)
    out_dir = tmp_path / "out.csv"
    out_dir.mkdir()
    # used to fail with "[Errno 21] Is a directory: '.../.out.csv.xxxx.tmp' -> ..."
    err = _one_line_error(capsys, ["aggregate", str(src), "-o", str(out_dir), "--force"])
    assert "is a directory; give a file path" in err
    # used to fail with "[Errno 17] File exists: 'votes.csv'"
    err = _one_line_error(capsys, ["aggregate", str(src), "-o", str(src / "x.csv")])
    assert "is a file, not a directory" in err
    # a missing directory is created
    deep = tmp_path / "a" / "b" / "soft.csv"
    assert main(["aggregate", str(src), "-o", str(deep)]) == 0 and deep.exists()
    # the input, reached by another relative path, is refused
    (tmp_path / "sub").mkdir()
    err = _one_line_error(
        capsys, ["aggregate", str(src), "-o", str(tmp_path / "sub" / ".." / "votes.csv"),
                 "--force"])
    assert "refusing to overwrite the input" in err
    assert pd.read_csv(src).equals(VOTES)


def test_adversarial_from_the_command_line_explains_how(tmp_path, capsys):
    src = tmp_path / "votes.csv"
    VOTES.to_csv(src, index=False)
    # the estimator's message pointed at fit(L, L_labeled=...), which the CLI cannot do
    for args in (["demo", "--method", "adversarial", "--known-labels", "none"],
                 ["aggregate", str(src), "-o", str(tmp_path / "o.csv"), "--method",
                  "adversarial"]):
        err = _one_line_error(capsys, args)
        assert "--param accuracy_bounds=" in err
    assert main(["aggregate", str(src), "-o", str(tmp_path / "o.csv"), "--method",
                 "adversarial", "--param", "accuracy_bounds=[0.6,0.9]"]) == 0


def test_demo_with_known_labels_scores_only_the_unlabeled_split(capsys):
    # the adversarial method defaults to the valid split's gold as its labeled set
    assert main(["demo", "--method", "adversarial"]) == 0
    out = capsys.readouterr().out
    assert "valid split's gold given as known labels" in out
    assert "against gold on 1686 items" in out  # scored on train only, rows in == rows out
    assert main(["demo", "--method", "dawid-skene", "--known-labels", "valid",
                 "--split", "test"]) == 0
    assert "against gold on 250 items" in capsys.readouterr().out
    err = _one_line_error(capsys, ["demo", "--known-labels", "valid", "--split", "valid"])
    assert "another --split" in err


def test_auto_is_the_default_and_explains_its_choice(tmp_path, capsys):
    src = tmp_path / "votes.csv"
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    rows = [(i, j, int(y[i] if rng.random() < 0.8 else 1 - y[i]))
            for i in range(200) for j in range(5)]
    pd.DataFrame(rows, columns=["item", "source", "label"]).to_csv(src, index=False)
    assert main(["aggregate", str(src), "-o", str(tmp_path / "o.csv")]) == 0
    out = capsys.readouterr().out
    assert "with auto ->" in out and "wsagg: auto: chose " in out
