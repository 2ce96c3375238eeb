"""valid_size: 0 and test_size: 0: a data set of a handful of pairs trains without validation (best.pt follows
the latest epoch) and is scored on its training split; settings that need what is missing are refused before
any training."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from transduce_builtins.corpora import CommaSeparated, ParallelFiles, TabSeparated
from transduce_builtins.datasets import Dates, write_date_file

from transduce._cli import main as cli
from transduce._plugins.registry import Registry
from transduce._recipe.recipe import parse_recipe
from transduce._runs import checkpoint
from transduce.api import DataSource, Example

PAIRS = [("one", "un"), ("two", "deux"), ("three", "trois"), ("four", "quatre"), ("five", "cinq")]
NONE_HELD_OUT = {"valid_size": 0, "test_size": 0}
Capture = pytest.CaptureFixture[str]


def five_pairs(tmp_path: Path) -> Path:
    path = tmp_path / "five.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in PAIRS), encoding="utf-8")
    return path


def small_recipe(make_recipe: Callable[..., Path], data: Path, **train: Any) -> Path:
    return make_recipe(
        data={"name": "tsv", "path": str(data), **NONE_HELD_OUT},
        train={"epochs": 2, "batch_size": 2, **train},
        evaluate={"split": "train"},
    )


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def history(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


# --- every built-in data source -----------------------------------------------------------------


def splits(source: DataSource) -> dict[str, list[Example]]:
    return {name: list(source.split(name)) for name in ("train", "valid", "test")}


def test_tsv_csv_and_parallel_with_sizes_0_keep_every_pair_for_training(tmp_path: Path) -> None:
    csv_file = tmp_path / "five.csv"
    csv_file.write_text("Q,A\n" + "".join(f"{s},{t}\n" for s, t in PAIRS), encoding="utf-8")
    for side, index in (("src", 0), ("tgt", 1)):
        (tmp_path / f"train.{side}").write_text("".join(p[index] + "\n" for p in PAIRS), encoding="utf-8")
    sources = [
        TabSeparated(path=str(five_pairs(tmp_path)), **NONE_HELD_OUT),
        CommaSeparated(path=str(csv_file), source_column="Q", target_column="A", **NONE_HELD_OUT),
        ParallelFiles(str(tmp_path), "src", "tgt", valid=None, test=None, **NONE_HELD_OUT),
    ]
    for source in sources:
        assert splits(source) == {"train": [Example(*p) for p in PAIRS], "valid": [], "test": []}, source.name


def test_a_corpus_with_only_valid_size_0_still_takes_its_test_pairs_from_train(tmp_path: Path) -> None:
    got = splits(TabSeparated(path=str(five_pairs(tmp_path)), valid_size=0, test_size=1))
    assert (len(got["train"]), len(got["valid"]), len(got["test"])) == (4, 0, 1)


def test_dates_generated_or_from_a_file_with_sizes_0_have_no_valid_or_test_pairs(tmp_path: Path) -> None:
    generated = splits(Dates(train_size=5, **NONE_HELD_OUT))
    assert (len(generated["train"]), generated["valid"], generated["test"]) == (5, [], [])
    path = tmp_path / "date.txt"
    write_date_file(path, generated["train"])
    from_file = splits(Dates(path=str(path), **NONE_HELD_OUT))
    assert from_file == {"train": generated["train"], "valid": [], "test": []}


# --- training, reporting and resuming -------------------------------------------------------------


def test_five_pairs_train_to_completion_without_validation_and_report_on_the_training_split(
    tmp_path: Path, make_recipe: Callable[..., Path], capsys: Capture
) -> None:
    run = tmp_path / "run"
    assert cli.main(["train", str(small_recipe(make_recipe, five_pairs(tmp_path))), "--run-dir", str(run)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "no valid split (data.valid_size: 0?): training does not validate, so best.pt is the latest" in out
    report = read_json(run / "report.json")
    assert (report["split"], report["size"]) == ("train", 5)
    assert set(read_json(run / "data.json")["splits"]) == {"train"}
    records = history(run)
    assert [r["epoch"] for r in records] == [1, 2] and all("valid" not in r and r["best"] for r in records)
    best, last = checkpoint.load(run / "checkpoints/best.pt"), checkpoint.load(run / "checkpoints/last.pt")
    assert (best["epoch"], best["score"]) == (2, None)
    assert all(best["model"][k].equal(last["model"][k]) for k in last["model"])
    assert best["files"] == last["files"] and best["files"]  # a changed vocabulary is caught from best.pt too


def test_a_run_without_validation_resumes_and_best_follows_the_new_last_epoch(
    tmp_path: Path, make_recipe: Callable[..., Path], capsys: Capture
) -> None:
    run = tmp_path / "run"
    recipe = small_recipe(make_recipe, five_pairs(tmp_path), epochs=1)
    assert cli.main(["train", str(recipe), "--run-dir", str(run)]) == 0
    first_best = (run / "checkpoints/best.pt").read_bytes()
    assert cli.main(["train", "--resume", str(run), "--set", "train.epochs=3"]) == 0, capsys.readouterr().err
    assert "resuming after epoch 1" in capsys.readouterr().out
    assert [r["epoch"] for r in history(run)] == [1, 2, 3]
    assert checkpoint.load(run / "checkpoints/best.pt")["epoch"] == 3
    assert (run / "checkpoints/best.pt").read_bytes() != first_best
    assert read_json(run / "report.json")["split"] == "train"


def test_test_size_0_with_evaluate_split_test_is_refused_before_training(
    tmp_path: Path, make_recipe: Callable[..., Path], capsys: Capture
) -> None:
    data = five_pairs(tmp_path)
    recipe = make_recipe(data={"name": "tsv", "path": str(data), **NONE_HELD_OUT}, evaluate={"split": "test"})
    assert cli.main(["train", str(recipe), "--run-dir", str(tmp_path / "run")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "evaluate.split: 'test', but the data source gave no test pairs (is data.test_size 0?)" in err
    assert "set evaluate.split: train to score the training pairs" in err
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


@pytest.mark.parametrize(
    ("key", "value", "reported"),
    [
        ("patience", 2, "patience"),
        # The plateau schedule's decay, under its older key or its own: the schedule says which setting needs it.
        ("lr_decay", 0.5, "schedule.decay (train.lr_decay in older recipes)"),
        ("schedule", {"name": "plateau", "decay": 0.5}, "schedule.decay (train.lr_decay in older recipes)"),
    ],
)
def test_a_setting_that_needs_validation_is_refused_when_valid_size_is_0(
    tmp_path: Path, make_recipe: Callable[..., Path], capsys: Capture, key: str, value: Any, reported: str
) -> None:
    recipe = small_recipe(make_recipe, five_pairs(tmp_path), **{key: value})
    assert cli.main(["train", str(recipe), "--run-dir", str(tmp_path / "run")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    setting = reported.split()[0]
    assert f"train.{setting}: needs validation, but the data source gave no valid pairs (is data.valid_size 0?)" in err
    assert f"remove train.{reported}, and the last epoch is kept as the best" in err
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


@pytest.mark.parametrize(
    "data",
    [
        "{name: dates}",
        "{name: tsv, path: x.tsv}",
        "{name: csv, path: x.csv, source_column: Q, target_column: A}",
        "{name: parallel, path: d, source_language: de, target_language: en}",
    ],
)
def test_every_builtin_data_source_accepts_sizes_0_in_a_recipe(
    data: str, registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the recipe's paths must exist: they are checked when it is read
    for name in ("x.tsv", "x.csv"):
        (tmp_path / name).write_text("", encoding="utf-8")
    (tmp_path / "d").mkdir()
    recipe = parse_recipe(f"data: {data}\n", registry, overrides=["data.valid_size=0", "data.test_size=0"])
    assert (recipe["data"]["valid_size"], recipe["data"]["test_size"]) == (0, 0)
