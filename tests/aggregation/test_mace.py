"""MACE (Hovy et al. 2013): brute-force posterior, EM and VB fixed points, the ELBO against
the exact evidence, crowd-kit's fixed points, parameter recovery, clamping, restarts,
errors, warnings and the aggregator contract."""

from __future__ import annotations

import itertools
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.special import digamma, gammaln
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from wsagg.aggregation.mace import MACE
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
        return MACE(random_state=0, **params).fit(L).predict_proba(L)


def _enumerate(L, spam, xi, prior, know=None):
    """Posterior over T by summing the joint over T and every spamming indicator, and the
    expected (known, spam) counts per source and spam counts per (source, class). ``know``
    (default ``1 - spam``) and ``spam`` may be VB's sub-normalised weights."""
    know = 1 - spam if know is None else know
    n, m = L.shape
    k = prior.shape[0]
    post = np.zeros((n, k))
    n_know, n_spam, n_xi = np.zeros(m), np.zeros(m), np.zeros((m, k))
    for i in range(n):
        js = np.flatnonzero(L[i] >= 0)
        joint = {}
        for c in range(k):
            for s in itertools.product([0, 1], repeat=js.size):  # 1 = spamming
                p = prior[c]
                for j, sj in zip(js, s, strict=True):
                    l = L[i, j]
                    p *= spam[j] * xi[j, l] if sj else know[j] * (l == c)
                joint[c, s] = p
        z = sum(joint.values())
        for (c, s), p in joint.items():
            post[i, c] += p / z
            for j, sj in zip(js, s, strict=True):
                if sj:
                    n_spam[j] += p / z
                    n_xi[j, L[i, j]] += p / z
                else:
                    n_know[j] += p / z
    return post, n_know, n_spam, n_xi


# -- the model's formulas ---------------------------------------------------------------
def test_predict_proba_equals_enumeration_over_truth_and_spamming():
    g = MACE(method="em", class_prior="learned").fit(L_SMALL)
    L_new = np.array([[2, 2, 2, 2], [0, 1, 2, -1], [-1, -1, -1, 1], [1, 1, -1, 0]])
    for L in (L_SMALL[:6], L_new):
        want = _enumerate(L, g.spam_probability_, g.spam_distribution_, g.class_prior_)[0]
        np.testing.assert_allclose(g.predict_proba(L), want, atol=1e-12)
    np.testing.assert_allclose(g.competence_, 1 - g.spam_probability_)


def test_em_fixed_point_is_one_more_hand_written_em_update():
    s = 0.01
    g = MACE(method="em", smoothing=s, class_prior="learned", tol=1e-14, max_iter=5000).fit(
        L_SMALL)
    assert g.converged_
    post, n_know, n_spam, n_xi = _enumerate(
        L_SMALL, g.spam_probability_, g.spam_distribution_, g.class_prior_)
    np.testing.assert_allclose(g.spam_probability_, (n_spam + s) / (n_know + n_spam + 2 * s),
                               atol=1e-6)
    np.testing.assert_allclose(
        g.spam_distribution_, (n_xi + s) / (n_xi.sum(1, keepdims=True) + 3 * s), atol=1e-6)
    np.testing.assert_allclose(g.class_prior_, (post.sum(0) + s) / (30 + 3 * s), atol=1e-6)


def test_vb_fixed_point_is_one_more_hand_written_vb_update():
    a = b = 0.5
    gam = 10.0
    g = MACE(tol=1e-14, max_iter=5000).fit(L_SMALL)
    assert g.converged_
    # the E-step weights exp(E log .) of the fitted factors
    w_spam, w_know, w_xi = (np.exp(g._weights.log_spam), np.exp(g._weights.log_know),
                            np.exp(g._weights.log_xi))
    post, n_know, n_spam, n_xi = _enumerate(L_SMALL, w_spam, w_xi, np.full(3, 1 / 3), w_know)
    np.testing.assert_allclose(g.predict_proba(L_SMALL), post, atol=1e-10)
    # the VB update of the factors from these counts gives back the same weights and means
    tot = a + b + n_know + n_spam
    np.testing.assert_allclose(np.log(w_spam), digamma(a + n_spam) - digamma(tot), atol=1e-6)
    np.testing.assert_allclose(np.log(w_know), digamma(b + n_know) - digamma(tot), atol=1e-6)
    px = gam + n_xi
    np.testing.assert_allclose(
        np.log(w_xi), digamma(px) - digamma(px.sum(1, keepdims=True)), atol=1e-6)
    np.testing.assert_allclose(g.spam_probability_, (a + n_spam) / tot, atol=1e-6)
    np.testing.assert_allclose(g.spam_distribution_, px / px.sum(1, keepdims=True), atol=1e-6)


