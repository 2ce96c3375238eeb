"""Opening a run, written once (transduce._runs.opening): the run's recipe read as the run's, the checkpoint
asked for, and each file read once per command (issue 16)."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from transduce._cli import main as cli
from transduce._plugins.base import FinalReport
from transduce._plugins.registry import Registry
from transduce._recipe import recipe as recipe_module
from transduce._recipe.recipe import load_recipe
from transduce._reports.report import Report
from transduce._runs import checkpoint
from transduce._runs.opening import open_run, read_run_recipe
from transduce._runs.rundir import RunDir
from transduce.errors import RecipeError, RunError

Capture = pytest.CaptureFixture[str]
TEXT = "june 3, 2001"


def copied(trained_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    return run


# --- the run's recipe ------------------------------------------------------------------------------------------


def test_the_recipe_stage_reads_a_runs_recipe_yaml_as_a_plain_recipe(
    trained_run: Path, tmp_path: Path, registry: Registry
) -> None:
    run = copied(trained_run, tmp_path)
    recorded = {"encoder/fancy": "transduce-fancy 2.1"}
    (run / "components.json").write_text(json.dumps(recorded), encoding="utf-8")
    overrides = ["model.encoder.name=fancy"]
    with pytest.raises(RecipeError, match="unknown encoder 'fancy'"):
        load_recipe(run / "recipe.yaml", registry, overrides)  # no guessing from the file's name
    with pytest.raises(RunError, match=r"pip install 'transduce-fancy==2\.1'"):
        read_run_recipe(RunDir(run), registry, overrides)  # the caller says it is a run's


def test_a_runs_recipe_may_name_data_that_is_gone_but_a_recipe_file_may_not(
    trained_run: Path, tmp_path: Path, registry: Registry
) -> None:
    run = copied(trained_run, tmp_path)
    gone = [f"data={{name: tsv, path: '{tmp_path / 'gone.tsv'}'}}"]
    assert read_run_recipe(RunDir(run), registry, gone)["data"]["path"] == str(tmp_path / "gone.tsv")
    with pytest.raises(RecipeError, match="gone.tsv"):
        load_recipe(run / "recipe.yaml", registry, gone)


# --- the checkpoint asked for ----------------------------------------------------------------------------------


def test_open_run_loads_the_checkpoint_asked_for_into_the_model(
    trained_run: Path, tmp_path: Path, registry: Registry
) -> None:
    run = RunDir.open(trained_run)
    elsewhere = tmp_path / "kept.pt"
    shutil.copyfile(run.last_checkpoint, elsewhere)
    for which, path in (("best", run.best_checkpoint), ("last", run.last_checkpoint), (elsewhere, elsewhere)):
        opened = open_run(trained_run, registry, checkpoint=which, device="cpu")
        assert opened.checkpoint.path == path
        assert opened.device == torch.device("cpu") and not opened.model.training
        expected = checkpoint.load(path)["model"]
        assert all(torch.equal(value, expected[name]) for name, value in opened.model.state_dict().items())
    assert opened.recipe == read_run_recipe(run, registry)
    assert len(opened.source_vocab) == opened.model.source_embedding.num_embeddings


def test_a_missing_checkpoint_file_is_a_run_error_naming_it(
    trained_run: Path, tmp_path: Path, registry: Registry
) -> None:
    with pytest.raises(RunError, match=f"{tmp_path / 'nothing.pt'}: checkpoint not found"):
        open_run(trained_run, registry, checkpoint=tmp_path / "nothing.pt", device="cpu")


def test_a_checkpoint_from_elsewhere_must_fit_the_runs_files(
    trained_run: Path, tmp_path: Path, registry: Registry
) -> None:
    run = copied(trained_run, tmp_path)
    vocab = run / "vocab.target.json"
    vocab.write_text(vocab.read_text(encoding="utf-8").replace('"0"', '"O"', 1), encoding="utf-8")
    with pytest.raises(RunError, match="vocab.target.json changed since last.pt was saved"):
        open_run(run, registry, checkpoint=trained_run / "checkpoints" / "last.pt", device="cpu")


# --- each file read once ---------------------------------------------------------------------------------------


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The source of every recipe parsed from now on."""
    seen: list[str] = []
    parse = recipe_module.parse_recipe

    def counted(text: str, registry: Registry, **kwargs: object) -> dict:
        seen.append(str(kwargs.get("source")))
        return parse(text, registry, **kwargs)

    monkeypatch.setattr(recipe_module, "parse_recipe", counted)
    return seen


@pytest.mark.parametrize(
    "command", [("translate", TEXT), ("evaluate",), ("attention", TEXT), ("chat",)], ids=lambda c: c[0]
)
def test_a_decoding_command_reads_the_runs_recipe_once(
    trained_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Capture,
    parses: list[str],
    command: tuple[str, ...],
) -> None:
    run = copied(trained_run, tmp_path)  # evaluate and attention write their reports and pictures into it
    monkeypatch.setattr(sys, "stdin", io.StringIO(TEXT + "\n"))  # what chat answers
    name, *text = command
    assert cli.main([name, str(run), *text, "--set", "search.max_length=10"]) == 0, capsys.readouterr().err
    assert parses == [str(run / "recipe.yaml")]


def test_resuming_a_run_loads_its_last_checkpoint_once(
    trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = copied(trained_run, tmp_path)
    loads: Counter[str] = Counter()
    load = checkpoint.load

    def counted(path: Path, *args: object, **kwargs: object) -> dict:
        loads[Path(path).name] += 1
        return load(path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "load", counted)
    assert cli.main(["train", "--resume", str(run), "--set", "train.epochs=3"]) == 0
    assert loads["last.pt"] == 1  # checked before the recipe is rewritten, then restored from the same load
    assert json.loads((run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[-1])["epoch"] == 3


# --- the report a logger receives ------------------------------------------------------------------------------


def test_the_report_gives_loggers_everything_their_contract_promises() -> None:
    """The contracts name the report through a Protocol (they may not import the reporting stage)."""
    promised = set(FinalReport.__annotations__) | {name for name in vars(FinalReport) if not name.startswith("_")}
    fields = {field.name: field.type for field in dataclasses.fields(Report)}
    assert {"split", "size", "scores", "metrics", "as_dict"} <= promised
    for name in promised:
        if name in FinalReport.__annotations__:
            assert fields.get(name) == FinalReport.__annotations__[name], name
        else:
            assert callable(getattr(Report, name, None)), name
