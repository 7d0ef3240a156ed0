"""GLAD (Whitehill et al. 2009): brute force, EM fixed point, crowd-kit's fixed point,
parameter recovery, clamping, errors, warnings and the aggregator contract."""

from __future__ import annotations

import itertools
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.special import expit, logsumexp
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from wsagg.aggregation.glad import GLAD, _log_joint
from wsagg.datasets import load_shared, make_dawid_skene
from wsagg.labels import as_label_matrix

# 30 items x 4 workers, k = 3 (from make_dawid_skene(30, 4, 3, coverage=0.8,
# accuracy=(0.5, 0.85), random_state=3), ids relabelled by first appearance)
L_SMALL = np.array([
    [0, 0, -1, -1], [1, 0, 0, -1], [-1, -1, 2, 2], [0, -1, 0, 1], [-1, 2, 2, -1],
    [0, 2, -1, 2], [1, 0, 1, 2], [2, 2, 2, -1], [-1, -1, 2, 1], [1, 0, 1, 1],
    [1, -1, 0, 2], [1, 0, 1, 1], [2, -1, -1, 0], [2, 2, 0, 2], [1, 0, -1, 1],
    [2, 0, 2, -1], [0, 2, -1, -1], [1, 1, 1, 1], [1, 1, 0, 1], [0, 0, 1, 0],
    [1, -1, -1, -1], [1, -1, -1, 1], [2, 1, 2, 2], [2, 2, 1, 1], [2, -1, 1, 1],
    [1, 2, -1, 0], [0, 2, -1, 0], [1, 2, 2, -1], [2, 0, 0, 0], [2, 1, -1, 1],
])


def _votes(seed=0, n=240, m=7, k=3):
    L = make_dawid_skene(n, m, k, coverage=0.6, random_state=seed).L.to_dense()
    L[5] = -1  # an all-abstain row
    return L


