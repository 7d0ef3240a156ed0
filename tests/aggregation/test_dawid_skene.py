"""Tests of wsagg.DawidSkene: recovery, EM invariants, backends, properties, bad input."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from wsagg import DawidSkene, MajorityVote
from wsagg.aggregation.dawid_skene import PriorCollapseWarning
from wsagg.datasets import make_dawid_skene
from wsagg.labels import LabelMatrix, as_label_matrix

MODES = list(itertools.product(["ignore", "model"], ["full", "one-coin"]))


def _oracle_confusion(L: LabelMatrix, y: np.ndarray) -> np.ndarray:
    N = np.zeros((L.n_sources, L.n_classes, L.n_classes))
    np.add.at(N, (L.source, y[L.item], L.label), 1.0)
    return N / N.sum(axis=2, keepdims=True)


def _brute_force_posterior(dense: np.ndarray, conf: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Posterior by explicit loops over items and sources (reference implementation)."""
    n, m = dense.shape
    k = prior.shape[0]
    model_abstain = conf.shape[2] == k + 1
    out = np.zeros((n, k))
    for i in range(n):
        logp = np.log(prior).copy()
        for j in range(m):
            v = dense[i, j]
            if v >= 0:
                logp += np.log(conf[j, :, v])
            elif model_abstain:
                logp += np.log(conf[j, :, k])
        logp -= logp.max()
        out[i] = np.exp(logp) / np.exp(logp).sum()
    return out


# ---------------------------------------------------------------------------- recovery
def test_recovers_binary_parameters():
    d = make_dawid_skene(50_000, 10, 2, coverage=0.7, random_state=1)
    ds = DawidSkene(abstain="ignore").fit(d.L)
    assert ds.converged_
    assert np.abs(ds.confusion_ - d.confusion).max() < 0.02
    assert np.abs(ds.class_prior_ - d.class_prior).max() < 0.01


def test_recovers_zipf_ten_classes():
    """k = 10, Zipf prior. The tail classes have ~1,700 items, so even the oracle (counts
    from the true labels) is ~0.025 from the true confusions: we require the EM estimate
    to be within 0.02 of the oracle and no further from the truth than the oracle + 0.01."""
    d = make_dawid_skene(50_000, 10, 10, class_prior="zipf", random_state=1)
    ds = DawidSkene(abstain="ignore").fit(d.L)
    oracle = _oracle_confusion(d.L, d.y)
    assert np.abs(ds.confusion_ - oracle).max() < 0.02
    assert np.abs(ds.confusion_ - d.confusion).max() < np.abs(oracle - d.confusion).max() + 0.01
    assert np.abs(ds.class_prior_ - d.class_prior).max() < 0.01


def test_beats_majority_vote_on_synthetic():
    d = make_dawid_skene(5_000, 7, 3, coverage=0.6, accuracy=(0.35, 0.9), random_state=3)
    acc_ds = np.mean(DawidSkene().fit_predict(d.L) == d.y)
    acc_mv = np.mean(MajorityVote().fit_predict(d.L) == d.y)
    assert acc_ds > acc_mv + 0.01


@pytest.mark.parametrize(("abstain", "model"), MODES)
def test_posterior_matches_brute_force(abstain, model):
    d = make_dawid_skene(60, 5, 3, coverage=0.6, random_state=0)
    ds = DawidSkene(abstain=abstain, model=model).fit(d.L)
    dense = d.L.to_dense()
    ref = _brute_force_posterior(dense, ds.confusion_, ds.class_prior_)
    np.testing.assert_allclose(ds.predict_proba(dense), ref, atol=1e-10)
    np.testing.assert_allclose(ds.confusion_.sum(axis=2), 1.0, atol=1e-12)
    if abstain == "model":
        assert ds.confusion_.shape == (5, 3, 4)
    else:
        assert ds.confusion_.shape == (5, 3, 3)


# ---------------------------------------------------------------------------- EM invariants
@pytest.mark.parametrize(("abstain", "model"), MODES)
@pytest.mark.parametrize("semi", [False, True])
def test_objective_never_decreases(abstain, model, semi):
    d = make_dawid_skene(2_000, 6, 3, coverage=0.5, accuracy=(0.3, 0.8), random_state=2)
    y = np.where(np.arange(2_000) % 10 == 0, d.y, -1) if semi else None
    ds = DawidSkene(abstain=abstain, model=model, tol=0.0, max_iter=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # one-coin/ignore on these near-chance sources finds a degenerate (collapsed) fit
        warnings.simplefilter("ignore", PriorCollapseWarning)
        ds.fit(d.L, y)
    h = ds.log_likelihood_history_
    assert h.shape == (ds.n_iter_ + 1,)
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[:-1]))
    assert ds.log_likelihood_ == h[-1]


def test_fit_then_predict_equals_fit_predict():
    d = make_dawid_skene(500, 5, 3, coverage=0.5, random_state=0)
    y = np.where(np.arange(500) < 50, d.y, -1)
    a = DawidSkene().fit(d.L, y).predict_proba(d.L)
    b = DawidSkene().fit_predict_proba(d.L, y)
    np.testing.assert_array_equal(a, b)


def test_convergence_warning_names_knobs():
    d = make_dawid_skene(500, 5, 2, coverage=0.5, random_state=0)
    with pytest.warns(ConvergenceWarning, match="Increase max_iter, loosen tol"):
        ds = DawidSkene(max_iter=1, tol=0.0).fit(d.L)
    assert not ds.converged_
    assert ds.n_iter_ == 1


