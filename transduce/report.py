"""Evaluation reports: scores with their signatures and example outputs, as a table, JSON and Markdown."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from transduce.components import Score

COVERAGE_COLUMNS = ("pairs", "source UNK", "target UNK", "source types known", "target types known")


@dataclass
class ExampleResult:
    source: str
    reference: str
    hypothesis: str

    @property
    def correct(self) -> bool:
        return self.hypothesis.strip() == self.reference.strip()


@dataclass
class Report:
    """Scores of one split (or file) and a few example outputs."""

    split: str
    size: int
    scores: list[Score]
    examples: list[ExampleResult] = field(default_factory=list)
    seconds: float = 0.0
    data: dict[str, Any] | None = None  # a DataSummary as a dict: pairs and vocabulary coverage per split

    def metrics(self) -> dict[str, float]:
        """Metric name -> value, e.g. {'exact_match': 99.9, 'bleu': 99.8}."""
        return {score.name: round(score.value, 4) for score in self.scores}

    def as_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "size": self.size,
            "seconds": round(self.seconds, 3),
            "sentences_per_second": round(self.size / self.seconds, 1) if self.seconds else None,
            "metrics": self.metrics(),
            "signatures": {s.name: s.signature for s in self.scores if s.signature},
            "details": {s.name: s.extra for s in self.scores if s.extra},
            "examples": [{**asdict(e), "correct": e.correct} for e in self.examples],
            **({"data": self.data} if self.data else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), ensure_ascii=False, indent=2)

    def to_markdown(self) -> str:
        lines = [f"# Evaluation on {self.split} ({self.size} examples)", "", "| metric | score |", "|---|---:|"]
        lines += [f"| {s.name} | {s.value:.2f} |" for s in self.scores]
        signatures = [f"- {s.name}: `{s.signature}`" for s in self.scores if s.signature]
        if signatures:
            lines += ["", "Signatures:", *signatures]
        if self.data:
            header = f"| split | {' | '.join(COVERAGE_COLUMNS)} |"
            lines += ["", "## Data", "", header, "|---|" + "---:|" * len(COVERAGE_COLUMNS)]
            lines += [f"| {name} | {' | '.join(row)} |" for name, row in _coverage_rows(self.data)]
            lines += [f"- note: {_md(note)}" for note in self.data.get("notes", [])]
        if self.examples:
            lines += ["", "| source | reference | hypothesis | correct |", "|---|---|---|---|"]
            lines += [
                f"| {_md(e.source)} | {_md(e.reference)} | {_md(e.hypothesis)} | {'yes' if e.correct else 'no'} |"
                for e in self.examples
            ]
        return "\n".join(lines) + "\n"

    def render(self, console: Console) -> None:
        scores = Table(title=f"Scores on {self.split} ({self.size} examples, {self.seconds:.1f} s)")
        scores.add_column("metric")
        scores.add_column("score", justify="right")
        scores.add_column("signature", overflow="fold")
        for s in self.scores:
            scores.add_row(s.name, f"{s.value:.2f}", s.signature or "")
        console.print(scores)
        if self.data:
            data = Table(title="Data: vocabulary coverage")
            data.add_column("split")
            for column in COVERAGE_COLUMNS:
                data.add_column(column, justify="right")
            for name, row in _coverage_rows(self.data):
                data.add_row(name, *row)
            console.print(data)
            for note in self.data.get("notes", []):
                console.print(f"[yellow]data note:[/] {escape(note)}")
        if self.examples:
            table = Table(title="Examples")
            for column in ("source", "reference", "hypothesis", ""):
                table.add_column(column, overflow="fold")
            for e in self.examples:
                table.add_row(e.source, e.reference, e.hypothesis, "[green]✓[/]" if e.correct else "[red]✗[/]")
            console.print(table)


def _coverage_rows(data: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(split, [pairs, source UNK %, target UNK %, source types known %, target types known %])."""
    rows = []
    for name, split in data.get("splits", {}).items():
        cells = [f"{split['pairs']:,}"]
        cells += [f"{split[side]['unk_rate']:.2f}%" for side in ("source", "target")]
        cells += [f"{split[side]['type_coverage']:.1f}%" for side in ("source", "target")]
        rows.append((name, cells))
    return rows


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
