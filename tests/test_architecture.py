"""The package's shape: no import cycles, no private names across modules, small modules.

These read the source with :mod:`ast`, so function-level imports count as much
as top-level ones: a cycle hidden inside a function still makes two modules
impossible to understand or change apart.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "galaxy_ray"
#: The style guide's limit is "about 400 lines"; this is where "about" ends.
MAX_MODULE_LINES = 450


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_names(path: Path, modules: dict[str, Path], this: str | None = None) -> list[tuple[str, str | None, int]]:
    """(module imported, name taken from it or None, line) for every galaxy_ray import in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    this = this or module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names if a.name.split(".")[0] == "galaxy_ray"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "galaxy_ray":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in modules:  # `from galaxy_ray.io import storage` imports the module storage
                    found.append((sub, None, node.lineno))
                else:
                    found.append((base, alias.name, node.lineno))
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target, _, _ in imported_names(path, modules):
            while target not in modules and "." in target:
                target = target.rpartition(".")[0]
            if target in modules and target != name:
                graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_cycle_finder_finds_a_cycle_through_three_modules():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_function_level_imports_are_edges(tmp_path):
    (tmp_path / "galaxy_ray").mkdir()
    mod = tmp_path / "galaxy_ray" / "x.py"
    mod.write_text("def f():\n    from galaxy_ray.io import storage\n    import galaxy_ray.schema\n")
    names = imported_names(mod, {"galaxy_ray.io.storage": mod, "galaxy_ray.schema": mod}, this="galaxy_ray.x")
    assert [(n, name) for n, name, _ in names] == [("galaxy_ray.io.storage", None), ("galaxy_ray.schema", None)]


def test_no_import_cycle_between_galaxy_ray_modules():
    cycle = find_cycle(import_graph(package_modules()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_private_name_is_imported_from_another_module():
    modules = package_modules()
    offenders = []
    for path in [*modules.values(), *sorted((ROOT / "jobs").glob("*.py")), *sorted((ROOT / "tests").glob("*.py"))]:
        importer = module_name(path) if path.is_relative_to(PACKAGE) else ""
        for target, name, line in imported_names(path, modules):
            # A package's private module (``sources/_common.py``) serves its own package alone.
            owner = target.rpartition(".")[0]
            private_module = any(p.startswith("_") for p in target.split(".")) and not importer.startswith(owner)
            if (name or "").startswith("_") and name != "__version__" or private_module:
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {target} {name or ''}".strip())
    assert not offenders, "private names imported across modules:\n" + "\n".join(offenders)


@pytest.mark.parametrize("name", sorted(package_modules()))
def test_module_is_small_enough_to_read(name):
    lines = len(package_modules()[name].read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{name}: {lines} lines; split it by job"
