"""The `transduce` command: plugins, check, train, evaluate, attention, translate, new-plugin.

Errors of our own types are printed as one clear message (no traceback unless
`--debug`), with exit status 2; an interrupted command exits with 130 (SIGINT) or,
for training stopped by SIGTERM, 143.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import re
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from transduce._cli.commands import (
    SET_HELP,
    CommandContext,
    CommandInfo,
    CommandTable,
    add_output_option,
    add_set_option,
    add_threads_option,
)
from transduce._cli.commands import collect as collect_commands
from transduce._cli.scaffold import create_plugin
from transduce._data.textio import count_lines, read_lines, refuse_same_file, write_streamed
from transduce._decoding.chat import Chat, add_chat_parser, converse
from transduce._decoding.translator import Translation, Translator
from transduce._model import assembly as pipeline
from transduce._plugins.contracts import SPLITS, DataSource
from transduce._plugins.params import Param
from transduce._plugins.registry import Registry, discover
from transduce._recipe.recipe import dump_recipe, load_recipe
from transduce._recipe.settings import Settings
from transduce._reports.evaluation import Analysis, evaluate, strategies, strategy_label
from transduce._reports.heatmap import Heatmap, render_terminal
from transduce._reports.plots import PlotsUnavailable, save_heatmap
from transduce._reports.report import Report
from transduce._reports.report_files import write_report_files
from transduce._runs.opening import read_run_recipe
from transduce._runs.provenance import ACCEPT_CHANGED_DATA, check_data_files, components_used
from transduce._runs.rundir import RunDir
from transduce._training import distributed
from transduce._training.trainer import Started, Trainer, check_resumable, start_run
from transduce._version import __version__
from transduce.errors import Interrupted, PluginError, RecipeError, RunError, TransduceError
from transduce.testing import conformance

#: Lines `translate --input` translates, writes and flushes at a time (see _translate_lines).
TRANSLATE_CHUNK = 1024
#: Two caches keep compiled CPU kernels, with their buffers, per input shape: oneDNN's
#: (ONEDNN_PRIMITIVE_CACHE_CAPACITY) and PyTorch's ideep layer above it (LRU_CACHE_CAPACITY), 1,024 each by default.
#: Training meets a new shape with nearly every batch (up to ~13 MB each for an LSTM: they hold buffers for every
#: position), so without caps memory grows all run long: bfloat16 training on Multi30K peaked at 1,787 MiB, 645 MiB
#: with both caps at 16, at the same speed. The caps by train.precision (int8 trains in float32), measured on dates
#: (2 epochs, 2 threads): float32 16 kept 519 MiB at 35.9k target tokens/s (1,024: 842 MiB at 33.9k); bfloat16
#: 48 oneDNN and 8 ideep kernels kept 514 MiB at 44-45k (16 and 16: 465 MiB at 33k; 1,024 and 16: 800 MiB at 65k).
#: Decoding commands keep 64 of each. A user's own variables win.
KERNEL_CACHE_VARIABLES = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")
TRAIN_KERNEL_CACHES = {"fp32": ("16", "16"), "bf16": ("48", "8"), "int8": ("16", "16")}
KERNEL_CACHES_DEFAULT = ("64", "64")

#: `translate --format` values.
OUTPUT_FORMATS = ("plain", "nbest")


class _AnyOrder(argparse.ArgumentParser):
    """A command's parser that takes its options and positional arguments in any order
    (`translate RUN --set K=V TEXT`): argparse's intermixed parsing, which a parser with subcommands (the
    top level) cannot use itself."""

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201 - argparse's signature
        if self._intermixing:  # parse_known_intermixed_args calls back here for its two passes
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def _add_accept_changed_data(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(ACCEPT_CHANGED_DATA, action="store_true", help=help_text)


#: Where a plugin command's subparser keeps its CommandInfo, and a clashed name its error, in the parsed args.
PLUGIN_COMMAND, CLASHED_COMMAND = "_transduce_plugin_command", "_transduce_clashed_command"


def _parser(table: CommandTable | None = None, registry: Registry | None = None) -> argparse.ArgumentParser:
    """The command line: the built-in commands, then the plugins' (`table`; a problem adding one is recorded
    in `registry`)."""
    parser = argparse.ArgumentParser(prog="transduce", description="Sequence transduction with plugins.")
    parser.add_argument("--version", action="version", version=f"transduce {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_AnyOrder)

    plugins = commands.add_parser("plugins", help="list every installed component with its parameters")
    plugins.add_argument(
        "--check",
        action="store_true",
        help="run the conformance kit (transduce.testing) on every installed component; exit 1 if one fails",
    )

    check = commands.add_parser("check", help="validate a recipe and print it resolved, without training")
    check.add_argument("recipe", type=Path)
    add_set_option(check, SET_HELP)

    train = commands.add_parser("train", help="train a recipe into a run directory")
    train.add_argument("recipe", type=Path, nargs="?", help="recipe file (optional with --resume)")
    train.add_argument("--run-dir", type=Path, help="where to write the run (default: runs/RECIPE-TIMESTAMP)")
    train.add_argument("--resume", type=Path, metavar="RUN", help="continue the run in directory RUN")
    add_set_option(train, SET_HELP)
    _add_accept_changed_data(train, "continue a run although a data file changed since its splits were made")

    ev = commands.add_parser("evaluate", help="score a trained run on a split or a data file")
    ev.add_argument("run", type=Path)
    ev.add_argument("--data", type=Path, help="score FILE, read with the run's data source format")
    ev.add_argument("--split", choices=("train", "valid", "test"), help="split to score (default: the recipe's)")
    ev.add_argument("--json", action="store_true", help="print the metrics as one JSON object on stdout")
    ev.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="STRATEGY",
        help="also score and time another search strategy, e.g. --compare beam:size=5 "
        "--compare sample:temperature=0.8,seed=1 (repeatable; settings the recipe's search shares are kept)",
    )
    add_set_option(ev, "override the run's recipe for this evaluation, e.g. --set search.max_length=50")
    add_threads_option(ev)
    _add_accept_changed_data(ev, "score a split although a data file changed since training (it is split anew)")

    att = commands.add_parser("attention", help="show as a heat map which source tokens each output token attended to")
    att.add_argument("run", type=Path)
    att.add_argument("text", help="the input to translate")
    att.add_argument(
        "--output", type=Path, metavar="FILE.png", help="where to save the PNG (default: RUN/attention/TEXT.png)"
    )
    add_set_option(att, "override the run's recipe, e.g. --set search.max_length=50")
    add_threads_option(att)

    tr = commands.add_parser("translate", help="translate TEXT, a file, stdin lines, or interactively")
    tr.add_argument("run", type=Path)
    tr.add_argument("text", nargs="?", help="one input; without it, read --input or stdin (a prompt on a terminal)")
    tr.add_argument("--input", type=Path, metavar="FILE", help="translate every line of FILE (UTF-8; '-': stdin)")
    add_output_option(tr, "translations")
    tr.add_argument("--batch-size", type=int, default=256, help="sentences per decoding batch (default: 256)")
    tr.add_argument(
        "--format",
        choices=OUTPUT_FORMATS,
        default="plain",
        help="plain: one translation per input line (default); nbest: one line per candidate, "
        "LINE<TAB>RANK<TAB>SCORE<TAB>TEXT (LINE and RANK from 1, SCORE the log-probability), "
        "e.g. with --set search.name=beam --set search.n_best=3",
    )
    add_set_option(tr, "override the run's recipe, e.g. --set search.max_length=50")
    add_threads_option(tr)

    add_threads_option(add_chat_parser(commands))

    new = commands.add_parser("new-plugin", help="create a plugin package skeleton NAME/ to start from")
    new.add_argument("name", help="distribution name, e.g. transduce-cosine (letters, digits, '-', '_', '.')")
    new.add_argument("--dir", type=Path, default=Path("."), help="where to create NAME/ (default: here)")
    if table is not None:
        plugins.set_defaults(command_table=table)
        _add_plugin_commands(commands, table, registry)
    return parser


def _add_plugin_commands(commands: argparse._SubParsersAction, table: CommandTable, registry: Registry | None) -> None:
    """A subparser per plugin command (one whose add_arguments fails is left out and recorded as broken), and
    one per name two plugins claim, which fails with their PluginError when used."""
    for name, info in sorted(table.commands.items()):
        try:
            info.command.add_arguments(_AnyOrder(prog=f"transduce {name}"))  # a trial: a failure adds nothing
        except Exception as exc:
            if registry is not None:
                registry.record(info.provider, f"command {name!r} failed in add_arguments: {type(exc).__name__}: {exc}")
            continue
        where = "" if info.provider.builtin else f" [{info.provider.distribution}]"
        sub = commands.add_parser(name, help=info.command.help + where, description=info.command.help)
        info.command.add_arguments(sub)
        sub.set_defaults(**{PLUGIN_COMMAND: info})
    for name, message in sorted(table.clashes.items()):
        sub = commands.add_parser(name, help="unusable: two plugins provide it (see `transduce plugins`)")
        sub.set_defaults(**{CLASHED_COMMAND: message})


def main(argv: Sequence[str] | None = None) -> int:
    registry = discover()
    parser = _parser(collect_commands(registry, COMMANDS), registry)
    args, unknown = parser.parse_known_args(argv)
    out, err = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
    try:
        if args.command != "train":  # which sets them by the recipe's precision
            cap_kernel_caches(KERNEL_CACHES_DEFAULT)
        clash = getattr(args, CLASHED_COMMAND, None)
        if clash is not None:
            raise PluginError(clash)
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        plugin = getattr(args, PLUGIN_COMMAND, None)
        if plugin is not None:
            if hasattr(args, "threads"):
                _use_threads(args, registry)
            return _run_plugin_command(plugin, args, CommandContext(registry, out, err, args.debug))
        return COMMANDS[args.command](args, registry, out, err)
    except Interrupted as exc:  # training stopped on a signal: 130 for SIGINT, 143 for SIGTERM
        err.print(f"\n[bold yellow]interrupted:[/] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True)
        return exc.status
    except TransduceError as exc:
        if args.debug:
            traceback.print_exc()
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print("\ninterrupted.")
        return 130


def _run_plugin_command(info: CommandInfo, args: argparse.Namespace, context: CommandContext) -> int:
    """A plugin command's `run`: its TransduceError is reported as a built-in's is (by `main`); any other
    exception names the plugin whose command failed (the traceback with --debug) and exits with 1."""
    try:
        status = info.command.run(args, context)
    except (TransduceError, KeyboardInterrupt):
        raise
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        hint = "" if args.debug else " (run `transduce --debug ...` for the traceback)"
        context.err.print(
            f"[bold red]error:[/] command {escape(info.name)!r} of plugin {escape(str(info.provider))} failed: "
            f"{escape(type(exc).__name__)}: {escape(str(exc))}{hint}",
            highlight=False,
        )
        return 1
    if status is None:
        return 0
    if isinstance(status, bool) or not isinstance(status, int):
        raise PluginError(
            f"plugin {info.provider}: command {info.name!r} returned {status!r}; run must return an exit status (int)"
        )
    return status


def _use_threads(args: argparse.Namespace, registry: Registry) -> None:
    """torch's CPU threads for a plugin command, before it builds a model: `--threads`, else the run's
    train.threads (with `--set`) when the command has a run, else torch's default."""
    threads, run = args.threads, getattr(args, "run", None)
    if threads is None and isinstance(run, (str, Path)):  # a plugin command's `run` may be something else
        recipe = read_run_recipe(RunDir.open(Path(run)), registry, getattr(args, "set", []))
        threads = Settings.of(recipe).train.threads
    if threads is not None:
        torch.set_num_threads(threads)


