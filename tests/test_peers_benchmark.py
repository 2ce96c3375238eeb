"""benchmarks/peers_benchmark.py builds valid transduce recipes for each of its rows (nothing is trained here:
the lead runs the benchmark itself on a quiet machine)."""

from __future__ import annotations

import importlib.util
import json
import math
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


def test_each_further_decoding_precision_gets_rows_with_the_same_training_and_its_own_decoding(bench) -> None:
    decoded = {
        p: {"greedy": {"sps": n, "score": 99.0 - n}, "beam": {"sps": 2 * n}} for n, p in ((1, "fp32"), (5, "int8"))
    }
    results = {"transduce": {1: {"train_tps": 7.0, "by_precision": decoded, **decoded["fp32"]}}, "onmt": {1: {}}}
    settings = bench.Settings(None, None, 1, 1e-3, 2, 1, Path(), Path(), decode_precisions=("fp32", "int8"))
    bench.precision_rows(results, settings)
    assert list(results) == ["transduce", "onmt", "transduce@int8"]
    assert results["transduce@int8"][1]["train_tps"] == 7.0
    assert results["transduce@int8"][1]["greedy"]["sps"] == 5 and results["transduce"][1]["greedy"]["sps"] == 1
    assert bench.row_label("transduce_if@bf16") == "transduce input feeding (bf16 decoding)"


def test_a_precision_row_is_held_to_the_accuracy_bound_of_the_same_runs(bench) -> None:
    columns = {key: 1.0 for key, *_ in bench.COLUMNS}
    medians = {
        "transduce": {**columns, "greedy.score": 99.5, "beam.score": 99.5},
        "transduce@int8": {**columns, "greedy.score": 99.4, "beam.score": 99.2},
    }
    lines = bench.targets(medians, "exact")
    assert "transduce (int8 decoding): met: greedy.score within 0.2 of the same runs' first precision (-0.10)" in lines
    assert "transduce (int8 decoding): MISSED: beam.score within 0.2 of the same runs' first precision (-0.30)" in lines
    assert any(line.startswith("transduce (int8 decoding): met: beam.score") for line in bench.targets(medians, "bleu"))


def test_the_ceiling_share_counts_the_models_products(bench, tmp_path: Path) -> None:
    for stem, lines in (("train.src", ["a b c"]), ("train.tgt", ["x y"]), ("test.src", ["a b c d"])):
        (tmp_path / stem).write_text("\n".join(lines) + "\n", encoding="utf-8")
    task = bench.Task("t", "exact", embedding_dim=4, dropout=0.0, batch_size=1, max_output=5, train_size=None)
    data = bench.Data(tmp_path, ["x y"], str, "char", 1, 3)
    work = bench.work_model(bench.Settings(task, data, 1, 1e-3, 2, 1, Path(), Path()))
    hidden, vocab = bench.HIDDEN, 2 + 4
    step = 2 * 4 * hidden * (4 + hidden) + 2 * hidden * hidden + 2 * 2 * 4 * hidden + 2 * hidden * 2 * hidden
    assert work["step"] == step + 2 * hidden * vocab
    assert work["step_feeding"] - work["step"] == 2 * 4 * hidden * hidden  # the fed attentional vector
    assert work["encoder_per_source_token"] == 2 * 2 * 4 * (hidden // 2) * (4 + hidden // 2)


def test_a_decoding_variant_is_a_precision_with_an_optional_shortlist(bench) -> None:
    assert bench.split_variant("int8") == ("int8", None)
    assert bench.split_variant("int8+shortlist20") == ("int8", 20)
    assert bench.row_label("transduce@int8+shortlist20") == "transduce (int8 decoding, shortlist 20)"
    for bad in ("int4", "int8+shortlist", "int8+shortlist0", "int8+shortlistx", "bf16+list5"):
        with pytest.raises(ValueError, match="a decoding variant is a precision"):
            bench.split_variant(bad)
    with pytest.raises(SystemExit):
        bench.parse_args(["--decode-precision", "fp32,int8+shortlist0"])


def test_a_shortlist_rows_share_of_the_ceiling_is_left_out_and_others_use_their_precisions(
    bench, tmp_path: Path
) -> None:
    # The work model counts the whole output layer, which a shortlist skips most of: no share is printed for it.
    (tmp_path / "test.tgt").write_text("x y\n", encoding="utf-8")
    data = bench.Data(tmp_path, ["x y"], str, "char", 1, 3)
    settings = bench.Settings(None, data, 1, 1e-3, 2, 1, Path(), Path(), decode_precisions=("fp32", "int8+shortlist5"))
    figures = {"train_tps": 10.0, "greedy": {"sps": 1.0, "length": 1.0}, "beam": {"sps": 1.0, "length": 1.0}}
    tools = ("transduce", "transduce@int8+shortlist5", "onmt")
    results = {tool: {1: json.loads(json.dumps(figures))} for tool in tools}
    work = {key: 1e9 for key in ("train", "train_feeding", "step", "step_feeding", "encoder_per_source_token")}
    work["test_mean_source"] = 1.0
    bench.add_shares(results, settings, {"fp32": 100.0, "int8": 1000.0}, work)
    assert math.isnan(results["transduce@int8+shortlist5"][1]["greedy"]["ceil"])
    plain, peer = results["transduce"][1], results["onmt"][1]
    assert plain["greedy"]["ceil"] == peer["greedy"]["ceil"] > 0  # both in float32
    assert plain["train_ceil"] == results["transduce@int8+shortlist5"][1]["train_ceil"]  # the same training
