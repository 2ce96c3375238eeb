"""Writing a report into the run directory: NAME.md, NAME.json, NAME.html, and curves.png with matplotlib.

The HTML page draws the training curves from the run's metrics.jsonl and needs
nothing optional; curves.png is drawn only when the `plots` extra is installed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transduce._reports.html_report import to_html
from transduce._reports.plots import INSTALL_HINT, PlotsUnavailable, save_curves
from transduce._reports.report import Report
from transduce._runs.rundir import RunDir
from transduce.errors import RunError

CURVES = "curves.png"


@dataclass
class WrittenReport:
    """The files a report was written to, and notes on the pictures (not drawn and why, missing fonts)."""

    paths: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """'report written to A, B and C' for the console."""
        names = [str(p) for p in self.paths]
        listing = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        return f"report written to {listing}"


def read_history(path: Path) -> list[dict[str, Any]]:
    """The epoch records of a run's metrics.jsonl, in order; a missing file or a torn line gives fewer records."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if is_epoch_record(record):
            records.append(record)
    return records


def is_epoch_record(record: Any) -> bool:
    """Whether `record` is a metrics.jsonl epoch record the curves can draw: an integer epoch, a numeric loss
    and, when validated, numeric scores by metric name."""
    if not isinstance(record, dict) or not _integer(record.get("epoch")) or not _number(record.get("loss")):
        return False
    valid = record.get("valid")
    return not valid or (isinstance(valid, dict) and all(isinstance(k, str) and _number(v) for k, v in valid.items()))


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def write_report_files(run: RunDir, report: Report, name: str = "report") -> WrittenReport:
    """Write `report` as RUN/NAME.md, .json and .html (with the training curves) and RUN/curves.png."""
    history = read_history(run.metrics_log)
    written = WrittenReport()
    contents = {
        "md": report.to_markdown(),
        "json": report.to_json() + "\n",
        "html": to_html(report, history=history, title=f"{run.path.name}: {name}"),
    }
    for suffix, text in contents.items():
        path = run.report(name, suffix)
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise RunError(f"{path}: cannot write the report ({exc.strerror or exc})") from None
        written.paths.append(path)
    if history:
        _curves_png(run.path / CURVES, history, written)
    return written


def _curves_png(path: Path, history: Sequence[dict[str, Any]], written: WrittenReport) -> None:
    try:
        picture = save_curves(history, path)
    except PlotsUnavailable:
        written.notes.append(f"{CURVES} not drawn: matplotlib is not installed ({INSTALL_HINT})")
        return
    written.paths.append(picture.path)
    written.notes += picture.notes