def _decoding_run(args: argparse.Namespace, registry: Registry) -> tuple[RunDir, dict[str, Any]]:
    """The run a decoding command uses and its recipe with `--set`, read once; torch's CPU threads are set
    before any model is built: `--threads`, else the run's train.threads, else torch's default."""
    run = RunDir.open(args.run)
    recipe = read_run_recipe(run, registry, args.set)
    threads = args.threads if args.threads is not None else Settings.of(recipe).train.threads
    if threads is not None:
        torch.set_num_threads(threads)
    return run, recipe


def cap_kernel_caches(kernels: tuple[str, str]) -> None:
    """Set KERNEL_CACHE_VARIABLES (oneDNN's and ideep's kernel caches) where the user has not (or left one
    empty). Both are read when the first kernel is made: call it before a command runs a model. A value that is
    not a whole number is a RunError: PyTorch's ideep crashes on one (a segmentation fault, even when empty)."""
    for variable, capacity in zip(KERNEL_CACHE_VARIABLES, kernels, strict=True):
        mine = os.environ.get(variable, "").strip()
        if not mine:
            os.environ[variable] = capacity
        elif not mine.isdigit():
            raise RunError(
                f"the environment variable {variable} must be a whole number of kernels (0 or more), got {mine!r}; "
                f"unset it to keep transduce's {capacity}"
            )


