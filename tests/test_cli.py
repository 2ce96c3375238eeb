"""The `transduce` command, run in-process through `transduce._cli.main.main`."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from transduce_builtins.datasets import write_date_file

from transduce._cli import main as cli
from transduce._decoding.translator import Translator
from transduce._plugins.registry import discover
from transduce._runs.rundir import RunDir
from transduce.api import Example

METRICS = {"exact_match", "bleu", "chrf"}
FAMILIES = ("tokenizer", "encoder", "attention", "decoder", "search", "dataset", "metric", "optimizer", "schedule")
Capture = pytest.CaptureFixture[str]


@pytest.fixture(scope="module")
def run(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shared trained run, so reports written by `evaluate` stay in this module."""
    copy = tmp_path_factory.mktemp("cli") / "run"
    shutil.copytree(trained_run, copy)
    return copy


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich tables fold long cells at 80 columns; a wide console keeps every cell on one line."""
    monkeypatch.setenv("COLUMNS", "250")


def main(capsys: Capture, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = cli.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


# --- plugins and check -------------------------------------------------------------


@pytest.mark.usefixtures("wide")
def test_plugins_lists_every_family_with_its_provider_and_parameters(capsys: Capture) -> None:
    status, out, _ = main(capsys, "plugins")
    assert status == 0
    for family in FAMILIES:
        assert f"{family} ───" in out
    for name in ("char", "word", "lstm", "general", "greedy", "dates", "exact_match", "bleu", "chrf"):
        assert f"{name}  from transduce 0.1.0" in out
    assert "bidirectional: boolean = true  read the source in both directions" in out
    assert "max_length: integer >= 1 and <= 4096 = 100" in out


@pytest.mark.usefixtures("wide")
def test_plugins_lists_a_third_party_plugin_found_through_its_entry_point(reverse_plugin: str, capsys: Capture) -> None:
    status, out, _ = main(capsys, "plugins")
    assert status == 0
    row = next(line for line in out.splitlines() if line.startswith("reverse "))
    assert f"from {reverse_plugin} 0.1" in row
    dataset_section = out.split("dataset ───")[1].split("metric ───")[0]
    assert row in dataset_section
    assert "alphabet: string = abcde" in out


def test_check_prints_the_resolved_recipe_with_overrides_and_defaults(
    make_recipe: Callable[..., Path], capsys: Capture
) -> None:
    recipe = make_recipe()
    status, out, err = main(capsys, "check", recipe, "--set", "train.epochs=7", "--set", "search.max_length=5")
    assert status == 0
    resolved = yaml.safe_load(out)
    assert resolved["train"]["epochs"] == 7
    assert resolved["search"]["name"] == "greedy" and resolved["search"]["max_length"] == 5
    assert resolved["train"]["best_metric"] == "exact_match"
    assert resolved["model"]["decoder"]["attention"] == {"name": "general"}
    assert resolved["model"]["encoder"]["bidirectional"] is True
    assert [m["name"] for m in resolved["evaluate"]["metrics"]] == ["exact_match", "bleu", "chrf"]
    assert f"{recipe}: valid" in err


def test_check_of_an_invalid_recipe_returns_2_with_a_suggestion_and_no_traceback(
    make_recipe: Callable[..., Path], capsys: Capture
) -> None:
    status, out, err = main(capsys, "check", make_recipe(), "--set", "model.encoder.name=lstn")
    assert status == 2
    assert out == ""
    assert "unknown encoder 'lstn'" in err and "Did you mean 'lstm'?" in err
    assert "Traceback" not in err


def test_version_names_the_package_version(capsys: Capture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == "transduce 0.1.0"


# --- train -----------------------------------------------------------------------------


@pytest.mark.usefixtures("wide")
def test_train_writes_a_complete_run_directory_and_prints_the_report(
    tmp_path: Path, make_recipe: Callable[..., Path], capsys: Capture
) -> None:
    run_dir = tmp_path / "fresh"
    status, out, _ = main(capsys, "train", make_recipe(), "--run-dir", run_dir)
    assert status == 0
    assert f"run directory: {run_dir}" in out
    assert "epoch 1/1" in out and "Scores on test (50 examples" in out
    for name in ("recipe.yaml", "vocab.source.json", "vocab.target.json", "metrics.jsonl", "report.json", "report.md"):
        assert (run_dir / name).is_file(), name
    assert RunDir(run_dir).best_checkpoint.is_file() and RunDir(run_dir).last_checkpoint.is_file()


def test_train_into_a_non_empty_directory_that_is_not_a_run_returns_2_with_a_hint_and_changes_nothing(
    tmp_path: Path, make_recipe: Callable[..., Path], capsys: Capture
) -> None:
    # (An existing *run* directory is continued instead: see tests/test_resume*.py.)
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("mine", encoding="utf-8")
    status, _, err = main(capsys, "train", make_recipe(), "--run-dir", target)
    assert status == 2
    assert "already exists and is not empty" in err and "--resume" in err
    assert "Traceback" not in err
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    assert (target / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_train_without_a_recipe_or_resume_returns_2(capsys: Capture) -> None:
    status, _, err = main(capsys, "train")
    assert status == 2
    assert "name a recipe to train" in err


def test_debug_shows_the_traceback_of_an_error(tmp_path: Path, capsys: Capture) -> None:
    status, _, err = main(capsys, "--debug", "evaluate", tmp_path)
    assert status == 2
    assert "Traceback (most recent call last)" in err and "RunError" in err


# --- evaluate ------------------------------------------------------------------------------


def test_evaluate_json_prints_one_json_object_matching_the_training_report(run: Path, capsys: Capture) -> None:
    status, out, _ = main(capsys, "evaluate", run, "--json")
    assert status == 0
    metrics = json.loads(out)
    assert out.count("\n") == 1 and isinstance(metrics, dict)
    assert set(metrics) == METRICS
    assert metrics == json.loads((run / "report.json").read_text(encoding="utf-8"))["metrics"]
    assert json.loads((run / "report.test.json").read_text(encoding="utf-8"))["metrics"] == metrics


def test_evaluate_with_a_decoder_override_uses_it(run: Path, capsys: Capture) -> None:
    # Every target is a 10-character date, so 2 output characters can never match.
    status, out, _ = main(capsys, "evaluate", run, "--json", "--set", "search.max_length=2")
    assert status == 0
    assert json.loads(out)["exact_match"] == 0.0


@pytest.mark.parametrize("command", ["evaluate", "translate"])
@pytest.mark.parametrize("change", ["model.decoder.hidden_size=64", "model.encoder.bidirectional=false"])
def test_overriding_a_model_setting_of_a_trained_run_returns_2_without_a_traceback(
    run: Path, capsys: Capture, command: str, change: str
) -> None:
    status, out, err = main(capsys, command, run, *(["1/2/03"] if command == "translate" else []), "--set", change)
    assert status == 2
    assert out == ""
    assert "best.pt: the checkpoint does not fit the model the run's recipe describes" in err
    assert "Traceback" not in err


def test_evaluate_split_valid_scores_and_reports_the_valid_split(run: Path, capsys: Capture) -> None:
    status, out, _ = main(capsys, "evaluate", run, "--split", "valid")
    assert status == 0
    assert "Scores on valid (50 examples" in out
    report = json.loads((run / "report.valid.json").read_text(encoding="utf-8"))
    assert report["split"] == "valid" and report["size"] == 50
    # The best checkpoint scores on valid exactly what its epoch's validation logged.
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert report["metrics"] == [r for r in records if r.get("best")][-1]["valid"]
    assert (run / "report.valid.md").read_text(encoding="utf-8").startswith("# Evaluation on valid (50 examples)")


@pytest.mark.usefixtures("wide")
def test_evaluate_data_scores_every_pair_of_the_file(tmp_path: Path, run: Path, capsys: Capture) -> None:
    pairs = [
        Example("september 27, 1994", "1994-09-27"),
        Example("1/2/03", "2003-01-02"),
        Example("THURSDAY, MARCH 4, 1971", "1971-03-04"),
    ]
    data = tmp_path / "mine.txt"
    write_date_file(data, pairs)
    status, out, _ = main(capsys, "evaluate", run, "--data", data)
    assert status == 0
    assert f"report written to {run / 'report.data-mine.md'}" in out
    report = json.loads((run / "report.data-mine.json").read_text(encoding="utf-8"))
    assert report["split"] == str(data) and report["size"] == 3
    assert [(e["source"], e["reference"]) for e in report["examples"]] == pairs


def test_evaluate_data_reports_the_rows_it_skipped(tmp_path: Path, run: Path, capsys: Capture) -> None:
    data = tmp_path / "mixed.txt"
    write_date_file(data, [Example("september 27, 1994", "1994-09-27"), Example("1/2/03", "2003-01-02")])
    data.write_text(data.read_text(encoding="utf-8") + "not a date line\n", encoding="utf-8")
    status, out, _ = main(capsys, "evaluate", run, "--data", data)
    assert status == 0
    assert "data note:" in out and f"{data}:3" in out.replace("\n", "")
    report = json.loads((run / "report.data-mixed.json").read_text(encoding="utf-8"))
    assert report["size"] == 2
    assert any(f"{data}:3" in note for note in report["data"]["notes"])


def test_evaluate_an_empty_data_file_returns_2(tmp_path: Path, run: Path, capsys: Capture) -> None:
    data = tmp_path / "empty.txt"
    data.write_text("", encoding="utf-8")
    status, _, err = main(capsys, "evaluate", run, "--data", data)
    assert status == 2
    assert "no examples to evaluate" in err


def test_evaluate_on_a_directory_that_is_not_a_run_returns_2_with_a_clear_message(
    tmp_path: Path, capsys: Capture
) -> None:
    status, out, err = main(capsys, "evaluate", tmp_path, "--json")
    assert status == 2
    assert out == ""
    assert "not a run directory (no recipe.yaml)" in err and "Traceback" not in err


def test_evaluate_on_a_missing_directory_returns_2(tmp_path: Path, capsys: Capture) -> None:
    status, _, err = main(capsys, "evaluate", tmp_path / "missing")
    assert status == 2
    assert "no such run directory" in err


# --- translate --------------------------------------------------------------------------------

INPUTS = ["3 feb 1989", "TUESDAY, SEPTEMBER 27, 1994", "1/2/03", "27th of September, 2011", "", "x"]


@pytest.fixture(scope="module")
def expected(run: Path) -> list[str]:
    """What the run's translator gives for each input on its own."""
    translator = Translator.from_run(RunDir.open(run), discover(), device="cpu")
    return [translator.translate([text])[0] for text in INPUTS]


