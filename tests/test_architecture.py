"""The package's dependency rules, read from every import statement (function-level too).

Layers (see docs/architecture.md):

* L0 ``labels``, ``exceptions``: import nothing else of wsagg;
* L1 ``base`` (the contract), ``_registry`` (the one table): ``base`` never imports the
  distributed engine or an aggregator;
* ``distributed`` (map / tree-reduce) never imports ``aggregation``;
* ``aggregation.<model>`` never imports another model, ``cli``, ``downstream`` or ``datasets``;
* ``datasets`` never imports an aggregator; nothing but ``__main__`` imports ``cli``;
* ``persistence`` never imports an aggregator, ``downstream`` or ``base`` (it resolves the
  allow-listed classes by name, so ``base.save`` and ``SoftLabelClassifier.save`` make no
  cycle);
* no import cycle anywhere.

Each violation is reported as ``module:line imports target (rule)``.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "wsagg"


def _module_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(current: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".") if is_pkg else current.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def collect_imports(root: Path) -> tuple[dict[str, list[tuple[str, int]]], set[str]]:
    """``{module: [(imported wsagg module, line), ...]}`` over every ``.py`` under ``root``
    (imports inside functions included), and the set of module names."""
    files = sorted(root.rglob("*.py"))
    modules = {_module_name(root, f) for f in files}
    graph: dict[str, list[tuple[str, int]]] = {}
    for f in files:
        name = _module_name(root, f)
        is_pkg = f.name == "__init__.py"
        edges: list[tuple[str, int]] = []
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mod = _resolve(name, is_pkg, node)
                # "from pkg import submodule" imports the submodule
                targets = [
                    f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names
                ]
            else:
                continue
            for t in targets:
                if t == "wsagg" or t.startswith("wsagg."):
                    edges.append((t, node.lineno))
        graph[name] = edges
    return graph, modules


def _in(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _model(module: str) -> str | None:
    """``wsagg.aggregation.dawid_skene.em`` -> ``dawid_skene``; ``None`` outside models."""
    parts = module.split(".")
    if len(parts) >= 3 and parts[:2] == ["wsagg", "aggregation"]:
        return parts[2]
    return None


def check_rules(root: Path) -> list[str]:
    graph, _ = collect_imports(root)
    bad: list[str] = []

    def flag(src: str, line: int, dst: str, rule: str) -> None:
        bad.append(f"{src}:{line} imports {dst} ({rule})")

    for src, edges in graph.items():
        for dst, line in edges:
            if _in(src, "wsagg.labels") or _in(src, "wsagg.exceptions"):
                if dst != src:
                    flag(src, line, dst, "labels/exceptions import nothing else of wsagg")
            if src == "wsagg.base" and (
                _in(dst, "wsagg.distributed") or _in(dst, "wsagg.aggregation")
            ):
                flag(src, line, dst, "base never imports distributed or an aggregator")
            if _in(src, "wsagg.distributed") and _in(dst, "wsagg.aggregation"):
                flag(src, line, dst, "distributed never imports aggregation")
            m_src, m_dst = _model(src), _model(dst)
            if m_src is not None:
                if m_dst is not None and m_dst != m_src:
                    flag(src, line, dst, "aggregators never import each other")
                if dst == "wsagg.aggregation":
                    flag(src, line, dst, "aggregators never import each other")
                for face in ("wsagg.cli", "wsagg.downstream", "wsagg.datasets"):
                    if _in(dst, face):
                        flag(src, line, dst, "aggregators never import cli/downstream/datasets")
            if _in(src, "wsagg.datasets") and _in(dst, "wsagg.aggregation"):
                flag(src, line, dst, "datasets never imports an aggregator")
            if src == "wsagg.persistence" and (
                _in(dst, "wsagg.aggregation") or _in(dst, "wsagg.downstream")
                or _in(dst, "wsagg.base")
            ):
                flag(src, line, dst, "persistence resolves allow-listed classes by name only")
            if _in(dst, "wsagg.cli") and src not in ("wsagg.__main__", "wsagg.cli"):
                flag(src, line, dst, "nothing imports the CLI")
    bad.extend(_cycles(graph))
    return bad


def _cycles(graph: dict[str, list[tuple[str, int]]]) -> list[str]:
    """Every strongly connected component of more than one module (Tarjan), as a cycle."""
    adj = {u: sorted({v for v, _ in es if v in graph and v != u}) for u, es in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[str] = []
    counter = [0]

    def visit(u: str) -> None:
        index[u] = low[u] = counter[0]
        counter[0] += 1
        stack.append(u)
        on.add(u)
        for v in adj[u]:
            if v not in index:
                visit(v)
                low[u] = min(low[u], low[v])
            elif v in on:
                low[u] = min(low[u], index[v])
        if low[u] == index[u]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == u:
                    break
            if len(comp) > 1:
                out.append("import cycle: " + " -> ".join(sorted(comp)))

    for u in sorted(adj):
        if u not in index:
            visit(u)
    return out


def test_the_tree_follows_the_dependency_rules():
    assert check_rules(PKG) == []


def test_function_level_imports_are_seen():
    graph, _ = collect_imports(PKG)
    # the aggregators' partitioned hooks import their own package inside a method
    targets = {t for t, _ in graph["wsagg.aggregation.dawid_skene.estimator"]}
    assert "wsagg.aggregation.dawid_skene.partitioned" in targets


@pytest.mark.parametrize(
    ("module", "line", "expected"),
    [
        ("base.py", "    from wsagg import distributed\n", "base never imports distributed"),
        ("distributed/engine.py", "from wsagg.aggregation import majority\n",
         "distributed never imports aggregation"),
        ("aggregation/majority.py", "    from wsagg.aggregation.dawid_skene import em\n",
         "aggregators never import each other"),
        ("aggregation/majority.py", "from wsagg.datasets import load_demo\n",
         "aggregators never import cli/downstream/datasets"),
        ("labels.py", "from wsagg.base import BaseAggregator\n", "import cycle"),
        ("datasets/_base.py", "from wsagg.aggregation.majority import MajorityVote\n",
         "datasets never imports an aggregator"),
        ("persistence.py", "    from wsagg.aggregation.majority import MajorityVote\n",
         "persistence resolves allow-listed classes by name only"),
        ("prior.py", "from wsagg.cli import main\n", "nothing imports the CLI"),
    ],
)
def test_a_bad_import_is_named(tmp_path, module, line, expected):
    root = tmp_path / "wsagg"
    shutil.copytree(PKG, root, ignore=shutil.ignore_patterns("__pycache__"))
    target = root / module
    if line.startswith("    "):  # a function-level import
        line = "\n\ndef _deliberately_bad():\n" + line
    target.write_text(target.read_text() + "\n" + line)
    bad = check_rules(root)
    assert any(expected in b for b in bad), bad
    dotted = "wsagg." + module.removesuffix(".py").replace("/", ".")
    assert any(b.startswith(dotted + ":") or "import cycle" in b for b in bad), bad
