"""MajorityVote: the aggregator interface on the baseline, with hypothesis properties."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from wsagg import MajorityVote
from wsagg.labels import as_label_matrix

K = 3


@st.composite
def label_matrices(draw, k=K):
    n = draw(st.integers(1, 12))
    m = draw(st.integers(1, 6))
    L = draw(arrays(np.int64, (n, m), elements=st.integers(-1, k - 1)))
    return L


@settings(max_examples=60, deadline=None)
@given(label_matrices())
def test_rows_are_distributions(L):
    p = MajorityVote(n_classes=K).fit_predict_proba(L)
    assert p.shape == (L.shape[0], K)
    assert np.all(p >= 0) and np.all(p <= 1)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(label_matrices(), st.randoms(use_true_random=False))
def test_source_permutation_invariance(L, rnd):
    perm = list(range(L.shape[1]))
    rnd.shuffle(perm)
    p1 = MajorityVote(n_classes=K).fit_predict_proba(L)
    p2 = MajorityVote(n_classes=K).fit_predict_proba(L[:, perm])
    np.testing.assert_allclose(p1, p2, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(label_matrices(), st.randoms(use_true_random=False))
def test_item_permutation_equivariance(L, rnd):
    perm = list(range(L.shape[0]))
    rnd.shuffle(perm)
    p1 = MajorityVote(n_classes=K).fit_predict_proba(L)
    p2 = MajorityVote(n_classes=K).fit_predict_proba(L[perm])
    np.testing.assert_allclose(p1[perm], p2, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(label_matrices(), st.permutations(list(range(K))))
def test_class_relabelling_equivariance(L, sigma):
    sigma = np.asarray(sigma)
    relabelled = np.where(L >= 0, sigma[np.maximum(L, 0)], -1)
    p1 = MajorityVote(n_classes=K).fit_predict_proba(L)
    p2 = MajorityVote(n_classes=K).fit_predict_proba(relabelled)
    # class c in the original is class sigma[c] after relabelling
    np.testing.assert_allclose(p1, p2[:, sigma], atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(label_matrices())
def test_dense_sparse_long_identical(L):
    mv = MajorityVote(n_classes=K)
    p_dense = mv.fit_predict_proba(L)
    S = sp.csr_matrix(np.where(L >= 0, L + 1, 0))
    p_sparse = MajorityVote(n_classes=K).fit_predict_proba(S)
    np.testing.assert_allclose(p_dense, p_sparse, atol=1e-15)
    lm = as_label_matrix(L, n_classes=K)
    covered = lm.covered()
    if covered.any():
        long = lm.to_long()
        p_long = MajorityVote(n_classes=K).fit_predict_proba(
            (long["item"].to_numpy(), long["source"].to_numpy(), long["label"].to_numpy())
        )
        # long format holds only the items that have votes, in order of first appearance
        np.testing.assert_allclose(p_long, p_dense[np.flatnonzero(covered)], atol=1e-15)


def test_values_and_all_abstain_rows_kept():
    L = np.array([[0, 0, 1], [1, -1, -1], [-1, -1, -1]])
    mv = MajorityVote().fit(L)
    p = mv.predict_proba(L)
    np.testing.assert_allclose(p[0], [2 / 3, 1 / 3])
    np.testing.assert_allclose(p[1], [0, 1])
    np.testing.assert_allclose(p[2], mv.class_prior_)
    np.testing.assert_allclose(mv.class_prior_, [1 / 3, 2 / 3])
    assert p.shape[0] == 3  # rows in == rows out


def test_tie_policy_first_and_random():
    L = np.array([[0, 1]] * 200)
    assert (MajorityVote().fit(L).predict(L) == 0).all()
    mv = MajorityVote(tie_break="random", random_state=0).fit(L)
    pred = mv.predict(L)
    assert set(pred) == {0, 1}
    np.testing.assert_array_equal(pred, mv.predict(L))  # same call, same answer
    with pytest.raises(ValueError, match="tie_break"):
        MajorityVote(tie_break="coin").fit(L).predict(L)


def test_weighted_and_accuracy_weights():
    L = np.array([[0, 1, 1], [0, 1, 1], [0, 0, 1], [1, 1, 0]])
    w = MajorityVote(weights=[5.0, 1.0, 1.0]).fit(L)
    np.testing.assert_allclose(w.predict_proba(L)[0], [5 / 7, 2 / 7])
    y = np.array([0, 0, 0, 1])  # source 0 always right, others mostly wrong
    acc = MajorityVote(weights="accuracy").fit(L, y)
    assert acc.weights_[0] > 0 and acc.weights_[1] == 0 and acc.weights_[2] == 0
    np.testing.assert_array_equal(acc.predict(L), y)
    with pytest.raises(ValueError, match="pass y"):
        MajorityVote(weights="accuracy").fit(L)
    with pytest.raises(ValueError, match="shape \\(3,\\)"):
        MajorityVote(weights=[1.0, 2.0]).fit(L)
    with pytest.raises(ValueError, match="non-negative"):
        MajorityVote(weights=[1.0, -2.0, 1.0]).fit(L)


def test_inductive_predict_and_errors():
    L = np.array([[0, 1, -1], [1, 1, 0]])
    mv = MajorityVote().fit(L)
    before = mv.class_prior_.copy()
    p_new = mv.predict_proba(np.array([[1, 1, 1], [-1, -1, -1]]))
    np.testing.assert_allclose(p_new[0], [0, 1])
    np.testing.assert_allclose(mv.class_prior_, before)  # no side effects
    with pytest.raises(ValueError, match="fitted with 3"):
        mv.predict_proba(np.array([[0, 1]]))
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        mv.predict_proba(np.array([[0, 1, 2]]))
    with pytest.raises(NotFittedError):
        MajorityVote().predict_proba(L)


def test_sklearn_contract():
    mv = MajorityVote(n_classes=3, weights=None, tie_break="random", random_state=1)
    params = mv.get_params()
    assert params["n_classes"] == 3 and params["random_state"] == 1
    c = clone(mv)
    assert c.get_params() == params
    L = np.array([[0, 1], [2, 2]])
    assert mv.fit(L) is mv
    for attr in ("classes_", "n_classes_", "n_sources_", "class_prior_", "weights_"):
        assert hasattr(mv, attr)


def test_long_format_with_string_labels_and_series_y():
    df = pd.DataFrame(
        {"task": ["t1", "t1", "t2", "t2", "t3"], "worker": ["a", "b", "a", "b", "a"],
         "label": ["spam", "spam", "ham", "spam", "ham"]}
    )
    mv = MajorityVote().fit(df, y=pd.Series({"t1": "spam"}))
    pred = mv.predict(df)
    assert list(pred) == ["spam", "ham", "ham"]
    with pytest.raises(ValueError, match="not seen at fit time"):
        mv.predict_proba(pd.DataFrame({"task": ["x"], "worker": ["zz"], "label": ["ham"]}))


def test_predict_on_label_matrix_with_other_sources_is_an_error():
    # a LabelMatrix built from new votes has its own source/class order; it was matched by
    # position only, so renamed or reordered workers were scored with the wrong weights
    df = pd.DataFrame({"task": ["a", "a", "b", "b"], "worker": ["x", "y", "x", "z"],
                       "label": ["cat", "dog", "dog", "dog"]})
    mv = MajorityVote().fit(df)
    new = as_label_matrix(df.assign(worker=df["worker"].replace({"z": "q"})))
    with pytest.raises(ValueError, match=r"sources .* differ from those seen at fit"):
        mv.predict_proba(new)
    # the same votes as a DataFrame, or the fitted LabelMatrix itself, are fine
    np.testing.assert_allclose(mv.predict_proba(as_label_matrix(df)), mv.predict_proba(df))
    dense = MajorityVote().fit(np.array([[0, 1], [1, 1]]))
    assert dense.predict(as_label_matrix(np.array([[1, 1]]))).tolist() == [1]


def test_tie_break_is_validated_at_fit():
    with pytest.raises(ValueError, match="'tie_break' parameter of MajorityVote must be a str"):
        MajorityVote(tie_break="abstain").fit(np.array([[0, 1], [1, 1]]))


def test_uncovered_items_get_the_known_label_frequencies_not_the_firing_shares():
    # issue 15, pattern (f): 72% of the items have no vote; the sources fire mostly on the
    # rare class (0), so the vote shares say "class 0" while 88% of the items are class 1
    rng = np.random.default_rng(0)
    n = 1000
    y_true = (rng.random(n) < 0.88).astype(int)
    L = np.full((n, 3), -1)
    fire = np.flatnonzero((y_true == 0) | (rng.random(n) < 0.2))[: int(0.28 * n)]
    L[fire, 0] = 0
    L[fire[::3], 1] = y_true[fire[::3]]
    known = np.full(n, -1)
    known[:100] = y_true[:100]
    uncovered = (L < 0).all(axis=1)
    assert uncovered.mean() >= 0.7
    without = MajorityVote().fit(L)
    assert without.class_prior_.argmax() == 0  # the firing shares (documented limitation)
    mv = MajorityVote().fit(L, known)
    assert mv.class_prior_.argmax() == 1
    pred = mv.predict(L)
    assert np.mean(pred[uncovered] == y_true[uncovered]) >= 0.85
