"""Dawid-Skene EM as pure functions: the design matrix, the E-step table, the M-step.

Nothing here holds state: the estimator (:mod:`.estimator`) and the partitioned fit
(:mod:`.partitioned`) both drive these functions, which is why the two agree to rounding
error. Notation and model: see the docstring of :mod:`wsagg.aggregation.dawid_skene`.

* :func:`design` builds ``X`` (items x outcome columns): the one-hot votes ``V`` (``n x m k``)
  and, under ``abstain="model"``, presence columns.
* :func:`log_parameter_table` turns the parameters into ``(T, b)`` so that the log joint of
  every item and class is ``X T + b`` (the E-step is one sparse product and a softmax, in a
  backend).
* :func:`m_step` maps the sufficient statistics ``X^T q`` and ``q.sum(0)`` to MAP parameters
  under Dirichlet (Beta) priors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from wsagg.aggregation.dawid_skene.backends.numpy import bincount_chunked, row_sum, row_view
from wsagg.diagnostics import abstains_are_informative
from wsagg.labels import LabelMatrix, flat_index, map_runs, split_runs

__all__ = [
    "Design",
    "EMResult",
    "Params",
    "bind_marginal",
    "binds_prior",
    "build_design",
    "column_counts",
    "column_sums",
    "initial_posterior",
    "log_parameter_table",
    "log_prior_density",
    "m_step",
    "one_hot",
    "params_from_vector",
    "params_to_vector",
    "population_prior",
    "resolve_abstain",
    "vote_counts",
]

_FLOOR = 1e-300  # log floor: only reached with smoothing=0 and an empty count


@dataclass
class Params:
    log_conf: np.ndarray  # (m, k, k): log Theta_j[c, l] (given a vote, under "model")
    log_prior: np.ndarray  # (k,)
    log_vote: np.ndarray | None = None  # (m, k): log a_j[c]   ("model" only)
    log_abst: np.ndarray | None = None  # (m, k): log(1 - a_j[c])
    # (k,): the class offsets that make a fixed class prior bind ("model" only, see
    # binds_prior); added to the log prior in the E-step and at prediction
    prior_offset: np.ndarray | None = None
    # hierarchical shrinkage (shrinkage="population"): the population's confusion rows mu
    # (k, k) and the learned strength alpha of the Dir(alpha mu_c) prior on each source's row
    population: np.ndarray | None = None
    shrinkage_strength: float | None = None


@dataclass(frozen=True)
class EMResult:
    """The outcome of one EM run."""

    params: Params
    history: np.ndarray  # the MAP objective after the initial M-step and each iteration
    n_iter: int
    converged: bool

    @property
    def objective(self) -> float:
        return float(self.history[-1])


@dataclass
class Design:
    """The design matrix ``X`` and how its columns map to parameters."""

    X: sp.csr_matrix
    m: int
    k: int
    separate_presence: bool  # "model" with repeated votes: X = [V | P] (P = voted-or-not)


_CHUNK = 1 << 20  # votes per chunk when building the design (bounded int64 temporaries)


def index_dtype(n_votes: int, n_cols: int) -> type:
    """``int32`` for the design's indices and row pointers where they fit, else ``int64``."""
    return np.int32 if max(n_votes, n_cols) < 2**31 - 1 else np.int64


