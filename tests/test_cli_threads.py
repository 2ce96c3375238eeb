"""`--threads N` on every command that decodes, and options and positional arguments in any order (issue 14,
items 13 and 14)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_translate_files import run_cli

from transduce._cli import main as cli
from transduce._decoding.translator import Translator
from transduce.errors import RunError

DECODING_COMMANDS = [("translate", "march 3, 2001"), ("evaluate",), ("attention", "march 3, 2001"), ("chat",)]


class Loaded(RunError):
    """Raised instead of loading the model, once the thread count was seen."""


@pytest.fixture
def threads_at_load(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """torch's thread count when each command loads its model (which it then does not: the command stops)."""
    seen: list[int] = []

    def record(*args: object, **kwargs: object) -> Translator:
        seen.append(torch.get_num_threads())
        raise Loaded("stopped before loading the model")

    monkeypatch.setattr(Translator, "from_run", record)
    return seen


@pytest.mark.parametrize("command", DECODING_COMMANDS, ids=lambda c: c[0])
def test_threads_reaches_torch_before_the_model_loads(
    trained_run: Path, capsys, threads_at_load: list[int], command: tuple[str, ...]
) -> None:
    name, *text = command
    status, _, err = run_cli(capsys, name, trained_run, *text, "--threads", "3")
    assert status == 2 and "stopped before loading the model" in err
    assert threads_at_load == [3]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ((), 1),  # the run's recipe says train.threads: 1
        (("--set", "train.threads=2"), 2),
        (("--set", "train.threads=null"), 3),  # torch's setting is left as it was
        (("--set", "train.threads=2", "--threads", "1"), 1),  # the option wins over the recipe
    ],
)
@pytest.mark.parametrize("command", DECODING_COMMANDS, ids=lambda c: c[0])
def test_without_the_option_the_runs_train_threads_applies(
    trained_run: Path,
    capsys,
    threads_at_load: list[int],
    command: tuple[str, ...],
    extra: tuple[str, ...],
    expected: int,
) -> None:
    torch.set_num_threads(3)
    name, *text = command
    status, _, _ = run_cli(capsys, name, trained_run, *text, *extra)
    assert status == 2
    assert threads_at_load == [expected]


@pytest.mark.parametrize("value", ["0", "1025", "-1", "two", "1.5", ""])
@pytest.mark.parametrize("command", DECODING_COMMANDS, ids=lambda c: c[0])
def test_a_bad_thread_count_is_a_clear_error(
    trained_run: Path, capsys, threads_at_load: list[int], command: tuple[str, ...], value: str
) -> None:
    name, *text = command
    with pytest.raises(SystemExit) as stop:
        cli.main([name, str(trained_run), *text, "--threads", value])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --threads: expected a whole number of threads from 1 to 1024, got {value!r}" in err
    assert threads_at_load == []


def test_threads_is_one_option_declared_once() -> None:
    """Every decoding command's --threads is the same declaration (same help, same validation)."""
    commands = next(a for a in cli._parser()._actions if a.dest == "command").choices
    declared = {name: next(a for a in commands[name]._actions if a.dest == "threads") for name, *_ in DECODING_COMMANDS}
    assert len({(action.help, action.type) for action in declared.values()}) == 1
    assert "threads" not in {a.dest for a in commands["train"]._actions}  # train has train.threads


# --- options and positional arguments in any order -----------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["RUN", "--set", "search.max_length=8", "TEXT"],
        ["--set", "search.max_length=8", "RUN", "TEXT"],
        ["RUN", "TEXT", "--set", "search.max_length=8"],
        ["--threads", "1", "RUN", "--set", "search.max_length=8", "TEXT", "--batch-size", "4"],
    ],
)
def test_translate_takes_options_and_text_in_any_order(trained_run: Path, capsys, argv: list[str]) -> None:
    status, expected, _ = run_cli(capsys, "translate", trained_run, "march 3, 2001", "--set", "search.max_length=8")
    assert status == 0
    given = [{"RUN": str(trained_run), "TEXT": "march 3, 2001"}.get(arg, arg) for arg in argv]
    status, out, err = run_cli(capsys, "translate", *given)
    assert status == 0, err
    assert out == expected and out.strip()


def test_a_text_that_looks_like_an_option_follows_a_double_dash(trained_run: Path, capsys) -> None:
    status, out, err = run_cli(capsys, "translate", trained_run, "--set", "search.max_length=8", "--", "-3 jan")
    assert status == 0, err
    assert len(out.splitlines()) == 1


@pytest.mark.parametrize(
    ("orders", "expected"),
    [
        (
            [
                ["attention", "RUN", "--set", "a=1", "TEXT", "--output", "x.png"],
                ["attention", "--output", "x.png", "RUN", "--set", "a=1", "TEXT"],
                ["attention", "RUN", "TEXT", "--set", "a=1", "--output", "x.png"],
            ],
            {"run": Path("RUN"), "text": "TEXT", "set": ["a=1"], "output": Path("x.png")},
        ),
        (
            [["chat", "--set", "a=1", "RUN", "--threads", "2"], ["chat", "RUN", "--threads", "2", "--set", "a=1"]],
            {"run": Path("RUN"), "set": ["a=1"], "threads": 2},
        ),
        (
            [["evaluate", "--split", "valid", "RUN", "--json"], ["evaluate", "RUN", "--json", "--split", "valid"]],
            {"run": Path("RUN"), "split": "valid", "json": True},
        ),
        (
            [["train", "--set", "a=1", "R.yaml"], ["train", "R.yaml", "--set", "a=1"]],
            {"recipe": Path("R.yaml"), "set": ["a=1"]},
        ),
    ],
    ids=["attention", "chat", "evaluate", "train"],
)
def test_every_command_takes_its_arguments_in_any_order(orders: list[list[str]], expected: dict[str, object]) -> None:
    for argv in orders:
        parsed = vars(cli._parser().parse_args(argv))
        assert {key: parsed[key] for key in expected} == expected, argv
