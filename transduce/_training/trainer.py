"""Training: seeded, resumable, validated each epoch, best checkpoint kept, early stopping."""

from __future__ import annotations

import functools
import json
import math
import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.nn.utils.rnn import PackedSequence

from transduce._data.batching import Batch, accumulation_shares, batches_per_epoch, training_batches
from transduce._data.corpus import DataSummary, Side, SplitSummary, prepare_training, summarize
from transduce._data.interrupt import SignalStop, StopSignals, signal_name
from transduce._data.vocab import Vocabulary
from transduce._decoding.translator import MAX_SOURCE_TOKENS, Translator
from transduce._model import assembly as pipeline
from transduce._model.model import sequence_loss
from transduce._plugins.contracts import MAX_OUTPUT_TOKENS, Metric, Schedule
from transduce._plugins.positions import at
from transduce._plugins.registry import Registry
from transduce._recipe.recipe import SCHEDULE_KEYS, dump_recipe, recipe_differences
from transduce._recipe.settings import Settings, SideSettings
from transduce._reports.evaluation import Analysis, evaluate, strategies, strategy_label
from transduce._reports.report import Report
from transduce._reports.report_files import WrittenReport, is_epoch_record, write_report_files
from transduce._runs import checkpoint
from transduce._runs.opening import load_checkpoint, load_weights
from transduce._runs.provenance import check_data_files, components_used, record_data_files
from transduce._runs.rundir import RunDir
from transduce._training import distributed
from transduce._training.lifecycle import Lifecycle
from transduce.errors import Interrupted, RecipeError, RunError, TransduceError

LOG_EVERY = 20  # steps between reading the loss back from the device
SHOWN_NOTES = 12  # data notes quoted in the error about an empty training split
NO_VALIDATION = (
    "no valid split (data.valid_size: 0?): training does not validate, so best.pt is the latest epoch's model, "
    "and train.patience, train.best_metric and a schedule's settings that act on validations do not apply"
)

# Recipe keys that may change when a run is resumed: they do not alter what was trained so far.
SAFE_TO_CHANGE = (
    "train.epochs",
    "train.patience",
    "train.device",
    "train.precision",
    "train.threads",
    "train.valid_every",
    "train.checkpoint_every",
    "train.checkpoint_minutes",
    "evaluate.",
    "search.",
    "loggers",
)


@dataclass
class TrainingState:
    """Where training stands; saved in every checkpoint.

    `epoch` counts finished epochs. A checkpoint written within epoch `epoch + 1`
    has `batch` > 0: the batches of that epoch already trained (its batch order is
    a function of seed and epoch, so resuming skips exactly those), with the epoch's
    loss sum, target tokens and seconds so far, so its logged loss is unchanged.
    """

    epoch: int = 0
    step: int = 0
    best_score: float | None = None
    best_epoch: int = 0
    stale: int = 0
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    batch: int = 0
    epoch_loss: float = 0.0
    epoch_tokens: int = 0
    epoch_seconds: float = 0.0

    def start_epoch(self) -> None:
        """The next epoch starts from its first batch."""
        self.batch, self.epoch_loss, self.epoch_tokens, self.epoch_seconds = 0, 0.0, 0, 0.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy  # noqa: PLC0415 - optional; seeded for plugins that draw from it
    except ImportError:
        return
    numpy.random.seed(seed)


