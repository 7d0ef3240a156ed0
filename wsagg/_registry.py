"""Aggregator registry: the names the CLI's ``--method`` switch accepts.

Entries are import paths, resolved only when used, so that ``import wsagg`` stays light and
an aggregator needing an optional dependency fails only when chosen.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["AGGREGATORS", "get_aggregator"]

#: method name -> "module:ClassName"
AGGREGATORS: dict[str, str] = {
    "majority": "wsagg.majority:MajorityVote",
    "dawid-skene": "wsagg.dawid_skene:DawidSkene",
    "adversarial": "wsagg.adversarial:AdversarialLogLoss",
}


def get_aggregator(method: str, **params: Any) -> Any:
    """Instantiate the aggregator registered under ``method`` with ``params``."""
    if method not in AGGREGATORS:
        raise ValueError(
            f"Unknown method {method!r}; choose one of {sorted(AGGREGATORS)}."
        )
    module_name, _, cls_name = AGGREGATORS[method].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise ValueError(f"Method {method!r} is not available: {err}.") from err
    return getattr(module, cls_name)(**params)
