"""Issue 12, the command line side: missing optional dependencies, pandas' index column and
abstain conventions, known labels / gold / classes / separators / stdin-stdout, output
validation before any work, parameter help, and the fit / predict / report commands."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import wsagg
from wsagg import cli
from wsagg.cli import main

MAJ = ["--method", "majority"]
CLASSES = np.array(["a", "b", "c"])


def _votes(n: int = 60, m: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A dense 3-class matrix (-1 = abstain) and its truth."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    right = rng.random((n, m)) < 0.75
    L = np.where(right, y[:, None], rng.integers(0, 3, (n, m)))
    L = np.where(rng.random((n, m)) < 0.8, L, -1)
    return L, y


def _long(L: np.ndarray) -> pd.DataFrame:
    rows = [(f"i{i}", f"w{j}", CLASSES[L[i, j]]) for i in range(L.shape[0])
            for j in range(L.shape[1]) if L[i, j] >= 0]
    return pd.DataFrame(rows, columns=["item", "source", "label"])


def _err(capsys, args, code=2) -> str:
    rc = main(args)
    captured = capsys.readouterr()
    assert rc == code, captured
    err = captured.err.strip()
    assert err.startswith("wsagg:") and "\n" not in err and "Traceback" not in err, err
    assert "np.int64" not in err and "np.str_" not in err, err
    return err


# ----------------------------------------------------------- item 1: optional dependencies


@pytest.fixture
def votes_csv(tmp_path):
    L, _ = _votes()
    src = tmp_path / "votes.csv"
    _long(L).to_csv(src, index=False)
    return src


_HIDE = """
import importlib.abc, sys
HIDDEN = sys.argv.pop(1)

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Hide())
from wsagg.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(("hidden", "extra", "args"), [
    ("pyarrow", "io", ["aggregate", "{votes}", "-o", "{tmp}/o.parquet", *MAJ]),
    ("pyarrow", "io", ["aggregate", "{parquet}", "-o", "{tmp}/o.csv", *MAJ]),
    ("matplotlib", "plot", ["report", "{votes}", "-o", "{tmp}/r.html", *MAJ]),
    ("torch", "torch", ["aggregate", "{votes}", "-o", "{tmp}/o.csv", "--method", "dawid-skene",
                        "--param", "device='cpu'"]),
    ("cvxpy", "cvxpy", ["aggregate", "{votes}", "-o", "{tmp}/o.csv", "--method", "adversarial",
                        "--known-labels", "{gold}", "--param", "solver='cvxpy'"]),
])
def test_missing_optional_dependency_is_one_line_naming_the_extra(
        tmp_path, votes_csv, hidden, extra, args):
    """A real process in which ``import <hidden>`` fails, as on a core-only install."""
    parquet = tmp_path / "votes.parquet"
    pd.read_csv(votes_csv).to_parquet(parquet)
    gold = tmp_path / "gold.csv"
    _, y = _votes()
    pd.DataFrame({"item": [f"i{i}" for i in range(0, 60, 3)],
                  "label": CLASSES[y[::3]]}).to_csv(gold, index=False)
    args = [a.format(votes=votes_csv, parquet=parquet, tmp=tmp_path, gold=gold) for a in args]
    before = sorted(p.name for p in tmp_path.iterdir())
    res = subprocess.run([sys.executable, "-c", _HIDE, hidden, *args], capture_output=True,
                         text=True, check=False, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    err = res.stderr.strip()
    assert res.returncode == 2, err
    assert err.startswith("wsagg: error:") and "\n" not in err and "Traceback" not in err, err
    assert f"pip install 'wsagg[{extra}]'" in err and hidden in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_dependency_missing_deep_inside_a_fit_names_its_extra(
        tmp_path, capsys, monkeypatch, votes_csv):
    import wsagg.aggregation.majority as majority

    def needs_dask(self, *a, **k):
        raise ModuleNotFoundError("No module named 'dask'", name="dask")

    monkeypatch.setattr(majority.MajorityVote, "_fit", needs_dask)
    err = _err(capsys, ["aggregate", str(votes_csv), "-o", str(tmp_path / "o.csv"), *MAJ])
    assert "pip install 'wsagg[dask]'" in err and "Fitting --method majority" in err


def test_help_imports_no_heavy_dependency():
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "wsagg", "--help"],
                         capture_output=True, text=True, check=True)
    modules = {line.split("|")[-1].strip() for line in res.stderr.splitlines()
               if line.startswith("import time:")}
    for heavy in ("torch", "cvxpy", "matplotlib", "pyarrow", "dask"):
        assert heavy not in modules
    assert "fit" in res.stdout and "predict" in res.stdout and "report" in res.stdout


