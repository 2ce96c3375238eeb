"""benchmarks/peers_benchmark.py builds valid transduce recipes for each of its rows (nothing is trained here:
the lead runs the benchmark itself on a quiet machine)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "peers_benchmark.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("peers_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


@pytest.mark.parametrize("task", ["dates", "dates-book", "multi30k"])
def test_check_validates_both_transduce_rows_of_every_task(bench, task: str) -> None:
    args = bench.parse_args(["--task", task, "--check"])
    resolved = bench.check_recipes(args, bench.TASKS[task])
    assert list(resolved) == ["transduce", "transduce_if"]
    assert resolved["transduce"]["model"]["decoder"]["input_feeding"] is False
    assert resolved["transduce_if"]["model"]["decoder"]["input_feeding"] is True
    for recipe in resolved.values():  # the peers' architecture apart from input feeding: the same in both rows
        decoder = recipe["model"]["decoder"]
        assert (decoder["name"], decoder["hidden_size"], decoder["layers"]) == ("lstm", bench.HIDDEN, 1)
        assert decoder["dropout"] == recipe["model"]["dropout"] == bench.TASKS[task].dropout
        assert (decoder["cell"], decoder["init"], decoder["peeky"]) == ("lstm", "final", False)
        assert decoder["attention"]["name"] == "general"
        assert recipe["search"]["name"] == "greedy"


def test_check_prints_each_row_and_needs_no_peer_environments(bench, capsys, tmp_path: Path) -> None:
    assert bench.main(["--check", "--peers-dir", str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == ["transduce", "transduce input feeding"]
    assert '"input_feeding": true' in out[1]


def test_the_rows_to_run_are_chosen_with_transduce(bench) -> None:
    assert bench.parse_args(["--transduce", "input_feeding", "--check"]).rows == ["transduce_if"]
    with pytest.raises(SystemExit):
        bench.parse_args(["--transduce", "input-feeding", "--check"])


def test_ratio_rows_compare_each_transduce_row_with_each_peer(bench) -> None:
    columns = {key: 1.0 for key, *_ in bench.COLUMNS}
    medians = {
        "transduce": {**columns, "train_tps": 4.0},
        "transduce_if": {**columns, "train_tps": 3.0},
        "joey": {**columns, "train_tps": 2.0},
        "onmt": columns,
    }
    rows = {label: cells[0] for label, cells in bench.ratio_rows(medians)}
    assert rows == {
        "transduce / Joey NMT 2.3.0": "2.00x",
        "transduce / OpenNMT-py 3.5.1": "4.00x",
        "transduce input feeding / Joey NMT 2.3.0": "1.50x",
        "transduce input feeding / OpenNMT-py 3.5.1": "3.00x",
    }
