"""Side-by-side benchmark: transduce, Joey NMT 2.3.0 and OpenNMT-py 3.5.1 on the same data, model and CPU.

One command trains the same LSTM encoder-decoder with Luong general attention with each toolkit on the
same data and the same tokens, decodes the test split greedily and with a beam of 5, scores every output
with the same scorer and prints a table of transduce/peer ratios:

    .venv/bin/python benchmarks/peers_benchmark.py --task dates --epochs 2 --seeds 1,2,3 --out /tmp/bench/dates
    .venv/bin/python benchmarks/peers_benchmark.py --task dates-book --epochs 2 --max-train 20000
    .venv/bin/python benchmarks/peers_benchmark.py --task multi30k --epochs 1 --max-train 10000
    .venv/bin/python benchmarks/peers_benchmark.py --task dates --quick          # a 2-minute smoke run
    .venv/bin/python benchmarks/peers_benchmark.py --task multi30k --check       # validate transduce's recipes only

Tasks (the data is converted under a temporary directory, never copied into the repository):
  dates       the peers' own toy task: ../shared/bench/peers/make_dates.py (20k/500/1k pairs, seed 1234)
  dates-book  the book's ../shared/data/date/date.txt, split by transduce's `dates` source (500 valid, 1k test,
              whole target dates per split), training pairs optionally subsampled with --max-train
  multi30k    ../shared/data/multi30k-en-de, de->en, train/val/test_2016_flickr; subword level: one sentencepiece
              BPE model per side (--vocab-size) is learned by transduce's `subword` tokenizer from the training
              split, and the peers get the very pieces it produces (the script checks that the model transduce
              learns during its own run is byte for byte the one that split the peers' files)

Tokens are identical for all three toolkits: characters (dates; the peers read them space-separated with U+2581
for a space) or the sentencepiece pieces (multi30k). Model: embeddings 64 (dates) or 256 (multi30k),
bidirectional 1-layer LSTM encoder of 256 (128 per direction), 1-layer LSTM decoder of 256, general attention,
Adam (lr 1e-3), gradient norm clipped at 5, the same batch size in sentences, no validation during training.
The differences that no setting removes are printed with the results.

transduce runs twice per seed (--transduce picks the rows): `transduce`, its default decoder (no input feeding:
the decoder runs over the whole target in one LSTM call), and `transduce input feeding`, the peers' own
architecture (`model.decoder.input_feeding: true`: the previous attentional vector joins the next input, a
per-step loop in training, as in both peers), the like-for-like comparison. --check builds and validates the
recipes of the chosen rows for the task and trains nothing.

Peers run from their venvs (made by ../shared/bench/peers/setup_venvs.sh; --peers-dir, default /tmp/peers) with
OMP_NUM_THREADS=MKL_NUM_THREADS=--threads and TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1, like the peers' own scripts.
transduce runs as `python -m transduce train` and a decoding subprocess of this script, with the same threads.
For each seed the three toolkits run one after another, in a rotating order, never in parallel.

Measured, per toolkit and seed (the table shows medians over seeds):
  train tok/s     target tokens (EOS included) / training-loop seconds, from each toolkit's own log
  epoch s         training-loop seconds per epoch; train wall s: the whole training command(s)
  greedy / beam   test sentences / decoding seconds (internal: the toolkit's own decoding time, without start-up
                  and model loading; cmd: the whole command), median of --reps runs
  peak RSS        the largest resident set of the training command and of the decoding commands (os.wait4)
  score           exact match (dates) or sacrebleu BLEU on detokenized text (multi30k), greedy and beam

--out PREFIX writes PREFIX.json (every number, per seed) and PREFIX.md (the tables and the conditions).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transduce._recipe.settings import PRECISIONS

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
PEER_SCRIPTS = SHARED / "bench" / "peers"
SPACE = "\u2581"
#: transduce's rows: row key -> the decoder settings that differ from its default decoder.
TRANSDUCE_ROWS: dict[str, dict[str, Any]] = {"transduce": {}, "transduce_if": {"input_feeding": True}}
#: --transduce names for the rows.
ROW_NAMES = {"default": "transduce", "input_feeding": "transduce_if"}
PEERS = ("joey", "onmt")
TOOLS = (*TRANSDUCE_ROWS, *PEERS)
LABELS = {
    "transduce": "transduce",
    "transduce_if": "transduce input feeding",
    "joey": "Joey NMT 2.3.0",
    "onmt": "OpenNMT-py 3.5.1",
}
BEAM = 5

# Joey runs through runpy so that torch is seeded before the model is built (Joey 2.3.0 seeds too late).
JOEY_SEEDED = (
    "import runpy, sys, torch\n"
    "torch.manual_seed(int(sys.argv[1])); sys.argv = ['joeynmt'] + sys.argv[2:]\n"
    "runpy.run_module('joeynmt', run_name='__main__', alter_sys=True)"
)


@dataclass
class Task:
    """Model and data settings of one benchmark task."""

    name: str
    metric: str  # "exact" or "bleu"
    embedding_dim: int
    dropout: float
    batch_size: int
    max_output: int
    train_size: int | None  # default training pairs (None: all)


TASKS = {
    "dates": Task("dates", "exact", 64, 0.1, 128, 30, 20000),
    "dates-book": Task("dates-book", "exact", 64, 0.1, 128, 30, 20000),
    "multi30k": Task("multi30k", "bleu", 256, 0.2, 64, 80, None),
}
HIDDEN = 256  # decoder state; the encoder's two directions together


@dataclass
class Data:
    """A task's data in the temp dir: STEM.raw.{src,tgt} (plain text) and STEM.{src,tgt} (tokens, space-separated)."""

    directory: Path
    references: list[str]
    detokenize: Callable[[str], str]  # a peer's output line -> text
    tokenizer: Any  # transduce tokenizer spec (recipe value), the same on both sides
    train_pairs: int
    target_tokens: int  # training target tokens incl. EOS, one epoch
    notes: list[str] = field(default_factory=list)


# --- data ---------------------------------------------------------------------------------------


def char_tokens(text: str) -> str:
    return " ".join(SPACE if c == " " else c for c in text)


def char_text(line: str) -> str:
    return "".join(line.split()).replace(SPACE, " ")


def write_split(directory: Path, stem: str, pairs: Sequence[tuple[str, str]], tokenize: Callable[[str], str]) -> None:
    for index, side in enumerate(("src", "tgt")):
        texts = [pair[index] for pair in pairs]
        (directory / f"{stem}.raw.{side}").write_text("".join(t + "\n" for t in texts), encoding="utf-8")
        (directory / f"{stem}.{side}").write_text("".join(tokenize(t) + "\n" for t in texts), encoding="utf-8")


def read_raw(directory: Path, stem: str) -> list[tuple[str, str]]:
    read = lambda side: (directory / f"{stem}.raw.{side}").read_text(encoding="utf-8").splitlines()  # noqa: E731
    return list(zip(read("src"), read("tgt"), strict=True))


def subsample(pairs: list[tuple[str, str]], size: int | None, seed: int = 1234) -> list[tuple[str, str]]:
    if size is None or size >= len(pairs):
        return pairs
    keep = sorted(random.Random(seed).sample(range(len(pairs)), size))
    return [pairs[i] for i in keep]


