"""scikit-learn citizenship (issue 12, item 6).

* ``score(L, y)`` on every aggregator: accuracy on the known labels of ``y`` (``-1``
  ignored), so ``cross_val_score`` and ``GridSearchCV`` work without ``scoring=``, each
  fold fitting on its training rows' known labels;
* ``sklearn.utils.estimator_checks.check_estimator`` on every registered aggregator: every
  check that applies passes; the others are declared below, each with its reason, and must
  really fail (a declared check that starts to pass fails this test, so the list stays true);
* ``SoftLabelClassifier.score`` accepts soft targets, so ``GridSearchCV`` on soft labels
  scores (negative cross-entropy) and picks a real best.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import check_estimator

from wsagg._registry import AGGREGATORS, get_aggregator
from wsagg.datasets import make_dawid_skene
from wsagg.labels import as_label_matrix

NAMES = sorted(AGGREGATORS)

# Instances for the checks, where the default cannot run on their data or is slow.
CHECK_PARAMS = {
    # the default cross-validates every registered candidate (about a minute of checks)
    "auto": {"candidates": ["majority", "dawid-skene"], "n_folds": 2},
    # the checks label every item; the default polytope='unlabeled' then leaves no item to
    # predict and is refused with a message (polytope='all' is the g* oracle's setting)
    "adversarial": {"polytope": "all"},
}

_UNVOTED = (
    "wsagg refuses known labels y of a class that no source votes for (pass n_classes=k) "
    "instead of silently adding a class"
)
# Checks that do not apply to a label matrix, for every aggregator.
EXPECTED_ALL = {
    "check_fit_score_takes_y": (
        "the check's votes (uniform X rounded to class ids) hold classes 0-1 while its y "
        f"holds class 2: {_UNVOTED}"
    ),
    "check_dtype_object": (
        "a dense label matrix of dtype object is refused with a TypeError (its entries may be "
        "strings or mixed types; string labels go in long format), where the check expects "
        "numbers in an object array to be read as numbers"
    ),
    "check_estimator_sparse_tag": (
        "a sparse label matrix stores label + 1 (absent = abstain), so the check's 0/1 "
        f"matrix votes only class 0 while its y holds classes up to 2: {_UNVOTED}"
    ),
    "check_estimator_sparse_array": (
        "a sparse label matrix stores label + 1, so the check's 0/1 matrix votes only class "
        f"0 while its y holds classes up to 3: {_UNVOTED}"
    ),
    "check_estimator_sparse_matrix": (
        "a sparse label matrix stores label + 1, so the check's 0/1 matrix votes only class "
        f"0 while its y holds classes up to 3: {_UNVOTED}"
    ),
    "check_positive_only_tag_during_fit": (
        "input is a label matrix of class ids 0..k-1 with -1 = abstain; the check subtracts "
        "the mean, giving values such as -3 that are not votes and are refused with a "
        "message (no tag says 'class ids, -1 allowed')"
    ),
}
_BINARY = (
    "the aggregator is binary (k = 2) and the check's votes have more classes; refused with "
    "a message naming the multi-class aggregators"
)
EXPECTED_BINARY_ONLY = dict.fromkeys([
    "check_dict_unchanged", "check_dont_overwrite_parameters", "check_estimators_dtypes",
    "check_estimators_fit_returns_self", "check_estimators_overwrite_params",
    "check_f_contiguous_array_estimator", "check_fit2d_1feature", "check_fit2d_1sample",
    "check_fit2d_predict1d", "check_fit_check_is_fitted", "check_fit_idempotent",
    "check_methods_sample_order_invariance", "check_methods_subset_invariance",
    "check_n_features_in", "check_n_features_in_after_fitting", "check_readonly_memmap_input",
], _BINARY)
_THREE = (
    "the model needs at least 3 sources to be identifiable (a triplet of sources / the "
    "overlap matrix) and the check's X has 1 or 2 columns; refused with a message"
)
EXPECTED_THREE_SOURCES = dict.fromkeys([
    "check_estimators_fit_returns_self", "check_estimators_overwrite_params",
    "check_fit2d_1feature", "check_fit_check_is_fitted", "check_fit_idempotent",
    "check_n_features_in", "check_readonly_memmap_input",
], _THREE)
NEEDS_THREE_SOURCES = ("matrix-completion", "triplet")


def expected_failed_checks(name: str) -> dict[str, str]:
    """The checks of ``name`` that do not apply, each with its reason."""
    out = dict(EXPECTED_ALL)
    if AGGREGATORS[name].binary_only:
        out.update(EXPECTED_BINARY_ONLY)
    if name in NEEDS_THREE_SOURCES:
        out.update(EXPECTED_THREE_SOURCES)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_check_estimator(name):
    est = get_aggregator(name, **CHECK_PARAMS.get(name, {}))
    expected = expected_failed_checks(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(est, expected_failed_checks=expected, on_fail=None)
    failed = [(r["check_name"], repr(r["exception"])[:300]) for r in results
              if r["status"] == "failed"]
    assert failed == [], f"{name}: checks that should pass failed: {failed}"
    status = {r["check_name"]: r["status"] for r in results}
    stale = {c: status.get(c) for c in expected if status.get(c) != "xfail"}
    assert stale == {}, f"{name}: declared as failing but did not fail: {stale}"
    n_passed = sum(r["status"] == "passed" for r in results)
    assert n_passed >= 15, f"{name}: only {n_passed} checks passed"


def test_tags_describe_a_label_matrix():
    tags = get_tags(get_aggregator("dawid-skene"))
    assert tags.input_tags.categorical and tags.input_tags.sparse
    assert tags.input_tags.two_d_array and not tags.input_tags.allow_nan
    assert not tags.target_tags.required
    assert tags.estimator_type is None  # y is optional known labels, not a target


def test_n_features_in_is_the_number_of_sources():
    est = get_aggregator("majority")
    assert not hasattr(est, "n_features_in_")
    est.fit(np.array([[0, 1, -1, 0], [1, 1, 0, 1], [0, 0, 0, -1]]))
    assert est.n_features_in_ == est.n_sources_ == 4
    assert "n_features_in_" not in vars(est)  # derived, not a second fitted attribute


# -- score ------------------------------------------------------------------------------


def _data(seed=0, n=600, k=3):
    d = make_dawid_skene(n, 8, k, coverage=0.6, random_state=seed)
    y = np.full(n, -1)
    y[::3] = d.y[::3]
    return d, y


def test_score_is_accuracy_on_the_known_labels():
    d, y = _data()
    est = get_aggregator("dawid-skene", random_state=0).fit(d.L)
    pred = est.predict(d.L)
    known = y >= 0
    assert est.score(d.L, y) == pytest.approx(np.mean(pred[known] == y[known]))
    # unknown (-1) items do not count, whatever the prediction there
    y2 = y.copy()
    y2[~known] = -1
    assert est.score(d.L, y2) == est.score(d.L, y)
    w = np.where(np.arange(600) % 2 == 0, 2.0, 0.5)
    want = np.sum(w[known] * (pred[known] == y[known])) / w[known].sum()
    assert est.score(d.L, y, sample_weight=w) == pytest.approx(want)


def test_score_with_a_series_and_named_classes():
    d, _ = _data(seed=1, k=2)
    long = d.L.to_long()
    long["label"] = np.array(["neg", "pos"])[long["label"]]
    ids = np.arange(0, 200, 2)  # some items, by their ids in the frame
    gold = pd.Series(np.array(["neg", "pos"])[d.y][ids], index=pd.Index(ids))
    est = get_aggregator("majority").fit(long)
    pred = est.predict(long)
    want = np.mean(pred.loc[gold.index].to_numpy() == gold.to_numpy())
    assert est.score(long, gold) == pytest.approx(want)


def test_score_refusals():
    d, y = _data()
    est = get_aggregator("majority").fit(d.L)
    with pytest.raises(ValueError, match="no known label"):
        est.score(d.L, np.full(600, -1))
    with pytest.raises(ValueError, match="600 items"):
        est.score(d.L, y[:10])
    with pytest.raises(ValueError, match="sample_weight must be 600"):
        est.score(d.L, y, sample_weight=np.ones(3))


@pytest.mark.parametrize("name", ["dawid-skene", "majority", "adversarial"])
def test_cross_val_score_fits_on_each_folds_known_labels(name):
    d, y = _data(seed=2)
    L = as_label_matrix(d.L)  # row subsets of a LabelMatrix are LabelMatrix
    est = get_aggregator(name)
    if "random_state" in est.get_params():
        est.set_params(random_state=0)
    cv = KFold(4, shuffle=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = cross_val_score(est, L, y, cv=cv, error_score="raise")
        want = [clone(est).fit(L[tr], y[tr]).score(L[te], y[te]) for tr, te in cv.split(y)]
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert np.all((got > 0.5) & (got <= 1.0))
    # the same on the dense array
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dense = cross_val_score(est, d.L.to_dense(), y, cv=cv, error_score="raise")
    np.testing.assert_allclose(dense, got, atol=1e-9)


def test_grid_search_on_an_aggregator():
    d, y = _data(seed=3)
    grid = {"smoothing": [0.01, 1.0, 100.0]}
    gs = GridSearchCV(get_aggregator("dawid-skene", random_state=0), grid, cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gs.fit(d.L, y)
    scores = gs.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores))
    assert gs.best_params_ == {"smoothing": grid["smoothing"][int(np.argmax(scores))]}
    assert gs.best_estimator_.n_sources_ == 8
    assert gs.score(d.L, y) == pytest.approx(gs.best_estimator_.score(d.L, y))


# -- SoftLabelClassifier on soft targets ------------------------------------------------


def _soft(seed=0, n=300):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    z = 2.0 * X @ rng.normal(size=(5, 3))
    Q = np.exp(z - z.max(axis=1, keepdims=True))
    return X, Q / Q.sum(axis=1, keepdims=True)


def test_soft_label_classifier_score_on_soft_targets():
    pytest.importorskip("torch")
    from scipy.special import log_softmax

    from wsagg.downstream import SoftLabelClassifier

    X, Q = _soft()
    clf = SoftLabelClassifier(max_iter=50, progress=False, random_state=0).fit(X, Q)
    want = np.mean((Q * log_softmax(clf.decision_function(X), axis=1)).sum(axis=1))  # -CE
    assert clf.score(X, Q) == pytest.approx(want)
    assert clf.score(X, Q) < 0
    # hard labels: accuracy, as for any scikit-learn classifier
    hard = Q.argmax(axis=1)
    assert clf.score(X, hard) == pytest.approx(np.mean(clf.predict(X) == hard))
    with pytest.raises(ValueError):
        clf.score(X, Q[:, :2])


def test_grid_search_on_soft_labels_picks_a_real_best():
    pytest.importorskip("torch")
    from wsagg.downstream import SoftLabelClassifier

    X, Q = _soft(seed=1)
    # the best (no penalty) is listed last: a silent pick of the first would be wrong
    grid = {"alpha": [30.0, 3.0, 0.0]}
    gs = GridSearchCV(SoftLabelClassifier(max_iter=100, progress=False, random_state=0),
                      grid, cv=3, error_score="raise").fit(X, Q)
    scores = gs.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores))
    assert gs.best_params_ == {"alpha": 0.0}
    assert scores[2] > scores[1] > scores[0]
