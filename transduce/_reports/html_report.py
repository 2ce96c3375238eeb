"""The evaluation report as one self-contained HTML page: inline CSS, pictures as inline SVG, no URL.

Everything the page shows comes from a Report and the run's training history;
every piece of text is escaped, so a source sentence holding markup stays text.
The page opens offline and without matplotlib.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from transduce._reports.heatmap import Heatmap, label
from transduce._reports.report import NO_WORST, TEXT_COLUMNS, Report, _coverage_rows
from transduce._version import __version__

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
DASHES = ("", "7 4", "2 3", "9 3 2 3")  # so that lines lying on top of each other (e.g. bleu = chrf = 100) all show
BLUES = ((247, 251, 255), (198, 219, 239), (107, 174, 214), (33, 113, 181), (8, 48, 107))
CELL = 22  # heat map cell, pixels
CHAR = 7.2  # approximate width of a 12px label character, pixels

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d232b; margin: 0;
  background: #f5f6f8; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid #d8dce2; padding-bottom: 4px; }
.meta, .hint, footer { color: #5b6573; }
.hint { margin: 0 0 10px; font-size: 13px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0 8px; }
.card { background: #fff; border: 1px solid #d8dce2; border-radius: 8px; padding: 10px 16px; min-width: 120px; }
.card .value { font-size: 26px; font-weight: 600; }
.card .name { color: #5b6573; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
table { border-collapse: collapse; background: #fff; border: 1px solid #d8dce2; margin: 4px 0 8px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e7e9ed; text-align: left; vertical-align: top; }
th { background: #eef0f3; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.text { white-space: pre-wrap; word-break: break-word; max-width: 360px; }
code { font-size: 12px; background: #eef0f3; padding: 1px 4px; border-radius: 3px; word-break: break-all; }
.ok { color: #1a7f37; } .bad { color: #c62828; }
.charts, .maps { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; background: #fff; border: 1px solid #d8dce2; border-radius: 8px; padding: 10px; max-width: 100%;
  overflow-x: auto; }
figcaption { font-size: 13px; color: #39414c; margin-bottom: 6px; white-space: pre-wrap; word-break: break-word; }
svg text { font: 12px system-ui, -apple-system, "Segoe UI", sans-serif; fill: #1d232b; }
svg .axis { stroke: #8a94a3; } svg .grid { stroke: #e7e9ed; }
footer { margin-top: 40px; font-size: 12px; }
"""


def to_html(report: Report, history: Sequence[Mapping[str, Any]] = (), title: str = "") -> str:
    """The whole page for `report`; `history` (metrics.jsonl records) adds the training curves."""
    sections = [
        _header(report),
        _scores(report),
        _curves(history),
        *(_analysis_table(t, h, rows) for t, h, rows in report._tables()),
        _heatmaps(report.heatmaps),
        _data(report.data),
        _examples(report),
    ]
    page_title = title or f"Evaluation on {report.split}"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(page_title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(s for s in sections if s)
        + f"\n<footer>transduce {escape(__version__)} · written {escape(stamp)}</footer>\n</main>\n</body>\n</html>\n"
    )


# --- sections ---------------------------------------------------------------------


def _header(report: Report) -> str:
    facts = [f"{report.size:,} examples", f"{report.seconds:.1f} s"]
    if report.sentences_per_second is not None:
        facts.append(f"{report.sentences_per_second:,.1f} sentences/s")
    search = f" · search <code>{escape(report.search)}</code>" if report.search else ""
    return f'<h1>Evaluation on {escape(report.split)}</h1>\n<p class="meta">{escape(" · ".join(facts))}{search}</p>'


def _scores(report: Report) -> str:
    cards = "".join(
        f'<div class="card"><div class="value">{s.value:.2f}</div><div class="name">{escape(s.name)}</div></div>'
        for s in report.scores
    )
    if report.length and report.length.ratio is not None:
        cards += (
            f'<div class="card"><div class="value">{report.length.ratio:.3f}</div>'
            '<div class="name">length ratio</div></div>'
        )
    parts = [f'<section id="scores">\n<div class="cards">{cards}</div>']
    if report.length:
        parts.append(
            f'<p class="hint">Length ratio: {report.length.hypothesis_tokens:,} output tokens / '
            f"{report.length.reference_tokens:,} reference tokens, both counted with the run's target tokenizer "
            "(below 1: outputs are shorter than the references).</p>"
        )
    signatures = [(s.name, s.signature) for s in report.scores if s.signature]
    if signatures:
        rows = "".join(f"<tr><td>{escape(n)}</td><td><code>{escape(sig)}</code></td></tr>" for n, sig in signatures)
        parts.append(f"<table><tr><th>metric</th><th>sacrebleu signature</th></tr>{rows}</table>")
    return "\n".join(parts) + "\n</section>"


