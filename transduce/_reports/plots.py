"""PNG pictures with matplotlib (the optional extra `plots`): attention heat maps and training curves.

matplotlib is imported only when a picture is drawn, through its object API
(no pyplot, so no display or global state is touched): a user without it gets
`PlotsUnavailable`, saying what to install, and everything else still works.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transduce._reports.heatmap import Heatmap, label
from transduce.errors import TransduceError

INSTALL_HINT = "pip install 'transduce[plots]'"
LINE_STYLES = ("-", "--", ":", "-.")
# Tried after DejaVu Sans, glyph by glyph, where installed: fonts with Hangul and CJK characters.
FALLBACK_FONTS = (
    "Noto Sans CJK KR",
    "Noto Sans KR",
    "NanumGothic",
    "Malgun Gothic",
    "Apple SD Gothic Neo",
    "AppleGothic",
    "Noto Sans CJK JP",
    "Noto Sans CJK SC",
    "Source Han Sans",
    "WenQuanYi Zen Hei",
    "Droid Sans Fallback",
    "Arial Unicode MS",
)
FONT_HINT = "install a font that has them, e.g. Noto Sans CJK (Debian/Ubuntu: apt-get install fonts-noto-cjk)"


class PlotsUnavailable(TransduceError):
    """matplotlib is not installed, so no PNG can be drawn."""


@dataclass
class Picture:
    """A PNG that was written, and what the reader should know about it (e.g. characters without a font)."""

    path: Path
    notes: list[str] = field(default_factory=list)


@contextmanager
def _matplotlib() -> Iterator[Any]:
    """matplotlib's Figure class, with fonts for Hangul and CJK added where the system has them."""
    try:
        import matplotlib
        from matplotlib import font_manager
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotsUnavailable(f"PNG pictures need matplotlib, which is not installed: {INSTALL_HINT}") from None
    installed = {font.name for font in font_manager.fontManager.ttflist}
    families = ["DejaVu Sans", *(name for name in FALLBACK_FONTS if name in installed)]
    with matplotlib.rc_context({"font.family": families}):
        yield Figure


def _save(figure: Any, path: Path) -> Picture:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            figure.savefig(path, format="png")
        except OSError as exc:
            raise TransduceError(f"{path}: cannot write the picture ({exc.strerror or exc})") from None
    missing = any("missing from font" in str(w.message) for w in caught)
    return Picture(
        path, [f"{path}: some characters have no font here and show as boxes; {FONT_HINT}"] if missing else []
    )


def save_heatmap(heatmap: Heatmap, path: Path, title: str = "") -> Picture:
    """Draw `heatmap` (rows: output tokens, columns: source tokens) into the PNG file `path`."""
    columns, rows = len(heatmap.source), len(heatmap.output)
    with _matplotlib() as Figure:
        figure = Figure(
            figsize=(max(3.0, 1.2 + 0.32 * columns), max(2.5, 1.2 + 0.32 * rows)), dpi=110, layout="constrained"
        )
        axes = figure.add_subplot()
        image = axes.imshow(heatmap.weights, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
        axes.set_xticks(
            range(columns),
            [label(t) for t in heatmap.source],
            rotation=90 if any(len(t) > 1 for t in heatmap.source) else 0,
        )
        axes.set_yticks(range(rows), [label(t) for t in heatmap.output])
        axes.tick_params(length=0)
        axes.set_xlabel("source tokens")
        axes.set_ylabel("output tokens")
        if title:
            axes.set_title(title, fontsize=9)
        figure.colorbar(image, ax=axes, shrink=0.8, label="attention")
        return _save(figure, path)


def save_curves(history: Sequence[dict[str, Any]], path: Path) -> Picture:
    """Training loss and validation scores per epoch (from metrics.jsonl records) into the PNG file `path`."""
    with _matplotlib() as Figure:
        figure = Figure(figsize=(9.0, 3.4), dpi=110, layout="constrained")
        loss_axes, valid_axes = figure.subplots(1, 2)
        epochs = [r["epoch"] for r in history]
        loss_axes.plot(epochs, [r["loss"] for r in history], marker="o", color="tab:red")
        loss_axes.set_title("training loss")
        loss_axes.set_xlabel("epoch")
        validated = [r for r in history if r.get("valid")]
        for index, name in enumerate(_metric_names(validated)):
            points = [(r["epoch"], r["valid"][name]) for r in validated if name in r["valid"]]
            style = LINE_STYLES[index % len(LINE_STYLES)]  # lines on top of each other (bleu = chrf = 100) all show
            valid_axes.plot(*zip(*points, strict=True), marker="o", linestyle=style, label=name, clip_on=False)
        valid_axes.set_title("validation scores")
        valid_axes.set_xlabel("epoch")
        valid_axes.set_ylim(0, 100)
        if validated:
            valid_axes.legend(fontsize=8, loc="lower right")  # scores rise, so the lower right is usually free
        for axes in (loss_axes, valid_axes):
            axes.grid(alpha=0.3)
            axes.xaxis.get_major_locator().set_params(integer=True)
        return _save(figure, path)


def _metric_names(records: Sequence[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for record in records:
        names += [name for name in record["valid"] if name not in names]
    return names


def save_comparison(series: Mapping[str, Sequence[tuple[int, float]]], metric: str, path: Path) -> Picture:
    """One line per model of its validation `metric` per epoch, (epoch, score) points, into the PNG file `path`:
    models trained side by side, as the figures that compare architectures draw them."""
    with _matplotlib() as Figure:
        figure = Figure(figsize=(6.4, 4.2), dpi=110, layout="constrained")
        axes = figure.subplots()
        for index, (label, points) in enumerate(series.items()):
            style = LINE_STYLES[index % len(LINE_STYLES)]  # equal curves (all at 100) stay distinguishable
            if points:
                axes.plot(*zip(*points, strict=True), marker="o", linestyle=style, label=label, clip_on=False)
        scores = [score for points in series.values() for _, score in points]
        if scores and 0.0 <= min(scores) and max(scores) <= 100.0:
            axes.set_ylim(0, 100)  # percentages: the whole scale, so curves of separate charts compare
        axes.set_xlabel("epoch")
        axes.set_ylabel(f"validation {metric}")
        axes.grid(alpha=0.3)
        axes.xaxis.get_major_locator().set_params(integer=True)
        if scores:
            axes.legend(fontsize=8, loc="lower right")
        return _save(figure, path)
