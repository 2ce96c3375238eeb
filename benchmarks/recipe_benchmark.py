"""Benchmark: train a recipe on the CPU, then score its test split and show sample outputs.

Prints training time, tokens/s per epoch, BLEU (cased and lowercased) and
chrF on the recipe's evaluation split with sacrebleu's signatures, peak memory
and a few sample outputs. Used for the translation and chat recipes:

    python benchmarks/recipe_benchmark.py recipes/translate-multi30k.yaml
    python benchmarks/recipe_benchmark.py recipes/translate-fra-eng.yaml
    python benchmarks/recipe_benchmark.py recipes/chat-ko.yaml --samples 10

Target for Multi30K German->English: >= 30 BLEU with <= 30 minutes of training on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from transduce._plugins.contracts import Metric
from transduce._plugins.registry import Registry, discover
from transduce._recipe.recipe import load_recipe
from transduce._reports.evaluation import evaluate
from transduce._runs.rundir import RunDir
from transduce._training.trainer import Trainer, start_run
from transduce.errors import TransduceError

SCORE_LABELS = ("BLEU", "BLEU (lowercased)", "chrF")


def scoring_metrics(registry: Registry) -> list[Metric]:
    """BLEU cased and lowercased, and chrF, through the built-in metric plugins."""
    bleu, chrf = registry.get("metric", "bleu"), registry.get("metric", "chrf")
    assert bleu is not None and chrf is not None
    return [bleu.cls(), bleu.cls(lowercase=True), chrf.cls()]


def train(recipe: dict[str, Any], registry: Registry, directory: Path) -> tuple[Trainer, list[dict[str, Any]], float]:
    records: list[dict[str, Any]] = []
    run = RunDir.create(directory)
    start_run(recipe, run)
    trainer = Trainer(recipe, registry, run, Console(stderr=True), on_epoch=lambda _, record: records.append(record))
    started = time.perf_counter()
    trainer.train()
    return trainer, records, time.perf_counter() - started


def print_epochs(records: list[dict[str, Any]]) -> float:
    """One line per epoch; returns the training seconds (validation excluded)."""
    print(f"{'epoch':>5} {'train s':>8} {'cum. s':>8} {'tok/s':>8} {'loss':>8}  validation")
    cumulative = 0.0
    for record in records:
        cumulative += record["seconds"]
        valid = "  ".join(f"{k} {v:.2f}" for k, v in record.get("valid", {}).items())
        print(
            f"{record['epoch']:>5} {record['seconds']:>8.1f} {cumulative:>8.1f} "
            f"{record['tokens_per_second']:>8,.0f} {record['loss']:>8.4f}  {valid}"
        )
    return cumulative


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe overrides")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--samples", type=int, default=5, help="sample outputs to print")
    parser.add_argument("--run-dir", type=Path, help="keep the run here (default: a temporary directory)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    registry = discover()
    try:
        recipe = load_recipe(args.recipe, registry, [f"train.threads={args.threads}", "train.device=cpu", *args.set])
        with tempfile.TemporaryDirectory() as tmp:
            trainer, records, wall = train(recipe, registry, args.run_dir or Path(tmp) / "run")
            report = evaluate(
                trainer.translator,
                trainer.test,
                scoring_metrics(registry),
                split=recipe["evaluate"]["split"],
                shown=args.samples,
                batch_size=recipe["evaluate"]["batch_size"],
            )
    except TransduceError as error:
        print(f"error: {error}")
        return 2

    print(f"\n{args.recipe} · torch {torch.__version__} · {torch.get_num_threads()} threads · overrides {args.set}")
    training_seconds = print_epochs(records)
    tokens = sum(r["tokens_per_second"] * r["seconds"] for r in records)
    print(
        f"training {training_seconds / 60:.1f} min ({tokens / training_seconds:,.0f} target tokens/s) · "
        f"wall {wall / 60:.1f} min with data preparation and validation · "
        f"peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB"
    )
    print(f"{report.split}: {report.size:,} pairs, best checkpoint, {recipe['search']['name']} search")
    for label, score in zip(SCORE_LABELS, report.scores, strict=True):
        print(f"  {label:<18} {score.value:6.2f}   {score.signature}")
    for example in report.examples:
        print(f"\n  source     {example.source}\n  reference  {example.reference}\n  output     {example.hypothesis}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
