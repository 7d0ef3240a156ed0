"""KOS (Karger, Oh & Shah 2011): one iteration by hand, crowd-kit's unnormalised recursion
(and its overflow stop) re-derived independently, the soft output, recovery, errors,
warnings, edge cases and the estimator contract."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.special import expit
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import InvalidParameterError

from wsagg.aggregation.kos import KOS
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


def _data(seed: int = 0, n: int = 300, m: int = 10, coverage: float = 0.5):
    d = make_dawid_skene(n, m, 2, coverage=coverage, accuracy=(0.55, 0.95), errors="uniform",
                         random_state=seed)
    L = d.L.to_dense()
    L[5] = -1  # an all-abstain item
    return L, d


def _crowdkit_like(L: np.ndarray, n_iter: int = 100, seed: int = 0):
    """crowd-kit's KOS.fit on the votes of ``L`` in row-major order, with numpy instead of
    pandas: unnormalised messages, the 1e300 stop, labels from the edge messages."""
    items, workers = np.nonzero(L >= 0)
    A = np.where(L[items, workers] == 0, 1.0, -1.0)
    rel = np.random.RandomState(seed).normal(1, 1, size=A.size)
    done = 0
    for _ in range(n_iter):
        mult = A * rel
        summed = np.bincount(items, weights=mult)[items]
        if (np.abs(summed) > 1e300).any():
            break
        inferred = summed - mult
        mult = A * inferred
        summed = np.bincount(workers, weights=mult)[workers]
        if (np.abs(summed) > 1e300).any():
            break
        rel = summed - mult
        last_inferred = inferred
        done += 1
    full = np.bincount(workers, weights=A * last_inferred, minlength=L.shape[1])
    decision = np.bincount(items, weights=A * rel, minlength=L.shape[0])
    return np.where(decision > 0, 0, 1), done, full


def test_one_iteration_by_hand():
    # items 0, 1, 2; votes (item, source, label): (0,0,0) (0,1,0) (1,0,0) (1,1,1) (2,1,1)
    L = np.array([[0, 0], [0, 1], [-1, 1]])
    with pytest.warns(ConvergenceWarning):
        est = KOS(max_iter=1).fit(L)
    # A = +1, +1, +1, -1, -1 ; y0 = 1 on every edge
    # x_{i->j} = sum over the item's other edges: edge (0,0): +1, (0,1): +1, (1,0): -1,
    # (1,1): +1, (2,1): 0.  y_j = sum_i A_ij x_{i->j}: source 0: 1 - 1 = 0, source 1: 1 - 1 = 0
    np.testing.assert_allclose(est.reliability_, [0.0, 0.0])
    np.testing.assert_allclose(est.predict_proba(L), 0.5)  # every decision is a tie


def test_leave_one_out_messages_by_hand():
    L = np.array([[0, 0, 0], [0, 0, 1], [1, 1, 1], [0, 1, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = KOS(max_iter=1).fit(L)
    A = np.where(L == 0, 1.0, -1.0)
    x = A.sum(axis=1, keepdims=True) - A  # x_{i->j} with y = 1, every pair voted
    y_full = (A * x).sum(axis=0)
    np.testing.assert_allclose(est.reliability_, y_full / np.mean(np.abs(y_full)))


def test_matches_crowdkit_recursion_including_the_overflow_stop():
    # dense votes: the messages grow by ~ (m-1)(n-1) per iteration and pass 1e300 early
    L, _ = _data(seed=1, n=400, m=25, coverage=1.0)
    labels, done, full = _crowdkit_like(L, n_iter=100, seed=0)
    assert 10 < done < 100  # the reference did stop on overflow
    est = KOS(init="gaussian", random_state=0, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(L)
    assert est.n_iter_ == done
    src = np.nonzero(L >= 0)[1]
    np.testing.assert_allclose(est.reliability_, full / np.mean(np.abs(full[src])),
                               rtol=1e-9, atol=1e-12)
    covered = (L >= 0).any(axis=1)
    np.testing.assert_array_equal(est.predict(L)[covered], labels[covered])


def test_default_init_converges_to_the_same_labels():
    L, _ = _data(seed=2, n=400, m=15, coverage=0.4)
    labels, _, _ = _crowdkit_like(L)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = KOS().fit(L)
    assert est.converged_ and est.message_change_history_[-1] <= 1e-6
    covered = (L >= 0).any(axis=1)
    np.testing.assert_array_equal(est.predict(L)[covered], labels[covered])


def test_soft_output_is_a_logistic_of_the_weighted_message():
    L, _ = _data(seed=3)
    est = KOS().fit(L)
    A = np.where(L == 0, 1.0, np.where(L == 1, -1.0, 0.0))
    P = est.predict_proba(L)
    covered = (L >= 0).any(axis=1)
    np.testing.assert_allclose(P[covered, 0], expit(A @ est.weights_)[covered], atol=1e-12)
    np.testing.assert_allclose(est.weights_, est.vote_log_odds_ * est.reliability_)
    # the log-odds scale is that of the fraction of votes agreeing with the labels
    h = est.predict(L)
    rows, cols = np.nonzero(L >= 0)
    a = (np.sum(L[rows, cols] == h[rows]) + 1) / (rows.size + 2)
    assert est.vote_log_odds_ == pytest.approx(np.log(a / (1 - a)))


def test_recovers_reliabilities_and_flags_an_adversary():
    rng = np.random.default_rng(4)
    acc = np.r_[rng.uniform(0.5, 0.95, 19), 0.1]  # source 19 is adversarial
    d = make_dawid_skene(3000, 20, 2, coverage=0.3, accuracy=acc, errors="uniform",
                         random_state=4)
    est = KOS().fit(d.L)
    r = est.reliability_
    assert r[19] < 0 < r[:19].min() + 0.3
    corr = np.corrcoef(r, 2 * acc - 1)[0, 1]
    assert corr > 0.95
    mv = np.argmax(d.L.class_counts(), axis=1)
    assert np.mean(est.predict(d.L) == d.y) > np.mean(mv == d.y)


def test_binary_only():
    L = np.array([[0, 1, 2], [1, 1, 2]])
    with pytest.raises(ValueError, match=r"KOS is binary \(k=2\) but the votes have k=3"):
        KOS().fit(L)
    with pytest.raises(ValueError, match=r"wsagg\.DawidSkene"):
        KOS(n_classes=4).fit(np.array([[0, 1], [1, 1]]))


def test_all_abstain_row_and_silent_source():
    L = np.array([[0, 0, -1], [1, 1, -1], [-1, -1, -1], [0, 1, -1], [0, 0, -1], [1, 1, -1]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the messages alternate in sign
        est = KOS().fit(L)
    P = est.predict_proba(L)
    np.testing.assert_allclose(P[2], est.class_prior_)
    np.testing.assert_allclose(est.class_prior_, P[[0, 1, 3, 4, 5]].mean(axis=0))
    assert est.reliability_[2] == 0.0
    np.testing.assert_allclose(P[3], 0.5)  # a tie between two equal sources


def test_bad_parameters():
    L = np.array([[0, 1], [1, 1]])
    with pytest.raises(InvalidParameterError, match="init"):
        KOS(init="random").fit(L)
    with pytest.raises(InvalidParameterError, match="max_iter"):
        KOS(max_iter=0).fit(L)
    with pytest.raises(InvalidParameterError, match="tol"):
        KOS(tol=-1).fit(L)


def test_gaussian_init_is_seeded():
    L, _ = _data(seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        p1 = KOS(init="gaussian", random_state=7, max_iter=2).fit_predict_proba(L)
        p2 = KOS(init="gaussian", random_state=7, max_iter=2).fit_predict_proba(L)
        p3 = KOS(init="gaussian", random_state=8, max_iter=2).fit_predict_proba(L)
    np.testing.assert_array_equal(p1, p2)
    assert not np.allclose(p1, p3)


def test_contract_properties():
    L, _ = _data(seed=0)
    _contract(lambda **kw: KOS(**kw), L, 2)


def test_accuracy_on_a_shared_crowd_dataset(data_home):
    ds = load_shared("zheng_product", data_home=data_home)
    g = ds.y >= 0
    acc = np.mean(KOS().fit(ds.L).predict(ds.L)[g] == ds.y[g])
    assert acc >= 0.89  # majority vote 0.897, crowd-kit's KOS 0.8955
