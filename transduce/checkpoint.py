"""Checkpoints: written atomically, loaded without unpickling code (`weights_only=True`).

Also the random states a checkpoint carries so that a resumed run draws the
same numbers (dropout masks, shuffles) as one that never stopped.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

from transduce.errors import RunError


def save_atomic(payload: dict[str, Any], path: Path) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it.

    A crash at any moment leaves either the previous file or the new one, never a torn file.
    """
    _replace_atomically(path, lambda handle: torch.save(payload, handle))


def write_text_atomic(path: Path, text: str) -> None:
    """`save_atomic` for a UTF-8 text file (a run's recipe, its records)."""
    _replace_atomically(path, lambda handle: handle.write(text.encode("utf-8")))


def _replace_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint; only tensors and plain containers are accepted, never code."""
    if not path.exists():
        raise RunError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise RunError(f"{path}: cannot load checkpoint safely ({type(exc).__name__}: {exc})") from None


def rng_states(device: torch.device | None = None) -> dict[str, Any]:
    """Python's, NumPy's (when installed), torch's and the training GPU's random state, as plain data and tensors.

    Only `device`'s CUDA state is taken: asking for every GPU's would open a CUDA context on each visible
    device in every process of a multi-GPU run, and would not restore on a machine with fewer GPUs.
    """
    states: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    numpy = _numpy()
    if numpy is not None:
        state = numpy.random.get_state(legacy=False)
        states["numpy"] = {
            "bit_generator": state["bit_generator"],
            "key": torch.from_numpy(state["state"]["key"].astype(numpy.int64)),
            "pos": int(state["state"]["pos"]),
            "has_gauss": int(state["has_gauss"]),
            "gauss": float(state["gauss"]),
        }
    if device is not None and device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def restore_rng_states(states: dict[str, Any], device: torch.device | None = None) -> None:
    """Put back what `rng_states` captured; a state the checkpoint lacks (an older one) is left as it is."""
    if "python" in states:
        version, internal, gauss = states["python"]
        random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(states["torch"])
    numpy = _numpy()
    if numpy is not None and "numpy" in states:
        saved = states["numpy"]
        numpy.random.set_state(
            {
                "bit_generator": saved["bit_generator"],
                "state": {"key": saved["key"].numpy().astype(numpy.uint32), "pos": saved["pos"]},
                "has_gauss": saved["has_gauss"],
                "gauss": saved["gauss"],
            }
        )
    cuda = states.get("cuda")
    if isinstance(cuda, torch.Tensor) and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(cuda, device)


def _numpy() -> Any:
    try:
        import numpy  # noqa: PLC0415 - optional: torch works without it
    except ImportError:
        return None
    return numpy
