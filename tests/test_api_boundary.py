"""The built-in plugins use exactly the API a third party would: `transduce.api` and nothing else of ours."""

import ast
from pathlib import Path

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"


def transduce_imports(path: Path) -> list[str]:
    """Every module of the `transduce` package that `path` imports."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return [n for n in names if n == "transduce" or n.startswith("transduce.")]


def test_builtin_plugins_import_only_the_public_api():
    files = sorted(PLUGINS.rglob("*.py"))  # plugins/serve/ too
    assert len(files) >= 6
    offenders = {f.name: bad for f in files if (bad := [n for n in transduce_imports(f) if n != "transduce.api"])}
    assert offenders == {}


def test_the_boundary_check_sees_a_back_door(tmp_path):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("from transduce.model import Seq2Seq\nimport transduce.registry\n", encoding="utf-8")
    assert transduce_imports(sneaky) == ["transduce.model", "transduce.registry"]
