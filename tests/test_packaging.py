"""The distribution ships every package of the source tree: setuptools installs only the packages pyproject.toml
lists, and an editable install (which the rest of the suite runs on) hides a missing one."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _listed() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])


def _on_disk() -> set[str]:
    dirs = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-dir"]
    found = set()
    for name, folder in dirs.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            if "__pycache__" not in parts:
                found.add(".".join((name, *parts)))
    return found


def test_every_package_in_the_tree_is_listed_for_installation():
    assert _on_disk() - _listed() == set(), "add these to [tool.setuptools] packages in pyproject.toml"


def test_every_listed_package_exists():
    assert _listed() - _on_disk() == set()
