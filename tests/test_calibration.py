"""wsagg.calibrated: temperature-calibrated posteriors for any registered aggregator."""

import warnings

import numpy as np
import pytest
from sklearn.metrics import log_loss

from wsagg import DawidSkene, MajorityVote, calibrated
from wsagg._registry import AGGREGATORS


def _overconfident(seed=0, n=2000):
    """Issue 15, pattern (c): one noisy source copied 8 times makes DS posteriors certain."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    base = np.where(rng.random(n) < 0.7, y, 1 - y)
    others = np.column_stack([np.where(rng.random(n) < 0.75, y, 1 - y) for _ in range(3)])
    return np.column_stack([np.repeat(base[:, None], 8, axis=1), others]), y


def _quiet_fit(model, L, y=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(L, y)


def test_with_labels_the_cv_temperature_lowers_held_out_log_loss():
    L, y = _overconfident()
    known = np.where(np.arange(y.size) % 4 == 0, y, -1)  # a quarter of the labels known
    test = known < 0
    raw = _quiet_fit(DawidSkene(), L, known).predict_proba(L)
    model = _quiet_fit(calibrated(DawidSkene(), random_state=0), L, known)
    cal = model.predict_proba(L)
    assert model.criterion_ == "cv_log_loss" and model.temperature_ > 1.5
    assert log_loss(y[test], cal[test]) < 0.8 * log_loss(y[test], raw[test])
    # tempering keeps every item's predicted class
    np.testing.assert_array_equal(cal.argmax(1), model.estimator_.predict_proba(L).argmax(1))
    assert model.estimator_.get_params() == DawidSkene(n_classes=2).set_params(
        random_state=model.estimator_.random_state).get_params()


def test_without_labels_the_temperature_only_softens():
    L, y = _overconfident(1)
    model = _quiet_fit(calibrated(DawidSkene(shrinkage="population"), random_state=0), L)
    assert model.criterion_ == "held_out_source_likelihood"
    assert model.temperature_ >= 1.0
    raw = _quiet_fit(DawidSkene(shrinkage="population"), L).predict_proba(L)
    assert log_loss(y, model.predict_proba(L)) <= log_loss(y, raw) + 1e-9
    assert model.estimator_.shrinkage == "population"


@pytest.mark.parametrize("name", sorted(n for n, s in AGGREGATORS.items()
                                        if n != "auto" and not s.needs_labels))
def test_every_unsupervised_aggregator_can_be_calibrated(name):
    L, _ = _overconfident(2, n=300)
    model = _quiet_fit(calibrated(AGGREGATORS[name].load()(), random_state=0), L)
    proba = model.predict_proba(L)
    assert proba.shape == (300, 2) and np.allclose(proba.sum(1), 1)
    assert model.temperature_ >= 1.0 and model.selected_ == name


def test_calibrated_refuses_what_it_cannot_wrap():
    from sklearn.linear_model import LogisticRegression

    from wsagg import AutoAggregator

    with pytest.raises(TypeError, match="registered wsagg aggregator"):
        calibrated(LogisticRegression())
    with pytest.raises(TypeError, match="calibrates already"):
        calibrated(AutoAggregator())
    assert calibrated(MajorityVote()).candidates[0][0] == "majority"
