"""Attention heat maps: the matrix of a real translation, the terminal picture, and `transduce attention`."""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

import pytest
from rich.console import Console

from transduce._cli import main as cli
from transduce._decoding.translator import Translator
from transduce._plugins.registry import Registry
from transduce._reports.heatmap import EOS, SHADES, Heatmap, render_terminal
from transduce._runs.rundir import RunDir

Capture = pytest.CaptureFixture[str]
TEXT = "sept 6 63"


@pytest.fixture(scope="module")
def run(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shared trained run: `attention` writes its pictures into the run."""
    copy = tmp_path_factory.mktemp("attention") / "run"
    shutil.copytree(trained_run, copy)
    return copy


def test_a_translations_heat_map_has_a_row_per_output_token_and_a_column_per_source_token(
    trained_run: Path, registry: Registry
) -> None:
    translator = Translator.from_run(RunDir.open(trained_run), registry, device="cpu")
    for translation in translator.translate_detailed([TEXT, "THURSDAY, MARCH 4, 1971"]):
        heatmap = Heatmap.from_translation(translation)
        ended = heatmap.output[-1] == EOS
        assert heatmap.output[: len(translation.tokens)] == translation.tokens
        assert len(heatmap.weights) == len(translation.tokens) + ended
        assert heatmap.source == translation.source_tokens
        for row in heatmap.weights:
            assert len(row) == len(translation.source_tokens)
            assert sum(row) == pytest.approx(1.0, abs=1e-5)
            assert min(row) >= 0.0


def test_the_terminal_heat_map_shades_each_cell_by_its_weight() -> None:
    heatmap = Heatmap(["a", "b", "c"], ["x", EOS], [[0.8, 0.15, 0.05], [0.0, 0.3, 0.7]])
    console = Console(file=io.StringIO(), width=120, color_system=None)
    render_terminal(heatmap, console)
    lines = console.file.getvalue().splitlines()
    assert lines[0] == "     a b c "
    assert lines[1] == "   x " + SHADES[4] * 2 + SHADES[1] * 2 + SHADES[1] * 2
    assert lines[2] == "</s> " + SHADES[0] * 2 + SHADES[2] * 2 + SHADES[3] * 2
    assert "rows: output tokens" in lines[3]


def test_long_source_tokens_are_written_downwards() -> None:
    heatmap = Heatmap(["the", "cat"], ["le"], [[0.5, 0.5]])
    console = Console(file=io.StringIO(), width=120, color_system=None)
    render_terminal(heatmap, console)
    assert console.file.getvalue().splitlines()[:3] == ["   t c ", "   h a ", "   e t "]


def test_attention_prints_the_heat_map_and_saves_a_png_in_the_run(
    run: Path, capsys: Capture, registry: Registry
) -> None:
    assert cli.main(["attention", str(run), TEXT]) == 0
    out = capsys.readouterr().out
    translation = Translator.from_run(RunDir.open(run), registry, device="cpu").translate_detailed([TEXT])[0]
    lines = out.splitlines()
    assert lines[0] == f"{TEXT}  →  {translation.text}"
    assert "s e p t ␣ 6 ␣ 6 3" in lines[1]
    rows = lines[2 : 2 + len(translation.attention)]
    assert [row.split()[0] for row in rows] == [*translation.tokens, EOS][: len(rows)]
    png = run / "attention" / "sept-6-63.png"
    assert f"heat map saved to {png}" in out
    assert png.read_bytes().startswith(b"\x89PNG")


def test_attention_output_names_the_png(run: Path, tmp_path: Path, capsys: Capture) -> None:
    target = tmp_path / "pictures" / "mine.png"
    assert cli.main(["attention", str(run), TEXT, "--output", str(target)]) == 0
    assert target.read_bytes().startswith(b"\x89PNG")


def test_without_matplotlib_the_terminal_heat_map_still_prints(
    run: Path, tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert cli.main(["attention", str(run), "1/2/03"]) == 0
    out, err = capsys.readouterr()
    assert "rows: output tokens" in out and "saved" not in out
    assert "no PNG written" in err and "pip install 'transduce[plots]'" in err
    assert not (run / "attention" / "1-2-03.png").exists()
    # A PNG asked for by name that cannot be drawn is an error.
    assert cli.main(["attention", str(run), "1/2/03", "--output", str(tmp_path / "x.png")]) == 2
    assert "pip install 'transduce[plots]'" in capsys.readouterr().err


def test_attention_of_an_empty_text_returns_2(run: Path, capsys: Capture) -> None:
    assert cli.main(["attention", str(run), ""]) == 2
    assert "empty" in capsys.readouterr().err
