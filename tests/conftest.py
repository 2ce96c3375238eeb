"""Shared fixtures: tiny recipes, a trained tiny run, and a test plugin installed through an entry point."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from transduce import cli

SUPPORT = Path(__file__).parent / "support"

#: A recipe small enough to train in about a second on one CPU thread. Dropout stays on so the
#: reproducibility and resume tests also cover the random state that dropout consumes.
TINY: dict[str, Any] = {
    "seed": 1,
    "data": {"name": "dates", "train_size": 300, "valid_size": 50, "test_size": 50},
    "model": {
        "embedding_dim": 16,
        "hidden_size": 32,
        "dropout": 0.1,
        "encoder": {"name": "lstm", "hidden_size": 32},
    },
    "train": {"epochs": 1, "batch_size": 64, "lr": 0.01, "device": "cpu", "threads": 1},
    "decoder": {"name": "greedy", "max_length": 12},
    "evaluate": {"examples": 3, "batch_size": 64},
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
    temporary directory on sys.path, so `transduce.registry.discover()` finds the plugin
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
