"""Packaging promises: licence, changelog, py.typed in the package data, the ``wsagg`` logger,
the fast test target."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np

import wsagg

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_file_is_apache_2_and_declared():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert "LICENSE" in PYPROJECT["project"]["license-files"]


def test_changelog_has_an_unreleased_section():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "Keep a Changelog" in text
    assert re.search(r"^## \[Unreleased\]$", text, re.M)
    assert re.search(r"^### (Added|Changed|Fixed)$", text, re.M)


def test_py_typed_ships_with_the_package():
    assert (Path(wsagg.__file__).parent / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["wsagg"]
    assert "Typing :: Typed" in PYPROJECT["project"]["classifiers"]


def test_package_logger_is_silent_by_default():
    handlers = logging.getLogger("wsagg").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def _fit_verbose(setup: str) -> subprocess.CompletedProcess:
    code = (
        "import logging, numpy as np, warnings, wsagg\n"
        f"{setup}\n"
        "warnings.simplefilter('ignore')\n"
        "L = np.array([[0, 0, 1], [1, 1, 1], [0, -1, 0], [1, 1, 0]] * 10)\n"
        "wsagg.DawidSkene(verbose=1, max_iter=5).fit(L)\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)


def test_verbose_lines_go_to_stderr_without_logging_configured():
    out = _fit_verbose("")
    assert out.stdout == ""  # stdout stays clean for data
    assert re.search(r"^\[DawidSkene\] run 0: objective -?\d", out.stderr, re.M), out.stderr


def test_verbose_lines_are_log_records_when_logging_is_configured():
    out = _fit_verbose(
        "logging.basicConfig(level=logging.WARNING, format='REC %(name)s %(levelname)s "
        "%(message)s')"
    )
    assert out.stdout == ""
    assert re.search(
        r"^REC wsagg\.aggregation\.dawid_skene\.estimator INFO \[DawidSkene\] run 0",
        out.stderr, re.M,
    ), out.stderr


def test_quiet_by_default(capsys):
    L = np.array([[0, 0, 1], [1, 1, 1], [0, -1, 0], [1, 1, 0]] * 10)
    wsagg.DawidSkene(max_iter=5).fit(L)
    captured = capsys.readouterr()
    assert captured.out == "" and "[DawidSkene]" not in captured.err


def test_no_print_outside_the_cli():
    offenders = []
    for path in sorted((ROOT / "wsagg").rglob("*.py")):
        if path.name in ("cli.py", "_logging.py"):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.match(r"^\s*print\(", line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}")
    assert offenders == []


def test_make_test_fast_skips_the_slow_marker():
    makefile = (ROOT / "Makefile").read_text()
    target = re.search(r"^test-fast:.*?(?=^\S|\Z)", makefile, re.M | re.S)
    assert target is not None
    assert 'pytest -m "not slow"' in target.group(0) and "ruff check" in target.group(0)
    assert any(m.startswith("slow:") for m in PYPROJECT["tool"]["pytest"]["ini_options"]["markers"])
    assert "make test-fast" in (ROOT / "README.md").read_text()
