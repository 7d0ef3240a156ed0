"""AutoAggregator: the selection, its guards and its calibration (issue 15)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from wsagg import AutoAggregator, MajorityVote
from wsagg.aggregation.auto import (
    _check_not_collapsed,
    _Collapsed,
    _item_halves,
    _source_groups,
    default_candidates,
    source_log_likelihoods,
)
from wsagg.datasets import make_dawid_skene
from wsagg.labels import as_label_matrix


def _fit(est, L, y=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(L, y)


@pytest.fixture(scope="module")
def crowd():
    return make_dawid_skene(400, 8, 3, coverage=0.6, random_state=1)


def test_explains_its_choice_and_records_every_candidate(crowd):
    auto = _fit(AutoAggregator(random_state=0, unsupervised="criterion"), crowd.L)
    r = auto.cv_results_
    assert auto.criterion_ == "held_out_source_likelihood"
    assert auto.selected_ in set(r["candidate"])
    assert auto.selected_ in auto.explanation_ and "held-out source likelihood" in (
        auto.explanation_)
    assert set(r) == {"candidate", "method", "params", "score", "score_std_err", "accuracy",
                      "log_loss", "temperature", "error"}
    assert len(r["candidate"]) == len(default_candidates(3, has_labels=False))


def test_with_labels_majority_votes_are_always_candidates_and_cv_decides(crowd):
    y = np.where(np.arange(400) % 3 == 0, crowd.y, -1)
    auto = _fit(AutoAggregator(random_state=0), crowd.L, y)
    assert auto.criterion_ == "cv_error_rate"
    cands = list(auto.cv_results_["candidate"])
    assert "majority" in cands and "majority-accuracy" in cands
    # the chosen candidate's CV loss is within one paired standard error of the best
    scores = auto.cv_results_["score"]
    i = cands.index(auto.selected_)
    assert scores[i] - np.nanmin(scores) <= auto.cv_results_["score_std_err"][i] + 1e-12


def test_the_one_standard_error_rule_prefers_the_simpler_candidate(crowd):
    y = np.where(np.arange(400) % 3 == 0, crowd.y, -1)
    plain = _fit(AutoAggregator(random_state=0, one_standard_error=False), crowd.L, y)
    se = _fit(AutoAggregator(random_state=0), crowd.L, y)
    order = list(se.cv_results_["candidate"])
    assert order.index(se.selected_) <= order.index(plain.selected_)


def test_never_worse_than_majority_vote_beyond_noise_with_an_unrepresentative_labeled_split():
    # issue 15, pattern (e): the labeled items are the hard ones (few votes, more noise);
    # the fit must still not lose to majority vote on the other items by more than noise
    d = make_dawid_skene(1500, 10, 2, coverage=0.5, random_state=4)
    L = d.L.to_dense()
    votes = (L >= 0).sum(axis=1)
    labeled = np.argsort(votes, kind="stable")[:150]  # the sparsest items only
    y = np.full(1500, -1)
    y[labeled] = d.y[labeled]
    rest = np.setdiff1d(np.arange(1500), labeled)
    rest = rest[(L[rest] >= 0).any(axis=1)]
    auto = _fit(AutoAggregator(random_state=0), L, y).predict(L)
    mv = MajorityVote().fit(L).predict(L)
    acc_auto = np.mean(auto[rest] == d.y[rest])
    acc_mv = np.mean(mv[rest] == d.y[rest])
    assert acc_auto >= acc_mv - 2 * np.sqrt(acc_mv * (1 - acc_mv) / rest.size)


def test_the_default_unsupervised_policy_is_mace(crowd):
    auto = _fit(AutoAggregator(random_state=0), crowd.L)
    assert auto.selected_ == "mace" and "'mace'" in auto.explanation_
    assert auto.temperature_ >= 1.0  # without labels the posteriors are only softened


def test_the_by_source_type_policy_follows_the_source_type(crowd):
    auto = _fit(AutoAggregator(random_state=0, unsupervised="by-source-type"), crowd.L)
    assert auto.selected_ == "dawid-skene" and "by-source-type" in auto.explanation_
    rng = np.random.default_rng(0)  # unipolar labeling functions with abstains: MACE
    y = rng.integers(0, 2, 600)
    L = np.full((600, 6), -1)
    for j in range(6):
        c = j % 2
        fire = (y == c) & (rng.random(600) < 0.5) | (y != c) & (rng.random(600) < 0.1)
        L[fire, j] = c
    lf = _fit(AutoAggregator(random_state=0, unsupervised="by-source-type"), L)
    assert lf.selected_ == "mace"


def test_calibration_softens_posteriors_made_overconfident_by_duplicated_sources():
    # issue 15, pattern (c): one noisy source copied 8 times makes posteriors certain
    rng = np.random.default_rng(0)
    n = 2000
    y = rng.integers(0, 2, n)
    base = np.where(rng.random(n) < 0.7, y, 1 - y)
    others = np.column_stack([np.where(rng.random(n) < 0.75, y, 1 - y) for _ in range(3)])
    L = np.column_stack([np.repeat(base[:, None], 8, axis=1), others])
    from sklearn.metrics import log_loss

    kw = {"random_state": 0, "unsupervised": "criterion"}
    raw = _fit(AutoAggregator(calibration=False, **kw), L).predict_proba(L)
    cal = _fit(AutoAggregator(**kw), L).predict_proba(L)
    assert log_loss(y, cal) < log_loss(y, raw)


def test_a_collapsed_candidate_is_excluded():
    lm = as_label_matrix(np.array([[0, 0], [1, 1], [0, 1], [1, 0]] * 10))
    one_class = np.tile([1.0, 0.0], (40, 1))  # every item predicted class 0
    with pytest.raises(_Collapsed, match="collapsed"):
        _check_not_collapsed(one_class, lm, None)
    balanced = np.where(np.arange(40)[:, None] % 2 == 0, [0.9, 0.1], [0.1, 0.9])
    _check_not_collapsed(balanced, lm, None)


def test_held_out_source_likelihood_scores_only_what_the_model_did_not_see(crowd):
    lm = crowd.L
    groups = _source_groups(lm, 4, 0.1)
    half = _item_halves(lm, 0.1)
    hidden = groups == 0
    # a posterior built from the hidden sources' own votes would leak: check that the
    # score of the truth beats the score of a uniform posterior, and that both are finite
    truth = np.eye(3)[crowd.y]
    v_true, w = source_log_likelihoods(truth, lm, hidden, False, half)
    v_unif, _ = source_log_likelihoods(np.full((lm.n_items, 3), 1 / 3), lm, hidden, False, half)
    assert np.all(np.isfinite(v_true)) and w.min() >= 0
    assert np.average(v_true, weights=w) > np.average(v_unif, weights=w) + 0.1


def test_groups_and_halves_are_content_hashed(crowd):
    L = crowd.L.to_dense()
    perm = np.random.default_rng(0).permutation(L.shape[0])
    a, b = as_label_matrix(L), as_label_matrix(L[perm])
    np.testing.assert_array_equal(_source_groups(a, 4, 0.2), _source_groups(b, 4, 0.2))
    np.testing.assert_array_equal(_item_halves(a, 0.2)[perm], _item_halves(b, 0.2))


def test_bad_candidates_are_refused():
    with pytest.raises(ValueError, match="Unknown candidate method"):
        _fit(AutoAggregator(candidates=[("x", "nope", {})]), np.array([[0, 1], [1, 1]]))


def test_scoring_accuracy_selects_by_held_out_error_rate():
    """scoring="accuracy": the CV compares error rates (reported with log loss); the chosen
    candidate has the lowest error rate up to the one-standard-error rule."""
    d = make_dawid_skene(1500, 8, 3, coverage=0.6, accuracy=(0.35, 0.8), random_state=3)
    y = np.where(np.arange(1500) % 3 == 0, d.y, -1)
    auto = _fit(AutoAggregator(scoring="accuracy", one_standard_error=False, random_state=0),
                d.L, y)
    r = auto.cv_results_
    assert auto.criterion_ == "cv_error_rate" and "error rate" in auto.explanation_
    ok = np.isfinite(r["score"])
    np.testing.assert_allclose(r["score"][ok], 1.0 - r["accuracy"][ok])
    assert np.all(r["log_loss"][ok] > 0)
    assert r["score"][list(r["candidate"]).index(auto.selected_)] == r["score"][ok].min()


def test_baseline_unsupervised_keeps_the_policy_choice_within_noise():
    """Easy crowd votes: every candidate is within noise of the best. The 1-SE rule keeps the
    simplest (majority vote) with baseline="simplest" (the default), and the unsupervised
    policy's choice (MACE, the default policy) with baseline="unsupervised"."""
    d = make_dawid_skene(600, 7, 2, coverage=1.0, accuracy=(0.8, 0.95), random_state=4)
    y = np.where(np.arange(600) % 2 == 0, d.y, -1)
    simple = _fit(AutoAggregator(random_state=0), d.L, y)  # (the default: "simplest")
    base = _fit(AutoAggregator(baseline="unsupervised", random_state=0), d.L, y)
    assert simple.selected_ == "majority"
    assert base.selected_ == "mace"
    r = base.cv_results_
    best = np.nanmin(r["score"])
    i = list(r["candidate"]).index("mace")
    assert r["score"][i] - best <= r["score_std_err"][i]