# --- commands ------------------------------------------------------------------


def cmd_plugins(args: argparse.Namespace, registry: Registry, out: Console, err: Console) -> int:
    if args.check:
        return _check_plugins(registry, out)
    family = None
    for info in registry:
        if info.family != family:
            family = info.family
            out.rule(f"[bold]{family}[/]", align="left")
        provider = escape(f"{info.provider.distribution} {info.provider.version}")
        out.print(f"[bold cyan]{info.name}[/]  [dim]from {provider}[/]  {escape(info.description)}")
        for param in info.params:
            out.print(_describe_param(param))
    _list_commands(getattr(args, "command_table", None), out)
    if registry.broken:
        out.rule("[bold red]broken[/]", align="left")
        for broken in registry.broken:
            provider = escape(f"{broken.provider.distribution} {broken.provider.version}")
            entry = escape(broken.provider.entry_point)
            out.print(f"[bold red]{entry}[/]  [dim]from {provider}[/]  {escape(broken.problem)}")
    return 0


def _list_commands(table: CommandTable | None, out: Console) -> None:
    """The commands plugins add, with the distribution providing each."""
    if table is None or not table.commands:
        return
    out.rule("[bold]command[/]", align="left")
    for name, info in sorted(table.commands.items()):
        provider = escape(f"{info.provider.distribution} {info.provider.version}")
        out.print(f"[bold cyan]{escape(name)}[/]  [dim]from {provider}[/]  {escape(info.command.help)}")


