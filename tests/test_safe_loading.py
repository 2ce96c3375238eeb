"""Nothing a run directory holds can run code: checkpoints load with weights_only, the rest is JSON or YAML.

A checkpoint carrying a pickle payload (`__reduce__` -> os.system) is refused by
every command that reopens a run, and the payload never runs: the marker file
it would create never appears.
"""

from __future__ import annotations

import ast
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from transduce._cli import main as cli
from transduce._data.vocab import Vocabulary
from transduce._recipe.recipe import load_recipe
from transduce._runs import checkpoint
from transduce._runs.rundir import RunDir
from transduce.errors import RecipeError, RunError

ROOT = Path(__file__).resolve().parent.parent


class Payload:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def plant(path: Path, marker: Path, legacy: bool = False) -> None:
    """Write a checkpoint at `path` whose unpickling would create `marker`."""
    payload = {"model": Payload(marker), "progress": {}, "components": {}}
    if legacy:  # a bare pickle, not torch's zip format
        path.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, path)
    assert not marker.exists()


@pytest.fixture
def poisoned_run(trained_run: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the trained run whose checkpoints both carry a payload; returns (run, marker)."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    marker = tmp_path / "PWNED"
    plant(run / "checkpoints" / "best.pt", marker)
    plant(run / "checkpoints" / "last.pt", marker)
    return run, marker


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str]:
    capsys.readouterr()
    status = cli.main([str(a) for a in argv])
    return status, capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [
        ("evaluate", "{run}"),
        ("translate", "{run}", "march 3, 2001"),
        ("train", "--resume", "{run}", "--set", "train.epochs=3"),
    ],
    ids=["evaluate", "translate", "resume"],
)
def test_a_checkpoint_with_a_pickle_payload_is_refused_without_running_it(
    poisoned_run: tuple[Path, Path], capsys: pytest.CaptureFixture[str], command: tuple[str, ...]
) -> None:
    run, marker = poisoned_run
    status, err = run_cli(capsys, *(part.format(run=run) for part in command))
    assert status == 2
    assert "cannot load checkpoint safely" in err and "Traceback" not in err
    assert not marker.exists(), "the pickle payload ran"


@pytest.mark.parametrize("legacy", [False, True], ids=["torch-zip", "bare-pickle"])
def test_checkpoint_load_refuses_code_in_either_file_format(tmp_path: Path, legacy: bool) -> None:
    marker = tmp_path / "PWNED"
    plant(tmp_path / "x.pt", marker, legacy=legacy)
    with pytest.raises(RunError, match="cannot load checkpoint safely"):
        checkpoint.load(tmp_path / "x.pt")
    assert not marker.exists()
    # The payload is real: an unsafe load runs it.
    data = (tmp_path / "x.pt").read_bytes()
    pickle.loads(data) if legacy else torch.load(tmp_path / "x.pt", weights_only=False)  # noqa: S301
    assert marker.exists()


def test_a_vocabulary_is_json_and_a_pickled_one_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "vocab.source.json"
    path.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(RunError, match="not a readable vocabulary file"):
        Vocabulary.load(path)
    assert not marker.exists()


def test_a_recipe_with_a_python_tag_is_refused_without_running_it(tmp_path: Path, registry) -> None:
    marker = tmp_path / "PWNED"
    recipe = tmp_path / "evil.yaml"
    recipe.write_text(f"seed: !!python/object/apply:os.system ['touch {marker}']\ndata: dates\n", encoding="utf-8")
    with pytest.raises(RecipeError) as caught:
        load_recipe(recipe, registry)
    assert f"{recipe}:1: invalid YAML" in str(caught.value)
    assert "tags such as !!python/object are never run" in str(caught.value)
    assert not marker.exists()
    with pytest.raises(RecipeError):  # nor through an override
        load_recipe(tmp_path / "evil.yaml", registry, [f"seed=!!python/object/apply:os.system ['touch {marker}']"])
    assert not marker.exists()


def test_a_run_whose_recipe_carries_a_python_tag_is_refused(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    marker = tmp_path / "PWNED"
    text = RunDir(run).recipe.read_text(encoding="utf-8")
    RunDir(run).recipe.write_text(text.replace("seed: 1", f"seed: !!python/object/apply:os.system ['touch {marker}']"))
    status, err = run_cli(capsys, "translate", run, "march 3, 2001")
    assert status == 2 and "invalid YAML" in err and not marker.exists()


# --- the sources themselves: no unsafe loader anywhere ------------------------------------------


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _name(node: ast.expr) -> str:
    return ast.unparse(node)


SOURCES = sorted([*ROOT.glob("transduce/**/*.py"), *ROOT.glob("plugins/**/*.py")])


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_no_module_unpickles_or_loads_yaml_unsafely(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
            assert not any(n in ("pickle", "dill", "cloudpickle", "marshal") for n in names), f"{path}: imports {names}"
    for call in _calls(tree):
        function = _name(call.func)
        keywords = {k.arg: _name(k.value) for k in call.keywords}
        if function == "torch.load":
            assert keywords.get("weights_only") == "True", f"{path}:{call.lineno}: torch.load without weights_only"
        if function in ("yaml.load", "yaml.load_all"):
            assert keywords.get("Loader") in ("_Loader", "yaml.SafeLoader"), f"{path}:{call.lineno}: unsafe YAML"
        assert function not in ("yaml.unsafe_load", "yaml.full_load", "eval", "exec"), f"{path}:{call.lineno}"