def test_without_labels_the_criterion_overrides_the_policy_choice_only_beyond_noise(crowd):
    """unsupervised="criterion" with baseline="unsupervised" keeps the
    by-source-type choice (Dawid-Skene for crowd workers) unless another candidate's held-out
    source likelihood is better by more than one paired standard error; baseline="simplest"
    (the default) keeps the simplest within noise."""
    base = _fit(AutoAggregator(random_state=0, unsupervised="criterion",
                               baseline="unsupervised"), crowd.L)
    simple = _fit(AutoAggregator(random_state=0, unsupervised="criterion"), crowd.L)
    for auto, first in ((base, "dawid-skene"), (simple, None)):
        r = auto.cv_results_
        cands = list(r["candidate"])
        ok = np.isfinite(r["score"])
        best = np.nanmax(r["score"])
        within = [c for c, s, se, good in zip(cands, r["score"], r["score_std_err"], ok,
                                              strict=True) if good and best - s <= se]
        expected = first if first in within else within[0]
        assert auto.selected_ == expected
        if first is not None and expected != first:  # overridden: said so, and beyond noise
            i = cands.index(first)
            assert best - r["score"][i] > r["score_std_err"][i]


def test_held_out_standard_errors_are_clustered_by_item():
    """Outcomes of one item share its posterior: the cluster-robust standard error of a
    difference that is the same for every outcome of an item equals the i.i.d. one over
    items, not over outcomes (which would be sqrt(outcomes per item) times smaller)."""
    from wsagg.aggregation.auto import _paired_std_err

    rng = np.random.default_rng(0)
    per_item = rng.normal(size=500)
    diff = np.repeat(per_item, 9)  # 9 outcomes per item, all equal
    clusters = np.repeat(np.arange(500), 9)
    clustered = _paired_std_err(diff, None, clusters)
    naive = _paired_std_err(diff, None, None)
    by_item = _paired_std_err(per_item, None, None)
    assert clustered == pytest.approx(by_item, rel=1e-9)
    assert clustered == pytest.approx(3 * naive, rel=1e-6)
