"""The package's structure: no import cycles, and the module map of docs/DESIGN.md in step with
the tree. Both read the source with ``ast``; nothing here imports the package."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "splitbrain"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a ``from ... import`` names (relative levels resolved)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package modules it imports, at the top or inside functions alike.

    ``from package import name`` is an edge to the submodule ``package.name`` when there is
    one, else to the package. Parent packages that Python initialises on the way are not
    edges: a package whose ``__init__`` imports its own submodules is not a cycle.
    """
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(node, module, path.name == "__init__.py")
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    edges.add(sub if sub in modules else target)
        graph[module] = {m for m in edges if m in modules and m != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles_and_only_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_imports_inside_functions_and_resolves_relative_ones(tmp_path):
    modules = package_modules()
    graph = import_graph(modules)
    # cli/__init__ imports its subcommand modules by `from . import ...`
    assert "splitbrain.cli.pretrain" in graph["splitbrain.cli"]
    # a relative import two levels up, of a module
    assert "splitbrain.models" in graph["splitbrain.evaluate.features"]


def test_no_import_cycles():
    cycle = find_cycle(import_graph(package_modules()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_method_modules_do_not_import_the_machinery():
    """The method at the top of the package (colour, quantization, spaces, splits, models,
    losses, objective, init, colorize, extract, weights) never reaches into data, training,
    evaluation, inference or the command line."""
    machinery = {"data", "rgbd", "runs", "train", "evaluate", "segment", "detect", "inference",
                 "reproduce", "app", "cli"}  # fmt: skip
    modules = package_modules()
    graph = import_graph(modules)
    method = [m for m, path in modules.items() if path.parent == PACKAGE and path.stem[0] != "_"]
    assert "splitbrain.models" in method and "splitbrain.cli" not in method
    for module in method:
        edges = graph[module]
        reached = sorted(e for e in edges if e.split(".")[1] in machinery)
        assert not reached, f"{module} imports {reached}"


def design_map() -> set[str]:
    """The module paths listed in docs/DESIGN.md's module map (its table rows)."""
    text = (ROOT / "docs" / "DESIGN.md").read_text()
    return set(re.findall(r"^\| `(splitbrain/[\w/]+\.py)` \|", text, flags=re.MULTILINE))


def test_design_map_lists_every_module_and_nothing_else():
    tree = {p.relative_to(ROOT).as_posix() for p in package_modules().values()}
    listed = design_map()
    assert listed, "docs/DESIGN.md has no module map"
    assert not tree - listed, f"modules missing from docs/DESIGN.md: {sorted(tree - listed)}"
    assert not listed - tree, (
        f"docs/DESIGN.md lists modules that do not exist: {sorted(listed - tree)}"
    )


def test_machinery_packages_import_in_the_documented_direction():
    """The package-level dependencies of docs/DESIGN.md ("Layout")."""
    allowed = {
        "data": set(),
        "rgbd": {"data"},
        "runs": set(),
        "evaluate": {"runs", "data", "rgbd"},
        "train": {"runs", "evaluate", "rgbd", "data"},
        "segment": {"runs", "evaluate", "inference", "data"},
        "detect": {"runs", "evaluate", "inference", "data"},
        "inference": {"data", "rgbd"},
        "reproduce": {"runs", "train", "evaluate"},
        "app": {"segment", "detect", "inference", "data"},
        "cli": {"runs", "train", "evaluate", "segment", "detect", "inference", "rgbd", "data",
                "app"},
    }  # fmt: skip
    modules = package_modules()
    for module, edges in import_graph(modules).items():
        package = module.split(".")[1] if module.count(".") else ""
        if package not in allowed:
            continue
        for edge in edges:
            other = edge.split(".")[1] if edge.count(".") else ""
            if other in allowed and other != package:
                assert other in allowed[package], f"{module} imports {edge}"


def test_optional_extras_are_imported_only_inside_functions():
    """The core package imports without its extras (detect, onnx, app): no module imports them
    at its top, only the functions that need them do."""
    extras = {"torchvision", "pycocotools", "onnxscript", "onnxruntime", "gradio"}
    for module, path in package_modules().items():
        for node in ast.parse(path.read_text()).body:  # the module's top level only
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )  # fmt: skip
            found = sorted(n for n in names if n.split(".")[0] in extras)
            assert not found, f"{module} imports {found} at its top"


def test_importing_the_package_changes_no_global_state():
    """No warning filters, logging handlers or logging filters appear when every package of
    splitbrain is imported (the command line configures output when it runs)."""
    import subprocess
    import sys

    probe = """
import logging, warnings
def state():
    loggers = [logging.getLogger()] + [
        l for l in logging.Logger.manager.loggerDict.values() if isinstance(l, logging.Logger)
    ]
    return (
        list(warnings.filters),
        {l.name: (list(l.handlers), list(l.filters), l.level, l.propagate) for l in loggers},
    )
import lightning.pytorch, torch  # third-party set-up happens on their own import
before = state()
import splitbrain, splitbrain.cli, splitbrain.data, splitbrain.evaluate, splitbrain.rgbd
import splitbrain.runs, splitbrain.segment, splitbrain.train
after = state()
assert after[0] == before[0], ("warning filters", after[0][: len(after[0]) - len(before[0])])
changed = {k: v for k, v in after[1].items() if before[1].get(k, v) != v}
changed.update({k: v for k, v in after[1].items() if k not in before[1] and (v[0] or v[1])})
assert not changed, changed
print("unchanged")
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "unchanged", done.stderr[-2000:]


def test_the_unit_tests_mirror_the_package():
    """tests/unit/X/ exists only where splitbrain/X/ is a package, so a newcomer finds a
    module's tests where the module is."""
    folders = sorted(p for p in (ROOT / "tests" / "unit").iterdir() if p.is_dir())
    assert folders, "no tests/unit/ folders"
    for folder in folders:
        if folder.name not in ("files", "__pycache__"):
            assert (PACKAGE / folder.name / "__init__.py").exists(), f"{folder} mirrors nothing"
