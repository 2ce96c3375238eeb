"""Compare models: train each recipe into its own run, then set their validation scores per epoch side by side.

    python benchmarks/compare_recipes.py recipes/book/date-*.yaml --runs runs/book
    python benchmarks/compare_recipes.py plain=recipes/dates.yaml reversed=recipes/dates.yaml \\
        --set-for reversed source.reverse=true --set train.epochs=3 --runs runs/reversed

Each model is a recipe, named by its file's stem or by `LABEL=` before it, with the `--set` overrides of every
model and the `--set-for LABEL` ones of its own. It trains in RUNS/LABEL, one after the other, through
`transduce train`: a run that finished with the same recipe is only read, an unfinished one continues where it
stopped. Then the runs' metrics.jsonl (validation scores per epoch) and report.json (final scores) give

- a table, epoch x model, of one validation metric (`--metric`, default the first run's `train.best_metric`),
- a table of each model's final scores on its evaluation split, epochs and training seconds,

printed as Markdown and written to RUNS/comparison.md, and the first drawn as a line chart in
RUNS/comparison.png (`--png`; needs `transduce[plots]`), as the figure of "Deep Learning from Scratch 2" that
compares the baseline, peeky and attention models on the date task.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transduce._cli import main as cli
from transduce._plugins.registry import Registry, discover
from transduce._recipe.recipe import load_recipe, recipe_differences
from transduce._reports.plots import PlotsUnavailable, save_comparison
from transduce._reports.report_files import read_history
from transduce._runs.checkpoint import write_text_atomic
from transduce._runs.opening import read_run_recipe
from transduce._runs.rundir import RunDir
from transduce.errors import TransduceError

LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MISSING = "–"  # a table cell of an epoch a model did not validate (stopped early, or valid_every > 1)


@dataclass
class Model:
    """One column of the comparison: a recipe, the overrides it trains with, and its run directory."""

    label: str
    recipe: Path
    overrides: list[str] = field(default_factory=list)
    run: Path = Path()


@dataclass
class Result:
    """What a finished run recorded: validation scores per epoch and the final report."""

    label: str
    history: list[dict[str, Any]]
    final: dict[str, float]
    split: str

    @property
    def seconds(self) -> float:
        """Training seconds over every epoch (validation and data preparation excluded), across resumes."""
        return sum(record["seconds"] for record in self.history)

    def scores(self, metric: str) -> dict[int, float]:
        """epoch -> validation score of `metric`, for the epochs that were validated."""
        return {r["epoch"]: r["valid"][metric] for r in self.history if metric in r.get("valid", {})}


# --- which models ------------------------------------------------------------------------------------------


def models(specs: Sequence[str], common: Sequence[str], own: Sequence[Sequence[str]], runs: Path) -> list[Model]:
    """`RECIPE` or `LABEL=RECIPE` per model; `common` overrides apply to all, `own` (LABEL, KEY=VALUE) to one."""
    chosen: dict[str, Model] = {}
    for spec in specs:
        label, _, path = spec.partition("=") if "=" in spec else ("", "", spec)
        label = label or Path(path).stem
        if not LABEL.fullmatch(label):
            raise TransduceError(f"{spec}: the label {label!r} must be letters, digits, '.', '_' or '-'")
        if label in chosen:
            raise TransduceError(f"two models are labelled {label!r}; name them apart with LABEL=RECIPE")
        chosen[label] = Model(label, Path(path), list(common), runs / label)
    for label, assignment in own:
        if label not in chosen:
            raise TransduceError(f"--set-for {label}: no model has this label (labels: {', '.join(chosen)})")
        chosen[label].overrides.append(assignment)
    return list(chosen.values())


# --- training ----------------------------------------------------------------------------------------------


def finished_with(model: Model, registry: Registry) -> bool:
    """Whether the model's run finished (its report is written) with exactly the recipe asked for now."""
    run = RunDir(model.run)
    if not (run.recipe.exists() and run.report("report", "json").exists()):
        return False
    saved = read_run_recipe(run, registry)
    return not recipe_differences(saved, load_recipe(model.recipe, registry, model.overrides))