def _curves(history: Sequence[Mapping[str, Any]]) -> str:
    if not history:
        return ""
    loss = {"loss": [(r["epoch"], float(r["loss"])) for r in history]}
    valid: dict[str, list[tuple[float, float]]] = {}
    for record in history:
        for name, value in (record.get("valid") or {}).items():
            valid.setdefault(name, []).append((record["epoch"], float(value)))
    charts = [_figure("training loss per epoch", line_chart(loss, y_max=None))]
    if valid:
        charts.append(_figure("validation scores per epoch (0–100)", line_chart(valid, y_max=100.0)))
    return (
        '<section id="curves">\n<h2>Training curves</h2>\n'
        '<p class="hint">From the run\'s metrics.jsonl: the mean training loss of each epoch and the '
        "validation scores after each validated epoch.</p>\n"
        f'<div class="charts">{"".join(charts)}</div>\n</section>'
    )


HINTS = {
    "Scores by source length": "The examples grouped by source length (tokens of the run's source tokenizer), "
    "about equally many per group; each group is scored on its own.",
    "Decoding strategies": "The same model and examples decoded with each strategy; sentences/s is the "
    "decoding time of the whole set (scoring excluded).",
    "Best examples (sentence chrF)": "The examples with the highest sentence-level chrF (sacrebleu); "
    "ties go to the earlier example.",
    "Worst examples (sentence chrF)": "The examples with the lowest sentence-level chrF (sacrebleu).",
}


