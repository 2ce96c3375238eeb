"""The commands hook: plugins add `transduce` subcommands (transduce_commands -> Command), with clear clashes."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from transduce import cli
from transduce.api import Command, CommandContext
from transduce.commands import collect
from transduce.errors import PluginError
from transduce.registry import discover

HELLO = '''
from transduce.api import Command, hookimpl


class Hello(Command):
    """Greets: proves a third party's command runs with its own arguments and the CLI's context."""

    name = "hello"
    help = "say hello to NAME"

    def add_arguments(self, parser):
        parser.add_argument("who", metavar="NAME")
        parser.add_argument("--times", type=int, default=1)

    def run(self, args, context):
        for _ in range(args.times):
            context.out.print(f"hello {args.who}", markup=False)
        context.err.print(f"components: {len(list(context.registry))}", markup=False)
        return 3 if args.who == "three" else 0


@hookimpl
def transduce_commands():
    return [Hello]
'''


def plugin_module(directory: Path, name: str, source: str) -> Path:
    """Write the module NAME.py into directory/src and return that folder."""
    src = directory / f"src-{name}"
    src.mkdir(parents=True)
    (src / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    return src


def command_plugin(command: str, body: str, arguments: str = "pass") -> str:
    """A plugin module whose one command `command` declares `arguments` and runs `body` (statements on one line)."""
    return f"""
import torch

from transduce.api import Command, DataError, add_threads_option, hookimpl


class C(Command):
    name = {command!r}
    help = "a {command} command"

    def add_arguments(self, parser):
        {arguments}

    def run(self, args, context):
        {body}


@hookimpl
def transduce_commands():
    return [C]
