"""Label matrices: conversion at the door, conventions and errors."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from wsagg.labels import LabelMatrix, as_label_matrix, check_known_labels

L_DENSE = np.array([[0, 1, -1], [1, 1, 0], [-1, -1, -1], [2, -1, 2]])


def test_dense_roundtrip_and_votes():
    lm = as_label_matrix(L_DENSE)
    assert (lm.n_items, lm.n_sources, lm.n_classes) == (4, 3, 3)
    assert lm.n_votes == 7
    np.testing.assert_array_equal(lm.to_dense(), L_DENSE)
    np.testing.assert_array_equal(lm.covered(), [True, True, False, True])


def test_sparse_convention_is_label_plus_one():
    S = sp.csr_matrix(np.where(L_DENSE >= 0, L_DENSE + 1, 0))
    lm = as_label_matrix(S)
    np.testing.assert_array_equal(lm.to_dense(), L_DENSE)
    # and back: the stored value is label + 1, absent = abstain
    back = lm.to_sparse().toarray()
    np.testing.assert_array_equal(back, np.where(L_DENSE >= 0, L_DENSE + 1, 0))


def test_sparse_explicit_zero_is_abstain():
    S = sp.coo_matrix(([0, 2], ([0, 1], [0, 0])), shape=(2, 1))
    lm = as_label_matrix(S, n_classes=2)
    np.testing.assert_array_equal(lm.to_dense(), [[-1], [1]])


def test_long_format_ids_mapped_and_kept():
    df = pd.DataFrame(
        {"task": ["a", "a", "b", "c"], "worker": ["w1", "w2", "w1", "w2"],
         "label": ["cat", "dog", "dog", None]}
    )
    lm = as_label_matrix(df)
    assert list(lm.item_ids) == ["a", "b", "c"]
    assert list(lm.source_names) == ["w1", "w2"]
    assert list(lm.classes) == ["cat", "dog"]
    # item c only has a missing label: kept, uncovered
    np.testing.assert_array_equal(lm.to_dense(), [[0, 1], [1, -1], [-1, -1]])
    back = lm.to_long()
    assert back.shape[0] == 3 and set(back["label"]) == {"cat", "dog"}


def test_long_tuple_matches_dense():
    lm_dense = as_label_matrix(L_DENSE)
    long = lm_dense.to_long()
    lm_long = as_label_matrix((long["item"].to_numpy(), long["source"].to_numpy(),
                               long["label"].to_numpy()), n_classes=3)
    # long format only knows the items that appear; item 2 (all abstain) is absent here
    assert lm_long.n_items == 3
    np.testing.assert_array_equal(lm_long.to_dense(), L_DENSE[[0, 1, 3]])


def test_duplicate_policies():
    items = np.array([0, 0, 0, 1])
    sources = np.array([0, 0, 1, 0])
    labels = np.array([1, 0, 1, 1])
    counted = as_label_matrix((items, sources, labels))
    assert counted.n_votes == 4 and counted.has_repeats()
    np.testing.assert_array_equal(counted.class_counts(), [[1, 2], [0, 1]])
    last = as_label_matrix((items, sources, labels), duplicates="last")
    np.testing.assert_array_equal(last.to_dense(), [[0, 1], [1, -1]])
    first = as_label_matrix((items, sources, labels), duplicates="first")
    np.testing.assert_array_equal(first.to_dense(), [[1, 1], [1, -1]])
    with pytest.raises(ValueError, match="repeated votes"):
        as_label_matrix((items, sources, labels), duplicates="error")
    with pytest.raises(ValueError, match="cannot represent"):
        counted.to_dense()
    with pytest.raises(ValueError, match="duplicates must be one of"):
        as_label_matrix(L_DENSE, duplicates="mean")


def test_one_hot_counts_repeats():
    lm = as_label_matrix((np.array([0, 0, 1]), np.array([0, 0, 1]), np.array([1, 1, 0])))
    V = lm.one_hot().toarray()
    assert V.shape == (2, 4)
    np.testing.assert_array_equal(V, [[0, 2, 0, 0], [0, 0, 1, 0]])


def test_n_classes_given_and_inferred():
    assert as_label_matrix(L_DENSE, n_classes=5).n_classes == 5
    assert as_label_matrix(np.array([[0], [0]]), y=np.array([0, 1])).n_classes == 2


@pytest.mark.parametrize(
    ("L", "err", "match"),
    [
        (np.array([[0, 3]]), ValueError, r"outside 0\.\.2"),
        (np.array([[0.5, 1.0]]), ValueError, "non-integer value 0.5"),
        (np.array([[np.nan, 1.0]]), ValueError, "contains NaN"),
        (np.array([0, 1, 1]), ValueError, "must be 2-D"),
        (np.zeros((0, 3), dtype=int), ValueError, "at least one item and one source"),
        (np.zeros((3, 0), dtype=int), ValueError, "at least one item and one source"),
        (np.array([[0, -2]]), ValueError, "only negative value allowed is -1"),
        (np.array([[True, False]]), TypeError, "boolean"),
        (np.array([["a", "b"]]), TypeError, "long format"),
        ([], ValueError, "empty"),
    ],
)
def test_bad_dense_input(L, err, match):
    with pytest.raises(err, match=match):
        as_label_matrix(L, n_classes=3 if match.startswith("outside") else None)


def test_single_class_needs_explicit_n_classes():
    with pytest.raises(ValueError, match="Pass n_classes"):
        as_label_matrix(np.array([[0, 0], [0, -1]]))
    with pytest.raises(ValueError, match="at least 2"):
        as_label_matrix(L_DENSE, n_classes=1)
    with pytest.raises(TypeError, match="integer >= 2"):
        as_label_matrix(L_DENSE, n_classes=2.5)


def test_sparse_negative_value_explained():
    with pytest.raises(ValueError, match="label \\+ 1"):
        as_label_matrix(sp.csr_matrix(np.array([[-1, 1]])))


def test_long_errors():
    df = pd.DataFrame({"item": [1, 2], "source": ["a", "b"], "label": ["x", "y"]})
    with pytest.raises(ValueError, match="Unknown class label 'y'"):
        as_label_matrix(df, classes=["x", "z"])
    with pytest.raises(ValueError, match="label column"):
        as_label_matrix(df.rename(columns={"label": "answer"}))
    with pytest.raises(ValueError, match="not seen at fit time"):
        as_label_matrix(df, source_names=["a"], classes=["x", "y"])
    with pytest.raises(ValueError, match="different lengths"):
        as_label_matrix((np.array([1, 2]), np.array([1]), np.array([0, 1])))
    with pytest.raises(ValueError, match="no rows"):
        as_label_matrix(df.iloc[:0])


def test_mismatched_sources():
    with pytest.raises(ValueError, match="fitted with 4"):
        as_label_matrix(L_DENSE, n_sources=4)


def test_known_labels_validation():
    lm = as_label_matrix(L_DENSE)
    np.testing.assert_array_equal(check_known_labels([0, -1, -1, 2], lm), [0, -1, -1, 2])
    with pytest.raises(ValueError, match="one entry per item"):
        check_known_labels([0, 1], lm)
    with pytest.raises(ValueError, match="y contains 3"):
        check_known_labels([0, 3, -1, -1], lm)
    df = pd.DataFrame({"item": ["a", "b"], "source": ["s", "s"], "label": ["x", "y"]})
    lm2 = as_label_matrix(df)
    y = pd.Series({"b": "y"})
    np.testing.assert_array_equal(check_known_labels(y, lm2), [-1, 1])
    with pytest.raises(ValueError, match="not one of the classes"):
        check_known_labels(pd.Series({"a": "q"}), lm2)


def test_known_labels_series_with_foreign_ids_is_an_error():
    # gold indexed by ids that match no item (here int ids vs str items) used to be dropped
    # silently, fitting unsupervised without a word
    df = pd.DataFrame({"item": ["1", "2"], "source": ["s", "s"], "label": ["x", "y"]})
    lm = as_label_matrix(df)
    with pytest.raises(ValueError, match="None of y's item ids"):
        check_known_labels(pd.Series({1: "x", 2: "y"}), lm)
    with pytest.raises(ValueError, match="appears more than once"):
        check_known_labels(pd.Series(["x", "y"], index=["1", "1"]), lm)
    # items 10, 11 and gold for item 11 only: pandas 3 stores the index as RangeIndex(11, 12),
    # which was taken as positional (one entry for two items)
    lm_int = as_label_matrix(pd.DataFrame({"item": [10, 11], "source": ["s", "s"],
                                           "label": ["x", "y"]}))
    np.testing.assert_array_equal(check_known_labels(pd.Series({11: "y"}), lm_int), [-1, 1])
    # a superset of the items (gold for other items too) stays accepted
    np.testing.assert_array_equal(
        check_known_labels(pd.Series({"2": "y", "9": "x"}), lm), [-1, 1]
    )


def test_take_items():
    lm = as_label_matrix(L_DENSE)
    sub = lm.take_items(np.array([3, 0]))
    np.testing.assert_array_equal(sub.to_dense(), L_DENSE[[3, 0]])
    assert isinstance(sub, LabelMatrix)


# ------------------------------------------------- fast integer paths agree with the general one
def _general_long(items, sources, labels, **kw):
    """The hashing path (object ids), as the reference for the integer fast paths."""
    return as_label_matrix(
        (items.astype(object), sources.astype(object), labels.astype(object)), **kw
    )


@pytest.mark.parametrize("order", ["sorted", "shuffled", "sparse_ids"])
def test_integer_long_fast_path_matches_general(order):
    rng = np.random.default_rng(0)
    n_votes = 3000
    items = np.sort(rng.integers(0, 400, n_votes))
    sources = rng.integers(0, 12, n_votes)
    labels = rng.integers(0, 3, n_votes)
    if order == "shuffled":
        perm = rng.permutation(n_votes)
        items, sources, labels = items[perm], sources[perm], labels[perm]
    elif order == "sparse_ids":  # ids far apart: the range is too wide for a table
        items = items * 10**9
    fast = as_label_matrix((items, sources, labels))
    ref = _general_long(items, sources, labels)
    for attr in ("item", "source", "label", "item_ids", "source_names", "classes"):
        np.testing.assert_array_equal(getattr(fast, attr), getattr(ref, attr))
    for attr in ("n_items", "n_sources", "n_classes"):
        assert getattr(fast, attr) == getattr(ref, attr)
    assert (fast.one_hot() != ref.one_hot()).nnz == 0
    # and against pandas' factorize directly (order of first appearance)
    codes, uniq = pd.factorize(items, sort=False)
    np.testing.assert_array_equal(fast.item, codes)
    np.testing.assert_array_equal(fast.item_ids, uniq)


def test_integer_long_fast_path_classes_and_errors():
    items, sources = np.array([0, 0, 1]), np.array([0, 1, 0])
    labels = np.array([0, 2, 1])
    lm = as_label_matrix((items, sources, labels), n_classes=4)
    np.testing.assert_array_equal(lm.classes, np.arange(4))
    lm = as_label_matrix((items, sources, labels), classes=[0, 1, 2])
    np.testing.assert_array_equal(lm.label, labels)
    with pytest.raises(ValueError, match="Unknown class label"):
        as_label_matrix((items, sources, labels), classes=[0, 1])
    with pytest.raises(ValueError, match="n_classes=2"):
        as_label_matrix((items, sources, labels), n_classes=2)


@pytest.mark.parametrize("repeat", [False, True])
def test_one_hot_fast_path_matches_coo(repeat):
    """Votes grouped by item build the CSR directly; same matrix as the COO route."""
    rng = np.random.default_rng(1)
    item = np.sort(rng.integers(0, 50, 400))
    source = rng.integers(0, 7, 400)
    if not repeat:  # one vote per (item, source)
        key = np.unique(item * 7 + source)
        item, source = key // 7, key % 7
    label = rng.integers(0, 3, item.size)
    lm = LabelMatrix(item, source, label, 50, 7, 3, np.arange(50), np.arange(7), np.arange(3))
    V = lm.one_hot()
    perm = rng.permutation(item.size)  # not grouped: the COO route
    ref = LabelMatrix(
        item[perm], source[perm], label[perm], 50, 7, 3, np.arange(50), np.arange(7), np.arange(3)
    ).one_hot()
    assert V.has_canonical_format
    np.testing.assert_array_equal(V.toarray(), ref.toarray())
    np.testing.assert_array_equal(V.indptr, ref.indptr)
    np.testing.assert_array_equal(V.indices, ref.indices)


def test_long_float_class_ids_with_n_classes():
    # integer labels with an empty cell come back from read_csv as float (0.0, 1.0, NaN);
    # with n_classes=4 this raised "only 2 labels occur and they are not integer ids 0..3"
    df = pd.DataFrame({"item": [1, 1, 2], "source": ["a", "b", "a"], "label": [0.0, 1.0, np.nan]})
    lm = as_label_matrix(df, n_classes=4)
    np.testing.assert_array_equal(lm.classes, np.arange(4))
    np.testing.assert_array_equal(lm.to_dense(), [[0, 1], [-1, -1]])
    with pytest.raises(ValueError, match="3 distinct labels"):
        as_label_matrix(pd.DataFrame({"item": [1, 1, 2], "source": ["a", "b", "a"],
                                      "label": [0.0, 1.0, 2.0]}), n_classes=2)


# -- small index dtypes ------------------------------------------------------------------


def _dtypes(lm):
    return (lm.item.dtype, lm.source.dtype, lm.label.dtype)


@pytest.mark.parametrize("shape", ["dense", "dense_int8_fortran", "sparse", "long", "direct"])
def test_index_arrays_are_small_dtypes(shape):
    if shape == "dense":
        lm = as_label_matrix(L_DENSE)
    elif shape == "dense_int8_fortran":
        lm = as_label_matrix(np.asfortranarray(L_DENSE.astype(np.int8)))
    elif shape == "sparse":
        lm = as_label_matrix(sp.csr_matrix(np.where(L_DENSE >= 0, L_DENSE + 1, 0)))
    elif shape == "long":
        lm = as_label_matrix((np.array([5, 5, 9]), np.array(["a", "b", "a"]), np.array([0, 2, 1])))
    else:  # built directly from int64 arrays: stored small all the same
        i64 = np.array([0, 1, 1], dtype=np.int64)
        lm = LabelMatrix(i64, i64, i64, 2, 2, 3, np.arange(2), np.arange(2), np.arange(3))
    assert _dtypes(lm) == (np.int32, np.int32, np.int8)
    if shape.startswith("dense"):
        np.testing.assert_array_equal(lm.to_dense(), L_DENSE)


def test_label_dtype_grows_with_k_and_label_plus_one_fits():
    from wsagg.labels import index_dtype, label_dtype

    assert [label_dtype(k) for k in (2, 127, 128, 32767, 32768)] == [
        np.int8, np.int8, np.int16, np.int16, np.int32
    ]
    assert index_dtype(2**31 - 1) == np.int32 and index_dtype(2**31) == np.int64
    # class 126 of k = 127 (int8): the sparse view's label + 1 = 127 does not wrap
    lm = as_label_matrix(np.array([[126, 0]]), n_classes=127)
    assert lm.label.dtype == np.int8
    assert lm.to_sparse().toarray().tolist() == [[127, 1]]
    lm = as_label_matrix(np.array([[199, 0]]), n_classes=200)
    assert lm.label.dtype == np.int16 and lm.to_dense().tolist() == [[199, 0]]


def test_narrowing_an_out_of_range_index_is_refused():
    big = np.array([0, 2**31 + 5], dtype=np.int64)  # would wrap to a valid-looking int32
    ok = np.array([0, 1], dtype=np.int64)
    with pytest.raises(ValueError, match=r"LabelMatrix.item holds 2147483653, outside 0..2"):
        LabelMatrix(big, ok, ok, 3, 2, 2, np.arange(3), np.arange(2), np.arange(2))
    with pytest.raises(ValueError, match=r"LabelMatrix.label holds -1"):
        LabelMatrix(ok, ok, np.array([0, -1]), 3, 2, 2, np.arange(3), np.arange(2),
                    np.arange(2))
    with pytest.raises(TypeError, match=r"integer indices; got dtype float64"):
        LabelMatrix(ok, np.array([0.0, 1.0]), ok, 3, 2, 2, np.arange(3), np.arange(2),
                    np.arange(2))


def test_flat_index_is_int64():
    from wsagg.labels import flat_index

    item = np.array([2**31 - 2], dtype=np.int32)
    key = flat_index(item, 30_000, np.array([7], dtype=np.int32))
    assert key.dtype == np.int64 and int(key[0]) == (2**31 - 2) * 30_000 + 7


def _huge_key_space(low: bool, repeat: bool = False):
    """A sparse (n, m) matrix with n * m = 3e9 > 2**31 cells but 1,200 votes: at the top
    item and source indices (``low=False``: every flat key item * m + source, and
    item * k + label, is beyond int32) or, as the reference, the same votes at the lowest
    indices (no key beyond int32). The two are the same matrix up to a permutation."""
    n, m, n_used, m_used = 100_000, 30_000, 300, 12
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 3, n_used)
    acc = np.linspace(0.55, 0.9, m_used)
    rows, cols, vals = [], [], []
    for j in range(m_used):
        on = np.flatnonzero(rng.random(n_used) < 0.35)
        right = rng.random(on.size) < acc[j]
        lab = np.where(right, truth[on], (truth[on] + rng.integers(1, 3, on.size)) % 3)
        rows.append(on)
        cols.append(np.full(on.size, j))
        vals.append(lab)
    r, c, v = (np.concatenate(a) for a in (rows, cols, vals))
    if repeat:  # one repeated vote: (item 0, source 0) twice
        r, c, v = np.r_[r, 0, 0], np.r_[c, 0, 0], np.r_[v, 1, 1]
    if not low:
        r, c = r + (n - n_used), c + (m - m_used)
    S = sp.coo_matrix((v + 1, (r, c)), shape=(n, m))
    return S, n - n_used, m - m_used


def test_huge_key_space_same_results_as_low_indices():
    """Votes whose flat keys overflow int32 (item * m ~ 3e9) give exactly the results of
    the same votes at low indices, for the LabelMatrix methods, majority vote, Dawid-Skene
    and diagnostics.source_summary."""
    import warnings

    from wsagg import DawidSkene, MajorityVote
    from wsagg.diagnostics import source_summary

    S_hi, di, dj = _huge_key_space(low=False)
    S_lo, _, _ = _huge_key_space(low=True)
    hi, lo = as_label_matrix(S_hi), as_label_matrix(S_lo)
    n, m = hi.shape
    assert _dtypes(hi) == (np.int32, np.int32, np.int8)
    assert int(hi.item.max()) * m > 2**31 and int(hi.item.max()) * 3 < 2**31
    # rows/columns of hi in the order of lo's: the used ones first, then the others
    rows = np.r_[np.arange(di, n), np.arange(di)]
    cols = np.r_[np.arange(dj, m), np.arange(dj)]
    assert not hi.has_repeats() and not lo.has_repeats()
    assert as_label_matrix(_huge_key_space(low=False, repeat=True)[0]).has_repeats()
    np.testing.assert_array_equal(hi.class_counts()[rows], lo.class_counts())
    used = slice(0, 3 * (m - dj))  # the voting sources' columns of lo's one-hot matrix
    V_hi = hi.one_hot()[di:][:, 3 * dj :]
    V_lo = lo.one_hot()[: n - di][:, used]
    assert V_hi.nnz == V_lo.nnz == hi.n_votes == lo.one_hot().nnz
    np.testing.assert_array_equal(V_hi.toarray(), V_lo.toarray())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (most of the 30,000 sources never vote)
        for make in (MajorityVote, lambda: DawidSkene(n_jobs=1)):
            np.testing.assert_allclose(
                make().fit(S_hi).predict_proba(S_hi)[rows],
                make().fit(S_lo).predict_proba(S_lo), rtol=1e-10, atol=1e-12,
            )
        y = np.full(n, -1)
        y[di::7] = np.arange(di, n, 7) % 3
        t_hi = source_summary(S_hi, y=y).iloc[cols]
        t_lo = source_summary(S_lo, y=y[rows])
    assert t_hi["polarity"].tolist() == t_lo["polarity"].tolist()
    for col in ("n_votes", "coverage", "overlap", "conflict", "correct", "incorrect"):
        np.testing.assert_allclose(t_hi[col].to_numpy(float), t_lo[col].to_numpy(float))
    assert t_lo["overlap"].iloc[:12].min() > 0 and t_lo["conflict"].iloc[:12].max() > 0


def test_grouped_by_item_is_known_for_dense_input_and_checked_otherwise():
    """Dense input is row-major (set at conversion); long input is checked once (in blocks)
    and cached; a sub-block boundary inside a run of one item does not count as a break."""
    import wsagg.labels as labels_mod
    from wsagg.labels import LabelMatrix

    dense = as_label_matrix(np.array([[0, 1], [-1, 1], [1, 0]]))
    assert dense._cache["grouped_by_item"] is True and dense.grouped_by_item()

    def lm(item):
        item = np.asarray(item)
        return LabelMatrix(item=item, source=np.zeros(item.size, dtype=np.int64),
                           label=np.zeros(item.size, dtype=np.int64), n_items=int(item.max()) + 1,
                           n_sources=1, n_classes=2, item_ids=np.arange(int(item.max()) + 1),
                           source_names=np.arange(1), classes=np.arange(2))

    old = labels_mod._GROUPED_BLOCK
    labels_mod._GROUPED_BLOCK = 3  # (several blocks on a small example)
    try:
        assert lm([0, 0, 1, 1, 1, 2, 2, 5]).grouped_by_item()
        out_of_order = lm([0, 1, 1, 2, 2, 2, 1, 3])  # the break is in the third block
        assert not out_of_order.grouped_by_item()
        assert out_of_order._cache["grouped_by_item"] is False
    finally:
        labels_mod._GROUPED_BLOCK = old
