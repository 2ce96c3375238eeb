"""PNG pictures with matplotlib, the report files, and a clear message where matplotlib is missing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from transduce._reports.heatmap import Heatmap
from transduce._reports.plots import FONT_HINT, PlotsUnavailable, save_curves, save_heatmap
from transduce._reports.report import Report
from transduce._reports.report_files import read_history, write_report_files
from transduce._runs.rundir import RunDir
from transduce.api import Score

PNG = b"\x89PNG\r\n\x1a\n"
HEATMAP = Heatmap(["1", "/", "2", " "], ["2", "0", "</s>"], [[0.7, 0.1, 0.1, 0.1], [0.0, 0.0, 1.0, 0.0], [0.25] * 4])
HISTORY = [
    {"epoch": 1, "step": 3, "loss": 2.0, "valid": {"exact_match": 5.0, "chrf": 30.0}},
    {"epoch": 2, "step": 6, "loss": 1.0, "valid": {"exact_match": 50.0, "chrf": 70.0}},
]


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `import matplotlib...` fail as it does where the extra is not installed."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def test_heatmap_and_curves_are_written_as_png(tmp_path: Path) -> None:
    heatmap = save_heatmap(HEATMAP, tmp_path / "deep" / "map.png", title="1/2 → 20")
    curves = save_curves(HISTORY, tmp_path / "curves.png")
    for picture in (heatmap, curves):
        data = picture.path.read_bytes()
        assert data.startswith(PNG) and len(data) > 2000


def test_without_matplotlib_a_picture_raises_a_clear_error(tmp_path: Path, no_matplotlib: None) -> None:
    with pytest.raises(PlotsUnavailable, match=r"pip install 'transduce\[plots\]'"):
        save_heatmap(HEATMAP, tmp_path / "map.png")
    assert not (tmp_path / "map.png").exists()


def make_run(tmp_path: Path, history_lines: list[str]) -> RunDir:
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.metrics_log.write_text("".join(line + "\n" for line in history_lines), encoding="utf-8")
    return run


def test_report_files_are_json_markdown_html_and_the_curves(tmp_path: Path) -> None:
    run = make_run(tmp_path, [json.dumps(r) for r in HISTORY])
    report = Report(split="test", size=2, scores=[Score("exact_match", 50.0)], heatmaps=[HEATMAP])
    written = write_report_files(run, report, "report.test")
    names = [p.name for p in written.paths]
    assert names == ["report.test.md", "report.test.json", "report.test.html", "curves.png"]
    assert (
        json.loads((run.path / "report.test.json").read_text(encoding="utf-8"))["heatmaps"][0]["output"][-1] == "</s>"
    )
    assert written.notes == [] and written.summary().endswith("report.test.html and " + str(run.path / "curves.png"))


def test_without_matplotlib_the_report_is_written_and_the_png_is_named_as_skipped(
    tmp_path: Path, no_matplotlib: None
) -> None:
    run = make_run(tmp_path, [json.dumps(r) for r in HISTORY])
    written = write_report_files(run, Report(split="test", size=0, scores=[]), "report")
    assert [p.suffix for p in written.paths] == [".md", ".json", ".html"]
    assert "Training curves" in (run.path / "report.html").read_text(encoding="utf-8")
    assert written.notes == ["curves.png not drawn: matplotlib is not installed (pip install 'transduce[plots]')"]
    assert not (run.path / "curves.png").exists()


def test_history_skips_a_torn_last_line(tmp_path: Path) -> None:
    run = make_run(tmp_path, [json.dumps(HISTORY[0]), '{"epoch": 2, "lo'])
    assert read_history(run.metrics_log) == [HISTORY[0]]
    assert read_history(tmp_path / "missing.jsonl") == []


def test_characters_without_a_font_are_named_with_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("transduce._reports.plots.FALLBACK_FONTS", ())
    private = Heatmap(["\ue000"], ["\ue001", "</s>"], [[1.0], [1.0]])  # private-use characters: no font has them
    picture = save_heatmap(private, tmp_path / "boxes.png")
    assert picture.path.is_file()
    assert picture.notes == [f"{picture.path}: some characters have no font here and show as boxes; {FONT_HINT}"]
    assert save_heatmap(HEATMAP, tmp_path / "latin.png").notes == []
