"""M-MSR (Ma & Olshevsky 2020): the agreement matrix by brute force, crowd-kit's trimmed
iteration re-derived with loops, signs of adversarial sources, recovery, the soft output by
enumeration, warnings, edge cases and the estimator contract."""

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

from wsagg.aggregation.mmsr import MMSR, _covariation
from wsagg.datasets import load_shared, make_dawid_skene
from wsagg.labels import as_label_matrix


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


def _data(k: int = 2, seed: int = 0, n: int = 300, m: int = 10, coverage: float = 0.6,
          accuracy=(0.6, 0.95)):
    d = make_dawid_skene(n, m, k, coverage=coverage, accuracy=accuracy, errors="uniform",
                         random_state=seed)
    L = d.L.to_dense()
    L[5] = -1  # an all-abstain item
    return L, d


def test_agreement_matrix_by_brute_force_with_repeated_votes():
    rng = np.random.default_rng(1)
    items, sources = rng.integers(0, 30, 200), rng.integers(0, 6, 200)
    labels = rng.integers(0, 3, 200)  # repeats of (item, source) pairs included
    lm = as_label_matrix((items, sources, labels))
    C, observed = _covariation(lm)
    for a in range(6):
        for b in range(6):
            pairs = [(la, lb) for i in range(30)
                     for la in lm.label[(lm.item == i) & (lm.source == a)]
                     for lb in lm.label[(lm.item == i) & (lm.source == b)]]
            if a == b or not pairs:
                assert not observed[a, b] and C[a, b] == 0
                continue
            rate = np.mean([la == lb for la, lb in pairs])
            assert observed[a, b]
            assert C[a, b] == pytest.approx((3 * rate - 1) / 2)


def _trim(x, F, a, n_tasks):
    """crowd-kit's _remove_largest_and_smallest_F_value, restated."""
    y = np.sort(x)
    y = y[y >= a] if np.sum(y < a) < F else y[F:]
    m = y.size
    y = y[y <= a] if np.sum(y > a) < F else np.concatenate([y[: m - F], y[m:]])
    if y.size == 1 and y[0] == 0:
        y = np.array([1 / np.sqrt(n_tasks)])
    return y


def _crowdkit_like(L: np.ndarray, n_iter: int = 10000, tol: float = 1e-10):
    """crowd-kit's _m_msr loop (per source), from the same agreement matrix and draw."""
    lm = as_label_matrix(L)
    C, observed = _covariation(lm)
    X = np.abs(C)
    m = L.shape[1]
    n_tasks = int((L >= 0).any(axis=1).sum())
    F = int(observed.sum(axis=0).min()) // 2 - 1
    order = np.argsort([np.flatnonzero(lm.source == j)[0] for j in range(m)], kind="stable")
    draw = np.random.RandomState(0).uniform(size=m)
    u, v = np.empty(m), np.empty(m)
    u[order] = v[order] = draw
    losses = []
    for _ in range(n_iter):
        u_prev, v_prev = u.copy(), v.copy()
        for j in range(m):
            y = _trim(X[observed[:, j], j] / u[observed[:, j]], F, v[j], n_tasks)
            if y.size:
                v[j] = y.mean()
        for i in range(m):
            y = _trim(X[i, observed[i]] / v[observed[i]], F, u[i], n_tasks)
            if y.size:
                u[i] = y.mean()
        losses.append(np.linalg.norm(np.outer(u, v) - np.outer(u_prev, v_prev)))
        if losses[-1] < tol:
            break
    return u * np.sqrt(np.linalg.norm(v) / np.linalg.norm(u)), np.array(losses), n_tasks


@pytest.mark.parametrize("k", [2, 3])
def test_matches_crowdkit_iteration(k):
    L, _ = _data(k=k, seed=2, n=200, m=9, accuracy=(0.7, 0.95))
    s_abs, losses, n_tasks = _crowdkit_like(L)
    est = MMSR().fit(L)
    assert est.n_iter_ == losses.size
    np.testing.assert_allclose(est.loss_history_, losses, rtol=1e-6, atol=1e-13)
    root = 1 / np.sqrt(n_tasks)
    np.testing.assert_allclose(est.reliability_, np.minimum(s_abs, 1 - root), atol=1e-9)
    p = (est.reliability_ * (k - 1) + 1) / k
    np.testing.assert_allclose(est.weights_, np.log((k - 1) * p / (1 - p)))