def test_max_iter_zero_is_initialisation_only():
    d = make_dawid_skene(300, 5, 2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = DawidSkene(max_iter=0).fit(d.L)
    assert ds.n_iter_ == 0 and ds.log_likelihood_history_.shape == (1,)


def test_n_init_keeps_best_and_is_deterministic():
    d = make_dawid_skene(800, 4, 3, coverage=0.5, accuracy=(0.3, 0.7), random_state=5)
    one = DawidSkene(n_init=1).fit(d.L)
    many = DawidSkene(n_init=4, random_state=0).fit(d.L)
    again = DawidSkene(n_init=4, random_state=0).fit(d.L)
    assert many.log_likelihood_ >= one.log_likelihood_ - 1e-9
    np.testing.assert_array_equal(many.predict_proba(d.L), again.predict_proba(d.L))


def test_fixed_class_prior_is_kept():
    d = make_dawid_skene(1000, 5, 3, random_state=0)
    prior = np.array([0.5, 0.3, 0.2])
    ds = DawidSkene(class_prior=prior).fit(d.L)
    np.testing.assert_allclose(ds.class_prior_, prior)


def test_smoothing_keeps_probabilities_positive():
    # source 0 never votes class 2: without smoothing that cell would be exactly 0
    L = np.array([[0, 0, 2], [1, 1, 2], [0, 0, 0], [1, 1, 1], [0, 2, 2]])
    ds = DawidSkene(n_classes=3).fit(L)
    assert np.all(ds.confusion_ > 0) and np.all(np.isfinite(ds.confusion_))
    assert np.all(np.isfinite(ds.predict_proba(L)))


def test_sklearn_contract():
    ds = DawidSkene(smoothing=0.5, abstain="model")
    assert clone(ds).get_params() == ds.get_params()
    with pytest.raises(Exception, match="not fitted"):
        ds.predict_proba(np.array([[0, 1]]))


# ---------------------------------------------------------------------------- semi-supervised
def test_known_labels_are_clamped_and_help():
    d = make_dawid_skene(3_000, 4, 3, coverage=0.5, accuracy=(0.3, 0.6), random_state=7)
    y = np.where(np.arange(3_000) % 5 == 0, d.y, -1)
    unsup = DawidSkene().fit(d.L)
    semi = DawidSkene().fit(d.L, y)
    unknown = y < 0
    acc_u = np.mean(unsup.predict(d.L)[unknown] == d.y[unknown])
    acc_s = np.mean(semi.predict(d.L)[unknown] == d.y[unknown])
    assert acc_s >= acc_u - 0.005
    # the known items count as complete data: the fitted prior moves towards their classes
    assert semi.converged_


def test_semi_supervised_long_format_series():
    d = make_dawid_skene(200, 4, 2, random_state=0)
    long = d.L.to_long()
    long["item"] = "it" + long["item"].astype(str)
    y = pd.Series(d.y[:20], index=[f"it{i}" for i in range(20)])
    proba = DawidSkene().fit_predict_proba(long, y)
    assert proba.shape == (len(long["item"].unique()), 2)


# ---------------------------------------------------------------------------- backends
def _with_votes(L: LabelMatrix, item, source, label) -> LabelMatrix:
    """``L``'s items, sources and classes with the given votes."""
    return LabelMatrix(
        item=item,
        source=source,
        label=label,
        n_items=L.n_items,
        n_sources=L.n_sources,
        n_classes=L.n_classes,
        item_ids=L.item_ids,
        source_names=L.source_names,
        classes=L.classes,
    )


def _has_repeats_lm() -> LabelMatrix:
    d = make_dawid_skene(400, 5, 3, coverage=0.5, random_state=4)
    L = d.L
    extra = np.flatnonzero(L.source == 0)[:100]  # source 0 votes twice on 100 items
    rng = np.random.default_rng(0)
    return _with_votes(
        L,
        np.concatenate([L.item, L.item[extra]]),
        np.concatenate([L.source, L.source[extra]]),
        np.concatenate([L.label, rng.integers(0, 3, extra.size)]),
    )


@pytest.mark.parametrize(("abstain", "model"), MODES)
def test_torch_cpu_matches_numpy(abstain, model):
    pytest.importorskip("torch")
    L = _has_repeats_lm()
    y = np.where(np.arange(L.n_items) % 7 == 0, 0, -1)
    a = DawidSkene(abstain=abstain, model=model).fit(L, y)
    b = DawidSkene(abstain=abstain, model=model, device="cpu").fit(L, y)
    assert a.n_iter_ == b.n_iter_
    np.testing.assert_allclose(b.predict_proba(L), a.predict_proba(L), atol=1e-6, rtol=0)
    np.testing.assert_allclose(b.confusion_, a.confusion_, atol=1e-6, rtol=0)
    np.testing.assert_allclose(b.log_likelihood_history_, a.log_likelihood_history_, rtol=1e-9)


def test_repeated_votes_are_observations():
    L = _has_repeats_lm()
    ds = DawidSkene(abstain="model").fit(L)
    h = ds.log_likelihood_history_
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[:-1]))
    # doubling every vote is not the same data as single votes: posteriors sharpen
    dbl = _with_votes(L, np.tile(L.item, 2), np.tile(L.source, 2), np.tile(L.label, 2))
    p1 = DawidSkene(abstain="ignore").fit_predict_proba(L)
    p2 = DawidSkene(abstain="ignore").fit_predict_proba(dbl)
    assert p2.max(axis=1).mean() > p1.max(axis=1).mean()


def test_bad_device():
    pytest.importorskip("torch")
    with pytest.raises(ValueError, match="device must be a torch device"):
        DawidSkene(device="not-a-device").fit(np.array([[0, 1], [1, 1]]))


# ---------------------------------------------------------------------------- properties
@st.composite
def label_matrices(draw):
    n = draw(st.integers(3, 25))
    m = draw(st.integers(2, 5))
    k = draw(st.integers(2, 4))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    L = rng.integers(-1, k, size=(n, m))
    L[0, 0] = 0
    L[1, 0] = k - 1  # every class index occurs, so k is inferred the same way
    return L, k


PROPS = settings(max_examples=25, deadline=None, derandomize=True)