class Trainer:
    """Trains the recipe's model in a run directory and writes the final report."""

    def __init__(
        self,
        recipe: dict[str, Any],
        registry: Registry,
        run: RunDir,
        console: Console,
        on_epoch: Callable[[Trainer, dict[str, Any]], None] | None = None,
    ) -> None:
        """`on_epoch(trainer, record)` is called after each epoch's record is logged (e.g. by benchmarks)."""
        self.on_epoch = on_epoch
        self.recipe = recipe
        self.settings = Settings.of(recipe)  # the core reads the recipe by attribute
        self.registry = registry
        self.run = run
        distributed.start()  # under torchrun: join the other processes; else nothing
        self.console = console if distributed.is_main() else Console(quiet=True, force_terminal=False)
        # Rank 0 alone tells loggers and plugin hooks, so that every event is heard once.
        self.lifecycle = Lifecycle.for_recipe(registry, recipe) if distributed.is_main() else distributed.Silent()
        self.written: WrittenReport | None = None  # the final report's files, once written
        self.signals = StopSignals()
        self._saved_at = time.monotonic()  # when last.pt was last written, for train.checkpoint_minutes

    # --- set-up ----------------------------------------------------------------

    def _prepare(self, resume: bool, last: dict[str, Any] | None) -> None:
        if self.settings.train.threads:
            torch.set_num_threads(self.settings.train.threads)
        seed_everything(self.settings.seed)
        self.device = distributed.device(self.settings.train.device)
        _check_precision(self.device, self.settings.train.precision)
        saved: dict[str, Any] = {}  # checked before vocabularies and tokenizer files are read or written
        if resume:
            saved = last if last is not None else resumable_checkpoint(self.run)
        else:
            refuse_retraining(self.run)
        self.data = pipeline.data_source(self.registry, self.recipe)
        self.source_tokenizer = pipeline.tokenizer(self.registry, self.recipe, "source")
        self.target_tokenizer = pipeline.tokenizer(self.registry, self.recipe, "target")
        with distributed.main_first():  # rank 0 fits tokenizers and builds vocabularies; the others load them
            load = resume or not distributed.is_main()
            self._ready_tokenizers(load)
            corpus = prepare_training(
                self.data.split("train"),
                # null: the decoding limits, so no runaway pair (a whole file on one line) is trained on
                Side(self.source_tokenizer, self.settings.source.max_length or MAX_SOURCE_TOKENS),
                Side(self.target_tokenizer, self.settings.target.max_length or MAX_OUTPUT_TOKENS),
                self._vocabulary_maker(load),
            )
        self.source_vocab, self.target_vocab = corpus.source_vocab, corpus.target_vocab
        self.fingerprints = self.run.fingerprints()  # recorded in every checkpoint: see RunDir.check_fingerprints
        self.train_pairs = corpus.pairs
        self.valid = list(self.data.split("valid"))
        self.test = list(self.data.split(self.settings.evaluate.split))
        self.schedule = pipeline.schedule(self.registry, self.recipe)
        _check_not_empty(corpus.summary, self.data.notes())
        _check_held_out(self.settings, len(self.valid), len(self.test), self.schedule)
        self.model = pipeline.model(self.registry, self.recipe, len(self.source_vocab), len(self.target_vocab)).to(
            self.device
        )
        if self.settings.train.precision == "bf16" and self.device.type == "cuda":
            _rnns_in_float32(self.model)
        self.replica = distributed.wrap(self.model)  # what the training step calls: DDP with several processes
        self.optimizer = pipeline.optimizer(self.registry, self.recipe, list(self.model.parameters()))
        train = self.settings.train
        batches = batches_per_epoch(self.train_pairs, train.batch_size, train.batch_tokens)
        steps = train.epochs * -(-batches // train.accumulate)  # optimizer steps: an epoch's last one may be short
        self.schedule.start(self.optimizer, steps)  # before a resumed run's rates and schedule state come back
        self.metrics: list[Metric] = pipeline.metrics(self.registry, self.recipe)
        self.translator = Translator(
            self.model,
            self.source_tokenizer,
            self.target_tokenizer,
            self.source_vocab,
            self.target_vocab,
            pipeline.search(self.registry, self.recipe),
            self.device,
            self.settings.train.precision,  # validation decodes as `evaluate` will
            reverse_source=self.settings.source.reverse,
        )
        if resume:
            self.state = self._restore(saved)
        else:
            self.state = TrainingState()
            if distributed.is_main():  # a log from an attempt that stopped before its first checkpoint
                self.run.metrics_log.unlink(missing_ok=True)
        self.summary = self._summarize(corpus.summary)  # data.json: written once the checkpoint proved sound
        distributed.seed_rank(self.settings.seed, self.state.step)
        if not distributed.is_main():
            self.state.epoch_loss, self.state.epoch_tokens = 0.0, 0  # rank 0 carries the epoch's sums so far
        self._print_data()

    def _ready_tokenizers(self, resume: bool) -> None:
        """Fit tokenizers that learn from data on the training split; on resume, load what they learned."""
        for side, tokenizer in (("source", self.source_tokenizer), ("target", self.target_tokenizer)):
            directory = self.run.tokenizer_dir(side)
            if resume:
                tokenizer.load(directory)
            else:
                directory.mkdir(parents=True, exist_ok=True)
                tokenizer.fit((getattr(example, side) for example in self.data.split("train")), directory)

    def _vocabulary_maker(self, resume: bool) -> Callable[[str, Counter[str]], Vocabulary]:
        """Vocabularies built from the training split's counts and saved; on resume, the run's saved ones."""

        def vocabulary(side: str, counts: Counter[str]) -> Vocabulary:
            path = self.run.source_vocab if side == "source" else self.run.target_vocab
            if resume:
                return Vocabulary.load(path)
            limits: SideSettings = self.settings.source if side == "source" else self.settings.target
            vocab = Vocabulary.from_counts(counts, limits.min_freq, limits.max_size)
            vocab.save(path)
            return vocab

        return vocabulary

    def _summarize(self, train: SplitSummary) -> DataSummary:
        """Sizes and vocabulary coverage of every split, saved as data.json in the run."""
        summary = DataSummary(splits={"train": train}, notes=list(self.data.notes()))
        if not self.valid:
            summary.notes.append(NO_VALIDATION)
        held_out = {"valid": self.valid, self.settings.evaluate.split: self.test}
        for name, examples in held_out.items():
            if name != "train" and examples:
                summary.splits[name] = summarize(
                    examples, self.source_tokenizer, self.target_tokenizer, self.source_vocab, self.target_vocab
                )
        if distributed.is_main():
            self.run.data_summary.write_text(json.dumps(summary.as_dict(), indent=2) + "\n", encoding="utf-8")
        return summary

    def _print_data(self) -> None:
        splits = self.summary.splits
        sizes = " · ".join(f"{name} {s.pairs:,}" for name, s in splits.items())
        filtered = splits["train"].filtered
        if filtered:
            sizes += f" (train: {filtered:,} dropped by source/target.max_length)"
        unk = " · ".join(f"{name} {s.source.unk_rate:.2f}/{s.target.unk_rate:.2f}%" for name, s in splits.items())
        self.console.print(
            f"[bold]data[/] {sizes} pairs   [bold]vocab[/] source {len(self.source_vocab):,} · "
            f"target {len(self.target_vocab):,}   [bold]unk[/] source/target {unk}\n"
            f"[bold]model[/] {sum(p.numel() for p in self.model.parameters()):,} parameters on {self.device}"
        )
        for note in self.summary.notes:
            self.console.print(f"[yellow]data note:[/] {note}")

    def _restore(self, saved: dict[str, Any]) -> TrainingState:
        """Weights, optimizer, random states and progress from last.pt; its whole structure is checked first."""
        path = self.run.last_checkpoint
        load_weights(self.model, checkpoint.weights(saved, path), path, self.run)
        _load_optimizer(self.optimizer, saved["optimizer"], path)
        _load_schedule(self.schedule, saved, path, self.settings.train.schedule["name"])
        _restore_rng(saved["rng"], path, self.device)
        state = _progress(saved["progress"], path)
        # The log may hold an epoch that ended after this checkpoint was written: rewrite it from the checkpoint.
        if distributed.is_main():
            self.run.metrics_log.write_text("".join(json.dumps(r) + "\n" for r in state.history), encoding="utf-8")
        if state.batch:
            self.console.print(f"resuming epoch {state.epoch + 1} after batch {state.batch} (step {state.step:,})")
        else:
            self.console.print(f"resuming after epoch {state.epoch} (step {state.step:,})")
        return state

    # --- the loop --------------------------------------------------------------

    def train(self, resume: bool = False, *, last: dict[str, Any] | None = None) -> Report:
        """Train the remaining epochs, then score the best checkpoint on the evaluation split.

        `last`: when resuming, last.pt as `start_run` loaded and checked it (`Started.last`), so that it is read
        once; without it, resuming loads it here.

        A first SIGINT/SIGTERM during the training steps stops after the current step, writes last.pt and
        raises `Interrupted`; during validation it stops at once and the checkpoint makes resuming validate
        again; anywhere else, and a second signal anywhere, raises `SignalStop` (a KeyboardInterrupt) at once.
        """
        with self.signals:
            try:
                return self._train(resume, last)
            except BaseException as error:
                self.lifecycle.emit("run_failed", error=error)
                raise

    def _train(self, resume: bool, last: dict[str, Any] | None) -> Report:
        self.lifecycle.emit("run_start", recipe=self.recipe, run_dir=self.run.path)
        self._prepare(resume, last)
        finished = self._finished()
        if finished:
            self.console.print(f"this run is finished ({finished}); evaluating its best checkpoint again")
        else:
            with self.signals.deferred():
                self._train_epochs()
        return distributed.on_main(self._final_report)  # rank 0 evaluates and writes; every process gets the report

    def _finished(self) -> str | None:
        """Why a resumed run has nothing left to train, or None."""
        epochs, patience = self.settings.train.epochs, self.settings.train.patience
        if self.state.epoch >= epochs:
            return f"{self.state.epoch} of {epochs} epochs trained; raise train.epochs to train more"
        if patience is not None and self.state.stale >= patience:
            return f"stopped early after {self.state.stale} validations without improvement; raise train.patience"
        return None

    def _train_epochs(self) -> None:
        epochs = self.settings.train.epochs
        self._saved_at = time.monotonic()
        for epoch in range(self.state.epoch + 1, epochs + 1):
            rng = random.Random(self.settings.seed * 1_000_003 + epoch)
            batches = training_batches(
                self.train_pairs,
                self.settings.train.batch_size,
                rng,
                self.target_vocab,
                reverse=self.settings.source.reverse,
                batch_tokens=self.settings.train.batch_tokens,
            )
            shares = accumulation_shares(batches, self.settings.train.accumulate)  # of the whole batches' tokens
            batches = distributed.shard_batches(batches, self.target_vocab.pad_index)  # this process's slices
            loss, tokens, seconds = self._epoch(epoch, batches, shares)
            distributed.check_replicas(self.model, self.run.path, epoch, self.state.step)
            record: dict[str, Any] = {
                "epoch": epoch,
                "step": self.state.step,
                "loss": round(loss, 5),
                "tokens_per_second": round(tokens / seconds, 1),
                "seconds": round(seconds, 2),
                "lr": self.optimizer.param_groups[0]["lr"],
            }
            stop = False
            if not self.valid:
                self._keep_as_best(epoch, record)
            elif epoch % self.settings.train.valid_every == 0 or epoch == epochs:
                stop = self._validate_on_main(epoch, record)
            self.state.epoch, self.state.seconds = epoch, self.state.seconds + seconds
            self.state.start_epoch()
            self.state.history.append(record)
            if distributed.is_main():
                self.run.log_metrics(record)
            self._save_last()
            self.lifecycle.emit("checkpoint_saved", path=self.run.last_checkpoint, kind="last")
            self.lifecycle.emit("epoch_end", record=record)
            if self.on_epoch is not None:
                self.on_epoch(self, record)
            _, self.signals.requested = distributed.agree(False, self.signals.requested)
            if self.signals.requested is not None:
                raise self._interrupted(f"after epoch {epoch} (step {self.state.step:,})")
            if stop:
                self.console.print(f"early stopping: no improvement in {self.settings.train.patience} validations")
                break

    def _epoch(self, epoch: int, batches: list[Batch], shares: list[float]) -> tuple[float, int, float]:
        """Train the epoch's batches from `state.batch` on (past the ones trained before a resume).

        Every `train.accumulate` batches (and the epoch's last) make one optimizer step, each batch's loss
        weighted by its `shares` of their tokens. Returns the epoch's mean loss per target token, its target
        tokens and seconds; on the way, writes last.pt when `_checkpoint_due`, and after a signal stops there
        with `Interrupted`. Both happen only between optimizer steps: a signal within an accumulation finishes
        its step first, so last.pt never holds half-summed gradients and `state.batch` is a step boundary.
        """
        self.model.train()
        done = self.state.batch
        if done > len(batches):
            raise RunError(
                f"the checkpoint is at batch {done} of epoch {epoch}, which now has {len(batches)} batches: "
                "the training data changed since the run started; start a new run"
            )
        started = time.perf_counter() - self.state.epoch_seconds
        total_loss = torch.tensor(self.state.epoch_loss, device=self.device)
        tokens = self.state.epoch_tokens
        recent: list[tuple[int, torch.Tensor]] = []  # (step, loss) since the last read-back: to name the step
        with _progress_bar(self.console) as bar:
            label = f"{epoch}/{self.settings.train.epochs}"
            task = bar.add_task("train", total=len(batches), completed=done, epoch=label, loss="…", tps="…")
            accumulate = self.settings.train.accumulate
            for index, batch in enumerate(batches[done:], done + 1):
                update = index % accumulate == 0 or index == len(batches)  # the last batch of its step
                loss = self._step(batch.to(self.device), shares[index - 1], update)
                total_loss += loss.detach() * batch.target_tokens
                tokens += batch.target_tokens
                recent.append((self.state.step + (not update), loss.detach()))  # the step it counts towards
                bar.advance(task)
                if index % LOG_EVERY == 0 or index == len(batches):
                    mean = self._checked_loss(total_loss, tokens, recent, epoch)
                    speed = tokens / (time.perf_counter() - started)
                    bar.update(task, loss=f"{mean:.4f}", tps=f"{speed:,.0f}")
                if update and index < len(batches) and self._checkpoint_now(index // accumulate):
                    self._checked_loss(total_loss, tokens, recent, epoch)
                    self._record_batches(index, total_loss, tokens, time.perf_counter() - started)
                    self._save_last()
                    self.lifecycle.emit("checkpoint_saved", path=self.run.last_checkpoint, kind="last")
                    if self.signals.requested is not None:
                        where = f"at step {self.state.step:,} (epoch {epoch}, batch {index:,} of {len(batches):,})"
                        raise self._interrupted(where)
        self._record_batches(len(batches), total_loss, tokens, time.perf_counter() - started)
        state = self.state
        return state.epoch_loss / max(state.epoch_tokens, 1), state.epoch_tokens, state.epoch_seconds

    def _checkpoint_now(self, steps: int) -> bool:
        """`_checkpoint_due` after the epoch's `steps`-th optimizer step; with several processes, decided together
        every LOG_EVERY steps of the epoch and at checkpoint_every steps."""
        if not distributed.active():
            return self._checkpoint_due()
        every = self.settings.train.checkpoint_every
        if steps % LOG_EVERY and not (every is not None and self.state.step % every == 0):
            return False
        due, self.signals.requested = distributed.agree(self._checkpoint_due(), self.signals.requested)
        return due

    def _checkpoint_due(self) -> bool:
        """After this step, write last.pt: on a stop request, every train.checkpoint_every steps, or by time."""
        if self.signals.requested is not None:
            return True
        every, minutes = self.settings.train.checkpoint_every, self.settings.train.checkpoint_minutes
        if every is not None and self.state.step % every == 0:
            return True
        return minutes is not None and time.monotonic() - self._saved_at >= minutes * 60

    def _record_batches(self, batch: int, total_loss: torch.Tensor, tokens: int, seconds: float) -> None:
        """Note `batch` batches of the current epoch as done, with the epoch's loss sum, tokens and time so far."""
        state = self.state
        state.batch, state.epoch_seconds = batch, seconds
        state.epoch_loss, state.epoch_tokens = distributed.sum_over_ranks(total_loss, tokens)

    def _checked_loss(
        self, total_loss: torch.Tensor, tokens: int, recent: list[tuple[int, torch.Tensor]], epoch: int
    ) -> float:
        """The mean loss so far (one read-back from the device); a non-finite one stops training, naming its step.

        Called before every checkpoint write, so a diverged state is never saved over the last good one.
        """
        summed, counted = distributed.sum_over_ranks(total_loss, tokens)  # every process's, so all stop together
        mean = summed / max(counted, 1)
        if not math.isfinite(mean):
            finite = torch.isfinite(torch.stack([loss for _, loss in recent])).tolist() if recent else [False]
            first = finite.index(False) if False in finite else len(finite) - 1
            step, value = (recent[first][0], recent[first][1].item()) if recent else (self.state.step + 1, mean)
            raise TransduceError(self._diverged_message(f"the loss became {value}", step, epoch))
        recent.clear()
        return mean

    def _diverged_message(self, problem: str, step: int, epoch: int) -> str:
        kept = (
            f"the last good checkpoint, {self.run.last_checkpoint}, is kept"
            if self.run.last_checkpoint.exists()
            else "no checkpoint was written yet"
        )
        return f"{problem} at step {step:,} (epoch {epoch}); {kept}. Lower train.lr or set train.clip_grad_norm."

    def _interrupted(self, where: str) -> Interrupted:
        signum = self.signals.requested or signal.SIGINT
        return Interrupted(
            f"stopped by {signal_name(signum)} {where}; checkpoint written to {self.run.last_checkpoint}. "
            f"Continue with `transduce train --resume {self.run.path}`",
            status=128 + signum,
        )

    def _step(self, batch: Batch, share: float = 1.0, update: bool = True) -> torch.Tensor:
        """One batch's forward and backward, its loss weighted by `share` (see `accumulation_shares`); with
        `update` (the last batch of an accumulation), the optimizer step. Nothing here waits for the device (the
        loss is read back at log steps)."""
        # On the CPU the output layer skips padding (no logits there); on a GPU, selecting the real positions by
        # a mask would wait for the device every step, so the loss ignores padding instead.
        real = batch.target_out != self.target_vocab.pad_index if self.device.type == "cpu" else None
        target = batch.target_out if real is None else batch.target_out[real]
        # A process's slice weighs its share of the global batch's tokens: DDP's mean gradient is then exact.
        weight = share * (batch.weight if isinstance(batch, distributed.Shard) else 1.0)
        # Within an accumulation, DDP adds the gradients up locally and averages them once, with the last batch.
        with nullcontext() if update else distributed.no_sync(self.replica):
            with _autocast(self.device, self.settings.train.precision):
                logits = self.replica(batch.source, batch.lengths, batch.target_in, positions=real)
                loss = sequence_loss(
                    logits, target, self.target_vocab.pad_index, self.settings.train.label_smoothing, overwrite=True
                )
            (loss * weight if weight != 1.0 else loss).backward()
        if update:
            if self.settings.train.clip_grad_norm:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.train.clip_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)  # the next step's batches add up from nothing
            self.state.step += 1
            self.schedule.after_step(self.optimizer, self.state.step)
        return loss

    def _validate_on_main(self, epoch: int, record: dict[str, Any]) -> bool:
        """Rank 0 validates while the others wait; its decision, record, best score, learning rates and schedule
        state reach all."""

        def validate() -> tuple[bool, dict[str, Any], tuple[float | None, int, int], list[float], dict[str, Any]]:
            stop = self._validate_or_stop(epoch, record)
            best = (self.state.best_score, self.state.best_epoch, self.state.stale)
            rates = [group["lr"] for group in self.optimizer.param_groups]
            return stop, record, best, rates, self.schedule.state_dict()

        stop, shared, best, rates, schedule = distributed.on_main(validate)
        if not distributed.is_main():
            record.update(shared)
            self.state.best_score, self.state.best_epoch, self.state.stale = best
            for group, rate in zip(self.optimizer.param_groups, rates, strict=True):
                group["lr"] = rate
            self.schedule.load_state_dict(schedule)
        return stop

    def _validate_or_stop(self, epoch: int, record: dict[str, Any]) -> bool:
        """`_validate`, unless a signal came before or comes during it: then last.pt is written as of the end
        of the epoch's batches, unvalidated (validating changes no weights), and resuming validates again."""
        unvalidated = self._last_payload()
        if self.signals.requested is None:
            try:
                with self.signals.immediate():
                    return self._validate(epoch, record)
            except SignalStop:
                pass
        checkpoint.save_atomic(unvalidated, self.run.last_checkpoint)
        raise self._interrupted(f"before validating epoch {epoch} (step {self.state.step:,})")

    def _validate(self, epoch: int, record: dict[str, Any]) -> bool:
        """Score the valid split; keep the best checkpoint; True when patience has run out."""
        report = evaluate(
            self.translator,
            self.valid,
            self.metrics,
            split="valid",
            shown=0,
            batch_size=self.settings.evaluate.batch_size,
        )
        record["valid"] = report.metrics()
        self.lifecycle.emit("validation_end", epoch=epoch, metrics=record["valid"])
        name = self.settings.train.best_metric
        metric = next(m for m in self.metrics if m.name == name)
        score = report.metrics()[name]
        best = self.state.best_score
        improved = best is None or (score > best if metric.higher_is_better else score < best)
        if improved:
            self.state.best_score, self.state.best_epoch, self.state.stale = score, epoch, 0
            checkpoint.save_atomic(self._best_payload(epoch, score), self.run.best_checkpoint)
            record["best"] = True
            self.lifecycle.emit("checkpoint_saved", path=self.run.best_checkpoint, kind="best")
        else:
            self.state.stale += 1
        self.schedule.after_validation(self.optimizer, improved)
        patience = self.settings.train.patience
        return patience is not None and self.state.stale >= patience

    def _keep_as_best(self, epoch: int, record: dict[str, Any]) -> None:
        """Without a valid split nothing can say which epoch was best: best.pt follows the latest epoch."""
        payload = self._best_payload(epoch, None)
        distributed.on_main(lambda: checkpoint.save_atomic(payload, self.run.best_checkpoint))
        self.state.best_epoch = epoch
        record["best"] = True
        self.lifecycle.emit("checkpoint_saved", path=self.run.best_checkpoint, kind="best")

    def _best_payload(self, epoch: int, score: float | None) -> dict[str, Any]:
        """best.pt: the weights with the run files' fingerprints, checked whenever it is opened."""
        return {"model": self.model.state_dict(), "epoch": epoch, "score": score, "files": self.fingerprints}

    def _last_payload(self) -> dict[str, Any]:
        """Everything resuming needs; checks first that the weights are finite, so a diverged state is never saved."""
        finite = torch.stack([torch.isfinite(p).all() for p in self.model.parameters()]).all().item()
        if not finite:
            epoch = self.state.epoch + (self.state.batch > 0)
            problem = "a weight became infinite or nan"
            raise TransduceError(self._diverged_message(problem, self.state.step, epoch))
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "rng": checkpoint.rng_states(self.device),
            "progress": asdict(self.state),
            "components": components_used(self.recipe, self.registry),
            "files": self.fingerprints,
        }

    def _save_last(self) -> None:
        distributed.on_main(lambda: checkpoint.save_atomic(self._last_payload(), self.run.last_checkpoint))
        self._saved_at = time.monotonic()

    # --- the end ---------------------------------------------------------------

    def _final_report(self) -> Report:
        path = self.run.best_checkpoint
        if path.exists():
            best = load_checkpoint(self.run, path)
            load_weights(self.model, best.weights, path, self.run)
        report = evaluate(
            self.translator,
            self.test,
            self.metrics,
            split=self.settings.evaluate.split,
            shown=self.settings.evaluate.examples,
            batch_size=self.settings.evaluate.batch_size,
            analysis=Analysis.from_settings(self.settings.evaluate),
            compare_with=strategies(self.registry, self.recipe),
            search=strategy_label(self.registry, self.settings.search),
        )
        decoding_notes = (report.data or {}).get("notes", [])  # e.g. inputs cut to the decoding limit
        report.data = self.summary.as_dict()
        report.data["notes"] = [*report.data["notes"], *decoding_notes]
        self.lifecycle.emit("evaluation_end", report=report)
        self.written = write_report_files(self.run, report, "report")
        self.lifecycle.emit("run_end", report=report)
        return report


