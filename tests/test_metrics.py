"""Metrics: abstains and uncovered items are counted, never dropped."""

import numpy as np
import pytest
from sklearn.metrics import log_loss as sk_log_loss

from wsagg import metrics


def test_abstained_prediction_is_wrong():
    y = np.array([0, 1, 1, -1])
    pred = np.array([0, -1, 1, 0])
    assert metrics.accuracy(y, pred) == pytest.approx(2 / 3)


def test_scores_match_definitions():
    y = np.array([0, 1, 2, 1])
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1]])
    assert metrics.accuracy(y, p) == pytest.approx(0.75)
    assert metrics.log_loss(y, p) == pytest.approx(sk_log_loss(y, p, labels=[0, 1, 2]))
    onehot = np.eye(3)[y]
    assert metrics.brier_score(y, p) == pytest.approx(np.mean(((p - onehot) ** 2).sum(1)))
    assert metrics.balanced_accuracy(y, p) == pytest.approx((1 + 0.5 + 1) / 3)
    ece = metrics.expected_calibration_error(y, p, n_bins=10)
    assert 0 <= ece <= 1


def test_ece_perfectly_calibrated_is_zero():
    y = np.array([0, 0, 1, 1])
    p = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert metrics.expected_calibration_error(y, p) == pytest.approx(0.0)


def test_frequency_buckets():
    b = metrics.frequency_buckets([100, 5, 50, 1, 20, 10])
    assert b["head"].tolist() == [0, 2]
    assert b["medium"].tolist() == [4, 5]
    assert b["tail"].tolist() == [1, 3]
    t = metrics.frequency_buckets([100, 5, 50], thresholds=(60, 10))
    assert t["head"].tolist() == [0] and t["tail"].tolist() == [1] and t["medium"].tolist() == [2]
    with pytest.raises(ValueError, match="few <= many"):
        metrics.frequency_buckets([1, 2], thresholds=(1, 5))


def test_bucket_accuracy():
    y = np.array([0, 0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 0, 1, 1, 0, 0])
    out = metrics.accuracy_by_frequency_bucket(y, pred)
    assert out["head"]["accuracy"] == pytest.approx(0.75)
    assert out["medium"]["accuracy"] == pytest.approx(0.5)
    assert out["tail"]["accuracy"] == pytest.approx(0.0)


def test_evaluate_reports_uncovered():
    y = np.array([0, 1, 1, -1])
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    rep = metrics.evaluate(y, p, covered=np.array([True, True, False, True]))
    assert rep["n_gold"] == 3 and rep["n_uncovered"] == 1
    assert rep["accuracy"] == pytest.approx(2 / 3)
    assert rep["accuracy_covered"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("p", "match"),
    [
        (np.array([[0.5, np.nan]]), "NaN"),
        (np.array([[0.5, 0.6]]), "distribution"),
        (np.array([0.5, 0.5]), "Predictions must have"),
    ],
)
def test_bad_proba(p, match):
    with pytest.raises(ValueError, match=match):
        metrics.log_loss(np.array([0]), p) if p.ndim == 2 else metrics.accuracy([0], p)


def test_bad_gold():
    with pytest.raises(ValueError, match="-1 \\(no gold\\)"):
        metrics.accuracy(np.array([0, -3]), np.array([0, 0]))


def test_expected_tie_accuracy():
    y = np.array([0, 1, 1])
    p = np.array([[0.5, 0.5], [0.5, 0.5], [0.2, 0.8]])
    assert metrics.accuracy(y, p) == pytest.approx(2 / 3)  # first: both ties -> class 0
    assert metrics.accuracy(y, p, ties="expected") == pytest.approx((0.5 + 0.5 + 1) / 3)
    with pytest.raises(ValueError, match="ties must be"):
        metrics.accuracy(y, p, ties="random")
