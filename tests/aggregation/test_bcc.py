"""Tests of wsagg.aggregation.bcc.BCC: brute-force checks of the variational fixed point and
the ELBO, parameter recovery, communities, clamping, the estimator contract, bad input."""

from __future__ import annotations

import itertools
import pickle
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.special import digamma, gammaln, logsumexp
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from wsagg import MajorityVote
from wsagg.aggregation.bcc import BCC
from wsagg.datasets import load_shared, make_dawid_skene
from wsagg.labels import as_label_matrix

MODES = [None, 2]  # plain BCC, two communities


# ----------------------------------------------------------------------------- helpers
def _elog(a: np.ndarray) -> np.ndarray:
    return digamma(a) - digamma(a.sum(axis=-1, keepdims=True))


def _log_beta(a: np.ndarray) -> float:
    return float(gammaln(a).sum() - gammaln(a.sum()))


def _tiny() -> np.ndarray:
    """5 items, 3 workers, 2 classes, two abstains."""
    return np.array([[0, 0, 1], [1, 1, 1], [0, -1, 0], [1, 1, -1], [0, 1, 0]])


def _counts_given_z(L: np.ndarray, z: np.ndarray, k: int) -> np.ndarray:
    """``N[j, c, l]``: votes ``l`` of worker ``j`` on the items of class ``c`` (loops)."""
    n, m = L.shape
    N = np.zeros((m, k, k))
    for i in range(n):
        for j in range(m):
            if L[i, j] >= 0:
                N[j, z[i], L[i, j]] += 1
    return N