def one_hot(lm: LabelMatrix, dtype: Any = np.float64, n_jobs: int = 1) -> sp.csr_matrix:
    """The one-hot vote-count matrix ``V`` (``n x m k``) of ``lm`` in one vectorised pass:
    ``int32`` indices and row pointers where they fit, values of ``dtype``, built chunk by
    chunk (no ``int64`` temporaries of the size of the votes); with ``n_jobs > 1`` the
    chunks are cut into that many contiguous runs, one per thread (the same matrix).

    Cached on ``lm`` (one entry per dtype), so that every fit and prediction that is handed
    the same :class:`~wsagg.labels.LabelMatrix` converts its votes once. Equal, as a
    matrix, to :meth:`wsagg.labels.LabelMatrix.one_hot`.

    Memory: for votes grouped by item (dense and sparse input, and long input sorted by
    item) the matrix itself (``nnz`` values of ``dtype``, ``nnz`` ``int32`` column indices,
    ``n + 1`` row pointers) and one chunk's temporaries; other orders go through scipy's
    COO -> CSR conversion (a second copy while it runs).
    """
    dtype = np.dtype(dtype)
    key = ("wsagg.dawid_skene.one_hot", dtype.str)
    cached = lm._cache.get(key)
    if cached is not None:
        return cached
    n, m, k = lm.n_items, lm.n_sources, lm.n_classes
    nv = lm.n_votes
    idx_t = index_dtype(nv, m * k + m)
    item, src, lab = lm.item, lm.source, lm.label
    indices = np.empty(nv, dtype=idx_t)
    data = np.empty(nv, dtype=dtype)
    indptr = np.zeros(n + 1, dtype=idx_t)
    grouped = lm.grouped_by_item()  # (checked once, cached on lm)
    # dense input: one vote per (item, source), sources ascending within each item, so the
    # columns j k + l ascend within each row (nothing to check)
    known_canonical = grouped and lm._cache.get("sources_ascending", False)
    chunks = list(range(0, nv, _CHUNK))

    def work(run: range) -> tuple[bool, int]:
        """The run's chunks: their columns and values, whether they are sorted within
        items, and their votes per item added into ``indptr``, except those of the run's
        first item (returned): that item may continue from the previous run, whose thread
        adds into the same entry. Every other entry is this run's alone."""
        canonical, held = True, 0
        if not run:  # (no votes)
            return canonical, held
        head = int(item[chunks[run[0]]]) if grouped and run[0] > 0 else -1
        for a in (chunks[c] for c in run):  # the column of each vote; sorted per item?
            b = min(a + _CHUNK, nv)
            col = indices[a:b]
            np.multiply(src[a:b], k, out=col, dtype=idx_t)  # (in idx_t: m k may pass 2^31)
            col += lab[a:b]
            data[a:b] = 1
            if not grouped:
                continue
            # one vote of overlap with the previous chunk, except at the start of a run
            # (that chunk may be another thread's: the runs' seams are checked after)
            lo = a if a == chunks[run[0]] else a - 1
            if canonical and not known_canonical:
                it, c = item[lo:b], indices[lo:b]
                canonical = bool(np.all((c[1:] > c[:-1]) | (it[1:] != it[:-1])))
            # votes per item of this chunk (its items are one sorted range: a short bincount)
            first = int(item[a])
            per_item = np.bincount(item[a:b] - first).astype(idx_t)
            if first == head:
                held += int(per_item[0])
                per_item[0] = 0
            indptr[first + 1 : first + 1 + per_item.shape[0]] += per_item
        return canonical, held

    runs = split_runs(len(chunks), n_jobs)
    results = map_runs(work, runs)
    canonical = all(r[0] for r in results)
    if grouped:
        for run, (_, held) in zip(runs[1:], results[1:], strict=True):
            a = chunks[run[0]]
            indptr[int(item[a]) + 1] += held
            # the votes where two runs meet
            if not known_canonical and item[a] == item[a - 1] and not indices[a] > indices[a - 1]:
                canonical = False
    if not grouped:  # votes in no particular order: scipy's COO -> CSR (sums repeats)
        V = sp.csr_matrix((data, (item, indices)), shape=(n, m * k), dtype=dtype)
        del indices
        V.sum_duplicates()
    else:
        np.cumsum(indptr, out=indptr)
        V = sp.csr_matrix((data, indices, indptr), shape=(n, m * k), copy=False)
        if canonical:
            V.has_canonical_format = True
        else:
            V.sum_duplicates()
    lm._cache[key] = V
    return V


