"""Evaluation reports: scores with their signatures, length, source-length buckets, best and worst
examples, attention heat maps and strategy comparisons; rendered as rich tables, JSON and Markdown
(the HTML page is transduce._reports.html_report)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from transduce._plugins.contracts import Score
from transduce._reports.heatmap import Heatmap

PERFECT = 100.0  # a sentence chrF this high is never listed among the worst examples
NO_WORST = "None: every example has a sentence chrF of 100."
TEXT_COLUMNS = ("source", "reference", "hypothesis", "strategy")  # left-aligned; the other columns are numbers
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
class RankedExample:
    """An example with its sentence-level chrF, for the best and worst lists; `index` is its position."""

    index: int
    source: str
    reference: str
    hypothesis: str
    chrf: float


@dataclass
class LengthRatio:
    """Output length against reference length, both counted in the run's target tokenizer's tokens."""

    hypothesis_tokens: int
    reference_tokens: int

    @property
    def ratio(self) -> float | None:
        return self.hypothesis_tokens / self.reference_tokens if self.reference_tokens else None

    def as_dict(self) -> dict[str, Any]:
        ratio = self.ratio
        return {**asdict(self), "ratio": round(ratio, 4) if ratio is not None else None}


@dataclass
class Bucket:
    """The examples whose source has `low` to `high` tokens (the run's source tokenizer), scored alone."""

    low: int
    high: int
    count: int
    metrics: dict[str, float]
    length: LengthRatio

    @property
    def label(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}–{self.high}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "low": self.low,
            "high": self.high,
            "count": self.count,
            "metrics": self.metrics,
            "length_ratio": self.length.as_dict()["ratio"],
        }


def sentences_per_second(sentences: int, seconds: float) -> float | None:
    """The decoding rate to one decimal; None when no time was measured."""
    return round(sentences / seconds, 1) if seconds else None


@dataclass
class StrategyResult:
    """One search strategy's scores and speed on the same examples."""

    strategy: str
    metrics: dict[str, float]
    size: int
    seconds: float

    @property
    def sentences_per_second(self) -> float | None:
        return sentences_per_second(self.size, self.seconds)

    def as_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "metrics": self.metrics,
            "seconds": round(self.seconds, 3),
            "sentences_per_second": self.sentences_per_second,
        }


