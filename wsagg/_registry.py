"""The one table of aggregators: name -> class and capabilities.

Everything public about the aggregators is derived from this table: the top-level exports
(``wsagg.<ClassName>``), the CLI's ``--method`` choices and per-method help, the docs'
aggregator table and the contract tests. Adding an aggregator is one module (or package)
under ``wsagg/aggregation/`` plus one :class:`AggregatorSpec` here.

Entries hold import paths, resolved only when used, so ``import wsagg`` stays light and an
aggregator needing an optional dependency fails only when chosen.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AGGREGATORS",
    "AggregatorSpec",
    "aggregator_class",
    "get_aggregator",
    "markdown_table",
    "method_parameters",
    "partitioned_names",
]


@dataclass(frozen=True)
class AggregatorSpec:
    """One registered aggregator.

    Attributes
    ----------
    name : str
        The method name (``--method`` of the CLI, ``get_aggregator(name)``).
    path : str
        ``"module:ClassName"``.
    summary : str
        One line: the model.
    needs_labels : bool
        ``fit`` needs some known labels (or equivalent information).
    semi_supervised : bool
        Known labels ``y`` are used (clamped or scored) when given.
    partitioned : bool
        Has a map-reduce fit on partitioned votes (Dask / files).
    devices : tuple of str
        Array back-ends: ``"numpy"``, ``"torch"`` (CPU/CUDA).
    binary_only : bool
        Only ``k = 2`` classes.
    label_free_params : tuple of str
        Parameters that stand in for known labels when ``needs_labels`` (the CLI accepts
        the method when one of them is given).
    """

    name: str
    path: str
    summary: str
    needs_labels: bool = False
    semi_supervised: bool = True
    partitioned: bool = False
    devices: tuple[str, ...] = ("numpy",)
    binary_only: bool = False
    label_free_params: tuple[str, ...] = ()

    @property
    def class_name(self) -> str:
        return self.path.partition(":")[2]

    @property
    def module(self) -> str:
        return self.path.partition(":")[0]

    def load(self) -> type:
        """The aggregator class (imports its module)."""
        return getattr(importlib.import_module(self.module), self.class_name)


_SPECS = [
    AggregatorSpec(
        "auto", "wsagg.aggregation.auto:AutoAggregator",
        "chooses among the registered aggregators by cross-validated accuracy (known labels); "
        "MACE without (chosen by leave-one-dataset-out); calibrates the posteriors",
    ),
    AggregatorSpec(
        "majority", "wsagg.aggregation.majority:MajorityVote",
        "(weighted) share of the votes; one-coin log-odds weights from known labels",
    ),
    AggregatorSpec(
        "dawid-skene", "wsagg.aggregation.dawid_skene:DawidSkene",
        "per-source confusion matrices + class prior by MAP-EM (Dawid & Skene 1979)",
        partitioned=True, devices=("numpy", "torch"),
    ),
    AggregatorSpec(
        "adversarial", "wsagg.aggregation.adversarial:AdversarialLogLoss",
        "minimax log loss over labelings consistent with the sources' accuracy intervals "
        "(Balsubramani & Freund 2015/16)",
        needs_labels=True, partitioned=True, devices=("numpy", "torch"),
        label_free_params=("accuracy_bounds",),
    ),
    AggregatorSpec(
        "bcc", "wsagg.aggregation.bcc:BCC",
        "Bayesian classifier combination by variational Bayes: Dirichlet priors on every "
        "confusion row; optional worker communities (Kim & Ghahramani 2012; Venanzi et al. "
        "2014)",
    ),
    AggregatorSpec(
        "glad", "wsagg.aggregation.glad:GLAD",
        "worker ability x item difficulty, EM with a Newton / Fisher-scoring M-step "
        "(Whitehill et al. 2009)",
    ),
    AggregatorSpec(
        "mace", "wsagg.aggregation.mace:MACE",
        "per-worker spamming probability and spam distribution, variational Bayes "
        "(Hovy et al. 2013)",
    ),
    AggregatorSpec(
        "matrix-completion", "wsagg.aggregation.matrix_completion:MatrixCompletion",
        "Snorkel's label model: source accuracies by matrix completion of the overlap "
        "matrix (Ratner et al. 2019)",
    ),
    AggregatorSpec(
        "triplet", "wsagg.aggregation.triplet:Triplet",
        "closed-form triplet estimates of source accuracies (FlyingSquid, Fu et al. 2020); "
        "one-vs-rest for k > 2",
    ),
    AggregatorSpec(
        "wawa", "wsagg.aggregation.wawa:Wawa",
        "worker agreement with aggregate: votes weighted by each worker's agreement with "
        "the majority vote (crowd-kit's Wawa)",
    ),
    AggregatorSpec(
        "zero-based-skill", "wsagg.aggregation.zero_based_skill:ZeroBasedSkill",
        "weighted vote with skills learned by a decaying-step agreement rule (crowd-kit's "
        "ZeroBasedSkill)",
    ),
    AggregatorSpec(
        "iwmv", "wsagg.aggregation.iwmv:IWMV",
        "iterative weighted majority vote (Li & Yu 2014)",
    ),
    AggregatorSpec(
        "kos", "wsagg.aggregation.kos:KOS",
        "message passing on the item-worker graph (Karger, Oh & Shah 2011)",
        semi_supervised=False, binary_only=True,
    ),
    AggregatorSpec(
        "mmsr", "wsagg.aggregation.mmsr:MMSR",
        "worker reliabilities by robust rank-one completion of the worker covariance "
        "(Ma & Olshevsky 2020)",
        semi_supervised=False,
    ),
]

#: method name -> :class:`AggregatorSpec`
AGGREGATORS: dict[str, AggregatorSpec] = {s.name: s for s in _SPECS}


def aggregator_class(method: str) -> type:
    """The class registered under ``method`` (a clear error for an unknown name or a
    missing optional dependency)."""
    if method not in AGGREGATORS:
        raise ValueError(f"Unknown method {method!r}; choose one of {sorted(AGGREGATORS)}.")
    try:
        return AGGREGATORS[method].load()
    except ModuleNotFoundError as err:
        raise ValueError(f"Method {method!r} is not available: {err}.") from err


def get_aggregator(method: str, **params: Any) -> Any:
    """Instantiate the aggregator registered under ``method`` with ``params``; a misspelt
    parameter gets an error listing the valid ones."""
    cls = aggregator_class(method)
    valid = method_parameters(method)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"Unknown parameter(s) {unknown} for method {method!r}; its parameters are "
            f"{sorted(valid)}."
        )
    return cls(**params)


def method_parameters(method: str) -> dict[str, Any]:
    """The constructor parameters of ``method`` and their defaults."""
    sig = inspect.signature(aggregator_class(method).__init__)
    return {
        name: p.default
        for name, p in sig.parameters.items()
        if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def markdown_table() -> str:
    """The docs' aggregator table (``docs/aggregators/index.md`` holds exactly this)."""
    rows = [
        "| method | class | model | needs labels | semi-supervised | partitioned | devices |",
        "|---|---|---|---|---|---|---|",
    ]
    yes = {True: "yes", False: "no"}
    for s in _SPECS:
        model = s.summary + (" (binary)" if s.binary_only else "")
        rows.append(
            f"| `{s.name}` | `wsagg.{s.class_name}` | {model} | {yes[s.needs_labels]} | "
            f"{yes[s.semi_supervised]} | {yes[s.partitioned]} | {', '.join(s.devices)} |"
        )
    return "\n".join(rows) + "\n"


def partitioned_names() -> list[str]:
    """Class names of the aggregators that fit on partitioned votes."""
    return [s.class_name for s in _SPECS if s.partitioned]