def column_sums(X: sp.csr_matrix) -> np.ndarray:
    """Column sums of ``X`` (float64): one pass over its indices and values, as the product
    ``X.T @ 1`` (scipy's kernel is about 4x faster than a weighted ``np.bincount``; the sums
    of whole vote counts are exact either way)."""
    if X.nnz == 0:
        return np.zeros(X.shape[1])
    if X.dtype != np.float64:  # (a float32 running sum is exact only up to 2^24 votes)
        return bincount_chunked(X.indices, X.data, X.shape[1])
    return np.asarray(X.T @ np.ones(X.shape[0]))


def column_counts(V: sp.csr_matrix, m: int, k: int, sums: np.ndarray | None = None
                  ) -> np.ndarray:
    """``(m, k)`` number of votes of each source for each class, from ``V``'s column sums
    ``sums`` (:func:`column_sums`; equal to :func:`vote_counts`)."""
    c = column_sums(V) if sums is None else sums
    return np.rint(c[: m * k]).astype(np.int64).reshape(m, k)


def build_design(
    lm: LabelMatrix, abstain: str, separate: bool | None = None, dtype: Any = np.float64
) -> Design:
    """The design matrix of ``lm``: ``V`` (its one-hot vote counts, :func:`one_hot`), or
    ``[V | P]`` with the presence columns ``P[i, j] = 1`` if source ``j`` voted on item
    ``i``.

    ``separate=None``: ``[V | P]`` only under ``abstain="model"`` with repeated votes (else
    ``V`` already tells presence). A bool forces the form whatever ``abstain`` is: the
    partitioned engines (:mod:`wsagg.distributed`) decide it once for every partition.
    """
    m, k = lm.n_sources, lm.n_classes
    V = one_hot(lm, dtype)
    if separate is None:
        separate = abstain == "model" and V.nnz > 0 and _repeated(V, k)
    if not separate:
        return Design(V, m, k, False)
    V.sort_indices()
    P = sp.csr_matrix((np.ones(V.nnz, dtype=V.dtype), V.indices // k, V.indptr.copy()),
                      shape=(lm.n_items, m))
    P.sum_duplicates()
    P.data[:] = 1.0  # presence: voted at least once
    return Design(sp.hstack([V, P], format="csr"), m, k, True)


def _repeated(V: sp.csr_matrix, k: int) -> bool:
    """Some source voted more than once on some item: a count > 1, or two columns of one
    source's block in one row (adjacent once indices are sorted): O(nnz), no sort or hash."""
    V.sort_indices()
    src = V.indices // k
    starts = np.zeros(V.nnz, dtype=bool)
    starts[V.indptr[:-1][V.indptr[:-1] < V.nnz]] = True
    return bool(V.data.max() > 1) or bool(np.any(~starts[1:] & (src[1:] == src[:-1])))


def log_parameter_table(p: Params, d: Design) -> tuple[np.ndarray, np.ndarray]:
    """Log-parameter table (columns of X -> classes) and the constant row ``(k,)``."""
    m, k = d.m, d.k
    conf_t = np.transpose(p.log_conf, (0, 2, 1))  # (m, l, c)
    offset = p.log_prior.copy()
    if p.prior_offset is not None:
        offset += p.prior_offset
    if p.log_vote is None:
        return conf_t.reshape(m * k, k), offset
    assert p.log_abst is not None
    gain = p.log_vote - p.log_abst  # (m, c): voting instead of abstaining
    offset += p.log_abst.sum(axis=0)  # every source abstains ...
    if d.separate_presence:  # ... except those that voted (presence columns)
        return np.vstack([conf_t.reshape(m * k, k), gain]), offset
    return (conf_t + gain[:, None, :]).reshape(m * k, k), offset


def _counts(stats: np.ndarray, d: Design) -> tuple[np.ndarray, np.ndarray]:
    """Split ``X.T @ q`` into vote counts ``N[j, c, l]`` and presence counts ``A[j, c]``."""
    m, k = d.m, d.k
    N = np.transpose(stats[: m * k].reshape(m, k, k), (0, 2, 1))  # (m, c, l)
    A = stats[m * k :] if d.separate_presence else N.sum(axis=2)
    return N, A


def _safe_log(x: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(x, _FLOOR))


def binds_prior(hp: dict[str, Any]) -> bool:
    """Whether a fixed ``class_prior`` is imposed as the class marginal of the posteriors.

    Under ``abstain="model"`` the abstain terms :math:`b_c = \\sum_j \\log(1 - a_j[c])`
    act as a free per-class bias: a fixed prior :math:`\\pi` is absorbed by the voting
    rates and changes (almost) nothing. There the fixed prior is imposed as posterior
    regularization imposes an expectation constraint (Ganchev, Graca, Gillenwater & Taskar
    2010, JMLR 11): the E-step posterior is the member of
    :math:`Q = \\{q : \\sum_i q_i = n\\pi\\}` (known items clamped) closest in KL to the
    model's posterior, :math:`q_{ic} \\propto p(y_i = c \\mid \\text{votes}_i)\\,
    e^{\\delta_c}` with :math:`\\delta` minimising the convex dual
    :math:`G(\\delta) = \\sum_{i\\ \\text{unknown}} \\mathrm{LSE}_c(\\log p_{ic} + \\delta_c) -
    (n\\pi - K)\\cdot\\delta` (:func:`bind_marginal`; ``K``: the known items' class counts).
    EM then ascends :math:`F = \\log p(\\text{votes}) + \\min_\\delta G(\\delta)`, monotonically;
    the final :math:`\\delta` is kept for prediction."""
    return hp["class_prior"] is not None and hp["abstain"] == "model"


def bind_marginal(
    log_p: np.ndarray, base_counts: np.ndarray, target_counts: np.ndarray
) -> tuple[np.ndarray, float]:
    """Class offsets ``delta`` with ``base_counts + sum_i softmax(log_p_i + delta) =
    target_counts`` (see :func:`binds_prior`), and ``G(delta) <= 0``.

    ``log_p``: ``(n_free, k)`` normalised log posteriors of the free items. A target share
    the known items already exceed is clipped to them (then the constraint is met as
    closely as it can be). Solved by scipy's trust-region Newton method on the convex dual.
    """
    from scipy.optimize import minimize
    from scipy.special import logsumexp, softmax

    k = log_p.shape[1]
    free = np.maximum(target_counts - base_counts, 1e-9 * max(log_p.shape[0], 1))
    free *= log_p.shape[0] / free.sum()

    def fun(delta: np.ndarray) -> tuple[float, np.ndarray]:
        z = log_p + delta
        return float(logsumexp(z, axis=1).sum() - free @ delta), softmax(z, axis=1).sum(0) - free

    def hess(delta: np.ndarray) -> np.ndarray:
        q = softmax(log_p + delta, axis=1)
        return np.diag(q.sum(0)) - q.T @ q + np.full((k, k), 1e-12)

    res = minimize(fun, np.zeros(k), jac=True, hess=hess, method="trust-exact",
                   options={"gtol": 1e-10 * max(log_p.shape[0], 1), "maxiter": 200})
    delta = res.x - res.x.mean()
    return delta, min(float(res.fun), 0.0)


def population_prior(
    N: np.ndarray, smoothing: float, diagonal_smoothing: float
) -> tuple[np.ndarray, float]:
    """Empirical-Bayes population prior of the confusion rows (``shrinkage="population"``).

    Hierarchical Dawid-Skene (Paun, Carpenter, Chamberlain, Hovy, Kruschwitz & Poesio 2018,
    *Comparing Bayesian models of annotation*, TACL 6): source ``j``'s row
    :math:`\\Theta_j[c, \\cdot] \\sim \\mathrm{Dir}(\\alpha\\,\\mu_c)` around a population
    row :math:`\\mu_c`. Given the expected counts ``N`` (``(m, k, k)``, the E-step's), the
    population rows are the pooled rows (with the ``smoothing`` and ``diagonal_smoothing``
    pseudo-counts) and :math:`\\alpha` maximises the Dirichlet-multinomial marginal
    likelihood :math:`\\sum_{j,c} \\log \\mathrm{DirMult}(N_{jc\\cdot} \\mid \\alpha\\mu_c)`
    (a 1-D bounded search in :math:`\\log\\alpha \\in [\\log 10^{-2}, \\log 10^{5}]`,
    scipy). The row estimate is then the posterior mean
    :math:`(N_{jcl} + \\alpha\\mu_{cl}) / (n_{jc} + \\alpha)`: a source with few votes stays
    near the population, one with many follows its own counts (vote-count-aware
    shrinkage, of strength learned from the data)."""
    from scipy.optimize import minimize_scalar
    from scipy.special import gammaln

    k = N.shape[1]
    pooled = N.sum(axis=0) + smoothing + diagonal_smoothing * np.eye(k)
    pooled = np.maximum(pooled, _FLOOR)
    mu = pooled / pooled.sum(axis=1, keepdims=True)
    n_jc = N.sum(axis=2)
    rows = n_jc > 0  # (rows without votes do not inform alpha)
    Nr, nr = N[rows], n_jc[rows]  # (r, k), (r,)
    mur = np.broadcast_to(mu[None], (N.shape[0], k, k))[rows]
    if nr.size == 0:
        return mu, 1.0

    def nll(log_alpha: float) -> float:
        a = np.exp(log_alpha)
        am = a * mur
        ll = gammaln(a) - gammaln(a + nr) + (gammaln(am + Nr) - gammaln(am)).sum(axis=1)
        return -float(ll.sum())

    res = minimize_scalar(nll, bounds=(np.log(1e-2), np.log(1e5)), method="bounded",
                          options={"xatol": 1e-3})
    return mu, float(np.exp(res.x))


def m_step(
    stats: np.ndarray,
    q_sum: np.ndarray,
    d: Design,
    hp: dict[str, Any],
) -> Params:
    """MAP update from the sufficient statistics (see the module docstring)."""
    k = d.k
    s, dg, beta = hp["smoothing"], hp["diagonal_smoothing"], hp["prior_smoothing"]
    N, A = _counts(stats, d)
    eye = np.eye(k)
    if hp["model"] == "one-coin":
        votes = N.sum(axis=(1, 2))
        correct = np.einsum("jcc->j", N)
        acc = (correct + s + dg) / np.maximum(votes + k * s + dg, _FLOOR)
        acc = np.where(votes + k * s + dg > 0, acc, 1.0 / k)
        wrong = (1.0 - acc) / (k - 1)
        conf = wrong[:, None, None] * (1 - eye) + acc[:, None, None] * eye
    elif hp.get("shrinkage") == "population":
        mu, alpha = population_prior(N, s, dg)
        conf = (N + alpha * mu[None]) / (N.sum(axis=2, keepdims=True) + alpha)
    else:
        num = N + s + dg * eye
        den = num.sum(axis=2, keepdims=True)
        conf = np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0 / k)
    if hp["class_prior"] is not None:
        log_prior = np.log(hp["class_prior"])
    else:
        prior = (q_sum + beta) / (q_sum.sum() + k * beta)
        log_prior = _safe_log(prior)
    p = Params(log_conf=_safe_log(conf), log_prior=log_prior)
    if hp.get("shrinkage") == "population" and hp["model"] != "one-coin":
        p.population, p.shrinkage_strength = mu, alpha
    if hp["abstain"] == "model":
        vote = (A + s) / np.maximum(q_sum[None, :] + 2 * s, _FLOOR)
        vote = np.clip(vote, 0.0, 1.0)
        p.log_vote = _safe_log(vote)
        p.log_abst = _safe_log(1.0 - vote)
    return p