def _check_plugins(registry: Registry, out: Console) -> int:
    """Run the conformance kit on every component; a table of results, exit status 1 if one fails."""
    table = Table(show_lines=True)
    for column in ("family", "name", "distribution", "result"):
        table.add_column(column, overflow="fold")
    failed = 0
    for info in registry:
        report = conformance(info.cls)
        failed += not report.ok
        if report.ok:
            result = "[yellow]ok, partly checked[/]" if report.partial else "[green]ok[/]"
            result += "".join(f"\n[dim]{escape(note)}[/]" for note in report.notes)
        else:
            result = "[red]FAIL[/]" + "".join(f"\n[red]- {escape(problem)}[/]" for problem in report.problems)
        provider = f"{info.provider.distribution} {info.provider.version}"
        table.add_row(info.family, escape(info.name), escape(provider), result)
    for broken in registry.broken:
        provider = f"{broken.provider.distribution} {broken.provider.version}"
        entry = f"(entry point {broken.provider.entry_point})"
        table.add_row("", escape(entry), escape(provider), f"[red]BROKEN[/]\n[red]{escape(broken.problem)}[/]")
    out.print(table)
    total = sum(1 for _ in registry)
    summary = f"{total - failed} of {total} components conform"
    if registry.broken:
        summary += f"; {len(registry.broken)} plugin problem(s)"
    out.print(summary, markup=False)
    return 1 if failed or registry.broken else 0


def _describe_param(param: Param) -> str:
    default = param.default_text()
    help_text = f"  [dim]{escape(param.help)}[/]" if param.help else ""
    return f"    [green]{param.name}[/]: {escape(param.describe_type())} = {escape(default)}{help_text}"


def cmd_check(args: argparse.Namespace, registry: Registry, out: Console, err: Console) -> int:
    recipe = load_recipe(args.recipe, registry, args.set, check=functools.partial(pipeline.check, registry))
    _open_data(pipeline.data_source(registry, recipe))
    print(dump_recipe(recipe), end="")
    err.print(f"[green]{escape(str(args.recipe))}: valid[/] (the first pair of each split read)")
    return 0


def _open_data(source: DataSource) -> None:
    """Read the first pair of each split as `train` reads its data, so a path or format that `train` would
    refuse is refused now; a streamed source reads no further (one that splits a file plans the split first)."""
    for name in SPLITS:
        next(iter(source.split(name)), None)


