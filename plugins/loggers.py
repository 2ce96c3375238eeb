"""Built-in loggers: the progress line on the terminal, an event file, TensorBoard."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from transduce.api import Logger, Param, Report, hookimpl


def epoch_line(record: dict[str, Any], epochs: int | None = None) -> str:
    """'epoch 2/6  loss 0.1234  12,345 tok/s  3.2 s  valid: exact_match 97.00  bleu 99.10 (best)', rich markup."""
    total = f"/{epochs}" if epochs else ""
    line = (
        f"epoch {record['epoch']}{total}  loss {record['loss']:.4f}  "
        f"{record['tokens_per_second']:,.0f} tok/s  {record['seconds']:.1f} s"
    )
    valid = "  ".join(f"{escape(str(name))} {value:.2f}" for name, value in record.get("valid", {}).items())
    if valid:
        line += f"  valid: {valid}" + (" [green](best)[/]" if record.get("best") else "")
    return line


class ConsoleLogger(Logger):
    """One line per epoch on standard output: loss, tokens/s, seconds and validation scores, marking a new best."""

    name = "console"

    def __init__(self) -> None:
        self.console = Console(soft_wrap=True)
        self.epochs: int | None = None

    def run_start(self, recipe: dict[str, Any], run_dir: Path) -> None:
        self.epochs = recipe["train"]["epochs"]

    def epoch_end(self, record: dict[str, Any]) -> None:
        self.console.print(epoch_line(record, self.epochs))


class JsonlLogger(Logger):
    """Appends every event to events.jsonl in the run directory: one JSON object per line, written at once.

    Each line has `event` (the method's name) and `time` (Unix seconds), then
    the event's payload: `run_dir` and `recipe`; `record`; `epoch` and
    `metrics`; `path` and `kind`; `report` (the full report); `split` and
    `metrics` at run end; `error` and `message` on failure. A resumed run
    appends to the same file.
    """

    name = "jsonl"
    FILE = "events.jsonl"

    def __init__(self) -> None:
        self.path: Path | None = None

    def _write(self, event: str, **payload: Any) -> None:
        if self.path is None:
            raise RuntimeError(f"jsonl: {event} before run_start; no run directory to write to")
        line = json.dumps({"event": event, "time": round(time.time(), 3), **payload}, ensure_ascii=False, default=str)
        with self.path.open("a", encoding="utf-8") as handle:  # closed, hence flushed, after every line
            handle.write(line + "\n")

    def run_start(self, recipe: dict[str, Any], run_dir: Path) -> None:
        self.path = Path(run_dir) / self.FILE
        self._write("run_start", run_dir=str(run_dir), recipe=recipe)

    def epoch_end(self, record: dict[str, Any]) -> None:
        self._write("epoch_end", record=record)

    def validation_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self._write("validation_end", epoch=epoch, metrics=metrics)

    def checkpoint_saved(self, path: Path, kind: str) -> None:
        self._write("checkpoint_saved", path=str(path), kind=kind)

    def evaluation_end(self, report: Report) -> None:
        self._write("evaluation_end", report=report.as_dict())

    def run_end(self, report: Report) -> None:
        self._write("run_end", split=report.split, metrics=report.metrics())

    def run_failed(self, error: BaseException) -> None:
        self._write("run_failed", error=type(error).__name__, message=str(error))


class TensorBoardLogger(Logger):
    """Writes losses, speeds and scores as TensorBoard scalars, by epoch (needs `pip install 'transduce[tensorboard]'`).

    Scalars: `train/loss`, `train/tokens_per_second`, `valid/METRIC` and, for
    the final report, `SPLIT/METRIC` at the last epoch; the resolved recipe is
    stored as text. View with `tensorboard --logdir RUN_DIR`.
    """

    name = "tensorboard"
    params = (
        Param("directory", str, "tensorboard", "where the event files go; a relative path is inside the run directory"),
    )

    def __init__(self, directory: str = "tensorboard") -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ImportError(
                "it needs the tensorboard package: pip install 'transduce[tensorboard]' (or pip install tensorboard)"
            ) from None
        if not directory.strip():
            raise ValueError("directory must not be empty")
        self._summary_writer = SummaryWriter
        self.directory = directory
        self.writer: Any = None
        self.epoch = 0

    def run_start(self, recipe: dict[str, Any], run_dir: Path) -> None:
        self.writer = self._summary_writer(log_dir=str(Path(run_dir) / self.directory))
        text = json.dumps(recipe, indent=2, ensure_ascii=False, default=str)
        self.writer.add_text("recipe", "    " + text.replace("\n", "\n    "))  # a Markdown code block

    def validation_end(self, epoch: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(f"valid/{name}", value, epoch)

    def epoch_end(self, record: dict[str, Any]) -> None:
        self.epoch = record["epoch"]
        self.writer.add_scalar("train/loss", record["loss"], self.epoch)
        self.writer.add_scalar("train/tokens_per_second", record["tokens_per_second"], self.epoch)
        self.writer.flush()

    def evaluation_end(self, report: Report) -> None:
        for name, value in report.metrics().items():
            self.writer.add_scalar(f"{report.split}/{name}", value, self.epoch)

    def run_end(self, report: Report) -> None:
        self._close()

    def run_failed(self, error: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


@hookimpl
def transduce_components() -> list[type[Logger]]:
    return [ConsoleLogger, JsonlLogger, TensorBoardLogger]