@dataclass
class Report:
    """Scores of one split (or file), a few example outputs, and (after a full evaluation) the analysis."""

    split: str
    size: int
    scores: list[Score]
    examples: list[ExampleResult] = field(default_factory=list)
    seconds: float = 0.0
    data: dict[str, Any] | None = None  # a DataSummary as a dict: pairs and vocabulary coverage per split
    search: str = ""  # the search strategy, e.g. 'greedy:max_length=16'
    length: LengthRatio | None = None
    buckets: list[Bucket] = field(default_factory=list)
    best: list[RankedExample] = field(default_factory=list)
    worst: list[RankedExample] = field(default_factory=list)
    heatmaps: list[Heatmap] = field(default_factory=list)
    comparison: list[StrategyResult] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """Metric name -> value, e.g. {'exact_match': 99.9, 'bleu': 99.8}."""
        return {score.name: round(score.value, 4) for score in self.scores}

    @property
    def sentences_per_second(self) -> float | None:
        return sentences_per_second(self.size, self.seconds)

    def as_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "size": self.size,
            "seconds": round(self.seconds, 3),
            "sentences_per_second": self.sentences_per_second,
            "search": self.search,
            "metrics": self.metrics(),
            "signatures": {s.name: s.signature for s in self.scores if s.signature},
            "details": {s.name: s.extra for s in self.scores if s.extra},
            "length": self.length.as_dict() if self.length else None,
            "buckets": [b.as_dict() for b in self.buckets],
            "comparison": [c.as_dict() for c in self.comparison],
            "examples": [{**asdict(e), "correct": e.correct} for e in self.examples],
            "best": [asdict(e) for e in self.best],
            "worst": [asdict(e) for e in self.worst],
            "heatmaps": [h.as_dict() for h in self.heatmaps],
            **({"data": self.data} if self.data else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), ensure_ascii=False, indent=2)

    def to_markdown(self) -> str:
        lines = [f"# Evaluation on {_md(self.split)} ({self.size} examples)", ""]
        if self.search:
            lines += [f"Search `{self.search}`, {_speed(self)}.", ""]
        lines += ["| metric | score |", "|---|---:|"]
        lines += [f"| {s.name} | {s.value:.2f} |" for s in self.scores]
        if self.length:
            lines += ["", f"Length ratio: {_length_text(self.length)}."]
        signatures = [f"- {s.name}: `{s.signature}`" for s in self.scores if s.signature]
        if signatures:
            lines += ["", "Signatures:", *signatures]
        for title, header, rows in self._tables():
            lines += ["", f"## {title}", ""]
            if not rows:
                lines.append(NO_WORST)
                continue
            align = "".join("---|" if column in TEXT_COLUMNS else "---:|" for column in header)
            lines += ["| " + " | ".join(header) + " |", "|" + align]
            lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in rows]
        if self.data:
            header = f"| split | {' | '.join(COVERAGE_COLUMNS)} |"
            lines += ["", "## Data", "", header, "|---|" + "---:|" * len(COVERAGE_COLUMNS)]
            lines += [f"| {name} | {' | '.join(row)} |" for name, row in _coverage_rows(self.data)]
            lines += [f"- note: {_md(note)}" for note in self.data.get("notes", [])]
        if self.examples:
            lines += ["", "## Examples", "", "| source | reference | hypothesis | correct |", "|---|---|---|---|"]
            lines += [
                f"| {_md(e.source)} | {_md(e.reference)} | {_md(e.hypothesis)} | {'yes' if e.correct else 'no'} |"
                for e in self.examples
            ]
        return "\n".join(lines) + "\n"

    def _tables(self) -> list[tuple[str, list[str], list[list[str]]]]:
        """(title, header, rows) of the analysis tables, shared by the terminal, Markdown and HTML."""
        names = [s.name for s in self.scores]
        tables = []
        if self.buckets:
            rows = [
                [b.label, f"{b.count:,}", *(f"{b.metrics[n]:.2f}" for n in names), _ratio(b.length)]
                for b in self.buckets
            ]
            tables.append(("Scores by source length", ["source tokens", "examples", *names, "length ratio"], rows))
        if self.comparison:
            rows = [
                [c.strategy, *(f"{c.metrics[n]:.2f}" for n in names), _per_second(c.sentences_per_second)]
                for c in self.comparison
            ]
            tables.append(("Decoding strategies", ["strategy", *names, "sentences/s"], rows))
        for title, ranked in (("Best examples", self.best), ("Worst examples", self.worst)):
            if ranked or (title == "Worst examples" and self.best):  # an empty worst list: see NO_WORST
                rows = [[f"{e.chrf:.1f}", e.source, e.reference, e.hypothesis] for e in ranked]
                tables.append((f"{title} (sentence chrF)", ["chrF", "source", "reference", "hypothesis"], rows))
        return tables

    def render(self, console: Console) -> None:
        title = f"Scores on {self.split} ({self.size} examples, {self.seconds:.1f} s"
        title += f", {self.search})" if self.search else ")"
        scores = Table(title=escape(title))
        scores.add_column("metric")
        scores.add_column("score", justify="right")
        scores.add_column("signature", overflow="fold")
        for s in self.scores:
            scores.add_row(s.name, f"{s.value:.2f}", s.signature or "")
        console.print(scores)
        if self.length:
            console.print(f"length ratio {escape(_length_text(self.length))}")
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
        for title, header, rows in self._tables():
            if not rows:
                console.print(f"[italic]{title}[/]: {NO_WORST}")
                continue
            table = Table(title=title)
            for column in header:
                numeric = column not in TEXT_COLUMNS
                table.add_column(column, justify="right" if numeric else "left", overflow="fold")
            for row in rows:
                table.add_row(*(escape(cell) for cell in row))
            console.print(table)
        if self.examples:
            table = Table(title="Examples")
            for column in ("source", "reference", "hypothesis", ""):
                table.add_column(column, overflow="fold")
            for e in self.examples:
                table.add_row(
                    escape(e.source),
                    escape(e.reference),
                    escape(e.hypothesis),
                    "[green]✓[/]" if e.correct else "[red]✗[/]",
                )
            console.print(table)


def _ratio(length: LengthRatio) -> str:
    return f"{length.ratio:.3f}" if length.ratio is not None else "–"


def _per_second(value: float | None) -> str:
    return f"{value:,.1f}" if value is not None else "–"


def _speed(report: Report) -> str:
    return f"{report.seconds:.1f} s, {_per_second(report.sentences_per_second)} sentences/s"


def _length_text(length: LengthRatio) -> str:
    return (
        f"{_ratio(length)} ({length.hypothesis_tokens:,} output / {length.reference_tokens:,} reference tokens, "
        "counted with the target tokenizer)"
    )


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
