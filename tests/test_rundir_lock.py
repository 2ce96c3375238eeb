"""One trainer per run directory (RunDir.lock), stale locks of crashed trainers, full or unwritable disks."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import namedtuple
from pathlib import Path

import pytest

from transduce._cli import main as cli
from transduce._runs import rundir
from transduce._runs.rundir import RunDir
from transduce.errors import RunError

HOLD = textwrap.dedent(
    """
    import sys, time
    from transduce._runs.rundir import RunDir
    with RunDir(sys.argv[1]).lock():
        print("locked", flush=True)
        time.sleep(60)
    """
)


def hold_lock_in_subprocess(path: Path) -> subprocess.Popen[str]:
    """A separate process that takes the run's lock and keeps it until killed."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    return process


def test_a_second_trainer_is_refused_with_who_holds_the_lock_since_when(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run")
    holder = hold_lock_in_subprocess(run.path)
    try:
        with pytest.raises(RunError) as caught, run.lock():
            pytest.fail("the lock was taken twice")
        message = str(caught.value)
        assert f"{run.path} is being trained by another process (pid {holder.pid} on host" in message
        assert " since 20" in message and "Two trainings must never write one run directory" in message
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_crashed_trainer_is_detected_and_taken_over(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run")
    holder = hold_lock_in_subprocess(run.path)
    holder.send_signal(signal.SIGKILL)  # a crash: no clean-up, the lock file stays behind
    holder.wait()
    assert json.loads(run.lock_file.read_text())["pid"] == holder.pid
    notices: list[str] = []
    with run.lock(notice=notices.append):
        assert json.loads(run.lock_file.read_text())["pid"] == os.getpid()
    assert len(notices) == 1 and f"pid {holder.pid} on host" in notices[0] and "ended without releasing" in notices[0]
    assert not run.lock_file.exists()  # released cleanly: the next trainer gets no notice
    with run.lock(notice=notices.append):
        pass
    assert len(notices) == 1


def test_the_lock_is_exclusive_within_one_process_and_released_on_error(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run")
    with pytest.raises(ValueError), run.lock():
        with pytest.raises(RunError, match=f"pid {os.getpid()} on host"), run.lock():
            pass
        raise ValueError("training failed")
    with run.lock():  # free again
        assert run.lock_file.exists()


def test_a_full_disk_during_training_becomes_a_clear_error(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run")
    with pytest.raises(RunError) as caught, run.lock():
        raise OSError(errno.ENOSPC, "No space left on device", str(run.last_checkpoint))
    assert "the disk is full; free some space, then train again" in str(caught.value)
    run.last_checkpoint.write_bytes(b"x")
    with pytest.raises(RunError, match=r"--resume"), run.lock():
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(PermissionError), run.lock():  # other OS errors are not disguised
        raise PermissionError(errno.EACCES, "denied")


Usage = namedtuple("Usage", "total used free")


def test_a_nearly_full_disk_is_refused_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rundir.shutil, "disk_usage", lambda path: Usage(10 * 2**30, 10 * 2**30 - 2**20, 2**20))
    with pytest.raises(RunError, match=r"only 1\.0 MiB free on its disk, a run needs at least 64 MiB"):
        RunDir.create(tmp_path / "run")


def test_an_unwritable_run_directory_is_refused_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_recipe, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = make_recipe()
    write_text = Path.write_text

    def refuse(self: Path, *args: object, **kwargs: object) -> int:
        if self.name == ".write-test":  # root ignores file modes, so the refusal is simulated
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(rundir.Path, "write_text", refuse)
    status = cli.main(["train", str(recipe), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 2
    assert f"{tmp_path / 'run'}: cannot write the run directory (Permission denied)" in err
    assert "Traceback" not in err and not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


def test_a_nearly_full_disk_refuses_train_at_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_recipe, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(rundir.shutil, "disk_usage", lambda path: Usage(2**30, 2**30, 0))
    status = cli.main(["train", str(make_recipe()), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 2 and "0.0 MiB free on its disk" in err
    assert "free some space (or train into another --run-dir)" in err


def test_train_resume_is_refused_while_another_process_trains_the_run(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    run = RunDir(tmp_path / "run")
    shutil.copytree(trained_run, run.path)
    before = {path: path.stat().st_mtime_ns for path in run.path.rglob("*") if path.is_file()}
    holder = hold_lock_in_subprocess(run.path)
    try:
        status = cli.main(["train", "--resume", str(run.path), "--set", "train.epochs=3"])
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert status == 2 and f"is being trained by another process (pid {holder.pid}" in err
    after = {path: path.stat().st_mtime_ns for path in run.path.rglob("*") if path.is_file()}
    assert {p: t for p, t in after.items() if p != run.lock_file} == before  # nothing was written
