"""Training: seeded, resumable, validated each epoch, best checkpoint kept, early stopping."""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from transduce import checkpoint, pipeline
from transduce.batching import Batch, training_batches
from transduce.components import Metric
from transduce.corpus import DataSummary, Side, SplitSummary, prepare_training, summarize
from transduce.errors import RunError, TransduceError
from transduce.evaluation import evaluate
from transduce.inference import Translator, pick_device
from transduce.lifecycle import Lifecycle
from transduce.model import sequence_loss
from transduce.recipe import dump_recipe, recipe_differences
from transduce.registry import Registry
from transduce.report import Report
from transduce.rundir import RunDir
from transduce.vocab import Vocabulary

LOG_EVERY = 20  # steps between reading the loss back from the device

# Recipe keys that may change when a run is resumed: they do not alter what was trained so far.
SAFE_TO_CHANGE = (
    "train.epochs",
    "train.patience",
    "train.device",
    "train.threads",
    "train.valid_every",
    "evaluate.",
    "decoder.",
    "loggers",
)


@dataclass
class TrainingState:
    """Where training stands; saved in every checkpoint."""

    epoch: int = 0
    step: int = 0
    best_score: float | None = None
    best_epoch: int = 0
    stale: int = 0
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


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
        self.settings = recipe["train"]
        self.registry = registry
        self.run = run
        self.console = console
        self.lifecycle = Lifecycle.for_recipe(registry, recipe)

    # --- set-up ----------------------------------------------------------------

    def _prepare(self, resume: bool) -> None:
        if self.settings["threads"]:
            torch.set_num_threads(self.settings["threads"])
        seed_everything(self.recipe["seed"])
        self.device = pick_device(self.settings["device"])
        self.data = pipeline.data_source(self.registry, self.recipe)
        self.source_tokenizer = pipeline.tokenizer(self.registry, self.recipe, "source")
        self.target_tokenizer = pipeline.tokenizer(self.registry, self.recipe, "target")
        self._ready_tokenizers(resume)
        corpus = prepare_training(
            self.data.split("train"),
            Side(self.source_tokenizer, self.recipe["source"]["max_length"]),
            Side(self.target_tokenizer, self.recipe["target"]["max_length"]),
            self._vocabulary_maker(resume),
        )
        self.source_vocab, self.target_vocab = corpus.source_vocab, corpus.target_vocab
        self.train_pairs = corpus.pairs
        self.valid = list(self.data.split("valid"))
        self.test = list(self.data.split(self.recipe["evaluate"]["split"]))
        _check_not_empty(corpus.summary, len(self.valid))
        self.summary = self._summarize(corpus.summary)
        self.model = pipeline.model(self.registry, self.recipe, len(self.source_vocab), len(self.target_vocab)).to(
            self.device
        )
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.settings["lr"])
        self.metrics: list[Metric] = pipeline.metrics(self.registry, self.recipe)
        self.translator = Translator(
            self.model,
            self.source_tokenizer,
            self.target_tokenizer,
            self.source_vocab,
            self.target_vocab,
            pipeline.decoding(self.registry, self.recipe),
            self.device,
        )
        self.state = self._restore() if resume else TrainingState()
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
            vocab = Vocabulary.from_counts(counts, self.recipe[side]["min_freq"], self.recipe[side]["max_size"])
            vocab.save(path)
            return vocab

        return vocabulary

    def _summarize(self, train: SplitSummary) -> DataSummary:
        """Sizes and vocabulary coverage of every split, saved as data.json in the run."""
        summary = DataSummary(splits={"train": train}, notes=list(self.data.notes()))
        held_out = {"valid": self.valid, self.recipe["evaluate"]["split"]: self.test}
        for name, examples in held_out.items():
            if name != "train":
                summary.splits[name] = summarize(
                    examples, self.source_tokenizer, self.target_tokenizer, self.source_vocab, self.target_vocab
                )
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

    def _restore(self) -> TrainingState:
        saved = checkpoint.load(self.run.last_checkpoint)
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["rng"]["torch"])
        if torch.cuda.is_available() and saved["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(saved["rng"]["cuda"])
        state = TrainingState(**saved["progress"])
        # The log may hold an epoch that ended after this checkpoint was written: rewrite it from the checkpoint.
        self.run.metrics_log.write_text("".join(json.dumps(r) + "\n" for r in state.history), encoding="utf-8")
        self.console.print(f"resuming after epoch {state.epoch} (step {state.step:,})")
        return state

    # --- the loop --------------------------------------------------------------

    def train(self, resume: bool = False) -> Report:
        """Train the remaining epochs, then score the best checkpoint on the evaluation split."""
        try:
            return self._train(resume)
        except BaseException as error:
            self.lifecycle.run_failed(error)
            raise

    def _train(self, resume: bool) -> Report:
        self.lifecycle.run_start(self.recipe, self.run.path)
        self._prepare(resume)
        epochs = self.settings["epochs"]
        for epoch in range(self.state.epoch + 1, epochs + 1):
            rng = random.Random(self.recipe["seed"] * 1_000_003 + epoch)
            batches = training_batches(self.train_pairs, self.settings["batch_size"], rng, self.target_vocab)
            loss, tokens, seconds = self._epoch(epoch, batches)
            self.state.epoch, self.state.seconds = epoch, self.state.seconds + seconds
            record: dict[str, Any] = {
                "epoch": epoch,
                "step": self.state.step,
                "loss": round(loss, 5),
                "tokens_per_second": round(tokens / seconds, 1),
                "seconds": round(seconds, 2),
                "lr": self.optimizer.param_groups[0]["lr"],
            }
            stop = False
            if epoch % self.settings["valid_every"] == 0 or epoch == epochs:
                stop = self._validate(epoch, record)
            self.state.history.append(record)
            self.run.log_metrics(record)
            self._save_last()
            self.lifecycle.checkpoint_saved(self.run.last_checkpoint, "last")
            self.lifecycle.epoch_end(record)
            if self.on_epoch is not None:
                self.on_epoch(self, record)
            if stop:
                self.console.print(f"early stopping: no improvement in {self.settings['patience']} validations")
                break
        return self._final_report()

    def _epoch(self, epoch: int, batches: list[Batch]) -> tuple[float, int, float]:
        self.model.train()
        started = time.perf_counter()
        total_loss = torch.zeros((), device=self.device)
        tokens = 0
        with _progress_bar(self.console) as bar:
            label = f"{epoch}/{self.settings['epochs']}"
            task = bar.add_task("train", total=len(batches), epoch=label, loss="…", tps="…")
            for index, batch in enumerate(batches, 1):
                loss = self._step(batch.to(self.device))
                total_loss += loss.detach() * batch.target_tokens
                tokens += batch.target_tokens
                bar.advance(task)
                if index % LOG_EVERY == 0 or index == len(batches):
                    mean = total_loss.item() / tokens
                    if not math.isfinite(mean):
                        raise TransduceError(self._diverged_message(mean, epoch))
                    speed = tokens / (time.perf_counter() - started)
                    bar.update(task, loss=f"{mean:.4f}", tps=f"{speed:,.0f}")
        return total_loss.item() / max(tokens, 1), tokens, time.perf_counter() - started

    def _diverged_message(self, loss: float, epoch: int) -> str:
        kept = (
            f"the last good checkpoint, {self.run.last_checkpoint}, is kept"
            if self.run.last_checkpoint.exists()
            else "no checkpoint was written yet"
        )
        return (
            f"the loss became {loss} by step {self.state.step} (epoch {epoch}); {kept}. "
            "Lower train.lr or set train.clip_grad_norm."
        )

    def _step(self, batch: Batch) -> torch.Tensor:
        logits = self.model(batch.source, batch.lengths, batch.target_in)
        loss = sequence_loss(logits, batch.target_out, self.target_vocab.pad_index, self.settings["label_smoothing"])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.settings["clip_grad_norm"]:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings["clip_grad_norm"])
        self.optimizer.step()
        self.state.step += 1
        return loss

    def _validate(self, epoch: int, record: dict[str, Any]) -> bool:
        """Score the valid split; keep the best checkpoint; True when patience has run out."""
        report = evaluate(
            self.translator,
            self.valid,
            self.metrics,
            split="valid",
            shown=0,
            batch_size=self.recipe["evaluate"]["batch_size"],
        )
        record["valid"] = report.metrics()
        self.lifecycle.validation_end(epoch, record["valid"])
        name = self.settings["best_metric"]
        metric = next(m for m in self.metrics if m.name == name)
        score = report.metrics()[name]
        best = self.state.best_score
        improved = best is None or (score > best if metric.higher_is_better else score < best)
        if improved:
            self.state.best_score, self.state.best_epoch, self.state.stale = score, epoch, 0
            checkpoint.save_atomic(
                {"model": self.model.state_dict(), "epoch": epoch, "score": score}, self.run.best_checkpoint
            )
            record["best"] = True
            self.lifecycle.checkpoint_saved(self.run.best_checkpoint, "best")
        else:
            self.state.stale += 1
            self._decay_learning_rate()
        patience = self.settings["patience"]
        return patience is not None and self.state.stale >= patience

    def _decay_learning_rate(self) -> None:
        """Plateau schedule; the rate lives in the optimizer's state, so checkpoints and resume carry it."""
        decay = self.settings["lr_decay"]
        if decay is None:
            return
        for group in self.optimizer.param_groups:
            group["lr"] = max(group["lr"] * decay, min(group["lr"], self.settings["min_lr"]))

    def _save_last(self) -> None:
        rng: dict[str, Any] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint.save_atomic(
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "rng": rng,
                "progress": asdict(self.state),
                "components": _provenance(self.recipe, self.registry),
            },
            self.run.last_checkpoint,
        )

    # --- the end ---------------------------------------------------------------

    def _final_report(self) -> Report:
        if self.run.best_checkpoint.exists():
            self.model.load_state_dict(checkpoint.load(self.run.best_checkpoint)["model"])
        settings = self.recipe["evaluate"]
        report = evaluate(
            self.translator,
            self.test,
            self.metrics,
            split=settings["split"],
            shown=settings["examples"],
            batch_size=settings["batch_size"],
        )
        report.data = self.summary.as_dict()
        self.lifecycle.evaluation_end(report)
        write_report(self.run, report, "report")
        self.lifecycle.run_end(report)
        return report


