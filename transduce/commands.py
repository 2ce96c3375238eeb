"""Commands plugins add to the `transduce` command line, through the `transduce_commands` hook.

A plugin returns `Command` subclasses (made with no arguments) or instances; the CLI gives each its own
subcommand parser beside the built-in ones. The rules are those of components: a plugin's command whose
name a built-in command has is refused (the built-in keeps it), and two plugins claiming one name both
lose it, since which would win depends on installation order; running that name then fails with a
PluginError naming both distributions. Each problem is recorded in `Registry.broken`, so `transduce
plugins` lists it and one broken plugin never takes the command line down.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Console

from transduce.errors import PluginError
from transduce.recipe import TRAIN_PARAMS
from transduce.registry import Provider, Registry
from transduce.usage import Model, load

#: A command's name: what follows `transduce` (lowercase letters, digits and '-', starting with a letter).
NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")


class Command:
    """A `transduce` subcommand a plugin provides.

    Set `name` (the word after `transduce`) and `help` (one line for `transduce --help`), declare options in
    `add_arguments`, and do the work in `run`, which returns the exit status. Raise a `TransduceError` for a
    mistake of the user's: the CLI prints its message without a traceback (exit status 2), as for built-ins.
    """

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare the command's arguments on its own parser (options and positionals may come in any order)."""

    def run(self, args: argparse.Namespace, context: CommandContext) -> int:
        """Do the command's work with the parsed `args`; return the exit status (0: success)."""
        raise NotImplementedError


@dataclass(frozen=True)
class CommandContext:
    """What a running command gets from the CLI: the installed plugins and the two consoles.

    out: stdout (results); err: stderr (progress, notes, summaries). debug: `--debug` was given.
    """

    registry: Registry
    out: Console
    err: Console
    debug: bool = False

    def load(self, run: str | Path, **options: Any) -> Model:
        """`transduce.load(run, **options)` with this CLI's registry (plugins are not discovered again)."""
        return load(run, registry=self.registry, **options)


@dataclass(frozen=True)
class CommandInfo:
    """A plugin's command and the plugin it comes from."""

    command: Command
    provider: Provider

    @property
    def name(self) -> str:
        return self.command.name


@dataclass
class CommandTable:
    """The plugins' usable commands by name, and the names two plugins claim (name -> the error to raise)."""

    commands: dict[str, CommandInfo] = field(default_factory=dict)
    clashes: dict[str, str] = field(default_factory=dict)


def collect(registry: Registry, builtin: Iterable[str], *, strict: bool = False) -> CommandTable:
    """Call every plugin's `transduce_commands` and check what comes back against the `builtin` names.

    Problems are recorded in `registry.broken` (the command is left out); `strict=True` raises the first
    as a PluginError instead, for plugin authors' tests.
    """
    taken, table, claims = set(builtin), CommandTable(), {}
    for impl in registry.plugins.hook.transduce_commands.get_hookimpls():
        provider = registry.providers[impl.plugin_name]
        for command in _returned(impl.function, provider, registry, strict):
            if command.name in taken:
                _problem(
                    registry,
                    provider,
                    f"command {command.name!r} is refused: it is a built-in command of transduce (`transduce "
                    f"{command.name}`); rename the plugin's command",
                    strict,
                )
                continue
            claims.setdefault(command.name, []).append(CommandInfo(command, provider))
    for name, infos in claims.items():
        if len(infos) == 1:
            table.commands[name] = infos[0]
            continue
        message = _clash_message(name, [info.provider for info in infos])
        table.clashes[name] = message
        for info in infos:
            _problem(registry, info.provider, message, strict)
    return table


def _returned(hook: Any, provider: Provider, registry: Registry, strict: bool) -> list[Command]:
    """The valid commands one plugin's hook returns; each problem recorded (or raised when strict)."""
    try:
        returned = hook()
    except Exception as exc:
        _problem(registry, provider, f"raised in transduce_commands: {type(exc).__name__}: {exc}", strict, exc)
        return []
    if returned is None:
        return []
    if not isinstance(returned, (list, tuple)):
        _problem(registry, provider, f"returned {returned!r} from transduce_commands; it must return a list", strict)
        return []
    commands = []
    for item in returned:
        command, problem = _command(item)
        if problem is None:
            commands.append(command)
        else:
            _problem(registry, provider, problem, strict)
    return commands


def _command(item: object) -> tuple[Any, str | None]:
    """(the Command, None), or (None, why `item` is not a usable command)."""
    if isinstance(item, type) and issubclass(item, Command):
        try:
            item = item()
        except Exception as exc:
            return None, f"command class {item.__qualname__} cannot be made without arguments: {exc}"
    if not isinstance(item, Command):
        return (
            None,
            f"returned {item!r} from transduce_commands; expected a subclass or instance of transduce.api.Command",
        )
    if not isinstance(item.name, str) or not NAME.fullmatch(item.name):
        return None, (
            f"{type(item).__qualname__}.name must be a command name (lowercase letters, digits and '-', starting "
            f"with a letter, at most 40 characters), got {item.name!r}"
        )
    if not isinstance(item.help, str):
        return None, f"{type(item).__qualname__}.help must be a string, got {item.help!r}"
    return item, None


def _problem(
    registry: Registry, provider: Provider, problem: str, strict: bool, cause: BaseException | None = None
) -> None:
    if strict:
        raise PluginError(f"plugin {provider}: {problem}") from cause
    registry.record(provider, problem)


def _clash_message(name: str, providers: list[Provider]) -> str:
    listing = " and ".join(str(p) for p in providers)
    return (
        f"command {name!r} is provided twice: by {listing}; neither may be used until all but one of these "
        "distributions are uninstalled (or a plugin renames its command)"
    )


# --- options shared by the commands that decode --------------------------------

#: The recipe key `--threads` overrides for one command: the option takes its bounds.
THREADS = next(param for param in TRAIN_PARAMS if param.name == "threads")

SET_HELP = "override a recipe key, e.g. --set train.epochs=3 --set data.path=FILE (repeatable; VALUE is YAML)"


def add_set_option(parser: argparse.ArgumentParser, help_text: str = SET_HELP) -> None:
    """`--set KEY=VALUE` (repeatable) into `args.set`, as every built-in command that reads a recipe takes it."""
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=help_text)


def add_threads_option(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`--threads N` for a command that decodes; the CLI applies it before `run` (with the run's train.threads
    as the default when the command has a `run` argument)."""
    parser.add_argument(
        "--threads",
        type=thread_count,
        metavar="N",
        help=f"torch CPU threads ({THREADS.min:g}-{THREADS.max:g}; default: the run's train.threads, else torch's "
        "default). On a machine other jobs use, 1 is often much faster",
    )
    return parser


def add_output_option(parser: argparse.ArgumentParser, noun: str) -> None:
    """`--output FILE` for a command that writes a line per input line through textio.write_streamed."""
    parser.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help=f"write the {noun} to FILE (default, or '-': stdout); a file is written beside its place and moved "
        "there when complete, and never over an input",
    )


def thread_count(text: str) -> int:
    """`--threads`'s value: a whole number within train.threads' bounds."""
    if not re.fullmatch(r"\s*\d+\s*", text) or not THREADS.min <= int(text) <= THREADS.max:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of threads from {THREADS.min:g} to {THREADS.max:g}, got {text!r}"
        )
    return int(text)
