"""The core's stages import only downward, and no module imports itself back (issue 16).

Every import of a transduce module counts: at module level, inside functions and under `if TYPE_CHECKING:`,
because a type-only import still says that one module knows the other. The built-in plugins' boundary (they
import only `transduce.api`) is checked by tests/test_api_boundary.py with the same import reader.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "transduce"

#: The internal stage packages, in dependency order: a stage may import only from itself and those before it.
STAGES = ("_plugins", "_recipe", "_data", "_model", "_runs", "_decoding", "_reports", "_use", "_training", "_cli")
#: Modules every stage may import; they import no other transduce module.
FOUNDATION = ("transduce.errors", "transduce._version")
#: The public faces: they may import any internal module, and internal modules may not import them...
FACES = ("transduce", "transduce.api", "transduce.testing", "transduce.__main__")
#: ...except these, which the command line uses (the conformance kit, the plugin API).
CLI_USES = ("transduce.api", "transduce.testing")


@dataclass(frozen=True)
class Import:
    """`importer` imports `imported` (both dotted module names) at `line` of the importer's file."""

    importer: str
    imported: str
    line: int


def module_name(path: Path, root: Path) -> str:
    """'transduce._runs.rundir' for ROOT/transduce/_runs/rundir.py, where `root` holds the package folder."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def transduce_imports(path: Path, name: str = "", modules: frozenset[str] = frozenset()) -> list[str]:
    """Every transduce module that the file at `path` (the module `name`) imports, in order."""
    return [found.imported for found in imports_of(path, name, modules)]


def imports_of(path: Path, name: str = "", modules: frozenset[str] = frozenset()) -> list[Import]:
    """Every import of a transduce module in the file at `path`, wherever it stands in the file.

    `from P import X` counts as importing P.X when that is one of `modules` (a submodule), else P; relative
    imports are resolved against `name`, the importing module.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found += [Import(name, target, node.lineno) for target in dict.fromkeys(targets) if _ours(target)]
    return found


def _ours(module: str) -> bool:
    return module == "transduce" or module.startswith("transduce.")


def import_graph(root: Path) -> list[Import]:
    """Every import of a transduce module by a module of the `transduce` package under `root`."""
    files = {module_name(path, root): path for path in sorted((root / "transduce").rglob("*.py"))}
    modules = frozenset(files)
    return [found for name, path in files.items() for found in imports_of(path, name, modules)]


def stage_of(module: str) -> str:
    """The module's stage, 'foundation' or 'face'; 'unplaced' for a module that belongs to none yet."""
    if module in FOUNDATION:
        return "foundation"
    if module in FACES:
        return "face"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else "unplaced"


def layer_problems(graph: list[Import]) -> list[str]:
    """One line per import that goes against the stage order; [] when every import points downward."""
    problems = []
    for found in graph:
        mine, theirs = stage_of(found.importer), stage_of(found.imported)
        where = f"{found.importer} (stage {mine}, line {found.line}) imports {found.imported} (stage {theirs})"
        if "unplaced" in (mine, theirs):
            module = found.importer if mine == "unplaced" else found.imported
            problems.append(f"{where}: {module} is in no stage; move it into one of {', '.join(STAGES)}")
        elif mine == "foundation" and theirs != "foundation":
            problems.append(f"{where}: the foundation imports no other transduce module")
        elif mine == "face" or theirs == "foundation":
            continue
        elif theirs == "face":
            if not (mine == "_cli" and found.imported in CLI_USES):
                problems.append(f"{where}: internal modules do not import the public faces")
        elif STAGES.index(theirs) > STAGES.index(mine):
            problems.append(f"{where}, a later stage: stages import only from themselves and earlier ones")
    return problems


def cycles(graph: list[Import]) -> list[list[str]]:
    """A shortest import cycle, as a path whose first and last module are the same, for each group of modules
    that import each other (a strongly connected component); [] when the imports form no cycle."""
    edges: dict[str, set[str]] = {}
    for found in graph:
        if found.imported != found.importer:
            edges.setdefault(found.importer, set()).add(found.imported)
    found_cycles = []
    for group in _strongly_connected(edges):
        start = min(group)
        found_cycles.append(_shortest_cycle(start, edges, group))
    return sorted(found_cycles)


