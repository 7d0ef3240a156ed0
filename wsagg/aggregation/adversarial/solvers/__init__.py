"""Solvers of the adversarial aggregator's dual (:class:`..constraints.DualProblem`):
``scipy`` (default), ``cvxpy`` (the reference) and ``torch``; each returns a
:class:`SolverResult`."""
