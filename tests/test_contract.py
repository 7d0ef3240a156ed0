"""One contract, every registered aggregator: the checks are parametrised from the registry,
so an aggregator added to ``wsagg/_registry.py`` is run through all of them.

Model-specific tests live beside each model in ``tests/aggregation/``.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from test_documented_attributes import _documented, _fitted

from wsagg._registry import AGGREGATORS
from wsagg.datasets import make_dawid_skene
from wsagg.labels import as_label_matrix

NAMES = sorted(AGGREGATORS)
ATOL = 1e-6  # sums taken in another order (permutations, formats) agree to rounding error


def _data(spec, seed=0):
    k = 2 if spec.binary_only else 3
    d = make_dawid_skene(240, 7, k, coverage=0.6, random_state=seed)
    L = d.L.to_dense()
    L[5] = -1  # an all-abstain row
    y = None
    if spec.needs_labels:
        y = np.full(L.shape[0], -1)
        y[::4] = d.y[::4]
    return L, y, k


def _est(spec, **params):
    est = spec.load()(**params)
    if "random_state" in est.get_params():
        est.set_params(random_state=0)
    return est


def _fit_proba(spec, L, y=None, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _est(spec, **params).fit(L, y).predict_proba(L)


@pytest.fixture(params=NAMES)
def spec(request):
    return AGGREGATORS[request.param]


def test_shape_and_distributions(spec):
    L, y, k = _data(spec)
    proba = _fit_proba(spec, L, y)
    assert proba.shape == (L.shape[0], k)
    assert np.all(np.isfinite(proba)) and (proba >= 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)


def test_all_abstain_rows_are_kept_and_get_the_prior(spec):
    L, y, _ = _data(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = _est(spec).fit(L, y)
    proba = est.predict_proba(L)
    assert proba.shape[0] == L.shape[0]
    np.testing.assert_allclose(proba[5], est.class_prior_, atol=1e-9)


def test_clone_and_determinism(spec):
    L, y, _ = _data(spec)
    est = _est(spec)
    twin = clone(est)
    assert twin.get_params() == est.get_params()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = est.fit(L, y).predict_proba(L)
        b = twin.fit(L, y).predict_proba(L)
    np.testing.assert_array_equal(a, b)


def test_fit_predict_proba_equals_fit_then_predict_proba(spec):
    L, y, _ = _data(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = _est(spec).fit_predict_proba(L, y)
        b = _est(spec).fit(L, y).predict_proba(L)
    np.testing.assert_allclose(a, b, atol=1e-10)


def _assert_equivariant(spec, got, expected):
    np.testing.assert_allclose(got, expected, atol=ATOL)


def test_source_permutation_invariance(spec):
    L, y, _ = _data(spec)
    perm = np.random.default_rng(1).permutation(L.shape[1])
    _assert_equivariant(spec, _fit_proba(spec, L[:, perm], y), _fit_proba(spec, L, y))


def test_item_permutation_equivariance(spec):
    L, y, _ = _data(spec)
    perm = np.random.default_rng(2).permutation(L.shape[0])
    y_p = None if y is None else y[perm]
    _assert_equivariant(spec, _fit_proba(spec, L[perm], y_p), _fit_proba(spec, L, y)[perm])


def test_class_relabelling_equivariance(spec):
    L, y, k = _data(spec)
    sigma = np.roll(np.arange(k), 1)  # class c is renamed sigma[c]
    L_s = np.where(L >= 0, sigma[np.maximum(L, 0)], -1)
    y_s = None if y is None else np.where(y >= 0, sigma[np.maximum(y, 0)], -1)
    proba = _fit_proba(spec, L, y)
    proba_s = _fit_proba(spec, L_s, y_s, n_classes=k)
    _assert_equivariant(spec, proba_s[:, sigma], proba)


def test_dense_sparse_and_long_format_agree(spec):
    L, y, k = _data(spec)
    dense = _fit_proba(spec, L, y, n_classes=k)
    sparse = _fit_proba(spec, sp.csr_matrix(L + 1), y, n_classes=k)
    np.testing.assert_allclose(sparse, dense, atol=1e-10)
    rows, cols = np.nonzero(L >= 0)
    frame = pd.DataFrame({"item": rows, "source": cols, "label": L[rows, cols].astype(float)})
    # the all-abstain items, registered by a row with a missing label
    empty = np.flatnonzero((L < 0).all(axis=1))
    frame = pd.concat([frame, pd.DataFrame({"item": empty, "source": 0, "label": np.nan})])
    frame = frame.sort_values("item", kind="stable")
    lm = as_label_matrix(frame, n_classes=k)
    assert lm.n_items == L.shape[0]
    y_long = None if y is None else pd.Series(np.where(y >= 0, y, np.nan)).dropna()
    long = _fit_proba(spec, frame, y_long, n_classes=k)
    _assert_equivariant(spec, long, dense[lm.item_ids])


def test_pickle_round_trip(spec):
    L, y, _ = _data(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = _est(spec).fit(L, y)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict_proba(L), est.predict_proba(L))


def test_documented_attributes_equal_fitted(spec):
    L, y, _ = _data(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = _est(spec).fit(L, y)
    documented, fitted = _documented(type(est)), _fitted(est)
    assert fitted - documented == set(), f"fitted but undocumented: {sorted(fitted - documented)}"
    assert documented - fitted == set(), f"documented but not set: {sorted(documented - fitted)}"


def test_refit_keeps_nothing_of_the_previous_fit(spec):
    L, y, _ = _data(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = _est(spec).fit(L, y)
        est.stale_attribute_ = 1  # as a previous (e.g. partitioned) fit would leave
        est.fit(L, y)
    assert not hasattr(est, "stale_attribute_")


def test_registry_entry_is_consistent(spec):
    cls = spec.load()
    import wsagg

    assert getattr(wsagg, spec.class_name) is cls
    assert "random_state" in cls().get_params() or spec.name == "majority"
    assert (cls.__doc__ or "").strip(), "the class needs a docstring"


def test_docs_aggregator_table_is_the_registry():
    from pathlib import Path

    from wsagg._registry import markdown_table

    page = (Path(__file__).resolve().parents[1] / "docs" / "aggregators" / "index.md").read_text()
    table = page.split("<!-- registry-table:start -->\n")[1].split("<!-- registry-table:end -->")[0]
    assert table.strip() == markdown_table().strip(), (
        "docs/aggregators/index.md is stale: regenerate its table from wsagg._registry"
    )
