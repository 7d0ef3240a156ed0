"""ZeroBasedSkill: crowd-kit's update rule re-derived independently, the learning-rate
schedule, known labels, recovery, warnings, edge cases and the estimator contract."""

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

from wsagg.aggregation.wawa import Wawa
from wsagg.aggregation.zero_based_skill import ZeroBasedSkill
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


def _crowdkit_like(L, n_iter=100, lr_init=1.0, steps=20, factor=0.5, eps=1e-5):
    """crowd-kit's ZeroBasedSkill.fit written with pandas (ties to the smallest label)."""
    rows, cols = np.nonzero(L >= 0)
    df = pd.DataFrame({"task": rows, "worker": cols, "label": L[rows, cols]})
    skills = pd.Series(1 / df["label"].nunique() + eps, index=pd.unique(df["worker"]))
    lr = lr_init
    for it in range(1, n_iter + 1):
        if it % steps == 0:
            lr *= factor
        df["skill"] = df["worker"].map(skills)
        scores = df.groupby(["task", "label"])["skill"].sum().unstack("label", fill_value=0)
        labels = scores.idxmax(axis=1)
        ok = (df["label"] == df["task"].map(labels)).astype(float)
        acc = ok.groupby(df["worker"]).mean()
        skills = skills + lr * (acc - skills)
    return skills


@pytest.mark.parametrize("lr", [1.0, 0.3])
def test_matches_crowdkit_rule(lr):
    L, _ = _data(k=3, seed=1, n=150)
    ref = _crowdkit_like(L, n_iter=45, lr_init=lr, steps=7, factor=0.6)
    est = ZeroBasedSkill(lr=lr, lr_steps_to_reduce=7, lr_reduce_factor=0.6, ties="first",
                         max_iter=45, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(L)
    np.testing.assert_allclose(est.skills_[ref.index], ref.to_numpy(), atol=1e-12)


def test_one_full_step_is_wawa_and_warns():
    L, _ = _data(k=3, seed=2)
    with pytest.warns(ConvergenceWarning, match="ZeroBasedSkill did not converge"):
        est = ZeroBasedSkill(max_iter=1).fit(L)
    assert est.n_iter_ == 1 and not est.converged_
    np.testing.assert_allclose(est.skills_, Wawa().fit(L).skills_, atol=1e-12)
    # the first step moves every skill from the initial 1/3 + 1e-5 to its agreement
    np.testing.assert_allclose(est.skill_change_history_[0],
                               np.max(np.abs(est.skills_ - (1 / 3 + 1e-5))))


def test_converges_with_the_default_schedule():
    L, _ = _data(k=3, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = ZeroBasedSkill().fit(L)
    assert est.converged_ and est.skill_change_history_[-1] <= 1e-5
    # a damped step (lr < 1) keeps moving geometrically: more iterations, same limit
    slow = ZeroBasedSkill(lr=0.5, max_iter=500).fit(L)
    assert slow.n_iter_ > est.n_iter_
    np.testing.assert_allclose(slow.skills_, est.skills_, atol=1e-4)


def test_known_labels_are_used_for_the_agreements():
    L = np.array([[0, 0, 1], [1, 1, 1], [0, 0, 0], [1, 1, 1], [0, 0, 1]])
    y = np.array([1, -1, -1, -1, 1])
    np.testing.assert_allclose(ZeroBasedSkill().fit(L).skills_, [1.0, 1.0, 0.6])
    est = ZeroBasedSkill().fit(L, y)
    np.testing.assert_allclose(est.skills_, [0.6, 0.6, 1.0])
    P = est.predict_proba(L)
    np.testing.assert_allclose(P[0], [1.2 / 2.2, 1.0 / 2.2])  # a weighted vote, not y


def test_recovers_accuracies_on_one_coin_data():
    d = make_dawid_skene(4000, 15, 3, accuracy=(0.55, 0.9), errors="uniform", random_state=3)
    acc = np.einsum("jcc->j", d.confusion) / 3
    est = ZeroBasedSkill().fit(d.L)
    np.testing.assert_allclose(est.skills_, acc, atol=0.03)


def test_all_abstain_row_and_silent_source():
    L = np.array([[0, 0, -1], [1, 1, -1], [-1, -1, -1], [0, 1, -1], [0, 0, -1]])
    est = ZeroBasedSkill().fit(L)
    P = est.predict_proba(L)
    np.testing.assert_allclose(P[2], est.class_prior_)
    np.testing.assert_allclose(est.class_prior_, P[[0, 1, 3, 4]].mean(axis=0))
    assert est.skills_[2] == pytest.approx(0.5 + 1e-5)  # the initial 1/K + eps


def test_bad_parameters():
    L = np.array([[0, 1], [1, 1]])
    for kw, name in (({"lr": 0.0}, "lr"), ({"lr": 1.5}, "lr"),
                     ({"lr_reduce_factor": 0.0}, "lr_reduce_factor"),
                     ({"lr_steps_to_reduce": 0}, "lr_steps_to_reduce"),
                     ({"tol": -1.0}, "tol"), ({"max_iter": 0}, "max_iter")):
        with pytest.raises(InvalidParameterError, match=name):
            ZeroBasedSkill(**kw).fit(L)


def test_contract_properties():
    L, _ = _data(k=3)
    _contract(lambda **kw: ZeroBasedSkill(**kw), L, 3)


def test_accuracy_on_a_shared_crowd_dataset(data_home):
    ds = load_shared("snow2008_temp", data_home=data_home)
    g = ds.y >= 0
    acc = np.mean(ZeroBasedSkill().fit(ds.L).predict(ds.L)[g] == ds.y[g])
    assert acc >= 0.94  # majority vote 0.936 (random ties)