def test_translate_text_prints_one_line(run: Path, expected: list[str], capsys: Capture) -> None:
    status, out, _ = main(capsys, "translate", run, INPUTS[1])
    assert status == 0
    assert out == expected[1] + "\n"


def test_translate_stdin_prints_one_output_per_line_in_input_order(
    run: Path, expected: list[str], capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Inputs of different lengths are batched out of order; the output must come back in order,
    # with one line for an empty input too.
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(f"{text}\r\n" for text in INPUTS)))
    status, out, _ = main(capsys, "translate", run)
    assert status == 0
    assert out.splitlines() == expected
    assert expected[INPUTS.index("")] == ""  # nothing in, nothing out: no decoding of an empty source


def test_translate_with_a_decoder_override_limits_the_output(
    run: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(INPUTS) + "\n"))
    status, out, _ = main(capsys, "translate", run, "--set", "search.max_length=3")
    assert status == 0
    lines = out.splitlines()
    assert len(lines) == len(INPUTS) and all(len(line) <= 3 for line in lines)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_translate_on_a_terminal_prompts_until_an_empty_line(
    run: Path, expected: list[str], capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", Terminal(f"{INPUTS[0]}\n{INPUTS[2]}\n\n{INPUTS[3]}\n"))
    status, out, err = main(capsys, "translate", run)
    assert status == 0
    assert "an empty line or Ctrl-D ends" in err
    outputs = [line.removeprefix("> ") for line in out.splitlines() if line.strip("> ")]
    assert outputs == [expected[0], expected[2]]


def test_translate_on_a_missing_run_returns_2(tmp_path: Path, capsys: Capture) -> None:
    status, out, err = main(capsys, "translate", tmp_path / "missing", "1/2/03")
    assert status == 2
    assert out == "" and "no such run directory" in err


# --- the installed command ---------------------------------------------------------------


def test_installed_console_script_shows_help() -> None:
    script = Path(sys.executable).with_name("transduce")
    if not script.exists():
        pytest.skip(f"no console script beside {sys.executable}")
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    for command in ("plugins", "check", "train", "evaluate", "attention", "translate"):
        assert command in result.stdout


def test_check_and_train_reject_a_component_combination_before_writing_anything(
    tmp_path: Path, make_recipe: Callable[..., Path], capsys: Capture
) -> None:
    # 'dot' attention needs equal decoder and encoder sizes; the tiny recipe has 32 and 32, so make them differ.
    bad = ("--set", "model.decoder.attention=dot", "--set", "model.decoder.hidden_size=48")
    status, _, err = main(capsys, "check", make_recipe(), *bad)
    assert status == 2
    assert "model.decoder.attention" in err and "dot attention needs" in err
    status, _, err = main(capsys, "train", make_recipe(), "--run-dir", tmp_path / "run", *bad)
    assert status == 2 and "dot attention needs" in err
    assert not (tmp_path / "run").exists()


def test_a_data_error_found_while_training_leaves_no_run_dir_so_the_command_can_be_rerun(
    tmp_path: Path, make_recipe: Callable[..., Path], capsys: Capture
) -> None:
    data = tmp_path / "dates.txt"
    data.write_text("september 27, 1994_1994-09-27\nnot a date line\n", encoding="utf-8")
    command = (
        "train",
        make_recipe(),
        "--run-dir",
        tmp_path / "run",
        "--set",
        f"data.path={data}",
        "--set",
        "data.bad_rows=error",
    )
    status, _, err = main(capsys, *command)
    assert status == 2
    assert f"{data}:2:" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
    # A user's own file in the run directory is never removed.
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine", encoding="utf-8")
    status, _, err = main(capsys, *command)
    assert status == 2 and "not empty" in err
    assert (tmp_path / "run" / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_translate_text_with_an_n_best_beam_prints_every_candidate_best_first(run: Path, capsys: Capture) -> None:
    status, out, _ = main(
        capsys, "translate", run, "sept 6 63", "--set", "search.name=beam", "--set", "search.n_best=3"
    )
    assert status == 0
    rows = [line.split("\t") for line in out.splitlines()]
    assert len(rows) == 3 and all(len(row) == 2 for row in rows)
    scores = [float(score) for _, score in rows]
    assert scores == sorted(scores, reverse=True) and all(score <= 0 for score in scores)
    _, single, _ = main(capsys, "translate", run, "sept 6 63", "--set", "search.name=beam")
    assert single.strip() == rows[0][0]  # n_best 1 prints the same best output, alone


CACHES = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")  # oneDNN's and ideep's kernel caches


@pytest.mark.parametrize(("precision", "kept"), [("fp32", ("16", "16")), ("bf16", ("48", "8")), ("int8", ("16", "16"))])
def test_training_caps_both_kernel_caches_by_precision_unless_the_user_did(
    monkeypatch: pytest.MonkeyPatch,
    make_recipe: Callable[..., Path],
    tmp_path: Path,
    precision: str,
    kept: tuple[str, str],
) -> None:
    # Both are read when the first kernel is made: `train` sets them once it has read the recipe. Uncapped, ideep's
    # cache alone took bfloat16 training on Multi30K from 645 to 1,787 MiB.
    def stop(*args: object, **kwargs: object) -> None:
        raise cli.RunError("stopped before training")

    monkeypatch.setattr(cli, "Trainer", stop)
    recipe = make_recipe(train={"precision": precision})
    for variable in CACHES:
        monkeypatch.delenv(variable, raising=False)
    assert cli.main(["train", str(recipe), "--run-dir", str(tmp_path / "a")]) == 2
    assert tuple(os.environ[variable] for variable in CACHES) == kept
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "7")
    monkeypatch.setenv("LRU_CACHE_CAPACITY", "9")
    assert cli.main(["train", str(recipe), "--run-dir", str(tmp_path / "b")]) == 2
    assert tuple(os.environ[variable] for variable in CACHES) == ("7", "9")


@pytest.mark.parametrize("variable", CACHES)
def test_a_kernel_cache_variable_that_is_no_whole_number_is_a_clear_error_and_an_empty_one_gets_the_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str
) -> None:
    # PyTorch's ideep dies of a segmentation fault on LRU_CACHE_CAPACITY=abc, or an empty one, at its first kernel.
    for value in ("abc", "-5", "1.5"):
        monkeypatch.setenv(variable, value)
        assert cli.main(["check", "missing.yaml"]) == 2
        err = capsys.readouterr().err
        assert f"{variable} must be a whole number of kernels (0 or more), got '{value}'" in err
        assert os.environ[variable] == value  # the user's setting is left as it is
    monkeypatch.setenv(variable, " ")
    cli.main(["check", "missing.yaml"])
    assert os.environ[variable] == "64"


def test_other_commands_keep_64_kernels_in_each_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in CACHES:
        monkeypatch.delenv(variable, raising=False)
    cli.main(["check", "missing.yaml"])  # fails on the missing recipe, after the setting
    assert tuple(os.environ[variable] for variable in CACHES) == ("64", "64")
