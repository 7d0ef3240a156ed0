"""IWMV (Li & Yu 2014): a plain re-implementation of Algorithm 1, the fixed point, the soft
output against the one-coin posterior by enumeration, known labels, recovery, warnings, edge
cases and the estimator contract."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import InvalidParameterError

from wsagg.aggregation.iwmv import IWMV
from wsagg.datasets import load_shared, make_dawid_skene


def _contract(make, L: np.ndarray, k: int, atol: float = 1e-10) -> None:
    """The shared properties: clone, determinism, fit_predict_proba, pickle, dense == sparse
    == long, source permutation, item permutation, class relabelling."""
    est = make()
    P = est.fit(L).predict_proba(L)
    assert P.shape == (L.shape[0], k)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    assert (P >= 0).all()
    np.testing.assert_allclose(clone(est).fit_predict_proba(L), P, atol=atol)
    np.testing.assert_allclose(make().fit(L).predict_proba(L), P, atol=atol)
    np.testing.assert_allclose(pickle.loads(pickle.dumps(est)).predict_proba(L), P, atol=atol)
    np.testing.assert_allclose(make().fit(sp.csr_matrix(L + 1)).predict_proba(L), P, atol=atol)
    rows, cols = np.nonzero(L >= 0)
    long = pd.DataFrame({"item": rows, "source": cols, "label": L[rows, cols]})
    covered = np.unique(rows)
    np.testing.assert_allclose(make().fit_predict_proba(long), P[covered], atol=atol)
    rng = np.random.default_rng(0)
    perm = rng.permutation(L.shape[1])
    np.testing.assert_allclose(make().fit_predict_proba(L[:, perm]), P, atol=atol)
    perm = rng.permutation(L.shape[0])
    np.testing.assert_allclose(make().fit_predict_proba(L[perm]), P[perm], atol=atol)
    sigma = rng.permutation(k)  # class c -> sigma[c]
    Ls = np.where(L >= 0, sigma[np.maximum(L, 0)], -1)
    np.testing.assert_allclose(make(n_classes=k).fit_predict_proba(Ls)[:, sigma], P, atol=atol)


def _data(k: int = 3, seed: int = 0, n: int = 300):
    d = make_dawid_skene(n, 8, k, coverage=0.6, accuracy=(0.35, 0.8), errors="uniform",
                         random_state=seed)
    L = d.L.to_dense()
    L[5] = -1  # an all-abstain item
    return L, d


def _reference(L: np.ndarray, k: int, weights: str, max_iter: int = 100):
    """Li & Yu's Algorithm 1 with loops (ties to the lowest class): labels and weights."""
    n, m = L.shape
    v = np.ones(m)
    labels = None
    for _ in range(max_iter + 1):
        new = np.full(n, -1)
        for i in range(n):
            score = np.zeros(k)
            for j in range(m):
                if L[i, j] >= 0:
                    score[L[i, j]] += v[j]
            if (L[i] >= 0).any():
                new[i] = int(np.argmax(score))
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        for j in range(m):
            votes = np.flatnonzero(L[:, j] >= 0)
            correct = np.sum(L[votes, j] == labels[votes])
            a = correct / len(votes) if len(votes) else 1.0 / k
            if weights == "linear":
                v[j] = k * a - 1
            elif weights == "accuracy":
                v[j] = a
            else:
                s = (correct + 1.0) / (len(votes) + k)
                v[j] = np.log((k - 1) * s / (1 - s))
    return labels, v


@pytest.mark.parametrize("weights", ["linear", "log-odds", "accuracy"])
def test_matches_a_plain_implementation_of_algorithm_1(weights):
    L, _ = _data(k=3, seed=2, n=120)
    labels, v = _reference(L, 3, weights)
    est = IWMV(weights=weights, ties="first").fit(L)
    np.testing.assert_allclose(est.weights_, v, atol=1e-12)
    covered = (L >= 0).any(axis=1)
    np.testing.assert_array_equal(est.predict(L)[covered], labels[covered])


def test_fixed_point():
    L, _ = _data(k=4, seed=3)
    est = IWMV().fit(L)
    assert est.converged_ and est.n_changed_history_[-1] == 0
    h = est.predict(L)
    covered = (L >= 0).any(axis=1)
    rows, cols = np.nonzero(L >= 0)
    agree = np.bincount(cols, weights=(L[rows, cols] == h[rows]) & covered[rows], minlength=8)
    acc = agree / np.bincount(cols, minlength=8)
    np.testing.assert_allclose(est.accuracy_, acc, atol=1e-12)
    np.testing.assert_allclose(est.weights_, 4 * acc - 1, atol=1e-12)


