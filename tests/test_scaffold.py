"""`transduce new-plugin`: the skeleton it writes is discovered through its entry point and conforms."""

from __future__ import annotations

import importlib.util
import inspect
import tomllib
from pathlib import Path

import pytest

from transduce._cli import main as cli
from transduce._cli.scaffold import create_plugin, module_name
from transduce._plugins.registry import discover
from transduce.errors import PluginError
from transduce.testing import conformance

NAME = "transduce-cosine-demo"
FILES = ["README.md", "pyproject.toml", "src/transduce_cosine_demo/__init__.py", "tests/test_conformance.py"]


def files(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def test_new_plugin_writes_a_package_skeleton(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["new-plugin", NAME, "--dir", str(tmp_path)]) == 0
    root = tmp_path / NAME
    assert files(root) == FILES
    assert f"created {root}/" in capsys.readouterr().out
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == NAME
    assert project["entry-points"]["transduce"] == {"transduce_cosine_demo": "transduce_cosine_demo"}
    for path in root.rglob("*.py"):
        compile(path.read_text(encoding="utf-8"), str(path), "exec")
    assert list(tmp_path.iterdir()) == [root]  # no staging directory left behind


def test_the_skeleton_is_discovered_and_passes_the_conformance_kit(tmp_path: Path, expose_project) -> None:
    root = create_plugin(NAME, tmp_path)
    dist = expose_project(root)
    info = discover().get("attention", "cosine_demo")
    assert info is not None
    assert (info.provider.distribution, info.provider.version) == (dist, "0.1.0")
    report = conformance(info.cls)
    assert (report.problems, report.notes) == ([], [])


def test_the_skeletons_own_tests_pass(tmp_path: Path, expose_project) -> None:
    root = create_plugin(NAME, tmp_path)
    expose_project(root)
    spec = importlib.util.spec_from_file_location("skeleton_tests", root / "tests" / "test_conformance.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tests = [f for name, f in inspect.getmembers(module, inspect.isfunction) if name.startswith("test_")]
    assert len(tests) == 4
    for test in tests:
        test()


def test_new_plugin_refuses_an_existing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / NAME).mkdir()
    (tmp_path / NAME / "mine.txt").write_text("keep", encoding="utf-8")
    assert cli.main(["new-plugin", NAME, "--dir", str(tmp_path)]) == 2
    assert "already exists; choose another name or --dir (nothing was overwritten)" in capsys.readouterr().err
    assert files(tmp_path / NAME) == ["mine.txt"]


def test_new_plugin_into_an_unwritable_place_is_a_clear_error(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    assert cli.main(["new-plugin", NAME, "--dir", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert "cannot write the plugin skeleton" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("my plugin", "invalid plugin name 'my plugin': use letters, digits, '-', '_' and '.'"),
        ("-dash", "invalid plugin name '-dash': use letters"),
        (
            "2fast",
            "its module name '2fast' must not start with a digit; try transduce-2fast",
        ),
        ("class", "its module name 'class' is a Python keyword"),
        ("json", "its module 'json' would shadow an existing module"),
        ("transduce", "its module 'transduce' would shadow an existing module"),
        ("torch", "a module named 'torch' is already importable here"),
    ],
)
def test_an_invalid_name_is_refused_with_the_reason(name: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="invalid plugin name") as caught:
        create_plugin(name, tmp_path)
    assert message in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_module_names_follow_the_distribution_name() -> None:
    assert module_name("Transduce-Multi.Head") == "transduce_multi_head"