def _strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """The groups of two or more modules that reach each other (Kosaraju's two passes, iteratively)."""
    nodes = sorted(set(edges) | {t for targets in edges.values() for t in targets})
    order: list[str] = []
    seen: set[str] = set()
    for node in nodes:
        stack = [(node, iter(sorted(edges.get(node, ()))))] if node not in seen else []
        seen.add(node)
        while stack:
            current, children = stack[-1]
            child = next((c for c in children if c not in seen), None)
            if child is None:
                order.append(current)
                stack.pop()
            else:
                seen.add(child)
                stack.append((child, iter(sorted(edges.get(child, ())))))
    reverse: dict[str, set[str]] = {}
    for source, targets in edges.items():
        for target in targets:
            reverse.setdefault(target, set()).add(source)
    groups, placed = [], set()
    for node in reversed(order):
        if node in placed:
            continue
        group, frontier = {node}, [node]
        while frontier:
            for previous in reverse.get(frontier.pop(), ()):
                if previous not in placed and previous not in group:
                    group.add(previous)
                    frontier.append(previous)
        placed |= group
        if len(group) > 1:
            groups.append(group)
    return groups


def _shortest_cycle(start: str, edges: dict[str, set[str]], group: set[str]) -> list[str]:
    """The shortest path from `start` back to itself within `group` (breadth first)."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(edges.get(node, ())):
                if target == start:
                    return [*paths[node], start]
                if target in group and target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"{start} is in a strongly connected group but reaches no cycle")


# --- the package itself ---------------------------------------------------------------------------------------


def test_every_stage_imports_only_from_itself_and_earlier_stages() -> None:
    graph = import_graph(PACKAGE.parent)
    assert len({found.importer for found in graph}) >= 30  # the reader saw the whole package
    assert layer_problems(graph) == []


def test_no_module_imports_itself_back_through_others() -> None:
    assert cycles(import_graph(PACKAGE.parent)) == []


def test_every_module_belongs_to_a_stage_the_foundation_or_the_faces() -> None:
    names = [module_name(path, PACKAGE.parent) for path in PACKAGE.rglob("*.py")]
    assert [name for name in names if stage_of(name) == "unplaced"] == []


# --- the checks see what they look for ------------------------------------------------------------------------


def write_package(root: Path, files: dict[str, str]) -> Path:
    """A throwaway `transduce` package under `root`: 'relative/path.py' -> source."""
    for relative, text in files.items():
        path = root / "transduce" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_an_upward_import_is_reported_wherever_it_hides(tmp_path: Path) -> None:
    root = write_package(
        tmp_path,
        {
            "__init__.py": "",
            "errors.py": "",
            "_plugins/__init__.py": "",
            "_plugins/contracts.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from transduce._reports.report import Report\n"
            ),
            "_runs/__init__.py": "",
            "_runs/rundir.py": "def later():\n    from .. import api\n    return api\n",
            "_reports/__init__.py": "",
            "_reports/report.py": "from transduce._plugins import contracts\nimport transduce.errors\n",
            "api.py": "from transduce._reports.report import Report\n",
        },
    )
    assert layer_problems(import_graph(root)) == [
        "transduce._plugins.contracts (stage _plugins, line 3) imports transduce._reports.report (stage _reports), "
        "a later stage: stages import only from themselves and earlier ones",
        "transduce._runs.rundir (stage _runs, line 2) imports transduce.api (stage face): internal modules do not "
        "import the public faces",
    ]


def test_a_module_outside_the_stages_is_named(tmp_path: Path) -> None:
    root = write_package(tmp_path, {"__init__.py": "", "loading.py": "import transduce._cli.main\n"})
    (problem,) = layer_problems(import_graph(root))
    assert problem.startswith("transduce.loading (stage unplaced, line 1) imports transduce._cli.main")
    assert "transduce.loading is in no stage; move it into one of _plugins, _recipe" in problem


def test_the_cli_may_use_the_conformance_kit_but_not_the_package_face(tmp_path: Path) -> None:
    root = write_package(
        tmp_path,
        {"__init__.py": "", "testing.py": "", "_cli/main.py": "from transduce import testing, __version__\n"},
    )
    assert [found.imported for found in import_graph(root)] == ["transduce.testing", "transduce"]
    (problem,) = layer_problems(import_graph(root))
    assert problem.startswith("transduce._cli.main (stage _cli, line 1) imports transduce (stage face)")


def test_an_import_cycle_is_reported_as_a_path(tmp_path: Path) -> None:
    root = write_package(
        tmp_path,
        {
            "_runs/rundir.py": "def saved():\n    from transduce._runs.provenance import recorded\n",
            "_runs/provenance.py": "from transduce._runs import checkpoint\n",
            "_runs/checkpoint.py": "from transduce._runs.rundir import RunDir\nfrom transduce.errors import E\n",
            "_plugins/contracts.py": "from transduce._reports import report\n",
            "_reports/report.py": "from transduce._plugins.contracts import Score\n",
            "errors.py": "",
        },
    )
    found = [" -> ".join(name.removeprefix("transduce.") for name in cycle) for cycle in cycles(import_graph(root))]
    assert found == [
        "_plugins.contracts -> _reports.report -> _plugins.contracts",
        "_runs.checkpoint -> _runs.rundir -> _runs.provenance -> _runs.checkpoint",
    ]
