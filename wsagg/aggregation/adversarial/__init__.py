"""The Balsubramani-Freund adversarial log-loss aggregator.

* :mod:`.estimator` — :class:`AdversarialLogLoss`, the scikit-learn estimator;
* :mod:`.constraints` — the accuracy/frequency boxes and the dual problem;
* :mod:`.solvers` — the dual solved by scipy (L-BFGS-B + Newton), cvxpy (the reference) or
  torch;
* :mod:`.partitioned` — the map-reduce fit on partitioned votes.

The game and its dual are stated in :mod:`.estimator`'s docstring.
"""

from wsagg.aggregation.adversarial.estimator import AdversarialLogLoss

__all__ = ["AdversarialLogLoss"]