def test_log_odds_output_is_the_one_coin_posterior_by_enumeration():
    L = np.array([[0, 1, 1], [0, 0, 1], [2, 2, 2], [0, 0, 0], [1, 1, 2], [0, 2, -1]])
    k = 3
    est = IWMV(weights="log-odds").fit(L)
    n_votes = (L >= 0).sum(axis=0)
    a = (est.accuracy_ * n_votes + 1.0) / (n_votes + k)  # the smoothed accuracies
    P = est.predict_proba(L)
    for i in range(L.shape[0]):
        post = np.ones(k)
        for c in range(k):
            for j in range(L.shape[1]):
                if L[i, j] >= 0:
                    post[c] *= a[j] if L[i, j] == c else (1 - a[j]) / (k - 1)
        np.testing.assert_allclose(P[i], post / post.sum(), atol=1e-12)


def test_linear_soft_output_argmax_is_the_label_and_shape():
    L, _ = _data(k=3, seed=4)
    est = IWMV().fit(L)
    scores = np.zeros((L.shape[0], 3))
    for j in range(L.shape[1]):
        voted = L[:, j] >= 0
        scores[voted, L[voted, j]] += est.weights_[j] * 1.5  # k / (k - 1)
    P = est.predict_proba(L)
    covered = (L >= 0).any(axis=1)
    expect = np.exp(scores - scores.max(axis=1, keepdims=True))
    expect /= expect.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(P[covered], expect[covered], atol=1e-12)


def test_ties_split_is_symmetric():
    L = np.array([[0, 1], [0, 0], [1, 1]])  # item 0 tied at every step
    est = IWMV(weights="accuracy").fit(L)
    np.testing.assert_allclose(est.accuracy_, [0.5 / 3 + 2 / 3, 0.5 / 3 + 2 / 3])
    first = IWMV(weights="accuracy", ties="first", max_iter=1).fit(L)
    np.testing.assert_allclose(first.accuracy_, [1.0, 2 / 3])


def test_known_labels_are_used_for_the_accuracies():
    L = np.array([[0, 0, 1], [1, 1, 1], [0, 0, 0], [1, 1, 1], [0, 0, 1]])
    y = np.array([1, -1, -1, -1, 1])
    plain = IWMV().fit(L)
    np.testing.assert_allclose(plain.accuracy_, [1.0, 1.0, 0.6])
    est = IWMV().fit(L, y)
    np.testing.assert_allclose(est.accuracy_, [0.6, 0.6, 1.0])
    # item 0 now follows source 2, but the output is the weighted vote, not a copy of y
    P = est.predict_proba(L)
    assert P[0, 1] > 0.5 and P[0, 1] < 1.0


def test_recovers_accuracies_on_one_coin_data():
    d = make_dawid_skene(4000, 8, 4, accuracy=(0.35, 0.9), errors="uniform", random_state=5)
    acc = np.einsum("jcc->j", d.confusion) / 4
    est = IWMV().fit(d.L)
    np.testing.assert_allclose(est.accuracy_, acc, atol=0.03)
    mv = np.argmax(d.L.class_counts(), axis=1)
    assert np.mean(est.predict(d.L) == d.y) > np.mean(mv == d.y) + 0.01


def test_convergence_warning_at_max_iter_1():
    L, _ = _data(k=3, seed=0)
    with pytest.warns(ConvergenceWarning, match="IWMV did not converge"):
        est = IWMV(max_iter=1).fit(L)
    assert not est.converged_ and est.n_iter_ == 1 and est.n_changed_history_[0] > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        assert IWMV().fit(L).converged_


def test_all_abstain_row_and_silent_source():
    L = np.array([[0, 0, -1], [1, 1, -1], [-1, -1, -1], [0, 1, -1], [0, 0, -1]])
    for weights in ("linear", "log-odds", "accuracy"):
        est = IWMV(weights=weights).fit(L)
        P = est.predict_proba(L)
        np.testing.assert_allclose(P[2], est.class_prior_)
        np.testing.assert_allclose(est.class_prior_, P[[0, 1, 3, 4]].mean(axis=0))
        assert est.accuracy_[2] == 0.5
    assert IWMV().fit(L).weights_[2] == 0.0


def test_bad_parameters():
    L = np.array([[0, 1], [1, 1]])
    with pytest.raises(InvalidParameterError, match="weights"):
        IWMV(weights="log").fit(L)
    with pytest.raises(InvalidParameterError, match="max_iter"):
        IWMV(max_iter=0).fit(L)
    with pytest.raises(InvalidParameterError, match="ties"):
        IWMV(ties="random").fit(L)


@pytest.mark.parametrize("weights", ["linear", "log-odds", "accuracy"])
def test_contract_properties(weights):
    L, _ = _data(k=3)
    _contract(lambda **kw: IWMV(weights=weights, **kw), L, 3)


def test_accuracy_on_a_shared_crowd_dataset(data_home):
    ds = load_shared("snow2008_rte", data_home=data_home)
    g = ds.y >= 0
    for weights, expected in (("linear", 0.925), ("log-odds", 0.925)):
        acc = np.mean(IWMV(weights=weights).fit(ds.L).predict(ds.L)[g] == ds.y[g])
        assert acc >= expected  # majority vote 0.897 (random ties)

