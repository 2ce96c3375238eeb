"""`transduce chat RUN`: talk to a trained run, switching the search strategy between messages.

On a terminal it is a prompt with arrow-key history (Python's `readline`, when
present); an empty line, Ctrl-D or Ctrl-C ends it. Otherwise every stdin line
gets one reply line on stdout, flushed at once, so another program can hold a
conversation through a pipe. Lines starting with `/` are switches (`/beam 5`,
`/sample 0.8 20`, ...): they apply to the messages that follow and never write
to stdout. A switch is validated against the strategy's declared parameters, as
a recipe's `search` section is, and a bad one is reported without ending the chat.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape

from transduce._decoding.translator import Translator
from transduce._model import assembly as pipeline
from transduce._plugins.params import did_you_mean
from transduce._plugins.registry import Registry
from transduce._recipe.recipe import read_value, resolve_component
from transduce._recipe.settings import Settings
from transduce._runs.opening import read_run_recipe
from transduce._runs.rundir import RunDir
from transduce.errors import RecipeError, TransduceError

PROMPT = "> "
HISTORY_LENGTH = 1000
#: Exit status when Ctrl-C ends the prompt (the shell's convention for SIGINT, as elsewhere in the CLI).
INTERRUPTED = 130

#: switch -> (arguments, what it does); `/help` prints this table.
SWITCHES: dict[str, tuple[str, str]] = {
    "greedy": ("", "decode greedily: the most probable token at each step"),
    "beam": ("N", "beam search keeping the N best hypotheses"),
    "sample": ("T [K]", "sample at temperature T, among the K most probable tokens (without K: all)"),
    "search": ("NAME [KEY=VALUE ...]", "any installed search strategy with its parameters, e.g. /search beam size=4"),
    "show": ("", "print the current search strategy and its settings"),
    "help": ("", "list the switches"),
}


class SwitchError(TransduceError):
    """A chat switch line that cannot be applied; the chat reports it and goes on."""


def add_chat_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `chat` subcommand to the CLI's subparsers."""
    chat = commands.add_parser(
        "chat",
        help="talk to a trained run: a prompt on a terminal, else one reply per stdin line",
        description="Talk to a trained run. On a terminal: a prompt with arrow-key history; an empty line or "
        "Ctrl-D ends (exit 0), Ctrl-C too (exit 130). Otherwise every stdin line gets one reply line on stdout "
        "and blank lines are skipped. Lines starting with '/' switch the search for the lines after them: "
        + ", ".join(f"/{name} {args}".rstrip() for name, (args, _) in SWITCHES.items())
        + " (see docs/chat.md).",
    )
    chat.add_argument("run", type=Path, help="a run directory written by `transduce train`")
    chat.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override the run's recipe, e.g. --set search.name=beam --set search.size=4",
    )
    return chat


# --- the conversation ----------------------------------------------------------


@dataclass
class Chat:
    """A translator whose search strategy the user switches; `recipe_search` is where each switch starts."""

    translator: Translator
    registry: Registry
    recipe_search: dict[str, Any]
    search: dict[str, Any]

    @classmethod
    def open(
        cls, path: Path, registry: Registry, overrides: Iterable[str] = (), recipe: dict[str, Any] | None = None
    ) -> Chat:
        """Load the run at `path`, its recipe changed by `overrides` (`--set`), unless the caller already read it
        and passes `recipe`."""
        run = RunDir.open(path)
        if recipe is None:
            recipe = read_run_recipe(run, registry, overrides)
        translator = Translator.from_run(run, registry, recipe=recipe)
        search = Settings.of(recipe).search
        return cls(translator, registry, dict(search), dict(search))

    def reply(self, text: str) -> str:
        return self.translator.translate([text])[0]

    def switch(self, line: str) -> str:
        """Apply the switch `line` (starting with '/'); return what to tell the user, or raise SwitchError."""
        line = line.strip()
        try:
            return self._switch(line)
        except SwitchError as exc:
            raise SwitchError(f"{line}: {exc}") from None

    def _switch(self, line: str) -> str:
        word, *args = line[1:].split() or [""]
        if word in ("help", "?") and not args:
            return help_text()
        if word == "show" and not args:
            return f"search: {describe(self.search)}"
        spec = search_spec(self.registry, switch_spec(word, args), carried=self.recipe_search)
        try:
            strategy = pipeline.search(self.registry, {"search": spec})
            # The memory budget may refuse it too; either way the previous strategy stays.
            translator = self.translator.with_decoding(strategy)
        except RecipeError as exc:  # the component refused a value its declared params allow
            raise SwitchError(exc.detail) from None
        self.translator = translator
        self.search = spec
        return f"search: {describe(spec)}"


def switch_spec(word: str, args: list[str]) -> dict[str, Any]:
    """The raw search spec a switch asks for, before validation: `beam ['5']` -> {name: beam, size: 5}."""
    usage = f"/{word} {SWITCHES[word][0]}".rstrip() if word in SWITCHES else ""
    if word == "greedy" and not args:
        return {"name": "greedy"}
    if word == "beam" and len(args) == 1:
        return {"name": "beam", "size": read_value(args[0])}
    if word == "sample" and len(args) in (1, 2):
        spec = {"name": "sample", "temperature": read_value(args[0])}
        if len(args) == 2:
            spec["top_k"] = read_value(args[1])
        return spec
    if word == "search" and args:
        return {"name": args[0], **_assignments(args[1:])}
    if word == "decoder":  # its name before the decoder network took the word
        raise SwitchError("/decoder is now /search (it picks the search strategy), e.g. /search beam size=4")
    if usage:
        raise SwitchError(f"expected '{usage}'; /help lists the switches")
    names = [f"/{name}" for name in SWITCHES]
    raise SwitchError(f"unknown switch '/{word}'{did_you_mean('/' + word, names)} (switches: {', '.join(names)})")