def prepare_dates(tmp: Path, train_size: int) -> Data:
    directory = tmp / "data"
    subprocess.run(
        [sys.executable, str(PEER_SCRIPTS / "make_dates.py"), str(directory), "--train", str(train_size)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return _char_data(directory, ["make_dates.py (the peers' generator), seed 1234"])


def prepare_book_dates(tmp: Path, train_size: int | None, path: Path) -> Data:
    from transduce._plugins.registry import discover

    source = discover().get("dataset", "dates")
    assert source is not None
    dates = source.cls(path=str(path), valid_size=500, test_size=1000)
    directory = tmp / "data"
    directory.mkdir()
    splits = {"train": "train", "dev": "valid", "test": "test"}
    for stem, split in splits.items():
        pairs = [(e.source, e.target) for e in dates.split(split)]
        if stem == "train":
            pairs = subsample(pairs, train_size)
        write_split(directory, stem, pairs, char_tokens)
    return _char_data(directory, [f"{path}: split by transduce's dates source (seed 1234, whole dates per split)"])


def _char_data(directory: Path, notes: list[str]) -> Data:
    train = read_raw(directory, "train")
    references = [t for _, t in read_raw(directory, "test")]
    tokens = sum(len(t) + 1 for _, t in train)
    return Data(directory, references, char_text, "char", len(train), tokens, notes)


def prepare_multi30k(tmp: Path, train_size: int | None, path: Path, vocab_size: int) -> Data:
    from transduce._plugins.registry import discover

    directory = tmp / "data"
    directory.mkdir()
    stems = {"train": "train", "dev": "val", "test": "test_2016_flickr"}
    raw: dict[str, list[tuple[str, str]]] = {}
    for stem, name in stems.items():
        sides = [(path / f"{name}.{lang}").read_text(encoding="utf-8").splitlines() for lang in ("de", "en")]
        pairs = [(s.strip(), t.strip()) for s, t in zip(*sides, strict=True)]
        pairs = [(s, t) for s, t in pairs if s and t]
        raw[stem] = subsample(pairs, train_size) if stem == "train" else pairs
        write_split(directory, stem, raw[stem], lambda t: t)  # tokens written below
    spec = subword_spec(vocab_size)
    registry = discover()
    info = registry.get("tokenizer", "subword")
    assert info is not None
    # Learned exactly as transduce's trainer learns it: from the training split its data source streams.
    parallel = registry.get("dataset", "parallel")
    assert parallel is not None
    source = parallel.cls(**_parallel_spec(directory))
    tokenizers = {}
    for index, side in enumerate(("src", "tgt")):
        tokenizer = info.cls(**{k: v for k, v in spec.items() if k != "name"})
        folder = tmp / "spm" / side
        folder.mkdir(parents=True)
        tokenizer.fit((example[index] for example in source.split("train")), folder)
        tokenizers[side] = tokenizer
        for stem in stems:
            texts = [pair[index] for pair in raw[stem]]
            lines = (" ".join(tokenizer.tokenize(t)) + "\n" for t in texts)
            (directory / f"{stem}.{side}").write_text("".join(lines), encoding="utf-8")
    target = tokenizers["tgt"]
    tokens = sum(len(line.split()) + 1 for line in (directory / "train.tgt").read_text(encoding="utf-8").splitlines())
    note = f"{path}: de->en, sentencepiece BPE vocab_size {vocab_size} per side, learned from the training split"
    return Data(
        directory,
        [t for _, t in raw["test"]],
        lambda line: target.detokenize(line.split()),
        spec,
        len(raw["train"]),
        tokens,
        [note],
    )


def subword_spec(vocab_size: int) -> dict[str, Any]:
    """The tokenizer of both sides of a subword task (recipe value)."""
    return {"name": "subword", "model_type": "bpe", "vocab_size": vocab_size}


def _parallel_spec(directory: Path) -> dict[str, Any]:
    return {
        "path": str(directory),
        "source_language": "src",
        "target_language": "tgt",
        "train": "train.raw",
        "valid": "dev.raw",
        "test": "test.raw",
        "deduplicate": False,
    }


# --- running and measuring ------------------------------------------------------------------------


@dataclass
class Ran:
    seconds: float
    max_rss_mb: float


def run(
    command: Sequence[str], env: dict[str, str], log: Path, stdin: Path | None = None, stdout: Path | None = None
) -> Ran:
    """Run `command` to completion; its wall time and peak resident memory (of it and its waited-for children)."""
    with open(log, "w") as err, open(stdout or log.with_suffix(".stdout"), "w") as out:
        stdin_file = open(stdin) if stdin else subprocess.DEVNULL
        try:
            started = time.perf_counter()
            process = subprocess.Popen(command, env=env, stdin=stdin_file, stdout=out, stderr=err)
            try:
                _, status, usage = os.wait4(process.pid, 0)
            except BaseException:  # interrupted (Ctrl-C, SIGTERM): leave no toolkit running
                process.kill()
                process.wait()
                raise
            seconds = time.perf_counter() - started
            process.returncode = os.waitstatus_to_exitcode(status)
        finally:
            if stdin:
                stdin_file.close()
    if process.returncode:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-25:])
        raise RuntimeError(f"{' '.join(map(str, command[:4]))} ... failed ({process.returncode}); {log}:\n{tail}")
    return Ran(seconds, usage.ru_maxrss / 1024)  # Linux: KiB