"""


@pytest.fixture
def install(tmp_path: Path, expose_distribution: Callable[..., str]) -> Callable[..., str]:
    """`install(distribution, module_name, source)`: a plugin distribution with one entry point, discoverable."""

    def add(distribution: str, module: str, source: str) -> str:
        src = plugin_module(tmp_path / distribution, module, source)
        return expose_distribution(distribution, "1.0", {module: module}, src)

    return add


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_a_third_party_command_runs_with_its_arguments_and_the_context(install, capsys) -> None:
    install("demo-hello", "hello_plugin", HELLO)
    status, out, err = run_cli(capsys, "hello", "--times", "2", "world")
    assert status == 0 and out == "hello world\nhello world\n"
    assert err.startswith("components: ") and int(err.split()[-1]) > 10
    assert run_cli(capsys, "hello", "three")[0] == 3  # its exit status is the command's


def test_help_lists_a_plugin_command_with_its_distribution(install, capsys) -> None:
    install("demo-hello", "hello_plugin", HELLO)
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "hello" in out and "say hello to NAME [demo-hello]" in out
    assert "score" in out  # the built-in plugin command too


def test_plugins_lists_commands_with_the_providing_distribution(install, capsys) -> None:
    install("demo-hello", "hello_plugin", HELLO)
    status, out, _ = run_cli(capsys, "plugins")
    assert status == 0
    listing = out[out.index("command ─") :]
    assert "hello  from demo-hello 1.0  say hello to NAME" in listing
    assert "score  from transduce 0.1.0" in listing


def test_a_command_named_like_a_built_in_is_refused_and_the_built_in_stays(install, capsys) -> None:
    install("demo-train", "train_plugin", command_plugin("train", "return 0"))
    status, out, _ = run_cli(capsys, "plugins")
    assert "command 'train' is refused: it is a built-in command of transduce" in out
    assert "demo-train 1.0" in out[out.index("broken") :]
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    assert "--resume RUN" in capsys.readouterr().out  # the built-in's parser


def test_two_plugins_claiming_one_command_both_lose_it_with_both_named(install, capsys) -> None:
    install("demo-one", "one_plugin", command_plugin("twice", "return 0"))
    install("demo-two", "two_plugin", command_plugin("twice", "return 0"))
    status, _, err = run_cli(capsys, "twice", "--anything", "goes")
    assert status == 2
    assert "error: command 'twice' is provided twice: by demo-" in err
    assert "demo-one 1.0 (entry point 'one_plugin')" in err and "demo-two 1.0 (entry point 'two_plugin')" in err
    assert "Traceback" not in err


def test_collect_strict_raises_the_clash_as_a_plugin_error(install) -> None:
    install("demo-one", "one_plugin", command_plugin("twice", "return 0"))
    install("demo-two", "two_plugin", command_plugin("twice", "return 0"))
    with pytest.raises(PluginError, match="command 'twice' is provided twice"):
        collect(discover(), cli.COMMANDS, strict=True)


def test_a_transduce_error_from_a_plugin_command_is_printed_like_a_built_ins(install, capsys) -> None:
    install("demo-bad", "bad_plugin", command_plugin("bad", "raise DataError('in.txt:3: not a pair')"))
    status, _, err = run_cli(capsys, "bad")
    assert status == 2 and err.strip() == "error: in.txt:3: not a pair"


def test_any_other_exception_names_the_plugin_without_a_traceback_unless_debug(install, capsys) -> None:
    install("demo-bug", "bug_plugin", command_plugin("bug", "return 1 / 0"))
    status, _, err = run_cli(capsys, "bug")
    assert status == 1 and "Traceback" not in err
    assert "command 'bug' of plugin demo-bug 1.0 (entry point 'bug_plugin') failed: ZeroDivisionError" in err
    assert "--debug" in err
    status, _, err = run_cli(capsys, "--debug", "bug")
    assert status == 1 and "Traceback" in err and "ZeroDivisionError" in err


def test_a_run_that_returns_no_status_exits_0_and_a_wrong_one_is_named(install, capsys) -> None:
    install("demo-none", "none_plugin", command_plugin("quiet", "return None"))
    install("demo-text", "text_plugin", command_plugin("text", "return 'ok'"))
    assert run_cli(capsys, "quiet")[0] == 0
    status, _, err = run_cli(capsys, "text")
    assert status == 2 and "command 'text' returned 'ok'; run must return an exit status (int)" in err


@pytest.mark.parametrize(
    ("returned", "problem"),
    [
        ("[object()]", "expected a subclass or instance of transduce.api.Command"),
        ("'score'", "it must return a list"),
        ("[type('N', (Command,), {'name': 'Bad Name'})]", "name must be a command name"),
        ("[type('N', (Command,), {'name': 'ok', 'help': 3})]", "help must be a string"),
    ],
)
def test_a_malformed_hook_result_is_listed_as_broken_and_the_rest_works(install, capsys, returned, problem) -> None:
    install(
        "demo-odd",
        "odd_plugin",
        f"from transduce.api import Command, hookimpl\n\n@hookimpl\ndef transduce_commands():\n    return {returned}\n",
    )
    install("demo-hello", "hello_plugin", HELLO)
    status, out, _ = run_cli(capsys, "plugins")
    assert status == 0 and problem in out[out.index("broken") :]
    assert run_cli(capsys, "hello", "you")[1] == "hello you\n"


def test_a_command_whose_add_arguments_fails_is_left_out_and_reported(install, capsys) -> None:
    source = HELLO.replace('parser.add_argument("--times", type=int, default=1)', "raise RuntimeError('oops')")
    install("demo-hello", "hello_plugin", source)
    status, out, _ = run_cli(capsys, "plugins")
    assert "command 'hello' failed in add_arguments: RuntimeError: oops" in out
    with pytest.raises(SystemExit) as stop:
        cli.main(["hello", "x"])
    assert stop.value.code == 2  # argparse: no such command


def test_a_hook_that_raises_is_reported_and_other_commands_still_run(install, capsys) -> None:
    install(
        "demo-raise",
        "raise_plugin",
        "from transduce.api import hookimpl\n\n@hookimpl\ndef transduce_commands():\n    raise KeyError('x')\n",
    )
    status, out, _ = run_cli(capsys, "plugins")
    assert "raised in transduce_commands: KeyError" in out
    assert run_cli(capsys, "plugins")[0] == 0


def test_the_context_loads_runs_with_the_clis_registry(trained_run: Path) -> None:
    registry = discover()
    context = CommandContext(registry, out=None, err=None)  # type: ignore[arg-type]
    model = context.load(trained_run, device="cpu")
    assert model.translate("april 5, 2001").source == "april 5, 2001"


def test_the_base_command_does_nothing_until_run_is_written() -> None:
    class Bare(Command):
        name = "bare"

    with pytest.raises(NotImplementedError):
        Bare().run(None, None)  # type: ignore[arg-type]


def test_the_command_example_of_the_plugin_guide_runs(install, trained_run: Path, capsys) -> None:
    guide = (Path(__file__).resolve().parent.parent / "docs" / "plugins.md").read_text(encoding="utf-8")
    (example,) = [b for b in re.findall(r"^```python\n(.*?)^```$", guide, flags=re.M | re.S) if "(Command)" in b]
    install("demo-guide", "guide_plugin", example)
    status, out, _ = run_cli(capsys, "hello", str(trained_run), "--set", "search.max_length=5")
    assert status == 0 and 0 < len(out.strip()) <= 5


def test_threads_of_a_command_whose_run_argument_is_a_list_are_applied(install, trained_run: Path, capsys) -> None:
    arguments = 'parser.add_argument("run", nargs="+"); add_threads_option(parser)'
    body = 'context.out.print(f"{len(args.run)} runs, {torch.get_num_threads()} threads", markup=False)'
    install("demo-many", "many_plugin", command_plugin("many", body, arguments))
    assert run_cli(capsys, "many", str(trained_run), str(trained_run), "--threads", "2")[1] == "2 runs, 2 threads\n"
