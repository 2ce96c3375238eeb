"""Benchmark: decoding a trained run's test split in each precision (and vocabulary shortlist), one process.

Every variant (fp32, bf16, int8, each with the shortlists asked for) translates the same sources with
the same search strategy, round after round, interleaved, so that a busy machine slows each alike;
the table gives sentences/s (median of the rounds) with the ratio to fp32, the recipe's metrics on the
outputs (the difference to fp32's in points) and the share of outputs identical to fp32's.

    python benchmarks/decoding_benchmark.py RUN [--beam 5] [--precisions fp32 bf16 int8] [--shortlists 50]
        [--split test] [--limit 1000] [--rounds 3] [--threads 2] [--batch-size 64]

The accuracy bounds of docs/decoding.md: BLEU within 0.3 and exact match within 0.2 points of fp32.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from transduce._decoding.translator import Translator
from transduce._model import assembly as pipeline
from transduce._plugins.registry import discover
from transduce._recipe.recipe import load_recipe
from transduce._recipe.settings import PRECISIONS
from transduce._runs.rundir import RunDir


def variants(run: RunDir, args: argparse.Namespace) -> dict[str, Translator]:
    """A Translator per (precision, shortlist) asked for, named e.g. 'int8' or 'int8 +shortlist 50'."""
    registry, found = discover(), {}
    search = ["search.name=beam", f"search.size={args.beam}"] if args.beam > 1 else ["search.name=greedy"]
    for precision in args.precisions:
        for shortlist in [None, *args.shortlists]:
            name = precision if shortlist is None else f"{precision} +shortlist {shortlist}"
            overrides = [*search, f"train.precision={precision}", *args.set]
            if shortlist is not None:
                overrides.append(f"evaluate.shortlist={shortlist}")
            found[name] = Translator.from_run(run, registry, device="cpu", overrides=overrides)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--shortlists", nargs="*", type=int, default=[], help="evaluate.shortlist values to add")
    parser.add_argument("--beam", type=int, default=1, help="beam size (1: greedy)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="decode only the first N pairs of the split")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra recipe overrides")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    run = RunDir.open(args.run)
    recipe = load_recipe(run.recipe, discover(), args.set)
    examples = list(pipeline.data_source(discover(), recipe).split(args.split))[: args.limit]
    sources, references = [e.source for e in examples], [e.target for e in examples]
    metrics = pipeline.metrics(discover(), recipe)
    translators = variants(run, args)
    seconds: dict[str, list[float]] = {name: [] for name in translators}
    outputs: dict[str, list[str]] = {}
    for _ in range(args.rounds):
        for name, translator in translators.items():
            start = time.perf_counter()
            outputs[name] = translator.translate(sources, args.batch_size)
            seconds[name].append(time.perf_counter() - start)
    rows = [row(name, outputs, seconds, references, metrics) for name in translators]
    print_table(rows, len(sources), args)
    return 0


def row(
    name: str, outputs: dict[str, list[str]], seconds: dict[str, list[float]], references: list[str], metrics: list
) -> dict[str, Any]:
    base = next(iter(outputs))
    speed = len(references) / statistics.median(seconds[name])
    scores = {metric.name: metric.compute(outputs[name], references).value for metric in metrics}
    same = sum(a == b for a, b in zip(outputs[name], outputs[base], strict=True)) / len(references)
    return {"name": name, "speed": speed, "scores": scores, "same": 100 * same}


def print_table(rows: list[dict[str, Any]], count: int, args: argparse.Namespace) -> None:
    base = rows[0]
    names = list(base["scores"])
    search = f"beam {args.beam}" if args.beam > 1 else "greedy"
    print(f"{args.run}: {count} {args.split} sentences, {search}, {args.threads} threads, batch {args.batch_size}")
    print(f"{'variant':<24}{'sent/s':>9}{'ratio':>7}" + "".join(f"{n:>20}" for n in names) + f"{'same as first':>15}")
    for entry in rows:
        cells = [f"{entry['scores'][n]:.2f} ({entry['scores'][n] - base['scores'][n]:+.2f})" for n in names]
        print(
            f"{entry['name']:<24}{entry['speed']:>9.0f}{entry['speed'] / base['speed']:>6.2f}x"
            + "".join(f"{cell:>20}" for cell in cells)
            + f"{entry['same']:>14.1f}%"
        )


if __name__ == "__main__":
    raise SystemExit(main())