@PROPS
@given(label_matrices(), st.sampled_from(["ignore", "model"]))
def test_rows_are_distributions(data, abstain):
    L, k = data
    p = _fit(L, k, abstain)
    assert np.all(np.isfinite(p)) and np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)


def _fit(L, k, abstain, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DawidSkene(
            n_classes=k, abstain=abstain, max_iter=30, tol=0.0, **kw
        ).fit_predict_proba(L)


@PROPS
@given(label_matrices(), st.sampled_from(["ignore", "model"]), st.integers(0, 1000))
def test_permutation_invariance_and_equivariance(data, abstain, seed):
    L, k = data
    rng = np.random.default_rng(seed)
    base = _fit(L, k, abstain)
    cols = rng.permutation(L.shape[1])
    np.testing.assert_allclose(_fit(L[:, cols], k, abstain), base, atol=1e-8)
    rows = rng.permutation(L.shape[0])
    np.testing.assert_allclose(_fit(L[rows], k, abstain), base[rows], atol=1e-8)
    perm = rng.permutation(k)  # class c -> perm[c]
    relab = np.where(L >= 0, perm[np.maximum(L, 0)], -1)
    np.testing.assert_allclose(_fit(relab, k, abstain)[:, perm], base, atol=1e-8)


@PROPS
@given(label_matrices(), st.sampled_from(["ignore", "model"]))
def test_dense_sparse_long_identical(data, abstain):
    L, k = data
    dense = _fit(L, k, abstain)
    sparse = _fit(sp.csr_matrix(L + 1), k, abstain)
    rows, cols = np.nonzero(L >= 0)
    long = pd.DataFrame({"item": rows, "source": cols, "label": L[rows, cols]})
    lm_long = as_label_matrix(long, n_classes=k)
    # long format only knows items and sources that occur: compare on those
    p_long = _fit(lm_long, k, abstain)
    np.testing.assert_allclose(sparse, dense, atol=1e-12)
    if lm_long.n_sources == L.shape[1]:
        order = np.asarray(lm_long.source_names, dtype=int)
        if abstain == "ignore" or lm_long.n_items == L.shape[0]:
            items = np.asarray(lm_long.item_ids, dtype=int)
            ref = _fit(L[items][:, order], k, abstain)
            np.testing.assert_allclose(p_long, ref, atol=1e-8)


@PROPS
@given(label_matrices())
def test_all_abstain_source_changes_nothing_under_ignore(data):
    L, k = data
    extra = np.hstack([L, np.full((L.shape[0], 1), -1)])
    # equal up to where EM stops (a constant in the objective can move a bit-exact stop)
    np.testing.assert_allclose(_fit(extra, k, "ignore"), _fit(L, k, "ignore"), atol=1e-8)


@settings(max_examples=10, deadline=None, derandomize=True)
@given(label_matrices(), st.sampled_from(["ignore", "model"]))
def test_numpy_and_torch_agree_property(data, abstain):
    pytest.importorskip("torch")
    L, k = data
    np.testing.assert_allclose(
        _fit(L, k, abstain, device="cpu"), _fit(L, k, abstain), atol=1e-6, rtol=0
    )


# ---------------------------------------------------------------------------- bad input
def test_one_class_only_is_a_clear_error():
    with pytest.raises(ValueError, match="Only 1 class could be inferred"):
        DawidSkene().fit(np.zeros((5, 3), dtype=int))


def test_one_class_only_with_n_classes_fits():
    p = DawidSkene(n_classes=2).fit_predict_proba(np.zeros((5, 3), dtype=int))
    assert np.all(p[:, 0] > 0.5)


def test_source_that_never_votes_warns():
    L = np.array([[0, 1, -1], [1, 1, -1], [0, 0, -1], [1, 0, -1]])
    with pytest.warns(UserWarning, match="never vote"):
        ds = DawidSkene(abstain="ignore").fit(L)
    assert np.all(np.isfinite(ds.predict_proba(L)))


def test_no_votes_at_all_is_a_clear_error():
    with pytest.raises(ValueError, match="no votes"):
        DawidSkene(n_classes=2).fit(np.full((4, 3), -1))


def test_k_equal_one_is_a_clear_error():
    with pytest.raises(ValueError, match=r"'n_classes' parameter of DawidSkene .*\[2, inf\)"):
        DawidSkene(n_classes=1).fit(np.zeros((3, 2), dtype=int))


def test_single_item():
    p = DawidSkene(n_classes=2).fit_predict_proba(np.array([[0, 0, 1]]))
    assert p.shape == (1, 2) and np.all(np.isfinite(p)) and p[0, 0] > 0.5


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"abstain": "drop"}, "'abstain' parameter of DawidSkene must be a str among"),
        ({"model": "two-coin"}, "'model' parameter"),
        ({"smoothing": -1.0}, r"'smoothing' parameter .* range \[0.0, inf\)"),
        ({"max_iter": 1.5}, "'max_iter' parameter"),
        ({"n_init": 0}, "'n_init' parameter"),
        ({"init": "kmeans"}, "'init' parameter"),
        ({"class_prior": [0.5, 0.6]}, "class_prior must be None"),
        ({"class_prior": [1.0, 0.0]}, "class_prior must be None"),
    ],
)
def test_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        DawidSkene(**params).fit(np.array([[0, 1], [1, 1], [0, 0]]))


def test_predict_wrong_number_of_sources():
    ds = DawidSkene().fit(np.array([[0, 1], [1, 1], [0, 0]]))
    with pytest.raises(ValueError, match="sources"):
        ds.predict_proba(np.array([[0, 1, 1]]))


