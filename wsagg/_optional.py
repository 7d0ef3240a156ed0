"""The one door to wsagg's optional dependencies: a missing one is one line naming the extra.

Every import of torch, cvxpy, pyarrow, dask / distributed, matplotlib, tqdm or PyYAML in
wsagg goes through :func:`import_optional`, at the place that needs it (never at
``import wsagg``). When the module is not installed the caller gets a
``ModuleNotFoundError`` whose message is one line: what needed it and the ``pip install``
command of the matching extra in ``pyproject.toml``, e.g.::

    Writing Parquet needs pyarrow, which is not installed: pip install 'wsagg[io]'.

Layer L0: imports nothing else of wsagg.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRAS", "has_module", "import_optional", "missing_message"]

# top-level module -> (distribution name, extra of pyproject.toml's
# [project.optional-dependencies] that installs it)
EXTRAS: dict[str, tuple[str, str]] = {
    "torch": ("torch", "torch"),
    "cvxpy": ("cvxpy", "cvxpy"),
    "pyarrow": ("pyarrow", "io"),
    "yaml": ("PyYAML", "io"),
    "matplotlib": ("matplotlib", "plot"),
    "tqdm": ("tqdm", "progress"),
    "dask": ("dask", "dask"),
    "distributed": ("distributed", "dask"),
}

_NOTES = {
    "torch": "after installing the CPU or CUDA build of torch you want",
}


def missing_message(name: str, purpose: str, alternative: str | None = None) -> str:
    """The one-line message for a missing optional module.

    Parameters
    ----------
    name : str
        The module imported (``"pyarrow.parquet"``, ``"dask.dataframe"``, ...); its top-level
        package must be a key of :data:`EXTRAS`.
    purpose : str
        What needed it, as the start of a sentence (``"Writing Parquet"``).
    alternative : str, optional
        A way around it without the install (``"or write .csv"``), appended in parentheses.

    Returns
    -------
    str
        ``"<purpose> needs <dist>, which is not installed: pip install 'wsagg[<extra>]'."``
    """
    top = name.split(".")[0]
    if top not in EXTRAS:
        raise KeyError(f"{top!r} is not one of wsagg's optional dependencies {sorted(EXTRAS)}.")
    dist, extra = EXTRAS[top]
    notes = [n for n in (_NOTES.get(top), alternative) if n]
    tail = f" ({'; '.join(notes)})" if notes else ""
    return f"{purpose} needs {dist}, which is not installed: pip install 'wsagg[{extra}]'{tail}."


def import_optional(name: str, purpose: str, alternative: str | None = None) -> ModuleType:
    """Import the optional module ``name``, or fail with one line naming the extra.

    Parameters
    ----------
    name : str
        Dotted module name (``"torch"``, ``"pyarrow.parquet"``, ``"matplotlib.pyplot"``).
    purpose : str
        What needs it, as the start of a sentence (``"device='cuda'"``, ``"Reading YAML"``).
    alternative : str, optional
        A way around the install, shown in parentheses.

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    ModuleNotFoundError
        The module (or one it needs) is not installed; the message is
        :func:`missing_message`. The original error is chained.
    ImportError
        The module is installed but failed to import (a broken install); the message says
        so and how to reinstall.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        top = name.split(".")[0]
        raise ModuleNotFoundError(missing_message(name, purpose, alternative), name=top) from err
    except ImportError as err:
        top = name.split(".")[0]
        dist, extra = EXTRAS[top]
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ImportError(
            f"{purpose} needs {dist}, which is installed but failed to import ({first}); "
            f"reinstall it: pip install --force-reinstall 'wsagg[{extra}]'."
        ) from err


def has_module(name: str) -> bool:
    """Whether the optional module ``name`` can be imported (imports it when it can)."""
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True
