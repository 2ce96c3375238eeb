"""End to end: small tasks are actually learned, to high accuracy on held-out data, in seconds.

The `reverse` task comes from tests/support/reverse_plugin.py, installed through a real
entry point (the `reverse_plugin` fixture), so this also proves a third-party data source
works in every step: recipe validation, training, the report, evaluate and translate.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import DATES_TASK, SMALL_MODEL

from transduce._cli import main as cli
from transduce._plugins.registry import discover
from transduce._runs import checkpoint

#: Generous: each task trains in about 2-3 s on one CPU thread; the bound catches a slowdown, not noise.
TRAINING_SECONDS = 20.0


#: Recipe sections of the `reverse` task, learned in seconds. 5 letters, lengths 3-6: 19,500 strings; chance of an
#: exact reversal is far below 1%.
REVERSE_TASK: dict[str, Any] = {
    "data": {"name": "reverse", "size": 3000, "held_out": 200, "min_len": 3, "max_len": 6, "alphabet": "abcde"},
    "model": SMALL_MODEL,
    "train": {"epochs": 6, "lr": 0.01},
}


def report(run: Path) -> dict[str, Any]:
    return json.loads((run / "report.json").read_text(encoding="utf-8"))


def training_seconds(run: Path) -> float:
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return sum(json.loads(line)["seconds"] for line in lines)


def test_the_reverse_plugin_is_found_through_its_entry_point(reverse_plugin: str) -> None:
    info = discover().get("dataset", "reverse")
    assert info is not None
    assert info.provider.distribution == reverse_plugin and info.provider.version == "0.1"
    assert info.provider.entry_point == "reverse"
    assert [p.name for p in info.params] == ["size", "held_out", "seed", "min_len", "max_len", "alphabet"]


def test_the_reverse_plugin_is_gone_when_its_distribution_is_not_on_the_path() -> None:
    assert discover().get("dataset", "reverse") is None


def test_reversing_short_strings_is_learned_to_high_accuracy_on_held_out_strings(
    reverse_plugin: str,
    tmp_path: Path,
    make_recipe: Callable[..., Path],
    train_run: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    recipe = make_recipe("reverse", **REVERSE_TASK, evaluate={"examples": 20})
    run = train_run(recipe, tmp_path / "run")

    result = report(run)
    assert result["split"] == "test" and result["size"] == 200
    assert result["metrics"]["exact_match"] >= 90.0, result["metrics"]
    assert all(e["reference"] == e["source"][::-1] for e in result["examples"])
    components = checkpoint.load(run / "checkpoints/last.pt")["components"]
    assert components["dataset/reverse"] == f"{reverse_plugin} 0.1"
    assert components["encoder/lstm"] == "transduce 0.1.0"
    assert training_seconds(run) < TRAINING_SECONDS

    # The trained run works with the plugin's own file format and with translate.
    data = tmp_path / "strings.txt"
    data.write_text("abc\nedcba\naabbc\n", encoding="utf-8")
    capsys.readouterr()
    assert cli.main(["evaluate", str(run), "--data", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["exact_match"] >= 2 / 3 * 100
    assert cli.main(["translate", str(run), "abcde"]) == 0
    assert capsys.readouterr().out == "edcba\n"


def test_dates_are_learned_to_high_accuracy_from_a_few_thousand_generated_pairs(
    tmp_path: Path, make_recipe: Callable[..., Path], train_run: Callable[..., Path]
) -> None:
    recipe = make_recipe("dates", **DATES_TASK)
    run = train_run(recipe, tmp_path / "run")

    result = report(run)
    assert result["size"] == 200
    assert result["metrics"]["exact_match"] >= 90.0, result["metrics"]
    assert result["metrics"]["chrf"] >= 95.0
    assert training_seconds(run) < TRAINING_SECONDS
