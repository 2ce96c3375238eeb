"""Benchmark: `transduce translate RUN --input FILE --output FILE` streams.

Generates date-like inputs of 10,000 and 100,000 lines, runs the real command
in a subprocess for each, and reports wall time, lines/s and the subprocess's
peak resident memory (os.wait4's ru_maxrss). A one-line input gives the fixed
cost (Python, torch, the model). If translation streams, peak memory does not
grow with the input. Order is checked exactly: the output has one line per
input line, and three whole chunks (first, middle, last) equal an in-process
translation of the same input lines.

    python benchmarks/translate_stream_benchmark.py [--run RUN] [--sizes 10000 100000] [--threads 1]

Without --run, a small dates run is trained first (about 20 s on one core).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from transduce_builtins.datasets import render

from transduce._cli import main as cli
from transduce._decoding.translator import Translator
from transduce._plugins.registry import discover
from transduce._runs.rundir import RunDir

RECIPE = """
seed: 1
data: {name: dates, train_size: 3000, valid_size: 200, test_size: 200}
model: {embedding_dim: 32, encoder: {name: lstm, hidden_size: 64}, decoder: {name: lstm, hidden_size: 64}}
train: {epochs: 2, batch_size: 64, lr: 0.01, device: cpu, threads: 1}
search: {name: greedy, max_length: 12}
evaluate: {examples: 0}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a trained run to translate with (default: train a small one)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="input lines per file")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the translating process")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)  # the in-process order check
    with tempfile.TemporaryDirectory(prefix="translate-stream-") as scratch:
        root = Path(scratch)
        run = args.run or train_small_run(root)
        rows = [measure(run, root, lines, args.threads) for lines in [1, *args.sizes]]
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0 if all(row["order"] for row in rows) else 1


def train_small_run(root: Path) -> Path:
    recipe, run = root / "small.yaml", root / "run"
    recipe.write_text(RECIPE, encoding="utf-8")
    print(f"training a small dates run into {run} ...", file=sys.stderr)
    if cli.main(["train", str(recipe), "--run-dir", str(run)]) != 0:
        raise SystemExit("training failed")
    return run


def inputs(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    first = datetime.date(1950, 1, 1).toordinal()
    return [render(datetime.date.fromordinal(first + rng.randrange(36_524)), rng) for _ in range(count)]


def measure(run: Path, root: Path, count: int, threads: int) -> dict[str, Any]:
    """Translate `count` generated lines with the real command; time, peak RSS and an exact order check."""
    lines = inputs(count)
    source, output = root / f"in-{count}.txt", root / f"out-{count}.txt"
    source.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    command = [sys.executable, "-m", "transduce", "translate", str(run), "--input", str(source)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    log = root / f"err-{count}.txt"
    with log.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen([*command, "--output", str(output)], env=env, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own peak RSS, not the largest child's
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"translate exited with {process.returncode}: {log.read_text()}")
    return {
        "lines": count,
        "seconds": round(seconds, 2),
        "lines_per_second": round(count / seconds, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
        "input_mib": round(source.stat().st_size / 2**20, 2),
        "order": order_holds(run, lines, output.read_text(encoding="utf-8")),
    }


def order_holds(run: Path, lines: list[str], written: str) -> bool:
    """One output line per input line, and the first, middle and last chunk equal an in-process translation."""
    outputs = written.split("\n")
    if outputs[-1] != "" or len(outputs) - 1 != len(lines):
        return False
    translator = Translator.from_run(RunDir.open(run), discover(), device="cpu")
    chunk = cli.TRANSLATE_CHUNK
    last = (len(lines) - 1) // chunk
    for index in sorted({0, last // 2, last}):
        part = slice(index * chunk, min((index + 1) * chunk, len(lines)))
        if translator.translate(lines[part], batch_size=256) != outputs[part]:
            return False
    return True


def print_table(rows: list[dict[str, Any]]) -> None:
    print("| input lines | input MiB | seconds | lines/s | peak RSS MiB | order |")
    print("|---:|---:|---:|---:|---:|:---:|")
    for row in rows:
        print(
            f"| {row['lines']:,} | {row['input_mib']} | {row['seconds']} | {row['lines_per_second']:,.0f} | "
            f"{row['peak_rss_mib']} | {'ok' if row['order'] else 'WRONG'} |"
        )


if __name__ == "__main__":
    sys.exit(main())
