"""Decoding never allocates without bound: search parameters have upper bounds, a strategy whose memory would
be absurd is refused before decoding (a batch over the budget is split, with the same outputs), and an input
longer than the source-length limit is cut with a note, in translate, evaluate, chat and training's report."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import sys
from pathlib import Path

import pytest
from rich.console import Console
from test_fuzz_harness import time_limit
from transduce_builtins.datasets import generate_splits, split_by_target, write_date_file

from transduce._cli import main as cli
from transduce._decoding import chat
from transduce._decoding.translator import MAX_SOURCE_TOKENS, Translator
from transduce._plugins.registry import Registry
from transduce._runs.rundir import RunDir
from transduce.api import Example
from transduce.errors import RecipeError

Capture = pytest.CaptureFixture[str]
HUGE_LINE = "9" * 1_000_000
QUESTIONS = ["june 3, 2001", "9/27/94", "TUESDAY, SEPTEMBER 27, 1994", "1 jan 1990", "mar 3 77"]
#: Seconds a 1,000,000-character input may take end to end (it took 200 s and 9 GB before the limit).
QUICK = 60


@pytest.fixture(scope="module")
def translator(trained_run: Path, registry: Registry) -> Translator:
    return Translator.from_run(RunDir.open(trained_run), registry, device="cpu")


def cli_main(capsys: Capture, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    with time_limit(QUICK):
        status = cli.main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return status, out, err


# --- item 5: bounded search parameters, a memory budget ---------------------------


def test_every_numeric_search_parameter_of_the_built_in_strategies_has_an_upper_bound(registry: Registry) -> None:
    for name in ("greedy", "beam", "sample"):
        for param in registry.get("search", name).cls.params:
            if param.type in (int, float):
                assert param.max is not None, f"{name}.{param.name} has no upper bound"


def test_translate_refuses_a_huge_beam_before_loading_anything(trained_run: Path, capsys: Capture) -> None:
    status, out, err = cli_main(
        capsys, "translate", trained_run, "june 3", "--set", "search.name=beam", "--set", "search.size=1000000"
    )
    assert status == 2 and out == ""
    assert "search.size: expected integer >= 1 and <= 256, got 1000000 (too large)" in err


def test_a_strategy_whose_memory_would_be_absurd_is_refused_with_the_estimate(
    trained_run: Path, capsys: Capture
) -> None:
    status, out, err = cli_main(
        capsys, "translate", trained_run, "june 3", "--set", "search.name=beam", "--set", "search.size=256",
        "--set", "search.max_length=4096",
    )  # fmt: skip
    assert status == 2 and out == ""
    assert f"decoding one input of {MAX_SOURCE_TOKENS:,} source tokens with 'beam'" in err
    assert "would take about 6.5 GB, more than the 2.0 GB" in err and "lower the beam size, max_length" in err
    assert "Traceback" not in err


def test_with_decoding_refuses_a_strategy_over_the_budget(translator: Translator, registry: Registry) -> None:
    beam = registry.get("search", "beam").cls
    with pytest.raises(RecipeError, match="would take about"):
        translator.with_decoding(beam(size=10**6))
    translator.with_decoding(beam(size=8))  # a sensible one is taken


def test_a_batch_over_the_budget_is_split_and_gives_the_same_outputs(
    translator: Translator, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    beam = translator.with_decoding(registry.get("search", "beam").cls(size=4, n_best=2, max_length=12))
    whole = beam.translate_detailed(QUESTIONS)
    longest = max(len(tokens) for tokens in beam.source_tokens(QUESTIONS))
    two = beam._batch_bytes(2, longest)  # room for two of the questions per batch
    tight = dataclasses.replace(beam, max_source_tokens=longest, memory_budget=two)
    batches: list[int] = []
    decode = tight.decoding.decode
    monkeypatch.setattr(
        tight.decoding, "decode", lambda model, memory: batches.append(memory.batch_size) or decode(model, memory)
    )
    split = tight.translate_detailed(QUESTIONS)
    assert max(batches) <= 2 and sum(batches) == len(QUESTIONS)
    assert [t.text for t in split] == [t.text for t in whole]
    assert [[a.text for a in t.alternatives] for t in split] == [[a.text for a in t.alternatives] for t in whole]


def test_a_refused_chat_switch_keeps_the_previous_strategy_and_the_chat_goes_on(
    trained_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    lines = ["/beam 3", "/beam 100000000", "/search beam size=256 max_length=4096", "/show", QUESTIONS[0]]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    status, out, err = cli_main(capsys, "chat", trained_run)
    assert status == 0
    assert len(out.splitlines()) == 1  # the message is still answered
    errors = err.splitlines()
    assert errors[1].startswith("error: /beam 100000000: search.size: expected integer >= 1 and <= 256")
    assert errors[2].startswith("error: /search beam size=256 max_length=4096: decoding one input of")
    assert errors[3].startswith("search: beam (size=3,")  # /show: the setting before the refused switches


def test_evaluate_compare_refuses_a_huge_or_absurd_strategy_before_decoding(trained_run: Path, capsys: Capture) -> None:
    status, _, err = cli_main(capsys, "evaluate", trained_run, "--compare", "beam:size=1000000")
    assert status == 2 and "--compare beam:size=1000000: search.size: expected integer >= 1 and <= 256" in err
    status, out, err = cli_main(capsys, "evaluate", trained_run, "--compare", "beam:size=256,max_length=4096")
    assert status == 2 and "Scores" not in out
    assert "compare beam:size=256,max_length=4096: decoding one input of" in err


# --- item 6: long inputs are cut to the source-length limit -------------------------


def test_a_long_input_is_cut_to_the_limit_and_counted(translator: Translator) -> None:
    cut = dataclasses.replace(translator, max_source_tokens=8, truncated=0)
    (detailed,) = cut.translate_detailed(["27 september 1994"])
    assert detailed.source_tokens == list("27 septe")
    assert detailed.text == cut.translate(["27 septe"])[0]
    assert cut.truncated == 1 and "1 input was longer than 8 source tokens" in cut.truncation_note()
    cut.translate(["27 september 1994", "27 sep", "1 january 2000"])
    assert cut.truncated == 3 and cut.truncation_note(since=1).startswith("2 inputs were longer than 8")
    assert cut.truncation_note(since=3) is None


def test_translate_text_of_a_million_characters_is_cut_with_a_note(trained_run: Path, capsys: Capture) -> None:
    status, out, err = cli_main(capsys, "translate", trained_run, HUGE_LINE)
    assert status == 0 and len(out.splitlines()) == 1
    assert f"note: 1 input was longer than {MAX_SOURCE_TOKENS:,} source tokens (the decoding limit)" in err


def test_translate_input_with_a_million_character_line(trained_run: Path, tmp_path: Path, capsys: Capture) -> None:
    source = tmp_path / "in.txt"
    source.write_text(f"{QUESTIONS[0]}\n{HUGE_LINE}\n{QUESTIONS[1]}\n", encoding="utf-8")
    status, _, err = cli_main(capsys, "translate", trained_run, "--input", source, "--output", tmp_path / "out.txt")
    assert status == 0 and len((tmp_path / "out.txt").read_text(encoding="utf-8").splitlines()) == 3
    assert "wrote 3 translations" in err and "note: 1 input was longer than" in err


def test_evaluate_data_with_a_million_character_line_writes_a_report_that_notes_it(
    trained_run: Path, tmp_path: Path, capsys: Capture
) -> None:
    run = tmp_path / "run"
    _copy_run(trained_run, run)
    data = tmp_path / "long.txt"
    write_date_file(data, [Example(QUESTIONS[0], "2001-06-03"), Example(HUGE_LINE, "1994-09-27")])
    status, _, err = cli_main(capsys, "evaluate", run, "--data", data)
    assert status == 0, err
    notes = json.loads((run / "report.data-long.json").read_text(encoding="utf-8"))["data"]["notes"]
    assert any("1 input was longer than" in note for note in notes)
    assert (run / "report.data-long.md").stat().st_size < 50_000  # the report shows the line's beginning only


def test_chat_answers_a_million_character_message_with_a_note(
    trained_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{HUGE_LINE}\n{QUESTIONS[0]}\n"))
    status, out, err = cli_main(capsys, "chat", trained_run)
    assert status == 0 and len(out.splitlines()) == 2
    assert err.count("note: 1 input was longer than") == 1


def test_a_chat_reply_that_fails_is_reported_and_the_chat_goes_on(translator: Translator, registry: Registry) -> None:
    talk = chat.Chat(translator, registry, {"name": "greedy"}, {"name": "greedy"})

    def broken(text: str) -> str:
        raise RecipeError("no reply")

    talk.reply = broken  # type: ignore[method-assign]
    out, err = io.StringIO(), io.StringIO()
    chat.answer_lines(talk, ["hello\n", "again\n"], out, Console(file=err))
    assert out.getvalue() == "\n\n" and err.getvalue().count("error: no reply") == 2


@pytest.mark.parametrize("split", ["train", "test"])
def test_a_training_file_with_a_million_character_line_trains_and_reports(
    split: str, tmp_path: Path, make_recipe, train_run
) -> None:
    """In the training split the pair is dropped (source.max_length defaults to the decoding limit); in the
    test split the final evaluation cuts it and its report says so."""
    examples = [e for part in generate_splits(5, {"train": 260, "valid": 30, "test": 30}).values() for e in part]
    owner = split_by_target(examples, 1, 30, 30, None, "")
    target = next(e.target for e in owner[split])
    data = tmp_path / "dates.txt"
    write_date_file(data, [*examples, Example(HUGE_LINE, target)])
    recipe = make_recipe(data={"path": str(data), "seed": 1, "valid_size": 30, "test_size": 30, "train_size": None})
    with time_limit(QUICK * 2):
        run = train_run(recipe, tmp_path / "run")
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    cut = any("1 input was longer than" in note for note in report["data"]["notes"])
    assert cut == (split == "test")
    assert report["data"]["splits"]["train"].get("filtered_by_length", 0) == (split == "train")


def _copy_run(source: Path, target: Path) -> None:
    shutil.copytree(source, target)


def test_attention_of_a_text_longer_than_the_limit_says_it_was_cut(
    trained_run: Path, tmp_path: Path, capsys: Capture
) -> None:
    text = QUESTIONS[0] * (MAX_SOURCE_TOKENS // len(QUESTIONS[0]) + 2)  # past the limit in characters
    status, _, err = cli_main(capsys, "attention", trained_run, text, "--output", tmp_path / "map.png")
    assert status == 0
    assert f"note: 1 input was longer than {MAX_SOURCE_TOKENS:,} source tokens (the decoding limit)" in err