def _beta_kl(p, q, grid=20000):
    """KL(Beta(p) || Beta(q)) by the midpoint rule (p, q: pairs of parameters > 1/2)."""
    u = (np.arange(grid) + 0.5) * (np.pi / 2) / grid
    t = np.sin(u) ** 2  # dt = sin(2u) du, which also tames the endpoint singularities

    def logpdf(ab):
        return ((ab[0] - 1) * np.log(t) + (ab[1] - 1) * np.log1p(-t)
                - (gammaln(ab[0]) + gammaln(ab[1]) - gammaln(ab[0] + ab[1])))

    lp = logpdf(p)
    return float(np.sum(np.exp(lp) * (lp - logpdf(q)) * np.sin(2 * u)) * (np.pi / 2) / grid)


def test_elbo_is_its_definition_and_a_lower_bound_on_the_exact_evidence():
    """One source, k = 2. (1) The ELBO from its definition -- expected complete-data log
    joint under q(T, S) (enumerated) and the Beta factors, plus the entropy of q(T, S), minus
    the KLs (by quadrature) -- equals ``elbo_``. (2) The evidence, the likelihood integrated
    over theta ~ Beta(1/2, 1/2) (theta = sin^2 u makes that measure (2/pi) du) and
    xi_0 ~ Beta(10, 10) by quadrature, bounds it from above."""
    L = np.array([[0], [0], [1], [0], [1], [0], [0], [0]])
    lab = L[:, 0]
    g = MACE(tol=1e-14, max_iter=10000).fit(L)
    w = g._weights
    _, n_know, n_spam, n_xi = _enumerate(L, np.exp(w.log_spam), np.exp(w.log_xi),
                                         np.full(2, 0.5), np.exp(w.log_know))
    f_t = (0.5 + n_know[0], 0.5 + n_spam[0])  # q(theta): Beta(know, spam)
    f_x = (10 + n_xi[0, 0], 10 + n_xi[0, 1])  # q(xi_0)
    e_log_t = digamma(f_t[0]) - digamma(sum(f_t))
    e_log_s = digamma(f_t[1]) - digamma(sum(f_t))
    e_log_x = digamma(np.array(f_x)) - digamma(sum(f_x))
    elbo = 0.0
    for l in lab:
        # q(T, S) of the item: S = 0 (knows) only with T = l
        terms = {(l, 0): np.log(0.5) + e_log_t}
        for c in (0, 1):
            terms[c, 1] = np.log(0.5) + e_log_s + e_log_x[l]
        z = np.logaddexp.reduce(list(terms.values()))
        for t in terms.values():
            qts = np.exp(t - z)
            elbo += qts * t - qts * np.log(qts)  # E log joint + entropy
    elbo -= _beta_kl(f_t, (0.5, 0.5)) + _beta_kl(f_x, (10.0, 10.0))
    assert g.elbo_ == pytest.approx(elbo, abs=1e-6)

    u = (np.arange(2000) + 0.5) * (np.pi / 2) / 2000
    theta = np.sin(u) ** 2  # competence
    x = (np.arange(2000) + 0.5) / 2000  # xi_0
    log_beta_pdf = 9 * np.log(x) + 9 * np.log(1 - x) - (2 * gammaln(10) - gammaln(20))
    T, X = np.meshgrid(theta, x, indexing="ij")
    loglik = np.zeros_like(T)
    for c in lab:  # P(vote l) = sum_T 1/2 ((1 - theta) xi_l + theta [l = T])
        loglik += np.log((1 - T) * (X if c == 0 else 1 - X) + T / 2)
    log_evidence = np.log(np.mean(np.exp(loglik + log_beta_pdf[None, :])))
    assert g.elbo_ <= log_evidence
    # the mean-field gap (theta and xi are strongly dependent a posteriori) is finite
    assert g.elbo_ > log_evidence - 2.0


def test_matches_crowd_kit_fixed_points():
    """crowd-kit 1.4.2's MACE (n_restarts=1, n_iter=2000, random_state=0) on L_SMALL."""
    ck = {
        "vb": [[0.71588, 0.14206, 0.14206], [0.680387, 0.216363, 0.10325],
               [0.010283, 0.010283, 0.979435], [0.216587, 0.755598, 0.027815],
               [0.109033, 0.109033, 0.781934], [0.039086, 0.016017, 0.944897]],
        "em": [[0.813251, 0.093374, 0.093374], [0.694999, 0.207265, 0.097735],
               [0.014971, 0.014971, 0.970059], [0.76168, 0.195684, 0.042636],
               [0.068843, 0.068843, 0.862313], [0.189304, 0.04047, 0.770226]],
    }
    ck_spam_em = [0.651309, 0.718578, 0.451286, 0.281911]
    for method, want in ck.items():
        g = MACE(method=method, smoothing=0.01 / 3, tol=1e-14, max_iter=5000).fit(L_SMALL)
        np.testing.assert_allclose(g.predict_proba(L_SMALL)[:6], want, atol=1e-4)
    np.testing.assert_allclose(g.spam_probability_, ck_spam_em, atol=1e-4)


