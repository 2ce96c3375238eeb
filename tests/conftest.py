"""Shared fixtures: tiny recipes, a trained tiny run, and a test plugin installed through an entry point."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from transduce._cli import main as cli
from transduce._plugins.registry import Registry, discover

SUPPORT = Path(__file__).parent / "support"

#: A recipe small enough to train in about a second on one CPU thread. Dropout stays on so the
#: reproducibility and resume tests also cover the random state that dropout consumes.
TINY: dict[str, Any] = {
    "seed": 1,
    "data": {"name": "dates", "train_size": 300, "valid_size": 50, "test_size": 50},
    "model": {
        "embedding_dim": 16,
        "dropout": 0.1,
        "encoder": {"name": "lstm", "hidden_size": 32},
        "decoder": {"name": "lstm", "hidden_size": 32, "dropout": 0.1},
    },
    "train": {"epochs": 1, "batch_size": 64, "lr": 0.01, "device": "cpu", "threads": 1},
    "search": {"name": "greedy", "max_length": 12},
    "evaluate": {"examples": 3, "batch_size": 64},
}


#: A model that learns the small tasks below in seconds.
SMALL_MODEL: dict[str, Any] = {
    "embedding_dim": 16,
    "dropout": 0.0,
    "encoder": {"hidden_size": 64},
    "decoder": {"hidden_size": 64, "dropout": 0.0},
}

#: Recipe sections of dates learned from a few thousand generated pairs in seconds (see tests/test_learning.py).
DATES_TASK: dict[str, Any] = {
    "data": {"train_size": 3000, "valid_size": 200, "test_size": 200},
    "model": SMALL_MODEL,
    "train": {"epochs": 5, "lr": 0.01},
}


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` merged in, section by section; naming another component replaces its section."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        current = out.get(key)
        if isinstance(value, dict) and isinstance(current, dict) and value.get("name") in (None, current.get("name")):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def write_recipe(directory: Path, name: str = "tiny", **sections: Any) -> Path:
    """Write TINY, with `sections` merged in, to DIRECTORY/NAME.yaml."""
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(merge(TINY, sections), sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def make_recipe(tmp_path: Path) -> Callable[..., Path]:
    """`make_recipe(name="tiny", train={"epochs": 2})` writes a tiny recipe into tmp_path."""
    return lambda name="tiny", **sections: write_recipe(tmp_path, name, **sections)


def train(recipe: Path, run_dir: Path, *extra: str) -> Path:
    """`transduce train RECIPE --run-dir RUN_DIR ...`; fails the test unless it exits with 0."""
    status = cli.main(["train", str(recipe), "--run-dir", str(run_dir), *extra])
    assert status == 0, f"training {recipe} into {run_dir} exited with {status}"
    return run_dir


@pytest.fixture
def train_run() -> Callable[..., Path]:
    """`train_run(recipe, run_dir, *extra_args)` trains through the CLI and returns run_dir."""
    return train


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run trained for 2 epochs, shared by tests that only read it (copy it before changing it)."""
    root = tmp_path_factory.mktemp("trained")
    run = root / "run"
    train(write_recipe(root, train={"epochs": 2}), run)
    return run


@pytest.fixture(scope="session")
def learned_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DATES_TASK trained (>= 90% exact match, as tests/test_learning.py checks), shared by tests that need a
    model that has learned something; they read the run, and may add its lexicon.pt (copy it to change more)."""
    root = tmp_path_factory.mktemp("learned")
    run = root / "run"
    train(write_recipe(root, "dates", **DATES_TASK), run)
    return run


@pytest.fixture(scope="module")
def registry() -> Registry:
    """The installed plugins, discovered once per test module."""
    return discover()


@pytest.fixture(autouse=True)
def _one_torch_thread() -> None:
    """Every test runs torch on one thread.

    The tensors are tiny, so extra intra-op threads only add overhead (a lot on a busy
    2-core machine); and training sets the count process-wide (train.threads), so each
    test starts from the same setting.
    """
    torch.set_num_threads(1)


@pytest.fixture
def reverse_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Install tests/support/reverse_plugin.py as the distribution `reverse-support` 0.1.

    A `.dist-info` with an `entry_points.txt` in the `transduce` group is written to a
    temporary directory on sys.path, so `transduce._plugins.registry.discover()` finds the plugin
    through importlib.metadata exactly as it finds an installed one. Returns the distribution name.
    """
    site = tmp_path / "site"
    info = site / "reverse_support-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: reverse-support\nVersion: 0.1\nSummary: transduce test plugin\n",
        encoding="utf-8",
    )
    (info / "entry_points.txt").write_text("[transduce]\nreverse = reverse_plugin\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(SUPPORT))
    monkeypatch.syspath_prepend(str(site))
    return "reverse-support"


@pytest.fixture
def expose_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """`expose_distribution(name, version, entry_points, *paths)` makes a plugin distribution discoverable.

    Like `reverse_plugin`, but for any package: writes `NAME-VERSION.dist-info` (METADATA, and
    `entry_points` as the `transduce` group of entry_points.txt) into a temporary directory and puts it
    and `paths` (where the plugin's modules are) on sys.path. Modules imported from `paths` are unloaded
    afterwards, so the next test imports them afresh. Returns the distribution name.
    """
    import importlib
    import re
    import sys

    roots: list[Path] = []

    def expose(name: str, version: str, entry_points: dict[str, str], *paths: Path) -> str:
        site = tmp_path / f"site-{len(roots)}"
        info = site / f"{re.sub(r'[-_.]+', '_', name)}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
        lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
        (info / "entry_points.txt").write_text(f"[transduce]\n{lines}", encoding="utf-8")
        for path in (*paths, site):
            roots.append(Path(path).resolve())  # modules imported from it get __file__ under this path
            monkeypatch.syspath_prepend(str(path))
        return name

    yield expose
    prefixes = tuple(str(root) for root in roots)
    for module_name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None)
        if isinstance(origin, str) and origin.startswith(prefixes):
            del sys.modules[module_name]
    importlib.invalidate_caches()


@pytest.fixture
def expose_project(expose_distribution: Callable[..., str]) -> Callable[[Path], str]:
    """`expose_project(PROJECT)` makes the plugin package in directory PROJECT discoverable as `pip install -e`
    would: name, version and `transduce` entry points come from PROJECT/pyproject.toml, modules from
    PROJECT/src. Returns the distribution name."""

    import tomllib

    def expose(project: Path) -> str:
        meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        return expose_distribution(meta["name"], meta["version"], meta["entry-points"]["transduce"], project / "src")

    return expose
