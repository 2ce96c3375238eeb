"""benchmarks/compare_recipes.py: trains several recipes, reuses finished runs, and tabulates and draws their
validation scores per epoch from what the runs recorded."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import write_recipe

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "compare_recipes.py"
Capture = pytest.CaptureFixture[str]
QUICK = ("--set", "evaluate.heatmaps=0")


@pytest.fixture(scope="module")
def compare() -> Iterator[ModuleType]:
    """The script as a module (registered while in use: its dataclasses look their module up)."""
    spec = importlib.util.spec_from_file_location("compare_recipes", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = sys.modules["compare_recipes"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    del sys.modules["compare_recipes"]


def records(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def table(text: str, first_header: str) -> list[list[str]]:
    """The Markdown table of `text` whose header starts with `first_header`, as rows of cells."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header}"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return [rows[0], *rows[2:]]  # without the rule


@pytest.fixture(scope="module")
def two_runs(compare: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Two tiny models compared: `small` (2 epochs) and `wide` (a wider encoder, 1 epoch); (runs folder, stdout).
    Shared by the tests of this module: copy the runs before changing them."""
    root = tmp_path_factory.mktemp("compare")
    small = write_recipe(root, "small", train={"epochs": 2})
    wide = write_recipe(root, "wide", model={"encoder": {"hidden_size": 48}})
    runs = root / "runs"
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert compare.main([str(small), f"wide={wide}", "--runs", str(runs), *QUICK]) == 0
    return runs, out.getvalue()


def test_the_tables_hold_what_the_runs_recorded(two_runs: tuple[Path, str]) -> None:
    runs, out = two_runs
    assert "small: trained" in out and "wide: trained" in out
    epochs = table(out, "epoch")
    assert epochs[0] == ["epoch (valid exact_match)", "small", "wide"]
    small, wide = records(runs / "small"), records(runs / "wide")
    assert [row[0] for row in epochs[1:]] == ["1", "2"]
    assert [row[1] for row in epochs[1:]] == [f"{r['valid']['exact_match']:.2f}" for r in small]
    assert [row[2] for row in epochs[1:]] == [f"{wide[0]['valid']['exact_match']:.2f}", "–"]  # it trained one epoch

    finals = table(out, "model")
    assert finals[0] == ["model", "split", "exact_match", "bleu", "chrf", "epochs", "training s"]
    for row, name, history in zip(finals[1:], ("small", "wide"), (small, wide), strict=True):
        report = json.loads((runs / name / "report.json").read_text(encoding="utf-8"))
        assert row[:5] == [name, "test", *(f"{report['metrics'][m]:.2f}" for m in ("exact_match", "bleu", "chrf"))]
        assert row[5:] == [str(len(history)), f"{sum(r['seconds'] for r in history):.1f}"]
    assert (runs / "comparison.md").read_text(encoding="utf-8") in out


def test_the_chart_is_a_png(two_runs: tuple[Path, str]) -> None:
    runs, out = two_runs
    png = runs / "comparison.png"
    assert f"chart written to {png}" in out
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 5000


def test_finished_runs_are_read_not_retrained(compare: ModuleType, two_runs: tuple[Path, str], capsys: Capture) -> None:
    runs, first = two_runs
    files = sorted(p for p in runs.rglob("*") if p.is_file() and not p.name.startswith("comparison."))
    before = {p: p.read_bytes() for p in files}
    argv = [str(runs.parent / "small.yaml"), f"wide={runs.parent / 'wide.yaml'}", "--runs", str(runs)]
    assert compare.main([*argv, *QUICK]) == 0
    out = capsys.readouterr().out
    assert "small: finished before: read, not retrained" in out and "wide: finished before" in out
    assert {p: p.read_bytes() for p in files} == before
    assert table(out, "epoch") == table(first, "epoch")


def test_a_run_with_more_epochs_asked_for_continues(
    compare: ModuleType, two_runs: tuple[Path, str], tmp_path: Path, capsys: Capture
) -> None:
    runs = shutil.copytree(two_runs[0], tmp_path / "runs")
    first_epoch = records(runs / "wide")[0]
    argv = [f"wide={two_runs[0].parent / 'wide.yaml'}", "--runs", str(runs), *QUICK]
    assert compare.main([*argv, "--set-for", "wide", "train.epochs=2"]) == 0
    assert "wide: continued" in capsys.readouterr().out
    assert [r["epoch"] for r in records(runs / "wide")] == [1, 2]
    assert records(runs / "wide")[0] == first_epoch


def test_overrides_for_one_model_reach_only_its_run(
    compare: ModuleType, make_recipe: Callable[..., Path], tmp_path: Path, capsys: Capture
) -> None:
    recipe = make_recipe()
    runs = tmp_path / "runs"
    argv = [f"plain={recipe}", f"reversed={recipe}", "--runs", str(runs), "--metric", "chrf"]
    assert compare.main([*argv, "--set-for", "reversed", "source.reverse=true", "--png", str(tmp_path / "c.png")]) == 0
    assert "reverse: false" in (runs / "plain" / "recipe.yaml").read_text(encoding="utf-8")
    assert "reverse: true" in (runs / "reversed" / "recipe.yaml").read_text(encoding="utf-8")
    out = capsys.readouterr().out
    assert table(out, "epoch")[0] == ["epoch (valid chrf)", "plain", "reversed"]
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{r}", "{r}"], "two models are labelled 'tiny'; name them apart with LABEL=RECIPE"),
        (["{r}", "--set-for", "other", "train.epochs=2"], "--set-for other: no model has this label (labels: tiny)"),
        (["bad/label={r}"], "tiny.yaml: the label 'bad/label' must be letters"),
        (["{r}", "--metric", "bleurt"], "tiny: no validation scores of 'bleurt' in its metrics.jsonl (it has: bleu,"),
        (["{r}", "--set", "train.epochs=0"], "training tiny stopped with exit status 2"),
    ],
)
def test_mistakes_are_named_without_a_traceback(
    compare: ModuleType,
    make_recipe: Callable[..., Path],
    tmp_path: Path,
    capsys: Capture,
    argv: list[str],
    message: str,
) -> None:
    recipe = str(make_recipe())
    assert compare.main([a.replace("{r}", recipe) for a in argv] + ["--runs", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_without_matplotlib_the_tables_still_print(
    compare: ModuleType, two_runs: tuple[Path, str], tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs, _ = two_runs
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    png = tmp_path / "none.png"
    argv = [str(runs.parent / "small.yaml"), "--runs", str(runs), *QUICK, "--png", str(png)]
    assert compare.main(argv) == 0
    out = capsys.readouterr().out
    assert "| 2 |" in out and "note: no PNG written" in out and "pip install 'transduce[plots]'" in out
    assert not png.exists()
