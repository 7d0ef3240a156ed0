"""Synthetic label matrices drawn from the Dawid-Skene model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.utils import check_random_state

from wsagg.labels import LabelMatrix

__all__ = ["SyntheticDawidSkene", "make_dawid_skene"]


@dataclass(frozen=True)
class SyntheticDawidSkene:
    """A draw from :func:`make_dawid_skene`: the votes, the truth and the true parameters."""

    L: LabelMatrix
    y: np.ndarray
    class_prior: np.ndarray
    confusion: np.ndarray  # (m, k, k): confusion[j, c, l] = P(vote l | true c, source votes)
    coverage: np.ndarray  # (m,) probability that a source votes on an item


def make_dawid_skene(
    n_items: int = 1000,
    n_sources: int = 10,
    n_classes: int = 2,
    *,
    class_prior: Any = "uniform",
    zipf_exponent: float = 1.0,
    coverage: Any = 1.0,
    accuracy: Any = (0.6, 0.9),
    confusion: np.ndarray | None = None,
    errors: str = "dirichlet",
    random_state: Any = None,
) -> SyntheticDawidSkene:
    """Draw a label matrix from the Dawid-Skene (1979) model.

    .. math::

        y_i \\sim \\mathrm{Cat}(\\pi), \\qquad
        \\text{source } j \\text{ votes on } i \\text{ with prob. } \\rho_j, \\qquad
        \\lambda_{ij} \\mid y_i = c \\sim \\mathrm{Cat}(\\Theta_j[c, \\cdot]),

    independently across sources. Votes are generated in a vectorised way, memory linear in
    the number of votes (``n * sum(coverage)`` on average), so ``n = 10**7`` is fine.

    Parameters
    ----------
    n_items, n_sources, n_classes : int
    class_prior : "uniform", "zipf" or array-like (k,)
        ``"zipf"``: :math:`\\pi_c \\propto (c+1)^{-s}` with ``s = zipf_exponent`` (a
        heavy-tailed prior: class 0 is the head).
    coverage : float or array-like (m,)
        Probability that each source votes on an item (1 = never abstains).
    accuracy : (low, high) or array-like (m,)
        Per-source probability of a correct vote (drawn uniformly in ``(low, high)`` when a
        pair is given). Ignored if ``confusion`` is given.
    errors : {"dirichlet", "uniform"}
        How a source's errors spread over the other classes: random Dirichlet weights per
        source and class (confusion matrices are not symmetric), or evenly — the one-coin
        (symmetric) model, :math:`\\Theta_j = a_j I + \\frac{1-a_j}{k-1}(11^\\top - I)`.
    confusion : ndarray (m, k, k), optional
        Explicit confusion matrices (rows sum to 1).
    random_state : int, RandomState or None

    Returns
    -------
    SyntheticDawidSkene
        ``L`` (a :class:`~wsagg.labels.LabelMatrix`), ``y`` and the true parameters.
    """
    for name, v in (("n_items", n_items), ("n_sources", n_sources)):
        if int(v) < 1:
            raise ValueError(f"{name} must be >= 1; got {v}.")
    if int(n_classes) < 2:
        raise ValueError(f"n_classes must be >= 2; got {n_classes}.")
    n, m, k = int(n_items), int(n_sources), int(n_classes)
    rng = check_random_state(random_state)

    if isinstance(class_prior, str):
        if class_prior == "uniform":
            prior = np.full(k, 1.0 / k)
        elif class_prior == "zipf":
            prior = (np.arange(1, k + 1, dtype=float)) ** (-float(zipf_exponent))
            prior /= prior.sum()
        else:
            raise ValueError(
                f"class_prior must be 'uniform', 'zipf' or an array; got {class_prior!r}."
            )
    else:
        prior = np.asarray(class_prior, dtype=float)
        if prior.shape != (k,) or (prior < 0).any() or not np.isclose(prior.sum(), 1):
            raise ValueError(f"class_prior must be a distribution over {k} classes.")

    cov = np.broadcast_to(np.asarray(coverage, dtype=float), (m,)).copy()
    if (cov < 0).any() or (cov > 1).any():
        raise ValueError("coverage must lie in [0, 1].")

    if confusion is None:
        acc_spec = np.asarray(accuracy, dtype=float)
        if acc_spec.shape == (2,) and m != 2:
            acc = rng.uniform(acc_spec[0], acc_spec[1], size=m)
        else:
            acc = np.broadcast_to(acc_spec, (m,)).copy()
        if errors not in ("dirichlet", "uniform"):
            raise ValueError(f"errors must be 'dirichlet' or 'uniform'; got {errors!r}.")
        conf = np.empty((m, k, k))
        if errors == "uniform":
            off = np.full((m, k, k - 1), 1.0 / (k - 1))
        else:
            off = rng.dirichlet(np.full(k - 1, 2.0), size=(m, k))  # (m, k, k-1)
        for c in range(k):  # loop over classes only
            others = [l for l in range(k) if l != c]
            conf[:, c, c] = acc
            conf[:, c, others] = (1.0 - acc)[:, None] * off[:, c, :]
    else:
        conf = np.asarray(confusion, dtype=float)
        if conf.shape != (m, k, k) or not np.allclose(conf.sum(axis=2), 1):
            raise ValueError(f"confusion must have shape ({m}, {k}, {k}) with rows summing to 1.")

    y = rng.choice(k, size=n, p=prior)
    # votes: for each source draw which items it covers, then a label from the confusion row
    items_list, sources_list, labels_list = [], [], []
    cum = np.cumsum(conf, axis=2)
    for j in range(m):  # loop over sources only, each step vectorised over items
        items = np.arange(n) if cov[j] >= 1.0 else np.flatnonzero(rng.random_sample(n) < cov[j])
        n_votes = items.shape[0]
        if n_votes == 0:
            continue
        u = rng.random_sample(n_votes)
        labels = (u[:, None] > cum[j, y[items], :-1]).sum(axis=1)
        items_list.append(items)
        sources_list.append(np.full(n_votes, j, dtype=np.int64))
        labels_list.append(labels.astype(np.int64))
    if items_list:
        item = np.concatenate(items_list)
        source = np.concatenate(sources_list)
        label = np.concatenate(labels_list)
        order = np.argsort(item, kind="stable")
        item, source, label = item[order], source[order], label[order]
    else:
        item = source = label = np.zeros(0, dtype=np.int64)
    L = LabelMatrix(
        item=item.astype(np.int64),
        source=source,
        label=label,
        n_items=n,
        n_sources=m,
        n_classes=k,
        item_ids=np.arange(n),
        source_names=np.arange(m),
        classes=np.arange(k),
    )
    return SyntheticDawidSkene(L=L, y=y, class_prior=prior, confusion=conf, coverage=cov)
