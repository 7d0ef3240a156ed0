"""Tests of the Balsubramani-Freund adversarial log-loss aggregator (wsagg.AdversarialLogLoss).

The guarantees are checked against independent computations: an LP over labelings of the
(ungrouped) items for the minimax value, scikit-learn's unpenalised logistic regression for
the equality-constraint limit g*, scipy's Wilson interval, and the exact one-coin
Dawid-Skene posterior for consistency.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import linprog
from scipy.special import softmax
from scipy.stats import binomtest

from wsagg.aggregation.adversarial import AdversarialLogLoss
from wsagg.datasets import make_dawid_skene

# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def _game(n=40, m=4, k=3, n_lab=25, coverage=0.7, seed=0):
    d = make_dawid_skene(n + n_lab, m, k, coverage=coverage, accuracy=(0.55, 0.85),
                         random_state=seed)
    L = d.L.to_dense()
    y = np.full(n + n_lab, -1)
    y[:n_lab] = d.y[:n_lab]
    return L, y, d


def _box_rows(L, est):
    """Independent constraint matrix over the (ungrouped) target items: list of
    (coefficient array (N, k), lo, hi) in count units, from the votes and constraints_."""
    m, k = L.shape[1], est.n_classes_
    N = L.shape[0]
    rows = []
    for rec in est.constraints_.itertuples():
        if not rec.active:
            continue
        A = np.zeros((N, k))
        if rec.kind == "class_frequency":
            A[:, rec._4] = 1.0  # column "class"
        elif rec.kind == "accuracy":
            voted = L[:, rec.source] >= 0
            A[np.flatnonzero(voted), L[voted, rec.source]] = 1.0
        elif rec.kind == "class_accuracy":
            A[L[:, rec.source] == rec.vote, rec.vote] = 1.0
        else:
            A[L[:, rec.source] == rec.vote, rec._4] = 1.0
        rows.append((A, rec.lo * rec.n_target, rec.hi * rec.n_target))
    assert len(rows) > 0 and m > 0
    return rows


def _worst_case_logloss(L, est, g):
    """max over labelings z in the polytope of mean_i sum_l z_il (-log g_il), by LP."""
    N, k = g.shape
    rows = _box_rows(L, est)
    A = np.array([r[0].ravel() for r in rows])
    lo = np.array([r[1] for r in rows])
    hi = np.array([r[2] for r in rows])
    A_eq = np.kron(np.eye(N), np.ones((1, k)))
    res = linprog(
        c=np.log(g).ravel() / N,  # minimise -loss
        A_ub=np.vstack([A, -A]),
        b_ub=np.concatenate([hi, -lo]),
        A_eq=A_eq,
        b_eq=np.ones(N),
        bounds=[(0, None)] * (N * k),
        method="highs",
    )
    assert res.status == 0, res.message
    return -res.fun


def _target(L, y):
    return L[y < 0]


# ---------------------------------------------------------------------------------------
# Wilson intervals and bounds
# ---------------------------------------------------------------------------------------


def test_wilson_interval_matches_scipy():
    from wsagg.aggregation.adversarial.constraints import wilson_interval

    hits = np.array([0, 3, 17, 50, 100])
    trials = np.array([10, 10, 40, 100, 100])
    for conf in (0.5, 0.9, 0.95, 0.99):
        lo, hi = wilson_interval(hits, trials, conf)
        for h, t, a, b in zip(hits, trials, lo, hi, strict=True):
            ci = binomtest(int(h), int(t)).proportion_ci(confidence_level=conf, method="wilson")
            assert a == pytest.approx(ci.low, abs=1e-12)
            assert b == pytest.approx(ci.high, abs=1e-12)
    lo, hi = wilson_interval(hits, trials, 0.0)
    np.testing.assert_allclose(lo, hits / trials)
    np.testing.assert_allclose(hi, hits / trials)


def test_bounds_are_symmetric_wilson_boxes_around_estimates():
    L, y, _ = _game(seed=1)
    est = AdversarialLogLoss(on_infeasible="widen").fit(L, y)
    acc = est.constraints_[est.constraints_.kind == "accuracy"]
    lab = L[y >= 0]
    yl = y[y >= 0]
    for rec in acc.itertuples():
        voted = lab[:, rec.source] >= 0
        hits = int((lab[voted, rec.source] == yl[voted]).sum())
        trials = int(voted.sum())
        assert rec.n_labeled == trials
        p = hits / trials
        assert rec.estimate == pytest.approx(p)
        ci = binomtest(hits, trials).proportion_ci(confidence_level=0.95, method="wilson")
        eps = max(p - ci.low, ci.high - p) * est.widening_factor_
        assert rec.lo == pytest.approx(p - eps)
        assert rec.hi == pytest.approx(p + eps)
        assert rec.n_target == (_target(L, y)[:, rec.source] >= 0).sum()
    # "wilson" boxes are the interval itself (narrower)
    est2 = AdversarialLogLoss(box="wilson", on_infeasible="widen").fit(L, y)
    w2 = est2.constraints_[est2.constraints_.kind == "accuracy"]
    assert ((w2.hi - w2.lo).to_numpy() <= (acc.hi - acc.lo).to_numpy() + 1e-12).all()


# ---------------------------------------------------------------------------------------
# minimax guarantee
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "family", "seed"),
    [(2, "accuracy", 0), (3, "accuracy", 1), (3, "class_accuracy", 2), (3, "confusion", 3)],
)
def test_game_value_is_worst_case_logloss_and_perturbations_do_worse(k, family, seed):
    L, y, _ = _game(n=30, m=3, k=k, n_lab=30, seed=seed)
    est = AdversarialLogLoss(constraints=family, on_infeasible="widen").fit(L, y)
    T = _target(L, y)
    g = est.predict_proba(T)
    worst = _worst_case_logloss(T, est, g)
    assert worst == pytest.approx(est.game_value_, abs=1e-6)
    rng = np.random.default_rng(seed)
    for _ in range(5):
        g2 = softmax(np.log(g) + 0.3 * rng.standard_normal(g.shape), axis=1)
        assert _worst_case_logloss(T, est, g2) > est.game_value_ + 1e-6


def test_prediction_is_max_entropy_point_of_the_polytope():
    L, y, _ = _game(n=50, m=4, k=3, seed=4)
    est = AdversarialLogLoss(on_infeasible="widen").fit(L, y)
    T = _target(L, y)
    g = est.predict_proba(T)
    for A, lo, hi in _box_rows(T, est):
        val = float((A * g).sum())
        assert lo - 1e-6 <= val <= hi + 1e-6
    entropy = -(g * np.log(g)).sum(axis=1).mean()
    assert entropy == pytest.approx(est.game_value_, abs=1e-8)


# ---------------------------------------------------------------------------------------
# consistency: g* equals unpenalised logistic regression; convergence to the OCDS posterior
# ---------------------------------------------------------------------------------------


def test_equality_constraints_give_unpenalised_multinomial_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    d = make_dawid_skene(3000, 4, 3, coverage=0.7, accuracy=(0.5, 0.8), random_state=5)
    L, y = d.L.to_dense(), d.y
    est = AdversarialLogLoss(constraints="confusion", confidence=0.0, polytope="all").fit(L, y)
    X = d.L.one_hot().toarray()
    lr = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(est.predict_proba(L), lr.predict_proba(X), atol=1e-5)
    # the game value is then the mean log loss of g* on the true labels
    p = est.predict_proba(L)
    assert est.game_value_ == pytest.approx(-np.log(p[np.arange(len(y)), y]).mean(), abs=1e-8)


def test_equality_constraints_binary_accuracy_family_is_logistic_regression_on_pm1_votes():
    from sklearn.linear_model import LogisticRegression

    d = make_dawid_skene(2000, 5, 2, coverage=0.6, accuracy=(0.55, 0.85), random_state=6)
    L, y = d.L.to_dense(), d.y
    est = AdversarialLogLoss(confidence=0.0, polytope="all").fit(L, y)
    X = (L == 1).astype(float) - (L == 0).astype(float)
    lr = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(est.predict_proba(L), lr.predict_proba(X), atol=1e-5)
    # sigma_1 - sigma_0 = lr.coef_ (binary: score difference)
    np.testing.assert_allclose(est.source_weights_, lr.coef_.ravel(), atol=1e-4)


def _one_coin(n, m, k, seed):
    rng = np.random.default_rng(seed)
    acc = rng.uniform(0.45, 0.8, size=m)
    prior = rng.dirichlet(np.full(k, 3.0))
    d = make_dawid_skene(n, m, k, class_prior=prior, coverage=0.7, accuracy=acc,
                         errors="uniform", random_state=seed)
    conf = d.confusion
    L = d.L.to_dense()
    logp = np.log(prior)[None, :] + np.zeros((n, 1))
    for j in range(m):
        voted = L[:, j] >= 0
        logp[voted] += np.log(conf[j][:, L[voted, j]].T)
    return L, d.y, softmax(logp, axis=1)


def test_prediction_converges_to_one_coin_posterior_as_labels_grow():
    L, y, eta = _one_coin(24_000, 5, 3, seed=7)
    target = slice(0, 20_000)
    kls = []
    for v in (40, 400, 4000):
        yy = np.full(L.shape[0], -1)
        yy[20_000:20_000 + v] = y[20_000:20_000 + v]
        keep = np.r_[np.arange(20_000), np.arange(20_000, 20_000 + v)]
        est = AdversarialLogLoss(on_infeasible="widen").fit(L[keep], yy[keep])
        g = est.predict_proba(L[target])
        e = eta[target]
        kls.append(float((e * (np.log(e) - np.log(g))).sum(axis=1).mean()))
    assert kls[0] > kls[1] > kls[2]
    assert kls[2] < 0.02
    slope = np.log(kls[2] / kls[0]) / np.log(4000 / 40)
    assert slope < -0.4  # about the O(1/sqrt(v)) rate of the interval half-widths, or faster


# ---------------------------------------------------------------------------------------
# solvers
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "family"), [(2, "accuracy"), (4, "accuracy"),
                                           (3, "class_accuracy"), (3, "confusion")])
def test_solvers_agree_with_cvxpy_reference(k, family):
    L, y, _ = _game(n=300, m=5, k=k, n_lab=120, coverage=0.6, seed=10 + k)
    fits = {}
    for s in ("cvxpy", "scipy", "torch"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fits[s] = AdversarialLogLoss(constraints=family, solver=s,
                                         on_infeasible="widen").fit(L, y)
        # exactly one warning, ours, iff the solver reports an inaccurate solution
        # (Clarabel sometimes stops at 'optimal_inaccurate' while agreeing to 1e-10)
        messages = [str(w.message) for w in caught]
        if fits[s].solver_status_ == "inaccurate":
            assert len(messages) == 1 and "inaccurate" in messages[0]
        else:
            assert messages == []
    ref = fits["cvxpy"]
    assert ref.solver_status_ in ("optimal", "inaccurate")
    for s in ("scipy", "torch"):
        assert fits[s].solver_status_ == "optimal"
        assert fits[s].game_value_ == pytest.approx(ref.game_value_, abs=1e-6)
        np.testing.assert_allclose(fits[s].predict_proba(L), ref.predict_proba(L), atol=1e-4)
        # the reported value is the dual objective at the returned weights
        prob = fits[s].dual_problem_
        theta = np.concatenate([fits[s].class_bias_, fits[s].constraints_.weight[
            (fits[s].constraints_.kind != "class_frequency") & fits[s].constraints_.active
        ].to_numpy()])
        assert prob.objective(theta) == pytest.approx(fits[s].game_value_, abs=1e-12)


def test_cvxpy_status_handling():
    from wsagg.aggregation.adversarial.solvers.cvxpy import check_status

    assert check_status("optimal", "CLARABEL") == "optimal"
    with pytest.warns(RuntimeWarning, match=r"CLARABEL.*optimal_inaccurate"):
        assert check_status("optimal_inaccurate", "CLARABEL") == "inaccurate"
    with pytest.raises(RuntimeError, match=r"SCS failed.*unbounded.*empty"):
        check_status("unbounded", "SCS")
    with pytest.raises(RuntimeError, match=r"CLARABEL failed.*solver_error"):
        check_status("solver_error", "CLARABEL")


def test_torch_cuda_request_without_gpu_is_a_clear_error():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present; this test covers the no-GPU error path")
    L, y, _ = _game(seed=2)
    with pytest.raises(ValueError, match="CUDA"):
        AdversarialLogLoss(solver="torch", device="cuda", on_infeasible="widen").fit(L, y)


# ---------------------------------------------------------------------------------------
# solver internals: grouping, Hessian, active-set Newton, feasibility certificate
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "cols", "top"), [(3000, 9, 1), (2000, 120, 1), (800, 7, 3)])
def test_group_patterns_matches_unique_rows(n, cols, top):
    """Exact grouping by integer codes: one code word (9 columns), three words (120
    columns), and repeated votes (counts up to 3, base-4 digits)."""
    import scipy.sparse as sp

    from wsagg.aggregation.adversarial.constraints import group_patterns

    rng = np.random.default_rng(cols)
    D = (rng.random((n, cols)) < 0.25) * rng.integers(1, top + 1, size=(n, cols))
    Vu, counts, inverse = group_patterns(sp.csr_matrix(D.astype(np.float64)))
    uniq, cnt = np.unique(D, axis=0, return_counts=True)
    assert Vu.shape[0] == uniq.shape[0]
    np.testing.assert_array_equal(Vu.toarray()[inverse], D)
    np.testing.assert_array_equal(np.bincount(inverse), counts)
    np.testing.assert_array_equal(np.sort(counts), np.sort(cnt))


@pytest.mark.parametrize("dense_gram", [True, False])
@pytest.mark.parametrize("family", ["accuracy", "confusion"])
def test_dual_hessian_matches_finite_differences(family, dense_gram, monkeypatch):
    import wsagg.aggregation.adversarial.constraints as cons

    if not dense_gram:
        monkeypatch.setattr(cons, "_DENSE_GRAM_MAX", 0)
    L, y, _ = _game(n=200, m=4, k=3, n_lab=60, seed=3)
    prob = AdversarialLogLoss(constraints=family, on_infeasible="widen").fit(
        L, y).dual_problem_
    theta = 0.5 * np.random.default_rng(0).standard_normal(prob.dim)
    H = prob.hessian(theta)
    h = 1e-6
    fd = np.empty_like(H)
    for i in range(prob.dim):
        step = np.zeros(prob.dim)
        step[i] = h
        fd[:, i] = (prob.smooth(theta + step)[1] - prob.smooth(theta - step)[1]) / (2 * h)
    np.testing.assert_allclose(H, fd, atol=1e-7)
    idx = np.array([0, 2, prob.dim - 1])
    np.testing.assert_allclose(prob.hessian(theta, idx), H[np.ix_(idx, idx)], atol=1e-15)


def test_active_set_newton_converges_from_a_wrong_sign_pattern():
    from wsagg.aggregation.adversarial.solvers.scipy import (
        kkt_violation,
        newton_polish,
        solve_lbfgsb,
    )

    L, y, _ = _game(n=300, m=5, k=3, n_lab=120, coverage=0.6, seed=11)
    est = AdversarialLogLoss(on_infeasible="widen").fit(L, y)
    prob = est.dual_problem_
    ref = solve_lbfgsb(prob)
    assert ref.status == "optimal" and (ref.theta == 0).any()  # some weights are zero
    start = -np.sign(ref.theta) * 0.3 + 0.1  # every sign wrong, no zero
    theta, steps = newton_polish(prob, start, prob.smooth, n_steps=200)
    assert steps > 1
    assert kkt_violation(prob, theta, prob.smooth) < 1e-10
    assert prob.objective(theta) == pytest.approx(ref.objective, abs=1e-12)
    np.testing.assert_allclose(theta, ref.theta, atol=1e-6)
    # and L-BFGS-B alone (no Newton stage) reaches the same optimum
    plain = solve_lbfgsb(prob, polish=False)
    assert plain.status == "optimal"
    assert plain.objective == pytest.approx(ref.objective, abs=1e-9)


def test_feasibility_is_certified_by_the_dual_solution_without_the_lp(monkeypatch):
    import wsagg.aggregation.adversarial.estimator as adv

    def no_lp(problem):
        raise AssertionError("the feasibility LP should not run")

    L, y, _ = _game(n=200, m=4, k=3, n_lab=150, seed=5)
    with monkeypatch.context() as mp:
        mp.setattr(adv, "min_widening_factor", no_lp)
        est = AdversarialLogLoss().fit(L, y)
    assert est.feasibility_check_ == "dual" and est.feasibility_factor_ is None
    assert est.widening_factor_ == 1.0
    # the certificate: the max-entropy labeling satisfies every box
    T = _target(L, y)
    g = est.predict_proba(T)
    for A, lo, hi in _box_rows(T, est):
        assert lo - 1e-6 <= float((A * g).sum()) <= hi + 1e-6
    # the reference solver checks with the LP first; same polytope, non-empty
    ref = AdversarialLogLoss(solver="cvxpy").fit(L, y)
    assert ref.feasibility_check_ == "lp" and ref.feasibility_factor_ < 1.0
    assert ref.game_value_ == pytest.approx(est.game_value_, abs=1e-6)
    off = AdversarialLogLoss(check_feasibility=False).fit(L, y)
    assert off.feasibility_check_ == "off"

# ---------------------------------------------------------------------------------------
# infeasible polytopes
# ---------------------------------------------------------------------------------------


def _contradictory():
    """Two sources each 100% correct on 60 labeled items, but they always disagree on the
    80 unlabeled items: their accuracy lower bounds (~0.94) cannot both hold."""
    lab = np.array([[0, 0], [1, 1]] * 30)
    y_lab = np.array([0, 1] * 30)
    unl = np.array([[0, 1], [1, 0]] * 40)
    L = np.vstack([lab, unl])
    y = np.concatenate([y_lab, np.full(80, -1)])
    return L, y


def test_empty_polytope_raises_clear_error():
    L, y = _contradictory()
    with pytest.raises(ValueError, match=r"polytope is empty.*on_infeasible='widen'"):
        AdversarialLogLoss().fit(L, y)


def test_empty_polytope_detected_from_dual_without_lp():
    L, y = _contradictory()
    with pytest.raises(ValueError, match=r"unbounded below.*empty"):
        AdversarialLogLoss(check_feasibility=False).fit(L, y)


def test_widening_gives_finite_solution_inside_widened_boxes():
    L, y = _contradictory()
    est = AdversarialLogLoss(on_infeasible="widen").fit(L, y)
    assert est.widening_factor_ > 1.0
    assert est.feasibility_check_ == "lp" and est.feasibility_factor_ > 1.0
    assert est.widening_factor_ == pytest.approx(est.feasibility_factor_ * 1.05)
    T = _target(L, y)
    g = est.predict_proba(T)
    assert np.all(np.isfinite(g)) and np.all(np.isfinite(est.source_weights_))
    for A, lo, hi in _box_rows(T, est):
        assert lo - 1e-6 <= float((A * g).sum()) <= hi + 1e-6
    assert _worst_case_logloss(T, est, g) == pytest.approx(est.game_value_, abs=1e-6)


# ---------------------------------------------------------------------------------------
# prediction, ties, interface
# ---------------------------------------------------------------------------------------


def test_all_abstain_rows_get_softmax_class_bias():
    L, y, _ = _game(seed=8)
    L = np.vstack([L, np.full((3, L.shape[1]), -1)])
    y = np.concatenate([y, [-1, -1, -1]])
    est = AdversarialLogLoss(on_infeasible="widen").fit(L, y)
    p = est.predict_proba(np.full((2, L.shape[1]), -1))
    np.testing.assert_allclose(p, np.tile(softmax(est.class_bias_), (2, 1)))
    np.testing.assert_allclose(est.class_prior_, softmax(est.class_bias_))


def test_tie_policy_on_all_abstain_rows():
    # user bounds, no class-frequency constraint -> gamma = 0 -> exact ties on empty rows
    d = make_dawid_skene(200, 4, 2, accuracy=(0.6, 0.9), random_state=9)
    L = d.L.to_dense()
    est = AdversarialLogLoss(accuracy_bounds=[0.6, 0.9]).fit(L)
    np.testing.assert_array_equal(est.class_bias_, 0.0)
    empty = np.full((400, 4), -1)
    np.testing.assert_allclose(est.predict_proba(empty), 0.5)
    assert (est.predict(empty) == 0).all()  # "first": lowest class index
    est_r = AdversarialLogLoss(accuracy_bounds=[0.6, 0.9], tie_break="random",
                               random_state=3).fit(L)
    a, b = est_r.predict(empty), est_r.predict(empty)
    np.testing.assert_array_equal(a, b)  # reproducible
    assert 150 < a.sum() < 250  # both classes, roughly uniformly


def test_user_bounds_fit_without_labels():
    d = make_dawid_skene(300, 4, 3, coverage=0.8, accuracy=(0.6, 0.8), random_state=11)
    L = d.L.to_dense()
    est = AdversarialLogLoss(accuracy_bounds=[[0.55, 0.85]] * 4,
                             class_freq_bounds=[0.2, 0.5]).fit(L)
    np.testing.assert_allclose(est.accuracy_bounds_, [[0.55, 0.85]] * 4)
    np.testing.assert_allclose(est.class_freq_bounds_, [[0.2, 0.5]] * 3)
    g = est.predict_proba(L)
    for A, lo, hi in _box_rows(L, est):
        assert lo - 1e-6 <= float((A * g).sum()) <= hi + 1e-6
    assert (est.source_weights_ > 0).all()  # better than chance -> positive weights
    assert est.predict(L).shape == (300,)


def test_separate_labeled_set_equals_concatenated_y():
    L, y, _ = _game(seed=12)
    lab = y >= 0
    a = AdversarialLogLoss(on_infeasible="widen").fit(L, y)
    b = AdversarialLogLoss(on_infeasible="widen").fit(L[~lab], L_labeled=L[lab],
                                                       y_labeled=y[lab])
    assert a.game_value_ == pytest.approx(b.game_value_, abs=1e-12)
    np.testing.assert_allclose(a.predict_proba(L), b.predict_proba(L), atol=1e-10)


def test_sparse_and_long_inputs_agree_with_dense():
    import pandas as pd
    import scipy.sparse as sp

    L, y, _ = _game(seed=13)
    dense = AdversarialLogLoss(on_infeasible="widen").fit(L, y).predict_proba(L)
    S = sp.csr_matrix(L + 1)
    sparse = AdversarialLogLoss(on_infeasible="widen").fit(S, y).predict_proba(S)
    np.testing.assert_allclose(sparse, dense, atol=1e-10)
    i, j = np.nonzero(L >= 0)
    long = pd.DataFrame({"item": i, "source": j, "label": L[i, j]})
    long_fit = AdversarialLogLoss(n_classes=3, on_infeasible="widen").fit(long, y)
    np.testing.assert_allclose(long_fit.predict_proba(long), dense, atol=1e-10)


def test_repeated_votes_are_grouped_by_one_hot_rows():
    import pandas as pd

    rng = np.random.default_rng(14)
    items = np.concatenate([np.arange(60), rng.integers(0, 60, 240)])
    sources = rng.integers(0, 3, 300)
    labels = rng.integers(0, 2, 300)
    long = (items, sources, labels)
    # known labels by item id (NaN = unknown): robust to the item order of long input
    y = pd.Series(np.r_[rng.integers(0, 2, 20), np.full(40, np.nan)],
                  index=pd.Index(np.arange(60), dtype=np.int64))
    a = AdversarialLogLoss(on_infeasible="widen").fit(long, y)
    b = AdversarialLogLoss(on_infeasible="widen", group_patterns=False).fit(long, y)
    assert a.n_patterns_ < b.n_patterns_
    assert a.game_value_ == pytest.approx(b.game_value_, abs=1e-9)
    np.testing.assert_allclose(a.predict_proba(long), b.predict_proba(long), atol=1e-6)


@pytest.mark.parametrize(
    ("params", "fit_kwargs", "match"),
    [
        ({"constraints": "nope"}, {}, "'constraints' parameter of AdversarialLogLoss must be"),
        ({"solver": "mosek"}, {}, "'solver' parameter of AdversarialLogLoss must be a str among"),
        ({"confidence": 1.0}, {}, r"'confidence' parameter .* range \[0.0, 1.0\)"),
        ({"box": "x"}, {}, "'box' parameter"),
        ({"polytope": "x"}, {}, "'polytope' parameter"),
        ({"on_infeasible": "x"}, {}, "'on_infeasible' parameter"),
        ({"accuracy_bounds": [0.6, 0.9]}, {"y": "y"}, "not both"),
        ({"accuracy_bounds": [0.9, 0.6]}, {}, "lo <= hi"),
        ({"accuracy_bounds": [[0.6, 0.9]] * 2}, {}, r"shape \(4, 2\)"),
        ({"accuracy_bounds": [0.6, 0.9], "constraints": "confusion"}, {}, "only supported"),
        ({}, {}, "needs constraint information"),
        ({"polytope": "unlabeled"}, {"y": "all"}, "polytope='all'"),
    ],
)
def test_bad_input_errors(params, fit_kwargs, match):
    L, y, d = _game(m=4, seed=15)
    kwargs = {}
    if fit_kwargs.get("y") == "y":
        kwargs["y"] = y
    elif fit_kwargs.get("y") == "all":
        kwargs["y"] = d.y
    with pytest.raises(ValueError, match=match):
        AdversarialLogLoss(**params).fit(L, **kwargs)


def test_labeled_set_source_mismatch_error():
    L, y, _ = _game(seed=16)
    with pytest.raises(ValueError, match="same sources"):
        AdversarialLogLoss().fit(L, L_labeled=L[:10, :2], y_labeled=y[:10])
    with pytest.raises(ValueError, match="both"):
        AdversarialLogLoss().fit(L, L_labeled=L[:10])


def test_registry_and_lazy_import():
    import subprocess
    import sys

    from wsagg._registry import get_aggregator

    assert isinstance(get_aggregator("adversarial"), AdversarialLogLoss)
    code = ("import sys, wsagg; wsagg.AdversarialLogLoss; "
            "print('torch' in sys.modules, 'cvxpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]
