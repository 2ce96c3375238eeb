"""The worked example package, docs/examples/transduce-example-plugin, found through real entry-point discovery.

The package is exposed exactly as `pip install -e` would expose it (a `.dist-info` built from its
pyproject.toml, its src/ on sys.path; see `expose_project` in conftest.py); the registry is not patched.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import random
from pathlib import Path

import pytest
import yaml

from transduce._cli import main as cli
from transduce._plugins.registry import discover
from transduce.testing import conformance

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "transduce-example-plugin"
DISTRIBUTION = "transduce-example-plugin"
COMPONENTS = {("encoder", "gru"), ("attention", "scaled_dot"), ("decoder", "bahdanau"), ("metric", "ter")}

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


# --- the bahdanau decoder network: a third party's whole decoder, trained through the real entry point ----------

#: A reversal task: the model must learn to attend to the source from its last position to its first.
LETTERS = "abcdefgh"


def write_reversal_task(directory: Path, pairs: int = 2000, seed: int = 7) -> Path:
    """Random letter strings (length 3-7), each with its reversal, as a tab-separated file."""
    generate = random.Random(seed)
    words = ["".join(generate.choices(LETTERS, k=generate.randint(3, 7))) for _ in range(pairs)]
    path = directory / "reverse.tsv"
    path.write_text("".join(f"{word}\t{word[::-1]}\n" for word in words), encoding="utf-8")
    return path


REVERSAL_RECIPE = """
seed: 1
data: {{name: tsv, path: {path}, valid_size: 100, test_size: 200}}
source: {{tokenizer: char}}
target: {{tokenizer: char}}
model:
  embedding_dim: 16
  dropout: 0.0
  encoder: {{name: gru, hidden_size: 48, bidirectional: true}}
  decoder: {{name: bahdanau, hidden_size: 48, attention_size: 24}}
train: {{epochs: {epochs}, batch_size: 32, lr: 0.005, clip_grad_norm: 1.0, device: cpu, threads: 1, patience: null}}
search: {{name: greedy, max_length: 10}}
evaluate: {{metrics: [exact_match], examples: 0}}
"""


@pytest.mark.usefixtures("example")
def test_the_bahdanau_decoder_learns_to_reverse_strings(tmp_path: Path):
    recipe = tmp_path / "reverse.yaml"
    recipe.write_text(REVERSAL_RECIPE.format(path=write_reversal_task(tmp_path), epochs=6), encoding="utf-8")
    run = tmp_path / "run"
    assert cli.main(["train", str(recipe), "--run-dir", str(run)]) == 0
    resolved = yaml.safe_load((run / "recipe.yaml").read_text(encoding="utf-8"))
    assert resolved["model"]["decoder"] == {"name": "bahdanau", "hidden_size": 48, "attention_size": 24, "dropout": 0.0}
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert epochs[0]["valid"]["exact_match"] < 50.0  # it starts out unable to reverse
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    assert report["metrics"]["exact_match"] >= 90.0, report["metrics"]  # and learns to, on unseen strings


@pytest.mark.usefixtures("example")
def test_the_bahdanau_recipe_of_the_example_package_trains(tmp_path: Path):
    run = tmp_path / "run"
    shrink = {**SHRINK, "model.decoder.attention_size": 16, "search.size": 2}
    overrides = [arg for key, value in shrink.items() for arg in ("--set", f"{key}={value}")]
    assert cli.main(["train", str(EXAMPLE / "bahdanau.yaml"), "--run-dir", str(run), *overrides]) == 0
    resolved = yaml.safe_load((run / "recipe.yaml").read_text(encoding="utf-8"))
    assert (resolved["model"]["encoder"]["name"], resolved["model"]["decoder"]["name"]) == ("gru", "bahdanau")
    assert resolved["search"]["name"] == "beam"
    assert "exact_match" in json.loads((run / "report.json").read_text(encoding="utf-8"))["metrics"]


def test_the_docs_give_the_bahdanau_decoders_size():
    """What a third party writes to add a decoder network: the module's lines of code (no blank lines, comments
    or docstrings), as the README and the plugin guide state it."""
    lines = code_lines(EXAMPLE / "src" / "transduce_example" / "decoders.py")
    assert lines <= 80
    root = EXAMPLE.parent.parent.parent
    for doc in (root / "README.md", root / "docs" / "plugins.md"):
        assert f"{lines} lines of code" in doc.read_text(encoding="utf-8"), doc


def code_lines(path: Path) -> int:
    """Lines holding code: not blank, not comments, not docstrings."""
    source = path.read_text(encoding="utf-8")
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
        ):
            if isinstance(body[0].value.value, str):
                docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
    return sum(
        1
        for number, line in enumerate(source.splitlines(), start=1)
        if line.strip() and not line.strip().startswith("#") and number not in docstrings
    )