def _crowd(seed: int, n: int = 500, k: int = 3, per_item: int = 7, per_worker: int = 5,
           frac_bad: float = 0.35, acc: float = 0.75) -> tuple[pd.DataFrame, np.ndarray,
                                                               np.ndarray]:
    """Crowd votes from two worker communities, good (accuracy ``acc``) and adversarial
    (the good confusion with its columns shifted cyclically), each worker voting on
    ``per_worker`` random items. Returns the long-format votes, the gold labels and which
    workers are adversarial."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    m = n * per_item // per_worker
    bad = rng.random(m) < frac_bad
    workers = np.repeat(np.arange(m), per_worker)
    rng.shuffle(workers)
    items = np.repeat(np.arange(n), per_item)[: workers.size]
    good = np.full((k, k), (1 - acc) / (k - 1))
    np.fill_diagonal(good, acc)
    conf = np.where(bad[:, None, None], np.roll(good, 1, axis=1)[None], good[None])
    cdf = np.cumsum(conf[workers, y[items]], axis=1)
    labels = (rng.random(items.size)[:, None] > cdf).sum(axis=1)
    df = pd.DataFrame({"item": items, "source": workers, "label": labels})
    return df, y, bad


def _documented(cls) -> set[str]:
    doc = cls.__doc__ or ""
    match = re.search(r"\n\s*Attributes\n\s*-+\n(.*?)(\n\s*(See Also|Notes|References|Examples)"
                      r"\n\s*-+\n|\Z)", doc, re.S)
    assert match
    names: set[str] = set()
    for line in match.group(1).splitlines():
        head = re.match(r"^\s{0,8}([A-Za-z][A-Za-z0-9_]*_(?:\s*,\s*[A-Za-z][A-Za-z0-9_]*_)*)"
                        r"\s*(?::|$)", line)
        if head:
            names.update(n.strip() for n in head.group(1).split(","))
    return names


# -------------------------------------------------------------- brute force: fixed point
def test_fixed_point_and_elbo_by_loops():
    """At convergence the fitted q's satisfy the VB updates written out with loops, and the
    ELBO written term by term equals ``elbo_``."""
    L = _tiny()
    n, m = L.shape
    k = 2
    b = BCC(tol=1e-13, max_iter=5000).fit(L)
    assert b.converged_
    r = b.predict_proba(L)
    alpha0 = 1.0 + np.eye(k)  # diagonal_strength=1: Dir(1 + e_c)
    nu0 = np.ones(k)
    nu = nu0 + r.sum(axis=0)
    a = alpha0[None].repeat(m, axis=0)
    for i in range(n):
        for j in range(m):
            if L[i, j] >= 0:
                a[j, :, L[i, j]] += r[i]
    np.testing.assert_allclose(b.class_prior_concentration_, nu, atol=1e-6)
    np.testing.assert_allclose(b.confusion_concentration_[:, 0], a, atol=1e-6)
    # E-step with loops
    elog_pi, elog = _elog(nu), _elog(a)
    q = np.zeros((n, k))
    for i in range(n):
        lp = elog_pi.copy()
        for j in range(m):
            if L[i, j] >= 0:
                lp += elog[j, :, L[i, j]]
        q[i] = np.exp(lp - logsumexp(lp))
    np.testing.assert_allclose(r, q, atol=1e-6)
    # ELBO = E[log p(L, z, pi, Pi)] - E[log q]
    elbo = float((r * elog_pi).sum()) - float((r * np.log(r)).sum())
    for i in range(n):
        for j in range(m):
            if L[i, j] >= 0:
                elbo += float(r[i] @ elog[j, :, L[i, j]])
    elbo += -_log_beta(nu0) + float(((nu0 - 1) * elog_pi).sum())
    elbo -= -_log_beta(nu) + float(((nu - 1) * elog_pi).sum())
    for j, c in itertools.product(range(m), range(k)):
        elbo += -_log_beta(alpha0[c]) + float(((alpha0[c] - 1) * elog[j, c]).sum())
        elbo -= -_log_beta(a[j, c]) + float(((a[j, c] - 1) * elog[j, c]).sum())
    assert elbo == pytest.approx(b.elbo_, abs=1e-7)
    np.testing.assert_allclose(b.confusion_, a / a.sum(axis=2, keepdims=True), atol=1e-8)


def test_elbo_below_exact_log_evidence():
    """The ELBO lower-bounds the exact log evidence, computed by enumerating the 2^5 class
    assignments with the Dirichlet-multinomial closed forms; VB is a tight bound here."""
    L = _tiny()
    n, m = L.shape
    k = 2
    alpha0 = 1.0 + np.eye(k)
    terms = []
    for z in itertools.product(range(k), repeat=n):
        z = np.array(z)
        t = _log_beta(np.ones(k) + np.bincount(z, minlength=k)) - _log_beta(np.ones(k))
        N = _counts_given_z(L, z, k)
        for j, c in itertools.product(range(m), range(k)):
            t += _log_beta(alpha0[c] + N[j, c]) - _log_beta(alpha0[c])
        terms.append(t)
    log_evidence = float(logsumexp(terms))
    b = BCC(tol=1e-12, max_iter=5000).fit(L)
    assert b.elbo_ <= log_evidence + 1e-9
    assert b.elbo_ > log_evidence - 1.5


def test_community_elbo_below_exact_log_evidence():
    """With communities, ELBO <= log p(L | P) + log p(P) at the fitted community matrices
    ``P``, by enumeration over class assignments and community memberships."""
    L = _tiny()
    n, m = L.shape
    k, C = 2, 2
    b = BCC(communities=C, tol=1e-12, max_iter=5000, random_state=0).fit(L)
    P, s = b.community_confusion_, b.worker_prior_strength_
    assert s == k + 1.0
    terms = []
    for z in itertools.product(range(k), repeat=n):
        z = np.array(z)
        tz = _log_beta(np.ones(k) + np.bincount(z, minlength=k)) - _log_beta(np.ones(k))
        N = _counts_given_z(L, z, k)
        for mem in itertools.product(range(C), repeat=m):
            t = tz + _log_beta(np.ones(C) + np.bincount(mem, minlength=C)) - _log_beta(
                np.ones(C))
            for j, c in itertools.product(range(m), range(k)):
                t += _log_beta(s * P[mem[j], c] + N[j, c]) - _log_beta(s * P[mem[j], c])
            terms.append(t)
    hyper = 2.0 + np.eye(k)  # Dir(1 + alpha0) on each community row
    log_hyper = sum(
        float(((hyper[c] - 1) * np.log(P[g, c])).sum()) - _log_beta(hyper[c])
        for g, c in itertools.product(range(C), range(k))
    )
    bound = float(logsumexp(terms)) + log_hyper
    assert b.elbo_ <= bound + 1e-9
    assert b.elbo_ > bound - 2.0


def test_community_fixed_point():
    """At convergence: memberships are the softmax of E[log rho] plus each worker's
    Dirichlet-multinomial evidence, and the community rows are stationary (the projected
    gradient of their part of the ELBO vanishes)."""
    df, _, _ = _crowd(0, n=150)
    b = BCC(communities=2, tol=1e-12, max_iter=3000, random_state=0).fit(df)
    assert b.converged_
    lm = as_label_matrix(df)
    r = np.asarray(b.predict_proba(df))  # a DataFrame in gives a DataFrame out
    s, P, R = b.worker_prior_strength_, b.community_confusion_, b.community_responsibilities_
    k = lm.n_classes
    N = np.zeros((lm.n_sources, k, k))
    np.add.at(N, (lm.source, slice(None), lm.label), r[lm.item])  # N[j, :, l] += r_i
    g = 1.0 + R.sum(axis=0)
    logev = np.array([[sum(_log_beta(s * P[c_, c] + N[j, c]) - _log_beta(s * P[c_, c])
                           for c in range(k)) for c_ in range(2)] for j in range(lm.n_sources)])
    logits = _elog(g)[None] + logev
    np.testing.assert_allclose(R, np.exp(logits - logsumexp(logits, axis=1, keepdims=True)),
                               atol=1e-6)
    a = s * P[None] + N[:, None]
    np.testing.assert_allclose(b.confusion_concentration_, a, atol=1e-6)
    S = np.einsum("jm,jmcl->mcl", R, _elog(a))
    grad = -R.sum(0)[:, None, None] * s * digamma(s * P) + s * S + (1.0 + np.eye(k)) / P
    projected = grad - grad.mean(axis=2, keepdims=True)
    assert np.abs(projected).max() < 1e-4 * np.abs(grad).max()


# ----------------------------------------------------------------------- ELBO monotone
@pytest.mark.parametrize("communities", [None, 1, 2, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_elbo_never_decreases(communities, seed):
    d = make_dawid_skene(800, 9, 3, coverage=0.5, accuracy=(0.3, 0.9), random_state=seed)
    y = np.full(800, -1)
    y[:40] = d.y[:40]
    L = as_label_matrix(d.L.to_dense()) if seed == 0 else d.L
    b = BCC(communities=communities, random_state=seed).fit(L, y if seed else None)
    h = b.elbo_history_
    assert h.shape == (b.n_iter_ + 1,) and b.n_iter_ > 2
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[:-1]))
    assert b.elbo_ == h[-1]


def test_elbo_never_decreases_on_sparse_crowd():
    df, _, _ = _crowd(1, n=200)
    b = BCC(communities=2, random_state=1).fit(df)
    h = b.elbo_history_
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[:-1]))


# ------------------------------------------------------------------------- recovery
def test_recovers_parameters_of_its_generative_process():
    """Data drawn from the BCC model itself (pi ~ Dir, confusion rows ~ Dir diagonal-heavy):
    the posterior means recover the confusion matrices and the class prior."""
    rng = np.random.default_rng(3)
    n, m, k = 20_000, 8, 3
    prior = rng.dirichlet(np.full(k, 5.0))
    conf = np.stack([np.stack([rng.dirichlet(1.0 + 6.0 * np.eye(k)[c]) for c in range(k)])
                     for _ in range(m)])
    z = rng.choice(k, size=n, p=prior)
    cdf = np.cumsum(conf[:, z], axis=2)  # (m, n, k)
    L = (rng.random((m, n))[:, :, None] > cdf).sum(axis=2).T
    L[rng.random((n, m)) < 0.3] = -1
    b = BCC().fit(L)
    assert b.converged_
    assert np.abs(b.confusion_ - conf).max() < 0.03
    assert np.abs(b.class_prior_ - prior).max() < 0.01
    assert np.mean(b.predict(L) == z) > 0.9


def test_communities_beat_plain_bcc_on_sparse_workers():
    """Two communities (good / adversarial) and workers with 5 votes each: communities let
    a worker borrow its confusion from workers like it."""
    gains = []
    for seed in range(3):
        df, y, bad = _crowd(seed, n=300)
        lm = as_label_matrix(df)
        gold = y[lm.item_ids]
        plain = np.mean(BCC().fit(df).predict(df) == gold)
        cb = BCC(communities=2, random_state=seed).fit(df)
        comm = np.mean(cb.predict(df) == gold)
        gains.append(comm - plain)
        # the community of the adversarial workers is found
        R = cb.community_responsibilities_
        adv = int(np.argmin(np.einsum("mcc->m", cb.community_confusion_)))
        is_bad = bad[lm.source_names.astype(int)]
        assert R[is_bad, adv].mean() > R[~is_bad, adv].mean() + 0.3
    assert min(gains) > 0.03, gains


# ------------------------------------------------------------------------ clamping
def test_known_labels_clamped():
    d = make_dawid_skene(400, 5, 3, coverage=0.8, random_state=4)
    y = np.full(400, -1)
    y[:100] = d.y[:100]
    b = BCC(tol=1e-14, max_iter=5000).fit(d.L, y)
    assert b.converged_
    r = b.predict_proba(d.L)
    assert not np.allclose(r[:100], np.eye(3)[y[:100]])  # not copied into the output
    q = r.copy()
    q[:100] = np.eye(3)[y[:100]]  # but clamped in the fit: the counts use one-hot rows
    lm = d.L
    N = np.zeros((5, 3, 3))
    np.add.at(N, (lm.source, slice(None), lm.label), q[lm.item])
    np.testing.assert_allclose(b.confusion_concentration_[:, 0], 1.0 + np.eye(3) + N, rtol=1e-5)
    np.testing.assert_allclose(b.class_prior_concentration_, 1.0 + q.sum(0), rtol=1e-5)


def test_all_labels_known_gives_conjugate_posterior():
    d = make_dawid_skene(300, 4, 2, random_state=5)
    b = BCC().fit(d.L, d.y)
    N = np.zeros((4, 2, 2))
    np.add.at(N, (d.L.source, d.y[d.L.item], d.L.label), 1.0)
    np.testing.assert_allclose(b.confusion_concentration_[:, 0], 1.0 + np.eye(2) + N)
    np.testing.assert_allclose(b.class_prior_concentration_, 1.0 + np.bincount(d.y, minlength=2))


# ------------------------------------------------------------------ special inputs
@pytest.mark.parametrize("communities", MODES)
def test_all_abstain_rows_silent_sources_and_repeats(communities):
    L = np.array([[0, 0, -1, 1], [1, 1, -1, 1], [-1, -1, -1, -1], [0, 0, -1, 0], [1, -1, -1, 1]])
    b = BCC(communities=communities, random_state=0).fit(L)
    p = b.predict_proba(L)
    np.testing.assert_allclose(p[2], b.class_prior_)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert p.dtype == np.float64 and p.shape == (5, 2)
    if communities is None:  # a silent source keeps the prior mean
        np.testing.assert_allclose(b.confusion_[2], (1.0 + np.eye(2)) / 3.0)
    # repeated votes count: source 0 votes twice on item 0
    items = [0, 0, 0, 1, 1, 2]
    src = [0, 0, 1, 0, 1, 1]
    lab = [1, 1, 1, 0, 0, 1]
    once = BCC(communities=communities, random_state=0).fit((items[1:], src[1:], lab[1:]))
    twice = BCC(communities=communities, random_state=0).fit((items, src, lab))
    assert twice.predict_proba((items, src, lab))[0, 1] > once.predict_proba(
        (items[1:], src[1:], lab[1:]))[0, 1]


def test_no_votes_and_too_many_communities():
    with pytest.raises(ValueError, match="no votes"):
        BCC(n_classes=2).fit(np.full((3, 2), -1))
    with pytest.raises(ValueError, match="exceeds the number of sources"):
        BCC(communities=4).fit(_tiny())


@pytest.mark.parametrize(
    "params",
    [{"communities": 0}, {"diagonal_strength": -1.0}, {"worker_prior_strength": 0.0},
     {"class_prior_strength": 0}, {"max_iter": 0}, {"tol": -1e-3}, {"tie_break": "last"},
     {"communities": 1.5}, {"n_classes": 1}, {"random_state": "seed"}],
)
def test_bad_parameters(params):
    with pytest.raises(ValueError, match="parameter of BCC must be"):
        BCC(**params).fit(_tiny())


def test_convergence_warning_points_at_caller():
    with pytest.warns(ConvergenceWarning, match="did not converge") as rec:
        b = BCC(max_iter=1).fit(make_dawid_skene(200, 5, 2, random_state=0).L)
    assert rec[0].filename == __file__
    assert not b.converged_ and b.n_iter_ == 1 and b.elbo_history_.shape == (2,)


# ------------------------------------------------------------------ estimator contract
@pytest.fixture(scope="module")
def data():
    d = make_dawid_skene(200, 6, 3, coverage=0.7, random_state=8)
    L = d.L.to_dense()
    assert (L >= 0).any(axis=1).all()  # long format keeps the same items
    return L, d.y


@pytest.mark.parametrize("communities", MODES)
def test_contract(data, communities):
    L, _ = data
    est = BCC(communities=communities, random_state=3)
    p = est.fit(L).predict_proba(L)
    # deterministic, clone, fit_predict_proba, picklable, predict does not change the state
    np.testing.assert_array_equal(clone(est).fit(L).predict_proba(L), p)
    np.testing.assert_allclose(clone(est).fit_predict_proba(L), p, atol=1e-12)
    state = {k: v for k, v in vars(est).items() if k.endswith("_")}
    est.predict_proba(L[:50])
    for key, v in state.items():
        np.testing.assert_array_equal(getattr(est, key), v)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict_proba(L), p)
    # dense == sparse == long
    S = sp.csr_matrix(L + 1)
    ii, jj = np.nonzero(L >= 0)
    long = pd.DataFrame({"item": ii, "source": jj, "label": L[ii, jj]})
    np.testing.assert_allclose(clone(est).fit(S).predict_proba(S), p, atol=1e-10)
    np.testing.assert_allclose(clone(est).fit(long).predict_proba(long), p, atol=1e-10)
    assert _documented(BCC) == {k for k in vars(est) if k.endswith("_") and k[0] != "_"}


@pytest.mark.parametrize("communities", MODES)
def test_permutation_invariance(data, communities):
    L, _ = data
    rng = np.random.default_rng(0)
    p = BCC(communities=communities, random_state=1).fit_predict_proba(L)
    cols = rng.permutation(L.shape[1])
    np.testing.assert_allclose(
        BCC(communities=communities, random_state=1).fit_predict_proba(L[:, cols]), p,
        atol=1e-8)
    rows = rng.permutation(L.shape[0])
    np.testing.assert_allclose(
        BCC(communities=communities, random_state=1).fit_predict_proba(L[rows]), p[rows],
        atol=1e-8)
    perm = np.array([2, 0, 1])  # class c -> perm[c]
    relabelled = np.where(L >= 0, perm[np.maximum(L, 0)], -1)
    q = BCC(communities=communities, random_state=1).fit_predict_proba(relabelled)
    np.testing.assert_allclose(q[:, perm], p, atol=1e-8)


def test_inductive_predict_on_new_rows(data):
    L, _ = data
    b = BCC().fit(L[:150])
    np.testing.assert_allclose(b.predict_proba(L[150:]), BCC().fit(L[:150]).predict_proba(
        L)[150:])
    with pytest.raises(ValueError, match="sources"):
        b.predict_proba(L[:, :4])


def test_k2_and_tie_break_random():
    d = make_dawid_skene(300, 5, 2, coverage=0.7, random_state=2)
    b = BCC(tie_break="random", random_state=0).fit(d.L)
    pred = b.predict(d.L)
    np.testing.assert_array_equal(pred, b.predict(d.L))  # seeded: the same call, same answer
    assert np.mean(pred == d.y) >= np.mean(MajorityVote().fit_predict(d.L) == d.y)


# ------------------------------------------------------------------------ real data
def test_snow2008_temp_accuracy(data_home):
    ds = load_shared("snow2008_temp", data_home=data_home)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        for communities in MODES:
            pred = BCC(communities=communities, random_state=0).fit(ds.L).predict(ds.L)
            assert np.mean(pred == ds.y) > 0.93
