"""A run reopened without the plugin that trained it says which distribution (and version) to install."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import pytest

from transduce._cli import main as cli
from transduce._plugins.registry import discover
from transduce._recipe.recipe import load_recipe
from transduce._runs.provenance import components_used, missing_plugins, require_plugins
from transduce._runs.rundir import RunDir
from transduce.errors import RecipeError, RunError


@pytest.fixture
def orphaned_run(reverse_plugin: str, make_recipe, train_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run trained with the third-party `reverse` data source, whose distribution is then uninstalled."""
    recipe = make_recipe(data={"name": "reverse", "size": 200, "held_out": 20})
    run = train_run(recipe, tmp_path / "run")
    monkeypatch.undo()  # the plugin's dist-info leaves sys.path: as if `pip uninstall reverse-support`
    importlib.invalidate_caches()
    assert discover().get("dataset", "reverse") is None
    return run


def test_reopening_a_run_without_its_plugin_names_the_distribution_to_install(
    orphaned_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = (["evaluate", orphaned_run], ["translate", orphaned_run, "abc"], ["train", "--resume", orphaned_run])
    for command in commands:
        capsys.readouterr()
        status = cli.main([str(part) for part in command])
        err = capsys.readouterr().err
        assert status == 2, command
        assert f"{orphaned_run} was trained with plugins that are not available here" in err
        assert "dataset/reverse: from reverse-support 0.1, which is not installed" in err
        assert "pip install 'reverse-support==0.1'" in err
        assert "Traceback" not in err


def test_the_record_comes_from_components_json_first_then_the_checkpoint(trained_run: Path, tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    shutil.copytree(trained_run, run.path)
    run.components.unlink(missing_ok=True)
    from_checkpoint = run.saved_components()  # the last checkpoint records its providers too
    assert from_checkpoint["encoder/lstm"].startswith("transduce ")
    run.save_components({**from_checkpoint, "encoder/fancy": "transduce-fancy 2.1"})
    assert json.loads(run.components.read_text())["encoder/fancy"] == "transduce-fancy 2.1"
    assert missing_plugins(run.saved_components(), discover()) == {"transduce-fancy 2.1": ["encoder/fancy"]}


def test_a_component_the_installed_version_lacks_is_named_with_both_versions(
    trained_run: Path, tmp_path: Path, registry
) -> None:
    run = RunDir(tmp_path / "run")
    shutil.copytree(trained_run, run.path)
    run.save_components({"encoder/lstm": "transduce 0.1.0", "encoder/gru2": "transduce 0.0.9"})
    with pytest.raises(RunError) as caught:
        require_plugins(run, registry)
    message = str(caught.value)
    assert "encoder/gru2: from transduce 0.0.9; the installed transduce 0.1.0 does not provide it" in message
    assert "pip install 'transduce==0.0.9'" in message and "lstm" not in message


def test_a_recipe_error_stays_a_recipe_error_when_every_recorded_plugin_is_installed(
    trained_run: Path, tmp_path: Path, registry
) -> None:
    run = RunDir(tmp_path / "run")
    shutil.copytree(trained_run, run.path)
    with pytest.raises(RecipeError, match="unknown attention 'genral'"):
        load_recipe(run.recipe, registry, ["model.decoder.attention=genral"])
    recipe = load_recipe(run.recipe, registry)
    assert components_used(recipe, registry)["attention/general"].startswith("transduce ")
    assert "logger/console" in components_used(recipe, registry)