def environment(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1",
        PYTHONWARNINGS="ignore",
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class Settings:
    task: Task
    data: Data
    epochs: int
    lr: float
    threads: int
    reps: int
    peers_dir: Path
    work: Path
    precision: str = "fp32"  # transduce's train.precision; the peers always run fp32
    #: transduce's decoding precisions (--set train.precision=... when decoding); the first gives the plain row,
    #: each other one a row of its own ("transduce@bf16") with the same training figures.
    decode_precisions: tuple[str, ...] = ("fp32",)

    @property
    def env(self) -> dict[str, str]:
        return environment(self.threads)


def score(settings: Settings, hypotheses: list[str]) -> float:
    references = settings.data.references
    if len(hypotheses) != len(references):
        raise RuntimeError(f"{len(hypotheses)} outputs for {len(references)} test sentences")
    if settings.task.metric == "exact":
        return (
            100.0 * sum(h.strip() == r.strip() for h, r in zip(hypotheses, references, strict=True)) / len(references)
        )
    import sacrebleu

    return sacrebleu.corpus_bleu(hypotheses, [references]).score


def decode_reps(settings: Settings, one: Callable[[int, Path], tuple[float, Ran, list[str]]]) -> dict[str, Any]:
    """Run a decoding command `reps` times: median internal and whole-command sentences/s, peak RSS, score."""
    internal, wall, rss = [], [], []
    outputs: list[str] = []
    for rep in range(settings.reps):
        seconds, ran, outputs = one(rep, settings.work)
        internal.append(seconds)
        wall.append(ran.seconds)
        rss.append(ran.max_rss_mb)
    n = len(settings.data.references)
    return {
        "sps": n / statistics.median(internal),
        "sps_cmd": n / statistics.median(wall),
        "rss_mb": max(rss),
        "score": score(settings, outputs),
        "length": output_length(settings, outputs),
    }


def output_length(settings: Settings, outputs: list[str]) -> float:
    """Mean output length relative to the references' (characters for dates, words for multi30k): decoding
    speed depends on it, and an undertrained model may stop early or run to its limit."""
    size = len if settings.task.metric == "exact" else (lambda text: len(text.split()))
    return sum(size(o) for o in outputs) / max(1, sum(size(r) for r in settings.data.references))


# --- transduce --------------------------------------------------------------------------------------


def transduce_recipe(settings: Settings, seed: int, row: str = "transduce") -> dict[str, Any]:
    """The recipe of one transduce row (a key of TRANSDUCE_ROWS) for `seed`."""
    from transduce._recipe.recipe import EVALUATE_PARAMS

    task, data = settings.task, settings.data
    metric = "exact_match" if task.metric == "exact" else "bleu"
    side = {"tokenizer": data.tokenizer, "min_freq": 1, "max_size": None}
    evaluate: dict[str, Any] = {"split": "valid", "metrics": [metric], "examples": 0}
    known = {p.name for p in EVALUATE_PARAMS}
    evaluate.update({k: 0 for k in ("heatmaps", "extremes") if k in known})
    return {
        "seed": seed,
        "data": {"name": "parallel", **_parallel_spec(data.directory)},
        "source": dict(side),
        "target": dict(side),
        "model": {
            "embedding_dim": task.embedding_dim,
            "dropout": task.dropout,
            "encoder": {"name": "lstm", "hidden_size": HIDDEN, "bidirectional": True, "layers": 1},
            "decoder": {
                "name": "lstm",
                "hidden_size": HIDDEN,
                "dropout": task.dropout,
                "attention": "general",
                **TRANSDUCE_ROWS[row],
            },
        },
        "train": {
            "epochs": settings.epochs,
            "batch_size": task.batch_size,
            "lr": settings.lr,
            "clip_grad_norm": 5.0,
            "patience": None,
            "best_metric": metric,
            "device": "cpu",
            "precision": settings.precision,
            "threads": settings.threads,
            "valid_every": settings.epochs,
        },
        "search": {"name": "greedy", "max_length": task.max_output},
        "evaluate": evaluate,
    }


def run_transduce(settings: Settings, seed: int, row: str = "transduce") -> dict[str, Any]:
    import yaml

    work = settings.work / f"{row}_s{seed}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    recipe = work / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(transduce_recipe(settings, seed, row), sort_keys=False), encoding="utf-8")
    python = sys.executable
    trained = run(
        [python, "-m", "transduce", "train", str(recipe), "--run-dir", str(work / "run")],
        settings.env,
        work / "train.log",
    )
    records = [json.loads(line) for line in (work / "run" / "metrics.jsonl").read_text().splitlines()]
    seconds = sum(r["seconds"] for r in records)
    tokens = sum(r["tokens_per_second"] * r["seconds"] for r in records)
    result = {
        "train_tps": tokens / seconds,
        "epoch_s": seconds / len(records),
        "train_wall_s": trained.seconds,
        "train_rss_mb": trained.max_rss_mb,
        "notes": _same_subword_model(settings, work / "run"),
    }

    def decoder(beam: int, variant: str) -> Callable[[int, Path], tuple[float, Ran, list[str]]]:
        def one(rep: int, _: Path) -> tuple[float, Ran, list[str]]:
            out = work / f"test.{beam}.{variant}.hyp"
            command = [
                python,
                str(Path(__file__).resolve()),
                "_decode",
                str(work / "run"),
                str(settings.data.directory / "test.raw.src"),
                str(out),
            ]
            command += [
                "--beam",
                str(beam),
                "--batch-size",
                str(settings.task.batch_size),
                "--max-length",
                str(settings.task.max_output),
            ]
            precision_only, shortlist = split_variant(variant)
            command += ["--threads", str(settings.threads), "--precision", precision_only]
            command += ["--shortlist", str(shortlist)] if shortlist else []
            log = work / f"decode.{beam}.{variant}.{rep}"
            ran = run(command, settings.env, log.with_suffix(".log"), stdout=log.with_suffix(".json"))
            seconds = json.loads(log.with_suffix(".json").read_text())["seconds"]
            return seconds, ran, out.read_text(encoding="utf-8").splitlines()

        return one

    result["by_precision"] = {
        precision: {
            "greedy": decode_reps(settings, decoder(1, precision)),
            "beam": decode_reps(settings, decoder(BEAM, precision)),
        }
        for precision in settings.decode_precisions
    }
    result.update(result["by_precision"][settings.decode_precisions[0]])
    return result


def precision_rows(results: dict[str, dict[int, dict[str, Any]]], settings: Settings) -> None:
    """Add a row per further decoding precision of each transduce row: its training figures, that decoding."""
    for tool in [t for t in results if t in TRANSDUCE_ROWS]:
        for precision in settings.decode_precisions[1:]:
            results[f"{tool}@{precision}"] = {
                seed: {**result, **result["by_precision"][precision]} for seed, result in results[tool].items()
            }


#: A decoding variant: a precision, optionally with a vocabulary shortlist ("int8+shortlist20": int8 products over
#: evaluate.shortlist=20 candidates per source token).
SHORTLIST_MARK = "+shortlist"


def split_variant(variant: str) -> tuple[str, int | None]:
    """ "int8+shortlist20" -> ("int8", 20); "bf16" -> ("bf16", None). Raises ValueError on anything else."""
    precision, mark, size = variant.partition(SHORTLIST_MARK)
    if precision not in PRECISIONS or (mark and not (size.isdigit() and int(size) > 0)):
        raise ValueError(
            f"{variant!r}: a decoding variant is a precision ({', '.join(PRECISIONS)}), optionally followed by "
            f"{SHORTLIST_MARK}N (N > 0), e.g. int8{SHORTLIST_MARK}20"
        )
    return precision, int(size) if mark else None


def row_label(tool: str) -> str:
    """A row's label: a toolkit, or a transduce row decoding in another variant ("transduce@int8+shortlist20")."""
    row, _, variant = tool.partition("@")
    if not variant:
        return LABELS[row]
    precision, shortlist = split_variant(variant)
    return f"{LABELS[row]} ({precision} decoding{f', shortlist {shortlist}' if shortlist else ''})"


def is_transduce(tool: str) -> bool:
    return tool.partition("@")[0] in TRANSDUCE_ROWS


def _same_subword_model(settings: Settings, run_dir: Path) -> list[str]:
    """For subword tasks: confirm transduce learned the model whose pieces the peers were given."""
    if settings.data.tokenizer == "char":
        return []
    notes = []
    for side, folder in (("src", "source"), ("tgt", "target")):
        ours = (settings.work / "spm" / side / "sentencepiece.model").read_bytes()
        theirs = (run_dir / "tokenizers" / folder / "sentencepiece.model").read_bytes()
        if ours != theirs:
            notes.append(f"WARNING: transduce's {folder} sentencepiece model differs from the one given to the peers")
    return notes


def decode_main(argv: Sequence[str]) -> int:
    """`_decode RUN INPUT OUTPUT`: translate INPUT with the run's best checkpoint; print the decoding seconds."""
    parser = argparse.ArgumentParser(prog="peers_benchmark.py _decode")
    parser.add_argument("run", type=Path)
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--beam", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-length", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--shortlist", type=int, default=None, help="evaluate.shortlist (default: none)")
    args = parser.parse_args(argv)
    import torch

    from transduce._decoding.translator import Translator
    from transduce._plugins.registry import discover
    from transduce._runs.rundir import RunDir

    torch.set_num_threads(args.threads)
    from transduce._cli.main import KERNEL_CACHES_DEFAULT, cap_kernel_caches

    # The kernel caches `transduce translate` keeps (set before the first kernel), so the figures are what it does.
    cap_kernel_caches(KERNEL_CACHES_DEFAULT)
    overrides = [f"search.max_length={args.max_length}", f"train.precision={args.precision}"]
    overrides += [f"evaluate.shortlist={args.shortlist}"] if args.shortlist else []
    if args.beam > 1:
        overrides += ["search.name=beam", f"search.size={args.beam}", "search.length_penalty=0.0"]
    translator = Translator.from_run(RunDir.open(args.run), discover(), device="cpu", overrides=overrides)
    texts = args.input.read_text(encoding="utf-8").splitlines()
    started = time.perf_counter()
    outputs = translator.translate(texts, batch_size=args.batch_size)
    seconds = time.perf_counter() - started
    args.output.write_text("".join(o + "\n" for o in outputs), encoding="utf-8")
    print(json.dumps({"seconds": seconds}))
    return 0


# --- the machine's ceiling and each figure's share of it -----------------------------------------

#: Product shapes (rows, inner, columns) the ceiling is the best of: a square one, and an output layer's.
CEILING_SHAPES = ((1024, 1024, 1024), (512, 256, 8192))


def ceiling_main(argv: Sequence[str]) -> int:
    """`_ceiling THREADS`: the matrix-product rate of this CPU, GFLOP/s per dtype, as JSON on stdout."""
    import torch

    torch.set_num_threads(int(argv[0]))
    products = {
        "fp32": (torch.float32, torch.mm),
        "bf16": (torch.bfloat16, torch.mm),
        "int8": (torch.int8, getattr(torch, "_int_mm", None)),
    }
    figures = {}
    for name, (dtype, product) in products.items():
        try:
            figures[name] = max(_gflops(product, shape, dtype) for shape in CEILING_SHAPES)
        except (RuntimeError, TypeError):  # no kernel for this dtype here
            continue
    print(json.dumps(figures))
    return 0


def _gflops(product: Callable[..., Any], shape: tuple[int, int, int], dtype: Any) -> float:
    import torch

    rows, inner, columns = shape
    if dtype.is_floating_point:
        a, b = torch.randn(rows, inner, dtype=dtype), torch.randn(inner, columns, dtype=dtype)
    else:
        a, b = (
            torch.randint(-127, 128, (rows, inner), dtype=dtype),
            torch.randint(-127, 128, (inner, columns), dtype=dtype),
        )
    for _ in range(3):
        product(a, b)
    reps, started = 0, time.perf_counter()
    while time.perf_counter() - started < 0.5:
        product(a, b)
        reps += 1
    return 2.0 * rows * inner * columns * reps / (time.perf_counter() - started) / 1e9


def measure_ceiling(settings: Settings) -> dict[str, float]:
    command = [sys.executable, str(Path(__file__).resolve()), "_ceiling", str(settings.threads)]
    done = subprocess.run(command, env=settings.env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def _token_counts(path: Path) -> list[int]:
    return [len(line.split()) for line in path.read_text(encoding="utf-8").splitlines()]


def work_model(settings: Settings) -> dict[str, float]:
    """Floating-point operations (2 per multiply-add) of the benchmark's model, from its sizes and the data:
    per training target token (forward and backward, taken as 3x the forward) and per decoded target token and
    source token. An estimate: it counts the products (LSTM gates, attention, attentional and output layers),
    not the element-wise work."""
    directory, task = settings.data.directory, settings.task
    vocab = len(
        {tok for line in (directory / "train.tgt").read_text(encoding="utf-8").split("\n") for tok in line.split()}
    )
    source, target = _token_counts(directory / "train.src"), _token_counts(directory / "train.tgt")
    test_source = _token_counts(directory / "test.src")
    embedding, hidden, half = task.embedding_dim, HIDDEN, HIDDEN // 2
    vocab += 4  # <pad> <unk> <s> </s>
    encoder = 2 * 2 * 4 * half * (embedding + half)  # per source token, both directions
    mean_source = sum(source) / len(source)
    test_mean_source = sum(test_source) / len(test_source)

    def step(feeding: bool, source_length: float) -> float:  # one decoder step of one row
        cell = 2 * 4 * hidden * (embedding + hidden + (hidden if feeding else 0))
        attention = 2 * hidden * hidden + 2 * 2 * source_length * hidden  # query projection, scores, context
        return cell + attention + 2 * hidden * 2 * hidden + 2 * hidden * vocab  # + attentional, output layers

    train_per_target = len(target) and sum(t + 1 for t in target) / len(target)
    return {
        "encoder_per_source_token": encoder,
        "test_mean_source": test_mean_source,
        "step": step(False, test_mean_source),
        "step_feeding": step(True, test_mean_source),
        "train": 3 * (step(False, mean_source) + encoder * mean_source / train_per_target),
        "train_feeding": 3 * (step(True, mean_source) + encoder * mean_source / train_per_target),
    }


def add_shares(
    results: dict[str, dict[int, dict[str, Any]]], settings: Settings, ceiling: dict[str, float], work: dict[str, float]
) -> None:
    """Each row's training and decoding rates as a percentage of the ceiling of the dtype it multiplies in."""
    reference_tokens = sum(_token_counts(settings.data.directory / "test.tgt")) / len(settings.data.references)
    for tool, per_seed in results.items():
        row, _, precision = tool.partition("@")
        feeding = row != "transduce"  # the peers and the input-feeding row
        decode_dtype, shortlisted = (
            split_variant(precision or settings.decode_precisions[0]) if is_transduce(tool) else ("fp32", None)
        )
        train_dtype = settings.precision if is_transduce(tool) else "fp32"
        step = work["step_feeding" if feeding else "step"]
        for result in per_seed.values():
            result["train_ceil"] = _share(
                result["train_tps"] * work["train_feeding" if feeding else "train"], ceiling, train_dtype
            )
            for mode, rows in (("greedy", 1), ("beam", BEAM)):
                figures = result[mode]
                if shortlisted:  # the work model counts the whole output layer: a shortlist does less work
                    figures["ceil"] = float("nan")
                    continue
                steps = reference_tokens * figures["length"] + 1  # output tokens and </s>, per sentence
                flops = work["encoder_per_source_token"] * work["test_mean_source"] + rows * steps * step
                figures["ceil"] = _share(figures["sps"] * flops, ceiling, decode_dtype)


def _share(flops_per_second: float, ceiling: dict[str, float], dtype: str) -> float:
    rate = ceiling.get(dtype) or ceiling["fp32"]
    return 100.0 * flops_per_second / (rate * 1e9)


# --- Joey NMT -------------------------------------------------------------------------------------

JOEY_CONFIG = """\
name: "bench"
joeynmt_version: "2.3.0"
use_cuda: False
fp16: False
random_seed: {seed}
data:
  train: "{data}/train"
  dev: "{data}/dev"
  test: "{data}/test"
  dataset_type: "plain"
  src: {{lang: "src", level: "word", lowercase: False, max_length: 1000, voc_min_freq: 1, voc_limit: 1000000}}
  trg: {{lang: "tgt", level: "word", lowercase: False, max_length: 1000, voc_min_freq: 1, voc_limit: 1000000}}
training:
  model_dir: "{run}/model"
  overwrite: True
  optimizer: "adam"
  adam_betas: [0.9, 0.999]
  learning_rate: {lr}
  learning_rate_min: 1.0e-8
  scheduling: "exponential"
  decrease_factor: 1.0
  clip_grad_norm: 5.0
  label_smoothing: 0.0
  normalization: "batch"
  batch_size: {batch}
  batch_type: "sentence"
  batch_multiplier: 1
  epochs: {epochs}
  validation_freq: 100000000
  logging_freq: 100
  early_stopping_metric: "loss"
  shuffle: True
  num_workers: 0
  keep_best_ckpts: 1
  print_valid_sents: []
testing:
  load_model: "{run}/model/latest.ckpt"
  n_best: 1
  beam_size: {beam}
  beam_alpha: -1
  batch_size: {batch}
  batch_type: "sentence"
  max_output_length: {max_output}
  eval_metrics: ["sequence_accuracy"]
  return_prob: "none"
model:
  initializer: "uniform"
  init_weight: 0.1
  embed_initializer: "uniform"
  embed_init_weight: 0.1
  bias_initializer: "uniform"
  bias_init_weight: 0.1
  lstm_forget_gate: 0.0
  tied_embeddings: False
  tied_softmax: False
  encoder:
    type: "recurrent"
    rnn_type: "lstm"
    embeddings: {{embedding_dim: {embedding}, scale: False, dropout: {dropout}}}
    hidden_size: {per_direction}
    bidirectional: True
    num_layers: 1
    dropout: {dropout}
  decoder:
    type: "recurrent"
    rnn_type: "lstm"
    embeddings: {{embedding_dim: {embedding}, scale: False, dropout: {dropout}}}
    hidden_size: {hidden}
    num_layers: 1
    dropout: {dropout}
    hidden_dropout: {dropout}
    attention: "luong"
    input_feeding: True
    init_hidden: "last"
"""

JOEY_EPOCH = re.compile(
    r"Epoch\s+(\d+), total training loss: ([\d.]+), num\. of seqs: (\d+), num\. of tokens: (\d+), ([\d.]+)\[sec\]"
)


def run_joey(settings: Settings, seed: int) -> dict[str, Any]:
    work = settings.work / f"joey_s{seed}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    python = str(settings.peers_dir / "joey-venv" / "bin" / "python")
    task = settings.task
    values = dict(
        seed=seed,
        data=settings.data.directory,
        run=work,
        lr=settings.lr,
        batch=task.batch_size,
        epochs=settings.epochs,
        max_output=task.max_output,
        embedding=task.embedding_dim,
        dropout=task.dropout,
        per_direction=HIDDEN // 2,
        hidden=HIDDEN,
    )
    for beam in (1, BEAM):
        (work / f"config.{beam}.yaml").write_text(JOEY_CONFIG.format(beam=beam, **values), encoding="utf-8")
    joey = [python, "-c", JOEY_SEEDED, str(seed)]
    trained = run([*joey, "train", str(work / "config.1.yaml"), "--skip-test"], settings.env, work / "train.log")
    epochs = JOEY_EPOCH.findall((work / "train.log").read_text(errors="replace"))
    if len(epochs) != settings.epochs:
        raise RuntimeError(f"Joey: found {len(epochs)} epoch lines in {work / 'train.log'}")
    seconds = sum(float(e[4]) for e in epochs)
    result: dict[str, Any] = {
        "train_tps": sum(int(e[3]) for e in epochs) / seconds,
        "epoch_s": seconds / len(epochs),
        "train_wall_s": trained.seconds,
        "train_rss_mb": trained.max_rss_mb,
        "notes": [],
    }

    def decoder(beam: int) -> Callable[[int, Path], tuple[float, Ran, list[str]]]:
        def one(rep: int, _: Path) -> tuple[float, Ran, list[str]]:
            log, out = work / f"translate.{beam}.{rep}.log", work / f"test.{beam}.hyp"
            command = [*joey, "translate", str(work / f"config.{beam}.yaml")]
            ran = run(command, settings.env, log, stdin=settings.data.directory / "test.src", stdout=out)
            took = re.findall(r"Generation took ([\d.]+)\[sec\]", log.read_text(errors="replace"))
            if not took:
                raise RuntimeError(f"Joey: no 'Generation took' in {log}")
            lines = out.read_text(encoding="utf-8").splitlines()
            return float(took[-1]), ran, [settings.data.detokenize(line) for line in lines]

        return one

    result["greedy"] = decode_reps(settings, decoder(1))
    result["beam"] = decode_reps(settings, decoder(BEAM))
    return result


# --- OpenNMT-py ----------------------------------------------------------------------------------

ONMT_CONFIG = """\
save_data: "{run}/samples"
src_vocab: "{run}/vocab.src"
tgt_vocab: "{run}/vocab.tgt"
src_vocab_size: 1000000
tgt_vocab_size: 1000000
src_words_min_frequency: 1
tgt_words_min_frequency: 1
share_vocab: false
overwrite: true
data:
  corpus_1:
    path_src: "{data}/train.src"
    path_tgt: "{data}/train.tgt"
save_model: "{run}/model"
seed: {seed}
world_size: 1
gpu_ranks: []
num_workers: 0
bucket_size: {bucket}
train_steps: {steps}
valid_steps: 100000000
save_checkpoint_steps: {steps}
keep_checkpoint: 1
report_every: {report}
batch_size: {batch}
batch_type: sents
normalization: sents
accum_count: [1]
optim: adam
learning_rate: {lr}
adam_beta1: 0.9
adam_beta2: 0.999
decay_method: none
max_grad_norm: 5
param_init: 0.1
label_smoothing: 0.0
model_dtype: fp32
model_task: seq2seq
encoder_type: brnn
decoder_type: rnn
rnn_type: LSTM
enc_layers: 1
dec_layers: 1
word_vec_size: {embedding}
enc_hid_size: {hidden}
dec_hid_size: {hidden}
bridge: false
global_attention: general
global_attention_function: softmax
input_feed: 1
dropout: [{dropout}]
copy_attn: false
coverage_attn: false
position_encoding: false
"""

ONMT_STEP = re.compile(
    r"Step (\d+)/\s*\d+; acc: +([\d.]+); ppl: +([\d.]+); xent: +([\d.]+); lr: [\d.e-]+; sents: +(\d+); "
    r"bsz: +(\d+)/ *(\d+)/ *(\d+); +[\d.]+/ *[\d.]+ tok/s; +(\d+) sec;"
)


def _onmt_time(log: str, pattern: str) -> float:
    found = re.search(r"\[(\S+ \S+) INFO\] " + pattern, log)
    if not found:
        raise RuntimeError(f"OpenNMT-py: no {pattern!r} in the training log")
    return datetime.datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def run_onmt(settings: Settings, seed: int) -> dict[str, Any]:
    work = settings.work / f"onmt_s{seed}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    venv = settings.peers_dir / "onmt-venv" / "bin"
    task = settings.task
    # One bucket holds the whole corpus, so a bucket is one epoch of length-sorted batches.
    per_epoch = max(1, settings.data.train_pairs // task.batch_size)
    config = work / "config.yaml"
    config.write_text(
        ONMT_CONFIG.format(
            run=work,
            data=settings.data.directory,
            seed=seed,
            bucket=settings.data.train_pairs,
            steps=per_epoch * settings.epochs,
            report=per_epoch,
            batch=task.batch_size,
            lr=settings.lr,
            embedding=task.embedding_dim,
            hidden=HIDDEN,
            dropout=task.dropout,
        ),
        encoding="utf-8",
    )
    vocab = run(
        [str(venv / "onmt_build_vocab"), "-config", str(config), "-n_sample", "-1"], settings.env, work / "vocab.log"
    )
    trained = run([str(venv / "onmt_train"), "-config", str(config)], settings.env, work / "train.log")
    log = (work / "train.log").read_text(errors="replace")
    rows = ONMT_STEP.findall(log)
    if not rows:
        raise RuntimeError(f"OpenNMT-py: no step reports in {work / 'train.log'}")
    loop = _onmt_time(log, "Saving checkpoint") - _onmt_time(log, "Start training loop")
    tokens = sum(int(r[6]) * per_epoch for r in rows)  # average target tokens per batch x batches per report
    result: dict[str, Any] = {
        "train_tps": tokens / loop,
        "epoch_s": loop / settings.epochs,
        "train_wall_s": vocab.seconds + trained.seconds,
        "train_rss_mb": max(vocab.max_rss_mb, trained.max_rss_mb),
        "notes": [],
    }
    checkpoint = sorted(work.glob("model_step_*.pt"))[-1]

    def decoder(beam: int) -> Callable[[int, Path], tuple[float, Ran, list[str]]]:
        def one(rep: int, _: Path) -> tuple[float, Ran, list[str]]:
            log_path, out = work / f"translate.{beam}.{rep}.log", work / f"test.{beam}.hyp"
            command = [
                str(venv / "onmt_translate"),
                "-model",
                str(checkpoint),
                "-src",
                str(settings.data.directory / "test.src"),
            ]
            command += ["-output", str(out), "-gpu", "-1", "-beam_size", str(beam), "-batch_size", str(task.batch_size)]
            command += ["-batch_type", "sents", "-max_length", str(task.max_output), "-length_penalty", "none"]
            command += ["-report_time"]
            ran = run(command, settings.env, log_path)
            text = log_path.read_text(errors="replace") + log_path.with_suffix(".stdout").read_text(errors="replace")
            lines = out.read_text(encoding="utf-8").splitlines()
            # -report_time prints the total with one decimal; tokens/s (predicted tokens / total) is exact.
            speed = re.findall(r"Tokens per second: ([\d.]+)", text)
            if not speed:
                raise RuntimeError(f"OpenNMT-py: no 'Tokens per second' in {log_path}")
            predicted = sum(len(line.split()) for line in lines)
            return predicted / float(speed[-1]), ran, [settings.data.detokenize(line) for line in lines]

        return one

    result["greedy"] = decode_reps(settings, decoder(1))
    result["beam"] = decode_reps(settings, decoder(BEAM))
    return result


RUNNERS: dict[str, Callable[[Settings, int], dict[str, Any]]] = {
    **{row: functools.partial(run_transduce, row=row) for row in TRANSDUCE_ROWS},
    "joey": run_joey,
    "onmt": run_onmt,
}

# --- the report ---------------------------------------------------------------------------------

# (key, label, format, higher is better)
COLUMNS = (
    ("train_tps", "train tok/s", "{:,.0f}", True),
    ("epoch_s", "epoch s", "{:.1f}", False),
    ("train_wall_s", "train wall s", "{:.1f}", False),
    ("greedy.sps", "greedy sent/s", "{:,.0f}", True),
    ("greedy.sps_cmd", "greedy sent/s (cmd)", "{:,.0f}", True),
    ("beam.sps", f"beam{BEAM} sent/s", "{:,.0f}", True),
    ("beam.sps_cmd", f"beam{BEAM} sent/s (cmd)", "{:,.0f}", True),
    ("train_rss_mb", "train peak MiB", "{:,.0f}", False),
    ("decode_rss_mb", "decode peak MiB", "{:,.0f}", False),
    ("greedy.score", "score greedy", "{:.2f}", True),
    ("beam.score", f"score beam{BEAM}", "{:.2f}", True),
    ("greedy.length", "length greedy", "{:.2f}", True),
    ("beam.length", f"length beam{BEAM}", "{:.2f}", True),
    ("train_ceil", "train % ceiling", "{:.1f}", True),
    ("greedy.ceil", "greedy % ceiling", "{:.1f}", True),
    ("beam.ceil", f"beam{BEAM} % ceiling", "{:.1f}", True),
)

DIFFERENCES = (
    "Input feeding: both peers feed the previous attentional vector into the decoder LSTM (a Python loop over target "
    "positions in training); so does the `transduce input feeding` row; the `transduce` row does not, so its decoder "
    "runs over the whole target in one LSTM call.",
    "Decoder start: Joey h0 = c0 = the encoder's final h (both directions); OpenNMT-py and transduce (h0, c0) = the "
    "encoder's final (h, c).",
    "Attentional layer tanh(W[h; c]): Joey and transduce with a bias, OpenNMT-py without; output layer: Joey without "
    "a bias, OpenNMT-py and transduce with one. Dropout: all on the embeddings; Joey on [h; c] before the "
    "attentional layer, OpenNMT-py and transduce after it.",
    "Initialisation: the peers draw every weight from U(-0.1, 0.1); transduce keeps PyTorch's defaults.",
    "Loss: the peers sum the token cross-entropy and divide by the sentences; transduce takes the mean over target "
    "tokens (Adam is nearly scale-free, but the gradient clipping at norm 5 binds at different points).",
    "Batches of at most the same number of sentences: Joey shuffles at random (no length bucketing); OpenNMT-py "
    "sorts the whole corpus by length (one bucket per epoch) and skips a source repeated within a batch; transduce "
    "cuts each source length's pairs into near-equal batches (rare lengths share batches).",
    "Vocabularies: the same tokens; specials differ (Joey 4, OpenNMT-py 5, transduce 4).",
    "Beam search ranks by the raw log-probability in all three (no length penalty); transduce also bounds the "
    "output by 2 x source tokens + 20.",
)


def _get(result: dict[str, Any], key: str) -> float:
    value: Any = result
    for part in key.split("."):
        value = value[part]
    return float(value)


def summarize(results: dict[str, dict[int, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Median over seeds of every column, per toolkit."""
    for per_seed in results.values():
        for result in per_seed.values():
            result["decode_rss_mb"] = max(result["greedy"]["rss_mb"], result["beam"]["rss_mb"])
    return {
        tool: {key: statistics.median(_get(r, key) for r in per_seed.values()) for key, *_ in COLUMNS}
        for tool, per_seed in results.items()
        if per_seed
    }


def ratio_rows(medians: dict[str, dict[str, float]]) -> list[tuple[str, list[str]]]:
    """Each transduce row over each peer, column by column."""
    rows = []
    for ours in (tool for tool in medians if is_transduce(tool)):
        for peer in (p for p in PEERS if p in medians):
            cells = []
            for key, *_ in COLUMNS:
                theirs = medians[peer][key]
                cells.append(f"{medians[ours][key] / theirs:.2f}x" if theirs else "-")
            rows.append((f"{row_label(ours)} / {LABELS[peer]}", cells))
    return rows


def targets(medians: dict[str, dict[str, float]], metric: str = "exact") -> list[str]:
    """The issue's targets, checked for each transduce row against the faster peer; a row decoding in another
    precision also against the accuracy of the same runs decoded in the first precision."""
    lines = []
    for tool in (t for t in medians if is_transduce(t)):
        lines += [f"{row_label(tool)}: {line}" for line in _targets_of(medians, tool, metric)]
    return lines


def _targets_of(medians: dict[str, dict[str, float]], tool: str, metric: str) -> list[str]:
    peers = [p for p in PEERS if p in medians]
    ours = medians[tool]
    lines = []
    row, _, precision = tool.partition("@")
    if precision:  # the issue's bound: BLEU within 0.3, exact match within 0.2 points of the first precision's
        bound = 0.2 if metric == "exact" else 0.3
        for key in ("greedy.score", "beam.score"):
            gap = ours[key] - medians[row][key]
            verdict = "met" if gap >= -bound else "MISSED"
            lines.append(f"{verdict}: {key} within {bound} of the same runs' first precision ({gap:+.2f})")
    if not peers:
        return lines

    def best(key: str, higher: bool = True) -> tuple[str, float]:
        pick = (max if higher else min)(peers, key=lambda p: medians[p][key])
        return pick, medians[pick][key]

    for key, text, factor in (
        ("train_tps", "training tok/s >= 2x the faster peer", 2.0),
        ("greedy.sps", "greedy sent/s >= 3x the faster peer", 3.0),
        ("beam.sps", f"beam{BEAM} sent/s >= 2x the faster peer", 2.0),
    ):
        peer, value = best(key)
        ratio = ours[key] / value
        lines.append(f"{'met' if ratio >= factor else 'MISSED'}: {text} ({ratio:.2f}x {LABELS[peer]})")
    fastest = best("train_tps")[0]
    for key in ("greedy.score", "beam.score"):
        theirs = medians[fastest][key]
        verdict = "met" if ours[key] >= theirs else "MISSED"
        lines.append(f"{verdict}: {key} equal or better than the faster peer ({ours[key]:.2f} vs {theirs:.2f})")
    for key in ("train_rss_mb", "decode_rss_mb"):
        lowest = min(medians[p][key] for p in peers)
        verdict = "met" if ours[key] <= lowest else "MISSED"
        lines.append(f"{verdict}: {key} no higher than the peers' ({ours[key]:,.0f} vs {lowest:,.0f} MiB)")
    return lines


def conditions(
    args: argparse.Namespace, settings: Settings, started: float, loads: list[tuple[float, ...]]
) -> dict[str, Any]:
    import torch

    return {
        "date": datetime.datetime.fromtimestamp(started, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "task": settings.task.name,
        "train_pairs": settings.data.train_pairs,
        "train_target_tokens_per_epoch": settings.data.target_tokens,
        "test_pairs": len(settings.data.references),
        "epochs": settings.epochs,
        "seeds": args.seeds,
        "decode_reps": settings.reps,
        "batch_size": settings.task.batch_size,
        "lr": settings.lr,
        "threads": settings.threads,
        "transduce precision (training; decoding)": f"{settings.precision}; {', '.join(settings.decode_precisions)}",
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "torch (transduce)": torch.__version__,
        "load average (1 min) before each seed and at the end": [round(load[0], 2) for load in loads],
        "data": settings.data.notes,
        "minutes": round((time.time() - started) / 60, 1),
    }


def markdown(medians: dict[str, dict[str, float]], info: dict[str, Any], checks: list[str], notes: list[str]) -> str:
    head = "| toolkit | " + " | ".join(label for _, label, *_ in COLUMNS) + " |"
    lines = [f"# transduce vs peers: {info['task']}", "", head, "|" + "---|" * (len(COLUMNS) + 1)]
    for tool, values in medians.items():
        cells = [fmt.format(values[key]) for key, _, fmt, _ in COLUMNS]
        lines.append(f"| {row_label(tool)} | " + " | ".join(cells) + " |")
    for ratio, cells in ratio_rows(medians):
        lines.append(f"| **{ratio}** | " + " | ".join(cells) + " |")
    unit = "characters" if info["task"] != "multi30k" else "words"
    lines += ["", "Medians over seeds. Score: " + ("exact match %" if info["task"] != "multi30k" else "BLEU") + "."]
    lines += [f"Length: mean output length / mean reference length, in {unit}.", ""]
    lines += ["## Targets", "", *(f"- {c}" for c in checks), "", "## Conditions", ""]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines += ["", "## Model differences", "", *(f"- {d}" for d in DIFFERENCES)]
    if notes:
        lines += ["", "## Notes", "", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def print_table(medians: dict[str, dict[str, float]], info: dict[str, Any], checks: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"transduce vs peers: {info['task']} (medians over seeds {info['seeds']})")
    table.add_column("toolkit")
    for _, label, *_ in COLUMNS:
        table.add_column(label, justify="right")
    for tool, values in medians.items():
        table.add_row(row_label(tool), *(fmt.format(values[key]) for key, _, fmt, _ in COLUMNS))
    for ratio, cells in ratio_rows(medians):
        table.add_row(f"[bold]{ratio}[/]", *cells)
    console = Console(width=250)
    console.print(table)
    for check in checks:
        console.print(check)


# --- main ------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASKS), default="dates")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (default 1,2,3)")
    parser.add_argument("--peers", default="joey,onmt", help="comma-separated peers to run: joey, onmt (or none)")
    parser.add_argument("--max-train", type=int, default=None, help="training pairs (default: the task's)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate of all toolkits")
    parser.add_argument("--batch-size", type=int, default=None, help="sentences per batch (default: the task's)")
    parser.add_argument("--vocab-size", type=int, default=8000, help="multi30k: sentencepiece pieces per side")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="transduce's train.precision (default fp32, like the peers; bf16 trains faster on CPUs with AMX, "
        "but needs a larger oneDNN cache to pay, so more memory: see docs/scaling.md)",
    )
    parser.add_argument(
        "--decode-precision",
        default=None,
        help="transduce's decoding precisions, comma-separated (default: --precision's, as `transduce evaluate` "
        "decodes a run); each after the first adds rows decoding the same runs in it, e.g. fp32,bf16,int8 (the "
        f"peers decode in fp32); a precision followed by {SHORTLIST_MARK}N also decodes with evaluate.shortlist=N, "
        f"e.g. int8{SHORTLIST_MARK}20",
    )
    parser.add_argument("--reps", type=int, default=3, help="decoding runs per setting (median)")
    parser.add_argument("--peers-dir", type=Path, default=Path("/tmp/peers"), help="holds joey-venv and onmt-venv")
    parser.add_argument("--date-file", type=Path, default=SHARED / "data" / "date" / "date.txt")
    parser.add_argument("--multi30k-dir", type=Path, default=SHARED / "data" / "multi30k-en-de")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep the runs here (default: a temp dir, removed)")
    parser.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.md")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 pairs, 1 epoch, 1 seed, 1 rep")
    parser.add_argument(
        "--transduce",
        default=",".join(ROW_NAMES),
        help="comma-separated transduce rows: default (its own decoder), input_feeding (the peers' architecture); "
        "default: both",
    )
    parser.add_argument(
        "--check", action="store_true", help="validate transduce's recipes for the task and exit (trains nothing)"
    )
    args = parser.parse_args(argv)
    rows = [r for r in args.transduce.split(",") if r]
    if not rows or set(rows) - set(ROW_NAMES):
        parser.error(f"--transduce takes a list of {', '.join(ROW_NAMES)}, got {args.transduce!r}")
    args.rows = [ROW_NAMES[r] for r in rows]
    if args.decode_precision is not None:
        args.decode_precision = [p for p in args.decode_precision.split(",") if p]
        if not args.decode_precision:
            parser.error(f"--decode-precision takes a list of {', '.join(PRECISIONS)}")
        for variant in args.decode_precision:
            try:
                split_variant(variant)
            except ValueError as problem:
                parser.error(f"--decode-precision: {problem}")
    if args.quick:
        args.max_train, args.epochs, args.seeds, args.reps = args.max_train or 2000, 1, args.seeds.split(",")[0], 1
    args.seeds = [int(s) for s in str(args.seeds).split(",") if s]
    args.peers = [p for p in args.peers.split(",") if p and p != "none"]
    unknown = set(args.peers) - set(PEERS)
    if unknown:
        parser.error(f"unknown peers: {', '.join(sorted(unknown))} (choose from joey, onmt)")
    for peer in [] if args.check else args.peers:
        venv = args.peers_dir / f"{peer if peer == 'onmt' else 'joey'}-venv"
        if not venv.is_dir():
            parser.error(f"{venv} is missing: run bash {PEER_SCRIPTS / 'setup_venvs.sh'} {args.peers_dir}")
    return args


def prepare(args: argparse.Namespace, task: Task, tmp: Path) -> Data:
    size = args.max_train or task.train_size
    if task.name == "dates":
        return prepare_dates(tmp, size)
    if task.name == "dates-book":
        return prepare_book_dates(tmp, size, args.date_file)
    return prepare_multi30k(tmp, size, args.multi30k_dir, args.vocab_size)


def check_recipes(args: argparse.Namespace, task: Task) -> dict[str, dict[str, Any]]:
    """Each chosen transduce row's recipe for `task`, validated and its model built, as `transduce check`
    would, on a stand-in data directory of two pairs per split (the task's data is not prepared);
    raises a TransduceError on a bad one."""
    from transduce._model import assembly as pipeline
    from transduce._plugins.registry import discover
    from transduce._recipe.recipe import dump_recipe, parse_recipe

    registry = discover()
    tokenizer = "char" if task.metric == "exact" else subword_spec(args.vocab_size)
    with tempfile.TemporaryDirectory(prefix="peers-check-") as directory:
        for stem in ("train", "dev", "test"):
            write_split(Path(directory), stem, [("a b", "b a"), ("c", "c")], char_tokens)
        stand_in = Data(Path(directory), [], char_text, tokenizer, 0, 0)
        settings = Settings(
            task,
            stand_in,
            args.epochs,
            args.lr,
            args.threads,
            args.reps,
            args.peers_dir,
            Path(directory),
            args.precision,
        )
        resolved = {}
        for row in args.rows:
            text = dump_recipe(transduce_recipe(settings, args.seeds[0], row))
            resolved[row] = parse_recipe(text, registry, source=f"{LABELS[row]} recipe ({task.name})")
            pipeline.check(registry, resolved[row])
    return resolved


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_decode"]:
        return decode_main(argv[1:])
    if argv[:1] == ["_ceiling"]:
        return ceiling_main(argv[1:])
    args = parse_args(argv)
    task = TASKS[args.task]
    if args.batch_size:
        task.batch_size = args.batch_size
    if args.check:
        from transduce.errors import TransduceError

        try:
            resolved = check_recipes(args, task)
        except TransduceError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        for row, recipe in resolved.items():
            print(f"{LABELS[row]}: recipe valid; model.decoder = {json.dumps(recipe['model']['decoder'])}")
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the temp dir is removed
    started = time.time()
    tmp = Path(tempfile.mkdtemp(prefix=f"peers-{task.name}-", dir=args.work_dir))
    try:
        data = prepare(args, task, tmp)
        settings = Settings(
            task=task,
            data=data,
            epochs=args.epochs,
            lr=args.lr,
            threads=args.threads,
            reps=args.reps,
            peers_dir=args.peers_dir,
            work=tmp,
            precision=args.precision,
            decode_precisions=tuple(args.decode_precision or [args.precision]),
        )
        tools = [*args.rows, *args.peers]
        results: dict[str, dict[int, dict[str, Any]]] = {tool: {} for tool in tools}
        loads = []
        for turn, seed in enumerate(args.seeds):
            loads.append(os.getloadavg())
            order = tools[turn % len(tools) :] + tools[: turn % len(tools)]  # rotate who goes first
            for tool in order:
                print(f"[{time.strftime('%H:%M:%S')}] seed {seed}: {LABELS[tool]} ...", file=sys.stderr, flush=True)
                results[tool][seed] = RUNNERS[tool](settings, seed)
        loads.append(os.getloadavg())
        precision_rows(results, settings)
        ceiling = measure_ceiling(settings)
        add_shares(results, settings, ceiling, work_model(settings))
        medians = summarize(results)
        info = conditions(args, settings, started, loads)
        info["matrix-product ceiling GFLOP/s (measured here, best of the shapes)"] = {
            dtype: round(rate, 1) for dtype, rate in ceiling.items()
        }
        checks = targets(medians, settings.task.metric)
        notes = sorted({n for per_seed in results.values() for r in per_seed.values() for n in r["notes"]})
        print_table(medians, info, checks)
        for key, value in info.items():
            print(f"{key}: {value}")
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            document = {"conditions": info, "medians": medians, "per_seed": results, "targets": checks}
            args.out.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
            args.out.with_suffix(".md").write_text(markdown(medians, info, checks, notes), encoding="utf-8")
            print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}")
    finally:
        if args.work_dir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
