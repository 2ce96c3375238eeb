"""benchmarks/memory_benchmark.py runs end to end on a tiny Tatoeba-format file and reports what it measured
(the lead runs it on the real file on a quiet machine; here only that it works and its figures hang together)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "memory_benchmark.py"
WORDS = "the a cat dog sees runs big small red blue house tree river".split()
SMALL_MODEL = [
    "source.tokenizer.vocab_size=60",
    "target.tokenizer.vocab_size=60",
    "model.embedding_dim=8",
    "model.encoder.hidden_size=8",
    "model.decoder.hidden_size=8",
]


def tatoeba_like(path: Path, lines: int = 400) -> None:
    """English<TAB>French lines (the French a reversed, upper-cased copy) of 2 to 12 words."""
    rng = random.Random(0)
    rows = []
    for _ in range(lines):
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 12))]
        rows.append(" ".join(words) + "\t" + " ".join(reversed(words)).upper() + "\n")
    path.write_text("".join(rows), encoding="utf-8")


def test_steps_mode_measures_each_variant_in_its_own_process(tmp_path: Path) -> None:
    data = tmp_path / "fra.txt"
    tatoeba_like(data)
    out = tmp_path / "rows.json"
    command = [sys.executable, str(SCRIPT), "--data", str(data), "--steps", "3", "--threads", "1"]
    command += ["--variant", "sentences=16", "--variant", "tokens=120,accumulate=2", "--json", str(out)]
    command += [part for setting in SMALL_MODEL for part in ("--set", setting)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    sentences, tokens = json.loads(out.read_text(encoding="utf-8"))
    assert (sentences["variant"], tokens["variant"]) == ("sentences=16", "tokens=120,accumulate=2")
    for row in (sentences, tokens):
        assert row["timed_steps"] == 3 and row["tokens_per_second"] > 0 and row["peak_rss_mib"] > 50
        assert row["peak_rss_mib"] >= row["prepared_rss_mib"] > 0
    assert tokens["batches"] >= 2 * tokens["steps"] - 1  # two batches per optimizer step
    rows, width = (int(n) for n in tokens["largest_batch"].split(" x "))
    assert rows * width <= 120  # the budget counts padded tokens
    assert "| sentences=16 |" in done.stdout and "| tokens=120,accumulate=2 |" in done.stdout
