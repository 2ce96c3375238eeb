"""Fuzzing the search parameters of every built-in strategy through each front door that takes them.

Generated values (huge, negative, zero, NaN, inf, strings, lists, nested maps, YAML oddities, unknown keys)
go to every parameter of greedy, beam and sample through `translate --set search.*`, chat switches and
`evaluate --compare`. Every case must end in a result or one of our errors, within its time limit, never
allocating without bound (the parameters' upper bounds and the Translator's memory budget); afterwards a
good request still works, and the chat session survives every switch.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from test_fuzz_harness import CASES, ends_cleanly, fuzz, report_cases

from transduce._cli import main as cli
from transduce._decoding.chat import Chat, answer_lines
from transduce._decoding.translator import Translator
from transduce._model import assembly as pipeline
from transduce._plugins.registry import discover
from transduce._recipe.recipe import load_recipe
from transduce._reports.evaluation import evaluate, strategies
from transduce._runs.rundir import RunDir
from transduce.api import Example

REGISTRY = discover()
NAMES = ("greedy", "beam", "sample")
PARAMS = sorted({param.name for name in NAMES for param in REGISTRY.get("search", name).cls.params})
KEYS = st.one_of(st.sampled_from(PARAMS), st.sampled_from(["name", "width", "", "size.x", "Size", "n-best"]))
#: Values as a user would type them (YAML scalars and flow collections), the awkward ones first.
ODD = [
    *("0", "-1", "1", "2", "256", "257", "4096", "4097", "1000000", "100000000", "99999999999999999999999"),
    *("0.0", "-0.0", "1e-320", "0.0009", "1e308", "1e309", "-1e309", ".nan", ".inf", "-.inf", "nan", "inf"),
    *("null", "~", "true", "false", "''", "'5'", '"3"', "0x10", "1_000", "0o7", "5.", ".5", "1e3", "2**64"),
    *("[]", "[1, 2]", "[[1]]", "{}", "{a: 1}", "{a: {b: [1, {c: 2}]}}", "[", "{", "&a 1", "*a", "!!float 1"),
    *("!!python/object/apply:os.system ['true']", "- 1", ": ", "=", ",", ":", "a=b", "size=3", " ", "\t"),
    *("!!float", "!!int", "!!float x", "!!bool x", "!!timestamp 1", "!!binary 1", "!!set 1"),
]
VALUES = st.one_of(
    st.sampled_from(ODD),
    st.integers(0, 5000).map(str),  # near and beyond the upper bounds: accepted ones decode
    st.floats(0, 150).map(repr),
    st.sampled_from(["1", "2", "3", "8", "64", "255", "256", "0.5", "1.5", "100", "100.0", "null"]),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12),
)
ASSIGNMENTS = st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=2)
QUESTION = "june 3, 2001"


def _printable(text: str) -> bool:
    return "\x00" not in text and "\n" not in text and "\r" not in text


@pytest.fixture(scope="module")
def translator(trained_run: Path) -> Translator:
    return Translator.from_run(RunDir.open(trained_run), REGISTRY, device="cpu")


@pytest.fixture(scope="module")
def recipe(trained_run: Path) -> dict[str, Any]:
    return load_recipe(RunDir.open(trained_run).recipe, REGISTRY)


def _sets(name: str, assignments: list[tuple[str, str]]) -> list[str]:
    args = ["--set", f"search.name={name}"]
    for key, value in assignments:
        args += ["--set", f"search.{key}={value}"]
    return args


# --- translate --set search.* ---------------------------------------------------


@fuzz(1000)
@given(name=st.sampled_from(NAMES), assignments=ASSIGNMENTS)
def test_translate_set_search(
    trained_run: Path, name: str, assignments: list[tuple[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    def run() -> None:
        capsys.readouterr()
        with mock.patch.object(cli, "discover", lambda: REGISTRY):  # the plugins, found once: faster cases
            status = cli.main(["translate", str(trained_run), QUESTION, *_sets(name, assignments)])
        out, err = capsys.readouterr()
        assert status in (0, 2) and "Traceback" not in out + err, out + err
        assert (status == 0) == (len(out.splitlines()) >= 1), out + err
        CASES["search: translate --set search.* (decoded)"] += status == 0

    ends_cleanly("search: translate --set search.*", run, seconds=20)


def test_translate_still_works_after_the_fuzzing(
    trained_run: Path, translator: Translator, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert (
        cli.main(["translate", str(trained_run), QUESTION, "--set", "search.name=beam", "--set", "search.size=3"]) == 0
    )
    beam = translator.with_decoding(REGISTRY.get("search", "beam").cls(size=3, max_length=12))
    assert capsys.readouterr().out == beam.translate([QUESTION])[0] + "\n"


@pytest.mark.parametrize("value", ["!!float", "!!int", "!!float x", "!!bool x", "!!timestamp 1"])
def test_a_value_with_a_bad_yaml_tag_is_a_clear_error(
    trained_run: Path, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert cli.main(["translate", str(trained_run), QUESTION, "--set", f"search.max_ratio={value}"]) == 2
    assert f"search.max_ratio: expected number >= 0 and <= 100.0 or null, got str '{value}'" in capsys.readouterr().err


# --- chat switches ------------------------------------------------------------------

SWITCHES = st.one_of(
    VALUES.map(lambda v: f"/beam {v}"),
    VALUES.map(lambda v: f"/sample {v}"),
    st.tuples(VALUES, VALUES).map(lambda vs: f"/sample {vs[0]} {vs[1]}"),
    VALUES.map(lambda v: f"/greedy {v}"),
    st.tuples(st.sampled_from([*NAMES, "bean", "", "beam:size=3"]), ASSIGNMENTS).map(
        lambda case: f"/search {case[0]} " + " ".join(f"{k}={v}" for k, v in case[1])
    ),
    st.text(max_size=20).map(lambda t: "/" + t),
    st.sampled_from(["/show", "/help", "/?", "/", "//", "/greedy", "/beam", "/sample"]),
).filter(_printable)


@fuzz(1000)
@given(switch=SWITCHES)
def test_chat_switches(translator: Translator, recipe: dict[str, Any], switch: str) -> None:
    """Piped, as `transduce chat` reads stdin: the switch, then a message that must still get one reply."""
    talk = Chat(translator, REGISTRY, dict(recipe["search"]), dict(recipe["search"]))

    def run() -> None:
        out, err = io.StringIO(), io.StringIO()
        chat_lines = [switch + "\n", QUESTION + "\n"]
        answer_lines(talk, chat_lines, out, Console(file=err, width=200))
        replies = out.getvalue().splitlines()
        assert "Traceback" not in err.getvalue()
        expected = 2 if switch.startswith("//") else 1  # '//text' is a message, not a switch
        assert len(replies) == expected, (switch, out.getvalue(), err.getvalue())
        CASES["search: chat switches (taken)"] += err.getvalue().startswith("search: ")

    ends_cleanly("search: chat switches", run, seconds=20)


def test_the_chat_session_survives_every_bad_switch(translator: Translator, recipe: dict[str, Any]) -> None:
    talk = Chat(translator, REGISTRY, dict(recipe["search"]), dict(recipe["search"]))
    sizes = ["0", "-1", "257", "100000000", "99999999999999999999999", ".nan", "-.inf", "null", "[1, 2]", "'5'"]
    temperatures = ["0", "-1", ".nan", "1e309", "1e-320", "0.0009", "1001", "{a: {b: [1]}}", "!!float x", "hot"]
    bad = [*(f"/beam {v}" for v in sizes), *(f"/sample {v}" for v in temperatures), "/sample 1 -1", "/greedy 1"]
    lines = ["/beam 3", *bad, "/show", QUESTION]
    out, err = io.StringIO(), io.StringIO()
    answer_lines(talk, [line + "\n" for line in lines if _printable(line)], out, Console(file=err, width=300))
    assert out.getvalue().splitlines() == [talk.translator.translate([QUESTION])[0]]
    assert talk.search["name"] == "beam" and talk.search["size"] == 3  # every bad switch left it as it was
    told = err.getvalue().splitlines()
    assert len(told) == len(bad) + 2 and all(line.startswith("error: ") for line in told[1:-1])
    assert told[-1].startswith("search: beam (size=3,")


# --- evaluate --compare -------------------------------------------------------------

COMPARE = st.one_of(
    st.tuples(st.sampled_from([*NAMES, "bean", ""]), ASSIGNMENTS).map(
        lambda case: f"{case[0]}:" + ",".join(f"{k}={v}" for k, v in case[1])
    ),
    st.text(max_size=30),
)


@fuzz(1000)
@given(text=COMPARE)
def test_evaluate_compare(translator: Translator, recipe: dict[str, Any], text: str) -> None:
    """What `evaluate --compare TEXT` does: read the strategy, then decode the examples with it."""
    examples = [Example(QUESTION, "2001-06-03"), Example("9/27/94", "1994-09-27")]

    def run() -> None:
        built = strategies(REGISTRY, recipe, [text])
        report = evaluate(translator, examples, pipeline.metrics(REGISTRY, recipe), split="fuzz", compare_with=built)
        assert [row.strategy for row in report.comparison][1:] == [s.label for s in built]
        CASES["search: evaluate --compare (decoded)"] += 1

    ends_cleanly("search: evaluate --compare", run, seconds=20)


@fuzz(12)
@given(text=COMPARE.filter(lambda t: _printable(t) and not t.startswith("-")))
def test_evaluate_compare_cli(
    evaluation_run: Path, text: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def run() -> None:
        capsys.readouterr()
        status = cli.main(["evaluate", str(evaluation_run), "--compare", text, "--json"])
        out, err = capsys.readouterr()
        assert status in (0, 2) and "Traceback" not in out + err, out + err

    ends_cleanly("search: evaluate --compare (CLI)", run, seconds=60)


def test_evaluate_compare_still_works_after_the_fuzzing(
    evaluation_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert cli.main(["evaluate", str(evaluation_run), "--compare", "beam:size=3", "--json"]) == 0


@pytest.fixture(scope="module")
def evaluation_run(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the trained run (evaluate writes its reports there)."""
    run = tmp_path_factory.mktemp("compare") / "run"
    shutil.copytree(trained_run, run)
    return run


def test_cases_ran() -> None:
    counts: Mapping[str, int] = report_cases("search:")
    print(counts)
    assert all(counts[target] >= 1000 for target in counts if "(" not in target), counts
