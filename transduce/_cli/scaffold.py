"""`transduce new-plugin`: a plugin package skeleton that installs, is discovered and passes the conformance kit.

The skeleton holds one working component (an attention scorer) so that the
first `pip install -e` and `pytest` already succeed; the author then edits or
replaces it. Files are written into a temporary directory and renamed into
place, so a failure never leaves half a package behind.
"""

from __future__ import annotations

import importlib.util
import keyword
import re
import shutil
import sys
import uuid
from pathlib import Path
from string import Template

from transduce._version import __version__
from transduce.errors import PluginError

# A distribution name as PEP 508 allows it.
_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
_RESERVED = {"transduce", "transduce_builtins"}

PYPROJECT = Template("""\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "$name"
version = "0.1.0"
description = "transduce plugin: the '$component' attention scorer"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["transduce>=$transduce_version"]

[project.optional-dependencies]
test = ["pytest>=8"]

# transduce finds the plugin through this entry-point group; the value names the module with the hook.
[project.entry-points.transduce]
$module = "$module"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]

[tool.ruff]
line-length = 120
src = ["src"]
""")

MODULE = Template('''\
"""$name: transduce components. Import only from transduce.api, the public plugin API."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from transduce.api import AttentionScorer, Param, hookimpl


class CosineScorer(AttentionScorer):
    """Cosine attention: scale * cos(query, W key), the projected keys normalised once per batch."""

    name = "$component"  # what a recipe writes: model: {attention: $component}; unique among attention scorers
    params = (Param("scale", float, 10.0, "multiplies the cosine (in [-1, 1]) so the softmax can be sharp", min=0.0),)

    def __init__(self, query_size: int, key_size: int, scale: float = 10.0) -> None:
        super().__init__()
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")  # reported at the recipe's key
        self.scale = scale
        self.project = nn.Linear(key_size, query_size, bias=False)

    def prepare(self, keys: torch.Tensor) -> torch.Tensor:
        """keys (batch, src_len, key_size) -> unit vectors (batch, src_len, query_size); once per batch."""
        return F.normalize(self.project(keys), dim=-1)

    def score(self, query: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        """query (batch, tgt_len, query_size) -> raw scores (batch, tgt_len, src_len); the core masks padding."""
        return self.scale * torch.bmm(F.normalize(query, dim=-1), prepared.transpose(1, 2))


@hookimpl
def transduce_components() -> list[type]:
    return [CosineScorer]
''')

TESTS = Template('''\
"""The transduce conformance kit checks each component against its family's contract."""

import pytest
from transduce.testing import assert_conforms, assert_discovered

from $module import CosineScorer


def test_conforms_with_its_defaults():
    assert_conforms(CosineScorer)


def test_conforms_with_other_settings():
    assert_conforms(CosineScorer, scale=1.0)


def test_rejects_a_scale_that_is_not_positive():
    with pytest.raises(ValueError, match="scale must be positive"):
        CosineScorer(query_size=4, key_size=4, scale=0.0)


def test_is_found_through_its_entry_point():
    """Needs the package installed: pip install -e ."""
    assert assert_discovered("attention", "$component") is CosineScorer
''')

README = Template("""\
# $name

A plugin for [transduce](https://pypi.org/project/transduce/): the `$component`
attention scorer (cosine similarity, scaled).

## Install and test

```bash
pip install -e ".[test]"
pytest                       # the conformance kit (transduce.testing) on every component
transduce plugins            # lists attention $component, from $name 0.1.0
transduce plugins --check    # the same kit over everything installed
```

## Use it in a recipe

```yaml
model:
  attention: {name: $component, scale: 10.0}
```

## Develop

Edit `src/$module/__init__.py`: every class the `transduce_components` hook
returns is a component. Declare each constructor argument as a `Param` (type,
default, help, limits): recipes are validated against these declarations and
`transduce plugins` shows them. Import only from `transduce.api`.

## Publish

```bash
python -m pip install build twine
python -m build              # dist/*.whl and dist/*.tar.gz
python -m twine upload dist/*
```
""")


def module_name(name: str) -> str:
    """The import name for distribution `name` ('transduce-cosine' -> 'transduce_cosine'), validated."""
    if not _NAME.match(name):
        raise PluginError(
            f"invalid plugin name {name!r}: use letters, digits, '-', '_' and '.', starting and ending "
            "with a letter or digit (e.g. transduce-cosine)"
        )
    module = re.sub(r"[-.]+", "_", name).lower()
    if not module.isidentifier():
        raise PluginError(
            f"invalid plugin name {name!r}: its module name {module!r} must not start with a digit; "
            f"try transduce-{name}"
        )
    if keyword.iskeyword(module):
        raise PluginError(f"invalid plugin name {name!r}: its module name {module!r} is a Python keyword")
    if module in _RESERVED or module in sys.stdlib_module_names:
        raise PluginError(f"invalid plugin name {name!r}: its module {module!r} would shadow an existing module")
    if importlib.util.find_spec(module) is not None:
        raise PluginError(f"invalid plugin name {name!r}: a module named {module!r} is already importable here")
    return module


def create_plugin(name: str, directory: Path = Path(".")) -> Path:
    """Write the skeleton of distribution `name` into DIRECTORY/NAME/ and return that path."""
    module = module_name(name)
    root = Path(directory) / name
    if root.exists():
        raise PluginError(f"{root}: already exists; choose another name or --dir (nothing was overwritten)")
    fields = {
        "name": name,
        "module": module,
        "component": module.removeprefix("transduce_") or module,
        "transduce_version": __version__,
    }
    files = {
        "pyproject.toml": PYPROJECT,
        f"src/{module}/__init__.py": MODULE,
        "tests/test_conformance.py": TESTS,
        "README.md": README,
    }
    staging = root.parent / f".{name}.{uuid.uuid4().hex[:8]}.partial"
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
        for relative, template in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(template.substitute(fields), encoding="utf-8")
        staging.rename(root)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise PluginError(f"{root}: cannot write the plugin skeleton ({error.strerror or error})") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return root