def _check_not_empty(train: SplitSummary, valid_pairs: int) -> None:
    if not train.pairs:
        dropped = f" ({train.filtered:,} pairs were longer than source/target.max_length)" if train.filtered else ""
        raise TransduceError(f"the training split is empty{dropped}; check the data settings")
    if not valid_pairs:
        raise TransduceError("the data source gave an empty valid split; check the data settings")


def write_report(run: RunDir, report: Report, name: str) -> None:
    run.report(name, "json").write_text(report.to_json() + "\n", encoding="utf-8")
    run.report(name, "md").write_text(report.to_markdown(), encoding="utf-8")


def _provenance(recipe: dict[str, Any], registry: Registry) -> dict[str, str]:
    """'family/name' -> 'distribution version' for every component the run uses."""
    used = [
        ("dataset", recipe["data"]),
        ("tokenizer", recipe["source"]["tokenizer"]),
        ("tokenizer", recipe["target"]["tokenizer"]),
        ("encoder", recipe["model"]["encoder"]),
        ("attention", recipe["model"]["attention"]),
        ("decoder", recipe["decoder"]),
    ]
    used += [("metric", m) for m in recipe["evaluate"]["metrics"]]
    out = {}
    for family, spec in used:
        info = registry.get(family, spec["name"])
        if info is not None:
            out[f"{family}/{spec['name']}"] = f"{info.provider.distribution} {info.provider.version}"
    return out


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


def start_run(recipe: dict[str, Any], run: RunDir) -> None:
    """Write the resolved recipe into a new run directory."""
    run.recipe.write_text(dump_recipe(recipe), encoding="utf-8")


def check_resumable(saved: dict[str, Any], recipe: dict[str, Any]) -> None:
    """Refuse to resume with a recipe that changes what was trained; list the changes."""
    changes = [c for c in recipe_differences(saved, recipe) if not c.startswith(SAFE_TO_CHANGE)]
    if changes:
        raise RunError(
            "the recipe differs from the one this run was started with:\n  "
            + "\n  ".join(changes)
            + "\nOnly these may change on resume: "
            + ", ".join(SAFE_TO_CHANGE)
        )
