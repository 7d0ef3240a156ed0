"""Tests of Triplet (FlyingSquid's triplet method): hand-computed moments and tables,
agreement with FlyingSquid, recovery, signs, class balance, one-vs-rest, sampling, errors,
real data."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from wsagg.aggregation.triplet import Triplet, _group_reduce, _pair_moments, _triplets
from wsagg.datasets import load_shared, make_dawid_skene
from wsagg.labels import as_label_matrix

# FlyingSquid 0.0.0a0 (pgmpy 0.1.11): LabelModel(3).fit(L_pm) on this matrix (rows = items,
# one digit per source; make_dawid_skene(60, 3, 2, coverage=1.0, accuracy=(0.6, 0.85),
# random_state=0)), then predict_proba on the 8 vote patterns in itertools.product order,
# column P(Y = +1). With 3 sources there is one triplet, so the estimators coincide.
LFS = """
111 000 110 010 110 000 011 111 111 001 110 000 111 000 011 111 011 111 001 000 001 111
111 010 111 000 000 001 100 111 100 101 000 110 000 111 010 100 000 001 000 111 000 010
000 011 000 110 000 111 001 001 111 111 000 000 000 001 000 100
"""
FS_P1 = np.array([0.0113367211, 0.0783578541, 0.7596943452, 0.959083329, 0.2490656043,
                  0.7109153719, 0.9891824527, 0.9985272428])
PATTERNS = np.array(list(itertools.product([0, 1], repeat=3)))


def _decode(text: str) -> np.ndarray:
    return np.array([[-1 if ch == "." else int(ch) for ch in row] for row in text.split()])


def _empirical_accuracy(d) -> np.ndarray:
    lm = d.L
    correct = lm.label == d.y[lm.item]
    return np.bincount(lm.source, weights=correct) / np.bincount(lm.source)


# ------------------------------------------------------------------- hand-computed case
def test_three_sources_by_hand():
    L = np.array([
        [1, 1, 1], [1, 1, 0], [0, 0, 0], [0, 0, 1], [1, -1, 1], [0, 1, 0],
        [1, 1, -1], [0, 0, 0], [-1, 0, 0], [1, 0, 1], [0, 0, 1], [1, 1, 1],
        [0, 1, 1], [1, 0, 0], [0, 1, 1], [1, 1, 1],
    ])
    est = Triplet(min_overlap=1).fit(L)
    s = np.where(L == 1, 1.0, np.where(L == 0, -1.0, 0.0))  # class 1 = +1, abstain = 0

    def moment(j, k):  # E[l_j l_k | both vote]
        both = (L[:, j] >= 0) & (L[:, k] >= 0)
        return np.mean(s[both, j] * s[both, k])

    M = {(j, k): moment(j, k) for j, k in itertools.combinations(range(3), 2)}
    a = np.array([
        np.sqrt(abs(M[0, 1] * M[0, 2] / M[1, 2])),
        np.sqrt(abs(M[0, 1] * M[1, 2] / M[0, 2])),
        np.sqrt(abs(M[0, 2] * M[1, 2] / M[0, 1])),
    ])
    np.testing.assert_allclose(est.alpha_[1], a)
    np.testing.assert_allclose(est.alpha_[0], a)  # the mirrored problem
    np.testing.assert_array_equal(est.n_triplets_, np.ones((2, 3)))
    # FlyingSquid's joint table given a vote, p = 1/2, then P(lambda | Y)
    p = 0.5
    for j in range(3):
        q = np.mean(L[L[:, j] >= 0, j] == 1)
        r = (1 + a[j]) / 2
        j11 = (q + p + r - 1) / 2
        J = np.abs(np.array([[r - j11, q - j11], [p - j11, j11]]))  # [Y, lambda], 0 = "-"
        J /= J.sum()
        theta = np.maximum(J / J.sum(axis=1, keepdims=True), 1e-6)
        theta /= theta.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(est.conditional_probs_[1, j], theta, rtol=1e-12)
    # posterior: prior times the product over the votes
    proba = est.predict_proba(L)
    for i in range(L.shape[0]):
        post = np.array([0.5, 0.5])
        for j in range(3):
            if L[i, j] >= 0:
                post = post * est.conditional_probs_[1, j, :, L[i, j]]
        np.testing.assert_allclose(proba[i], post / post.sum(), rtol=1e-10)
    np.testing.assert_allclose(est.source_accuracy_, (1 + a) / 2)


def test_pair_moments_count_repeated_votes():
    frame = pd.DataFrame({"item": [0, 0, 0, 1, 1], "source": [0, 0, 1, 0, 1],
                          "label": [1, 1, 0, 1, 1]})
    S, N = _pair_moments(as_label_matrix(frame, n_classes=2))
    # item 0: source 0 votes 1 twice, source 1 votes 0; item 1: both vote 1
    assert N[0, 1] == 3 and S[1, 0, 1] == -2 + 1 and S[0, 0, 1] == -1


def test_pair_moments_gram_and_per_class_paths_agree(monkeypatch):
    d = make_dawid_skene(800, 6, 3, coverage=0.6, random_state=0)
    frame = d.L.to_long()
    lm = as_label_matrix(pd.concat([frame, frame.iloc[:40]]), n_classes=3)
    S, N = _pair_moments(lm)
    monkeypatch.setattr("wsagg.aggregation.triplet._GRAM_MAX_ENTRIES", 0)
    S2, N2 = _pair_moments(lm)
    np.testing.assert_array_equal(S, S2)
    np.testing.assert_array_equal(N, N2)
    dense = np.full((800, 6), -1)
    dense[d.L.item, d.L.source] = d.L.label
    for c in range(3):  # against the +-1 coding, item by item
        pm = np.where(dense == c, 1.0, np.where(dense >= 0, -1.0, 0.0))
        np.testing.assert_array_equal(_pair_moments(d.L)[0][c], pm.T @ pm)


def test_group_median_and_mean():
    group = np.array([2, 0, 2, 2, 0, 3])
    values = np.array([5.0, 1.0, 1.0, 3.0, 2.0, 7.0])
    med, counts = _group_reduce(group, values, 5, "median")
    np.testing.assert_allclose(med, [1.5, 0.0, 3.0, 7.0, 0.0])
    np.testing.assert_array_equal(counts, [2, 0, 3, 1, 0])
    mean, _ = _group_reduce(group, values, 5, "mean")
    np.testing.assert_allclose(mean, [1.5, 0.0, 3.0, 7.0, 0.0])


def test_triplet_enumeration_and_sampling():
    valid = np.ones((6, 6), dtype=bool)
    np.fill_diagonal(valid, False)
    valid[0, 1] = valid[1, 0] = False
    rng = np.random.RandomState(0)
    trip = _triplets(valid, 1000, rng)
    expected = {(i, j, k) for i in range(6) for j, k in itertools.combinations(range(6), 2)
                if i not in (j, k) and valid[i, j] and valid[i, k] and valid[j, k]}
    assert set(map(tuple, trip)) == expected and len(trip) == len(expected)
    few = _triplets(valid, 3, np.random.RandomState(0))
    assert np.bincount(few[:, 0]).max() == 3 and set(map(tuple, few)) <= expected


# ------------------------------------------------------------------------ FlyingSquid
def test_agrees_with_flyingsquid():
    L = _decode(LFS)
    est = Triplet(min_overlap=1).fit(L)
    np.testing.assert_allclose(est.predict_proba(PATTERNS)[:, 1], FS_P1, atol=1e-9)


# ----------------------------------------------------------------------------- recovery
@pytest.mark.parametrize("aggregate", ["median", "mean"])
def test_recovers_accuracies(aggregate):
    d = make_dawid_skene(20_000, 8, 2, coverage=0.5, errors="uniform", random_state=0)
    est = Triplet(aggregate=aggregate).fit(d.L)
    np.testing.assert_allclose(est.source_accuracy_, _empirical_accuracy(d), atol=0.02)
    assert (est.n_triplets_ == 21).all()


def test_moments_conditioned_on_votes_handle_assignment_patterns():
    """Two groups of items, each labelled mostly by its own half of the sources (as crowd
    tasks are assigned): moments over all items would mix the coverages in."""
    rng = np.random.default_rng(0)
    n, m = 20_000, 8
    y = rng.integers(0, 2, n)
    group = rng.integers(0, 2, n)
    acc = np.linspace(0.65, 0.9, m)
    votes_here = np.where((np.arange(m) < 4)[None, :] == (group[:, None] == 0), 0.9, 0.1)
    vote = rng.random((n, m)) < votes_here
    correct = rng.random((n, m)) < acc
    L = np.where(vote, np.where(correct, y[:, None], 1 - y[:, None]), -1)
    est = Triplet().fit(L)
    np.testing.assert_allclose(est.source_accuracy_, acc, atol=0.03)


def test_mean_positive_signs_find_an_adversarial_worker():
    d = make_dawid_skene(5000, 7, 2, accuracy=[0.8, 0.75, 0.85, 0.7, 0.8, 0.75, 0.2],
                         random_state=1)
    plain = Triplet().fit(d.L)
    signed = Triplet(sign_recovery="mean_positive").fit(d.L)
    assert plain.alpha_[1, 6] > 0.5 and signed.alpha_[1, 6] < -0.5
    assert (signed.alpha_[1, :6] > 0).all()
    assert np.mean(signed.predict(d.L) == d.y) > np.mean(plain.predict(d.L) == d.y) + 0.02
    np.testing.assert_allclose(signed.source_accuracy_, _empirical_accuracy(d), atol=0.03)


# ------------------------------------------------------------ known labels, class balance
def test_known_labels_orient_the_signs_and_set_the_balance():
    d = make_dawid_skene(5000, 6, 2, accuracy=(0.2, 0.35), coverage=0.8, random_state=1)
    y = np.full(5000, -1)
    y[::20] = d.y[::20]
    alone = Triplet(sign_recovery="mean_positive").fit(d.L)
    assert np.mean(alone.predict(d.L) == d.y) < 0.2  # all worse than random: flipped
    helped = Triplet(sign_recovery="mean_positive").fit(d.L, y)
    assert np.mean(helped.predict(d.L) == d.y) > 0.85
    assert (helped.alpha_ < 0).all()
    counts = np.bincount(d.y[::20], minlength=2)
    np.testing.assert_allclose(helped.class_prior_, counts / counts.sum())


@pytest.mark.parametrize("prior", [[0.25, 0.75], [0.2, 0.3, 0.5]])
def test_learned_class_balance(prior):
    d = make_dawid_skene(20_000, 8, len(prior), class_prior=prior, coverage=0.8,
                         errors="uniform", random_state=0)
    est = Triplet(class_balance="learned").fit(d.L)
    np.testing.assert_allclose(est.class_prior_, prior, atol=0.02)
    np.testing.assert_allclose(est.class_prior_.sum(), 1.0)


def test_given_class_balance_and_its_errors():
    d = make_dawid_skene(500, 5, 2, random_state=0)
    est = Triplet(class_balance=[0.3, 0.7]).fit(d.L)
    np.testing.assert_allclose(est.class_prior_, [0.3, 0.7])
    for bad in ([0.5, 0.6], [0.2, 0.3, 0.5], [1.0, 0.0]):
        with pytest.raises(ValueError, match="class_balance"):
            Triplet(class_balance=bad).fit(d.L)


# ------------------------------------------------------------------------ one-vs-rest
def test_multiclass_one_vs_rest():
    d = make_dawid_skene(5000, 8, 4, coverage=0.6, random_state=3)
    est = Triplet().fit(d.L)
    proba = est.predict_proba(d.L)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert est.alpha_.shape == (4, 8) and est.conditional_probs_.shape == (4, 8, 2, 2)
    np.testing.assert_allclose(est.conditional_probs_.sum(axis=3), 1.0)
    mv = d.L.class_counts().argmax(axis=1)
    assert np.mean(proba.argmax(axis=1) == d.y) >= np.mean(mv == d.y)


def test_binary_problems_mirror_each_other():
    d = make_dawid_skene(3000, 6, 2, coverage=0.7, random_state=2)
    est = Triplet(class_balance=[0.4, 0.6]).fit(d.L)
    np.testing.assert_allclose(est.alpha_[0], est.alpha_[1])
    np.testing.assert_allclose(est.conditional_probs_[0], est.conditional_probs_[1, :, ::-1, ::-1])


# ----------------------------------------------------------------- many sources: sampling
def test_many_sources_sample_triplets_deterministically():
    d = make_dawid_skene(1500, 320, 2, coverage=0.25, random_state=0)  # 320^3 > budget
    a = Triplet(max_pairs=40, random_state=0).fit(d.L)
    b = Triplet(max_pairs=40, random_state=0).fit(d.L)
    np.testing.assert_array_equal(a.alpha_, b.alpha_)
    assert a.n_triplets_.max() <= 40 and a.n_triplets_.min() > 20
    np.testing.assert_allclose(a.source_accuracy_, _empirical_accuracy(d), atol=0.15)


# ---------------------------------------------------------------- errors and warnings
@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"aggregate": "mode"}, InvalidParameterError),
        ({"sign_recovery": "random"}, InvalidParameterError),
        ({"min_overlap": 0}, InvalidParameterError),
        ({"max_pairs": 0}, InvalidParameterError),
        ({"class_balance": "balanced"}, InvalidParameterError),
        ({"n_classes": 1}, InvalidParameterError),
    ],
)
def test_bad_parameters_raise(params, error):
    with pytest.raises(error):
        Triplet(**params).fit(make_dawid_skene(100, 5, 2, random_state=0).L)


def test_too_few_sources_and_no_votes_raise():
    with pytest.raises(ValueError, match="at least 3 sources"):
        Triplet().fit(np.array([[0, 1], [1, 1], [0, 0]]))
    with pytest.raises(ValueError, match="no votes"):
        Triplet(n_classes=2).fit(np.full((4, 3), -1))


def test_unidentified_sources_warn_and_are_ignored():
    d = make_dawid_skene(2000, 6, 2, coverage=0.8, random_state=0)
    L = d.L.to_dense()
    L = np.c_[L, np.full(2000, -1)]
    L[:3, 6] = 1  # source 6 votes on 3 items only: below min_overlap with anyone
    with pytest.warns(UserWarning, match="1 of 7 voting source") as record:
        est = Triplet().fit(L)
    assert record[0].filename == __file__
    assert est.alpha_[:, 6].tolist() == [0.0, 0.0] and (est.n_triplets_[:, 6] == 0).all()
    without = Triplet().fit(L[:, :6]).predict_proba(L[:, :6])
    np.testing.assert_allclose(est.predict_proba(L), without)


def test_all_abstain_row_and_silent_source_get_the_prior():
    d = make_dawid_skene(1000, 5, 3, coverage=0.8, random_state=0)
    L = np.c_[d.L.to_dense(), np.full(1000, -1)]
    L[11] = -1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a source that never votes is not a warning
        est = Triplet(class_balance=[0.2, 0.3, 0.5]).fit(L)
    np.testing.assert_allclose(est.predict_proba(L)[11], [0.2, 0.3, 0.5])
    assert (est.alpha_[:, 5] == 0).all() and est.source_accuracy_[5] == 0.5


# --------------------------------------------------------------------------- real data
def test_spouse_accuracy(data_home):
    ds = load_shared("spouse_snorkel_test", data_home=data_home)
    with pytest.warns(UserWarning, match="3 of 9 voting source"):  # three rare LFs
        proba = Triplet().fit_predict_proba(ds.L)
    known = ds.y >= 0
    assert np.mean(proba[known].argmax(axis=1) == ds.y[known]) > 0.85
