"""Benchmark: the dates recipe trained on the book's date.txt, on the CPU.

Prints wall time, training target tokens/s, exact match on the test split after
every epoch, and peak memory. Target: >= 99.9% exact match with <= 60 s of
training on 2 CPU cores.

    python benchmarks/dates_benchmark.py [--data ../shared/data/date/date.txt] [--epochs 3]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from transduce._model import assembly as pipeline
from transduce._plugins.registry import discover
from transduce._recipe.recipe import load_recipe
from transduce._reports.evaluation import evaluate
from transduce._runs.rundir import RunDir
from transduce._training.trainer import Trainer, start_run

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "date" / "date.txt"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the book's date.txt")
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "dates.yaml")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra recipe overrides")
    args = parser.parse_args()
    if not args.data.exists():
        print(f"{args.data}: not found; pass --data PATH to the book's date.txt", file=sys.stderr)
        return 2

    torch.set_num_threads(args.threads)
    registry = discover()
    overrides = [
        f"data.path={args.data}",
        "data.train_size=null",
        f"train.epochs={args.epochs}",
        "train.patience=null",
        f"train.threads={args.threads}",
        *args.set,
    ]
    recipe = load_recipe(args.recipe, registry, overrides)
    console = Console(stderr=True)
    rows: list[dict[str, Any]] = []
    test = list(pipeline.data_source(registry, recipe).split("test"))

    def after_epoch(trainer: Trainer, record: dict[str, Any]) -> None:
        report = evaluate(trainer.translator, test, trainer.metrics[:1], split="test", shown=0)
        rows.append({**record, "test_exact_match": report.metrics()["exact_match"]})

    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir.create(Path(tmp) / "run")
        start_run(recipe, run)
        started = time.perf_counter()
        Trainer(recipe, registry, run, console, on_epoch=after_epoch).train()
        wall = time.perf_counter() - started

    print(f"dates benchmark: {args.data} · torch {torch.__version__} · {torch.get_num_threads()} threads")
    print(f"{'epoch':>5} {'train s':>8} {'cum. train s':>12} {'tok/s':>8} {'loss':>8} {'test exact match':>17}")
    cumulative = 0.0
    for row in rows:
        cumulative += row["seconds"]
        print(
            f"{row['epoch']:>5} {row['seconds']:>8.1f} {cumulative:>12.1f} {row['tokens_per_second']:>8,.0f} "
            f"{row['loss']:>8.4f} {row['test_exact_match']:>16.2f}%"
        )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"test pairs {len(test)} · wall time {wall:.1f} s (data, training, validation, evaluation) · "
        f"training {cumulative:.1f} s · peak memory {peak_mib:,.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
