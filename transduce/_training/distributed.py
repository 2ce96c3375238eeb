"""Training on several processes: torchrun's environment, one process group, rank 0 as the only writer.

`torchrun` starts one process per GPU (or per CPU share) with RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT in its environment; `start` joins them
into one process group (NCCL for GPU tensors, gloo for the rest), each process
on `cuda:LOCAL_RANK`. A process started any other way is a single process: no
process group, and every helper here is a no-op that costs one check.

Batches: `train.batch_size` is the global batch. Every process builds the same
epoch of length-bucketed batches (they follow seed and epoch) and trains on its
contiguous slice of each (`shard_batches`), so every process takes the same
number of steps and each slice holds sentences of similar length. Losses are
weighted so that DDP's averaged gradient is exactly the gradient of the whole
batch's mean loss: N processes train like one process, in fewer seconds.

Only rank 0 writes the run directory (tokenizers, vocabularies, checkpoints,
logs, reports) and tells loggers; the others read what it wrote, so the run
directory must be on a file system every machine sees.
"""

from __future__ import annotations

import atexit
import dataclasses
import datetime
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from transduce._data.batching import Batch
from transduce._runs.opening import pick_device
from transduce.errors import Interrupted, RunError, TransduceError

T = TypeVar("T")

#: Seconds a process waits for the others at a collective call, e.g. while rank 0 validates;
#: override with the environment variable TRANSDUCE_DIST_TIMEOUT.
TIMEOUT_SECONDS = 3600
#: The replica record rank 0 writes into the run directory after every epoch.
RECORD = "distributed.json"
_LAUNCH_VARIABLES = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


# --- the process group ------------------------------------------------------------------


def launched() -> bool:
    """True in a process that torchrun started together with others (WORLD_SIZE > 1)."""
    return _int_variable("WORLD_SIZE", 1) > 1


def active() -> bool:
    """True once this process has joined a process group of several processes."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def rank() -> int:
    return torch.distributed.get_rank() if active() else 0


def world_size() -> int:
    return torch.distributed.get_world_size() if active() else 1


def is_main() -> bool:
    """True in the process that writes the run directory and talks to loggers (rank 0, or a single process)."""
    return rank() == 0


def start() -> None:
    """Join torchrun's process group, once per process; a process not started by torchrun joins nothing.

    With GPUs visible the group is "cpu:gloo,cuda:nccl": NCCL for CUDA tensors
    (gradients), gloo for CPU ones and for pickled objects; without GPUs, gloo.
    """
    if not launched() or active():
        return
    missing = [name for name in _LAUNCH_VARIABLES if name not in os.environ]
    if missing:
        raise RunError(
            f"WORLD_SIZE is {os.environ['WORLD_SIZE']} but {', '.join(missing)} is not set; start several "
            "processes with torchrun (see docs/scaling.md), or unset WORLD_SIZE to train in one process"
        )
    name = "gloo"
    if torch.cuda.is_available():
        name = "cpu:gloo,cuda:nccl"
        if _int_variable("LOCAL_RANK", 0) < torch.cuda.device_count():
            torch.cuda.set_device(_int_variable("LOCAL_RANK", 0))
    timeout = datetime.timedelta(seconds=_int_variable("TRANSDUCE_DIST_TIMEOUT", TIMEOUT_SECONDS))
    torch.distributed.init_process_group(name, timeout=timeout)
    atexit.register(shutdown)


def device(device_setting: str) -> torch.device:
    """This process's device: `pick_device`, and with several processes on GPUs, cuda:LOCAL_RANK."""
    picked = pick_device(device_setting)
    if not launched() or picked.type != "cuda":
        return picked
    local, count = _int_variable("LOCAL_RANK", 0), torch.cuda.device_count()
    if local >= count:
        raise RunError(
            f"this process has LOCAL_RANK {local} but the machine shows {count} GPU(s); start at most "
            f"{count} processes per machine (torchrun --nproc_per_node={count})"
        )
    return torch.device("cuda", local)


def shutdown() -> None:
    """Leave the process group (also run at exit); a single process has nothing to leave."""
    if active():
        torch.distributed.destroy_process_group()