def _proba(L, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GLAD(random_state=0, **params).fit(L).predict_proba(L)


def _brute_posterior(L, alpha, beta, prior):
    """P(y_i = c | votes) by the model's formula, one item and one vote at a time."""
    n, m = L.shape
    k = prior.shape[0]
    out = np.empty((n, k))
    for i in range(n):
        joint = np.array(prior, dtype=float)
        for c in range(k):
            for j in range(m):
                if L[i, j] < 0:
                    continue
                s = 1.0 / (1.0 + np.exp(-alpha[j] * beta[i]))
                joint[c] *= s if L[i, j] == c else (1.0 - s) / (k - 1)
        out[i] = joint / joint.sum()
    return out


# -- the model's formulas ---------------------------------------------------------------
def test_predict_proba_equals_the_brute_force_posterior_at_median_difficulty():
    L = L_SMALL[:6]
    g = GLAD(class_prior="learned").fit(L_SMALL)
    beta = np.ones(L.shape[0])  # exp(log_difficulty_mean)
    np.testing.assert_allclose(
        g.predict_proba(L), _brute_posterior(L, g.ability_, beta, g.class_prior_), atol=1e-12
    )
    # a new matrix with the same sources: the same formula (inductive)
    L_new = np.array([[2, 2, 2, 2], [0, 1, 2, -1], [-1, -1, -1, 1]])
    np.testing.assert_allclose(
        g.predict_proba(L_new),
        _brute_posterior(L_new, g.ability_, np.ones(3), g.class_prior_),
        atol=1e-12,
    )


def test_log_joint_matches_enumeration_with_item_difficulties_and_repeats():
    # repeated votes (source 0 votes twice on item 0) each contribute their factor
    lm = as_label_matrix((np.array([0, 0, 0, 1, 2]), np.array([0, 0, 1, 1, 0]),
                          np.array([1, 1, 0, 2, 2])), n_classes=3)
    alpha, beta, prior = np.array([0.7, -0.4]), np.array([2.0, 0.5, 1.3]), np.array(
        [0.2, 0.3, 0.5])
    x = alpha[lm.source] * beta[lm.item]
    got = _log_joint(lm, x, np.log(prior))
    want = np.zeros((3, 3))
    for i, c in itertools.product(range(3), range(3)):
        p = prior[c]
        for v in np.flatnonzero(lm.item == i):
            s = expit(alpha[lm.source[v]] * beta[i])
            p *= s if lm.label[v] == c else (1 - s) / 2
        want[i, c] = np.log(p)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_fixed_point_is_a_stationary_point_of_the_m_step():
    """At convergence, one more M-step (hand-written gradient of Q over the votes, and the
    closed-form prior update) does not move the parameters."""
    g = GLAD(class_prior="learned", tol=1e-13, max_iter=3000, m_step_max_iter=200).fit(L_SMALL)
    assert g.converged_
    lm = as_label_matrix(L_SMALL)
    b = -np.log(g.item_difficulty_)
    beta = np.exp(b)
    lj = _log_joint(lm, g.ability_[lm.source] * beta[lm.item], np.log(g.class_prior_))
    q = np.exp(lj - logsumexp(lj, axis=1, keepdims=True))
    grad_a = -(g.ability_ - 1.0)
    grad_b = -(b - 0.0)
    for i, j in zip(*np.nonzero(L_SMALL >= 0), strict=True):
        p = q[i, L_SMALL[i, j]]
        s = expit(g.ability_[j] * beta[i])
        grad_a[j] += (p - s) * beta[i]
        grad_b[i] += (p - s) * g.ability_[j] * beta[i]
    assert np.abs(grad_a).max() < 1e-4 and np.abs(grad_b).max() < 1e-4
    prior = (q.sum(axis=0) + 1.0) / (q.shape[0] + 3.0)  # Dir(1 + s), s = 1
    np.testing.assert_allclose(g.class_prior_, prior, atol=1e-6)


def test_matches_crowd_kit_fixed_point():
    """crowd-kit 1.4.2's GLAD (log-difficulty prior mean 1, uniform prior) run to convergence
    (tol=-inf, n_iter=400, m_step_max_iter=500) on L_SMALL gave these values."""
    ck_alpha = [0.360224, -0.160535, 0.472613, 0.564963]
    ck_log_beta = [0.906145, 0.622759, 1.419347, 0.572015, 0.89725, 0.595264, 0.61932,
                   1.166407]
    ck_proba = [[0.766263, 0.116868, 0.116868], [0.59288, 0.324275, 0.082844],
                [0.003404, 0.003404, 0.993193], [0.730879, 0.227346, 0.041775],
                [0.094339, 0.094339, 0.811323]]
    g = GLAD(class_prior="uniform", log_difficulty_mean=1.0, tol=1e-12, max_iter=2000,
             m_step_max_iter=200).fit(L_SMALL)
    np.testing.assert_allclose(g.ability_, ck_alpha, atol=1e-4)
    np.testing.assert_allclose(-np.log(g.item_difficulty_[:8]), ck_log_beta, atol=1e-4)
    lm = as_label_matrix(L_SMALL)
    x = g.ability_[lm.source] / g.item_difficulty_[lm.item]
    lj = _log_joint(lm, x, np.log(g.class_prior_))
    q = np.exp(lj - logsumexp(lj, axis=1, keepdims=True))
    np.testing.assert_allclose(q[:5], ck_proba, atol=1e-4)


def test_objective_never_decreases_and_attributes():
    L = _votes()
    g = GLAD().fit(L)
    h = g.log_likelihood_history_
    assert h.shape == (g.n_iter_ + 1,) and g.converged_
    assert np.all(np.diff(h) >= -1e-8 * np.abs(h[:-1]))
    assert g.log_likelihood_ == h[-1]
    assert g.ability_.shape == (7,) and g.item_difficulty_.shape == (240,)
    assert (g.item_difficulty_ > 0).all()
    np.testing.assert_allclose(g.class_prior_, np.full(3, 1 / 3))  # "uniform" default
    assert g.item_difficulty_[5] == pytest.approx(1.0)  # no votes: the prior's median


# -- parameter recovery from GLAD's own generative process -------------------------------
def _glad_votes(alpha, log_beta, k, coverage, rng):
    n, m = log_beta.shape[0], alpha.shape[0]
    y = rng.integers(k, size=n)
    right = rng.random((n, m)) < expit(alpha[None, :] * np.exp(log_beta)[:, None])
    wrong = (y[:, None] + rng.integers(1, k, size=(n, m))) % k
    L = np.where(right, y[:, None], wrong)
    L[rng.random((n, m)) > coverage] = -1
    return L, y


def test_parameter_recovery_one_coin_special_case():
    """Equal difficulties (beta = 1) and a tight difficulty prior: the abilities are the
    one-coin logit accuracies, recovered from ~7 votes per item."""
    rng = np.random.default_rng(0)
    alpha = rng.uniform(-0.5, 3.0, size=12)
    L, y = _glad_votes(alpha, np.zeros(3000), 3, 0.6, rng)
    g = GLAD(log_difficulty_std=0.01).fit(L)
    assert np.abs(g.ability_ - alpha).max() < 0.3
    np.testing.assert_allclose(g.item_difficulty_, 1.0, atol=0.01)
    assert np.mean(g.predict(L) == y) > 0.98


def test_parameter_recovery_on_glad_data():
    """Varying difficulties: abilities and difficulties are recovered up to the MAP bias of a
    per-item parameter (with finitely many votes per item the fitted abilities are inflated
    by ~20%, so compare correlations), and the posterior is as good as the oracle's."""
    rng = np.random.default_rng(0)
    n, m, k = 2000, 30, 3
    alpha = rng.uniform(-0.5, 2.0, size=m)
    log_beta = rng.normal(0.0, 0.5, size=n)
    L, y = _glad_votes(alpha, log_beta, k, 0.5, rng)
    g = GLAD().fit(L)
    assert np.corrcoef(g.ability_, alpha)[0, 1] > 0.98
    assert np.corrcoef(-np.log(g.item_difficulty_), log_beta)[0, 1] > 0.5
    oracle = _brute_posterior(L[:500], alpha, np.exp(log_beta[:500]), np.full(k, 1 / k))
    assert np.mean(g.predict(L)[:500] == y[:500]) >= np.mean(oracle.argmax(1) == y[:500]) - 0.01


# -- known labels -------------------------------------------------------------------------
def test_known_labels_are_clamped_but_not_copied():
    # two sources that always vote the wrong class (k = 2) on the labelled items
    rng = np.random.default_rng(1)
    y_true = rng.integers(2, size=200)
    L = np.stack([1 - y_true, 1 - y_true, y_true], axis=1)
    L[rng.random(L.shape) < 0.1] = -1
    y = np.full(200, -1)
    y[:100] = y_true[:100]
    un = GLAD().fit(L)
    semi = GLAD().fit(L, y)
    # unsupervised: the two agreeing sources win (prior: better than chance)
    assert un.ability_[0] > 0 and un.ability_[2] < 0
    # clamped: the known labels say sources 0 and 1 are adversarial
    assert semi.ability_[0] < 0 and semi.ability_[1] < 0 and semi.ability_[2] > 0
    proba = semi.predict_proba(L)
    assert np.mean(proba.argmax(1) == y_true) > 0.95
    # not copied: a labelled item on which every source abstains still gets the prior
    L2 = L.copy()
    L2[0] = -1
    est = GLAD().fit(L2, y)
    np.testing.assert_allclose(est.predict_proba(L2)[0], est.class_prior_)
    # and the fit is the same through fit_predict_proba
    np.testing.assert_allclose(est.fit_predict_proba(L2, y), est.predict_proba(L2), atol=1e-12)


def test_known_labels_inform_the_learned_prior():
    L = np.array([[0, 0], [1, 1], [-1, -1], [-1, -1], [-1, -1]])
    y = np.array([-1, -1, 1, 1, 1])
    g = GLAD(class_prior="learned").fit(L, y)
    assert g.class_prior_[1] > 0.6


# -- validation, warnings -------------------------------------------------------------------
@pytest.mark.parametrize("params", [
    {"ability_std": 0.0}, {"log_difficulty_std": -1.0}, {"class_prior": "empirical"},
    {"max_iter": -1}, {"m_step_max_iter": 0}, {"tol": -1e-3}, {"prior_smoothing": -1.0},
    {"tie_break": "last"}, {"ability_mean": float("nan")}, {"n_classes": 1},
])
def test_bad_parameters_raise(params):
    with pytest.raises(ValueError):
        GLAD(**params).fit(L_SMALL)


@pytest.mark.parametrize("prior", [[0.5, 0.5], [0.5, 0.6, -0.1], [0.2, 0.2, 0.2]])
def test_bad_class_prior_array(prior):
    with pytest.raises(ValueError, match="class_prior"):
        GLAD(class_prior=prior).fit(L_SMALL)


def test_fixed_class_prior_array_is_used():
    g = GLAD(class_prior=[0.2, 0.3, 0.5]).fit(L_SMALL)
    np.testing.assert_allclose(g.class_prior_, [0.2, 0.3, 0.5])


@pytest.mark.parametrize("path", ["fit", "fit_predict_proba", "fit_predict"])
def test_convergence_warning_at_max_iter_points_at_the_caller(path):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        getattr(GLAD(max_iter=1), path)(_votes())
    conv = [w for w in rec if issubclass(w.category, ConvergenceWarning)]
    assert conv and all(w.filename == __file__ for w in conv)
    est = GLAD(max_iter=1)
    with pytest.warns(ConvergenceWarning):
        est.fit(_votes())
    assert not est.converged_ and est.n_iter_ == 1


def test_max_iter_zero_is_the_initial_e_step_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = GLAD(max_iter=0).fit(L_SMALL)
    np.testing.assert_allclose(g.ability_, 1.0)
    assert g.n_iter_ == 0 and g.log_likelihood_history_.shape == (1,)


# -- data shapes ------------------------------------------------------------------------------
def test_all_abstain_rows_and_silent_sources():
    L = _votes(k=2)
    L = np.hstack([L, np.full((L.shape[0], 1), -1)])  # a source that never votes
    g = GLAD().fit(L)
    proba = g.predict_proba(L)
    np.testing.assert_allclose(proba[5], g.class_prior_)
    assert g.ability_[-1] == pytest.approx(1.0)  # keeps the prior mean
    np.testing.assert_allclose(proba, _proba(L[:, :-1]), atol=1e-6)


def test_repeated_votes_count():
    frame = pd.DataFrame({"item": [0, 0, 1, 1, 2, 2, 2], "source": [0, 1, 0, 1, 0, 1, 1],
                          "label": [0, 1, 1, 1, 0, 1, 1]})
    g = GLAD(max_iter=0).fit(frame)
    # item 2: source 1's two votes for class 1 outweigh source 0's one vote for class 0
    p = np.asarray(g.predict_proba(frame))  # a DataFrame in gives a DataFrame out
    s = expit(1.0)
    want = np.array([(1 - s) * s * s, s * (1 - s) * (1 - s)])  # class 1, class 0 reversed
    np.testing.assert_allclose(p[2], want[::-1] / want.sum(), atol=1e-12)


def test_contract_properties():
    L = _votes()
    base = _proba(L)
    assert base.shape == (240, 3) and np.allclose(base.sum(1), 1.0)
    # deterministic, clone, pickle
    est = GLAD(random_state=0).fit(L)
    np.testing.assert_array_equal(clone(est).fit(L).predict_proba(L), est.predict_proba(L))
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict_proba(L), est.predict_proba(L))
    np.testing.assert_allclose(GLAD().fit_predict_proba(L), base, atol=1e-10)
    # permutations of sources, items and classes
    perm = np.random.default_rng(1).permutation(7)
    np.testing.assert_allclose(_proba(L[:, perm]), base, atol=1e-6)
    perm = np.random.default_rng(2).permutation(240)
    np.testing.assert_allclose(_proba(L[perm]), base[perm], atol=1e-6)
    sigma = np.array([2, 0, 1])
    L_s = np.where(L >= 0, sigma[np.maximum(L, 0)], -1)
    np.testing.assert_allclose(_proba(L_s, n_classes=3)[:, sigma], base, atol=1e-6)
    # dense == sparse == long
    np.testing.assert_allclose(_proba(sp.csr_matrix(L + 1), n_classes=3), base, atol=1e-10)
    rows, cols = np.nonzero(L >= 0)
    frame = pd.DataFrame({"item": rows, "source": cols, "label": L[rows, cols]})
    lm = as_label_matrix(frame, n_classes=3)
    np.testing.assert_allclose(_proba(frame, n_classes=3), base[lm.item_ids], atol=1e-6)
    # k = 2
    L2 = _votes(k=2)
    p2 = _proba(L2)
    assert p2.shape == (240, 2) and np.allclose(p2.sum(1), 1.0)


