"""`transduce chat`: piped lines, decoding switches, and the interactive prompt on a pseudo-terminal."""

from __future__ import annotations

import contextlib
import io
import os
import pty
import select
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from transduce._cli import main as cli
from transduce._decoding import chat
from transduce._decoding.translator import Translator
from transduce._plugins.registry import Registry
from transduce._runs.rundir import RunDir

Capture = pytest.CaptureFixture[str]
QUESTIONS = ["june 3, 2001", "9/27/94", "TUESDAY, SEPTEMBER 27, 1994"]


@pytest.fixture(scope="module")
def translator(trained_run: Path, registry: Registry) -> Translator:
    return Translator.from_run(RunDir.open(trained_run), registry)


def replies(translator: Translator, texts: list[str]) -> list[str]:
    """What the run answers, one text at a time as chat asks it."""
    return [translator.translate([text])[0] for text in texts]


def with_decoder(translator: Translator, registry: Registry, name: str, **params: Any) -> Translator:
    return translator.with_decoding(registry.get("search", name).cls(**params))


def chat_piped(
    monkeypatch: pytest.MonkeyPatch, capsys: Capture, run: Path, text: str, *extra: str
) -> tuple[int, str, str]:
    """`echo TEXT | transduce chat RUN EXTRA...`, in-process."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    capsys.readouterr()
    status = cli.main(["chat", str(run), *extra])
    out, err = capsys.readouterr()
    return status, out, err


# --- piped ---------------------------------------------------------------------


def test_a_piped_question_gets_the_reply_translate_gives(
    trained_run: Path, translator: Translator, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    status, out, _ = chat_piped(monkeypatch, capsys, trained_run, "june 3, 2001\n")
    assert status == 0
    assert out == replies(translator, ["june 3, 2001"])[0] + "\n"


def test_several_lines_are_answered_in_order_skipping_blank_lines(
    trained_run: Path, translator: Translator, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    text = "\r\n".join([QUESTIONS[0], "", QUESTIONS[1], "   ", QUESTIONS[2], "//27 sep 1994"]) + "\n"
    status, out, _ = chat_piped(monkeypatch, capsys, trained_run, text)
    assert status == 0
    assert out.splitlines() == replies(translator, [*QUESTIONS, "/27 sep 1994"])  # '//' sends one '/'


def test_a_switch_line_changes_the_following_replies_and_writes_nothing_on_stdout(
    trained_run: Path, translator: Translator, registry: Registry, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    text = f"{QUESTIONS[0]}\n/search greedy max_length=3\n{QUESTIONS[0]}\n{QUESTIONS[1]}\n"
    status, out, err = chat_piped(monkeypatch, capsys, trained_run, text)
    assert status == 0
    short = with_decoder(translator, registry, "greedy", max_length=3)
    assert out.splitlines() == [*replies(translator, QUESTIONS[:1]), *replies(short, QUESTIONS[:2])]
    assert "search: greedy (max_length=3, " in err


def test_a_seeded_sampler_switch_keeps_the_recipes_length_limit(
    trained_run: Path, translator: Translator, registry: Registry, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    text = "/search sample temperature=2 top_k=5 seed=7\n" + "\n".join(QUESTIONS) + "\n/show\n"
    status, out, err = chat_piped(monkeypatch, capsys, trained_run, text)
    assert status == 0
    # The tiny recipe's decoder has max_length 12: the switch keeps it instead of the sampler's default.
    sampler = with_decoder(translator, registry, "sample", temperature=2.0, top_k=5, seed=7, max_length=12)
    assert out.splitlines() == replies(sampler, QUESTIONS)
    assert err.count("search: sample (temperature=2.0, top_k=5, seed=7, max_length=12,") == 2  # the switch, /show


def test_beam_switch_replies_as_beam_search_does(
    trained_run: Path, translator: Translator, registry: Registry, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    if registry.get("search", "beam") is None:
        pytest.skip("no beam decoder installed")
    status, out, err = chat_piped(monkeypatch, capsys, trained_run, "/beam 2\n" + "\n".join(QUESTIONS) + "\n")
    assert status == 0
    assert out.splitlines() == replies(with_decoder(translator, registry, "beam", size=2, max_length=12), QUESTIONS)
    assert "search: beam (" in err


def test_set_chooses_the_decoder_from_the_start(
    trained_run: Path, translator: Translator, registry: Registry, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    status, out, _ = chat_piped(monkeypatch, capsys, trained_run, QUESTIONS[1] + "\n", "--set", "search.max_length=2")
    assert status == 0
    assert out.splitlines() == replies(with_decoder(translator, registry, "greedy", max_length=2), QUESTIONS[1:2])


def test_bad_switches_are_reported_on_one_line_each_and_the_chat_goes_on(
    trained_run: Path, translator: Translator, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    bad = ["/beam x", "/sample -1", "/sampel 0.5", "/sample 0.5 -3", "/greedy 3", "/search nope", "/search sample t"]
    bad.append("/decoder beam")  # the old name of /search
    status, out, err = chat_piped(monkeypatch, capsys, trained_run, "\n".join([*bad, QUESTIONS[0]]) + "\n")
    assert status == 0
    assert out.splitlines() == replies(translator, QUESTIONS[:1])  # the recipe's greedy decoder still answers
    lines = err.splitlines()
    assert len(lines) == len(bad)
    for switch, line in zip(bad, lines, strict=True):
        assert line.startswith(f"error: {switch}: ")
    assert "/sample -1: search.temperature: expected number >= 0.001 and <= 1000.0, got -1 (too small)" in lines[1]
    assert "unknown switch '/sampel'. Did you mean '/sample'?" in lines[2]
    assert "search.top_k: expected integer >= 0 and <= 1000000, got -3 (too small)" in lines[3]
    assert "expected '/greedy'; /help lists the switches" in lines[4]
    assert "unknown search 'nope'" in lines[5] and "available: " in lines[5]
    assert "expected KEY=VALUE after the strategy's name, got 't'" in lines[6]
    assert "/decoder is now /search" in lines[7]


def test_help_lists_every_switch_on_stderr(trained_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture) -> None:
    status, out, err = chat_piped(monkeypatch, capsys, trained_run, "/help\n")
    assert (status, out) == (0, "")
    for name in chat.SWITCHES:
        assert f"  /{name}" in err


def test_a_missing_run_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture) -> None:
    status, out, err = chat_piped(monkeypatch, capsys, tmp_path / "nothing", "hello\n")
    assert (status, out) == (2, "")
    assert "error:" in err and "nothing" in err


# --- the prompt --------------------------------------------------------------------


def console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=200, soft_wrap=True), buffer


def scripted(*answers: str | type[BaseException]) -> Any:
    """A stand-in for `input`: returns each answer in turn, or raises it when it is an exception class."""
    pending = iter(answers)

    def read(prompt: str) -> str:
        assert prompt == chat.PROMPT
        answer = next(pending)
        if isinstance(answer, type):
            raise answer()
        return answer

    read.pending = pending  # type: ignore[attr-defined]
    return read


@pytest.fixture
def session(trained_run: Path, registry: Registry) -> chat.Chat:
    return chat.Chat.open(trained_run, registry)


@pytest.mark.parametrize(("end", "status"), [("", 0), ("  ", 0), (EOFError, 0), (KeyboardInterrupt, chat.INTERRUPTED)])
def test_the_prompt_ends_on_an_empty_line_eof_or_ctrl_c(
    session: chat.Chat, translator: Translator, end: str | type[BaseException], status: int
) -> None:
    err, _ = console()
    out = io.StringIO()
    read = scripted(QUESTIONS[0], "/search greedy max_length=2", QUESTIONS[1], end, "never read")
    assert chat.prompt_loop(session, read, out, err) == status
    assert next(read.pending) == "never read"
    assert out.getvalue().splitlines()[:2] == [
        *replies(translator, QUESTIONS[:1]),
        translator.translate([QUESTIONS[1]])[0][:2],
    ]


def read_all(fd: int) -> str:
    chunks = []
    while select.select([fd], [], [], 0)[0]:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # Linux: EIO once the other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8").replace("\r\n", "\n")


@contextlib.contextmanager
def on_terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """sys.stdin and sys.stdout on a pseudo-terminal; yields the controlling side, where a test types and reads.

    Used inside the test body: pytest's capture puts its own sys.stdout back when the test call starts."""
    controller, tty = pty.openpty()
    with (
        open(tty, encoding="utf-8", closefd=False) as stdin,
        open(tty, "w", encoding="utf-8", closefd=False) as stdout,
    ):
        monkeypatch.setattr(sys, "stdin", stdin)
        monkeypatch.setattr(sys, "stdout", stdout)
        try:
            yield controller
        finally:
            monkeypatch.undo()
            os.close(tty)
            os.close(controller)


