"""Benchmark: peak memory and training speed of sentence batches against token batches (+ accumulation).

Trains recipes/translate-fra-eng.yaml for one short epoch on a random sample of the Tatoeba file, once per
variant, each in a fresh `transduce train` subprocess, and reports the subprocess's peak resident memory
(os.wait4's ru_maxrss), its optimizer steps, target tokens per step and target tokens/s (metrics.jsonl).
The variants run interleaved, `--repeats` rounds, so a busy machine slows them alike; compare the ratios.

    python benchmarks/memory_benchmark.py                       # 128 sentences vs the token budgets below
    python benchmarks/memory_benchmark.py --pairs 20000 --variant "sentences=128" --variant "tokens=1200,accumulate=2"

A variant is comma-separated `sentences=N` (train.batch_size), `tokens=N` (train.batch_tokens),
`accumulate=N` (train.accumulate) and `code=DIR`: run the transduce package of another checkout (e.g. an
exported older commit: `git archive COMMIT | tar -x -C DIR`) to compare with it. Validation and test splits
are kept small, so the peak is training's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "translate-fra-eng.yaml"
DATA = ROOT.parent / "shared" / "data" / "fra-eng" / "fra.txt"
#: 128 sentences against a budget giving about as many target tokens per optimizer step, in one batch and in two.
DEFAULT_VARIANTS = ("sentences=128", "tokens=2400", "tokens=1200,accumulate=2")
KEYS = {"sentences": "train.batch_size", "tokens": "train.batch_tokens", "accumulate": "train.accumulate"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="the Tatoeba fra-eng file")
    parser.add_argument("--pairs", type=int, default=16_000, help="lines sampled from it (one epoch's data)")
    parser.add_argument("--variant", action="append", help="a batching variant (repeatable); see above")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved rounds over the variants")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each training process")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more recipe overrides")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    args = parser.parse_args()
    variants = args.variant or list(DEFAULT_VARIANTS)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="memory-benchmark-") as scratch:
        root = Path(scratch)
        sample = root / "fra-sample.txt"
        write_sample(args.data, sample, args.pairs)
        for round_ in range(args.repeats):
            for number, variant in enumerate(variants):
                run = root / f"run-{round_}-{number}"
                rows.append(measure(variant, sample, run, args.threads, args.set))
                print(json.dumps(rows[-1]), file=sys.stderr)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


def write_sample(data: Path, sample: Path, count: int, seed: int = 1) -> None:
    """A random `count` of the file's lines (the file is sorted by length: a prefix would hold short ones only)."""
    lines = data.read_text(encoding="utf-8").splitlines(keepends=True)
    sample.write_text("".join(random.Random(seed).sample(lines, min(count, len(lines)))), encoding="utf-8")


def overrides(variant: str, sample: Path, threads: int, extra: list[str]) -> tuple[list[str], str | None]:
    """The --set options of one variant's short run, and the checkout to run it with (None: this one)."""
    settings = [
        f"data.path={sample}",
        "data.valid_size=100",
        "data.test_size=100",
        "train.epochs=1",
        "train.device=cpu",
        f"train.threads={threads}",
        "evaluate.examples=0",
        "evaluate.heatmaps=0",
    ]
    code = None
    for part in variant.split(","):
        name, _, value = part.partition("=")
        if name == "code":
            code = str(Path(value).resolve())
        elif name in KEYS:
            settings.append(f"{KEYS[name]}={value}")
        else:
            raise SystemExit(f"unknown variant setting {name!r} in {variant!r}: use code, {', '.join(KEYS)}")
    return [*settings, *extra], code


def measure(variant: str, sample: Path, run: Path, threads: int, extra: list[str]) -> dict[str, Any]:
    """Train one variant in a subprocess: its peak RSS, steps, tokens per step and tokens/s."""
    command = [sys.executable, "-m", "transduce", "train", str(RECIPE), "--run-dir", str(run)]
    settings, code = overrides(variant, sample, threads, extra)
    for setting in settings:
        command += ["--set", setting]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [code, env.get("PYTHONPATH")]))
    log = run.with_suffix(".log")
    with log.open("wb") as output:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own peak RSS
        seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{variant}: training failed:\n{log.read_text(encoding='utf-8')[-3000:]}")
    record = json.loads((run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[0])
    tokens = record["tokens_per_second"] * record["seconds"]
    return {
        "variant": variant,
        "steps": record["step"],
        "target_tokens_per_step": round(tokens / record["step"], 1),
        "tokens_per_second": record["tokens_per_second"],
        "train_seconds": record["seconds"],
        "loss": record["loss"],
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
        "process_seconds": round(seconds, 1),
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    base = rows[0]
    print("| variant | steps | target tokens/step | tokens/s | x speed | loss | peak RSS MiB | x memory |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['variant']} | {row['steps']} | {row['target_tokens_per_step']:,.0f} | "
            f"{row['tokens_per_second']:,.0f} | {row['tokens_per_second'] / base['tokens_per_second']:.2f} | "
            f"{row['loss']:.3f} | {row['peak_rss_mib']:,.0f} | {row['peak_rss_mib'] / base['peak_rss_mib']:.2f} |"
        )


if __name__ == "__main__":
    sys.exit(main())
