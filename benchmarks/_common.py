"""Shared benchmark plumbing: environment record, atomic result files, table printing.

Every benchmark saves ``benchmarks/results/<name>.json`` (rows + environment: package
versions, machine, date, command) and ``<name>.csv``; writes are atomic (temp file +
``os.replace``) so a crashed run never leaves a half-written result.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_HOME = Path(os.environ.get("WSAGG_DATA_HOME", _REPO.parent / "shared" / "data"))


def environment(packages: Sequence[str] = ("numpy", "scipy", "sklearn", "pandas")) -> dict:
    """Versions, machine and date, for the results file."""
    versions = {"python": platform.python_version()}
    for name in ("wsagg", *packages):
        try:
            versions[name] = getattr(importlib.import_module(name), "__version__", "?")
        except Exception:
            versions[name] = None
    try:
        n_cpu = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        n_cpu = os.cpu_count()
    mem_gib = None
    try:
        with open("/proc/meminfo") as fh:
            mem_gib = round(int(fh.readline().split()[1]) / 2**20, 1)
    except OSError:  # pragma: no cover
        pass
    return {
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": n_cpu,
            "memory_gib": mem_gib,
        },
        # the load average when the results were saved (1, 5, 15 min): the machine is shared
        "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg")
        else None,
        "versions": versions,
    }


def atomic_write_text(path: Path, text: str) -> None:
    from wsagg._atomic import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text, overwrite=True)


def save_results(
    name: str,
    rows: list[dict[str, Any]],
    *,
    out_dir: Path | None = None,
    packages: Sequence[str] = ("numpy", "scipy", "sklearn", "pandas"),
    extra: dict | None = None,
) -> Path:
    """Write ``<name>.json`` (rows + environment) and ``<name>.csv`` atomically."""
    import pandas as pd

    out_dir = RESULTS_DIR if out_dir is None else Path(out_dir)
    payload = {"name": name, "environment": environment(packages), "rows": rows, **(extra or {})}
    atomic_write_text(out_dir / f"{name}.json", json.dumps(payload, indent=2, default=str))
    atomic_write_text(out_dir / f"{name}.csv", pd.DataFrame(rows).to_csv(index=False))
    return out_dir / f"{name}.json"


def print_table(rows: list[dict[str, Any]], floatfmt: str = ".4g") -> str:
    """Print rows as an aligned text table and return it."""
    import pandas as pd

    if not rows:
        print("(no rows)")
        return ""
    df = pd.DataFrame(rows)
    text = df.to_string(
        index=False,
        float_format=lambda v: format(v, floatfmt),
    )
    print(text)
    return text


def save_figure(fig: Any, path: Path) -> None:
    """Save a matplotlib figure atomically as PNG."""
    import io

    from wsagg._atomic import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    write_atomic(path, buf.getvalue(), overwrite=True)


def merge_saved_rows(path: Path, rows: list[dict[str, Any]], key: Sequence[str]
                     ) -> list[dict[str, Any]]:
    """The rows saved in ``path`` with those measured now put in their place (the same
    values of the ``key`` fields), new ones appended; every row keeps the date it was
    measured (``measured``; a saved row without one gets its file's date). For benchmarks
    rerun on some of their methods (``--keep-other-rows``)."""
    import json
    import time

    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    rows = [{**r, "measured": r.get("measured", now)} for r in rows]
    if not path.exists():
        return rows
    saved = json.loads(path.read_text())
    date = saved.get("environment", {}).get("date", "")
    fresh = {tuple(r.get(c) for c in key): r for r in rows}
    out = []
    for r in saved["rows"]:
        k = tuple(r.get(c) for c in key)
        out.append(fresh.pop(k) if k in fresh else {**r, "measured": r.get("measured", date)})
    return out + list(fresh.values())