@pytest.mark.parametrize("end", ["\n", "\x04"], ids=["empty line", "ctrl-d"])
def test_on_a_terminal_chat_prompts_answers_and_ends(
    trained_run: Path,
    translator: Translator,
    tmp_path: Path,
    end: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Capture,
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    with on_terminal(monkeypatch) as terminal:
        # The final Ctrl-D ends even a chat that wrongly reads lines until EOF, so a failure cannot hang.
        os.write(terminal, f"{QUESTIONS[0]}\n{end}never read\n\x04".encode())
        assert cli.main(["chat", str(trained_run)]) == 0
        sys.stdout.flush()
        screen = read_all(terminal)
        left = sys.stdin.readline()
    reply = replies(translator, QUESTIONS[:1])[0]
    assert f"{chat.PROMPT}{reply}\n{chat.PROMPT}" in screen  # typed text is echoed by the terminal, not by chat
    assert screen.count(reply) == 1
    assert left == "never read\n"  # chat stopped reading at the end
    assert "/help lists the switches" in capsys.readouterr().err
    assert (tmp_path / "state" / "transduce" / "chat_history").exists()


# --- pieces ------------------------------------------------------------------------


def test_history_lives_under_xdg_state_home_and_ignores_a_relative_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", "/somewhere/state")
    assert chat.history_path() == Path("/somewhere/state/transduce/chat_history")
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")
    monkeypatch.setenv("HOME", "/home/someone")
    assert chat.history_path() == Path("/home/someone/.local/state/transduce/chat_history")


def test_an_unwritable_history_file_is_a_note_not_a_crash(tmp_path: Path) -> None:
    pytest.importorskip("readline")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory", encoding="utf-8")
    err, buffer = console()
    with chat.readline_history(blocker / "transduce" / "chat_history", err):
        pass
    assert buffer.getvalue().startswith(f"note: chat history not saved to {blocker}/transduce/chat_history: ")


def test_search_spec_validates_like_a_recipe_and_keeps_the_recipes_settings(registry: Registry) -> None:
    recipe_search = {"name": "greedy", "max_length": 7, "max_ratio": None, "max_offset": 20}
    spec = chat.search_spec(registry, {"name": "sample", "top_k": 4}, carried=recipe_search)
    assert spec == {"name": "sample", "temperature": 1.0, "top_k": 4, "seed": None, "max_length": 7,
                    "max_ratio": None, "max_offset": 20}  # fmt: skip
    with pytest.raises(
        chat.SwitchError, match=r"search\.temperature: expected number >= 0\.001 and <= 1000\.0, got str 'hot'"
    ):
        chat.search_spec(registry, {"name": "sample", "temperature": "hot"})
