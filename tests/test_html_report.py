"""The HTML report: one well-formed, self-contained page (no URL anywhere) that escapes every text."""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

from transduce._cli import main as cli
from transduce._reports.heatmap import Heatmap
from transduce._reports.html_report import blue, line_chart, to_html
from transduce._reports.report import Bucket, ExampleResult, LengthRatio, RankedExample, Report, StrategyResult
from transduce.api import Score

VOID = {"meta", "br", "img", "input", "link", "hr", "wbr", "source", "col", "area", "base", "embed", "track"}
SVG_LEAVES = {"rect", "line", "circle", "polyline", "path"}
HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
URL = re.compile(r"(https?:)?//|url\(|@import", re.IGNORECASE)


class Page(HTMLParser):
    """Checks nesting (every opened element closed in order) and collects tags, attributes and text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str]] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(name, value or "") for name, value in attrs]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(name, value or "") for name, value in attrs]

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        (self.styles if self.stack and self.stack[-1] == "style" else self.text).append(data)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    assert not page.problems and not page.stack, (page.problems, page.stack)
    return page


def hand_made_report() -> Report:
    heatmap = Heatmap(["a", "b", " "], ["x", "y", "</s>"], [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.0, 0.0, 1.0]])
    return Report(
        split="test",
        size=4,
        scores=[Score("exact_match", 50.0), Score("bleu", 41.25, "nrefs:1|case:mixed|tok:13a|version:2.6.0")],
        examples=[ExampleResult(HOSTILE, "ref", "hyp")],
        seconds=2.0,
        search="greedy:max_length=12",
        length=LengthRatio(9, 10),
        buckets=[Bucket(1, 3, 2, {"exact_match": 100.0, "bleu": 80.5}, LengthRatio(4, 4))],
        best=[RankedExample(0, "best source", "r", "r", 100.0)],
        worst=[RankedExample(3, HOSTILE, "r", "w", 3.5)],
        heatmaps=[heatmap],
        comparison=[StrategyResult("beam:size=4", {"exact_match": 75.0, "bleu": 60.0}, 4, 0.5)],
        data={"splits": {}, "notes": [f"skipped row: {HOSTILE}"]},
    )


HISTORY = [
    {"epoch": 1, "step": 5, "loss": 2.5, "valid": {"exact_match": 10.0, "bleu": 20.0}},
    {"epoch": 2, "step": 10, "loss": 1.25},
    {"epoch": 3, "step": 15, "loss": 0.5, "valid": {"exact_match": 60.0, "bleu": 70.0}},
]


def test_the_page_is_well_formed_and_names_no_url() -> None:
    html = to_html(hand_made_report(), history=HISTORY)
    page = parse(html)
    assert page.tags[0] == "html" and "style" in page.tags
    for name, value in page.attributes:
        assert name not in ("src", "href") and not name.startswith("on"), (name, value)
        assert not URL.search(value), (name, value)
    assert not URL.search("".join(page.styles))
    assert "http" not in html


def test_hostile_text_stays_text() -> None:
    page = parse(to_html(hand_made_report(), history=HISTORY))
    assert "script" not in page.tags and "img" not in page.tags
    text = "".join(page.text)
    assert text.count(HOSTILE) == 3  # the example, the worst example, the data note


def test_the_page_shows_scores_signature_length_buckets_examples_strategies_heat_map_and_curves() -> None:
    page = parse(to_html(hand_made_report(), history=HISTORY))
    text = " ".join(page.text)
    for expected in ("50.00", "41.25", "nrefs:1|case:mixed|tok:13a|version:2.6.0", "0.900", "length ratio"):
        assert expected in text, expected
    assert "Scores by source length" in text and "1–3" in text and "80.50" in text
    assert "Best examples" in text and "best source" in text and "Worst examples" in text and "3.5" in text
    assert "Decoding strategies" in text and "beam:size=4" in text and "8.0" in text  # 4 sentences in 0.5 s
    # The heat map: one cell per (output token, source token), labelled, with its weight in a tooltip.
    assert page.tags.count("rect") >= 9 and "x ← a: 0.900" in text and "␣" in text
    # The curves: a loss line and one line per validation metric, with a point per validated epoch.
    assert page.tags.count("polyline") == 3
    assert "exact_match, epoch 3: 60" in text and "loss, epoch 2: 1.25" in text


def test_without_history_or_analysis_the_page_has_only_what_it_knows() -> None:
    report = Report(split="valid", size=1, scores=[Score("chrf", 12.0)])
    page = parse(to_html(report))
    assert "svg" not in page.tags and "Training curves" not in " ".join(page.text)


def test_blue_runs_from_near_white_to_dark_blue() -> None:
    assert blue(0.0) == "#f7fbff" and blue(1.0) == "#08306b"
    assert blue(-1) == blue(0.0) and blue(2) == blue(1.0)


def test_a_single_epoch_chart_draws_its_point() -> None:
    svg = line_chart({"loss": [(1, 0.5)]}, y_max=None)
    assert svg.count("<title>loss, epoch 1: 0.5</title>") == 1 and "nan" not in svg


def test_evaluate_writes_a_self_contained_html_report(trained_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    assert cli.main(["evaluate", str(run), "--json"]) == 0
    html = (run / "report.test.html").read_text(encoding="utf-8")
    page = parse(html)
    assert "http" not in html and not any(name in ("src", "href") for name, _ in page.attributes)
    text = " ".join(page.text)
    assert "Evaluation on test" in text and "Attention" in text and "Training curves" in text
    assert page.tags.count("polyline") == 4  # the loss and the 3 validation metrics of the 2 trained epochs


def test_an_empty_report_still_renders() -> None:
    page = parse(to_html(Report(split="test", size=0, scores=[])))
    assert "Evaluation on test" in " ".join(page.text)
