"""Benchmark: peak memory and training speed of sentence batches against token batches (+ accumulation).

Each variant trains recipes/translate-fra-eng.yaml on the Tatoeba file in a fresh subprocess; the parent reads
the subprocess's peak resident memory (os.wait4's ru_maxrss). Variants run interleaved, `--repeats` rounds, so
a busy machine slows them alike: compare the ratios.

--mode steps (default): the subprocess prepares the data as `transduce train` does (the whole file unless
--pairs), builds epoch 1's batches, trains first the optimizer step holding the epoch's largest batch (most
padded tokens: where the peak comes from) and then the epoch's first --steps steps, timed: target tokens/s and
their mean loss. A few hundred steps, and the peak of a whole epoch.

--mode epoch: `transduce train` itself, for one epoch (or --set train.epochs=N) of --pairs sampled lines
(tokens/s, loss and validation scores from metrics.jsonl): the same epochs, compared.

--mode speed: one subprocess trains every variant's first --steps steps in turns of --block steps, on one
model: the tokens/s of each, unskewed by a machine whose load changes between processes (no memory figures).

    python benchmarks/memory_benchmark.py                                   # the default variants, steps mode
    python benchmarks/memory_benchmark.py --variant sentences=128 --variant tokens=1400,accumulate=2 --steps 200
    python benchmarks/memory_benchmark.py --mode epoch --pairs 20000

A variant is comma-separated `sentences=N` (train.batch_size), `tokens=N` (train.batch_tokens),
`accumulate=N` (train.accumulate) and `code=DIR`: run the transduce package of another checkout (e.g. an
exported older commit: `git archive COMMIT | tar -x -C DIR`) to compare with it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from transduce._cli.main import KERNEL_CACHE_VARIABLES, TRAIN_KERNEL_CACHES

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "translate-fra-eng.yaml"
DATA = ROOT.parent / "shared" / "data" / "fra-eng" / "fra.txt"
#: 128 sentences against budgets giving about as many target tokens per optimizer step, in one batch and in two.
DEFAULT_VARIANTS = ("sentences=128", "tokens=1400", "tokens=700,accumulate=2")
KEYS = {"sentences": "train.batch_size", "tokens": "train.batch_tokens", "accumulate": "train.accumulate"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("steps", "epoch", "speed"), default="steps")
    parser.add_argument("--data", type=Path, default=DATA, help="the Tatoeba fra-eng file")
    parser.add_argument(
        "--pairs", type=int, help="lines sampled from it; 0: all (default: all in steps and speed modes, 16,000)"
    )
    parser.add_argument("--steps", type=int, default=200, help="timed optimizer steps (steps mode)")
    parser.add_argument("--variant", action="append", help="a batching variant (repeatable); see above")
    parser.add_argument("--block", type=int, default=20, help="steps per turn (speed mode)")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved rounds over the variants")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each training process")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more recipe overrides")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # steps mode: the subprocess's own work
    args = parser.parse_args()
    if args.child:
        return child(args)
    variants = args.variant or list(DEFAULT_VARIANTS)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="memory-benchmark-") as scratch:
        root = Path(scratch)
        data = args.data
        pairs = 16_000 if args.pairs is None and args.mode == "epoch" else args.pairs
        if pairs:
            data = root / "fra-sample.txt"
            write_sample(args.data, data, pairs)
        for round_ in range(args.repeats):
            if args.mode == "speed":
                rows.extend(speed(args, variants, data, root / f"run-{round_}"))
                continue
            for number, variant in enumerate(variants):
                rows.append(measure(args, variant, data, root / f"run-{round_}-{number}"))
                print(json.dumps(rows[-1]), file=sys.stderr)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


def write_sample(data: Path, sample: Path, count: int, seed: int = 1) -> None:
    """A random `count` of the file's lines (the file is sorted by length: a prefix would hold short ones only)."""
    lines = data.read_text(encoding="utf-8").splitlines(keepends=True)
    sample.write_text("".join(random.Random(seed).sample(lines, min(count, len(lines)))), encoding="utf-8")


def parse_variant(variant: str) -> tuple[dict[str, str], str | None]:
    """(recipe key -> value, the checkout to run with or None for this one)."""
    settings, code = {}, None
    for part in variant.split(","):
        name, _, value = part.partition("=")
        if name == "code":
            code = str(Path(value).resolve())
        elif name in KEYS:
            settings[KEYS[name]] = value
        else:
            raise SystemExit(f"unknown variant setting {name!r} in {variant!r}: use code, {', '.join(KEYS)}")
    return settings, code


def overrides(settings: dict[str, str], data: Path, threads: int, extra: list[str]) -> list[str]:
    """The --set options of one variant's short run: small held-out splits, no report pictures."""
    fixed = [
        f"data.path={data}",
        "data.valid_size=100",
        "data.test_size=100",
        "train.epochs=1",
        "train.device=cpu",
        f"train.threads={threads}",
        "evaluate.examples=0",
        "evaluate.heatmaps=0",
    ]
    return [*fixed, *(f"{key}={value}" for key, value in settings.items()), *extra]