def _analysis_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    anchor = title.split(" (")[0].lower().replace(" ", "-")
    hint = f'<p class="hint">{escape(HINTS[title])}</p>\n' if title in HINTS else ""
    body = _table(header, rows) if rows else f"<p>{escape(NO_WORST)}</p>"
    return f'<section id="{escape(anchor)}">\n<h2>{escape(title)}</h2>\n{hint}{body}\n</section>'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool] | None = None) -> str:
    """A table of escaped cells; numeric columns (all but TEXT_COLUMNS unless given) align right."""
    if numeric is None:
        numeric = [column not in TEXT_COLUMNS for column in header]
    kinds = ["num" if n else "text" for n in numeric]
    head = "".join(f'<th class="{k}">{escape(c)}</th>' for c, k in zip(header, kinds, strict=True))
    body = "".join(
        "<tr>" + "".join(f'<td class="{k}">{escape(c)}</td>' for c, k in zip(row, kinds, strict=True)) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _heatmaps(heatmaps: Sequence[Heatmap]) -> str:
    if not heatmaps:
        return ""
    figures = "".join(_figure(h.caption, heatmap_svg(h)) for h in heatmaps)
    return (
        '<section id="attention">\n<h2>Attention</h2>\n'
        '<p class="hint">One row per output token (the last row is the end of sentence, &lt;/s&gt;), one column '
        "per source token; the darker a cell, the more attention that output token paid to that source token. "
        "Each row sums to 1.</p>\n"
        f'<div class="maps">{figures}</div>\n</section>'
    )


def _data(data: Mapping[str, Any] | None) -> str:
    if not data:
        return ""
    header = ["split", "pairs", "source UNK", "target UNK", "source types known", "target types known"]
    rows = [[name, *cells] for name, cells in _coverage_rows(dict(data))]
    notes = "".join(f"<li>{escape(note)}</li>" for note in data.get("notes", []))
    table = _table(header, rows, numeric=[False] + [True] * (len(header) - 1))
    return '<section id="data">\n<h2>Data</h2>\n' + table + (f"\n<ul>{notes}</ul>" if notes else "") + "\n</section>"


def _examples(report: Report) -> str:
    if not report.examples:
        return ""
    rows = "".join(
        f'<tr><td class="text">{escape(e.source)}</td><td class="text">{escape(e.reference)}</td>'
        f'<td class="text">{escape(e.hypothesis)}</td>'
        + ('<td class="ok">✓</td>' if e.correct else '<td class="bad">✗</td>')
        + "</tr>"
        for e in report.examples
    )
    return (
        f'<section id="examples">\n<h2>Examples</h2>\n<p class="hint">The first {len(report.examples)} examples '
        "of the set, in order.</p>\n"
        f"<table><tr><th>source</th><th>reference</th><th>hypothesis</th><th></th></tr>{rows}</table>\n</section>"
    )


def _figure(caption: str, svg: str) -> str:
    return f"<figure><figcaption>{escape(caption)}</figcaption>{svg}</figure>"


# --- pictures ---------------------------------------------------------------------


def blue(weight: float) -> str:
    """A colour from near-white (0) to dark blue (1), as #rrggbb."""
    position = min(max(weight, 0.0), 1.0) * (len(BLUES) - 1)
    index = min(int(position), len(BLUES) - 2)
    fraction = position - index
    low, high = BLUES[index], BLUES[index + 1]
    return "#" + "".join(f"{round(a + (b - a) * fraction):02x}" for a, b in zip(low, high, strict=True))


def heatmap_svg(heatmap: Heatmap) -> str:
    """The heat map as an SVG: source tokens along the top, output tokens down the left side."""
    sources = [label(t) for t in heatmap.source]
    outputs = [label(t) for t in heatmap.output]
    upright = all(len(s) <= 2 for s in sources)
    left = 12 + CHAR * max((len(o) for o in outputs), default=1)
    top = 22 if upright else 14 + CHAR * min(max((len(s) for s in sources), default=1), 16)
    width, height = left + CELL * len(sources) + 4, top + CELL * len(outputs) + 4
    parts = [f'<svg width="{width:.0f}" height="{height:.0f}" role="img">']
    for column, source in enumerate(sources):
        x = left + CELL * column + CELL / 2
        text = escape(source if len(source) <= 16 else source[:15] + "…")
        if upright:
            parts.append(f'<text x="{x:.1f}" y="{top - 8:.1f}" text-anchor="middle">{text}</text>')
        else:
            parts.append(
                f'<text transform="translate({x + 4:.1f},{top - 6:.1f}) rotate(-90)" text-anchor="start">{text}</text>'
            )
    for row, (output, weights) in enumerate(zip(outputs, heatmap.weights, strict=True)):
        y = top + CELL * row
        parts.append(f'<text x="{left - 6:.1f}" y="{y + CELL / 2 + 4:.1f}" text-anchor="end">{escape(output)}</text>')
        for column, weight in enumerate(weights):
            tip = escape(f"{output} ← {sources[column]}: {weight:.3f}")
            parts.append(
                f'<rect x="{left + CELL * column:.1f}" y="{y:.1f}" width="{CELL - 1}" height="{CELL - 1}" '
                f'fill="{blue(weight)}"><title>{tip}</title></rect>'
            )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]], y_max: float | None, width: int = 500, height: int = 260
) -> str:
    """Lines with dots for each named series of (epoch, value) points; y from 0 to `y_max` (None: fit the data)."""
    left, right, top, bottom = 52, 16, 28, 36
    xs = [x for points in series.values() for x, _ in points]
    x_low, x_high = min(xs), max(xs)
    step, top_value = _scale(max(y for points in series.values() for _, y in points) if y_max is None else y_max)
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (plot_w * (x - x_low) / (x_high - x_low) if x_high > x_low else plot_w / 2)

    def py(y: float) -> float:
        return top + plot_h * (1 - y / top_value) if top_value else top + plot_h

    parts = [f'<svg width="{width}" height="{height}" role="img">']
    legend_x = left + 8.0
    for tick in (step * i for i in range(round(top_value / step) + 1)):
        y = py(tick)
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_number(tick)}</text>')
    for epoch in _epoch_ticks(x_low, x_high):
        parts.append(f'<text x="{px(epoch):.1f}" y="{top + plot_h + 18}" text-anchor="middle">{epoch}</text>')
    parts.append(
        f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}"/>'
        f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}"/>'
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle">epoch</text>'
    )
    for index, (name, points) in enumerate(series.items()):
        color = PALETTE[index % len(PALETTE)]
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        dash = DASHES[index % len(DASHES)]
        dash_attribute = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"{dash_attribute}/>')
        for x, y in points:
            tip = escape(f"{name}, epoch {x:g}: {y:.4g}")
            parts.append(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{color}"><title>{tip}</title></circle>'
            )
        parts.append(
            f'<line x1="{legend_x - 4:.1f}" x2="{legend_x + 14:.1f}" y1="14" y2="14" stroke="{color}" '
            f'stroke-width="2"{dash_attribute}/><circle cx="{legend_x + 5:.1f}" cy="14" r="3.5" fill="{color}"/>'
            f'<text x="{legend_x + 16:.1f}" y="18">{escape(name)}</text>'
        )
        legend_x += 16 + CHAR * len(name) + 18
    parts.append("</svg>")
    return "".join(parts)


def _scale(top: float) -> tuple[float, float]:
    """(tick step, axis top) for values from 0 to `top`: about 4 steps of 1, 2, 2.5 or 5 times a power of ten."""
    if top <= 0:
        return 0.25, 1.0
    rough = top / 4
    power = 10 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= rough * (1 - 1e-9))
    return step, step * math.ceil(top / step - 1e-9)


def _epoch_ticks(low: float, high: float) -> list[int]:
    span = int(high - low)
    step = max(1, math.ceil(span / 10))
    return list(range(int(low), int(high) + 1, step))


def _number(value: float) -> str:
    return f"{value:g}" if abs(value) >= 0.01 or value == 0 else f"{value:.1e}"