def log_prior_density(p: Params, hp: dict[str, Any]) -> float:
    """Log Dirichlet/Beta prior densities of the parameters, constants dropped."""
    s, dg, beta = hp["smoothing"], hp["diagonal_smoothing"], hp["prior_smoothing"]
    k = p.log_prior.shape[0]
    out = 0.0
    if hp["model"] == "one-coin":
        acc = np.exp(np.einsum("jcc->jc", p.log_conf)[:, 0])
        out += float((s + dg) * _safe_log(acc).sum() + (k - 1) * s * _safe_log(1 - acc).sum())
    elif p.population is not None and p.shrinkage_strength is not None:
        # the Dir(alpha mu_c) kernel of each source's rows at the current hyperparameters
        out += float(p.shrinkage_strength * np.einsum("cl,jcl->", p.population, p.log_conf))
    else:
        out += float(s * p.log_conf.sum() + dg * np.einsum("jcc->", p.log_conf))
    if hp["class_prior"] is None:
        out += float(beta * p.log_prior.sum())
    if p.log_vote is not None:
        assert p.log_abst is not None
        out += float(s * (p.log_vote.sum() + p.log_abst.sum()))
    return out


def _log_normalise(x: np.ndarray) -> np.ndarray:
    """``x - logsumexp(x)`` along the last axis."""
    mx = x.max(axis=-1, keepdims=True)
    return x - (mx + np.log(np.exp(x - mx).sum(axis=-1, keepdims=True)))


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def params_to_vector(p: Params, hp: dict[str, Any]) -> np.ndarray:
    """The free parameters as one unconstrained vector (for the SQUAREM extrapolation):
    the log confusion rows (``"full"``) or the logits of the accuracies (``"one-coin"``),
    the log class prior (unless fixed), and the logits of the voting rates (``"model"``).
    :func:`params_from_vector` maps any finite vector back to valid parameters."""
    parts = []
    if hp["model"] == "one-coin":
        acc = np.exp(p.log_conf[:, 0, 0])
        parts.append(np.log(acc) - np.log1p(-np.minimum(acc, 1.0 - 1e-16)))
    else:
        parts.append(p.log_conf.ravel())
    if hp["class_prior"] is None:
        parts.append(p.log_prior)
    if p.log_vote is not None:
        assert p.log_abst is not None
        parts.append((p.log_vote - p.log_abst).ravel())
    return np.concatenate(parts)