def measure(args: argparse.Namespace, variant: str, data: Path, run: Path) -> dict[str, Any]:
    """Run one variant in a subprocess: its peak RSS and what it reports."""
    settings, code = parse_variant(variant)
    sets = overrides(settings, data, args.threads, args.set)
    if args.mode == "epoch":
        command = [sys.executable, "-m", "transduce", "train", str(RECIPE), "--run-dir", str(run)]
        command += [part for setting in sets for part in ("--set", setting)]
    else:
        command = [sys.executable, __file__, "--child", json.dumps({"run": str(run), "set": sets})]
        command += ["--steps", str(args.steps), "--threads", str(args.threads)]
    env = child_env(args.threads)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [code, env.get("PYTHONPATH")]))
    log = run.with_suffix(".log")
    with log.open("wb") as output:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own peak RSS
        seconds = time.perf_counter() - started
    text = log.read_text(encoding="utf-8")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{variant}: training failed:\n{text[-3000:]}")
    row = {"variant": variant, "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "process_seconds": round(seconds, 1)}
    if args.mode == "epoch":
        return {**row, **epoch_figures(run)}
    return {**row, **json.loads(text.strip().splitlines()[-1])}


def speed(args: argparse.Namespace, variants: list[str], data: Path, run: Path) -> list[dict[str, Any]]:
    """Speed mode: every variant in one subprocess, in turns (their peak RSS is that process's, not theirs)."""
    parsed = [parse_variant(variant) for variant in variants]
    if any(code is not None for _, code in parsed):
        raise SystemExit("speed mode runs every variant in one process of this checkout: drop code=")
    job = {"run": str(run), "set": overrides({}, data, args.threads, args.set), "variants": [s for s, _ in parsed]}
    command = [sys.executable, __file__, "--child", json.dumps(job), "--threads", str(args.threads)]
    command += ["--steps", str(args.steps), "--block", str(args.block)]
    output = subprocess.run(command, env=child_env(args.threads), cwd=ROOT, capture_output=True, text=True)
    if output.returncode != 0:
        raise SystemExit(f"speed mode failed:\n{output.stdout[-2000:]}{output.stderr[-3000:]}")
    figures = json.loads(output.stdout.strip().splitlines()[-1])
    return [{"variant": variant, **row} for variant, row in zip(variants, figures, strict=True)]


def child_env(threads: int) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    # The oneDNN kernel cache `transduce train` keeps in float32 (steps mode does not start through the CLI).
    for variable, capacity in zip(KERNEL_CACHE_VARIABLES, TRAIN_KERNEL_CACHES["fp32"], strict=True):
        env.setdefault(variable, capacity)
    return env


def epoch_figures(run: Path) -> dict[str, Any]:
    """From metrics.jsonl: steps, target tokens per step and per second over every epoch; the last epoch's loss
    and validation scores (more epochs than one with --set train.epochs=N)."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    tokens = sum(r["tokens_per_second"] * r["seconds"] for r in records)
    seconds, last = sum(r["seconds"] for r in records), records[-1]
    return {
        "steps": last["step"],
        "target_tokens_per_step": round(tokens / last["step"], 1),
        "tokens_per_second": round(tokens / seconds, 1),
        "loss": last["loss"],
        "valid": last.get("valid", {}),
    }


# --- steps mode: the subprocess ------------------------------------------------------------------------------


def child(args: argparse.Namespace) -> int:
    """Steps mode: train the largest batch's step, then time the first --steps steps. Speed mode: time the
    variants' steps in turns of --block steps, in this one process."""
    job = json.loads(args.child)
    trainer = prepared_trainer(job, args.threads)
    if "variants" in job:
        print(json.dumps(speed_turns(trainer, job["variants"], args.steps, args.block)))
        return 0
    steps = epoch_steps(trainer, {})
    prepared = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    largest = max(steps, key=lambda step: max(padded(batch) for batch in step))
    train_steps(trainer, [largest])
    started = time.perf_counter()
    losses = train_steps(trainer, steps[: args.steps])
    seconds = time.perf_counter() - started
    timed = steps[: args.steps]
    target_tokens = sum(batch.target_tokens for step in timed for batch in step)
    widest = max(largest, key=padded)
    figures = {
        "batches": sum(len(step) for step in steps),
        "steps": len(steps),
        "timed_steps": len(timed),
        "target_tokens_per_step": round(target_tokens / len(timed), 1),
        "tokens_per_second": round(target_tokens / seconds, 1),
        "loss": round(sum(losses) / target_tokens, 4),
        "largest_batch": f"{widest.source.size(0)} x {max(widest.source.size(1), widest.target_out.size(1))}",
        "prepared_rss_mib": round(prepared, 1),
    }
    print(json.dumps(figures))
    return 0


def prepared_trainer(job: dict[str, Any], threads: int) -> Any:
    """A Trainer of the recipe with `job["set"]`, its data and model prepared as `transduce train` does."""
    import torch  # noqa: PLC0415 - the parent needs none of these
    from rich.console import Console  # noqa: PLC0415

    from transduce._plugins.registry import discover  # noqa: PLC0415
    from transduce._recipe.recipe import load_recipe  # noqa: PLC0415
    from transduce._runs.rundir import RunDir  # noqa: PLC0415
    from transduce._training.trainer import Trainer, start_run  # noqa: PLC0415

    torch.set_num_threads(threads)
    registry = discover()
    recipe = load_recipe(RECIPE, registry, job["set"])
    run = RunDir.create(Path(job["run"]))
    start_run(recipe, run)
    trainer = Trainer(recipe, registry, run, Console(quiet=True))
    trainer._prepare(resume=False, last=None)
    return trainer


def epoch_steps(trainer: Any, settings: dict[str, str]) -> list[list[Any]]:
    """Epoch 1's optimizer steps (lists of batches) as training makes them, with `settings` (recipe key ->
    value, as variants give them) over the recipe's."""
    from transduce._data.batching import training_batches  # noqa: PLC0415

    given = {key.split(".")[1]: int(value) for key, value in settings.items()}
    train = {**dataclasses.asdict(trainer.settings.train), **given}
    tokens = {"batch_tokens": train["batch_tokens"]} if train.get("batch_tokens") else {}
    rng = random.Random(trainer.recipe["seed"] * 1_000_003 + 1)
    reverse = trainer.recipe["source"]["reverse"]
    batches = training_batches(
        trainer.train_pairs, train["batch_size"], rng, trainer.target_vocab, reverse=reverse, **tokens
    )
    return optimizer_steps(batches, train.get("accumulate", 1))


def speed_turns(trainer: Any, variants: list[dict[str, str]], count: int, block: int) -> list[dict[str, Any]]:
    """Each variant's first `count` steps, trained in turns of `block` steps (one model for all): tokens/s."""
    plans = [epoch_steps(trainer, settings)[:count] for settings in variants]
    seconds, tokens = [0.0] * len(plans), [0] * len(plans)
    for start in range(0, count, block):
        for number, plan in enumerate(plans):
            turn = plan[start : start + block]
            began = time.perf_counter()
            train_steps(trainer, turn)
            seconds[number] += time.perf_counter() - began
            tokens[number] += sum(batch.target_tokens for step in turn for batch in step)
    return [
        {
            "steps": len(plan),
            "target_tokens_per_step": round(tokens[n] / len(plan), 1),
            "tokens_per_second": round(tokens[n] / seconds[n], 1),
        }
        for n, plan in enumerate(plans)
    ]


def padded(batch: Any) -> int:
    """Padded tokens of a batch, as train.batch_tokens counts them."""
    return batch.source.size(0) * max(batch.source.size(1), batch.target_out.size(1))


def optimizer_steps(batches: list[Any], accumulate: int) -> list[list[Any]]:
    return [batches[i : i + accumulate] for i in range(0, len(batches), accumulate)]


def train_steps(trainer: Any, steps: list[list[Any]]) -> list[float]:
    """Train `steps` (lists of batches) as Trainer._epoch does; each batch's loss sum (mean x target tokens)."""
    losses = []
    for step in steps:
        if len(step) == 1:  # as an older checkout, without accumulation, trains
            losses.append(float(trainer._step(step[0]).detach()) * step[0].target_tokens)
            continue
        from transduce._data.batching import accumulation_shares  # noqa: PLC0415

        for index, (batch, share) in enumerate(zip(step, accumulation_shares(step, len(step)), strict=True)):
            loss = trainer._step(batch, share, index == len(step) - 1)
            losses.append(float(loss.detach()) * batch.target_tokens)
    return losses


def print_table(rows: list[dict[str, Any]]) -> None:
    """Markdown, with ratios to the first row; speed mode has no loss or memory columns."""
    base, memory = rows[0], "peak_rss_mib" in rows[0]
    extra = " loss | peak RSS MiB | x memory |" if memory else ""
    print(f"| variant | steps | target tokens/step | tokens/s | x speed |{extra}")
    print("|---|---:|---:|---:|---:|" + ("---:|---:|---:|" if memory else ""))
    for row in rows:
        line = (
            f"| {row['variant']} | {row['steps']} | {row['target_tokens_per_step']:,.0f} | "
            f"{row['tokens_per_second']:,.0f} | {row['tokens_per_second'] / base['tokens_per_second']:.2f} |"
        )
        if memory:
            line += (
                f" {row['loss']:.3f} | {row['peak_rss_mib']:,.0f} | {row['peak_rss_mib'] / base['peak_rss_mib']:.2f} |"
            )
        print(line)


if __name__ == "__main__":
    sys.exit(main())