def _check_precision(device: torch.device, precision: str) -> None:
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise RecipeError(
            f"this GPU ({torch.cuda.get_device_name(device)}) has no bfloat16 support; use train.precision: fp32",
            key="train.precision",
        )


def _rnns_in_float32(model: torch.nn.Module) -> None:
    """On CUDA, run the model's RNNs (the LSTMs) in float32 under autocast; bf16 then speeds up attention and
    projections.

    On CUDA, autocast runs cuDNN RNNs in float16 whatever dtype it was given, and float16 gradients
    underflow without loss scaling; cuDNN's float32 LSTMs use TF32 tensor cores instead. (On the CPU, autocast
    runs oneDNN's LSTMs in bfloat16, about 2.7 times as fast as float32 where the CPU has AMX.)
    """
    for module in model.modules():
        if isinstance(module, torch.nn.RNNBase):
            module.forward = functools.partial(_float32_forward, module.forward)  # type: ignore[method-assign]


def _float32_forward(forward: Callable[..., Any], inputs: Any, hx: Any = None) -> Any:
    device = (inputs.data if isinstance(inputs, PackedSequence) else inputs).device
    if isinstance(hx, tuple):
        hx = tuple(state.float() for state in hx)
    elif hx is not None:
        hx = hx.float()
    with torch.autocast(device_type=device.type, enabled=False):
        return forward(inputs.float(), hx)


