"""Tests of MatrixCompletion (Snorkel's label model): moments, loss and gradient, agreement
with Snorkel, recovery, known labels, class balance, dependencies, errors, real data."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import InvalidParameterError

from wsagg.aggregation.matrix_completion import MatrixCompletion, _Loss, _mask, _moments
from wsagg.datasets import load_shared, make_dawid_skene
from wsagg.labels import as_label_matrix


def _decode(text: str) -> np.ndarray:
    """Rows of a label matrix written as digits, ``.`` for an abstain."""
    return np.array([[-1 if ch == "." else int(ch) for ch in row] for row in text.split()])


def _true_mu(d) -> np.ndarray:
    """``(m, k, k)``: ``P(lambda_j = l | Y = c) = coverage_j * confusion[j, c, l]``."""
    return d.coverage[:, None, None] * np.transpose(d.confusion, (0, 2, 1))


# Snorkel 0.10.0: LabelModel(cardinality=k, verbose=False).fit(L, seed=0, n_epochs=20000,
# lr=0.01) on these matrices (make_dawid_skene(150, 5, k, coverage=0.8, random_state=3));
# 40000 epochs give the same mu, so these are Snorkel's converged float32 solutions.
L2 = '''
11010 .1111 0101. 1.001 .101. 10100 .1101 0.111 11010 00..0 0.01. 001.0 00000 .1100
00100 ..100 11111 11111 00001 ...00 0.101 00100 00000 1101. 10100 10100 00100 0110.
01111 010.0 1.1.1 00110 111.1 00.00 0111. 0001. 1.... 1.000 000.0 01011 1..00 11111
10101 011.1 01.10 1.111 00000 00000 0.0.0 00.00 00010 000.0 1.11. 00000 .1..1 1.101
1111. .1.11 0.100 01110 1110. 00011 1001. 11.11 1110. 110.1 11111 11111 00000 11101
.00.0 .000. 11.10 11111 00.0. 11111 .1011 0..00 .0000 11101 .1.11 00100 0.000 0.000
00010 0.110 11111 11111 .1010 .0.10 00... 00001 .1011 11.0. 0.001 00010 1..11 1111.
0.100 00000 0.010 01000 .111. 11111 10011 .0000 0110. .1... ..111 01101 00... 01.1.
001.1 11011 0.010 01.01 1.110 1111. 00001 0..11 000.0 .0000 0001. 1.1.1 1.000 1010.
1001. 11011 .0.0. 01100 00000 1111. 101.1 10.11 00..0 00100 110.1 11011 01.01 000.0
11.01 .1111 10100 .0.0. 001.0 11111 00110 11011 00011 .001.
'''
MU2 = np.array([[0.724115, 0.197521],
       [0.126759, 0.623297],
       [0.691352, 0.083421],
       [0.083057, 0.735287],
       [0.521631, 0.264472],
       [0.289899, 0.566476],
       [0.56137 , 0.23385 ],
       [0.227981, 0.653927],
       [0.74072 , 0.09234 ],
       [0.110588, 0.645485]])
L3 = '''
111.. 12.1. 0.1.0 00100 00000 0.000 00.00 000.0 11111 0..20 .2122 22212 1.1.1 .2222
00022 2...2 22020 2102. 111.1 22202 22022 1011. 12222 11101 11.11 1111. .0.00 .000.
20122 12... 22221 22222 .1.01 00100 ..1.1 22222 .212. 11112 11101 0.10. 2.100 00.00
2..00 20121 .2010 .1.11 20002 00020 .2.22 12102 11011 0.002 11111 2.222 111.1 0.22.
00000 0.000 .222. 11.11 22222 .0000 00.0. .2.20 .2222 0.102 00022 21.2. 00200 12222
00210 2.... 2211. 2.020 101.2 2212. 0.2.. .0000 11111 20000 0..10 2.122 2220. 12222
.11.1 02.20 20.00 222.. 22222 02202 11.1. 2000. 22.02 2202. 00000 00.00 102.. .2222
100.0 .0000 111.2 01111 10020 212.2 01111 .2222 02000 2..22 12... ..211 22222 22222
1..02 00022 10.0. 22.10 20..2 1..11 .0100 2222. 12111 22.02 10000 110.1 .0.00 .2.20
11.11 00000 00.00 010.. 0000. 00.11 11.1. 11.11 12011 011.. .1111 .2111 00.02 00000
.222. 0.200 02200 10000 111.1 00000 020.. 10.01 0000. 22.22
'''
MU3 = np.array([[0.629845, 0.135106, 0.103333],
       [0.099618, 0.622297, 0.098111],
       [0.129084, 0.079439, 0.553772],
       [0.769394, 0.110701, 0.067078],
       [0.001   , 0.633492, 0.009384],
       [0.047643, 0.149609, 0.754144],
       [0.553252, 0.106687, 0.131701],
       [0.11354 , 0.515644, 0.116926],
       [0.043659, 0.049141, 0.548076],
       [0.771885, 0.12474 , 0.147483],
       [0.027333, 0.518725, 0.051379],
       [0.113866, 0.039791, 0.717716],
       [0.743687, 0.030193, 0.116417],
       [0.001   , 0.641904, 0.001   ],
       [0.113614, 0.091096, 0.627725]])


# ------------------------------------------------------------------ moments, loss, gradient
def test_moments_by_hand():
    L = np.array([[0, 1, -1], [1, 1, 0], [-1, -1, -1], [0, -1, 1]])
    O, first, coverage = _moments(as_label_matrix(L))
    n, m, k = 4, 3, 2
    onehot = np.zeros((n, m * k))
    for i, j in itertools.product(range(n), range(m)):
        if L[i, j] >= 0:
            onehot[i, j * k + L[i, j]] = 1.0
    np.testing.assert_allclose(O, onehot.T @ onehot / n)
    np.testing.assert_allclose(first, onehot.sum(axis=0) / n)
    np.testing.assert_allclose(coverage, [0.75, 0.5, 0.5])
    # a repeated vote counts twice in the moments, once in the coverage
    frame = pd.DataFrame({"item": [0, 0, 0, 1], "source": [0, 0, 1, 2], "label": [1, 1, 0, 0]})
    O2, first2, cov2 = _moments(as_label_matrix(frame, n_classes=2))
    assert first2[1] == 1.0 and O2[1, 1] == 2.0 and O2[1, 2] == 1.0
    np.testing.assert_allclose(cov2, [0.5, 0.5, 0.5])


def _loss_by_loops(O, o, M, mu, mu0, p, l2):
    d, k = mu.shape
    total = 0.0
    for a, b in itertools.product(range(d), range(d)):
        model = sum(mu[a, c] * p[c] * mu[b, c] for c in range(k))
        total += M[a, b] * (O[a, b] - model) ** 2
    for a in range(d):
        total += (sum(mu[a, c] * p[c] for c in range(k)) - o[a]) ** 2
    total += l2**2 * np.sum((mu - mu0) ** 2) + 0.5 * l2 * np.sum(mu**2)
    return total


@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_loss_and_gradient_match_hand_written_loss(l2):
    rng = np.random.default_rng(0)
    m, k = 4, 3
    d = make_dawid_skene(200, m, k, coverage=0.7, random_state=0)
    O, first, _ = _moments(d.L)
    M = _mask(m, k, [(1, 3)])
    assert M[3:6, 9:12].sum() == 0 and M[9:12, 3:6].sum() == 0 and M[0:3, 3:6].all()
    assert all(M[j * k:(j + 1) * k, j * k:(j + 1) * k].sum() == 0 for j in range(m))
    mu0 = rng.uniform(0, 0.5, size=(m * k, k))
    p = np.array([0.2, 0.3, 0.5])
    loss = _Loss(O, first, M, mu0, l2)
    loss.p = p
    mu = rng.uniform(0, 0.6, size=(m * k, k))
    value, grad = loss.raw(mu.ravel())
    assert value == pytest.approx(_loss_by_loops(O, first, M, mu, mu0, p, l2), rel=1e-12)
    h = 1e-6
    numeric = np.array([
        (loss.raw(mu.ravel() + h * e)[0] - loss.raw(mu.ravel() - h * e)[0]) / (2 * h)
        for e in np.eye(mu.size)
    ])
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_fit_is_a_stationary_point_of_the_loss():
    L = _decode(L2)
    mc = MatrixCompletion(2, random_state=0).fit(L)
    mu = mc.mu_[:, :2].reshape(-1, 2)
    assert 0.01 < mu.min() and mu.max() < 0.99  # nothing clipped: mu_ is the solver's point
    lm = as_label_matrix(L)
    O, first, _ = _moments(lm)
    loss = _Loss(O, first, _mask(5, 2, []), np.zeros_like(mu), 0.0)
    loss.p = mc.class_prior_
    value, grad = loss.raw(mu.ravel())
    assert value == pytest.approx(mc.loss_, rel=1e-12)
    assert mc.loss_history_[-1] == pytest.approx(mc.loss_, rel=1e-9)
    assert np.all(np.diff(mc.loss_history_) <= 1e-15)  # L-BFGS never goes up
    assert np.abs(grad).max() < 1e-6  # (the loss is ~3e-3; a unit change of mu moves it ~1)
    assert mc.converged_ and mc.n_iter_ == mc.loss_history_.size - 1


# --------------------------------------------------------------------------- vs Snorkel
@pytest.mark.parametrize(("text", "ref", "atol"), [(L2, MU2, 2e-5), (L3, MU3, 1e-4)])
def test_agrees_with_snorkel_at_convergence(text, ref, atol):
    L = _decode(text)
    k = ref.shape[1]
    mc = MatrixCompletion(k, random_state=0).fit(L)
    np.testing.assert_allclose(mc.mu_[:, :k].reshape(-1, k), ref, atol=atol)
    # the abstain row is what the columns leave, Snorkel's get_conditional_probs layout
    np.testing.assert_allclose(mc.mu_.sum(axis=1), 1.0)
    assert mc.mu_.shape == (5, k + 1, k)
    # get_weights(): accuracy = sum_c P(lambda = c | c) p_c / coverage
    coverage = (L >= 0).mean(axis=0)
    blocks = ref.reshape(5, k, k)
    acc = np.einsum("jcc->j", blocks) / k / coverage
    np.testing.assert_allclose(mc.source_accuracy_, acc, atol=5 * atol)


def test_predict_proba_is_the_product_over_votes():
    d = make_dawid_skene(60, 4, 3, coverage=0.6, random_state=0)
    frame = d.L.to_long()
    frame = pd.concat([frame, frame.iloc[:7]])  # repeated votes: each one counts
    lm = as_label_matrix(frame, n_classes=3)
    mc = MatrixCompletion(random_state=0, class_balance=[0.2, 0.3, 0.5]).fit(lm)
    proba = mc.predict_proba(lm)
    for i in range(lm.n_items):
        post = mc.class_prior_.copy()
        for j, label in zip(lm.source[lm.item == i], lm.label[lm.item == i], strict=True):
            post = post * mc.mu_[j, label, :]
        np.testing.assert_allclose(proba[i], post / post.sum(), rtol=1e-10)


# ----------------------------------------------------------------------------- recovery
def test_recovers_the_generative_parameters():
    d = make_dawid_skene(40_000, 6, 3, coverage=0.7, random_state=0)
    mc = MatrixCompletion(random_state=0).fit(d.L)
    assert mc.converged_
    assert np.abs(mc.mu_[:, :3] - _true_mu(d)).max() < 0.02
    assert np.abs(mc.mu_[:, 3] - (1 - d.coverage)[:, None]).max() < 0.02
    empirical = [np.mean(d.L.label[d.L.source == j] == d.y[d.L.item[d.L.source == j]])
                 for j in range(6)]
    np.testing.assert_allclose(mc.source_accuracy_, empirical, atol=0.02)


def test_result_does_not_depend_on_the_random_start():
    d = make_dawid_skene(3000, 6, 2, coverage=0.7, random_state=4)
    fits = [MatrixCompletion(random_state=s).fit(d.L).mu_ for s in (0, 1, 2)]
    assert np.abs(fits[0] - fits[1]).max() < 1e-5 and np.abs(fits[0] - fits[2]).max() < 1e-5


@pytest.mark.parametrize(("prior", "seed"), [([0.25, 0.75], 0), ([0.2, 0.3, 0.5], 0)])
def test_learned_class_balance(prior, seed):
    """The loss cannot tell class balances apart (uniform fits as well as the truth); the
    profile likelihood of votes and abstains can."""
    d = make_dawid_skene(6_000, 8, len(prior), class_prior=prior, coverage=0.8,
                         random_state=seed)
    uniform = MatrixCompletion(class_balance="uniform", random_state=0).fit(d.L)
    learned = MatrixCompletion(class_balance="learned", random_state=0).fit(d.L)
    oracle = MatrixCompletion(class_balance=prior, random_state=0).fit(d.L)
    assert learned.loss_ == pytest.approx(uniform.loss_, rel=1e-6)
    assert oracle.loss_ == pytest.approx(uniform.loss_, rel=1e-6)
    assert np.abs(learned.class_prior_ - prior).max() < 0.02
    error = {name: np.abs(est.mu_[:, :-1] - _true_mu(d)).max()
             for name, est in [("uniform", uniform), ("learned", learned), ("oracle", oracle)]}
    assert error["learned"] < error["oracle"] + 0.02
    assert error["uniform"] > 0.1
    assert learned.converged_


# ----------------------------------------------------------------------- known labels
def test_known_labels_fix_the_label_switching_of_bad_sources():
    """Sources worse than random: unsupervised, the model trusts them and is flipped;
    5% known labels relabel the solution (and set the class balance)."""
    d = make_dawid_skene(4000, 6, 2, accuracy=(0.2, 0.35), coverage=0.8, random_state=1)
    y = np.full(4000, -1)
    y[::20] = d.y[::20]
    flipped = MatrixCompletion(random_state=0).fit(d.L)
    assert np.mean(flipped.predict(d.L) == d.y) < 0.2
    fixed = MatrixCompletion(random_state=0).fit(d.L, y)
    assert np.mean(fixed.predict(d.L) == d.y) > 0.85
    counts = np.bincount(d.y[::20], minlength=2)
    np.testing.assert_allclose(fixed.class_prior_, counts / counts.sum())
    assert np.all(fixed.source_accuracy_ < 0.45)
    # predict_proba does not copy the known labels
    proba = fixed.predict_proba(d.L)
    assert not np.allclose(proba[::20].max(axis=1), 1.0)


def test_known_labels_with_a_missing_class_are_smoothed():
    d = make_dawid_skene(500, 5, 3, coverage=0.8, random_state=0)
    y = np.full(500, -1)
    y[:4] = 0
    mc = MatrixCompletion(random_state=0).fit(d.L, y)
    np.testing.assert_allclose(mc.class_prior_, np.array([5, 1, 1]) / 7)  # add-one


# ------------------------------------------------------------------------ dependencies
def test_declared_dependencies_remove_the_bias_of_copied_sources():
    d = make_dawid_skene(15_000, 6, 2, coverage=0.8, random_state=2)
    L = d.L.to_dense()
    copies = np.c_[L, L[:, 0], L[:, 0]]  # source 0 three times: not independent given Y
    truth = _true_mu(d)
    naive = MatrixCompletion(random_state=0).fit(copies)
    declared = MatrixCompletion(dependencies=[(0, 6), (0, 7), (6, 7)], random_state=0)
    declared.fit(copies)
    assert np.abs(naive.mu_[:6, :2] - truth).max() > 0.1
    assert np.abs(declared.mu_[:6, :2] - truth).max() < 0.03


# ---------------------------------------------------------------- errors and warnings
@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"class_balance": "balanced"}, InvalidParameterError),
        ({"class_balance": [0.5, 0.6]}, ValueError),
        ({"class_balance": [0.2, 0.3, 0.5]}, ValueError),
        ({"class_balance": [1.0, 0.0]}, ValueError),
        ({"prec_init": 1.5}, InvalidParameterError),
        ({"prec_init": [0.7, 0.7]}, ValueError),
        ({"l2": -1.0}, InvalidParameterError),
        ({"mu_eps": 0.7}, InvalidParameterError),
        ({"dependencies": [(0, 0)]}, ValueError),
        ({"dependencies": [(0, 9)]}, ValueError),
        ({"dependencies": [(0, 1, 2)]}, ValueError),
        ({"max_iter": 0}, InvalidParameterError),
        ({"tol": -1e-3}, InvalidParameterError),
        ({"n_classes": 1}, InvalidParameterError),
    ],
)
def test_bad_parameters_raise(params, error):
    L = make_dawid_skene(100, 5, 2, random_state=0).L
    with pytest.raises(error):
        MatrixCompletion(**params).fit(L)


def test_too_few_sources_and_no_votes_raise():
    with pytest.raises(ValueError, match="at least 3 sources"):
        MatrixCompletion().fit(np.array([[0, 1], [1, 1], [0, 0]]))
    with pytest.raises(ValueError, match="no votes"):
        MatrixCompletion(n_classes=2).fit(np.full((4, 3), -1))


def test_convergence_warning_at_max_iter_one():
    d = make_dawid_skene(500, 5, 3, coverage=0.8, random_state=0)
    with pytest.warns(ConvergenceWarning, match="max_iter=1") as record:
        mc = MatrixCompletion(max_iter=1, random_state=0).fit(d.L)
    assert record[0].filename == __file__  # points at the user's fit call
    assert not mc.converged_ and mc.n_iter_ == 1 and mc.loss_history_.shape == (2,)
    assert mc.loss_history_[1] < mc.loss_history_[0]


def test_all_abstain_row_and_silent_source():
    d = make_dawid_skene(400, 5, 2, coverage=0.8, random_state=0)
    L = np.c_[d.L.to_dense(), np.full(400, -1)]  # source 5 never votes
    L[7] = -1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning
        mc = MatrixCompletion(random_state=0, class_balance=[0.4, 0.6]).fit(L)
    proba = mc.predict_proba(L)
    np.testing.assert_allclose(proba[7], [0.4, 0.6])
    assert np.isnan(mc.source_accuracy_[5]) and np.all(np.isfinite(mc.source_accuracy_[:5]))
    np.testing.assert_allclose(mc.mu_[5, :2], 1e-3)  # clipped to mu_eps = 10**-ceil(log10 n)
    # the silent source's (clipped) parameters are the same for both classes: no effect
    np.testing.assert_allclose(proba, MatrixCompletion(random_state=0, class_balance=[0.4, 0.6])
                               .fit(L[:, :5]).predict_proba(L[:, :5]), atol=1e-6)


# --------------------------------------------------------------------------- real data
def test_bluebirds_accuracy(data_home):
    ds = load_shared("welinder_bluebirds", data_home=data_home)
    proba = MatrixCompletion(random_state=0).fit_predict_proba(ds.L)
    known = ds.y >= 0
    assert np.mean(proba[known].argmax(axis=1) == ds.y[known]) > 0.85  # majority vote: 0.76
