"""SIGINT and SIGTERM: training stops at a safe point with a checkpoint, a second signal stops at once without
tearing a file, and the stopped run resumes to exactly the weights of one that never stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
import torch

from transduce._cli import main as cli
from transduce._data.interrupt import SignalStop, StopSignals
from transduce._runs import checkpoint
from transduce._training import trainer as training

RecipeWriter = Callable[..., Path]
#: `trained_run`'s recipe (2 epochs of 6 steps) with a checkpoint every 2 steps, which changes no weight.
TWO_EPOCHS = {"epochs": 2, "checkpoint_every": 2}

#: `python -m transduce` with every training step slowed down by $STEP_SECONDS, so that a signal sent once the
#: first checkpoint exists reliably lands within the training steps. Nothing else differs.
SLOW_TRANSDUCE = """
import os, runpy, signal, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # as on a terminal, even if started with SIGINT ignored
import transduce._training.trainer as training
real_loss, delay = training.sequence_loss, float(os.environ["STEP_SECONDS"])
def slow_loss(*args, **kwargs):
    time.sleep(delay)
    return real_loss(*args, **kwargs)
training.sequence_loss = slow_loss
runpy.run_module("transduce", run_name="__main__")
"""


def start_training(recipe: Path, run: Path, step_seconds: float) -> subprocess.Popen[str]:
    command = [sys.executable, "-c", SLOW_TRANSDUCE, "train", str(recipe), "--run-dir", str(run)]
    env = {**os.environ, "STEP_SECONDS": str(step_seconds)}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


Watched = dict[tuple[Path, subprocess.Popen[str]], int]


def signal_at_first_checkpoint(checkpoints: Watched, timeout: float = 120.0) -> None:
    """Send each process its signal once its checkpoint file exists; fail if one ends first or time runs out."""
    deadline, waiting = time.monotonic() + timeout, dict(checkpoints)
    while waiting:
        for (path, process), signum in list(waiting.items()):
            if path.exists():
                process.send_signal(signum)
                del waiting[path, process]
            elif process.poll() is not None:
                pytest.fail(f"training ended ({process.returncode}) before writing {path}: {process.stderr.read()}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            for _, process in waiting:
                process.kill()
            pytest.fail(f"no checkpoint after {timeout} s")
        time.sleep(0.01)


def wait_until_exists(path: Path, process: subprocess.Popen[str], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"training ended before writing {path}: {process.communicate()[1]}"
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.01)


def weights_equal(run: Path, reference: Path) -> None:
    a, b = checkpoint.load(run / "checkpoints/last.pt"), checkpoint.load(reference / "checkpoints/last.pt")
    assert [k for k in b["model"] if not torch.equal(a["model"][k], b["model"][k])] == []
    for mine, theirs in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs)
    assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]
    assert a["progress"]["step"] == b["progress"]["step"] == 12


def log(run: Path) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    return [{k: v for k, v in r.items() if k not in ("seconds", "tokens_per_second")} for r in records]


# --- a real process, a real kill -----------------------------------------------------------------


def test_killed_training_processes_checkpoint_exit_128_plus_the_signal_and_resume_bitwise_identically(
    tmp_path: Path, make_recipe: RecipeWriter, trained_run: Path
) -> None:
    recipe = make_recipe(train=TWO_EPOCHS)
    kills = {signal.SIGTERM: 143, signal.SIGINT: 130}  # each signal, and the exit status it must give
    runs = {signum: tmp_path / signal.Signals(signum).name for signum in kills}
    processes = {signum: start_training(recipe, run, step_seconds=0.2) for signum, run in runs.items()}  # at once
    # Each gets its signal as soon as its first checkpoint exists (after step 2, mid-epoch).
    signal_at_first_checkpoint({(runs[s] / "checkpoints/last.pt", process): s for s, process in processes.items()})
    for signum, process in processes.items():
        _, err = process.communicate(timeout=120)
        name, run = signal.Signals(signum).name, runs[signum]
        assert process.returncode == kills[signum], err
        assert f"{name} received: stopping after this step" in err
        assert f"interrupted: stopped by {name} at step " in err and "checkpoint written to" in err
        assert f"Continue with `transduce train --resume {run}`" in err and "Traceback" not in err
        stopped = checkpoint.load(run / "checkpoints/last.pt")["progress"]
        assert 0 < stopped["step"] < 12 and stopped["batch"] > 0

        assert cli.main(["train", str(recipe), "--run-dir", str(run)]) == 0  # the same command, in this process
        weights_equal(run, trained_run)
        assert log(run) == log(trained_run)


def test_a_second_sigint_stops_at_once_and_leaves_the_last_checkpoint_whole(
    tmp_path: Path, make_recipe: RecipeWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe, run = make_recipe(train=TWO_EPOCHS), tmp_path / "run"
    process = start_training(recipe, run, step_seconds=0.5)
    wait_until_exists(run / "checkpoints/last.pt", process)
    recipe_before = (run / "recipe.yaml").read_bytes()
    # Meanwhile, the same command in another process is refused: one trainer per run.
    assert cli.main(["train", str(recipe), "--run-dir", str(run)]) == 2
    assert "is being trained by another process" in capsys.readouterr().err
    assert (run / "recipe.yaml").read_bytes() == recipe_before

    process.send_signal(signal.SIGINT)
    assert process.stderr is not None
    while "SIGINT received" not in (line := process.stderr.readline()):
        assert line, "training ended without noting the first SIGINT"
    process.send_signal(signal.SIGINT)  # within the same (slow) step
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted: stopped at once;" in err and "holds the last checkpoint, whole" in err
    assert "Traceback" not in err
    assert checkpoint.load(run / "checkpoints/last.pt")["progress"]["step"] == 2
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["last.pt"]


# --- the other moments a signal can come, in this process -----------------------------------------


def test_a_signal_during_validation_stops_at_once_and_resuming_validates_again(
    tmp_path: Path,
    make_recipe: RecipeWriter,
    trained_run: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real_evaluate, calls = training.evaluate, 0

    def evaluate_interrupted_in_epoch_2(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:  # the validation of epoch 2
            signal.raise_signal(signal.SIGTERM)
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(training, "evaluate", evaluate_interrupted_in_epoch_2)
    recipe, run = make_recipe(train=TWO_EPOCHS), tmp_path / "run"
    assert cli.main(["train", str(recipe), "--run-dir", str(run)]) == 143
    assert "stopped by SIGTERM before validating epoch 2 (step 12)" in capsys.readouterr().err
    progress = checkpoint.load(run / "checkpoints/last.pt")["progress"]
    assert (progress["epoch"], progress["batch"], progress["step"]) == (1, 6, 12)  # trained, not validated

    monkeypatch.undo()
    assert cli.main(["train", str(recipe), "--run-dir", str(run)]) == 0
    assert "resuming epoch 2 after batch 6 (step 12)" in capsys.readouterr().out
    weights_equal(run, trained_run)
    assert log(run) == log(trained_run)


def test_a_second_signal_while_the_checkpoint_is_written_keeps_the_previous_one_byte_identical(
    tmp_path: Path, make_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_loss, real_save, steps = training.sequence_loss, torch.save, 0

    def loss(*args: Any, **kwargs: Any) -> torch.Tensor:
        nonlocal steps
        steps += 1
        if steps == 3:
            signal.raise_signal(signal.SIGINT)  # the first: stop after this step, with a checkpoint
        return real_loss(*args, **kwargs)

    def save_interrupted_after_step_3(payload: Any, handle: Any, *args: Any, **kwargs: Any) -> None:
        real_save(payload, handle, *args, **kwargs)
        if steps == 3:
            signal.raise_signal(signal.SIGINT)  # the second, before the new file replaces the old

    monkeypatch.setattr(training, "sequence_loss", loss)
    monkeypatch.setattr(torch, "save", save_interrupted_after_step_3)
    run = tmp_path / "run"
    previous: list[bytes] = []  # last.pt as it was before each write
    real_save_atomic = checkpoint.save_atomic

    def save_atomic(payload: dict[str, Any], path: Path) -> None:
        if path.exists():
            previous.append(path.read_bytes())
        real_save_atomic(payload, path)

    monkeypatch.setattr(checkpoint, "save_atomic", save_atomic)
    assert cli.main(["train", str(make_recipe(train=TWO_EPOCHS)), "--run-dir", str(run)]) == 130
    assert "interrupted: stopped at once;" in capsys.readouterr().err
    assert (run / "checkpoints/last.pt").read_bytes() == previous[-1]
    assert checkpoint.load(run / "checkpoints/last.pt")["progress"]["step"] == 2
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["last.pt"]


def test_a_signal_while_a_new_run_is_prepared_stops_at_once_and_removes_the_run(
    tmp_path: Path, make_recipe: RecipeWriter, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_prepare = training.prepare_training

    def prepare_interrupted(*args: Any, **kwargs: Any) -> Any:
        signal.raise_signal(signal.SIGTERM)
        return real_prepare(*args, **kwargs)

    monkeypatch.setattr(training, "prepare_training", prepare_interrupted)
    run = tmp_path / "run"
    assert cli.main(["train", str(make_recipe()), "--run-dir", str(run)]) == 143
    err = capsys.readouterr().err
    assert "stopped at once; nothing was checkpointed yet, so the new run directory is removed" in err
    assert not run.exists()  # the same command starts afresh


def test_a_stop_before_the_first_checkpoint_empties_a_folder_the_user_made_and_says_so(
    tmp_path: Path, make_recipe: RecipeWriter, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_prepare = training.prepare_training

    def prepare_interrupted(*args: Any, **kwargs: Any) -> Any:
        signal.raise_signal(signal.SIGTERM)
        return real_prepare(*args, **kwargs)

    monkeypatch.setattr(training, "prepare_training", prepare_interrupted)
    run = tmp_path / "mine"
    run.mkdir()  # made by the user for --run-dir
    assert cli.main(["train", str(make_recipe()), "--run-dir", str(run)]) == 143
    err = capsys.readouterr().err
    assert f"what the run wrote in {run} is removed (the folder stays)" in err
    assert run.is_dir() and not any(run.iterdir())


def test_training_restores_the_signal_handlers_it_replaced(
    tmp_path: Path, make_recipe: RecipeWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert cli.main(["train", str(make_recipe()), "--run-dir", str(tmp_path / "run")]) == 0
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


# --- StopSignals -----------------------------------------------------------------------------------


def test_deferred_records_the_first_signal_and_a_second_stops_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    with StopSignals() as signals, signals.deferred():
        signal.raise_signal(signal.SIGTERM)
        assert signals.requested == signal.SIGTERM
        with pytest.raises(SignalStop) as stop:
            signal.raise_signal(signal.SIGINT)
    assert stop.value.status == 130 and isinstance(stop.value, KeyboardInterrupt)
    assert "SIGTERM received: stopping after this step" in capsys.readouterr().err


@pytest.mark.parametrize("nested", [False, True], ids=["outside-deferred", "immediate-inside-deferred"])
def test_outside_deferred_a_first_signal_stops_at_once(nested: bool) -> None:
    with StopSignals() as signals, signals.deferred() if nested else nullcontext(), signals.immediate():
        with pytest.raises(SignalStop) as stop:
            signal.raise_signal(signal.SIGTERM)
    assert stop.value.status == 143 and signals.requested == signal.SIGTERM


def test_an_ignored_signal_stays_ignored() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell starts a background job
    try:
        with StopSignals() as signals:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN
            signal.raise_signal(signal.SIGINT)
        assert signals.requested is None and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_outside_the_main_thread_no_handler_is_installed() -> None:
    seen: list[object] = []

    def body() -> None:
        with StopSignals():
            seen.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    worker = threading.Thread(target=body)
    worker.start()
    worker.join()
    assert seen == [before]
