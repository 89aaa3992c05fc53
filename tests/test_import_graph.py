"""The package's import graph, read from the source: no cycles, and the layering of DESIGN.md.

The graph is built with :mod:`ast` over every ``sktopo/**/*.py`` file (nothing is imported):
an edge ``a -> b`` for every ``import``/``from ... import`` in module ``a`` that names a module
``b`` of the package, relative imports resolved against ``a``'s package, ``from pkg import
name`` pointing at ``pkg.name`` when that is a module and at ``pkg`` otherwise.

Every import counts, wherever it stands: at module level, inside a function or method, under
``if TYPE_CHECKING`` or in a ``try``. A lazy (function-level) import is still a dependency: it
runs on the first call, and two modules that need each other that way are one concept split in
two (the cycles this test was written for, ``dimension/_batched.py`` <-> ``dimension/phdim.py``
and ``nn/_relu_engine.py`` <-> ``nn/relu_rank.py``, were all function-level). The lazy public
names of ``sktopo/__init__.py`` (``import_module`` on the ``_PUBLIC`` table) count as edges of
``sktopo`` too. Importing a submodule also runs its parent packages' ``__init__``; those
implicit edges are left out, as the ``__init__`` files import nothing but their public names.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sktopo"


def _modules(root: Path) -> dict:
    """``{dotted name: path}`` of every module and package of ``root``."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _owner(name: str, modules: dict):
    """The module of the package that ``name`` (a module or a name in one) lives in."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _public_table(tree) -> list:
    """The module names of ``sktopo/__init__.py``'s lazy ``_PUBLIC`` table."""
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_PUBLIC"
                                                 for t in node.targets)):
            return [value.value for value in node.value.values]
    return []


def import_graph(root: Path = PACKAGE) -> dict:
    """``{module: {(imported module, line), ...}}`` for every module of the package."""
    modules = _modules(root)
    top = root.name
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update((alias.name, node.lineno) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package
                    for _ in range(node.level - 1):
                        base = base.rpartition(".")[0]
                    full = ".".join(p for p in (base, node.module) if p)
                else:
                    full = node.module or ""
                for alias in node.names:
                    candidate = f"{full}.{alias.name}"
                    targets.add((candidate if candidate in modules else full, node.lineno))
            elif (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(
                    node.func, "attr", None)) == "import_module" and node.args
                  and isinstance(node.args[0], ast.Constant)):
                targets.add((node.args[0].value, node.lineno))
        if name == top:
            targets.update((module, 0) for module in _public_table(tree))
        edges = set()
        for target, line in targets:
            if not (target == top or target.startswith(top + ".")):
                continue
            owner = _owner(target, modules)
            if owner is not None and owner != name:
                edges.add((owner, line))
        graph[name] = edges
    return graph


def _cycles(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    adjacency = {name: sorted({target for target, _ in edges}) for name, edges in graph.items()}
    index, low, on_stack, stack, components = {}, {}, set(), [], []
    counter = 0
    for start in adjacency:
        if start in index:
            continue
        work = [(start, iter(adjacency[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(adjacency.get(child, ()))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return components


def _describe(component, graph) -> str:
    members = set(component)
    lines = [f"  {name} -> {target} (line {line})" for name in component
             for target, line in sorted(graph[name]) if target in members]
    return "\n".join(lines)


def test_the_graph_sees_every_kind_of_import(tmp_path):
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text('_PUBLIC = {"Thing": "pkg.lazy"}\n')
    (root / "lazy.py").write_text("")
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "a.py").write_text(
        "from . import b\n"
        "def f():\n    from ..other import thing\n"
        "import pkg.sub.c as c\n"
        "from pkg.sub.d import name\n"
        "import numpy\n"
        "from importlib import import_module\n"
        "def g():\n    import_module('pkg.e')\n")
    for leaf in ("b", "c", "d"):
        (root / "sub" / f"{leaf}.py").write_text("")
    (root / "other.py").write_text("from .sub.a import f\n")
    (root / "e.py").write_text("")
    graph = import_graph(root)
    assert {t for t, _ in graph["pkg.sub.a"]} == {"pkg.sub.b", "pkg.other", "pkg.sub.c",
                                                   "pkg.sub.d", "pkg.e"}
    assert {t for t, _ in graph["pkg"]} == {"pkg.lazy"}
    assert _cycles(graph) == [["pkg.other", "pkg.sub.a"]]


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert "sktopo.dimension.phdim" in graph and "sktopo.nn.relu_rank" in graph
    cycles = _cycles(graph)
    assert not cycles, "import cycles (a shared helper moves below both users):\n" + "\n".join(
        _describe(component, graph) for component in cycles)


@pytest.mark.parametrize("layer", ["sktopo.topology", "sktopo.dimension"])
def test_topology_and_dimension_never_import_nn(layer):
    graph = import_graph()
    wrong = [f"{name} -> {target} (line {line})" for name, edges in sorted(graph.items())
             if name == layer or name.startswith(layer + ".")
             for target, line in sorted(edges)
             if target == "sktopo.nn" or target.startswith("sktopo.nn.")]
    assert not wrong, f"{layer} imports sktopo.nn (an estimator that needs torch lives in nn/):\n" \
        + "\n".join(wrong)


# private modules that no module of the package imports, on purpose
_UNIMPORTED_ON_PURPOSE = {
    "sktopo.nn._relu_reference": "the brute-force Jacobian ranks the tests and benchmarks "
                                 "check the engine against (independent of it by design)",
}


def test_no_private_module_is_dead():
    """A private module (a name part starting with ``_``) that nothing imports is dead code
    (``dimension/_base.py`` was a shim of names kept "for the modules that import them from
    here", and none did)."""
    graph = import_graph()
    imported = {target for edges in graph.values() for target, _ in edges}
    dead = [name for name in sorted(graph)
            if any(part.startswith("_") and part != "__main__" for part in name.split("."))
            and name not in imported and name not in _UNIMPORTED_ON_PURPOSE]
    assert not dead, f"private modules nothing imports: {dead}"
