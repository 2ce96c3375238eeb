"""`transduce score RUN`: how probable a trained model finds given source/target pairs.

A built-in command made through the `transduce_commands` hook, with the public API only, as a third-party
command would be. Each pair gets one output line, the natural-log probability of the target (its tokens
plus `</s>`) given the source and that divided by its token count, in input order; a summary goes to
stderr. Pairs are read and scored SCORE_CHUNK at a time and written like `translate --input`'s output (a
file is moved into place when complete, never over an input; a stop keeps the whole chunks written).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from transduce.api import (
    Command,
    CommandContext,
    DataError,
    Model,
    Scored,
    add_output_option,
    add_set_option,
    add_threads_option,
    count_lines,
    hookimpl,
    read_lines,
    refuse_same_file,
    write_streamed,
)

#: Pairs read, scored, written and flushed at a time.
SCORE_CHUNK = 1024
INPUT_FORMATS = ("tsv", "run")
OUTPUT_FORMATS = ("plain", "jsonl")

Pair = tuple[str, str]


def _batch_size(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of pairs >= 1, got {text!r}")
    return int(text)


class ScoreCommand(Command):
    """Scores source/target pairs under a trained model (forced decoding)."""

    name = "score"
    help = "score source/target pairs: the log-probability of each target given its source"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.description = (
            "Score each pair: LOGPROB<TAB>PER_TOKEN per line (the natural-log probability of the target's tokens "
            "plus </s> given the source, and it divided by their count), in input order; a summary (pairs, tokens, "
            "mean log-probability per token, perplexity) on stderr."
        )
        parser.add_argument("run", type=Path, help="a run directory written by `transduce train`")
        parser.add_argument(
            "--input",
            type=Path,
            metavar="FILE",
            help="pairs to score ('-': stdin); tsv (default): SOURCE<TAB>TARGET per line (more columns are ignored)",
        )
        parser.add_argument(
            "--input-format",
            choices=INPUT_FORMATS,
            default="tsv",
            help="tsv: SOURCE<TAB>TARGET lines; run: the run's data format, read as `evaluate --data` reads it "
            "(rows it cannot use are skipped and counted)",
        )
        parser.add_argument("--source", type=Path, metavar="FILE", help="sources, one per line (with --target)")
        parser.add_argument("--target", type=Path, metavar="FILE", help="targets, line-aligned with --source")
        add_output_option(parser, "scores")
        parser.add_argument(
            "--format", choices=OUTPUT_FORMATS, default="plain", help="plain: LOGPROB<TAB>PER_TOKEN; jsonl: objects"
        )
        parser.add_argument("--checkpoint", default="best", help="best (default), last, or a checkpoint file's path")
        parser.add_argument("--batch-size", type=_batch_size, default=64, help="pairs per batch (default: 64)")
        add_set_option(parser, "override the run's recipe, e.g. --set train.precision=bf16")
        add_threads_option(parser)

    def run(self, args: argparse.Namespace, context: CommandContext) -> int:
        inputs = _inputs(args)
        if args.output is not None and str(args.output) != "-":
            for path in inputs:
                refuse_same_file(args.output, path)
        total = _check_line_counts(args.source, args.target) if args.source is not None else None
        if total is None and args.input_format == "tsv" and inputs[0] is not None and context.err.is_terminal:
            total = count_lines(inputs[0])
        model = context.load(args.run, checkpoint=args.checkpoint, overrides=args.set)
        pairs, notes = _pairs(args, model)
        summary = Summary()

        def render(piece: list[Pair], first: int) -> str:
            sources, targets = [source for source, _ in piece], [target for _, target in piece]
            return summary.render(model.score(sources, targets, batch_size=args.batch_size), args.format)

        done, where = write_streamed(
            pairs,
            render,
            args.output,
            context.err,
            chunk=SCORE_CHUNK,
            total=total,
            label="scoring",
            noun="scores",
        )
        if args.output is not None and str(args.output) != "-":
            context.err.print(f"wrote {done:,} score{'' if done == 1 else 's'} to {where}", markup=False)
        context.err.print(summary.line(), markup=False, highlight=False)
        for note in [*notes(), *_cut_notes(model, summary)]:
            context.err.print(f"note: {note}", markup=False, highlight=False)
        return 0


def _inputs(args: argparse.Namespace) -> list[Path | None]:
    """The input files (None: stdin); a DataError unless they are given one of the two ways."""
    if (args.source is None) != (args.target is None):
        raise DataError("give --source FILE and --target FILE together (line-aligned sources and targets)")
    if args.source is not None and args.input is not None:
        raise DataError("give either --input FILE or --source FILE --target FILE, not both")
    if args.source is not None:
        return [args.source, args.target]
    if args.input is None:
        raise DataError("nothing to score: give --input FILE (SOURCE<TAB>TARGET lines) or --source FILE --target FILE")
    if str(args.input) == "-":
        if args.input_format == "run":
            raise DataError("--input-format run reads a file by name; give --input FILE, not stdin")
        return [None]
    return [args.input]


def _check_line_counts(source: Path, target: Path) -> int:
    """The pairs of line-aligned files; different line counts are a DataError naming both files."""
    sources, targets = count_lines(source), count_lines(target)
    if sources != targets:
        raise DataError(
            f"--source {source} has {sources:,} lines but --target {target} has {targets:,}: the files must be "
            "line-aligned, one target per source"
        )
    return sources


def _pairs(args: argparse.Namespace, model: Model) -> tuple[Iterator[Pair], Callable[[], list[str]]]:
    """(the pairs to score, a callable giving notes about reading them) for the input options."""
    if args.source is not None:
        return zip(read_lines(args.source), read_lines(args.target), strict=True), list
    if args.input_format == "run":
        data = model.data_source()
        return ((example.source, example.target) for example in data.read_file(args.input)), data.notes
    path = None if str(args.input) == "-" else args.input
    lines = read_lines(path) if path is not None else (line.rstrip("\r\n") for line in sys.stdin)
    return _tsv_pairs(lines, str(path or "stdin")), list


def _tsv_pairs(lines: Iterator[str], name: str) -> Iterator[Pair]:
    for number, line in enumerate(lines, start=1):
        source, tab, rest = line.partition("\t")
        if not tab:
            raise DataError(
                f"{name}:{number}: expected SOURCE<TAB>TARGET, found no tab; give one pair per line, or use "
                "--source FILE --target FILE for line-aligned files"
            )
        yield source, rest.partition("\t")[0]


@dataclass
class Summary:
    """Totals over the scored pairs: the summary line's figures."""

    pairs: int = 0
    tokens: int = 0
    log_prob: float = 0.0
    unscored: int = 0  # pairs whose source was empty

    def render(self, scored: list[Scored], form: str) -> str:
        """The output lines of `scored`, counted into the totals."""
        lines = []
        for item in scored:
            self.pairs += 1
            if item.log_prob is None:
                self.unscored += 1
            else:
                self.tokens += item.tokens
                self.log_prob += item.log_prob
            lines.append(_line(item, form))
        return "".join(lines)

    def line(self) -> str:
        if not self.tokens:
            return f"scored {self.pairs:,} pairs: no target tokens, so no mean or perplexity"
        mean = self.log_prob / self.tokens
        return (
            f"scored {self.pairs:,} pairs, {self.tokens:,} target tokens (</s> included): mean log-probability "
            f"per token {mean:.4f}, perplexity {math.exp(-mean):.4f}"
        )


def _line(item: Scored, form: str) -> str:
    if form == "jsonl":
        return json.dumps({"log_prob": item.log_prob, "per_token": item.per_token, "tokens": item.tokens}) + "\n"
    if item.log_prob is None:
        return "nan\tnan\n"
    return f"{item.log_prob:.4f}\t{item.per_token:.4f}\n"


def _cut_notes(model: Model, summary: Summary) -> list[str]:
    notes = []
    if summary.unscored:
        notes.append(
            f"{summary.unscored:,} pair(s) had an empty source (nothing for the model to read): scored nan (null in "
            "jsonl) and left out of the summary"
        )
    if model.inputs_cut:
        notes.append(
            f"{model.inputs_cut:,} source(s) were longer than the decoding limit: they were cut to it, as translate "
            "cuts them (see docs/decoding.md)"
        )
    if model.targets_cut:
        notes.append(f"{model.targets_cut:,} target(s) were cut to the longest output a search may produce")
    return notes


@hookimpl
def transduce_commands() -> list[type[Command]]:
    """Register `transduce score`."""
    return [ScoreCommand]