def train(model: Model, registry: Registry) -> str:
    """Train the model's run, continue it, or leave a finished one alone; say which."""
    if finished_with(model, registry):
        return "finished before: read, not retrained"
    continued = RunDir(model.run).recipe.exists()
    argv = ["train", str(model.recipe), "--run-dir", str(model.run)]
    for assignment in model.overrides:
        argv += ["--set", assignment]
    status = cli.main(argv)
    if status != 0:
        raise TransduceError(f"training {model.label} stopped with exit status {status}; its run is {model.run}")
    return "continued" if continued else "trained"


def result(model: Model) -> Result:
    run = RunDir(model.run)
    path = run.report("report", "json")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        return Result(model.label, read_history(run.metrics_log), report["metrics"], report["split"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TransduceError(f"{path}: cannot read the run's final report ({exc}); train it again") from None


# --- tables and chart --------------------------------------------------------------------------------------


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    rule = _row(["---", *["---:"] * (len(header) - 1)])
    return "\n".join([_row(header), rule, *map(_row, rows)])


def epoch_table(results: Sequence[Result], metric: str) -> str:
    """Markdown: one row per epoch, one column per model, the validation `metric`."""
    scores = [r.scores(metric) for r in results]
    epochs = sorted({epoch for s in scores for epoch in s})
    rows = [[str(epoch), *(f"{s[epoch]:.2f}" if epoch in s else MISSING for s in scores)] for epoch in epochs]
    return _table([f"epoch (valid {metric})", *(r.label for r in results)], rows)


def final_table(results: Sequence[Result]) -> str:
    """Markdown: one row per model, its final scores, epochs trained and training seconds."""
    names = list(dict.fromkeys(name for r in results for name in r.final))
    rows = [
        [
            r.label,
            r.split,
            *(f"{r.final[name]:.2f}" if name in r.final else MISSING for name in names),
            str(r.history[-1]["epoch"] if r.history else 0),
            f"{r.seconds:.1f}",
        ]
        for r in results
    ]
    return _table(["model", "split", *names, "epochs", "training s"], rows)


def chosen_metric(metric: str | None, results: Sequence[Result], first: Model, registry: Registry) -> str:
    """`metric`, or the first model's `train.best_metric`; every run must have validated it."""
    if metric is None:
        metric = read_run_recipe(RunDir(first.run), registry)["train"]["best_metric"]
    for r in results:
        if not r.scores(metric):
            recorded = sorted({name for record in r.history for name in record.get("valid", {})})
            raise TransduceError(
                f"{r.label}: no validation scores of {metric!r} in its metrics.jsonl "
                f"(it has: {', '.join(recorded) or 'none'}); choose another with --metric"
            )
    return metric


def draw(results: Sequence[Result], metric: str, path: Path) -> str:
    """Draw the chart; what to tell the reader about it."""
    series = {r.label: sorted(r.scores(metric).items()) for r in results}
    try:
        picture = save_comparison(series, metric, path)
    except PlotsUnavailable as missing:
        return f"note: no PNG written: {missing}"
    return "\n".join([f"chart written to {picture.path}", *(f"note: {note}" for note in picture.notes)])


# --- the command -------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", metavar="[LABEL=]RECIPE", help="the recipes to compare, in order")
    parser.add_argument("--runs", type=Path, required=True, help="folder of the runs, one per label")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every model")
    parser.add_argument(
        "--set-for", action="append", default=[], nargs=2, metavar=("LABEL", "KEY=VALUE"), help="override for one"
    )
    parser.add_argument("--metric", help="validation metric of the epoch table (default: train.best_metric)")
    parser.add_argument("--png", type=Path, help="where to draw the chart (default: RUNS/comparison.png)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    registry = discover()
    try:
        chosen = models(args.models, args.set, args.set_for, args.runs)
        for model in chosen:
            print(f"{model.label}: {train(model, registry)} ({model.run})", flush=True)
        results = [result(model) for model in chosen]
        metric = chosen_metric(args.metric, results, chosen[0], registry)
        tables = f"{epoch_table(results, metric)}\n\n{final_table(results)}\n"
        print(f"\n{tables}")
        write_text_atomic(args.runs / "comparison.md", tables)
        print(draw(results, metric, args.png or args.runs / "comparison.png"))
    except TransduceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