def test_objective_never_decreases_and_attributes():
    L = _votes()
    for method in ("vb", "em"):
        g = MACE(method=method, class_prior="learned").fit(L)
        h = g.elbo_history_
        assert h.shape == (g.n_iter_ + 1,) and g.converged_
        assert np.all(np.diff(h) >= -1e-9 * np.abs(h[:-1]))
        assert g.elbo_ == h[-1] and g.restart_elbos_.shape == (1,)
        assert g.spam_probability_.shape == (7,) and g.spam_distribution_.shape == (7, 3)
        np.testing.assert_allclose(g.spam_distribution_.sum(1), 1.0)
        np.testing.assert_allclose(g.class_prior_.sum(), 1.0)
    np.testing.assert_allclose(MACE().fit(L).class_prior_, np.full(3, 1 / 3))


# -- parameter recovery from MACE's own generative process -------------------------------
def test_parameter_recovery_on_mace_data():
    rng = np.random.default_rng(0)
    n, m, k = 4000, 8, 3
    theta = rng.uniform(0.2, 0.9, size=m)  # competence
    xi = rng.dirichlet(np.ones(k), size=m)
    y = rng.integers(k, size=n)
    spam = rng.random((n, m)) > theta[None, :]
    u = rng.random((n, m))[..., None] > np.cumsum(xi, axis=1)[None, :, :]
    spam_label = u.sum(axis=2)
    L = np.where(spam, spam_label, y[:, None])
    L[rng.random((n, m)) > 0.6] = -1
    for method in ("vb", "em"):
        g = MACE(method=method).fit(L)
        assert np.abs(g.competence_ - theta).max() < 0.05
        assert np.abs(g.spam_distribution_ - xi).max() < 0.1
        assert np.mean(g.predict(L) == y) > 0.9
    oracle = _enumerate(L[:200], 1 - theta, xi, np.full(k, 1 / k))[0]
    assert np.mean(g.predict(L[:200]) == y[:200]) >= np.mean(oracle.argmax(1) == y[:200]) - 0.01


# -- restarts -----------------------------------------------------------------------------------
def test_restarts_keep_the_best_objective_and_are_deterministic():
    L = _votes(k=2)
    a = MACE(n_restarts=4, random_state=3).fit(L)
    b = MACE(n_restarts=4, random_state=3).fit(L)
    np.testing.assert_array_equal(a.restart_elbos_, b.restart_elbos_)
    np.testing.assert_array_equal(a.predict_proba(L), b.predict_proba(L))
    assert a.restart_elbos_.shape == (4,)
    assert a.elbo_ >= a.restart_elbos_.max() - 1e-6 * L.shape[0]
    # the random starts are different starts
    assert np.unique(np.round(a.restart_elbos_, 12)).size > 1
    # first run: the deterministic start (same as n_restarts=1)
    one = MACE(n_restarts=1).fit(L)
    assert a.restart_elbos_[0] == pytest.approx(one.elbo_, rel=1e-12)


# -- known labels -------------------------------------------------------------------------
def test_known_labels_are_clamped_but_not_copied():
    rng = np.random.default_rng(1)
    y_true = rng.integers(2, size=300)
    # sources 0 and 1 copy a spammer's always-1 answer; source 2 is right 80% of the time
    L = np.stack([np.ones(300, int), np.ones(300, int),
                  np.where(rng.random(300) < 0.8, y_true, 1 - y_true)], axis=1)
    y = np.full(300, -1)
    y[:150] = y_true[:150]
    semi = MACE().fit(L, y)
    assert semi.competence_[2] > semi.competence_[0]
    assert semi.spam_distribution_[0, 1] > 0.9
    # not copied: a known item whose votes say otherwise keeps its vote-based posterior
    proba = semi.predict_proba(L)
    wrong = np.flatnonzero((y >= 0) & (L[:, 2] != y))
    assert wrong.size and (proba[wrong].argmax(1) != y[wrong]).all()
    np.testing.assert_allclose(semi.fit_predict_proba(L, y), proba, atol=1e-12)
    # clamping changes the fit
    assert not np.allclose(MACE(max_iter=5000).fit(L).competence_, semi.competence_)


# -- validation, warnings -------------------------------------------------------------------
@pytest.mark.parametrize("params", [
    {"method": "gibbs"}, {"class_prior": "empirical"}, {"spam_prior": 0.0},
    {"competence_prior": -1.0}, {"strategy_prior": 0.0}, {"smoothing": -0.1},
    {"n_restarts": 0}, {"max_iter": -1}, {"tol": -1.0}, {"tie_break": "last"},
    {"n_classes": 1},
])
def test_bad_parameters_raise(params):
    with pytest.raises(ValueError):
        MACE(**params).fit(L_SMALL)


