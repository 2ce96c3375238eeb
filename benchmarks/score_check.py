"""Check that `Model.score` gives beam search's own scores back, and time scoring against decoding.

    python benchmarks/score_check.py runs/dates-... [--sentences 500] [--size 5] [--threads 1] [--precision bf16]

Decodes the run's test split (or `--data FILE`, read in the run's data format) with beam search (`--size`,
n-best = size), scores every hypothesis that ended with `</s>` by forced decoding, and prints how many were
compared and the largest absolute difference between the two log-probabilities (they are one definition, so it
is float rounding: well under 1e-4). Also prints sentences per second of beam decoding and of scoring the
references, measured in this one process.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import torch

import transduce


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", type=Path, help="pairs in the run's data format (default: its test split)")
    parser.add_argument("--sentences", type=int, default=500)
    parser.add_argument("--size", type=int, default=5, help="beam size (and n-best)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", help="decoding precision (default: the run's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = transduce.load(args.run, precision=args.precision)
    data = model.data_source()
    examples = data.read_file(args.data) if args.data else data.split("test")
    pairs = [(e.source, e.target) for e in itertools.islice(examples, args.sentences)]
    sources = [source for source, _ in pairs]

    start = time.perf_counter()
    results = model.translate(sources, "beam", size=args.size, n_best=args.size)
    decoding = time.perf_counter() - start
    compared = [
        (result.source, candidate)
        for result in results
        for candidate in result.alternatives
        if candidate.attention is not None and len(candidate.attention) == len(candidate.tokens) + 1
    ]
    scored = model.score([source for source, _ in compared], [candidate.text for _, candidate in compared])
    largest = max((abs(s.log_prob - c.score) for s, (_, c) in zip(scored, compared, strict=True)), default=0.0)

    start = time.perf_counter()
    model.score(sources, [target for _, target in pairs])
    scoring = time.perf_counter() - start

    print(f"run {model.info.run} ({model.info.checkpoint.name}, {model.info.device}, {model.info.precision})")
    print(f"{len(compared):,} beam hypotheses (size {args.size}, n-best {args.size}) of {len(pairs):,} sources")
    print(f"largest |score - beam score|: {largest:.2e}")
    print(f"beam decoding: {len(pairs) / decoding:,.0f} sentences/s; scoring references: {len(pairs) / scoring:,.0f}")


if __name__ == "__main__":
    main()
