"""Several processes (torchrun, DDP) train like one; bf16 autocast; single-process runs pay nothing."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from transduce._cli import main as cli
from transduce._data.batching import EncodedPair, make_batch
from transduce._model.model import Seq2Seq, sequence_loss
from transduce._runs import checkpoint
from transduce._training import distributed
from transduce.errors import RunError

VOCAB = SimpleNamespace(pad_index=0, bos_index=2, eos_index=3)


def log(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def random_batch(rows: int, seed: int = 0) -> Any:
    rng = random.Random(seed)
    pairs = [
        EncodedPair(
            [rng.randrange(4, 20) for _ in range(rng.randint(1, 9))],
            [rng.randrange(4, 20) for _ in range(rng.randint(1, 7))],
        )
        for _ in range(rows)
    ]
    return make_batch(pairs, VOCAB)


# --- sharding: each process's slice, weighted so that DDP's mean gradient is the whole batch's ----------------


@pytest.mark.parametrize(("rows", "size"), [(10, 1), (10, 2), (10, 3), (4, 4), (3, 5)])
def test_shards_cover_every_sentence_once_and_their_weighted_gradients_average_to_the_batch_gradient(
    rows: int, size: int
) -> None:
    batch = random_batch(rows)
    shards = [distributed.shard(batch, rank, size, VOCAB.pad_index) for rank in range(size)]

    real = [s for s in shards if s.target_tokens]
    assert len(shards) - len(real) == max(0, size - rows)  # stand-ins only where sentences ran out
    assert sum(s.source.size(0) for s in real) == rows
    assert max(s.source.size(0) for s in shards) - min(s.source.size(0) for s in real) <= 1
    assert sum(s.target_tokens for s in shards) == batch.target_tokens
    rebuilt = torch.cat([nn.functional.pad(s.source, (0, batch.source.size(1) - s.source.size(1))) for s in real])
    assert torch.equal(rebuilt, batch.source)
    for s in shards:  # no padding column beyond the slice's longest sentence
        assert s.source.size(1) == int(s.lengths.max())
        assert (s.target_out[:, -1] != VOCAB.pad_index).any()

    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(20, 8), nn.Linear(8, 20))

    def gradient(target_in: torch.Tensor, target_out: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
        model.zero_grad()
        (weight * sequence_loss(model(target_in), target_out, VOCAB.pad_index)).backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    whole = gradient(batch.target_in, batch.target_out)
    averaged = sum(gradient(s.target_in, s.target_out, s.weight) for s in shards) / size  # what DDP computes
    assert torch.allclose(averaged, whole, atol=1e-6)


# --- a single process pays nothing -------------------------------------------------------------------------


def test_without_torchrun_there_is_no_process_group_and_every_helper_is_the_identity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    distributed.start()
    assert not distributed.active() and distributed.is_main()
    assert (distributed.rank(), distributed.world_size()) == (0, 1)
    model, batches, value = nn.Linear(2, 2), [random_batch(3)], {"x": 1}
    assert distributed.wrap(model) is model
    assert distributed.shard_batches(batches, 0) is batches
    assert distributed.broadcast(value) is value and distributed.gather(value) == [value]
    assert distributed.agree(False, 15) == (False, 15)
    assert distributed.sum_over_ranks(torch.tensor(2.5), 4) == (2.5, 4)
    assert distributed.on_main(lambda: value) is value
    assert distributed.device("cpu") == torch.device("cpu")


def test_world_size_without_the_rest_of_torchruns_variables_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RunError, match="RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT is not set; start several"):
        distributed.start()


def test_a_process_that_lost_the_others_says_so_instead_of_a_traceback() -> None:
    gloo = "[/gloo/transport/tcp/pair.cc:553] Connection closed by peer [127.0.0.1]:4242. This is typically caused by"
    with pytest.raises(RunError, match=r"^rank 0 lost contact with the other processes \(Connection closed by peer "):
        with distributed._talking():
            raise RuntimeError(gloo)


def test_checksums_tell_bitwise_equal_weights() -> None:
    state = {"a": torch.ones(3), "b": torch.zeros(2, dtype=torch.bfloat16)}
    same = {"b": torch.zeros(2, dtype=torch.bfloat16), "a": torch.ones(3)}
    assert distributed.checksum(state) == distributed.checksum(same)
    nudged = {**state, "a": torch.tensor([1.0, 1.0, 1.0 + 2**-23])}
    assert distributed.checksum(nudged) != distributed.checksum(state)


# --- two gloo processes on the CPU -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decoder", "train"),
    [
        ({}, {}),
        ({"cell": "gru", "input_feeding": True, "peeky": True, "layers": 2}, {}),
        ({}, {"optimizer": {"name": "adamw"}, "schedule": {"name": "warmup", "warmup_steps": 3}}),
        ({}, {"batch_tokens": 600, "accumulate": 2}),  # token batches split as sentence batches are
    ],
    ids=["default", "gru-feeding-peeky-2", "adamw-warmup", "tokens-accumulate"],
)
def test_two_processes_train_identical_replicas_like_one_process_and_only_rank_0_writes(
    tmp_path: Path,
    make_recipe: Callable[..., Path],
    train_run: Callable[..., Path],
    decoder: dict[str, Any],
    train: dict[str, Any],
) -> None:
    # No dropout: then one process and two processes compute the same steps, up to float rounding.
    model = {"dropout": 0.0, "decoder": {**decoder, "dropout": 0.0}}
    recipe = make_recipe(model=model, train={"epochs": 2, **train}, loggers=["console", "jsonl"])
    one = train_run(recipe, tmp_path / "one")
    two = tmp_path / "two"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", "transduce", "train", str(recipe), "--run-dir", str(two)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    record = json.loads((two / "distributed.json").read_text(encoding="utf-8"))
    assert (record["world_size"], record["backend"], record["epoch"]) == (2, "gloo", 2)
    first, second = record["checksums"]
    assert first == second == distributed.checksum(checkpoint.load(two / "checkpoints/last.pt")["model"])

    single, double = log(one), log(two)
    assert [r["step"] for r in double] == [r["step"] for r in single]  # the same global batches
    assert [r["lr"] for r in double] == [r["lr"] for r in single]  # the same schedule
    for a, b in zip(single, double, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
    assert double[1]["loss"] < 0.9 * double[0]["loss"]

    # Rank 0 alone wrote: the same files as one process plus the replica record, each event once.
    files = lambda run: {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()}  # noqa: E731
    assert files(two) == files(one) | {"distributed.json"}
    events = Counter(json.loads(line)["event"] for line in (two / "events.jsonl").read_text().splitlines())
    assert events["run_start"] == events["run_end"] == 1 and events["epoch_end"] == 2
    assert done.stdout.count("run directory:") == 1 and done.stdout.count("epoch 2/2") == 1

    # Its checkpoint is complete: one process resumes it exactly as it resumes the one-process run.
    for run in (one, two):
        assert cli.main(["train", "--resume", str(run), "--set", "train.epochs=3"]) == 0
    assert log(two)[2]["loss"] == pytest.approx(log(one)[2]["loss"], rel=1e-4)


# --- bf16 --------------------------------------------------------------------------------------------------


def test_bf16_trains_and_decodes_in_bfloat16_on_the_cpu_and_still_learns(
    tmp_path: Path,
    make_recipe: Callable[..., Path],
    train_run: Callable[..., Path],
    trained_run: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: set[tuple[bool, torch.dtype]] = set()
    lstms: set[torch.dtype] = set()
    products: set[torch.dtype] = set()
    step = Seq2Seq.step

    def noting_step(model: Seq2Seq, *args: Any) -> Any:
        products.add(model.product_dtype)
        return step(model, *args)

    def note(module: nn.Module, args: Any, output: Any) -> None:
        if isinstance(module, nn.Linear):
            seen.add((module.training, output.dtype))
        elif isinstance(module, nn.LSTM) and module.training:
            states = output[0]
            lstms.add((states.data if isinstance(states, PackedSequence) else states).dtype)

    hook = nn.modules.module.register_module_forward_hook(note)
    monkeypatch.setattr(Seq2Seq, "step", noting_step)
    try:
        run = train_run(make_recipe(train={"epochs": 2, "precision": "bf16"}), tmp_path / "bf16")
    finally:
        hook.remove()

    assert (True, torch.bfloat16) in seen and (True, torch.float32) not in seen  # training steps: autocast
    # Validation and the report decode with bfloat16 products, as `evaluate` will decode the run.
    assert products == {torch.bfloat16}
    assert lstms == {torch.bfloat16}  # on the CPU oneDNN's bfloat16 LSTMs (on CUDA they stay in float32)
    weights = checkpoint.load(run / "checkpoints/last.pt")["model"]
    assert all(w.dtype == torch.float32 for w in weights.values() if w.is_floating_point())
    losses, fp32 = [r["loss"] for r in log(run)], [r["loss"] for r in log(trained_run)]
    assert losses[1] < 0.9 * losses[0]
    assert losses[1] == pytest.approx(fp32[1], rel=0.1)