@pytest.mark.parametrize("prior", [[0.5, 0.5], [0.5, 0.6, -0.1], [0.2, 0.2, 0.2]])
def test_bad_class_prior_array(prior):
    with pytest.raises(ValueError, match="class_prior"):
        MACE(class_prior=prior).fit(L_SMALL)


def test_fixed_class_prior_array_is_used():
    g = MACE(class_prior=[0.2, 0.3, 0.5]).fit(L_SMALL)
    np.testing.assert_allclose(g.class_prior_, [0.2, 0.3, 0.5])


@pytest.mark.parametrize("path", ["fit", "fit_predict_proba", "fit_predict"])
def test_convergence_warning_at_max_iter_points_at_the_caller(path):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        getattr(MACE(max_iter=1), path)(_votes())
    conv = [w for w in rec if issubclass(w.category, ConvergenceWarning)]
    assert conv and all(w.filename == __file__ for w in conv)
    est = MACE(max_iter=1)
    with pytest.warns(ConvergenceWarning):
        est.fit(_votes())
    assert not est.converged_ and est.n_iter_ == 1


# -- data shapes ------------------------------------------------------------------------------
def test_all_abstain_rows_and_silent_sources():
    L = _votes(k=2)
    L = np.hstack([L, np.full((L.shape[0], 1), -1)])  # a source that never votes
    g = MACE(class_prior="learned").fit(L)
    proba = g.predict_proba(L)
    np.testing.assert_allclose(proba[5], g.class_prior_)
    assert g.spam_probability_[-1] == pytest.approx(0.5)  # the Beta(0.5, 0.5) prior mean
    np.testing.assert_allclose(g.spam_distribution_[-1], 0.5)
    np.testing.assert_allclose(proba, _proba(L[:, :-1], class_prior="learned"), atol=1e-8)


def test_repeated_votes_count():
    frame = pd.DataFrame({"item": [0, 0, 1, 1, 1], "source": [0, 1, 0, 1, 1],
                          "label": [0, 1, 0, 1, 1]})
    g = MACE(method="em").fit(frame)
    want = np.zeros((2, 2))
    for i, c in itertools.product(range(2), range(2)):
        p = 0.5
        for j, lab in [(0, 0), (1, 1)] + ([(1, 1)] if i == 1 else []):
            p *= g.spam_probability_[j] * g.spam_distribution_[j, lab] + g.competence_[j] * (
                lab == c)
        want[i, c] = p
    np.testing.assert_allclose(g.predict_proba(frame), want / want.sum(1, keepdims=True),
                               atol=1e-12)


def test_contract_properties():
    L = _votes()
    base = _proba(L)
    assert base.shape == (240, 3) and np.allclose(base.sum(1), 1.0)
    est = MACE(n_restarts=2, random_state=0).fit(L)
    np.testing.assert_array_equal(clone(est).fit(L).predict_proba(L), est.predict_proba(L))
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict_proba(L), est.predict_proba(L))
    np.testing.assert_allclose(MACE().fit_predict_proba(L), base, atol=1e-10)
    perm = np.random.default_rng(1).permutation(7)
    np.testing.assert_allclose(_proba(L[:, perm]), base, atol=1e-6)
    perm = np.random.default_rng(2).permutation(240)
    np.testing.assert_allclose(_proba(L[perm]), base[perm], atol=1e-6)
    sigma = np.array([2, 0, 1])
    L_s = np.where(L >= 0, sigma[np.maximum(L, 0)], -1)
    np.testing.assert_allclose(_proba(L_s, n_classes=3)[:, sigma], base, atol=1e-6)
    np.testing.assert_allclose(_proba(sp.csr_matrix(L + 1), n_classes=3), base, atol=1e-10)
    rows, cols = np.nonzero(L >= 0)
    frame = pd.DataFrame({"item": rows, "source": cols, "label": L[rows, cols]})
    lm = as_label_matrix(frame, n_classes=3)
    np.testing.assert_allclose(_proba(frame, n_classes=3), base[lm.item_ids], atol=1e-6)
    p2 = _proba(_votes(k=2))
    assert p2.shape == (240, 2) and np.allclose(p2.sum(1), 1.0)


# -- a real crowd dataset -----------------------------------------------------------------------
def test_accuracy_on_zhou2012_web(data_home):
    d = load_shared("zhou2012_web", data_home=data_home)
    g = d.y >= 0
    pred = MACE().fit(d.L).predict(d.L)
    assert np.mean(pred[g] == d.y[g]) >= 0.83  # majority vote 0.777; measured 0.838