def _autocast(device: torch.device, precision: str) -> AbstractContextManager[Any]:
    """The training forward pass's precision: bfloat16 autocast for bf16 (no gradient scaling needed), else as is."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def _check_not_empty(train: SplitSummary, notes: Sequence[str]) -> None:
    """Refuse an empty training split, saying why: pairs too long, or the data source's notes (its skipped rows,
    with file:line), shown here because the run directory that would keep them is removed."""
    if train.pairs:
        return
    dropped = f" ({train.filtered:,} pairs were longer than source/target.max_length)" if train.filtered else ""
    shown = "".join(f"\n{note}" for note in notes[:SHOWN_NOTES])
    more = f"\n... and {len(notes) - SHOWN_NOTES} more notes" if len(notes) > SHOWN_NOTES else ""
    raise TransduceError(f"the training split is empty{dropped}; check the data settings{shown}{more}")


def _check_held_out(settings: Settings, valid_pairs: int, evaluated_pairs: int, schedule: Schedule) -> None:
    """An empty valid split means training without validation; refuse the settings that need one (patience, a
    schedule's setting that acts on validations), and an empty split to score at the end, before any training."""
    split = settings.evaluate.split
    if not evaluated_pairs:
        raise RecipeError(
            f"{split!r}, but the data source gave no {split} pairs (is data.{split}_size 0?); "
            f"set evaluate.split: train to score the training pairs, or give the data a {split} split",
            key="evaluate.split",
        )
    needs = ["train.patience"] if settings.train.patience is not None else []
    if (param := schedule.validation_param()) is not None:
        needs.append(f"train.schedule.{param}")
    if not valid_pairs and needs:
        raise RecipeError(
            "needs validation, but the data source gave no valid pairs (is data.valid_size 0?); "
            f"remove {needs[0]}{_older_spelling(needs[0], schedule)}, and the last epoch is kept as the best, "
            "or set data.valid_size above 0",
            key=needs[0],
        )


def _older_spelling(key: str, schedule: Schedule) -> str:
    """' (train.lr_decay in older recipes)' for a parameter of the default schedule that an older `train` key
    sets; else ''."""
    if schedule.name != at("train", "schedule").default:
        return ""
    older = [f"train.{k}" for k, v in SCHEDULE_KEYS.items() if key == f"train.schedule.{v}"]
    return f" ({older[0]} in older recipes)" if older else ""


def _progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[tps]} tok/s"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