# ---------------------------------------------------------------------------- abstain modes
def test_auto_picks_model_for_unipolar_sources():
    # three unipolar "labeling functions" that fire on their class only, with abstains
    d = make_dawid_skene(600, 6, 2, random_state=0)
    dense = d.L.to_dense()
    lf = np.full_like(dense, -1)
    for j in range(6):
        c = j % 2
        lf[:, j] = np.where(dense[:, j] == c, c, -1)
    ds = DawidSkene().fit(lf)
    assert ds.abstain_ == "model"
    assert DawidSkene().fit(dense).abstain_ == "ignore"


def test_model_mode_learns_from_unipolar_abstains():
    """Unipolar sources carry their information in *whether* they vote; the missing-at-random
    model cannot use it, the abstain model can."""
    rng = np.random.default_rng(0)
    n = 4000
    y = rng.integers(0, 2, n)
    lf = np.full((n, 6), -1)
    for j in range(6):
        c = j % 2
        fire = rng.random(n) < np.where(y == c, 0.6, 0.1)
        lf[fire, j] = c
    acc = {}
    for ab in ("ignore", "model"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PriorCollapseWarning)
            acc[ab] = np.mean(DawidSkene(abstain=ab).fit_predict(lf) == y)
    acc_mv = np.mean(MajorityVote().fit_predict(lf) == y)
    assert acc["model"] > acc_mv and acc["model"] > acc["ignore"]


# ------------------------------------------------------------- diagonal_smoothing="auto"
def test_auto_diagonal_without_labels_is_weak_prior():
    d = make_dawid_skene(800, 6, 3, coverage=0.6, random_state=3)
    auto = DawidSkene().fit(d.L)
    assert auto.diagonal_smoothing_ == 0.1 and auto.cv_results_ is None
    fixed = DawidSkene(diagonal_smoothing=0.1).fit(d.L)
    np.testing.assert_array_equal(auto.predict_proba(d.L), fixed.predict_proba(d.L))
    # too few known labels for 5 folds: the same fallback
    y = np.full(800, -1)
    y[:9] = d.y[:9]
    few = DawidSkene().fit(d.L, y)
    assert few.cv_results_ is None and few.diagonal_smoothing_ == 0.1


def test_auto_diagonal_cross_validates_on_known_items():
    d = make_dawid_skene(1_500, 6, 3, coverage=0.5, accuracy=(0.4, 0.8), random_state=4)
    y = np.where(np.arange(1_500) % 10 == 0, d.y, -1)
    ds = DawidSkene(random_state=0).fit(d.L, y)
    cv = ds.cv_results_
    grid = cv["diagonal_smoothing"]
    assert grid[0] == 0.1 and np.allclose(np.diff(np.log10(grid)), 1.0)
    assert grid[-1] >= 10 * np.bincount(d.L.source).max()  # the majority-vote end
    assert cv["accuracy"].shape == grid.shape
    assert np.all((cv["accuracy"] >= 0) & (cv["accuracy"] <= 1))
    assert cv["n_scored"] == np.count_nonzero((y >= 0) & d.L.covered())
    best = np.flatnonzero(cv["accuracy"] == cv["accuracy"].max())
    assert ds.diagonal_smoothing_ == cv["chosen"] and cv["chosen"] in grid[best]
    # the final fit is the plain fit at the chosen value, and the whole thing is reproducible
    ref = DawidSkene(diagonal_smoothing=cv["chosen"]).fit(d.L, y)
    np.testing.assert_allclose(ds.predict_proba(d.L), ref.predict_proba(d.L), atol=1e-12)
    again = DawidSkene(random_state=0).fit(d.L, y)
    np.testing.assert_array_equal(again.cv_results_["accuracy"], cv["accuracy"])


def test_huge_diagonal_smoothing_is_majority_vote():
    """As d swamps the confusion counts, the posterior mode is the majority vote."""
    d = make_dawid_skene(1_000, 7, 3, coverage=0.7, random_state=5)
    counts = d.L.class_counts()
    top = np.sort(counts, axis=1)
    clear = top[:, -1] > top[:, -2]  # items without a majority tie
    p = DawidSkene(abstain="ignore", diagonal_smoothing=1e7).fit_predict_proba(d.L)
    np.testing.assert_array_equal(p.argmax(1)[clear], counts.argmax(1)[clear])


def test_auto_diagonal_bad_value():
    with pytest.raises(ValueError, match=r"'diagonal_smoothing' parameter .*among \{'auto'\}"):
        DawidSkene(diagonal_smoothing="best").fit(np.array([[0, 1], [1, 1], [0, 0]]))


def test_prior_collapse_warns_on_one_class_predictions():
    """Unipolar sources under abstain='ignore': the votes carry no information, every item
    gets the same posterior, and all are predicted as one class although the votes split."""
    rng = np.random.default_rng(0)
    n = 2_000
    y = rng.integers(0, 2, n)
    lf = np.full((n, 6), -1)
    for j in range(6):
        fire = rng.random(n) < np.where(y == j % 2, 0.6, 0.1)
        lf[fire, j] = j % 2
    with pytest.warns(PriorCollapseWarning, match="predicted share"):
        DawidSkene(abstain="ignore").fit(lf)