def _assignments(args: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise SwitchError(f"expected KEY=VALUE after the strategy's name, got {arg!r} (e.g. /search beam size=4)")
        params[key] = read_value(value)
    return params


def search_spec(registry: Registry, raw: Mapping[str, Any], carried: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Validate `raw` ({name, params...}) as a recipe's `search` section is; return it with defaults filled in.

    Settings in `carried` (the recipe's search strategy, e.g. `max_length`) that the named one declares are
    kept unless `raw` sets them, so switching strategy does not silently change the length limit.
    """
    try:
        return resolve_component(registry, "search", raw, inherit=carried)
    except RecipeError as exc:
        raise SwitchError(str(exc)) from None


def describe(spec: Mapping[str, Any]) -> str:
    """`beam (size=5, max_length=40)`."""
    settings = ", ".join(f"{key}={value}" for key, value in spec.items() if key != "name")
    return f"{spec['name']} ({settings})" if settings else str(spec["name"])


def help_text() -> str:
    width = max(len(f"/{name} {args}") for name, (args, _) in SWITCHES.items())
    rows = [f"  {f'/{name} {args}'.ljust(width)}  {what}" for name, (args, what) in SWITCHES.items()]
    return "\n".join(
        [
            "switches (each applies to the messages after it, starting from the recipe's search settings):",
            *rows,
            "a message that starts with '/' is sent by doubling it: //text",
        ]
    )


# --- the two modes -------------------------------------------------------------


def _message(chat: Chat, line: str, err: Console) -> str | None:
    """The reply to one input line, or None when it was a switch (its result shown on `err`)."""
    if line.startswith("/") and not line.startswith("//"):
        try:
            err.print(chat.switch(line.strip()), markup=False, highlight=False)
        except SwitchError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return None
    cut_before = chat.translator.truncated
    try:
        reply = chat.reply(line[1:] if line.startswith("//") else line)
    except TransduceError as exc:  # the chat goes on; an empty reply keeps one reply line per message
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return ""
    note = chat.translator.truncation_note(cut_before)
    if note:
        err.print(f"note: {note}", markup=False, highlight=False)
    return reply


def answer_lines(chat: Chat, lines: Iterable[str], out: TextIO, err: Console) -> None:
    """One reply line on `out` per message line, in order and flushed at once; blank lines are skipped."""
    for line in lines:
        text = line.rstrip("\r\n")
        if not text.strip():
            continue
        reply = _message(chat, text, err)
        if reply is not None:
            out.write(reply + "\n")
            out.flush()


def prompt_loop(chat: Chat, read: Callable[[str], str], out: TextIO, err: Console) -> int:
    """Ask with `read(PROMPT)` until an empty line or EOF (exit status 0) or Ctrl-C (INTERRUPTED)."""
    try:
        while True:
            try:
                text = read(PROMPT)
            except EOFError:
                out.write("\n")
                return 0
            if not text.strip():
                return 0
            reply = _message(chat, text, err)
            if reply is not None:
                out.write(reply + "\n")
                out.flush()
    except KeyboardInterrupt:
        out.write("\n")
        return INTERRUPTED


def history_path() -> Path | None:
    """$XDG_STATE_HOME/transduce/chat_history (default ~/.local/state/...); None when there is no home."""
    state = os.environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(state):  # the XDG spec says to ignore a relative path
        try:
            state = str(Path.home() / ".local" / "state")
        except RuntimeError:
            return None
    return Path(state) / "transduce" / "chat_history"


@contextlib.contextmanager
def readline_history(path: Path | None, err: Console) -> Iterator[None]:
    """Arrow-key history through `readline`, read from and saved to `path`; without readline, nothing."""
    try:
        import readline
    except ImportError:  # e.g. Windows without pyreadline: the prompt still works, without history
        yield
        return
    readline.set_history_length(HISTORY_LENGTH)
    if path is not None:
        with contextlib.suppress(OSError):
            readline.read_history_file(path)
    try:
        yield
    finally:
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                readline.write_history_file(path)
            except OSError as exc:
                note = f"note: chat history not saved to {path}: {exc.strerror or exc}"
                err.print(note, markup=False, highlight=False)


def converse(chat: Chat, run: Path, err: Console) -> int:
    """`transduce chat RUN` once the run is open: a prompt on a terminal, else one reply per stdin line."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        try:
            answer_lines(chat, sys.stdin, sys.stdout, err)
        except BrokenPipeError:  # the reader went away (e.g. `| head -1`): stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    err.print(
        f"Chatting with {run} (search: {describe(chat.search)}). "
        "Type a message; /help lists the switches; an empty line or Ctrl-D ends.",
        markup=False,
        highlight=False,
    )
    with readline_history(history_path(), err):
        return prompt_loop(chat, input, sys.stdout, err)