@dataclass
class Started:
    """What `start_run` tells its caller: notes for the user, and (when the run resumes) last.pt, loaded and
    checked, for `Trainer.train(last=...)`, so that resuming reads it once."""

    notes: list[str]
    last: dict[str, Any] | None = None


def start_run(
    recipe: dict[str, Any],
    run: RunDir,
    *,
    accept_changed_data: bool = False,
    components: dict[str, str] | None = None,
) -> Started:
    """Write the resolved recipe into the run directory (atomically: a resumed run rewrites it).

    Refused first: a run that holds trained weights but cannot be resumed (`refuse_retraining`), resuming
    with a recipe that names other data, tokenizer, model, optimizer or schedule `components` than last.pt
    records, and resuming a run whose data files changed since its splits were made, unless `accept_changed_data`.
    A run that starts from its first epoch records its data files (provenance.record_data_files).
    """
    refuse_retraining(run)
    resume = run.last_checkpoint.exists()
    saved = None
    if resume:
        saved = resumable_checkpoint(run)  # a damaged last.pt is refused before the recipe is rewritten
        if components is not None:
            check_trained_components(saved, components, run.last_checkpoint)
    notes = check_data_files(run, recipe, "continuing the run", accept=accept_changed_data) if resume else []
    if not resume or notes:
        record_data_files(run, recipe)
    checkpoint.write_text_atomic(run.recipe, dump_recipe(recipe))
    return Started(notes, saved)


