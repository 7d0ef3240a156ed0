"""Results shaped like the input (issue 12, item 5).

* a pandas DataFrame in (long: ``item, source, label`` or crowd-kit's ``task, worker,
  label``; or wide: one column per source) gives pandas out, for every registered
  aggregator: ``predict`` / ``fit_predict`` a Series indexed by item id, ``predict_proba`` /
  ``fit_predict_proba`` a DataFrame with one column per class;
* arrays, sparse matrices and LabelMatrix in give NumPy out;
* :class:`wsagg.LabelMatrix` behaves like the dense array a Snorkel applier returns while
  staying sparse inside.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from wsagg._registry import AGGREGATORS, get_aggregator
from wsagg.datasets import make_dawid_skene
from wsagg.labels import LabelMatrix, as_label_matrix

NAMES = sorted(AGGREGATORS)
# small settings where the default is slow (auto cross-validates every candidate)
FAST = {"auto": {"candidates": ["majority", "dawid-skene"], "n_folds": 2}}


def _make(name: str):
    est = get_aggregator(name, **FAST.get(name, {}))
    if "random_state" in est.get_params():
        est.set_params(random_state=0)
    return est


def _crowd(seed: int = 0, n: int = 150, m: int = 7):
    """A crowd-kit style frame: string task ids (shuffled rows), worker names, string
    labels; plus the gold labels as a Series indexed by task id."""
    d = make_dawid_skene(n, m, 2, coverage=0.7, random_state=seed)
    long = d.L.to_long()
    rng = np.random.default_rng(seed)
    long = long.iloc[rng.permutation(len(long))].reset_index(drop=True)
    df = pd.DataFrame({
        "task": "t" + long["item"].astype(str),
        "worker": "w" + long["source"].astype(str),
        "label": np.array(["ham", "spam"])[long["label"].to_numpy()],
    })
    gold = pd.Series(np.array(["ham", "spam"])[d.y], index="t" + pd.Index(range(n)).astype(str))
    return df, gold


def _known(name: str, gold: pd.Series) -> pd.Series | None:
    """Some known labels for the aggregators that need them (NaN = unknown)."""
    if not AGGREGATORS[name].needs_labels:
        return None
    y = gold.copy().astype(object)
    y.iloc[1::3] = np.nan
    return y


@pytest.mark.parametrize("name", NAMES)
def test_long_frame_in_pandas_out(name):
    df, gold = _crowd()
    y = _known(name, gold)
    items = as_label_matrix(df).item_ids  # first appearance order, the rows out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = _make(name)
        labels = est.fit_predict(df, y)
        proba = est.predict_proba(df)
        fitted_proba = _make(name).fit_predict_proba(df, y)
        again = est.predict(df)
        lm = as_label_matrix(df)
        arr_proba = est.predict_proba(lm)
        arr_labels = est.predict(lm)

    assert isinstance(labels, pd.Series) and isinstance(again, pd.Series)
    assert labels.index.name == "task" and labels.name == "label"
    assert list(labels.index) == list(items)
    assert set(labels.unique()) <= {"ham", "spam"}
    for frame in (proba, fitted_proba):
        assert isinstance(frame, pd.DataFrame)
        assert list(frame.columns) == list(est.classes_) == ["ham", "spam"]
        assert frame.index.name == "task" and list(frame.index) == list(items)
        np.testing.assert_allclose(frame.sum(axis=1).to_numpy(), 1.0, atol=1e-9)
    # the same numbers as the array path, only shaped like the input
    assert isinstance(arr_proba, np.ndarray) and isinstance(arr_labels, np.ndarray)
    np.testing.assert_allclose(proba.to_numpy(), arr_proba, atol=1e-12)
    np.testing.assert_allclose(fitted_proba.to_numpy(), arr_proba, atol=1e-6)
    np.testing.assert_array_equal(again.to_numpy(), arr_labels)
    np.testing.assert_array_equal(labels.to_numpy(), arr_labels)


@pytest.mark.parametrize("name", NAMES)
def test_arrays_in_numpy_out(name):
    d = make_dawid_skene(120, 6, 2, coverage=0.8, random_state=1)
    y = None
    if AGGREGATORS[name].needs_labels:
        y = np.where(np.arange(120) % 3 == 0, d.y, -1)
    dense = d.L.to_dense()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for L in (dense, sp.csr_matrix(np.where(dense >= 0, dense + 1, 0)), d.L):
            est = _make(name)
            assert type(est.fit_predict(L, y)) is np.ndarray
            assert type(est.fit_predict_proba(L, y)) is np.ndarray
            assert type(est.predict(L)) is np.ndarray
            assert type(est.predict_proba(L)) is np.ndarray


def test_wide_frame_index_and_columns():
    d = make_dawid_skene(80, 5, 3, coverage=0.9, random_state=2)
    dense = d.L.to_dense()
    ids = pd.Index([f"doc{i:03d}" for i in range(80)], name="doc")
    wide = pd.DataFrame(dense, index=ids, columns=[f"lf_{j}" for j in range(5)])
    est = get_aggregator("dawid-skene", random_state=0)
    labels = est.fit_predict(wide)
    assert isinstance(labels, pd.Series) and labels.index.equals(ids)
    assert labels.index.name == "doc"
    assert list(est.source_names_) == list(wide.columns)
    ref = get_aggregator("dawid-skene", random_state=0).fit(dense)
    np.testing.assert_array_equal(labels.to_numpy(), ref.predict(dense))
    # columns in another order are matched by name at predict
    proba = est.predict_proba(wide[wide.columns[::-1]].iloc[10:20])
    assert list(proba.index) == list(ids[10:20]) and list(proba.columns) == [0, 1, 2]
    np.testing.assert_allclose(proba.to_numpy(), ref.predict_proba(dense[10:20]), atol=1e-10)
    with pytest.raises(ValueError, match=r"missing \['lf_4'\]"):
        est.predict(wide.drop(columns="lf_4"))


def test_known_labels_as_series_on_a_wide_frame():
    d = make_dawid_skene(90, 5, 2, coverage=0.8, random_state=3)
    ids = pd.Index([f"x{i}" for i in range(90)], name="id")
    wide = pd.DataFrame(d.L.to_dense(), index=ids)
    y = pd.Series(d.y[:30], index=ids[:30])
    proba = get_aggregator("majority").fit_predict_proba(wide, y)
    ref = get_aggregator("majority").fit_predict_proba(d.L, np.r_[d.y[:30], -np.ones(60, int)])
    assert proba.index.equals(ids)
    np.testing.assert_allclose(proba.to_numpy(), ref, atol=1e-12)


def test_predict_on_new_items_follows_their_order():
    df, _ = _crowd(seed=4)
    est = get_aggregator("majority").fit(df)
    new = df[df["task"].isin(["t7", "t3", "t11"])].iloc[::-1]
    out = est.predict_proba(new)
    assert list(out.index) == list(pd.unique(new["task"]))
    np.testing.assert_allclose(out.to_numpy(), est.predict_proba(as_label_matrix(
        new, classes=est.classes_, source_names=est.source_names_)), atol=1e-12)


def test_item_and_source_column_names():
    df, _ = _crowd(seed=5)
    plain = df.rename(columns={"task": "item", "worker": "source"})
    assert get_aggregator("wawa").fit_predict(plain).index.name == "item"


def test_pandas_state_does_not_leak_after_an_error():
    df, _ = _crowd(seed=6)
    est = get_aggregator("majority").fit(df)
    bad = pd.DataFrame({"task": ["t0"], "worker": ["nobody"], "label": ["ham"]})
    with pytest.raises(ValueError, match="not seen at fit"):
        est.predict(bad)
    assert isinstance(est.predict(df), pd.Series)  # still pandas after the failed call
    assert isinstance(est.predict(as_label_matrix(df, classes=est.classes_,
                                                  source_names=est.source_names_)), np.ndarray)


# -- LabelMatrix as an array ------------------------------------------------------------


@pytest.fixture
def dense():
    return np.array([[0, 1, -1], [1, 1, 0], [-1, -1, -1], [2, 0, 2], [1, -1, 1]])


def test_label_matrix_array_protocol(dense):
    lm = as_label_matrix(dense)
    assert lm.shape == (5, 3) and lm.ndim == 2 and len(lm) == 5
    arr = np.asarray(lm)
    assert arr.dtype == np.int64
    np.testing.assert_array_equal(arr, dense)
    np.testing.assert_array_equal(lm.toarray(), dense)
    assert np.asarray(lm, dtype=np.int8).dtype == np.int8
    assert np.array(lm, copy=True) is not np.array(lm, copy=True)
    with pytest.raises(ValueError, match="always a copy"):
        np.asarray(lm, copy=False)
    # inside, still votes only
    assert lm.n_votes == int((dense >= 0).sum())
    r = repr(lm)
    assert r == f"LabelMatrix(n_items=5, n_sources=3, n_classes=3, n_votes={lm.n_votes})"
    assert hash(lm) == hash(lm) and {lm: 1}[lm] == 1  # hashable by identity


def test_label_matrix_comparison(dense):
    lm = as_label_matrix(dense)
    other = dense.copy()
    other[0, 0] = 2
    np.testing.assert_array_equal(lm == dense, np.ones_like(dense, dtype=bool))
    np.testing.assert_array_equal(lm != other, dense != other)
    np.testing.assert_array_equal(dense == lm, np.ones_like(dense, dtype=bool))
    np.testing.assert_array_equal(lm == as_label_matrix(other), dense == other)
    np.testing.assert_array_equal(lm == -1, dense == -1)  # the abstains
    assert (lm == lm).all()


@pytest.mark.parametrize(
    "key",
    [slice(1, 4), slice(None, None, -2), np.array([4, 0, 2]), [3, 1],
     np.array([True, False, True, False, True]), np.array([-1, 0])],
    ids=["slice", "step", "ints", "list", "mask", "negative"],
)
def test_label_matrix_row_indexing(dense, key):
    lm = as_label_matrix(pd.DataFrame(dense, index=list("abcde")))
    sub = lm[key]
    assert isinstance(sub, LabelMatrix)
    np.testing.assert_array_equal(sub.toarray(), dense[key])
    np.testing.assert_array_equal(sub.item_ids, np.array(list("abcde"))[key])
    assert sub.n_votes == int((dense[key] >= 0).sum())
    assert sub.n_classes == lm.n_classes and list(sub.source_names) == list(lm.source_names)
    np.testing.assert_array_equal(lm[key, ...].toarray(), dense[key])
    np.testing.assert_array_equal(lm[key, :].toarray(), dense[key])


def test_label_matrix_repeated_rows_and_scalars(dense):
    lm = as_label_matrix(dense)
    rep = lm[[3, 3, 0, 3]]
    np.testing.assert_array_equal(rep.toarray(), dense[[3, 3, 0, 3]])
    np.testing.assert_array_equal(lm[1], dense[1])
    np.testing.assert_array_equal(lm[-1], dense[-1])
    with pytest.raises(IndexError, match="out of range"):
        lm[5]
    with pytest.raises(IndexError, match="rows"):
        lm[:, 0]
    with pytest.raises(IndexError, match="Invalid item index"):
        lm[np.array([True, False])]


def test_label_matrix_through_sklearn_indexing(dense):
    from sklearn.model_selection import train_test_split
    from sklearn.utils import _safe_indexing

    lm = as_label_matrix(dense)
    np.testing.assert_array_equal(_safe_indexing(lm, [0, 2]).toarray(), dense[[0, 2]])
    a, b = train_test_split(lm, test_size=2, random_state=0)
    assert isinstance(a, LabelMatrix) and a.shape == (3, 3) and b.shape == (2, 3)


def test_subset_predicts_like_the_dense_rows():
    d = make_dawid_skene(200, 6, 3, coverage=0.7, random_state=7)
    est = get_aggregator("dawid-skene", random_state=0).fit(d.L)
    mask = np.arange(200) % 4 == 1
    np.testing.assert_allclose(est.predict_proba(d.L[mask]),
                               est.predict_proba(d.L.to_dense()[mask]), atol=1e-12)


# -- input checks that came with it -----------------------------------------------------


def test_wide_frame_refusals():
    with pytest.raises(ValueError, match=r"non-numeric.*item, source, label"):
        as_label_matrix(pd.DataFrame({"doc": ["a", "b"], "lf": [0, 1]}))
    ids = pd.DataFrame({"Unnamed: 0": np.arange(30), "lf1": np.arange(30) % 2,
                        "lf2": np.ones(30, int)})
    with pytest.raises(ValueError, match=r"'Unnamed: 0'.*like an item id.*set_index"):
        as_label_matrix(ids)
    assert as_label_matrix(ids.set_index("Unnamed: 0")).shape == (30, 2)
    fitted = get_aggregator("majority").fit(_crowd()[0])
    with pytest.raises(ValueError, match="long format"):
        fitted.predict(pd.DataFrame({"a": [0, 1]}))


def test_complex_and_empty_dense_input():
    with pytest.raises(ValueError, match="Complex data not supported"):
        as_label_matrix(np.array([[1 + 1j, 0]]))
    with pytest.raises(ValueError, match=r"0 feature\(s\) \(shape=\(4, 0\)\)"):
        as_label_matrix(np.zeros((4, 0), int))
    with pytest.raises(ValueError, match="Reshape your data"):
        as_label_matrix(np.array([0, 1]))
