"""The built-in loggers (console, jsonl, tensorboard) and the recipe's `loggers:` list."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from recipe_helpers import parse, parse_error
from transduce_builtins.loggers import ConsoleLogger, JsonlLogger, TensorBoardLogger, epoch_line

from transduce._model import assembly as pipeline
from transduce._plugins.registry import discover
from transduce._training.lifecycle import Lifecycle
from transduce.api import Report, Score
from transduce.errors import RecipeError

RECIPE = {"seed": 1, "train": {"epochs": 3}}
RECORD = {"epoch": 2, "step": 40, "loss": 1.234567, "tokens_per_second": 12345.6, "seconds": 3.21}
VALIDATED = {**RECORD, "valid": {"exact_match": 97.5, "bleu": 99.104}, "best": True}
REPORT = Report(split="test", size=4, scores=[Score("exact_match", 75.0), Score("bleu", 80.5, "nrefs:1")])


# --- console ---------------------------------------------------------------------------------------


def test_epoch_line_without_validation():
    assert epoch_line(RECORD, 3) == "epoch 2/3  loss 1.2346  12,346 tok/s  3.2 s"


def test_epoch_line_with_validation_scores_marks_a_new_best():
    assert epoch_line(VALIDATED, 3) == (
        "epoch 2/3  loss 1.2346  12,346 tok/s  3.2 s  valid: exact_match 97.50  bleu 99.10 [green](best)[/]"
    )
    assert "(best)" not in epoch_line({**VALIDATED, "best": False}, 3)


def test_console_logger_prints_one_line_per_epoch_with_the_total_from_the_recipe(capsys):
    logger = ConsoleLogger()
    logger.run_start(RECIPE, Path("run"))
    logger.epoch_end(RECORD)
    logger.epoch_end({**VALIDATED, "epoch": 3})
    assert capsys.readouterr().out == (
        "epoch 2/3  loss 1.2346  12,346 tok/s  3.2 s\n"
        "epoch 3/3  loss 1.2346  12,346 tok/s  3.2 s  valid: exact_match 97.50  bleu 99.10 (best)\n"
    )


def test_console_logger_escapes_markup_in_metric_names(capsys):
    ConsoleLogger().epoch_end({**RECORD, "valid": {"[bold]odd": 1.0}})
    assert "valid: [bold]odd 1.00" in capsys.readouterr().out


def test_console_logger_listens_only_to_epochs(registry):
    lifecycle = Lifecycle(registry, [ConsoleLogger()])
    assert [e for e in ("run_start", "epoch_end", "validation_end", "run_end") if lifecycle.listeners(e)] == [
        "run_start",
        "epoch_end",
    ]


# --- jsonl -----------------------------------------------------------------------------------------


def read_events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()]


def test_jsonl_writes_every_event_as_one_json_line_at_once(tmp_path):
    logger = JsonlLogger()
    lifecycle = Lifecycle(discover(), [logger], warn=pytest.fail)
    lifecycle.emit("run_start", recipe=RECIPE, run_dir=tmp_path)
    assert [e["event"] for e in read_events(tmp_path)] == ["run_start"]  # written before the next event
    lifecycle.emit("validation_end", epoch=2, metrics={"exact_match": 97.5})
    lifecycle.emit("checkpoint_saved", path=tmp_path / "checkpoints" / "best.pt", kind="best")
    lifecycle.emit("epoch_end", record=VALIDATED)
    lifecycle.emit("evaluation_end", report=REPORT)
    lifecycle.emit("run_end", report=REPORT)
    events = read_events(tmp_path)
    assert [e["event"] for e in events] == [
        "run_start",
        "validation_end",
        "checkpoint_saved",
        "epoch_end",
        "evaluation_end",
        "run_end",
    ]
    assert all(isinstance(e["time"], float) for e in events)
    assert events[0]["recipe"] == RECIPE and events[0]["run_dir"] == str(tmp_path)
    assert (events[1]["epoch"], events[1]["metrics"]) == (2, {"exact_match": 97.5})
    assert (events[2]["path"], events[2]["kind"]) == (str(tmp_path / "checkpoints" / "best.pt"), "best")
    assert events[3]["record"] == VALIDATED
    assert events[4]["report"]["metrics"] == {"exact_match": 75.0, "bleu": 80.5}
    assert events[4]["report"]["signatures"] == {"bleu": "nrefs:1"}
    assert (events[5]["split"], events[5]["metrics"]) == ("test", {"exact_match": 75.0, "bleu": 80.5})


def test_jsonl_records_a_failure_and_a_resumed_run_appends(tmp_path):
    first = JsonlLogger()
    first.run_start(RECIPE, tmp_path)
    first.run_failed(KeyboardInterrupt())
    second = JsonlLogger()
    second.run_start(RECIPE, tmp_path)
    events = read_events(tmp_path)
    assert [e["event"] for e in events] == ["run_start", "run_failed", "run_start"]
    assert (events[1]["error"], events[1]["message"]) == ("KeyboardInterrupt", "")


def test_jsonl_before_run_start_fails_and_is_disabled_with_a_warning(tmp_path, registry):
    warnings: list[str] = []
    lifecycle = Lifecycle(registry, [JsonlLogger()], warn=warnings.append)
    lifecycle.emit("epoch_end", record=RECORD)
    assert len(warnings) == 1 and "logger 'jsonl'" in warnings[0] and "before run_start" in warnings[0]


def test_jsonl_that_cannot_write_is_disabled_and_the_run_goes_on(tmp_path, registry):
    warnings: list[str] = []
    missing = tmp_path / "removed-run"
    lifecycle = Lifecycle(registry, [JsonlLogger()], warn=warnings.append)
    lifecycle.emit("run_start", recipe=RECIPE, run_dir=missing)
    lifecycle.emit("epoch_end", record=RECORD)
    assert len(warnings) == 1 and "failed in run_start: FileNotFoundError" in warnings[0]


# --- tensorboard -----------------------------------------------------------------------------------


def test_tensorboard_without_its_package_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install 'transduce\[tensorboard\]'"):
        TensorBoardLogger()


def test_tensorboard_without_its_package_is_a_recipe_error_at_its_key(monkeypatch, registry):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    recipe = parse("data: dates\nloggers: [console, tensorboard]\n", registry)
    with pytest.raises(RecipeError) as caught:
        pipeline.loggers(registry, recipe)
    assert caught.value.key == "loggers.1"
    assert "logger 'tensorboard' cannot be used" in str(caught.value)
    assert "pip install" in str(caught.value)


def test_tensorboard_writes_scalars_by_epoch(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(directory="tb")
    lifecycle = Lifecycle(discover(), [logger], warn=pytest.fail)
    lifecycle.emit("run_start", recipe=RECIPE, run_dir=tmp_path)
    for epoch, loss in ((1, 2.5), (2, 1.5)):
        lifecycle.emit("validation_end", epoch=epoch, metrics={"bleu": 10.0 * epoch})
        lifecycle.emit("epoch_end", record={**RECORD, "epoch": epoch, "loss": loss})
    lifecycle.emit("evaluation_end", report=REPORT)
    lifecycle.emit("run_end", report=REPORT)
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    scalars = {tag: [(s.step, s.value) for s in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    assert scalars["train/loss"] == [(1, 2.5), (2, 1.5)]
    assert scalars["valid/bleu"] == [(1, 10.0), (2, 20.0)]
    assert scalars["test/exact_match"] == [(2, 75.0)]
    assert logger.writer is None  # closed at run end


# --- the recipe's loggers --------------------------------------------------------------------------


def test_a_recipe_without_loggers_gets_the_console(registry):
    assert parse("data: dates\n", registry)["loggers"] == [{"name": "console"}]


def test_loggers_by_name_or_mapping_get_their_params(registry):
    recipe = parse("data: dates\nloggers:\n  - jsonl\n  - {name: tensorboard, directory: tb}\n", registry)
    assert recipe["loggers"] == [{"name": "jsonl"}, {"name": "tensorboard", "directory": "tb"}]


def test_an_empty_or_null_list_means_no_loggers(registry):
    assert parse("data: dates\nloggers: []\n", registry)["loggers"] == []
    assert parse("data: dates\nloggers:\n", registry)["loggers"] == []


def test_a_single_name_is_a_list_of_one(registry):
    assert parse("data: dates\nloggers: jsonl\n", registry)["loggers"] == [{"name": "jsonl"}]


def test_loggers_can_be_set_from_the_command_line(registry):
    recipe = parse("data: dates\n", registry, ["loggers=[jsonl, console]"])
    assert [spec["name"] for spec in recipe["loggers"]] == ["jsonl", "console"]


def test_unknown_logger_suggests_the_closest_with_file_line_and_key(registry):
    error = parse_error("data: dates\nloggers:\n  - console\n  - jsnl\n", registry)
    assert str(error) == (
        "r.yaml:4: loggers.1.name: unknown logger 'jsnl'. Did you mean 'jsonl'? "
        "(available: console, jsonl, tensorboard)"
    )


def test_unknown_logger_parameter_is_an_error_at_its_line(registry):
    error = parse_error("data: dates\nloggers:\n  - {name: tensorboard, directry: tb}\n", registry)
    assert error.line == 3 and error.key == "loggers.0.directry"
    assert "Did you mean 'directory'?" in str(error)


def test_loggers_that_are_not_a_list_are_an_error(registry):
    error = parse_error("data: dates\nloggers: 3\n", registry)
    assert (error.line, error.key) == (2, "loggers")
    assert "expected a list of logger names" in str(error)


def test_a_logger_listed_twice_is_an_error(registry):
    error = parse_error("data: dates\nloggers: [jsonl, console, jsonl]\n", registry)
    assert error.key == "loggers.2"
    assert "logger 'jsonl' is listed twice (also as loggers.0)" in str(error)


def test_a_misspelled_top_level_loggers_section_suggests_it(registry):
    assert "Did you mean 'loggers'?" in str(parse_error("data: dates\nlogers: [jsonl]\n", registry))


def test_pipeline_builds_the_loggers_in_order(registry):
    recipe = parse("data: dates\nloggers: [jsonl, console]\n", registry)
    assert [type(logger) for logger in pipeline.loggers(registry, recipe)] == [JsonlLogger, ConsoleLogger]


def test_check_constructs_the_loggers(monkeypatch, registry):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    recipe = parse(
        "data: {name: dates, train_size: 10, valid_size: 5, test_size: 5}\nloggers: [tensorboard]\n", registry
    )
    with pytest.raises(RecipeError, match="loggers.0: logger 'tensorboard' cannot be used"):
        pipeline.check(registry, recipe)
