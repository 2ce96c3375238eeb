"""Fuzzing the command line: `check` on hostile recipe files and overrides, and random argument lists.

Every case must exit with 0 (done) or 2 (our error, or argparse's usage
error), print no traceback, and never hang. Random argument lists run in an
empty temporary directory with an empty stdin, with no trained run or valid
recipe within reach, so no case trains or waits for input.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_harness import ends_cleanly, fuzz, report_cases
from test_fuzz_recipe import PATHS, VALID, VALUES, _known_elsewhere, _with_value

from transduce._cli import main as cli

COMMANDS = ["plugins", "check", "train", "evaluate", "translate", "attention", "chat", "new-plugin"]
OPTIONS = [
    "--set",
    "--debug",
    "--run-dir",
    "--resume",
    "--input",
    "--output",
    "--batch-size",
    "--split",
    "--json",
    "--data",
    "--version",
    "--help",
    "-h",
    "--compare",
]
VALUES_ON_THE_COMMAND_LINE = ["recipe.yaml", "missing.yaml", "notarun", "in.txt", "x.txt", "0", "-1", "train.epochs=2"]
TOKENS = st.one_of(
    st.sampled_from(COMMANDS + OPTIONS + VALUES_ON_THE_COMMAND_LINE),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\0"), max_size=10),
)


@contextlib.contextmanager
def sandbox() -> Iterator[Path]:
    """An empty working directory holding a broken recipe, a non-run directory and an input file; empty stdin."""
    previous, stdin = Path.cwd(), sys.stdin
    with tempfile.TemporaryDirectory() as name:
        root = Path(name)
        (root / "recipe.yaml").write_text("data: {name: dates, train_size: -1}\n", encoding="utf-8")
        (root / "notarun").mkdir()
        (root / "in.txt").write_text("march 3, 2001\n", encoding="utf-8")
        os.chdir(root)
        sys.stdin = io.StringIO("")
        try:
            yield root
        finally:
            sys.stdin = stdin
            os.chdir(previous)


def exit_status(argv: list[str], capsys: pytest.CaptureFixture[str]) -> int:
    """`transduce ARGV`'s exit status (argparse's SystemExit included); the output must hold no traceback."""
    capsys.readouterr()
    try:
        status = cli.main(argv)
    except SystemExit as stop:  # argparse: --help, --version (0) and usage errors (2)
        status = stop.code if isinstance(stop.code, int) else 2
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, out + err
    assert status in (0, 2), (status, out + err)
    if status == 2 and "usage:" not in err:
        assert "error:" in err, err
    return status


@fuzz(60)
@given(argv=st.lists(TOKENS, max_size=6))
def test_random_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    if "--check" in argv:  # the conformance kit over every component: slow, and fuzzed elsewhere
        return
    with sandbox():
        ends_cleanly("cli: random arguments", lambda: exit_status(argv, capsys))


@fuzz(40)
@given(argv=st.tuples(st.sampled_from(COMMANDS), st.lists(TOKENS, max_size=5)).map(lambda t: [t[0], *t[1]]))
def test_random_arguments_after_a_command(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    if "--check" in argv:
        return
    with sandbox():
        ends_cleanly("cli: a command with random arguments", lambda: exit_status(argv, capsys))


@fuzz(40)
@given(path=st.sampled_from(PATHS), value=VALUES, overrides=st.lists(st.text(max_size=12), max_size=2))
def test_check_on_a_hostile_recipe(
    path: tuple[str, ...], value: Any, overrides: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    if _known_elsewhere(path, value):
        return
    with sandbox() as root:
        recipe = root / "fuzzed.yaml"
        recipe.write_text(yaml.safe_dump(_with_value(path, value), allow_unicode=True), encoding="utf-8")
        argv = ["check", str(recipe), *(f"--set={o}" for o in overrides)]
        ends_cleanly("cli: check on a hostile recipe", lambda: exit_status(argv, capsys))


@fuzz(30)
@given(data=st.binary(max_size=100))
def test_check_on_random_bytes(data: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    with sandbox() as root:
        (root / "bytes.yaml").write_bytes(data)
        ends_cleanly("cli: check on random bytes", lambda: exit_status(["check", "bytes.yaml"], capsys))


def test_a_valid_recipe_checks_and_a_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with sandbox() as root:
        (root / "ok.yaml").write_text(yaml.safe_dump(VALID), encoding="utf-8")
        assert exit_status(["check", "ok.yaml"], capsys) == 0
        assert exit_status(["check"], capsys) == 2
        assert exit_status(["check", "recipe.yaml"], capsys) == 2


def test_cases_ran() -> None:
    print(report_cases("cli:"))