def cmd_train(args: argparse.Namespace, registry: Registry, out: Console, err: Console) -> int:
    distributed.start()  # under torchrun: join the other processes; rank 0 alone opens, locks and writes the run
    if not distributed.is_main():
        return _train_replica(registry, out)
    run, recipe, created = _training_run(args, registry)
    cap_kernel_caches(TRAIN_KERNEL_CACHES[Settings.of(recipe).train.precision])  # before the Trainer builds the model
    out.print(f"run directory: [bold]{escape(str(run.path))}[/]")
    with run.lock():  # one trainer per run directory; nothing is written before it is held
        used = components_used(recipe, registry)
        started = start_run(recipe, run, accept_changed_data=args.accept_changed_data, components=used)
        for note in started.notes:
            out.print(f"note: {note}", markup=False)
        run.save_components(used)
        resume = run.last_checkpoint.exists()
        distributed.broadcast((str(run.path), resume))  # to _train_replica
        if not created and not resume:
            out.print("it has no checkpoint yet: training it from the start", markup=False)
        trainer = Trainer(recipe, registry, run, out)
        try:
            report = _train_until_stopped(trainer, run, started, created)
        except TransduceError:
            if created and not run.last_checkpoint.exists():
                run.discard()  # nothing worth resuming: let the same command run again once the cause is fixed
            raise
    report.render(out)
    if trainer.written is not None:
        out.print(trainer.written.summary(), markup=False)
        for note in trainer.written.notes:
            err.print(f"note: {note}", markup=False)
    distributed.finish()
    return 0


def _train_replica(registry: Registry, out: Console) -> int:
    """A process other than rank 0 trains the run rank 0 prepared (its recipe.yaml), writing nothing."""
    path, resume = distributed.broadcast(None)
    run = RunDir.open(Path(path))
    recipe = read_run_recipe(run, registry)
    cap_kernel_caches(TRAIN_KERNEL_CACHES[Settings.of(recipe).train.precision])  # as rank 0 does
    Trainer(recipe, registry, run, out).train(resume=resume)
    distributed.finish()
    return 0


def _training_run(args: argparse.Namespace, registry: Registry) -> tuple[RunDir, dict[str, Any], bool]:
    """(run, recipe, whether the run is new): `--resume RUN` and an existing `--run-dir RUN` continue that run
    (the recipe may change only in SAFE_TO_CHANGE keys); otherwise a new run directory is made."""
    existing = args.resume
    if existing is None and args.run_dir is not None and RunDir(args.run_dir).recipe.exists():
        existing = args.run_dir  # re-running the same command continues the run
    if existing is not None:
        run = RunDir.open(existing)
        saved = read_run_recipe(run, registry)
        recipe = (
            read_run_recipe(run, registry, args.set)
            if args.recipe is None
            else load_recipe(args.recipe, registry, args.set)
        )
        check_resumable(saved, recipe)
        return run, recipe, False
    if args.recipe is None:
        raise RecipeError("name a recipe to train (e.g. recipes/dates.yaml), or --resume RUN")
    recipe = load_recipe(args.recipe, registry, args.set, check=functools.partial(pipeline.check, registry))
    return RunDir.create(args.run_dir or RunDir.default_path(args.recipe)), recipe, True


def _train_until_stopped(trainer: Trainer, run: RunDir, started: Started, created: bool) -> Report:
    """`trainer.train`; a stop at once (a second signal, or one outside the training steps) becomes `Interrupted`."""
    try:
        return trainer.train(resume=started.last is not None, last=started.last)
    except KeyboardInterrupt as stop:
        if run.last_checkpoint.exists():
            state = (
                f"{run.last_checkpoint} holds the last checkpoint, whole (checkpoints are written atomically). "
                f"Continue with `transduce train --resume {run.path}`"
            )
        elif created and run.path in run.made:
            state = "nothing was checkpointed yet, so the new run directory is removed"
        elif created:  # the user made the folder (RunDir.discard): it stays, emptied
            state = f"nothing was checkpointed yet, so what the run wrote in {run.path} is removed (the folder stays)"
        else:
            state = f"nothing was checkpointed yet; start again with `transduce train --resume {run.path}`"
        raise Interrupted(f"stopped at once; {state}", getattr(stop, "status", 130)) from None