def finish() -> None:
    """At the end of a run that went well, on every process: wait for the others (rank 0 writes the final
    report after the replicas are done), then leave the group together. A replica that left alone while rank 0
    was still at work sometimes died in gloo's teardown ("terminate called without an active exception")."""
    barrier()
    shutdown()


def backend() -> str | None:
    return torch.distributed.get_backend() if active() else None


def _int_variable(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise RunError(f"the environment variable {name} must be a whole number, got {value!r}") from None


# --- talking between processes ----------------------------------------------------------


@contextmanager
def _talking() -> Iterator[None]:
    """A collective call; a lost process (it failed and exited) becomes a RunError instead of a traceback."""
    try:
        yield
    except RuntimeError as error:
        text = (str(error).strip().splitlines() or [type(error).__name__])[0]
        cause = text.rsplit("] ", 1)[-1].split(". ")[0]  # gloo's: "[file:line] Connection closed by peer ..."
        raise RunError(
            f"rank {rank()} lost contact with the other processes ({cause}); another process stopped, "
            "and its error is printed above"
        ) from None


def barrier() -> None:
    """Wait until every process gets here."""
    if active():
        with _talking():
            torch.distributed.barrier()


def broadcast(value: T) -> T:
    """Rank 0's `value` on every process (pickled); others pass anything, e.g. None."""
    if not active():
        return value
    box = [value]
    with _talking():
        torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: Any) -> list[Any]:
    """Every process's `value` (pickled), in rank order, on every process."""
    if not active():
        return [value]
    out: list[Any] = [None] * world_size()
    with _talking():
        torch.distributed.all_gather_object(out, value)
    return out


def agree(due: bool, requested: int | None) -> tuple[bool, int | None]:
    """(does any process want a checkpoint now, the first stop signal any process received), on every process.

    Clocks and signals differ between processes; steps taken do not. Deciding
    together keeps every process at the same step, as the collectives need.
    """
    if not active():
        return due, requested
    votes = gather((due, requested))
    return any(vote for vote, _ in votes), next((signum for _, signum in votes if signum is not None), None)


def sum_over_ranks(total: torch.Tensor, count: int) -> tuple[float, int]:
    """(sum of `total`, sum of `count`) over every process, read back to the host: one small all-reduce."""
    if not active():
        return total.item(), count
    values = torch.stack([total.detach().to(torch.float64), torch.tensor(float(count), device=total.device).double()])
    with _talking():
        torch.distributed.all_reduce(values)
        summed, counted = values.tolist()
    return summed, round(counted)


def on_main(work: Callable[[], T]) -> T:
    """Run `work` on rank 0 only and return its result (pickled) on every process.

    When it fails on rank 0, the others raise too instead of waiting forever:
    `Interrupted` with the same message and status, else a RunError quoting it.
    Rank 0 raises the original error.
    """
    if not active():
        return work()
    outcome: tuple[Any, str | None, int | None] = (None, None, None)
    if is_main():
        try:
            outcome = (work(), None, None)
        except BaseException as error:
            message = str(error) if isinstance(error, TransduceError) else f"{type(error).__name__}: {error}"
            with suppress(RunError):  # the others may be gone already: rank 0's own error is the one to show
                broadcast((None, message, error.status if isinstance(error, Interrupted) else None))
            raise
    result, failure, status = broadcast(outcome)
    if failure is not None:
        raise Interrupted(failure, status) if status is not None else RunError(f"rank 0 failed: {failure}")
    return result


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the body first (e.g. fitting a tokenizer and saving it); the others run it after."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


class Silent:
    """Stands in for the run's Lifecycle on ranks other than 0: observers hear each event once, from rank 0."""

    failures: list[str] = []

    def __getattr__(self, event: str) -> Callable[..., None]:
        return _ignore


def _ignore(*args: Any, **kwargs: Any) -> None:
    return None


# --- the model --------------------------------------------------------------------------


def wrap(model: nn.Module) -> nn.Module:
    """The model as the training step calls it: DistributedDataParallel when distributed, else itself.

    `device_ids` stays None so inputs are not moved: source lengths stay on the
    CPU, where packing wants them. DDP copies rank 0's weights to every process here.
    """
    if not active():
        return model
    return nn.parallel.DistributedDataParallel(model, gradient_as_bucket_view=True)


