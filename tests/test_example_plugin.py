"""The worked example package, docs/examples/transduce-example-plugin, found through real entry-point discovery.

The package is exposed exactly as `pip install -e` would expose it (a `.dist-info` built from its
pyproject.toml, its src/ on sys.path; see `expose_project` in conftest.py); the registry is not patched.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
from pathlib import Path

import pytest
import yaml

from transduce import cli
from transduce.registry import discover
from transduce.testing import conformance

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "transduce-example-plugin"
DISTRIBUTION = "transduce-example-plugin"
COMPONENTS = {("encoder", "gru"), ("attention", "scaled_dot"), ("metric", "ter")}

#: --set overrides that shrink the example recipe to the tiny test sizes (about a second of training).
SHRINK = {
    "data.train_size": 300,
    "data.valid_size": 50,
    "data.test_size": 50,
    "model.embedding_dim": 16,
    "model.decoder.hidden_size": 32,
    "model.encoder.hidden_size": 32,
    "train.epochs": 1,
    "train.batch_size": 64,
    "train.lr": 0.01,
    "train.device": "cpu",
    "train.threads": 1,
    "search.max_length": 12,
    "evaluate.examples": 3,
    "evaluate.batch_size": 64,
}


@pytest.fixture
def example(expose_project) -> str:
    return expose_project(EXAMPLE)


def example_infos() -> list:
    return [info for info in discover() if info.provider.distribution == DISTRIBUTION]


@pytest.mark.usefixtures("example")
def test_discovery_finds_the_example_components_with_their_distribution():
    infos = example_infos()
    assert {(info.family, info.name) for info in infos} == COMPONENTS
    assert {(info.provider.version, info.provider.entry_point) for info in infos} == {("0.1.0", "example")}


def test_plugins_lists_the_example_components(example: str, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    assert cli.main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for family, name in COMPONENTS:
        row = next(i for i, line in enumerate(lines) if line.startswith(f"{name}  "))
        assert f"from {example} 0.1.0" in lines[row]
        section = next(line for line in reversed(lines[:row]) if "───" in line)
        assert section.startswith(f"{family} ───")
    out = "\n".join(lines)
    assert "temperature: number >= 0.0 or null = null" in out


@pytest.mark.usefixtures("example")
def test_the_example_recipe_trains_with_the_example_components(tmp_path: Path):
    run = tmp_path / "run"
    overrides = [arg for key, value in SHRINK.items() for arg in ("--set", f"{key}={value}")]
    assert cli.main(["train", str(EXAMPLE / "recipe.yaml"), "--run-dir", str(run), *overrides]) == 0
    resolved = yaml.safe_load((run / "recipe.yaml").read_text(encoding="utf-8"))
    assert resolved["model"]["encoder"]["name"] == "gru"
    assert resolved["model"]["decoder"]["attention"]["name"] == "scaled_dot"
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    assert list(report["metrics"]) == ["ter", "exact_match", "chrf"]
    assert 0.0 <= report["metrics"]["ter"] <= 100.0
    assert report["signatures"]["ter"].startswith("nrefs:1")


@pytest.mark.usefixtures("example")
def test_every_example_component_passes_the_conformance_kit():
    reports = {(info.family, info.name): conformance(info.cls) for info in example_infos()}
    assert set(reports) == COMPONENTS
    assert {key: report.problems for key, report in reports.items() if not report.ok} == {}


@pytest.mark.usefixtures("example")
def test_the_example_packages_own_tests_pass():
    """Its tests/ are plain functions on the kit, so they run here too (pytest runs them in the package)."""
    spec = importlib.util.spec_from_file_location("example_tests", EXAMPLE / "tests" / "test_components.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tests = [f for name, f in inspect.getmembers(module, inspect.isfunction) if name.startswith("test_")]
    assert len(tests) >= 5
    for test in tests:
        test()


def test_the_example_imports_nothing_of_transduce_but_the_public_api():
    imported = set()
    for path in (EXAMPLE / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    assert {name for name in imported if name.split(".")[0] == "transduce"} == {"transduce.api"}
