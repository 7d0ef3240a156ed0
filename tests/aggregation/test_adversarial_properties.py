"""Property tests (hypothesis) of wsagg.AdversarialLogLoss: outputs are distributions,
source-permutation invariance, class-relabelling equivariance, grouped == ungrouped rows,
and agreement of the scipy / torch / cvxpy solvers (1e-6 on the dual objective, 1e-4 on
probabilities)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsagg.aggregation.adversarial import AdversarialLogLoss
from wsagg.datasets import make_dawid_skene

FAMILIES = ("accuracy", "class_accuracy", "confusion")


@st.composite
def games(draw):
    k = draw(st.integers(2, 4))
    m = draw(st.integers(2, 5))
    n = draw(st.integers(20, 70))
    n_lab = draw(st.integers(8, 40))
    coverage = draw(st.floats(0.3, 1.0))
    seed = draw(st.integers(0, 2**31 - 1))
    family = draw(st.sampled_from(FAMILIES))
    d = make_dawid_skene(n + n_lab, m, k, coverage=coverage, accuracy=(0.4, 0.9),
                         random_state=seed)
    L = d.L.to_dense()
    y = np.full(n + n_lab, -1)
    y[:n_lab] = d.y[:n_lab]
    return L, y, k, family


def _fit(L, y, k, family, **kw):
    return AdversarialLogLoss(n_classes=k, constraints=family, on_infeasible="widen",
                              **kw).fit(L, y)


SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow], derandomize=True)


@SETTINGS
@given(games())
def test_outputs_are_distributions(game):
    L, y, k, family = game
    est = _fit(L, y, k, family)
    p = est.predict_proba(L)
    assert p.shape == (L.shape[0], k)
    assert np.all(np.isfinite(p)) and (p >= 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    assert est.game_value_ >= -1e-9
    assert est.game_value_ <= np.log(k) + 1e-9  # max entropy per item is at most log k


@SETTINGS
@given(games(), st.randoms(use_true_random=False))
def test_source_permutation_invariance(game, rnd):
    L, y, k, family = game
    perm = np.array(rnd.sample(range(L.shape[1]), L.shape[1]))
    a = _fit(L, y, k, family)
    b = _fit(L[:, perm], y, k, family)
    assert b.game_value_ == pytest.approx(a.game_value_, abs=1e-7)
    np.testing.assert_allclose(b.predict_proba(L[:, perm]), a.predict_proba(L), atol=1e-5)


@SETTINGS
@given(games(), st.randoms(use_true_random=False))
def test_class_relabelling_equivariance(game, rnd):
    L, y, k, family = game
    perm = np.array(rnd.sample(range(k), k))  # class c -> perm[c]
    L2 = np.where(L >= 0, perm[np.maximum(L, 0)], -1)
    y2 = np.where(y >= 0, perm[np.maximum(y, 0)], -1)
    a = _fit(L, y, k, family)
    b = _fit(L2, y2, k, family)
    assert b.game_value_ == pytest.approx(a.game_value_, abs=1e-7)
    pa, pb = a.predict_proba(L), b.predict_proba(L2)
    np.testing.assert_allclose(pb[:, perm], pa, atol=1e-5)


@SETTINGS
@given(games())
def test_grouped_and_ungrouped_rows_agree(game):
    L, y, k, family = game
    a = _fit(L, y, k, family)
    b = _fit(L, y, k, family, group_patterns=False)
    assert a.n_patterns_ <= b.n_patterns_ == int((y < 0).sum())
    assert b.game_value_ == pytest.approx(a.game_value_, abs=1e-7)
    np.testing.assert_allclose(b.predict_proba(L), a.predict_proba(L), atol=1e-5)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          derandomize=True)
@given(games())
def test_all_solvers_agree(game):
    L, y, k, family = game
    fits = {s: _fit(L, y, k, family, solver=s) for s in ("cvxpy", "scipy", "torch")}
    ref = fits["cvxpy"]
    for s in ("scipy", "torch"):
        assert fits[s].game_value_ == pytest.approx(ref.game_value_, abs=1e-6)
        np.testing.assert_allclose(fits[s].predict_proba(L), ref.predict_proba(L), atol=1e-4)