# ------------------------------------------------------------------ kernels: fast vs general
def test_two_class_softmax_matches_general_path():
    from wsagg.aggregation.dawid_skene.backends.numpy import _softmax_rows, row_reduce

    rng = np.random.default_rng(0)
    S = rng.normal(scale=300.0, size=(500, 2))  # huge gaps: e^-600 terms, no overflow
    S[:5] = [[0.0, 0.0], [1e3, -1e3], [-800.0, -800.0], [5.0, 5.0 + 1e-12], [-1e4, 3.0]]
    idx, yk = np.array([3, 7]), np.array([1, 0])
    q2, ll2 = _softmax_rows(S.copy(), idx, yk)
    # the general path: max-shift, exp, normalise
    mx = row_reduce(S, np.maximum)
    E = np.exp(S - mx[:, None])
    tot = E.sum(axis=1)
    ref = E / tot[:, None]
    row_ll = mx + np.log(tot)
    ll_ref = row_ll.sum() - row_ll[idx].sum() + S[idx, yk].sum()
    ref[idx] = 0.0
    ref[idx, yk] = 1.0
    np.testing.assert_allclose(q2, ref, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(ll2, ll_ref, rtol=1e-12)
    assert np.all(np.isfinite(q2)) and np.allclose(q2.sum(axis=1), 1.0)


@pytest.mark.parametrize("abstain", ["ignore", "model"])
def test_initial_posterior_from_design_matches_counts(abstain):
    from wsagg.aggregation.dawid_skene.em import build_design, initial_posterior

    d = make_dawid_skene(300, 5, 3, coverage=0.4, random_state=0)
    # repeated votes (model mode then appends presence columns to the design)
    lm = LabelMatrix(
        np.r_[d.L.item, d.L.item[:40]], np.r_[d.L.source, d.L.source[:40]],
        np.r_[d.L.label, d.L.label[:40]], 300, 5, 3, np.arange(300), np.arange(5), np.arange(3),
    )
    y = np.where(np.arange(300) % 4 == 0, d.y, -1)
    np.testing.assert_allclose(
        initial_posterior(lm, y, build_design(lm, abstain)), initial_posterior(lm, y), atol=1e-15
    )


def test_design_separate_forces_the_presence_columns():
    """``separate=`` (used per partition by wsagg.distributed) forces the design's form; with
    ``None`` it is ``[V | P]`` exactly under ``abstain="model"`` with repeated votes."""
    from wsagg.aggregation.dawid_skene.em import build_design

    L = _has_repeats_lm()
    m, k = L.n_sources, L.n_classes
    auto = build_design(L, "model")
    assert auto.separate_presence and auto.X.shape == (L.n_items, m * k + m)
    assert not build_design(L, "ignore").separate_presence
    forced = build_design(L, "ignore", separate=True)
    assert forced.separate_presence and (forced.X != auto.X).nnz == 0
    plain = build_design(L, "model", separate=False)
    assert not plain.separate_presence and (plain.X != L.one_hot()).nnz == 0
    presence = auto.X[:, m * k :].toarray()
    voted = np.zeros((L.n_items, m))
    voted[L.item, L.source] = 1.0
    np.testing.assert_array_equal(presence, voted)


def test_resolve_abstain_from_vote_counts():
    from wsagg.aggregation.dawid_skene.em import resolve_abstain, vote_counts

    rng = np.random.default_rng(0)
    lf = np.full((300, 4), -1)
    for j in range(4):  # unipolar sources with abstains
        lf[rng.random(300) < 0.3, j] = j % 2
    lm = as_label_matrix(lf)
    counts = vote_counts(lm)
    np.testing.assert_array_equal(counts.sum(axis=1), np.bincount(lm.source, minlength=4))
    assert resolve_abstain("auto", counts, lm.n_votes, lm.n_items) == "model"
    assert resolve_abstain("ignore", counts, lm.n_votes, lm.n_items) == "ignore"
    full = as_label_matrix(rng.integers(0, 2, (300, 4)))  # no abstains: "ignore"
    assert resolve_abstain("auto", vote_counts(full), full.n_votes, full.n_items) == "ignore"


# -- the prior-collapse detector (issue 15, pattern (a)) --------------------------------


def _fitted_ds(k=3):
    from wsagg.datasets import make_dawid_skene

    d = make_dawid_skene(200, 5, k, coverage=0.8, random_state=0)
    return DawidSkene(random_state=0).fit(d.L)


def test_prior_collapse_fires_on_a_class_whose_prior_fell_below_its_label_share():
    est = _fitted_ds()
    # the measured case: a class with a 0.20 share among the known labels got prior 0.023
    est.class_prior_ = np.array([0.023, 0.5, 0.477])
    with pytest.warns(PriorCollapseWarning, match="known labels"):
        est._check_prior_collapse(np.array([0.15, 0.45, 0.40]), None,
                                  np.array([0.20, 0.42, 0.38]))


def test_prior_collapse_fires_on_an_inflated_prior_of_a_class_rarely_voted():
    est = _fitted_ds()
    # the measured case: a class with 0.1% of the votes got a prior of 0.137
    est.class_prior_ = np.array([0.137, 0.5, 0.363])
    with pytest.warns(PriorCollapseWarning, match="far above its majority-vote share"):
        est._check_prior_collapse(np.array([0.001, 0.55, 0.449]))


def test_prior_collapse_is_silent_when_the_prior_matches_the_shares():
    est = _fitted_ds()
    est.class_prior_ = np.array([0.2, 0.45, 0.35])
    with warnings.catch_warnings():
        warnings.simplefilter("error", PriorCollapseWarning)
        est._check_prior_collapse(np.array([0.18, 0.46, 0.36]), None,
                                  np.array([0.22, 0.43, 0.35]))


# -- issue 14: close to the hardware (design, row blocks, threads, float32, SQUAREM) -----


def _lm_variants():
    """Dense, sparse and unsorted long-format label matrices, one with repeated votes."""
    d = make_dawid_skene(700, 6, 3, coverage=0.5, random_state=3)
    dense = d.L.to_dense()
    long = d.L.to_long().sample(frac=1.0, random_state=0)  # votes in no particular order
    return [
        as_label_matrix(dense),
        as_label_matrix(sp.csr_matrix(dense + 1)),
        as_label_matrix(long, n_classes=3),
        _has_repeats_lm(),
    ]


def test_fast_design_equals_label_matrix_one_hot_and_is_cached():
    from wsagg.aggregation.dawid_skene.em import column_counts, one_hot, vote_counts

    for lm in _lm_variants():
        V = one_hot(lm)
        ref = lm.one_hot()
        assert V.shape == ref.shape and (V != ref).nnz == 0
        assert V.indices.dtype == np.int32 and V.indptr.dtype == np.int32
        assert one_hot(lm) is V  # converted once per LabelMatrix
        np.testing.assert_array_equal(column_counts(V, lm.n_sources, lm.n_classes),
                                      vote_counts(lm))
        V32 = one_hot(lm, np.float32)
        assert V32.dtype == np.float32 and (V32 != ref).nnz == 0


def test_fit_and_predict_on_one_label_matrix_share_the_design(monkeypatch):
    from wsagg.aggregation.dawid_skene import em
    from wsagg.aggregation.dawid_skene import estimator as est_mod

    lm = as_label_matrix(make_dawid_skene(500, 5, 2, random_state=0).L.to_dense())
    ds = DawidSkene().fit(lm)
    V = em.one_hot(lm)  # built by the fit, cached on lm
    seen = []
    real = est_mod.build_design
    monkeypatch.setattr(est_mod, "build_design",
                        lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    p = ds.predict_proba(lm)
    assert seen and seen[0].X is V  # no second conversion
    np.testing.assert_allclose(p, DawidSkene().fit_predict_proba(lm), atol=1e-12)


def test_block_views_share_the_votes():
    """Row blocks and their transposes are views of the design (scipy's constructors would
    copy them: that doubled the memory of the votes)."""
    from wsagg.aggregation.dawid_skene.backends.numpy import NumpyBackend

    X = sp.random(30_000, 40, density=0.25, format="csr", random_state=0)
    b = NumpyBackend(X)
    assert len(b.blocks) > 1
    for blk in b.blocks:
        for M in (blk.X, blk.XT):
            assert np.shares_memory(M.data, X.data) and np.shares_memory(M.indices, X.indices)


def _brute_e_step(X, T, b, known):
    S = X @ T + b
    mx = S.max(axis=1, keepdims=True)
    lse = (mx + np.log(np.exp(S - mx).sum(axis=1, keepdims=True)))[:, 0]
    q = np.exp(S - lse[:, None])
    idx = np.flatnonzero(known >= 0)
    row_ll = lse.copy()
    row_ll[idx] = S[idx, known[idx]]
    q[idx] = 0.0
    q[idx, known[idx]] = 1.0
    return row_ll.sum(), X.T @ q, q.sum(axis=0)


@pytest.mark.parametrize("k", [2, 3])
def test_blocked_e_step_matches_brute_force(monkeypatch, k):
    """The k = 2 log-odds path (and the general path) on many row blocks and two threads,
    with clamped items, against the textbook E-step."""
    from wsagg.aggregation.dawid_skene.backends import numpy as nb

    monkeypatch.setattr(nb, "_BLOCK_VOTES", 500)
    monkeypatch.setattr(nb, "_MIN_BLOCK_ROWS", 64)
    d = make_dawid_skene(3_000, 8, k, coverage=0.5, random_state=1)
    X = d.L.one_hot()
    rng = np.random.default_rng(0)
    T = rng.normal(scale=3.0, size=(X.shape[1], k))
    T[:3] *= 200.0  # huge log-odds on some rows: no overflow
    b = rng.normal(size=k)
    known = np.where(rng.random(3_000) < 0.2, d.y, -1)
    ll_ref, st_ref, qs_ref = _brute_e_step(X, T, b, known)
    for n_jobs in (1, 2):
        be = nb.NumpyBackend(X, known, n_jobs=n_jobs)
        assert len(be.blocks) > 5
        ll, st, qs = be.e_step(T, b)
        be.close()
        np.testing.assert_allclose(ll, ll_ref, rtol=1e-12)
        np.testing.assert_allclose(st, st_ref, rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(qs, qs_ref, rtol=1e-12)
        free = be.last_posterior()
        S = X @ T + b
        ref = np.exp(S - S.max(axis=1, keepdims=True))
        ref /= ref.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(free, ref, rtol=1e-10, atol=1e-300)
        np.testing.assert_allclose(be.posterior(T, b), ref, rtol=1e-10, atol=1e-300)


def test_results_do_not_depend_on_n_jobs(monkeypatch):
    from wsagg.aggregation.dawid_skene.backends import numpy as nb

    monkeypatch.setattr(nb, "_BLOCK_VOTES", 2_000)
    monkeypatch.setattr(nb, "_MIN_BLOCK_ROWS", 100)
    d = make_dawid_skene(4_000, 8, 3, coverage=0.5, random_state=2)
    y = np.where(np.arange(4_000) % 9 == 0, d.y, -1)
    fits = [DawidSkene(n_jobs=j, random_state=0).fit(d.L, y) for j in (1, 2, -1, None)]
    for other in fits[1:]:
        assert other.n_iter_ == fits[0].n_iter_
        np.testing.assert_array_equal(other.confusion_, fits[0].confusion_)
        np.testing.assert_array_equal(other.predict_proba(d.L), fits[0].predict_proba(d.L))


def test_n_jobs_follows_the_thread_pool_limits():
    from threadpoolctl import threadpool_limits

    from wsagg.aggregation.dawid_skene.backends.numpy import _cpu_count, effective_n_jobs

    with threadpool_limits(1):
        assert effective_n_jobs(None) == 1
    assert effective_n_jobs(-1) == _cpu_count()
    assert effective_n_jobs(1) == 1 and effective_n_jobs(10**6) == _cpu_count()


@pytest.mark.parametrize(
    ("k", "abstain", "model", "semi"),
    [(2, "ignore", "full", False), (2, "model", "full", True), (3, "ignore", "full", True),
     (4, "model", "one-coin", False), (10, "ignore", "full", False)],
)
def test_float32_agrees_with_float64(k, abstain, model, semi):
    """Same iterations in float32 and float64: posteriors within 1e-5 (measured ~1e-6)."""
    n = 20_000 if k == 2 else 5_000
    d = make_dawid_skene(n, 12, k, coverage=0.5, random_state=k)
    y = np.where(np.arange(n) % 10 == 0, d.y, -1) if semi else None
    kw = {"abstain": abstain, "model": model, "diagonal_smoothing": 0.1, "max_iter": 30,
          "tol": 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = DawidSkene(**kw).fit(d.L, y)
        b = DawidSkene(dtype=np.float32, **kw).fit(d.L, y)
        again = b.fit_predict_proba(d.L, y)
    pa, pb = a.predict_proba(d.L), b.predict_proba(d.L)
    assert pb.dtype == np.float64
    assert np.abs(pa - pb).max() < 1e-5
    # (float64 may stop early at an exact fixed point, where the objective stops changing)
    h = min(a.n_iter_, b.n_iter_) + 1
    np.testing.assert_allclose(b.log_likelihood_history_[:h], a.log_likelihood_history_[:h],
                               rtol=1e-7)
    np.testing.assert_allclose(again, pb, atol=1e-5)


def test_float32_converged_fit_agrees_with_float64():
    """Both run to the fixed point (40 iterations): posteriors within 1e-5, objectives
    within float32's resolution; float32's own stopping test (at max(tol, 1e-6) per item)
    converges."""
    d = make_dawid_skene(50_000, 20, 2, coverage=0.5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = DawidSkene(tol=0.0, max_iter=40).fit(d.L)
        b = DawidSkene(dtype="float32", tol=0.0, max_iter=40).fit(d.L)
    assert np.abs(a.predict_proba(d.L) - b.predict_proba(d.L)).max() < 1e-5
    assert abs(a.log_likelihood_ - b.log_likelihood_) < 1e-7 * abs(a.log_likelihood_)
    assert DawidSkene(dtype="float32").fit(d.L).converged_


def test_bad_dtype():
    with pytest.raises(ValueError, match=r"dtype must be np\.float64"):
        DawidSkene(dtype=np.int32).fit(np.array([[0, 1], [1, 1]]))


_SQUAREM_CASES = [
    # (n, m, k, accuracy, abstain, model, semi, class_prior)
    (4_000, 8, 3, (0.35, 0.6), "ignore", "full", False, None),
    (4_000, 8, 3, (0.35, 0.6), "ignore", "one-coin", False, None),
    (3_000, 6, 2, (0.55, 0.7), "model", "full", True, None),
    (3_000, 6, 4, (0.3, 0.5), "model", "one-coin", False, None),
    (3_000, 6, 3, (0.35, 0.6), "ignore", "full", False, [0.5, 0.3, 0.2]),
]


@pytest.mark.parametrize("case", _SQUAREM_CASES)
def test_squarem_reaches_the_plain_em_fixed_point(case):
    """SQUAREM and plain EM, both run to a tight tolerance, end at the same fixed point;
    SQUAREM in fewer E-steps, its objective never decreasing."""
    n, m, k, acc, abstain, model, semi, prior = case
    d = make_dawid_skene(n, m, k, coverage=0.5, accuracy=acc, random_state=1)
    y = np.where(np.arange(n) % 8 == 0, d.y, -1) if semi else None
    kw = {"abstain": abstain, "model": model, "class_prior": prior, "diagonal_smoothing": 0.1,
          "tol": 1e-13, "max_iter": 20_000}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PriorCollapseWarning)
        plain = DawidSkene(**kw).fit(d.L, y)
        fast = DawidSkene(accelerator="squarem", **kw).fit(d.L, y)
    assert fast.converged_
    assert fast.n_iter_ < plain.n_iter_
    h = fast.log_likelihood_history_
    assert h.shape == (fast.n_iter_ + 1,) and fast.log_likelihood_ == h[-1]
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[:-1]))
    assert abs(fast.log_likelihood_ - plain.log_likelihood_) <= 1e-6 * abs(plain.log_likelihood_)
    np.testing.assert_allclose(fast.predict_proba(d.L), plain.predict_proba(d.L), atol=1e-4)
    np.testing.assert_allclose(fast.confusion_, plain.confusion_, atol=1e-4)


def test_squarem_falls_back_to_plain_em_when_extrapolation_decreases(monkeypatch):
    """Every extrapolated point made terrible (uniform confusions): each is rejected, the
    plain EM step is taken instead, and the run is exactly plain EM."""
    from wsagg.aggregation.dawid_skene import estimator as est_mod

    real = est_mod.params_from_vector

    def terrible(x, like, hp):
        p = real(x, like, hp)
        p.log_conf = np.full_like(p.log_conf, -np.log(p.log_conf.shape[2]))
        return p

    monkeypatch.setattr(est_mod, "params_from_vector", terrible)
    d = make_dawid_skene(2_000, 6, 3, coverage=0.5, accuracy=(0.4, 0.7), random_state=0)
    plain = DawidSkene(diagonal_smoothing=0.1).fit(d.L)
    fast = DawidSkene(diagonal_smoothing=0.1, accelerator="squarem").fit(d.L)
    assert fast.n_iter_ == plain.n_iter_
    np.testing.assert_allclose(fast.log_likelihood_history_, plain.log_likelihood_history_,
                               rtol=1e-13)
    np.testing.assert_allclose(fast.predict_proba(d.L), plain.predict_proba(d.L), atol=1e-12)


def test_squarem_max_iter_and_warning():
    d = make_dawid_skene(500, 5, 3, coverage=0.5, accuracy=(0.3, 0.5), random_state=0)
    with pytest.warns(ConvergenceWarning):
        ds = DawidSkene(accelerator="squarem", max_iter=3, tol=0.0).fit(d.L)
    assert ds.n_iter_ == 3 and ds.log_likelihood_history_.shape == (4,)
    ds0 = DawidSkene(accelerator="squarem", max_iter=0).fit(d.L)
    np.testing.assert_allclose(ds0.predict_proba(d.L), DawidSkene(max_iter=0).fit(d.L)
                               .predict_proba(d.L))


def test_chunked_predict_memory():
    """predict_proba on a LabelMatrix: the result plus one block's temporaries."""
    import tracemalloc

    d = make_dawid_skene(200_000, 10, 2, coverage=0.5, random_state=0)
    ds = DawidSkene().fit(d.L)
    ds.predict_proba(d.L)  # the design is cached on d.L from here on
    tracemalloc.start()
    p = ds.predict_proba(d.L)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < p.nbytes + 16 * 2**20, peak


def test_fixed_class_prior_binds_under_abstain_model(monkeypatch):
    """Issue 15, pattern (d): under abstain="model" the abstain terms are a free class bias,
    so a fixed class_prior used to change little: the voting rates absorbed it. Now the fixed
    prior is the posteriors' class marginal; EM's objective still never decreases, and
    predict_proba on the training rows gives the fit's posteriors (the offsets are kept)."""
    from wsagg.aggregation.dawid_skene import estimator as est_mod

    rng = np.random.default_rng(0)
    n = 3_000
    y = (rng.random(n) < 0.4).astype(int)
    cols = []
    for j in range(6):  # unipolar sources: each fires (almost) only on its class
        c = j % 2
        rate = 0.7 if c == 0 else 0.12
        fire = ((y == c) & (rng.random(n) < rate)) | ((y != c) & (rng.random(n) < 0.03))
        cols.append(np.where(fire, c, -1))
    L = np.stack(cols, axis=1)
    prior = np.array([0.75, 0.25])
    with monkeypatch.context() as mp:  # the old behaviour: the prior enters, does not bind
        mp.setattr(est_mod, "binds_prior", lambda hp: False)
        old = DawidSkene(abstain="model", class_prior=prior).fit_predict_proba(L)
    assert abs(old.mean(axis=0)[1] - prior[1]) > 0.05  # (absorbed by the voting rates)
    bound = DawidSkene(abstain="model", class_prior=prior)
    proba = bound.fit_predict_proba(L)
    np.testing.assert_allclose(proba.mean(axis=0), prior, atol=1e-6)
    np.testing.assert_allclose(bound.class_prior_, prior)
    h = bound.log_likelihood_history_
    assert bound.converged_ and np.all(np.diff(h) >= -1e-9 * np.abs(h[:-1]))
    np.testing.assert_allclose(bound.predict_proba(L), proba, atol=1e-10)
    # semi-supervised: the known items stay clamped and the marginal still binds
    yk = np.where(np.arange(n) % 10 == 0, y, -1)
    q = DawidSkene(abstain="model", class_prior=prior).fit_predict_proba(L, yk)
    q[yk >= 0] = np.eye(2)[yk[yk >= 0]]  # (the output is unclamped; the constraint is not)
    np.testing.assert_allclose(q.mean(axis=0), prior, atol=1e-6)
    # abstain="ignore" is unchanged: there the prior enters the E-step as a plain prior
    ign = DawidSkene(abstain="ignore", class_prior=prior).fit(L)
    assert ign._params.prior_offset is None


def test_binding_prior_refuses_a_partitioned_fit():
    da = pytest.importorskip("dask.array", reason="the dask extra is not installed")
    L = np.array([[0, -1], [1, 1], [-1, 0], [1, -1]] * 10)
    with pytest.raises(ValueError, match="fit in memory"):
        DawidSkene(abstain="model", class_prior=[0.5, 0.5]).fit(da.from_array(L, chunks=(8, -1)))


@pytest.mark.parametrize("seed", [0, 1])
def test_population_shrinkage_on_sparse_workers(seed):
    """Issue 15, pattern (b): 400 workers with ~6 votes each. A full confusion matrix per
    worker overfits; the hierarchical prior (shrinkage="population") pools them and must beat
    both the full model and the one-coin model, in accuracy and in log loss."""
    d = make_dawid_skene(600, 400, 4, coverage=0.01, accuracy=(0.5, 0.8), random_state=seed)

    def score(**kw):
        p = DawidSkene(**kw).fit_predict_proba(d.L)
        acc = float(np.mean(p.argmax(1) == d.y))
        nll = float(-np.log(np.clip(p[np.arange(d.y.size), d.y], 1e-12, 1)).mean())
        return acc, nll

    full, coin, shrunk = score(), score(model="one-coin"), score(shrinkage="population")
    assert shrunk[0] > full[0] + 0.03 and shrunk[0] > coin[0]
    assert shrunk[1] < 0.75 * min(full[1], coin[1])


def test_population_shrinkage_is_vote_count_aware():
    """A worker with 3 votes stays near the population's rows; one with 2,000 follows its own
    counts; the learned strength is finite and positive."""
    d = make_dawid_skene(2_000, 30, 3, coverage=np.r_[[1.0] * 5, [0.0015] * 25],
                         accuracy=(0.55, 0.85), random_state=0)
    ds = DawidSkene(shrinkage="population").fit(d.L)
    alpha = ds.shrinkage_strength_
    assert alpha is not None and 0 < alpha < 1e5
    votes = np.bincount(d.L.source, minlength=30)
    mu = ds._params.population
    conf = ds.confusion_
    sparse = np.flatnonzero((votes > 0) & (votes <= 5))
    dense = np.flatnonzero(votes >= 1000)
    assert sparse.size and dense.size
    to_pop = lambda j: np.abs(conf[j] - mu).max()  # noqa: E731
    own = lambda j: np.abs(conf[j] - d.confusion[j]).max()  # noqa: E731
    assert max(to_pop(j) for j in sparse) < min(to_pop(j) for j in dense)
    assert max(own(j) for j in dense) < 0.05
    with pytest.raises(ValueError, match="one-coin"):
        DawidSkene(shrinkage="population", model="one-coin").fit(d.L)
    assert DawidSkene().fit(d.L).shrinkage_strength_ is None
