"""Package-level promises: a light import and every public name resolvable."""

import subprocess
import sys

import wsagg


def test_import_is_light():
    code = (
        "import sys, wsagg; wsagg.MajorityVote; wsagg.datasets; wsagg.metrics; "
        "heavy = [m for m in ('torch', 'cvxpy', 'matplotlib', 'dask') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_all_names_exist():
    for name in wsagg.__all__:
        assert getattr(wsagg, name) is not None, name


def test_every_submodule_all_name_exists():
    import importlib
    import pkgutil

    checked = 0
    for info in pkgutil.walk_packages(wsagg.__path__, prefix="wsagg."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", []):
            assert hasattr(module, name), f"{info.name}.__all__ lists missing {name!r}"
            checked += 1
    assert checked > 50