def params_from_vector(x: np.ndarray, like: Params, hp: dict[str, Any]) -> Params:
    """Inverse of :func:`params_to_vector` (``like`` gives the shapes and the fixed
    parameters): rows renormalised, logits through the log-sigmoid."""
    m, k = like.log_conf.shape[:2]
    pos = 0
    if hp["model"] == "one-coin":
        z = x[:m]
        pos = m
        la = _log_sigmoid(z)  # log acc
        lw = _log_sigmoid(-z) - np.log(k - 1)  # log((1 - acc) / (k - 1))
        eye = np.eye(k, dtype=bool)
        log_conf = np.where(eye, la[:, None, None], lw[:, None, None])
    else:
        log_conf = _log_normalise(x[: m * k * k].reshape(m, k, k))
        pos = m * k * k
    if hp["class_prior"] is None:
        log_prior = _log_normalise(x[pos : pos + k])
        pos += k
    else:
        log_prior = like.log_prior.copy()
    out = Params(log_conf=log_conf, log_prior=log_prior, prior_offset=like.prior_offset,
                 population=like.population, shrinkage_strength=like.shrinkage_strength)
    if like.log_vote is not None:
        z = x[pos : pos + m * k].reshape(m, k)
        out.log_vote = _log_sigmoid(z)
        out.log_abst = _log_sigmoid(-z)
    return out


