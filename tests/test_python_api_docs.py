"""docs/python-api.md cannot rot: its Python blocks run, in order, against a tiny run placed at runs/dates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "python-api.md"


def python_blocks(text: str) -> list[str]:
    """The ```python fenced blocks of a Markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def test_the_block_finder_sees_only_python_blocks() -> None:
    text = "```python\na = 1\n```\n\n```bash\nrm -rf /\n```\n```python\nb = 2\n```\n"
    assert python_blocks(text) == ["a = 1\n", "b = 2\n"]


def test_every_python_block_of_the_python_api_doc_runs(
    trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "dates").symlink_to(trained_run, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 10
    namespace: dict[str, object] = {"__name__": "docs"}
    for number, block in enumerate(blocks, start=1):
        try:
            exec(compile(block, f"{DOC.name} block {number}", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message says which block broke
            pytest.fail(f"{DOC.name} block {number} failed: {type(exc).__name__}: {exc}\n{block}")
    out = capsys.readouterr().out
    assert "search.sise: unknown key for search 'beam'. Did you mean 'size'?" in out
    assert "runs/no-such-run: no such run directory" in out
    assert "<svg" in out