def refuse_retraining(run: RunDir) -> None:
    """A run with best.pt but no last.pt would be trained from the start, replacing its best weights with
    worse ones: refuse, and say what still works."""
    if run.best_checkpoint.exists() and not run.last_checkpoint.exists():
        raise RunError(
            f"{run.path} holds trained weights ({run.best_checkpoint}) but not {run.last_checkpoint}, which "
            "continuing needs; training it from the start would replace them, so nothing was changed. "
            f"`transduce evaluate {run.path}` and `transduce translate {run.path}` still use best.pt; to train "
            "again, start a new run (another --run-dir), or put last.pt back from a copy to continue"
        )


#: Families whose components define what a checkpoint's weights mean, or the optimizer's and schedule's state it
#: holds: resuming with others is refused.
TRAINED_FAMILIES = ("dataset", "tokenizer", "encoder", "decoder", "attention", "optimizer", "schedule")
#: Of those, the families that became components after checkpoints began to record theirs: compared only when the
#: record names one (an older checkpoint's run used adam and plateau, which the recipe.yaml it resumes with names).
LATER_FAMILIES = ("optimizer", "schedule")


def check_trained_components(saved: dict[str, Any], used: dict[str, str], path: Path) -> None:
    """Refuse to resume when the recipe names other data, tokenizer, model, optimizer or schedule components than
    the checkpoint records (an edited or damaged recipe.yaml), before anything is read or written; a checkpoint
    without a record passes."""
    recorded = saved.get("components")
    if not isinstance(recorded, dict):
        return
    named = {str(name).partition("/")[0] for name in recorded}
    compared = [family for family in TRAINED_FAMILIES if family not in LATER_FAMILIES or family in named]

    def trained(names: Iterable[str]) -> set[str]:
        return {str(name) for name in names if str(name).partition("/")[0] in compared}

    then, now = trained(recorded), trained(used)
    if then != now:
        told = []
        if then - now:
            told.append(f"it was trained with {', '.join(sorted(then - now))}, which the recipe no longer names")
        if now - then:
            told.append(f"the recipe names {', '.join(sorted(now - then))}, which it was not trained with")
        raise RunError(
            f"{path} does not fit the recipe: {'; '.join(told)}. Put back the run's recipe.yaml as it was, or "
            "start a new run (another --run-dir)"
        )


