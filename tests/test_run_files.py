"""A run's own files: checkpoints of the wrong structure, vocabularies or tokenizer files changed after
training, and a run with weights but no last.pt are refused with an error naming the file; nothing of the
run is changed by the refusal."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from transduce._cli import main as cli
from transduce._decoding.translator import Translator
from transduce._plugins.registry import discover
from transduce._runs import checkpoint
from transduce._runs.provenance import data_files
from transduce._runs.rundir import RunDir, sha256_of
from transduce.errors import RunError

Capture = pytest.CaptureFixture[str]


@pytest.fixture
def run(trained_run: Path, tmp_path: Path) -> Path:
    """A copy of the shared trained run (2 epochs, finished) that a test may damage."""
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    return copy


def main(capsys: Capture, *argv: object) -> tuple[int, str]:
    """The exit status and everything printed."""
    capsys.readouterr()
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, out + err
    return status, out + err


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def rewrite(path: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    """Load the checkpoint at `path` and save what `change` returns in its place."""
    torch.save(change(checkpoint.load(path)), path)


def setting(*keys: Any, value: Any = None, delete: bool = False) -> Callable[[dict[str, Any]], Any]:
    """A change that sets (or deletes) the entry at `keys` of a loaded checkpoint and returns the checkpoint."""

    def change(saved: dict[str, Any]) -> dict[str, Any]:
        parent = saved
        for key in keys[:-1]:
            parent = parent[key]
        if delete:
            del parent[keys[-1]]
        else:
            parent[keys[-1]] = value
        return saved

    return change


# --- a run with weights is never trained over ---------------------------------------------------------


def test_a_run_with_best_pt_but_no_last_pt_is_refused_and_best_pt_stays_byte_identical(
    run: Path, capsys: Capture
) -> None:
    (run / "checkpoints/last.pt").unlink()
    before = snapshot(run)
    status, err = main(capsys, "train", "--resume", run)
    assert status == 2
    assert "holds trained weights" in err and "last.pt" in err and "start a new run" in err
    assert "it has no checkpoint yet" not in err
    status, err = main(capsys, "train", run / "recipe.yaml", "--run-dir", run, "--set", "train.epochs=3")
    assert status == 2 and "holds trained weights" in err
    assert snapshot(run) == before  # best.pt, recipe.yaml and every other file untouched
    status, _ = main(capsys, "translate", run, "sept 6 63")
    assert status == 0  # best.pt still serves


# --- checkpoints of the wrong structure ----------------------------------------------------------------

BEST_DAMAGE: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "no model": (lambda s: {"epoch": 2}, r"has no 'model' \(the weights\); it holds 'epoch'"),
    "a bare tensor": (lambda s: torch.zeros(3), r"holds a tensor of shape \(3,\), not a mapping"),
    "a list": (lambda s: [1, 2], "holds a list, not a mapping"),
    "model is a list": (setting("model", value=[1]), r"'model' \(the weights\) is a list, expected a mapping"),
    "a weight is a string": (
        setting("model", "decoder.output.bias", value="x"),
        "'model' .* maps a string to a string; expected parameter names to tensors",
    ),
    "a weight of the wrong shape": (
        setting("model", "decoder.combine.bias", value=torch.zeros(5)),
        "does not fit the model the run's recipe describes",
    ),
    "a missing weight": (
        setting("model", "decoder.combine.bias", delete=True),
        "does not fit the model.*decoder\\.combine\\.bias",
    ),
    "an unexpected weight": (
        setting("model", "extra", value=torch.zeros(1)),
        "does not fit the model.*extra",
    ),
    "a nan weight": (
        setting("model", "decoder.combine.bias", value=torch.full((32,), float("nan"))),
        "'decoder.combine.bias' holds nan",
    ),
    "files is a list": (setting("files", value=[1]), "record of the run's files"),
    "files names a path outside": (setting("files", value={"../x": "0"}), "names '../x', not a file of the run"),
    "files names a NUL": (setting("files", value={"a\0b": "0"}), "names 'a.x00b', not a file of the run"),
    "files names a long name": (setting("files", value={"a" * 300: "0"}), "names 'aaaa.*, not a file of the run"),
}


@pytest.mark.parametrize("damage", BEST_DAMAGE, ids=list(BEST_DAMAGE))
@pytest.mark.parametrize("command", ["translate", "evaluate"])
def test_a_best_checkpoint_of_the_wrong_structure_is_a_clear_error_naming_it(
    run: Path, capsys: Capture, damage: str, command: str
) -> None:
    change, message = BEST_DAMAGE[damage]
    rewrite(run / "checkpoints/best.pt", change)
    argv = ("translate", run, "sept 6 63") if command == "translate" else ("evaluate", run)
    status, err = main(capsys, *argv)
    assert status == 2
    assert str(run / "checkpoints/best.pt") in err
    assert re.search(message, err, re.S), err


LAST_DAMAGE: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "no progress": (setting("progress", delete=True), r"has no 'progress' \(where training stands\)"),
    "progress is a tensor": (setting("progress", value=torch.ones(2)), "'progress' .* is a tensor of shape"),
    "progress epoch is text": (
        setting("progress", "epoch", value="two"),
        "'progress' entry 'epoch' is 'two', expected a whole number >= 0",
    ),
    "progress step is negative": (setting("progress", "step", value=-3), "'step' is -3, expected a whole number"),
    "progress without epoch": (setting("progress", "epoch", delete=True), "'progress' .* has no epoch"),
    "progress with an unknown entry": (setting("progress", "speed", value=1), "unknown entries speed"),
    "best score is text": (setting("progress", "best_score", value="x"), "'best_score' is 'x', expected a number"),
    "history holds a tensor": (
        setting("progress", "history", value=[torch.ones(1)]),
        "'history' .* expected a list of epoch records",
    ),
    "no optimizer": (setting("optimizer", delete=True), r"has no 'optimizer' \(the optimizer's state\)"),
    "no schedule state": (setting("schedule", delete=True), r"has no 'schedule' \(the learning-rate schedule's"),
    "schedule state is a list": (setting("schedule", value=[1]), r"'schedule' \(.*\) is a list, expected a mapping"),
    "optimizer of another model": (
        setting("optimizer", "param_groups", 0, "params", value=[0]),
        "'optimizer' .* does not fit this model: a group has 1 weights",
    ),
    "optimizer moments of the wrong shape": (
        setting("optimizer", "state", 0, "exp_avg", value=torch.zeros(1)),
        "'exp_avg' of weight 0 is not a tensor of shape",
    ),
    "optimizer lr is text": (
        setting("optimizer", "param_groups", 0, "lr", value="fast"),
        "group setting 'lr' is 'fast'",
    ),
    "rng of the wrong size": (setting("rng", "torch", value=torch.zeros(3, dtype=torch.uint8)), "'rng' .* cannot"),
    "rng without torch": (setting("rng", "torch", delete=True), "'rng' .* cannot be restored"),
    "no model": (setting("model", delete=True), "has no 'model'"),
}


@pytest.mark.parametrize("damage", LAST_DAMAGE, ids=list(LAST_DAMAGE))
def test_resuming_from_a_last_checkpoint_of_the_wrong_structure_is_a_clear_error_naming_it(
    run: Path, capsys: Capture, damage: str
) -> None:
    change, message = LAST_DAMAGE[damage]
    rewrite(run / "checkpoints/last.pt", change)
    before = snapshot(run)
    status, err = main(capsys, "train", "--resume", run)
    assert status == 2
    assert str(run / "checkpoints/last.pt") in err and re.search(message, err, re.S), err
    assert snapshot(run) == before


def test_a_state_dict_that_does_not_fit_is_refused_by_the_python_api_too(run: Path) -> None:
    rewrite(run / "checkpoints/best.pt", setting("model", "decoder.combine.weight", value=torch.zeros(2, 2)))
    with pytest.raises(RunError, match=r"best\.pt: the checkpoint does not fit.*combine\.weight"):
        Translator.from_run(RunDir.open(run), discover())


# --- vocabularies and tokenizer files changed after training ---------------------------------------------


def swap_two_tokens(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data["tokens"][4], data["tokens"][5] = data["tokens"][5], data["tokens"][4]
    path.write_text(json.dumps(data), encoding="utf-8")


def test_checkpoints_record_the_hashes_of_the_vocabularies(run: Path) -> None:
    for name in ("best.pt", "last.pt"):
        files = checkpoint.load(run / "checkpoints" / name)["files"]
        assert set(files) == {"vocab.source.json", "vocab.target.json"}  # the word tokenizer keeps no files
        assert all(len(digest) == 64 for digest in files.values())


@pytest.mark.parametrize("command", ["translate", "evaluate", "resume"])
def test_two_swapped_tokens_in_a_vocabulary_are_blamed_on_that_file(run: Path, capsys: Capture, command: str) -> None:
    swap_two_tokens(run / "vocab.target.json")
    argv = {
        "translate": ("translate", run, "sept 6 63"),
        "evaluate": ("evaluate", run),
        "resume": ("train", "--resume", run),
    }[command]
    before = snapshot(run)
    status, err = main(capsys, *argv)
    checkpoint_name = "last.pt" if command == "resume" else "best.pt"
    assert status == 2
    assert f"{run / 'vocab.target.json'} changed since {checkpoint_name} was saved" in err
    assert "two swapped tokens give wrong output silently" in err
    assert snapshot(run) == before


def test_a_vocabulary_file_that_is_gone_is_named(run: Path, capsys: Capture) -> None:
    (run / "vocab.source.json").unlink()
    status, err = main(capsys, "translate", run, "sept 6 63")
    assert status == 2 and f"{run / 'vocab.source.json'} is missing: best.pt was saved with it" in err


def test_a_changed_tokenizer_file_is_named(run: Path, capsys: Capture) -> None:
    model = run / "tokenizers" / "target" / "model.txt"
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_text("v1", encoding="utf-8")
    rewrite(run / "checkpoints/best.pt", setting("files", "tokenizers/target/model.txt", value="0" * 64))
    status, err = main(capsys, "translate", run, "sept 6 63")
    assert status == 2
    assert f"{model} changed since best.pt was saved (the tokenizer would split text differently" in err


def test_a_run_saved_without_hashes_still_opens_and_a_shortened_vocabulary_is_blamed_on_its_file(
    run: Path, capsys: Capture
) -> None:
    rewrite(run / "checkpoints/best.pt", setting("files", delete=True))
    status, _ = main(capsys, "translate", run, "sept 6 63")
    assert status == 0  # an older run: no record, no check
    path = run / "vocab.target.json"
    tokens = json.loads(path.read_text(encoding="utf-8"))["tokens"]
    path.write_text(json.dumps({"tokens": tokens[:-3]}), encoding="utf-8")
    status, err = main(capsys, "translate", run, "sept 6 63")
    assert status == 2
    assert f"{path} lists {len(tokens) - 3:,} tokens but best.pt was trained with {len(tokens):,}" in err
    assert "does not fit" not in err


# --- a new run that fails before its first checkpoint removes only what it wrote ---------------------------


def listing(root: Path) -> list[str]:
    """Every path under `root`, links shown with their target, so a removed or replaced link shows."""
    return sorted(
        f"{p.relative_to(root)} -> {p.readlink()}" if p.is_symlink() else str(p.relative_to(root))
        for p in root.rglob("*")
    )


def failing_then_fixed(
    make_recipe: Callable[..., Path], tmp_path: Path, run_dir: Path, capsys: Capture
) -> tuple[list[str], list[str]]:
    """Train into `run_dir` with a data file whose bad line stops the run before its first checkpoint, then the
    fixed command (another recipe); return the listings of tmp_path before and after the failure."""
    data = tmp_path / "dates.txt"
    data.write_text("september 27, 1994_1994-09-27\nnot a date line\n", encoding="utf-8")
    recipe = make_recipe()
    before = listing(tmp_path)
    status, out = main(
        capsys, "train", recipe, "--run-dir", run_dir, "--set", f"data.path={data}", "--set", "data.bad_rows=error"
    )
    assert status == 2 and f"{data}:2:" in out
    after = listing(tmp_path)
    status, out = main(capsys, "train", recipe, "--run-dir", run_dir)
    assert status == 0, out  # not refused as "the recipe differs"
    assert (run_dir / "checkpoints" / "best.pt").is_file()
    return before, after


def test_a_failed_run_into_a_symlinked_directory_leaves_the_link_and_its_folder_as_they_were(
    make_recipe: Callable[..., Path], tmp_path: Path, capsys: Capture
) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    before, after = failing_then_fixed(make_recipe, tmp_path, tmp_path / "link", capsys)
    assert after == before and "link -> " + str(tmp_path / "real") in after


def test_a_failed_run_into_a_folder_the_user_made_keeps_the_folder(
    make_recipe: Callable[..., Path], tmp_path: Path, capsys: Capture
) -> None:
    (tmp_path / "run").mkdir()
    before, after = failing_then_fixed(make_recipe, tmp_path, tmp_path / "run", capsys)
    assert after == before and "run" in after


def test_a_failed_run_removes_the_directories_it_made_and_only_those(
    make_recipe: Callable[..., Path], tmp_path: Path, capsys: Capture
) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "other.txt").write_text("mine", encoding="utf-8")
    before, after = failing_then_fixed(make_recipe, tmp_path, tmp_path / "runs" / "new" / "run", capsys)
    assert after == before  # runs/new and runs/new/run are gone, runs/ and other.txt stay
    assert (tmp_path / "runs" / "other.txt").read_bytes() == b"mine"


def test_discard_removes_nothing_from_a_run_it_did_not_create(run: Path) -> None:
    before = snapshot(run)
    RunDir.open(run).discard()
    assert snapshot(run) == before


# --- data files edited after training ----------------------------------------------------------------------


def write_pairs(path: Path, count: int = 200, offset: int = 0) -> Path:
    path.write_text("".join(f"a{i} b{i % 7}\tc{i} d{i % 5}\n" for i in range(offset, offset + count)), "utf-8")
    return path


@pytest.fixture
def tsv_run(tmp_path: Path, make_recipe: Callable[..., Path], capsys: Capture) -> tuple[Path, Path]:
    """(run, data file): a tiny run trained on a tab-separated file split into train, valid and test."""
    data = write_pairs(tmp_path / "pairs.tsv")
    recipe = make_recipe(data={"name": "tsv", "path": str(data), "valid_size": 10, "test_size": 10})
    status, out = main(capsys, "train", recipe, "--run-dir", tmp_path / "run")
    assert status == 0, out
    return tmp_path / "run", data


def test_a_run_records_the_size_and_hash_of_its_data_files(tsv_run: tuple[Path, Path]) -> None:
    run, data = tsv_run
    record = json.loads((run / "data-files.json").read_text(encoding="utf-8"))
    assert record == {
        "data.path": {"path": str(data.resolve()), "size": data.stat().st_size, "sha256": sha256_of(data)}
    }


def test_evaluating_a_split_of_a_data_file_edited_after_training_is_refused_unless_accepted(
    tsv_run: tuple[Path, Path], capsys: Capture
) -> None:
    run, data = tsv_run
    write_pairs(data, offset=3)  # the same size class, other pairs: the test split would change silently
    before = snapshot(run)
    status, out = main(capsys, "evaluate", run)
    assert status == 2
    assert f"{data.resolve()} (data.path): " in out and "Scoring split 'test' would re-split" in out
    assert "--accept-changed-data" in out
    assert snapshot(run) == before
    status, out = main(capsys, "evaluate", run, "--accept-changed-data")
    assert status == 0 and "note: data file changed since training:" in out
    assert main(capsys, "evaluate", run, "--data", data)[0] == 0  # a file named on purpose is scored as it is
    assert main(capsys, "translate", run, "a1 b1")[0] == 0  # translating reads no data


def test_resuming_a_run_whose_data_file_changed_is_refused_unless_accepted(
    tsv_run: tuple[Path, Path], capsys: Capture
) -> None:
    run, data = tsv_run
    write_pairs(data, count=150)
    before = snapshot(run)
    status, out = main(capsys, "train", "--resume", run, "--set", "train.epochs=2")
    assert status == 2 and "Continuing the run would re-split" in out and str(data.resolve()) in out
    assert snapshot(run) == before
    status, out = main(capsys, "train", "--resume", run, "--set", "train.epochs=2", "--accept-changed-data")
    assert status == 0 and "note: data file changed since training" in out
    assert json.loads((run / "data-files.json").read_text(encoding="utf-8"))["data.path"]["sha256"] == sha256_of(data)


def test_a_run_without_a_data_record_still_evaluates(tsv_run: tuple[Path, Path], capsys: Capture) -> None:
    run, data = tsv_run
    (run / "data-files.json").unlink()
    write_pairs(data, offset=3)
    assert main(capsys, "evaluate", run)[0] == 0


def test_a_directory_in_the_data_spec_contributes_the_files_named_by_its_stems(tmp_path: Path) -> None:
    for name in ("train.de", "train.en", "val.de", "val.en", "README.md", "other.de"):
        (tmp_path / name).write_text(name, encoding="utf-8")
    spec = {"name": "parallel", "path": str(tmp_path), "source_language": "de", "target_language": "en"}
    recorded = data_files({"data": {**spec, "train": "train", "valid": "val", "test": None}})
    assert sorted(recorded) == ["data.path/train.de", "data.path/train.en", "data.path/val.de", "data.path/val.en"]
    assert recorded["data.path/val.en"]["sha256"] == sha256_of(tmp_path / "val.en")


def test_a_damaged_last_checkpoint_is_refused_before_the_recipe_is_rewritten(run: Path, capsys: Capture) -> None:
    rewrite(run / "checkpoints/last.pt", setting("progress", "epoch", value="two"))
    before = snapshot(run)
    status, out = main(capsys, "train", "--resume", run, "--set", "train.epochs=3")
    assert status == 2 and "'progress' entry 'epoch' is 'two'" in out
    assert snapshot(run) == before  # recipe.yaml still says epochs: 2


def test_a_components_record_naming_no_component_family_names_no_plugin_to_install(registry: Any) -> None:
    from transduce._runs.provenance import missing_plugins

    recorded = {"": "None", "nonsense": "x 1", "dataset/gone": "gone-plugin 2.0"}
    assert missing_plugins(recorded, registry) == {"gone-plugin 2.0": ["dataset/gone"]}


def test_a_trainer_started_afresh_on_a_run_with_weights_refuses_before_writing_anything(run: Path) -> None:
    from rich.console import Console

    from transduce._recipe.recipe import load_recipe
    from transduce._training.trainer import Trainer

    (run / "checkpoints/last.pt").unlink()
    swap_two_tokens(run / "vocab.target.json")  # what a rebuilt vocabulary would put back in order
    before = snapshot(run)
    registry = discover()
    trainer = Trainer(load_recipe(run / "recipe.yaml", registry), registry, RunDir.open(run), Console(quiet=True))
    with pytest.raises(RunError, match="holds trained weights"):
        trainer.train(resume=False)
    assert snapshot(run) == before  # vocabularies and tokenizer files not rebuilt, best.pt untouched