def cmd_evaluate(args: argparse.Namespace, registry: Registry, out: Console, err: Console) -> int:
    run, recipe = _decoding_run(args, registry)
    settings = Settings.of(recipe)
    compare_with = strategies(registry, recipe, args.compare)  # a mistake shows before the model loads
    translator = Translator.from_run(run, registry, device=settings.train.device, recipe=recipe)
    data = pipeline.data_source(registry, recipe)
    if args.data:
        examples, name, label = list(data.read_file(args.data)), f"report.data-{args.data.stem}", str(args.data)
    else:
        split = args.split or settings.evaluate.split
        for note in check_data_files(run, recipe, f"scoring split {split!r}", accept=args.accept_changed_data):
            err.print(f"note: {note}", markup=False)
        examples, name, label = list(data.split(split)), f"report.{split}", split
    if not examples:
        raise RunError(f"{label}: no examples to evaluate")
    report = evaluate(
        translator,
        examples,
        pipeline.metrics(registry, recipe),
        split=label,
        shown=settings.evaluate.examples,
        batch_size=settings.evaluate.batch_size,
        coverage=True,
        notes=data.notes(),
        analysis=Analysis.from_settings(settings.evaluate),
        compare_with=compare_with,
        search=strategy_label(registry, settings.search),
    )
    written = write_report_files(run, report, name)
    if args.json:
        print(json.dumps(report.metrics()))
    else:
        report.render(out)
        out.print(written.summary(), markup=False)
    for note in written.notes:
        err.print(f"note: {note}", markup=False)
    return 0


def cmd_attention(args: argparse.Namespace, registry: Registry, out: Console, err: Console) -> int:
    run, recipe = _decoding_run(args, registry)
    translator = Translator.from_run(run, registry, recipe=recipe)
    translation = translator.translate_detailed([args.text])[0]
    if not translation.source_tokens:
        raise RunError("the text is empty after tokenizing: give some words to translate")
    if translation.attention is None:
        decoder = Settings.of(recipe).model.decoder
        if "attention" in decoder and decoder["attention"] is None:
            raise RunError(
                f"this model has no attention (model.decoder.attention: none): its decoder network "
                f"{decoder['name']!r} reads the source only through the encoder's final state, so there is no "
                "heat map to draw"
            )
        raise RunError(
            f"the search strategy {translator.decoding.name!r} gives no attention weights; try --set search.name=greedy"
        )
    try:
        heatmap = Heatmap.from_translation(translation)
    except ValueError as exc:
        raise RunError(
            f"the search strategy {translator.decoding.name!r} gave attention that does not fit its output: {exc}"
        ) from None
    out.print(f"{escape(args.text)}  →  [bold]{escape(translation.text)}[/]", highlight=False)
    _note_truncated(translator, err)  # the heat map shows only the tokens decoding read
    render_terminal(heatmap, out)
    path = args.output or run.path / "attention" / f"{_slug(args.text)}.png"
    try:
        picture = save_heatmap(heatmap, path, title=f"{args.text} → {translation.text}")
    except PlotsUnavailable as exc:
        if args.output is not None:  # the file was asked for by name: not making it is an error
            raise
        err.print(f"no PNG written: {exc}", markup=False)
        return 0
    out.print(f"heat map saved to {picture.path}", markup=False)
    for note in picture.notes:
        err.print(f"note: {note}", markup=False)
    return 0


