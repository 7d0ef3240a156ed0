"""Tests of wsagg.prior: estimation, the Bayes swap, post-hoc corrections, the guard."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import softmax

from wsagg import prior as P
from wsagg.aggregation.majority import MajorityVote
from wsagg.datasets import make_dawid_skene


def _dirichlet(n, k, seed=0, conc=1.0):
    return np.random.default_rng(seed).dirichlet(np.full(k, conc), size=n)


# ------------------------------------------------------------------------------- swap


def test_correct_matches_formula():
    q = _dirichlet(5, 3)
    a, b = np.array([0.5, 0.3, 0.2]), np.array([0.1, 0.1, 0.8])
    expect = q * b / a
    expect /= expect.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(P.correct(q, a, b), expect, rtol=1e-12)


def test_correct_identity_and_composition():
    q = _dirichlet(50, 4, seed=1)
    a, b, c = (_dirichlet(1, 4, seed=s)[0] for s in (2, 3, 4))
    np.testing.assert_allclose(P.correct(q, a, a), q, atol=1e-12)
    np.testing.assert_allclose(P.correct(P.correct(q, a, b), b, c), P.correct(q, a, c),
                               atol=1e-12)


def test_correct_exact_for_factorised_posterior():
    # q ∝ pi_s * lik  ->  swap gives exactly pi_t * lik normalised
    rng = np.random.default_rng(0)
    lik = rng.random((20, 3))
    pi_s, pi_t = np.array([0.7, 0.2, 0.1]), np.array([0.2, 0.3, 0.5])
    q = pi_s * lik / (pi_s * lik).sum(1, keepdims=True)
    want = pi_t * lik / (pi_t * lik).sum(1, keepdims=True)
    np.testing.assert_allclose(P.correct(q, pi_s, pi_t), want, atol=1e-12)


def test_correct_handles_zero_entries_and_one_hot():
    q = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    out = P.correct(q, [0.8, 0.1, 0.1], "uniform")
    np.testing.assert_allclose(out[0], [1, 0, 0])
    np.testing.assert_allclose(out[1], [0, 0.5, 0.5])


dist_rows = st.integers(2, 6).flatmap(
    lambda k: st.tuples(
        arrays(np.float64, st.tuples(st.integers(1, 8), st.just(k)),
               elements=st.floats(0.01, 1.0)),
        arrays(np.float64, (k,), elements=st.floats(0.01, 1.0)),
        arrays(np.float64, (k,), elements=st.floats(0.01, 1.0)),
    )
)


@settings(max_examples=60, deadline=None)
@given(dist_rows)
def test_property_outputs_are_distributions_and_relabel_invariant(data):
    raw, a, b = data
    q = raw / raw.sum(1, keepdims=True)
    a, b = a / a.sum(), b / b.sum()
    out = P.correct(q, a, b)
    assert np.all(out >= 0)
    np.testing.assert_allclose(out.sum(1), 1.0, atol=1e-12)
    perm = np.random.default_rng(int(q.shape[1])).permutation(q.shape[1])
    np.testing.assert_allclose(P.correct(q[:, perm], a[perm], b[perm]), out[:, perm],
                               atol=1e-12)
    p2p = P.prior2posterior(q, target_prior=b)
    np.testing.assert_allclose(p2p.sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(P.prior2posterior(q[:, perm], target_prior=b[perm]),
                               p2p[:, perm], atol=1e-12)


def test_prior_corrector_transformer():
    q = _dirichlet(100, 3, seed=5)
    pc = P.PriorCorrector(source_prior=[0.5, 0.25, 0.25], target_prior="uniform").fit(q)
    out = pc.transform(q)
    np.testing.assert_allclose(out, P.correct(q, [0.5, 0.25, 0.25], "uniform"))
    np.testing.assert_allclose(pc.inverse_transform(out), q, atol=1e-12)
    ident = P.PriorCorrector(source_prior="mean", target_prior="source").fit_transform(q)
    np.testing.assert_allclose(ident, q, atol=1e-12)
    agg = MajorityVote(prior="uniform").fit(np.array([[0, 1], [1, 1], [0, -1]]))
    pc2 = P.PriorCorrector(source_prior=agg, target_prior=[0.9, 0.1]).fit(q[:, :2] /
                                                                           q[:, :2].sum(1)[:, None])
    np.testing.assert_allclose(pc2.source_prior_, [0.5, 0.5])


# ------------------------------------------------------------------------------- estimation


def _shifted_posteriors(n, pi_src, pi_tgt, seed=0, sep=2.0, mu_seed=None):
    """Gaussian class-conditionals; posteriors computed (exactly) under pi_src; items drawn
    under pi_tgt. ``mu_seed`` fixes the class means independently of the sample."""
    rng = np.random.default_rng(seed)
    k = len(pi_src)
    mu_rng = rng if mu_seed is None else np.random.default_rng(mu_seed)
    mu = mu_rng.normal(size=(k, 2)) * sep
    y = rng.choice(k, size=n, p=pi_tgt)
    x = mu[y] + rng.normal(size=(n, 2))
    loglik = -0.5 * ((x[:, None, :] - mu[None]) ** 2).sum(-1)
    return softmax(loglik + np.log(pi_src), axis=1), y


def test_saerens_em_recovers_shifted_prior():
    pi_src = np.array([0.25, 0.25, 0.25, 0.25])
    pi_tgt = np.array([0.6, 0.25, 0.1, 0.05])
    q, _ = _shifted_posteriors(20000, pi_src, pi_tgt, seed=3, sep=1.0)
    est, adapted, n_iter = P.saerens_em(q, pi_src)
    assert np.max(np.abs(est - pi_tgt)) < 0.02
    assert n_iter > 1
    np.testing.assert_allclose(adapted.mean(0), est, atol=1e-6)  # EM fixed point
    # the naive mean posterior stays biased towards the source prior
    assert np.max(np.abs(q.mean(0) - pi_tgt)) > 0.05
    np.testing.assert_allclose(P.estimate_prior(q, "em", source_prior="uniform"), est,
                               atol=1e-6)


def test_bbse_recovers_shifted_prior():
    pi_src = np.array([0.4, 0.4, 0.2])
    pi_tgt = np.array([0.1, 0.3, 0.6])
    # labeled source sample and unlabeled target sample share the class means
    qv, yv = _shifted_posteriors(20000, pi_src, pi_src, seed=1, sep=1.5, mu_seed=9)
    qt, _ = _shifted_posteriors(20000, pi_src, pi_tgt, seed=2, sep=1.5, mu_seed=9)
    est = P.bbse(qv, yv, qt)
    assert np.max(np.abs(est - pi_tgt)) < 0.03
    assert np.max(np.abs(qt.mean(0) - pi_tgt)) > 0.05  # the naive estimate is off
    np.testing.assert_allclose(P.estimate_prior(qt, "bbse", val_proba=qv, y=yv), est)
    soft = P.bbse(qv, yv, qt, soft=True)
    assert np.max(np.abs(soft - pi_tgt)) < 0.03


def test_estimate_prior_sources():
    q = _dirichlet(30, 3, seed=2)
    np.testing.assert_allclose(P.estimate_prior(q), q.mean(0))
    np.testing.assert_allclose(P.estimate_prior(np.array([0, 0, 1, -1, 2]), "counts",
                                                n_classes=3), [0.5, 0.25, 0.25])
    np.testing.assert_allclose(P.estimate_prior(np.array([0, 0]), "counts", n_classes=3,
                                                smoothing=1.0), [0.6, 0.2, 0.2])
    ds = make_dawid_skene(200, 5, 3, random_state=0)
    mv = MajorityVote().fit(ds.L)
    np.testing.assert_allclose(P.estimate_prior(mv), mv.class_prior_)
    with pytest.raises(ValueError, match="fit it first"):
        P.estimate_prior(MajorityVote())
    with pytest.raises(ValueError, match="needs source_prior"):
        P.estimate_prior(q, "em")
    with pytest.raises(ValueError, match="method must be"):
        P.estimate_prior(q, "magic")


# ------------------------------------------------------------------------------- post hoc


def test_logit_adjust_formula_and_p2p():
    z = np.random.default_rng(0).normal(size=(6, 3))
    pi = np.array([0.7, 0.2, 0.1])
    np.testing.assert_allclose(P.logit_adjust(z, pi, tau=0.5),
                               z - 0.5 * np.log(pi) + 0.5 * np.log(1 / 3))
    # P2P = logit adjustment by the mean posterior
    p = softmax(z, axis=1)
    eff = p.mean(0)
    np.testing.assert_allclose(P.prior2posterior(p), softmax(z - np.log(eff), axis=1),
                               atol=1e-12)
    np.testing.assert_allclose(P.prior2posterior(z, log_input=True),
                               softmax(z - np.log(eff), axis=1), atol=1e-12)


def test_p2p_removes_a_known_bias():
    # balanced truth; a model whose logits carry an extra log-prior bias
    pi = np.array([0.8, 0.15, 0.05])
    q, y = _shifted_posteriors(30000, np.full(3, 1 / 3), np.full(3, 1 / 3), seed=4)
    biased = P.correct(q, np.full(3, 1 / 3), pi)
    fixed = P.prior2posterior(biased)
    # one P2P step moves the mean posterior most of the way back to uniform ...
    gap_before = np.abs(biased.mean(0) - 1 / 3).max()
    gap_after = np.abs(fixed.mean(0) - 1 / 3).max()
    assert gap_after < 0.7 * gap_before
    # ... and recovers accuracy on the balanced data
    assert (fixed.argmax(1) == y).mean() > (biased.argmax(1) == y).mean() + 0.02


# ------------------------------------------------------------------------------- guard


def test_double_correction_warns_when_detectable():
    # soft labels made under a uniform prior on a long-tailed pool
    rng = np.random.default_rng(0)
    pi_pool = np.array([0.9, 0.1])
    q, y = _shifted_posteriors(5000, np.array([0.5, 0.5]), pi_pool, seed=6, sep=0.5)
    counts = np.bincount(y, minlength=2) / y.shape[0]
    with pytest.warns(P.DoubleCorrectionWarning, match="double prior correction"):
        assert P.check_double_correction(q, counts)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not P.check_double_correction(q, q.mean(0))
    del rng


# ------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("proba", "match"),
    [
        (np.array([[0.5, 0.6]]), "sum to 1"),
        (np.array([[1.2, -0.2]]), "negative"),
        (np.array([[np.nan, 1.0]]), "NaN"),
        (np.array([0.5, 0.5]), "2-D"),
        (np.ones((2, 1)), "2 classes"),
    ],
)
def test_bad_proba_errors(proba, match):
    with pytest.raises(ValueError, match=match):
        P.correct(proba, [0.5, 0.5], "uniform")


@pytest.mark.parametrize(
    ("prior", "match"),
    [
        ([0.0, 1.0], "probability 0"),
        ([0.3, 0.3], "sum to 1"),
        ([-0.5, 1.5], "negative"),
        ([0.2, 0.3, 0.5], "3 entries"),
        ([np.nan, 1.0], "NaN"),
        ("zipf", "'uniform'"),
    ],
)
def test_bad_prior_errors(prior, match):
    with pytest.raises(ValueError, match=match):
        P.correct(np.array([[0.5, 0.5]]), prior, "uniform")


def test_import_wsagg_prior_does_not_import_torch():
    code = "import wsagg, wsagg.prior, sys; assert 'torch' not in sys.modules, 'torch'"
    subprocess.run([sys.executable, "-c", code], check=True)
