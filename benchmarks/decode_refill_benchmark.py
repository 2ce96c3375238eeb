"""Benchmark: would greedy decoding gain from refilling finished rows from the queue of waiting sentences?

Decodes the lines of a file batch by batch, as `transduce translate --input` does (length-sorted batches,
finished sentences dropped from a batch once a quarter of its rows have finished), and times every decoding
step with the rows it ran. From one process run it reports:

- the row-steps computed and the ones a sentence needed (its tokens and `</s>`): the share wasted on
  finished rows still in the batch;
- the steps and a fit of step time = fixed + per-row x rows over the measured steps;
- the decoding time of an ideal refill, where every step runs a full batch and no row is wasted
  (needed row-steps / batch steps at the measured full-batch step time, encoding unchanged, refilling free),
  against the time measured: an upper bound on what refilling could gain.

    python benchmarks/decode_refill_benchmark.py RUN FILE [--lines 4000] [--batch-size 256] [--threads 1] \
        [--checkpoint last]

FILE holds one source sentence per line (for a TSV, the first column is taken).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from transduce._decoding.translator import Translator
from transduce._plugins.registry import discover
from transduce._runs.rundir import RunDir


class StepClock:
    """Wraps a model's `step`: the rows and seconds of every call."""

    def __init__(self, model: Any) -> None:
        self.model, self.real = model, model.step
        self.steps: list[tuple[int, float]] = []

    def __enter__(self) -> StepClock:
        def timed(tokens: torch.Tensor, state: Any, memory: Any) -> Any:
            started = time.perf_counter()
            out = self.real(tokens, state, memory)
            self.steps.append((tokens.size(0), time.perf_counter() - started))
            return out

        self.model.step = timed
        return self

    def __exit__(self, *exc: object) -> None:
        del self.model.step  # the class's method again


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("file", type=Path)
    parser.add_argument("--lines", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best", help="which of the run's")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lines = [line.split("\t")[0] for line in args.file.read_text(encoding="utf-8").splitlines()[: args.lines]]
    translator = Translator.from_run(RunDir.open(args.run), discover(), which=args.checkpoint, device="cpu")
    translator.translate(lines[:256], args.batch_size)  # warm up kernels and caches
    figures = measure(translator, lines, args.batch_size)
    for name, value in figures.items():
        print(f"{name:>32}: {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


def measure(translator: Translator, lines: list[str], batch_size: int) -> dict[str, Any]:
    """Decode `lines` once, timing every step; the figures described above."""
    started = time.perf_counter()
    with StepClock(translator.model) as clock:
        outputs = translator.translate_tokens(lines, batch_size)
    seconds = time.perf_counter() - started
    rows = torch.tensor([r for r, _ in clock.steps], dtype=torch.float64)
    times = torch.tensor([t for _, t in clock.steps], dtype=torch.float64)
    fixed, per_row = torch.linalg.lstsq(torch.stack([torch.ones_like(rows), rows], 1), times.unsqueeze(1)).solution
    needed = sum(len(tokens) + 1 for tokens in outputs)  # each sentence's tokens and its `</s>` step (at most)
    full = times[rows >= 0.9 * batch_size]
    full_step = float(full.mean()) if len(full) else float(fixed + per_row * batch_size)
    stepping = float(times.sum())
    ideal = needed / batch_size * full_step
    return {
        "lines": len(lines),
        "seconds": round(seconds, 3),
        "decoding_step_seconds": round(stepping, 3),
        "steps": len(clock.steps),
        "row_steps_computed": int(rows.sum()),
        "row_steps_needed": needed,
        "wasted_share": round(1 - needed / float(rows.sum()), 3),
        "step_fixed_ms": round(float(fixed) * 1e3, 3),
        "step_per_row_us": round(float(per_row) * 1e6, 2),
        "full_batch_step_ms": round(full_step * 1e3, 3),
        "ideal_refill_step_seconds": round(ideal, 3),
        "upper_bound_speedup": round(seconds / (seconds - stepping + ideal), 3),
    }


if __name__ == "__main__":
    sys.exit(main())
