"""Wawa (worker agreement with aggregate): hand-computed cases, crowd-kit's rule re-derived
independently, known labels, recovery, edge cases and the estimator contract."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError

from wsagg.aggregation.wawa import Wawa
from wsagg.datasets import load_shared, make_dawid_skene

L_SMALL = np.array([[0, 0, 1], [1, 1, 1], [0, -1, 0], [1, 1, -1], [0, 0, 0]])


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
    Ps = make(n_classes=k).fit_predict_proba(Ls)
    np.testing.assert_allclose(Ps[:, sigma], P, atol=atol)


def _data(k: int = 3, seed: int = 0):
    d = make_dawid_skene(300, 8, k, coverage=0.6, errors="uniform", random_state=seed)
    L = d.L.to_dense()
    L[5] = -1  # an all-abstain item
    return L, d


def test_hand_computed_skills_and_shares():
    w = Wawa().fit(L_SMALL)
    # majority vote 0,1,0,1,0; source 2 agrees on 3 of its 4 votes
    np.testing.assert_allclose(w.skills_, [1.0, 1.0, 0.75])
    P = w.predict_proba(L_SMALL)
    np.testing.assert_allclose(P[0], [2 / 2.75, 0.75 / 2.75])
    np.testing.assert_allclose(P[1:], [[0, 1], [1, 0], [0, 1], [1, 0]])
    np.testing.assert_allclose(w.class_prior_, P.mean(axis=0))


def test_ties_split_and_first():
    L = np.array([[0, 1], [0, 0]])  # item 0 is a tie
    np.testing.assert_allclose(Wawa().fit(L).skills_, [0.75, 0.75])  # half agreement on it
    np.testing.assert_allclose(Wawa(ties="first").fit(L).skills_, [1.0, 0.5])  # class 0 wins


def _crowdkit_like(L: np.ndarray):
    """crowd-kit's Wawa written with pandas group-bys (ties to the smallest label)."""
    rows, cols = np.nonzero(L >= 0)
    df = pd.DataFrame({"task": rows, "worker": cols, "label": L[rows, cols]})
    counts = df.groupby(["task", "label"]).size().unstack("label", fill_value=0)
    mv = counts.idxmax(axis=1)  # first (smallest) label among the maxima
    df["ok"] = (df["label"] == df["task"].map(mv)).astype(float)
    skills = df.groupby("worker")["ok"].mean()
    df["skill"] = df["worker"].map(skills)
    scores = df.groupby(["task", "label"])["skill"].sum().unstack("label", fill_value=0)
    return skills, scores.div(scores.sum(axis=1), axis=0)


def test_matches_crowdkit_rule_with_ties_first():
    L, _ = _data(k=3, seed=1)
    skills, probas = _crowdkit_like(L)
    w = Wawa(ties="first").fit(L)
    np.testing.assert_allclose(w.skills_[skills.index], skills.to_numpy(), atol=1e-12)
    P = w.predict_proba(L)
    ok = probas.notna().all(axis=1)
    idx = probas.index[ok]
    got = P[idx][:, probas.columns]
    np.testing.assert_allclose(got, probas.loc[idx].to_numpy(), atol=1e-12)


def test_known_labels_measure_skills_against_truth():
    # source 2 is right on item 0 against a 2-1 majority
    L = np.array([[0, 0, 1], [1, 1, 1], [0, 0, 0], [1, 1, 1]])
    y = np.array([1, -1, -1, -1])
    np.testing.assert_allclose(Wawa().fit(L).skills_, [1.0, 1.0, 0.75])
    w = Wawa().fit(L, y)
    np.testing.assert_allclose(w.skills_, [0.75, 0.75, 1.0])
    # not copied into the output: item 0 is still a weighted vote
    np.testing.assert_allclose(w.predict_proba(L)[0], [1.5 / 2.5, 1.0 / 2.5])


def test_recovers_accuracies_on_one_coin_data():
    d = make_dawid_skene(4000, 15, 3, accuracy=(0.55, 0.9), errors="uniform", random_state=3)
    acc = np.einsum("jcc->j", d.confusion) / 3
    w = Wawa().fit(d.L)
    # the majority vote of 15 such sources is nearly always right: skill ~ accuracy
    np.testing.assert_allclose(w.skills_, acc, atol=0.03)
    mv_acc = np.mean(np.argmax(d.L.class_counts(), axis=1) == d.y)
    assert np.mean(w.predict(d.L) == d.y) >= mv_acc


def test_all_abstain_rows_and_zero_weight_rows_get_the_prior():
    L = np.array([[0, 0, 1], [1, 1, 0], [-1, -1, -1], [0, 0, 1], [-1, -1, 1]])
    w = Wawa().fit(L, np.array([-1, -1, -1, -1, 0]))
    assert w.skills_[2] == 0.0  # source 2 disagrees with the majority and with y
    P = w.predict_proba(L)
    np.testing.assert_allclose(P[2], w.class_prior_)
    np.testing.assert_allclose(P[4], w.class_prior_)  # voted only by a skill-0 source
    np.testing.assert_allclose(w.class_prior_, P[[0, 1, 3]].mean(axis=0))


def test_silent_source_and_bad_parameters():
    L = np.array([[0, -1], [1, -1], [0, -1]])
    w = Wawa().fit(L)
    np.testing.assert_allclose(w.skills_, [1.0, 0.0])
    with pytest.raises(InvalidParameterError, match="ties"):
        Wawa(ties="last").fit(L)
    with pytest.raises(InvalidParameterError, match="n_classes"):
        Wawa(n_classes=1).fit(L)


def test_contract_properties():
    L, _ = _data(k=3)
    _contract(lambda **kw: Wawa(**kw), L, 3)


def test_accuracy_on_a_shared_crowd_dataset(data_home):
    ds = load_shared("snow2008_temp", data_home=data_home)
    g = ds.y >= 0
    acc = np.mean(Wawa().fit(ds.L).predict(ds.L)[g] == ds.y[g])
    assert acc >= 0.93  # majority vote 0.936 (random ties), Wawa 0.944