def initial_posterior(
    lm: LabelMatrix, known: np.ndarray | None, design: Design | None = None,
    n_jobs: int = 1,
) -> np.ndarray:
    """Soft majority vote (normalised vote counts), uniform for items without a vote.

    With the ``design``, the counts are one more sparse product ``X @ B`` (``B`` maps each
    vote column ``j k + l`` to class ``l``), the cheapest pass over the votes, made by
    blocks of rows straight into the result (memory: the ``(n, k)`` result and one block's
    temporaries; ``n_jobs`` threads take runs of blocks). For two classes it is the one
    column ``X @ B[:, 1]``, the other being the item's vote count less it (the row's number
    of entries when every entry is a single vote)."""
    k = lm.n_classes
    if design is not None:
        X = design.X
        n = X.shape[0]
        B = np.zeros((X.shape[1], k), dtype=X.dtype)
        B[: design.m * k] = np.tile(np.eye(k), (design.m, 1))
        single = k == 2 and not design.separate_presence and (
            X.nnz == 0 or float(X.data.max()) == 1.0)
        q = np.empty((n, k), dtype=np.float64)
        covered = np.empty(n, dtype=bool)
        b1 = np.ascontiguousarray(B[:, 1])
        per = max(1, int(_CHUNK * n / max(X.nnz, 1)))
        starts = list(range(0, n, per))

        def fill(run: range) -> None:
            for a in (starts[i] for i in run):
                b = min(a + per, n)
                blk = row_view(X, a, b)
                qb = q[a:b]
                cov = covered[a:b]
                if single:  # vote counts: exact in float32 too
                    v1 = np.asarray(blk @ b1, dtype=np.float64)
                    tot = np.diff(blk.indptr).astype(np.float64)
                    np.greater(tot, 0, out=cov)
                    if not cov.all():
                        tot[~cov] = 1.0  # (uncovered rows: 0 / 1, set to uniform below)
                    v0 = np.subtract(tot, v1)
                    np.divide(v0, tot, out=qb[:, 0])  # (contiguous temporaries, one
                    np.divide(v1, tot, out=qb[:, 1])  # strided write per column)
                    continue
                qb[...] = blk @ B
                tot = row_sum(qb)
                np.greater(tot, 0, out=cov)
                if cov.all():
                    qb /= tot[:, None]
                else:
                    np.divide(qb, tot[:, None], out=qb, where=cov[:, None])

        map_runs(fill, split_runs(len(starts), n_jobs))
    else:
        tot = np.bincount(lm.item, minlength=lm.n_items).astype(np.float64)
        w = 1.0 / tot[lm.item]  # each vote's share of its item: O(votes)
        q = np.bincount(flat_index(lm.item, k, lm.label), weights=w, minlength=lm.n_items * k)
        # float even without votes (numpy's bincount of nothing is integer, which would
        # truncate the uniform 1/k below to 0)
        q = q.reshape(lm.n_items, k).astype(np.float64, copy=False)
        covered = tot > 0
    q[~covered] = 1.0 / k
    if known is not None:
        idx = np.flatnonzero(known >= 0)
        q[idx] = 0.0
        q[idx, known[idx]] = 1.0
    return q


def vote_counts(lm: LabelMatrix) -> np.ndarray:
    """``(m, k)`` number of votes of each source for each class
    (:meth:`wsagg.labels.LabelMatrix.vote_counts`, cached on ``lm``)."""
    return lm.vote_counts()


def resolve_abstain(abstain: str, counts: np.ndarray, n_votes: int, n_items: int) -> str:
    """``"auto"``: ``"model"`` for mostly-unipolar sources (labeling functions) with abstains
    (:func:`wsagg.diagnostics.abstains_are_informative`).

    ``counts`` is the ``(m, k)`` table of :func:`vote_counts` (summed over partitions in
    :mod:`wsagg.distributed`)."""
    if abstain != "auto":
        return abstain
    return "model" if abstains_are_informative(counts, n_votes, n_items) else "ignore"
