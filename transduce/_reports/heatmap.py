"""Attention heat maps: which source tokens each output token looked at, as data and in the terminal.

A heat map has one row per output token (plus a last `</s>` row when the
decoder emitted it) and one column per source token; each row is an attention
distribution, so it sums to 1. The PNG and HTML pictures (transduce._reports.plots,
transduce._reports.html_report) draw the same object.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

EOS = "</s>"
SHADES = " ░▒▓█"  # from no attention to all of it
LEVELS = (0.05, 0.25, 0.5, 0.75)  # weights at or above LEVELS[i] get SHADES[i + 1]
COLORS = ("grey23", "steel_blue", "dodger_blue2", "deep_sky_blue1", "bright_white")
CELL = 2  # terminal characters per column
LABEL_LINES = 8  # longest vertical column label in the terminal


@dataclass
class Heatmap:
    """Attention of one translation: rows are output tokens, columns are source tokens."""

    source: list[str]
    output: list[str]
    weights: list[list[float]]
    source_text: str = ""
    output_text: str = ""

    @classmethod
    def from_translation(cls, translation: Any, source_text: str = "") -> Heatmap:
        """From an inference Translation (source_tokens, tokens, attention with an optional '</s>' row)."""
        rows = _as_rows(translation.attention)
        output = list(translation.tokens)
        if len(rows) == len(output) + 1:
            output.append(EOS)
        if len(rows) != len(output):
            raise ValueError(f"attention has {len(rows)} rows for {len(translation.tokens)} output tokens")
        columns = len(translation.source_tokens)
        weights = [row[:columns] for row in rows]
        return cls(list(translation.source_tokens), output, weights, source_text, translation.text)

    @property
    def caption(self) -> str:
        """'source → output', from the texts when known, else from the tokens."""
        source = self.source_text or " ".join(map(label, self.source))
        output = self.output_text or " ".join(label(t) for t in self.output if t != EOS)
        return f"{source} → {output}"

    def as_dict(self, digits: int = 3) -> dict[str, Any]:
        return {
            "source_text": self.source_text,
            "output_text": self.output_text,
            "source": self.source,
            "output": self.output,
            "weights": [[round(w, digits) for w in row] for row in self.weights],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Heatmap:
        weights = [list(map(float, row)) for row in data["weights"]]
        texts = data.get("source_text", ""), data.get("output_text", "")
        return cls(list(data["source"]), list(data["output"]), weights, *texts)


def _as_rows(attention: Any) -> list[list[float]]:
    if attention is None:
        return []
    if hasattr(attention, "tolist"):  # a tensor or an array
        attention = attention.tolist()
    return [[float(w) for w in row] for row in attention]


def label(token: str) -> str:
    """A token as a readable label: spaces and empty tokens made visible."""
    if token == "":
        return "∅"
    return token.replace(" ", "␣").replace("\t", "⇥").replace("\n", "⏎")


def shade(weight: float) -> int:
    """Index into SHADES for an attention weight in [0, 1]."""
    return sum(weight >= level for level in LEVELS)


def render_terminal(heatmap: Heatmap, console: Console) -> None:
    """Print the heat map with block characters: source tokens across the top, output tokens down the side."""
    rows = [label(t) for t in heatmap.output]
    margin = max((cell_len(r) for r in rows), default=0) + 1
    for line in _column_labels([label(t) for t in heatmap.source]):
        console.print(Text(" " * margin + line, style="bold"), soft_wrap=True)
    for name, weights in zip(rows, heatmap.weights, strict=True):
        text = Text(_pad(name, margin - 1, right=True) + " ", style="bold")
        for weight in weights:
            level = shade(weight)
            text.append(SHADES[level] * CELL, style=COLORS[level])
        console.print(text, soft_wrap=True)
    legend = f"{SHADES[1]} 5–25%  {SHADES[2]} 25–50%  {SHADES[3]} 50–75%  {SHADES[4]} ≥75%"
    console.print(Text(f"rows: output tokens · columns: source tokens · {legend} of the row's attention", style="dim"))


def _column_labels(tokens: Sequence[str]) -> list[str]:
    """One header line when every token fits its column, else the tokens written downwards."""
    if all(cell_len(t) <= CELL for t in tokens):
        return ["".join(_pad(t, CELL) for t in tokens)]
    cut = [t if len(t) <= LABEL_LINES else t[: LABEL_LINES - 1] + "…" for t in tokens]
    depth = max(len(t) for t in cut)
    return ["".join(_pad(t[i] if i < len(t) else "", CELL) for t in cut) for i in range(depth)]


def _pad(text: str, width: int, right: bool = False) -> str:
    """`text` padded with spaces to `width` terminal cells (a Hangul or CJK character takes two)."""
    fill = " " * max(0, width - cell_len(text))
    return fill + text if right else text + fill