def resumable_checkpoint(run: RunDir) -> dict[str, Any]:
    """last.pt, loaded, with every entry resuming needs, its progress checked, and the vocabularies and
    tokenizer files it was saved with unchanged. (Weights and optimizer state are checked against the model
    when they are restored.)"""
    path = run.last_checkpoint
    saved = load_checkpoint(run, "last").saved
    checkpoint.require(saved, path, "optimizer", dict, "the optimizer's state")
    recorded = saved.get("components")
    if "schedule" in saved or (isinstance(recorded, dict) and any(str(k).startswith("schedule/") for k in recorded)):
        checkpoint.require(saved, path, "schedule", dict, SCHEDULE_STATE)  # only a checkpoint from before may lack it
    checkpoint.require(saved, path, "rng", dict, "the random states")
    _progress(checkpoint.require(saved, path, "progress", dict, "where training stands"), path)
    return saved


def _progress(saved: dict[str, Any], path: Path) -> TrainingState:
    """The checkpoint's 'progress' as a TrainingState; each entry must have the type of its field's default."""
    defaults = asdict(TrainingState())
    unknown = [str(key) for key in saved if key not in defaults]
    missing = [key for key in ("epoch", "step") if key not in saved]
    if unknown or missing:
        what = f"unknown entries {', '.join(unknown)}" if unknown else f"no {' or '.join(missing)}"
        raise RunError(f"{path}: 'progress' (where training stands) has {what}; {checkpoint.REMEDY}")
    for key, value in saved.items():
        expected = _expected(value, defaults[key])
        if expected is not None:
            raise RunError(
                f"{path}: 'progress' entry {key!r} is {value!r:.60}, expected {expected}; {checkpoint.REMEDY}"
            )
    return TrainingState(**saved)