def no_sync(replica: nn.Module) -> AbstractContextManager[Any]:
    """Within: backward passes add gradients up locally; DDP averages them at the next pass outside."""
    return replica.no_sync() if isinstance(replica, nn.parallel.DistributedDataParallel) else nullcontext()


def seed_rank(seed: int, step: int = 0) -> None:
    """Give each process other than rank 0 its own random stream, so dropout differs between slices.

    Rank 0 keeps the stream a single process would have (and that checkpoints save). The
    others' streams are not saved: on resume they restart from `seed`, their rank and `step`.
    """
    if rank() > 0:
        torch.manual_seed((seed * 1_000_003 + step) * 1_009 + rank())


def checksum(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's names and bytes: equal exactly when the weights are bitwise equal."""
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        digest.update(name.encode("utf-8"))
        digest.update(str(tensor.dtype).encode("ascii"))
        digest.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def check_replicas(model: nn.Module, run_path: Path, epoch: int, step: int) -> None:
    """With several processes: compare every replica's weights (a RunError if they differ); rank 0 records them.

    The record, `distributed.json` in the run, says how the run was trained and
    that its replicas agreed: world size, backend, epoch, step, per-rank checksums.
    """
    if not active():
        return
    sums = replica_checksums(model)
    if is_main():
        record = {"world_size": world_size(), "backend": backend(), "epoch": epoch, "step": step, "checksums": sums}
        (run_path / RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def replica_checksums(model: nn.Module) -> list[str]:
    """Every process's weight checksum, in rank order; a RunError when the replicas differ."""
    sums = gather(checksum(model.state_dict()))
    if len(set(sums)) > 1:
        groups = {value: [r for r, other in enumerate(sums) if other == value] for value in sums}
        detail = "; ".join(f"ranks {ranks}: {value[:12]}" for value, ranks in groups.items())
        raise RunError(
            f"the model replicas hold different weights ({detail}); a component may compute differently "
            "in each process or skip some parameters. Train in one process to rule out the plugins."
        )
    return sums


# --- batches ----------------------------------------------------------------------------


@dataclasses.dataclass
class Shard(Batch):
    """One process's slice of a global batch.

    `weight` multiplies the slice's mean loss so that the average of the
    processes' gradients (what DDP computes) is the gradient of the global
    batch's mean loss. `target_tokens` counts the slice's tokens, 0 for a stand-in.
    """

    weight: float = 1.0

    def to(self, device: torch.device) -> Shard:
        moved = super().to(device)
        if moved is self:
            return self
        return dataclasses.replace(self, **{f.name: getattr(moved, f.name) for f in dataclasses.fields(Batch)})


def shard(batch: Batch, rank: int, size: int, pad_index: int) -> Shard:
    """Rank `rank`'s contiguous slice of `batch` (the first `len % size` ranks get one sentence more).

    Nothing is dropped: a batch with fewer sentences than processes gives each
    process left without one a stand-in (the batch's last sentence) with weight 0.
    Padding beyond the slice's longest sentence is trimmed.
    """
    rows = batch.source.size(0)
    per, extra = divmod(rows, size)
    begin = rank * per + min(rank, extra)
    end = begin + per + (rank < extra)
    stand_in = begin == end
    if stand_in:
        begin, end = rows - 1, rows
    source, target_out = batch.source[begin:end], batch.target_out[begin:end]
    lengths = batch.lengths[begin:end]
    target_lengths = (target_out != pad_index).sum(dim=1)
    tokens = 0 if stand_in else int(target_lengths.sum())
    source_width, target_width = int(lengths.max()), int(target_lengths.max())
    return Shard(
        source=source[:, :source_width].contiguous(),
        lengths=lengths,
        target_in=batch.target_in[begin:end, :target_width].contiguous(),
        target_out=target_out[:, :target_width].contiguous(),
        target_tokens=tokens,
        weight=size * tokens / batch.target_tokens,
    )


def shard_batches(batches: list[Batch], pad_index: int) -> list[Batch]:
    """This process's slices of an epoch's batches; the batches themselves in a single process."""
    if not active():
        return batches
    here, size = rank(), world_size()
    return [shard(batch, here, size, pad_index) for batch in batches]
