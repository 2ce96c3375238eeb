"""Checkpoints are written atomically and loaded without running code; run directories are never overwritten."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from transduce._runs import checkpoint
from transduce._runs.rundir import RunDir
from transduce.errors import RunError


def payload(value: float = 1.0) -> dict[str, object]:
    return {
        "model": {"weight": torch.full((3, 2), value), "bias": torch.arange(4)},
        "epoch": 3,
        "score": 97.5,
        "progress": {"history": [{"epoch": 1, "loss": 0.5}], "best_score": None},
    }


def assert_same_payload(loaded: dict[str, object], expected: dict[str, object]) -> None:
    assert loaded.keys() == expected.keys()
    for name, tensor in expected["model"].items():  # type: ignore[union-attr]
        assert torch.equal(loaded["model"][name], tensor)  # type: ignore[index]
    assert {k: v for k, v in loaded.items() if k != "model"} == {k: v for k, v in expected.items() if k != "model"}


class ExplodesWhenSaved:
    """Pickling this raises, in the middle of writing the checkpoint."""

    def __reduce__(self) -> tuple[object, ...]:
        raise RuntimeError("disk on fire")


def plant_marker(path: str) -> str:
    """What a malicious checkpoint runs when it is unpickled."""
    Path(path).write_text("pwned", encoding="utf-8")
    return path


class Malicious:
    """Unpickles by calling `plant_marker`: code execution hidden in a checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (plant_marker, (str(self.marker),))


# --- save_atomic and load -------------------------------------------------------


def test_save_atomic_writes_a_file_that_load_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "last.pt"
    checkpoint.save_atomic(payload(), path)
    assert_same_payload(checkpoint.load(path), payload())
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]


def test_save_atomic_replaces_an_existing_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    checkpoint.save_atomic(payload(1.0), path)
    checkpoint.save_atomic(payload(2.0), path)
    assert_same_payload(checkpoint.load(path), payload(2.0))


@pytest.mark.parametrize(
    ("bad", "error"),
    [(ExplodesWhenSaved(), RuntimeError), (lambda: "a local function cannot be pickled", Exception)],
    ids=["payload-raises-while-pickled", "unpicklable-payload"],
)
def test_a_failed_save_keeps_the_old_checkpoint_intact_and_leaves_no_temp_file(
    tmp_path: Path, bad: object, error: type[Exception]
) -> None:
    path = tmp_path / "last.pt"
    checkpoint.save_atomic(payload(1.0), path)
    before = path.read_bytes()
    with pytest.raises(error):
        checkpoint.save_atomic({**payload(2.0), "extra": bad}, path)
    assert path.read_bytes() == before
    assert_same_payload(checkpoint.load(path), payload(1.0))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_failed_first_save_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "best.pt"
    with pytest.raises(RuntimeError, match="disk on fire"):
        checkpoint.save_atomic({"bad": ExplodesWhenSaved()}, path)
    assert list(tmp_path.iterdir()) == []


def test_load_refuses_a_checkpoint_that_would_run_code_when_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    torch.save({"model": {"weight": torch.zeros(2)}, "extra": Malicious(marker)}, path)

    with pytest.raises(RunError, match=r"evil\.pt: cannot load checkpoint safely"):
        checkpoint.load(path)
    assert not marker.exists()

    # The payload is real: an unsafe load does run it.
    torch.load(path, weights_only=False)
    assert marker.read_text(encoding="utf-8") == "pwned"


def test_load_of_a_missing_checkpoint_is_a_run_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(RunError, match=r"nowhere\.pt: checkpoint not found"):
        checkpoint.load(tmp_path / "nowhere.pt")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", None], ids=["empty", "garbage", "truncated"])
def test_load_of_a_corrupt_checkpoint_is_a_run_error(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "last.pt"
    if content is None:
        checkpoint.save_atomic(payload(), path)
        content = path.read_bytes()[:-100]
    path.write_bytes(content)
    with pytest.raises(RunError, match="cannot load checkpoint safely"):
        checkpoint.load(path)


# --- RunDir -------------------------------------------------------------------------


def test_run_dir_create_makes_the_directory_with_a_checkpoints_folder(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "runs" / "new")
    assert run.path == tmp_path / "runs" / "new"
    assert run.last_checkpoint.parent.is_dir()
    assert [p.name for p in run.path.iterdir()] == ["checkpoints"]


def test_run_dir_create_accepts_an_existing_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert RunDir.create(tmp_path / "empty").best_checkpoint.parent.is_dir()


def test_run_dir_create_refuses_a_non_empty_directory_and_suggests_resume(tmp_path: Path) -> None:
    run_dir = tmp_path / "old"
    run_dir.mkdir()
    (run_dir / "recipe.yaml").write_text("precious", encoding="utf-8")
    with pytest.raises(RunError, match=r"already exists and is not empty.*transduce train --resume .*old"):
        RunDir.create(run_dir)
    assert [p.name for p in run_dir.iterdir()] == ["recipe.yaml"]
    assert (run_dir / "recipe.yaml").read_text(encoding="utf-8") == "precious"


def test_run_dir_create_refuses_a_path_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "a-file"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(RunError, match="already exists"):
        RunDir.create(path)


def test_run_dir_open_of_a_directory_without_a_recipe_is_a_clear_run_error(tmp_path: Path) -> None:
    with pytest.raises(RunError, match=r"not a run directory \(no recipe\.yaml\)"):
        RunDir.open(tmp_path)


def test_run_dir_open_of_a_missing_directory_is_a_run_error(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="no such run directory"):
        RunDir.open(tmp_path / "missing")


def test_run_dir_checkpoint_prefers_best_and_falls_back_to_last(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run")
    with pytest.raises(RunError, match=r"no checkpoint yet.*--resume"):
        run.checkpoint()
    checkpoint.save_atomic(payload(1.0), run.last_checkpoint)
    assert run.checkpoint() == run.last_checkpoint
    checkpoint.save_atomic(payload(2.0), run.best_checkpoint)
    assert run.checkpoint() == run.best_checkpoint
    assert run.checkpoint("last") == run.last_checkpoint


def test_metrics_are_appended_one_json_line_per_record(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run")
    run.log_metrics({"epoch": 1, "loss": 0.5})
    run.log_metrics({"epoch": 2, "loss": 0.25})
    assert run.metrics_log.read_text(encoding="utf-8").splitlines() == [
        '{"epoch": 1, "loss": 0.5}',
        '{"epoch": 2, "loss": 0.25}',
    ]