# ------------------------------------------------------ item 2: silent wrong answers refused


def test_pandas_default_to_csv_index_is_the_item_ids(tmp_path, capsys):
    L, _ = _votes()
    wide = pd.DataFrame(L, columns=[f"lf{j}" for j in range(5)])
    wide.index = [f"doc{i}" for i in range(len(wide))]
    with_index = tmp_path / "wide_index.csv"
    wide.to_csv(with_index)  # pandas' default: the unnamed index first
    named = tmp_path / "wide_named.csv"
    wide.rename_axis("id").reset_index().to_csv(named, index=False)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert main(["aggregate", str(with_index), "--wide", "-o", str(a), *MAJ]) == 0
    captured = capsys.readouterr()
    assert "5 sources" in captured.out and "3 classes" in captured.out
    notes = [line for line in captured.err.splitlines() if "item ids" in line]
    assert len(notes) == 1 and "no header" in notes[0]
    assert main(["aggregate", str(named), "--wide", "--item-col", "id", "-o", str(b), *MAJ]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(a), pd.read_csv(b))
    assert pd.read_csv(a)["item"].tolist() == list(wide.index)
    # a RangeIndex (0..n-1) is detected too
    plain = tmp_path / "wide_range.csv"
    pd.DataFrame(L, columns=[f"lf{j}" for j in range(5)]).to_csv(plain)
    assert main(["aggregate", str(plain), "--wide", "-o", str(tmp_path / "c.csv"), *MAJ]) == 0
    assert pd.read_csv(tmp_path / "c.csv")["item"].tolist() == list(range(60))


def test_wide_id_like_columns_are_refused(tmp_path, capsys):
    L, _ = _votes()
    out = str(tmp_path / "o.csv")
    df = pd.DataFrame(L, columns=[f"lf{j}" for j in range(5)])
    ids = tmp_path / "ids.csv"
    df.rename_axis("id").reset_index().to_csv(ids, index=False)
    err = _err(capsys, ["aggregate", str(ids), "--wide", "-o", out])
    assert "column 'id'" in err and "--item-col id" in err
    repeated = tmp_path / "repeated.csv"
    df.set_index(pd.Index(np.arange(60) % 7)).to_csv(repeated)
    assert "no header and repeats values" in _err(
        capsys, ["aggregate", str(repeated), "--wide", "-o", out])
    # an id column in a .npy: k equal to n is refused, unless --n-classes says so
    npy = tmp_path / "ids.npy"
    np.save(npy, np.c_[np.arange(8), np.arange(8) % 2])
    err = _err(capsys, ["aggregate", str(npy), "-o", out])
    assert "8 classes for 8 items" in err and "--n-classes 8" in err
    assert main(["aggregate", str(npy), "--n-classes", "8", "-o", out, *MAJ]) == 0


def test_abstain_value_zero_one_based_classes(tmp_path, capsys):
    L, _ = _votes()
    ref, shifted = tmp_path / "ref.npy", tmp_path / "shifted.npy"
    np.save(ref, L)
    np.save(shifted, np.where(L >= 0, L + 1, 0))
    assert main(["aggregate", str(ref), "-o", str(tmp_path / "ref.csv"), *MAJ]) == 0
    assert main(["aggregate", str(shifted), "--abstain-value", "0", "-o",
                 str(tmp_path / "s.csv"), *MAJ]) == 0
    assert "votes 1..3 are the classes 1..3" in capsys.readouterr().err
    a, b = pd.read_csv(tmp_path / "ref.csv"), pd.read_csv(tmp_path / "s.csv")
    assert list(b.columns) == ["item", "p_1", "p_2", "p_3", "label"]  # the user's values
    np.testing.assert_allclose(a[["p_0", "p_1", "p_2"]].to_numpy(),
                               b[["p_1", "p_2", "p_3"]].to_numpy())
    assert (b["label"] == a["label"] + 1).all()
    # a wide table with 0 = abstain gives the same
    wide = tmp_path / "w.csv"
    pd.DataFrame(np.where(L >= 0, L + 1, 0)).add_prefix("lf").to_csv(wide, index=False)
    assert main(["aggregate", str(wide), "--wide", "--abstain-value", "0", "-o",
                 str(tmp_path / "w_out.csv"), *MAJ]) == 0
    np.testing.assert_allclose(pd.read_csv(tmp_path / "w_out.csv")[["p_1", "p_2", "p_3"]],
                               b[["p_1", "p_2", "p_3"]])