# -- a real crowd dataset -----------------------------------------------------------------------
def test_accuracy_on_snow2008_rte(data_home):
    d = load_shared("snow2008_rte", data_home=data_home)
    g = d.y >= 0
    pred = GLAD().fit(d.L).predict(d.L)
    acc = np.mean(pred[g] == d.y[g])
    assert acc >= 0.92  # majority vote: 0.919 (ties scored 1/2); measured: 0.9275


def test_m_step_reaches_the_maximum_of_q_that_lbfgs_finds():
    """The block coordinate ascent of the M-step (Newton for the abilities, Fisher scoring
    for the difficulties) against scipy's L-BFGS-B run to a tight tolerance on the same Q,
    from the same start and posteriors: the same maximiser, and Q never decreases."""
    from scipy.optimize import minimize

    from wsagg.aggregation.glad import _q_value, m_step

    rng = np.random.default_rng(7)
    L, _ = _glad_votes(rng.normal(1.0, 1.0, 12), rng.normal(0.0, 0.7, 400), 3, 0.5, rng)
    lm = as_label_matrix(L)
    item, src = lm.item, lm.source
    p = rng.uniform(0.05, 0.95, item.shape[0])  # any posteriors of "correct"
    prior = (1.0, 1.0, 0.0, 1.0)
    a0, b0 = np.full(12, 1.0), np.zeros(400)
    a, b, sweeps = m_step(a0, b0, p, item, src, prior, max_sweeps=200)
    assert sweeps < 200  # stopped because Q stopped changing

    def neg_q(theta):
        return -_q_value(theta[:12], theta[12:], p, item, src, prior)

    ref = minimize(neg_q, np.concatenate([a0, b0]), method="L-BFGS-B",
                   options={"maxiter": 20000, "ftol": 1e-15, "gtol": 1e-10})
    # as high a Q (measured: higher by 3e-8, L-BFGS-B stopping at a gradient of 5e-4),
    # the same point to the precision of the two stopping rules, and a small gradient
    assert _q_value(a, b, p, item, src, prior) >= -ref.fun - 1e-9
    np.testing.assert_allclose(a, ref.x[:12], atol=1e-3)
    np.testing.assert_allclose(b, ref.x[12:], atol=1e-3)
    beta = np.exp(b)[item]
    r = p - expit(a[src] * beta)
    assert np.abs(np.bincount(src, r * beta, minlength=12) - (a - 1.0)).max() < 1e-3
    assert np.abs(np.bincount(item, r * a[src] * beta, minlength=400) - b).max() < 1e-3
    previous = _q_value(a0, b0, p, item, src, prior)
    for cap in (1, 2, 3, 5):  # every sweep increases Q
        a_c, b_c, _ = m_step(a0, b0, p, item, src, prior, max_sweeps=cap)
        q_c = _q_value(a_c, b_c, p, item, src, prior)
        assert q_c >= previous - 1e-12
        previous = q_c
