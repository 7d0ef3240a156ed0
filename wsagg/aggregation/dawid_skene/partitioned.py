"""Dawid-Skene EM on partitioned votes (Dask or streamed), on the engine's public API.

With ``X_p`` the design matrix of the items of row partition ``p`` (the one-hot vote matrix,
plus presence columns under ``abstain="model"`` with repeated votes), ``T`` the
log-parameter table and ``b`` its constant row,

.. math::

    q^{(p)} = \\mathrm{softmax}_c\\big(X_p T + b\\big), \\qquad
    S = \\sum_p X_p^\\top q^{(p)}, \\qquad
    \\textstyle s = \\sum_p \\sum_{i \\in p} q^{(p)}_i, \\qquad
    \\ell = \\sum_p \\sum_{i \\in p} \\mathrm{logsumexp}_c\\big(X_p T + b\\big)_i .

So one iteration is a *map* (each partition runs its E-step and returns its sufficient
statistics ``(loglik, X_p^T q, q.sum(0))``) and a *reduce* (the engine sums them; the driver
runs the M-step of :mod:`.em` on ``O(m k^2)`` numbers). The EM loop, the checks and the
fitted attributes are the estimator's own methods, so the result equals the in-memory fit on
the same votes to rounding error (tested to ``1e-8`` in ``tests/distributed/``).

Reference: A. P. Dawid and A. M. Skene (1979), JRSS C 28(1):20-28; the map-reduce form of
EM's sufficient statistics is that of C. Chu et al. (2006), "Map-Reduce for Machine
Learning on Multicore", NeurIPS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from wsagg._validation import warn
from wsagg.aggregation.dawid_skene.backends.numpy import NumpyBackend
from wsagg.aggregation.dawid_skene.em import (
    Design,
    binds_prior,
    build_design,
    initial_posterior,
    vote_counts,
)
from wsagg.distributed import Chunk, PartitionMeta, Runner, as_partitions, chunk_task, to_chunk

__all__ = ["fit_partitioned"]


@dataclass
class _PartDesign:
    X: sp.csr_matrix
    known: np.ndarray | None
    n: int
    backend: NumpyBackend | None = None  # built at the first E-step, kept with the part


def _init_task(chunk: Chunk) -> dict:
    """Pass 0 of a partition: counts, repeated votes, and the statistics of the soft
    majority vote (of ``[V | P]``: the driver keeps the ``P`` rows only if it needs them)."""
    lm = chunk.lm
    q0 = initial_posterior(lm, chunk.known) if lm.n_items else np.zeros((0, lm.n_classes))
    counts = lm.class_counts()
    tot = counts.sum(axis=1, keepdims=True)
    cov = tot[:, 0] > 0
    return {
        "n_items": lm.n_items,
        "source_class": vote_counts(lm),
        "repeats": bool(lm.n_votes) and lm.has_repeats(),
        "stats": np.asarray(build_design(lm, "model", separate=True).X.T @ q0),
        "q_sum": q0.sum(axis=0),
        "mv_sum": (counts[cov] / tot[cov]).sum(axis=0),
        "n_covered": int(cov.sum()),
        "n_known": 0 if chunk.known is None else int((chunk.known >= 0).sum()),
    }


def _design_task(chunk: Any, meta: PartitionMeta, separate: bool) -> _PartDesign:
    if isinstance(chunk, _PartDesign):
        return chunk
    if not isinstance(chunk, Chunk):
        chunk = to_chunk(chunk, meta)
    known = chunk.known if chunk.known is not None and (chunk.known >= 0).any() else None
    X = build_design(chunk.lm, "model", separate=separate).X
    return _PartDesign(X, known, chunk.lm.n_items)


def _estep_task(
    part: Any, meta: PartitionMeta, separate: bool, table: np.ndarray, offset: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    d = _design_task(part, meta, separate)
    if d.n == 0:
        return 0.0, np.zeros((d.X.shape[1], table.shape[1])), np.zeros(table.shape[1])
    backend = d.backend if d.backend is not None else NumpyBackend(d.X, d.known)
    d.backend = backend  # (a streamed partition is rebuilt each pass; a kept one reuses it)
    return backend.e_step(table, offset)

def _fit_em(est: Any, parts: Any, runner: Runner) -> Any:
    """``DawidSkene._fit_core`` with the sums over items done by the partitions: the checks,
    the EM loop and the fitted attributes are the estimator's own methods."""
    meta = runner.resolve_meta(est.n_classes)
    m, k = meta.n_sources, meta.n_classes
    if est.n_classes is not None and est.n_classes != k:
        raise ValueError(f"The votes have {k} classes but n_classes={est.n_classes}.")
    hp = est._hyper(k)
    runner.transform(chunk_task, meta)
    inits = runner.map_reduce(_init_task)  # summed key-wise ("repeats": any)

    def total(key: str) -> Any:
        return inits[key]

    n = int(total("n_items"))
    counts = total("source_class")
    est._start_fit(hp, counts, n, meta.source_names)
    est.classes_ = meta.classes
    est.n_classes_ = k
    est.n_sources_ = m
    est.source_names_ = meta.source_names
    n_known = int(total("n_known"))
    if hp["auto_diagonal"] and n_known > 0:
        warn(
            "diagonal_smoothing='auto' chooses d by cross-validation on the known labels "
            "only for in-memory fits; this partitioned fit uses the unsupervised default "
            f"d={hp['diagonal_smoothing']:g}. Pass diagonal_smoothing=<float> (e.g. the "
            "diagonal_smoothing_ of an in-memory fit on a sample) to choose it.",
            UserWarning)
    if binds_prior(hp):
        raise ValueError(
            "class_prior with abstain='model' is imposed as the class marginal of the "
            "posteriors (posterior regularization), which needs every item's posterior at "
            "each E-step; fit in memory, or pass abstain='ignore' for a partitioned fit."
        )
    separate = est.abstain_ == "model" and bool(inits["repeats"])
    design = Design(None, m, k, separate)  # type: ignore[arg-type]  # X lives on workers
    stats0 = total("stats")
    if not separate:
        stats0 = stats0[: m * k]  # drop the presence rows
    runner.transform(_design_task, meta, separate)

    def e_step(table: np.ndarray, offset: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        loglik, stats, q_sum = runner.map_reduce(_estep_task, meta, separate, table, offset)
        return float(loglik), stats, q_sum

    result = est._run_em(
        e_step, stats0, total("q_sum"), design, hp, n, name="DawidSkene/distributed"
    )
    est._set_fitted(result, n_items=n)
    n_cov = int(total("n_covered"))
    if n_known == 0 and hp["class_prior"] is None and n_cov:
        # (the posteriors stay on the workers: the check uses the prior only)
        est._check_prior_collapse(total("mv_sum") / n_cov)
    est.partition_info_ = {
        "n_partitions": parts.n_partitions,
        "n_items": n,
        "n_votes": int(counts.sum()),
        "engine": parts.engine,
    }
    return est


def fit_partitioned(est: Any, L: Any, y: Any = None) -> Any:
    """Fit the Dawid-Skene estimator ``est`` on partitioned votes ``L`` by map-reduce EM.

    ``n_init`` must be 1 (restarts draw per-item noise on the driver)."""
    if est.n_init != 1:
        raise ValueError(
            f"Distributed Dawid-Skene supports n_init=1 only (got n_init={est.n_init}); "
            "its restarts draw per-item noise on the driver."
        )
    parts, _ = as_partitions(L, y, getattr(est, "n_classes", None))
    with Runner(parts) as runner:
        return _fit_em(est, parts, runner)