def test_flyingsquid_plus_minus_one_with_zero_abstain(tmp_path, capsys):
    rng = np.random.default_rng(3)
    y = rng.choice([-1, 1], 400)
    fs = np.where(rng.random((400, 6)) < 0.3,
                  np.where(rng.random((400, 6)) < 0.8, y[:, None], -y[:, None]), 0).astype(float)
    src = tmp_path / "fs.npy"
    np.save(src, fs)
    # without the flag: a one-line warning that 0 may be the abstain
    assert main(["aggregate", str(src), "-o", str(tmp_path / "bad.csv"), *MAJ]) == 0
    warns = [w for w in capsys.readouterr().err.splitlines() if "--abstain-value 0" in w]
    assert len(warns) == 1 and "0 may be your abstain" in warns[0]
    assert main(["aggregate", str(src), "--abstain-value", "0", "-o",
                 str(tmp_path / "good.csv"), *MAJ]) == 0
    assert "FlyingSquid" in capsys.readouterr().err
    good = pd.read_csv(tmp_path / "good.csv")
    assert list(good.columns) == ["item", "p_-1", "p_1", "label"]
    mapped = np.where(fs == 0, -1, (fs + 1) // 2).astype(int)
    expected = wsagg.MajorityVote().fit_predict_proba(mapped)
    np.testing.assert_allclose(good[["p_-1", "p_1"]].to_numpy(), expected)
    covered = (fs != 0).any(axis=1)
    assert (good["label"].to_numpy()[covered] == y[covered]).mean() > 0.8


def test_zero_warning_only_when_zero_dominates(tmp_path, capsys):
    L, _ = _votes()
    src = tmp_path / "L.npy"
    np.save(src, L)
    assert main(["aggregate", str(src), "-o", str(tmp_path / "o.csv"), *MAJ]) == 0
    assert "abstain-value" not in capsys.readouterr().err
    rng = np.random.default_rng(0)
    zero = tmp_path / "zero.npy"
    np.save(zero, np.where(rng.random((300, 5)) < 0.3, rng.integers(1, 4, (300, 5)), 0))
    assert main(["aggregate", str(zero), "-o", str(tmp_path / "z.csv"), *MAJ]) == 0
    err = capsys.readouterr().err
    assert err.count("0 may be your abstain: pass --abstain-value 0") == 1
    assert "no cell is -1" in err


def test_abstain_value_errors(tmp_path, capsys):
    out = str(tmp_path / "o.csv")
    sparse = tmp_path / "s.npz"
    sp.save_npz(sparse, sp.csr_matrix(np.array([[1, 2], [0, 1]])))
    assert "sparse" in _err(capsys, ["aggregate", str(sparse), "--abstain-value", "0",
                                     "-o", out])
    mixed = tmp_path / "m.npy"
    np.save(mixed, np.array([[-1, 1, 2], [0, 2, 1], [1, 0, -1]]))
    err = _err(capsys, ["aggregate", str(mixed), "--abstain-value", "0", "-o", out])
    assert "[-1, 1, 2]" in err
    assert "--abstain-value 'x'" in _err(
        capsys, ["aggregate", str(mixed), "--abstain-value", "x", "-o", out])


def test_abstain_value_in_long_format(tmp_path):
    L, _ = _votes()
    df = _long(L)
    base = tmp_path / "v.csv"
    df.to_csv(base, index=False)
    extra = pd.concat([df, pd.DataFrame({"item": ["i0", "i1"], "source": ["w9", "w9"],
                                         "label": ["skip", "skip"]})])
    marked = tmp_path / "marked.csv"
    extra.to_csv(marked, index=False)
    assert main(["aggregate", str(base), "-o", str(tmp_path / "a.csv"), *MAJ]) == 0
    assert main(["aggregate", str(marked), "--abstain-value", "skip", "-o",
                 str(tmp_path / "b.csv"), *MAJ]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a.csv"),
                                  pd.read_csv(tmp_path / "b.csv"))


# --------------------------------------------------------------- item 4: what users have


def _gold_file(tmp_path: Path, y: np.ndarray, header: bool = True, sep: str = ",",
               name: str = "gold.csv", step: int = 3) -> tuple[Path, pd.Series]:
    items = [f"i{i}" for i in range(0, len(y), step)]
    labels = CLASSES[y[::step]]
    path = tmp_path / name
    pd.DataFrame({"item": items, "label": labels}).to_csv(path, index=False, header=header,
                                                          sep=sep)
    return path, pd.Series(labels, index=items)


@pytest.mark.parametrize(("header", "sep", "name"),
                         [(True, ",", "gold.csv"), (False, ",", "gold.csv"),
                          (False, "\t", "gold.tsv"), (True, "\t", "gold.txt")])
def test_known_labels_let_adversarial_run_from_the_shell(tmp_path, capsys, votes_csv,
                                                         header, sep, name):
    _, y = _votes()
    gold, series = _gold_file(tmp_path, y, header, sep, name)
    out = tmp_path / "soft.csv"
    assert main(["aggregate", str(votes_csv), "--method", "adversarial", "--known-labels",
                 str(gold), "-o", str(out)]) == 0
    assert "20 known labels" in capsys.readouterr().out
    expected = wsagg.AdversarialLogLoss().fit_predict_proba(pd.read_csv(votes_csv), series)
    np.testing.assert_allclose(pd.read_csv(out)[["p_a", "p_b", "p_c"]].to_numpy(), expected)


def test_known_labels_parquet_and_auto(tmp_path, capsys, votes_csv):
    _, y = _votes()
    gold = tmp_path / "gold.parquet"
    pd.DataFrame({"task": [f"i{i}" for i in range(0, 60, 2)],
                  "label": CLASSES[y[::2]]}).to_parquet(gold)
    out = tmp_path / "soft.csv"
    assert main(["aggregate", str(votes_csv), "--known-labels", str(gold), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "30 known labels with auto" in text and "wsagg: auto: chose" in text


def test_known_labels_problems_are_one_line(tmp_path, capsys, votes_csv):
    out = str(tmp_path / "o.csv")
    args = ["aggregate", str(votes_csv), "-o", out, "--method", "adversarial",
            "--known-labels"]
    f = tmp_path / "k.csv"
    f.write_text("item,label\nnope1,a\nnope2,b\n")
    assert "none of its items" in _err(capsys, [*args, str(f)])
    f.write_text("item,label\ni0,a\ni0,b\n")
    assert "appears more than once" in _err(capsys, [*args, str(f)])
    f.write_text("item,label\ni0,zebra\n")
    err = _err(capsys, [*args, str(f)])
    assert "'zebra'" in err and "--classes" in err
    # some unknown items: a warning, and the rest are used
    _, y = _votes()
    f.write_text("item,label\nghost,a\n" + "".join(f"i{i},{CLASSES[y[i]]}\n"
                                                   for i in range(0, 60, 4)))
    assert main([*args, str(f)]) == 0
    captured = capsys.readouterr()
    assert "1 of its 16 items" in captured.err and "15 known labels" in captured.out
    # without known labels the command line says how to give them
    args[3] = str(tmp_path / "o2.csv")
    assert "--known-labels FILE" in _err(capsys, args[:-1])


def test_analyze_gold_adds_empirical_accuracy(tmp_path, capsys, votes_csv):
    _, y = _votes()
    gold, series = _gold_file(tmp_path, y, header=False)
    out = tmp_path / "diag.csv"
    assert main(["analyze", str(votes_csv), "--gold", str(gold), "-o", str(out)]) == 0
    assert "emp_accuracy" in capsys.readouterr().out
    table = pd.read_csv(out).set_index("source")
    expected = wsagg.source_summary(pd.read_csv(votes_csv), y=series)
    for col in ("correct", "incorrect", "emp_accuracy"):
        np.testing.assert_allclose(table[col].to_numpy(), expected[col].to_numpy())
    assert table["correct"].sum() > table["incorrect"].sum() > 0


def test_classes_name_and_order_the_classes(tmp_path, capsys):
    src = tmp_path / "v.csv"
    pd.DataFrame({"item": [1, 1, 2, 2, 3], "source": ["x", "y", "x", "y", "x"],
                  "label": ["pos", "pos", "neg", "pos", "neg"]}).to_csv(src, index=False)
    out = tmp_path / "o.csv"
    assert main(["aggregate", str(src), "--classes", "pos,neg", "-o", str(out), *MAJ]) == 0
    res = pd.read_csv(out)
    assert list(res.columns) == ["item", "p_pos", "p_neg", "label"]
    assert res["label"].tolist() == ["pos", "pos", "neg"]
    # a class no source voted for is kept as a column
    assert main(["aggregate", str(src), "--classes", "neg,neu,pos", "-o", str(out), "--force",
                 *MAJ]) == 0
    assert list(pd.read_csv(out).columns) == ["item", "p_neg", "p_neu", "p_pos", "label"]
    # integer class ids get names, in id order
    ids = tmp_path / "ids.npy"
    np.save(ids, np.array([[0, 1], [1, 1], [0, -1]]))
    assert main(["aggregate", str(ids), "--classes", "ham,spam", "-o", str(out), "--force",
                 *MAJ]) == 0
    res = pd.read_csv(out)
    assert list(res.columns) == ["item", "p_ham", "p_spam", "label"]
    assert res["label"].tolist() == ["ham", "spam", "ham"]
    err = _err(capsys, ["aggregate", str(src), "--classes", "neg,neu", "-o",
                        str(tmp_path / "x.csv")])
    assert "'pos' is not one of --classes" in err


def test_separator_header_and_sniffed_text(tmp_path, capsys, votes_csv):
    df = pd.read_csv(votes_csv)
    ref = tmp_path / "ref.csv"
    assert main(["aggregate", str(votes_csv), "-o", str(ref), *MAJ]) == 0
    expected = pd.read_csv(ref)
    cases = {
        "semi.csv": (dict(sep=";"), ["--sep", ";"]),
        "tabs.txt": (dict(sep="\t"), []),
        "pipes.votes": (dict(sep="|"), []),
        "noheader.tsv": (dict(sep="\t", header=False), ["--no-header"]),
        "spaces.dat": (dict(sep=" "), ["--sep", "whitespace"]),
    }
    for name, (kwargs, flags) in cases.items():
        path = tmp_path / name
        df.to_csv(path, index=False, **kwargs)
        out = tmp_path / f"out_{name}.csv"
        assert main(["aggregate", str(path), *flags, "-o", str(out), *MAJ]) == 0, name
        pd.testing.assert_frame_equal(pd.read_csv(out), expected)
    binary = tmp_path / "votes.bin"
    binary.write_bytes(b"\x00\x01\x02garbage")
    assert "not a text table" in _err(capsys, ["aggregate", str(binary), "-o",
                                               str(tmp_path / "x.csv")])
    two = tmp_path / "two.tsv"
    df[["item", "source"]].to_csv(two, sep="\t", index=False, header=False)
    assert "exactly 3 columns" in _err(capsys, ["aggregate", str(two), "--no-header", "-o",
                                                str(tmp_path / "x.csv")])


def test_stdin_to_stdout_in_a_real_process(tmp_path, votes_csv):
    ref = tmp_path / "ref.csv"
    assert main(["aggregate", str(votes_csv), "-o", str(ref), *MAJ]) == 0
    text = pd.read_csv(votes_csv).to_csv(sep="\t", index=False)
    res = subprocess.run([sys.executable, "-m", "wsagg", "aggregate", "-", "-o", "-", *MAJ],
                         input=text, capture_output=True, text=True, check=False,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert res.returncode == 0, res.stderr
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(res.stdout)), pd.read_csv(ref))
    assert "aggregated 60 items" in res.stderr and "<stdout>" in res.stderr


def test_analyze_to_stdout_keeps_stdout_a_table(capsys, votes_csv):
    assert main(["analyze", str(votes_csv), "-o", "-"]) == 0
    captured = capsys.readouterr()
    table = pd.read_csv(io.StringIO(captured.out))
    assert table["source"].tolist() == [f"w{j}" for j in range(5)]
    assert "coverage" in captured.err


@pytest.mark.parametrize("command", ["aggregate", "fit", "predict", "analyze", "report"])
def test_output_is_validated_before_reading(tmp_path, capsys, monkeypatch, votes_csv,
                                            command):
    def never(*a, **k):
        raise AssertionError("the input was read before the output path was checked")

    monkeypatch.setattr(cli, "_read_input", never)
    monkeypatch.setattr(cli, "_load_model", never)
    suffix = {"fit": ".wsagg", "report": ".html"}.get(command, ".csv")
    taken = tmp_path / f"taken{suffix}"
    taken.write_text("precious")
    head = [command, "model.wsagg", str(votes_csv)] if command == "predict" else [
        command, str(votes_csv)]
    assert "exists" in _err(capsys, [*head, "-o", str(taken)])
    assert "unsupported output format '.xlsx'" in _err(
        capsys, [*head, "-o", str(tmp_path / "o.xlsx")])
    assert taken.read_text() == "precious"
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            assert "not writable" in _err(capsys, [*head, "-o", str(ro / f"o{suffix}")])
        finally:
            ro.chmod(0o755)


def test_param_typo_suggests_and_method_help_lists_parameters(tmp_path, capsys, votes_csv):
    err = _err(capsys, ["aggregate", str(votes_csv), "-o", str(tmp_path / "o.csv"),
                        "--method", "dawid-skene", "--param", "max_iterr=5"])
    assert "did you mean 'max_iter'?" in err and "class_prior" in err
    from wsagg._registry import method_parameters

    for command in ("aggregate", "fit", "report"):
        assert main([command, "--method", "mace", "--help"]) == 0
        out = capsys.readouterr().out
        for name in method_parameters("mace"):
            assert f"--param {name}=" in out
    assert main(["methods", "glad"]) == 0
    out = capsys.readouterr().out
    assert all(f"--param {name}=" in out for name in method_parameters("glad"))


def test_messages_show_plain_values(tmp_path, capsys):
    src = tmp_path / "k.csv"
    pd.DataFrame({"item": [1, 1, 2], "source": [1, 2, 1], "label": [0, 2, 1]}).to_csv(
        src, index=False)
    err = _err(capsys, ["aggregate", str(src), "--n-classes", "2", "-o",
                        str(tmp_path / "o.csv")])
    assert "[0, 1, 2]" in err


# --------------------------------------------------------------- item 3: fit / predict


def test_fit_then_predict_matches_the_python_api(tmp_path, capsys, votes_csv):
    model_path = tmp_path / "m.wsagg"
    assert main(["fit", str(votes_csv), "--method", "dawid-skene", "-o", str(model_path)]) == 0
    assert "fitted dawid-skene on 60 items" in capsys.readouterr().out
    assert model_path.stat().st_mode & 0o777 == 0o666 & ~_umask()
    L2, _ = _votes(seed=5)
    new = tmp_path / "new.csv"
    _long(L2).to_csv(new, index=False)
    out = tmp_path / "p.csv"
    assert main(["predict", str(model_path), str(new), "-o", str(out)]) == 0
    model = wsagg.DawidSkene().fit(pd.read_csv(votes_csv))
    expected = model.predict_proba(pd.read_csv(new))
    res = pd.read_csv(out)
    np.testing.assert_allclose(res[["p_a", "p_b", "p_c"]].to_numpy(), expected, atol=1e-10)
    assert res["item"].tolist() == pd.read_csv(new)["item"].unique().tolist()
    loaded = wsagg.load(model_path)
    np.testing.assert_array_equal(loaded.predict_proba(pd.read_csv(new)),
                                  res[["p_a", "p_b", "p_c"]].to_numpy())
    # fit refuses to overwrite without --force, and a non-.wsagg name
    assert "exists" in _err(capsys, ["fit", str(votes_csv), "-o", str(model_path)])
    assert "'.csv'" in _err(capsys, ["fit", str(votes_csv), "-o", str(tmp_path / "m.csv")])


def test_fit_with_known_labels_then_predict(tmp_path, capsys, votes_csv):
    _, y = _votes()
    gold, series = _gold_file(tmp_path, y)
    model_path = tmp_path / "adv.wsagg"
    assert main(["fit", str(votes_csv), "--method", "adversarial", "--known-labels", str(gold),
                 "-o", str(model_path)]) == 0
    out = tmp_path / "p.csv"
    assert main(["predict", str(model_path), str(votes_csv), "-o", str(out)]) == 0
    expected = wsagg.AdversarialLogLoss().fit(pd.read_csv(votes_csv), series).predict_proba(
        pd.read_csv(votes_csv))
    np.testing.assert_allclose(pd.read_csv(out)[["p_a", "p_b", "p_c"]].to_numpy(), expected,
                               atol=1e-8)


def test_predict_refuses_mismatched_sources(tmp_path, capsys):
    L, _ = _votes()
    wide = pd.DataFrame(L, columns=[f"lf{j}" for j in range(5)])
    fit_src = tmp_path / "fit.csv"
    wide.to_csv(fit_src, index=False)
    model_path = tmp_path / "m.wsagg"
    assert main(["fit", str(fit_src), "--wide", "--method", "dawid-skene", "-o",
                 str(model_path)]) == 0
    out = str(tmp_path / "o.csv")
    swapped = tmp_path / "swapped.csv"
    wide[["lf1", "lf0", "lf2", "lf3", "lf4"]].to_csv(swapped, index=False)
    assert "another order" in _err(capsys, ["predict", str(model_path), str(swapped),
                                            "--wide", "-o", out])
    fewer = tmp_path / "fewer.csv"
    wide.drop(columns="lf4").to_csv(fewer, index=False)
    assert "missing ['lf4']" in _err(capsys, ["predict", str(model_path), str(fewer), "--wide",
                                              "-o", out])
    npy = tmp_path / "L.npy"
    np.save(npy, L)
    assert "no source names" in _err(capsys, ["predict", str(model_path), str(npy), "-o", out])
    long = tmp_path / "long.csv"
    pd.DataFrame({"item": [0, 1], "source": ["lf0", "stranger"], "label": [1, 0]}).to_csv(
        long, index=False)
    assert "'stranger'" in _err(capsys, ["predict", str(model_path), str(long), "-o", out])
    # the same columns in the same order work, and equal the Python API
    assert main(["predict", str(model_path), str(fit_src), "--wide", "-o", out]) == 0
    expected = wsagg.DawidSkene().fit(L).predict_proba(L)
    np.testing.assert_allclose(pd.read_csv(out)[["p_0", "p_1", "p_2"]].to_numpy(), expected,
                               atol=1e-10)
    # a tampered model file is one line
    bad = tmp_path / "bad.wsagg"
    bad.write_bytes(b"not a model")
    _err(capsys, ["predict", str(bad), str(fit_src), "--wide", "-o", str(tmp_path / "z.csv")])
    assert "does not exist" in _err(capsys, ["predict", str(tmp_path / "none.wsagg"),
                                             str(fit_src), "-o", str(tmp_path / "z.csv")])


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# --------------------------------------------------------------- item 7: wsagg report


def test_report_writes_one_self_contained_page(tmp_path, capsys, votes_csv):
    _, y = _votes()
    gold, _ = _gold_file(tmp_path, y, step=2)
    known, _ = _gold_file(tmp_path, y, name="known.csv", step=5)
    out = tmp_path / "report.html"
    assert main(["report", str(votes_csv), "--method", "dawid-skene", "--known-labels",
                 str(known), "--gold", str(gold), "-o", str(out)]) == 0
    assert "12 known labels with dawid-skene" in capsys.readouterr().out
    html = out.read_text()
    assert html.lstrip().lower().startswith("<!doctype html") or "<html" in html[:500]
    assert "data:image/png;base64," in html  # plots embedded
    assert "http://" not in html.replace("http://www.w3.org", "")  # nothing fetched
    assert "w0" in html and "dawid" in html.lower()
    assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert "exists" in _err(capsys, ["report", str(votes_csv), "-o", str(out)])
