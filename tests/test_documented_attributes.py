"""Every public estimator outside the aggregator registry documents exactly the fitted
attributes it sets (``tests/test_contract.py`` checks every registered aggregator)."""

import re

import numpy as np
import pytest

import wsagg
from wsagg.datasets import make_dawid_skene


def _documented(cls) -> set[str]:
    doc = cls.__doc__ or ""
    match = re.search(r"\n\s*Attributes\n\s*-+\n(.*?)(\n\s*(See Also|Notes|References|Examples)"
                      r"\n\s*-+\n|\Z)", doc, re.S)
    assert match, f"{cls.__name__} has no numpydoc 'Attributes' section"
    names: set[str] = set()
    for line in match.group(1).splitlines():
        head = re.match(r"^\s{0,8}([A-Za-z][A-Za-z0-9_]*_(?:\s*,\s*[A-Za-z][A-Za-z0-9_]*_)*)"
                        r"\s*(?::|$)", line)
        if head:
            names.update(n.strip() for n in head.group(1).split(","))
    return names


def _fitted(est) -> set[str]:
    return {k for k in vars(est) if k.endswith("_") and not k.startswith("_")}


def _data():
    d = make_dawid_skene(300, 6, 3, coverage=0.7, random_state=0)
    y = np.full(300, -1)
    y[:60] = d.y[:60]
    return d, y


def _fit_estimators():
    # the registered aggregators are covered by tests/test_contract.py (from the registry)
    d, _ = _data()
    from wsagg.downstream import SoftLabelClassifier

    X = np.random.default_rng(0).normal(size=(300, 4))
    soft = wsagg.MajorityVote().fit_predict_proba(d.L)
    yield SoftLabelClassifier(max_iter=3, progress=False, random_state=0).fit(X, soft)
    from wsagg.downstream import WeakSupervisionPipeline
    from wsagg.prior import PriorCorrector

    yield PriorCorrector().fit(soft)
    clf = SoftLabelClassifier(max_iter=3, progress=False, random_state=0)
    yield WeakSupervisionPipeline(classifier=clf).fit(d.L, X)


@pytest.mark.parametrize("est", list(_fit_estimators()), ids=lambda e: type(e).__name__)
def test_documented_attributes_equal_fitted(est):
    documented = _documented(type(est))
    fitted = _fitted(est)
    assert fitted - documented == set(), f"fitted but undocumented: {sorted(fitted - documented)}"
    assert documented - fitted == set(), f"documented but not set: {sorted(documented - fitted)}"
