"""Dawid-Skene EM (Dawid & Skene 1979): sparse, vectorised, MAP-smoothed, semi-supervised.

* :mod:`.estimator` — :class:`DawidSkene`, the scikit-learn estimator;
* :mod:`.em` — the E/M steps as pure functions on the design matrix;
* :mod:`.backends` — the ``O(votes x k)`` kernels (numpy/scipy.sparse, torch);
* :mod:`.partitioned` — the map-reduce fit on partitioned votes.

The model and its updates are stated in :mod:`.estimator`'s docstring.
"""

from wsagg.aggregation.dawid_skene.estimator import DawidSkene
from wsagg.exceptions import PriorCollapseWarning

__all__ = ["DawidSkene", "PriorCollapseWarning"]
