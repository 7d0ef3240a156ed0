"""Calibrated soft labels for any registered aggregator.

An aggregator's posteriors are often over-confident: correlated sources count as independent
evidence, item-dependent errors are not in the model (issue patterns (c)). The remedy is
temperature scaling of the log posterior (Guo, Pleiss, Sun & Weinberger 2017, *On
calibration of modern neural networks*, ICML), :math:`q_T(c) \\propto q(c)^{1/T}`, which
keeps every item's predicted class and changes only how sure it is.

:func:`calibrated` wraps any aggregator in an :class:`~wsagg.AutoAggregator` with that one
candidate and calibration on, so the temperature is chosen exactly as ``auto`` chooses it:

* **with known labels** (at least 2 per class among the covered items): the ``T`` that
  minimises the log loss of the out-of-fold posteriors of a stratified ``n_folds``-fold
  cross-validation over the known items (every fit sees all votes, the training folds'
  labels clamped), ``T`` in ``[e^{-2.5}, e^{2.5}]``;
* **without labels**: the ``T >= 1`` that maximises the held-out source likelihood (the
  candidate is fitted without each group of sources and scored on how well its tempered
  posteriors predict that group's votes, see :mod:`wsagg.aggregation.auto`) — a gold-free
  tempering that may only soften, never sharpen.

The fitted wrapper's ``temperature_``, ``criterion_``, ``estimator_`` (the refitted
aggregator) and ``explanation_`` say what was done. ``AutoAggregator`` itself calibrates by
default (``calibration=True``).
"""

from __future__ import annotations

from typing import Any

from wsagg._registry import AGGREGATORS

__all__ = ["calibrated"]


def calibrated(
    estimator: Any,
    *,
    n_folds: int = 5,
    n_groups: int = 4,
    random_state: Any = None,
) -> Any:
    """The aggregator ``estimator`` with temperature-calibrated posteriors.

    Parameters
    ----------
    estimator : a registered wsagg aggregator (unfitted; its parameters are kept)
    n_folds : int, default=5
        Folds of the cross-validation over the known labels.
    n_groups : int, default=4
        Source groups of the held-out source likelihood (no labels).
    random_state : int, RandomState or None
        Seeds the folds and the fits.

    Returns
    -------
    AutoAggregator
        With ``candidates=[(name, method, params)]``, ``calibration=True`` and
        ``unsupervised="criterion"`` (so that without labels the one candidate is tempered
        by the gold-free criterion); fit it like any aggregator.

    Examples
    --------
    >>> import numpy as np
    >>> from wsagg import DawidSkene, calibrated
    >>> L = np.array([[0, 0, 1], [1, 1, 1], [0, -1, 0], [1, 1, -1], [0, 0, 0]] * 20)
    >>> model = calibrated(DawidSkene(), random_state=0).fit(L)
    >>> model.temperature_ >= 1.0
    True
    """
    from wsagg.aggregation.auto import AutoAggregator

    cls = type(estimator)
    spec = next((s for s in AGGREGATORS.values()
                 if s.class_name == cls.__name__ and s.load() is cls), None)
    if spec is None or spec.name == "auto":
        raise TypeError(
            f"calibrated() takes a registered wsagg aggregator other than AutoAggregator "
            f"(which calibrates already); got {cls.__name__}. See `wsagg methods`."
        )
    params = {key: value for key, value in estimator.get_params(deep=False).items()
              if not (key == "n_classes" and value is None)}
    n_classes = params.pop("n_classes", None)
    return AutoAggregator(
        n_classes, candidates=[(spec.name, spec.name, params)], n_folds=n_folds,
        n_groups=n_groups, calibration=True, one_standard_error=False, scoring="log_loss",
        unsupervised="criterion", random_state=random_state,
    )