def _expected(value: Any, default: Any) -> str | None:
    """What a progress entry whose field defaults to `default` must be, when `value` is not that; else None."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, list):
        return None if isinstance(value, list) and all(map(is_epoch_record, value)) else "a list of epoch records"
    if default is None or isinstance(default, float):
        return None if number or (value is None and default is None) else "a number"
    return None if number and isinstance(value, int) and value >= 0 else "a whole number >= 0"


def _restore_rng(states: dict[str, Any], path: Path, device: torch.device) -> None:
    try:
        checkpoint.restore_rng_states(states, device)
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError, OverflowError) as exc:
        raise RunError(f"{path}: 'rng' (the random states) cannot be restored ({exc}); {checkpoint.REMEDY}") from None


def _load_optimizer(optimizer: torch.optim.Optimizer, saved: dict[str, Any], path: Path) -> None:
    """Restore the optimizer's state; its groups and per-weight moments must match this model's weights."""
    problem = _optimizer_problem(optimizer, saved)
    if problem is None:
        try:
            optimizer.load_state_dict(saved)
            return
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
            problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    raise RunError(
        f"{path}: 'optimizer' (the optimizer's state) does not fit this model: {problem}; {checkpoint.REMEDY}"
    )


SCHEDULE_STATE = "the learning-rate schedule's state"


def _load_schedule(schedule: Schedule, saved: dict[str, Any], path: Path, name: str) -> None:
    """Restore the schedule's state. A checkpoint written before schedules were components has none: its run used
    the default schedule (plateau), whose rates are the optimizer's, already restored."""
    if "schedule" not in saved:
        default = at("train", "schedule").default
        if name != default:
            raise RunError(
                f"{path}: the checkpoint has no 'schedule' ({SCHEDULE_STATE}), which schedule {name!r} needs; "
                f"it was written before schedules were components, when every run used {default!r}: put back the "
                f"run's recipe.yaml as it was; {checkpoint.REMEDY}"
            )
        return
    try:
        schedule.load_state_dict(saved["schedule"])
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RunError(
            f"{path}: 'schedule' ({SCHEDULE_STATE}) does not fit schedule {name!r}: {problem}; {checkpoint.REMEDY}"
        ) from None


def _optimizer_problem(optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> str | None:
    """What is wrong with a saved optimizer state dict, compared with `optimizer`'s own; None when it fits."""
    groups, state = saved.get("param_groups"), saved.get("state")
    live = optimizer.state_dict()["param_groups"]
    if not isinstance(groups, list) or not isinstance(state, dict) or len(groups) != len(live):
        return f"expected 'state' and {len(live)} 'param_groups'"
    shapes: dict[Any, torch.Size] = {}
    for group, mine, params in zip(groups, live, optimizer.param_groups, strict=True):
        if not isinstance(group, dict) or not isinstance(group.get("params"), list):
            return "a parameter group is not a mapping with 'params'"
        if len(group["params"]) != len(mine["params"]):
            return f"a group has {len(group['params'])} weights, this model {len(mine['params'])}"
        for key, value in mine.items():
            if key != "params" and key in group and not _same_kind(group[key], value):
                return f"group setting {key!r} is {group[key]!r:.40}, expected a value like {value!r}"
        shapes.update(zip(group["params"], (p.shape for p in params["params"]), strict=True))
    for index, moments in state.items():
        if index not in shapes or not isinstance(moments, dict):
            return f"state for an unknown weight {index!r:.40}"
        for key in WEIGHT_SHAPED:
            value = moments.get(key)
            if value is not None and not (isinstance(value, torch.Tensor) and value.shape == shapes[index]):
                return f"{key!r} of weight {index} is not a tensor of shape {tuple(shapes[index])}"
        counted = "step" in moments or "exp_avg" in moments  # Adam's moments need their step count
        if counted and (not isinstance(moments.get("step"), torch.Tensor) or moments["step"].numel() != 1):
            return f"'step' of weight {index} is not a one-element tensor"
    return None


#: Per-weight optimizer state of torch's optimizers that has the weight's shape: Adam's and AdamW's moments,
#: SGD's momentum.
WEIGHT_SHAPED = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer")


def _same_kind(saved: Any, live: Any) -> bool:
    """Group settings (lr, betas, eps, flags) keep their type; integers and floats may stand for each other."""
    if isinstance(live, (int, float)) and not isinstance(live, bool):
        return isinstance(saved, (int, float)) and not isinstance(saved, bool)
    if isinstance(live, (tuple, list)):
        return isinstance(saved, (tuple, list)) and len(saved) == len(live) and all(map(_same_kind, saved, live))
    return type(saved) is type(live)


def check_resumable(saved: dict[str, Any], recipe: dict[str, Any]) -> None:
    """Refuse to resume with a recipe that changes what was trained; list the changes."""
    changes = [c for c in recipe_differences(saved, recipe) if not c.startswith(SAFE_TO_CHANGE)]
    if changes:
        raise RunError(
            "the recipe differs from the one this run was started with:\n  "
            + "\n  ".join(changes)
            + "\nOnly these may change on resume: "
            + ", ".join(SAFE_TO_CHANGE)
            + "\nTo train the changed recipe, start a new run (another --run-dir)."
        )