@pytest.mark.parametrize("k", [2, 3])
def test_recovers_reliabilities_and_signs_adversaries(k):
    rng = np.random.default_rng(3)
    acc = np.r_[rng.uniform(0.6, 0.95, 12), [0.05, 0.1]]  # two adversarial sources
    d = make_dawid_skene(3000, 14, k, coverage=0.5, accuracy=acc, errors="uniform",
                         random_state=3)
    est = MMSR().fit(d.L)
    s_true = (k * acc - 1) / (k - 1)
    np.testing.assert_allclose(est.reliability_, s_true, atol=0.08)  # a trimmed mean
    assert (est.reliability_[-2:] < 0).all() and (est.weights_[-2:] < 0).all()
    mv = np.argmax(d.L.class_counts(), axis=1)
    assert np.mean(est.predict(d.L) == d.y) > np.mean(mv == d.y) + 0.01


def test_soft_output_is_the_one_coin_posterior_by_enumeration():
    L, _ = _data(k=3, seed=4, n=60, m=6)
    est = MMSR().fit(L)
    P = est.predict_proba(L)
    a = est.accuracy_
    for i in np.flatnonzero((L >= 0).any(axis=1)):
        post = np.ones(3)
        for c in range(3):
            for j in np.flatnonzero(L[i] >= 0):
                post[c] *= a[j] if L[i, j] == c else (1 - a[j]) / 2
        np.testing.assert_allclose(P[i], post / post.sum(), atol=1e-12)


def test_convergence_warning_at_max_iter_1():
    L, _ = _data(seed=5)
    with pytest.warns(ConvergenceWarning, match="MMSR did not converge"):
        est = MMSR(max_iter=1).fit(L)
    assert not est.converged_ and est.n_iter_ == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        assert MMSR().fit(L).converged_


def test_all_abstain_row_and_silent_source():
    L, _ = _data(seed=6, m=6)
    L[:, 5] = -1  # source 5 never votes
    est = MMSR().fit(L)
    P = est.predict_proba(L)
    np.testing.assert_allclose(P[5], est.class_prior_)
    covered = (L >= 0).any(axis=1)
    np.testing.assert_allclose(est.class_prior_, P[covered].mean(axis=0))
    assert est.reliability_[5] == 0.0 and est.weights_[5] == 0.0
    # the silent source does not change the others (sparsity is over sources with votes)
    np.testing.assert_allclose(est.weights_[:5], MMSR().fit(L[:, :5]).weights_, atol=1e-8)


def test_bad_parameters_and_no_votes():
    L = np.array([[0, 1], [1, 1]])
    with pytest.raises(InvalidParameterError, match="max_iter"):
        MMSR(max_iter=0).fit(L)
    with pytest.raises(InvalidParameterError, match="tol"):
        MMSR(tol=-1.0).fit(L)
    with pytest.raises(ValueError, match="no votes"):
        MMSR(n_classes=2).fit(np.full((3, 2), -1))


@pytest.mark.parametrize("k", [2, 3])
def test_contract_properties(k):
    L, _ = _data(k=k, seed=0)
    # the initial draw follows the order of the first votes, which a permutation changes;
    # the converged reliabilities agree to ~tol
    _contract(lambda **kw: MMSR(**kw), L, k, atol=1e-7)


def test_accuracy_on_a_shared_crowd_dataset(data_home):
    ds = load_shared("snow2008_temp", data_home=data_home)
    g = ds.y >= 0
    acc = np.mean(MMSR().fit(ds.L).predict(ds.L)[g] == ds.y[g])
    assert acc >= 0.92  # majority vote 0.936 (random ties), crowd-kit's MMSR 0.924