def _slug(text: str) -> str:
    """A file name for `text`: lowercase ASCII letters, digits and '-', or a hash when none is left."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].strip("-")
    return slug or "text-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]


def cmd_translate(args: argparse.Namespace, registry: Registry, out: Console, err: Console) -> int:
    if args.text is not None and args.input is not None:
        raise RunError("give either TEXT or --input FILE, not both")
    if args.batch_size < 1:
        raise RunError(f"--batch-size must be at least 1, got {args.batch_size}")
    source = None if args.input is None or str(args.input) == "-" else args.input  # None: stdin
    if args.text is None and args.output is not None and str(args.output) != "-":
        refuse_same_file(args.output, source)  # before anything is opened or loaded
    run, recipe = _decoding_run(args, registry)
    translator = Translator.from_run(run, registry, recipe=recipe)
    if args.text is not None and args.output is None:
        if args.format == "nbest":
            print(_nbest_chunk(translator, [args.text], args.batch_size, first=1), end="")
        else:
            _print_one(translator, args.text)
        _note_truncated(translator, err)
    elif args.text is None and args.input is None and args.output is None and sys.stdin.isatty():
        _interactive(translator, err)
    else:
        _translate_lines(translator, args, source, err)
    return 0


def _translate_lines(translator: Translator, args: argparse.Namespace, source: Path | None, err: Console) -> None:
    """--input FILE (or stdin) to --output FILE (or stdout), in input order, streamed TRANSLATE_CHUNK lines at a
    time, with a progress bar (textio.write_streamed: a file is staged and moved into place; a stop keeps the
    translations of the whole chunks written and says where)."""
    if source is not None:
        lines = read_lines(source)
        total = count_lines(source) if err.is_terminal else None  # only a visible bar needs the total
    elif args.text is not None:  # TEXT --output FILE: one line, written as a file of translations is
        lines, total = iter([args.text]), 1
    else:
        lines, total = (line.rstrip("\r\n") for line in sys.stdin), None
    render = _nbest_chunk if args.format == "nbest" else _plain_chunk
    done, where = write_streamed(
        lines,
        lambda piece, first: render(translator, piece, args.batch_size, first),
        args.output,
        err,
        chunk=TRANSLATE_CHUNK,
        total=total,
    )
    if args.output is not None and str(args.output) != "-":
        err.print(f"wrote {done:,} translation{'' if done == 1 else 's'} to {where}", markup=False)
    _note_truncated(translator, err)


def _plain_chunk(translator: Translator, texts: list[str], batch_size: int, first: int) -> str:
    """One translation per line of `texts`."""
    return "".join(output + "\n" for output in translator.translate(texts, batch_size))


def _nbest_chunk(translator: Translator, texts: list[str], batch_size: int, first: int) -> str:
    """`_nbest_rows` of `texts`, whose first line is input line `first`."""
    return _nbest_rows(translator.translate_detailed(texts, batch_size), first)


def _nbest_rows(translations: Sequence[Translation], first: int) -> str:
    """LINE<TAB>RANK<TAB>SCORE<TAB>TEXT per candidate, best first: the n-best list, or the one translation
    when the strategy gives none (an empty input line: one row with an empty TEXT). LINE counts from
    `first`, RANK from 1; SCORE is the log-probability, 'nan' when the strategy gives no scores."""
    rows = []
    for line, translation in enumerate(translations, start=first):
        for rank, candidate in enumerate(translation.alternatives or [translation], start=1):
            score = "nan" if candidate.score is None else f"{candidate.score:.4f}"
            rows.append(f"{line}\t{rank}\t{score}\t{candidate.text}\n")
    return "".join(rows)


def _note_truncated(translator: Translator, err: Console) -> None:
    """Say how many inputs were cut to the decoding limit (Translator.max_source_tokens), if any."""
    note = translator.truncation_note()
    if note:
        err.print(f"note: {note}", markup=False, highlight=False)


def cmd_chat(args: argparse.Namespace, registry: Registry, out: Console, err: Console) -> int:
    run, recipe = _decoding_run(args, registry)
    return converse(Chat.open(run.path, registry, recipe=recipe), args.run, err)


def cmd_new_plugin(args: argparse.Namespace, registry: Registry, out: Console, err: Console) -> int:
    root = create_plugin(args.name, args.dir)
    out.print(f"created {root}/", markup=False)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        out.print(f"  {path.relative_to(root)}", markup=False)
    out.print(f"next: pip install -e {root} && pytest {root}/tests && transduce plugins --check", markup=False)
    return 0


def _interactive(translator: Translator, err: Console) -> None:
    err.print("Type a sentence and press Enter; an empty line or Ctrl-D ends.")
    while True:
        try:
            text = input("> ")
        except EOFError:
            break
        if not text.strip():
            break
        _print_one(translator, text)


def _print_one(translator: Translator, text: str) -> None:
    """The translation; with an n-best strategy (e.g. beam with n_best: 3), every candidate with its log-probability."""
    (translation,) = translator.translate_detailed([text])
    if len(translation.alternatives) <= 1:
        print(translation.text)
        return
    for candidate in translation.alternatives:
        print(f"{candidate.text}\t{candidate.score:.4f}")


COMMANDS = {
    "plugins": cmd_plugins,
    "check": cmd_check,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "attention": cmd_attention,
    "translate": cmd_translate,
    "chat": cmd_chat,
    "new-plugin": cmd_new_plugin,
}
