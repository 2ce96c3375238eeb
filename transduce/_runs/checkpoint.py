"""Checkpoints: written atomically, loaded without unpickling code (`weights_only=True`).

Also the random states a checkpoint carries so that a resumed run draws the
same numbers (dropout masks, shuffles) as one that never stopped.
"""

from __future__ import annotations

import os
import random
import tempfile
import warnings
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


#: What to do about a checkpoint that cannot be used, said in every such error.
REMEDY = "restore it from a copy (or delete it and train a new run); nothing was changed"


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint; only tensors and plain containers are accepted, never code.

    The result is a mapping (anything else is a RunError naming the file); `weights` and
    `require` check what a caller needs from it.
    """
    if not path.exists():
        raise RunError(f"{path}: checkpoint not found")
    try:
        with warnings.catch_warnings():  # torch warns about odd pickle protocols of damaged files: our error says it
            warnings.simplefilter("ignore")
            saved = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise RunError(f"{path}: cannot load checkpoint safely ({type(exc).__name__}: {exc})") from None
    if not isinstance(saved, dict):
        raise RunError(
            f"{path}: not a transduce checkpoint: it holds {_kind(saved)}, not a mapping with the weights "
            f"under 'model'; {REMEDY}"
        )
    return saved


def require(saved: dict[str, Any], path: Path, key: str, kind: type | tuple[type, ...], what: str) -> Any:
    """`saved[key]`, checked to be a `kind`; a missing or mistyped entry is a RunError naming file and key."""
    if key not in saved:
        keys = ", ".join(repr(k) for k in list(saved)[:8]) or "nothing"
        raise RunError(f"{path}: the checkpoint has no {key!r} ({what}); it holds {keys}; {REMEDY}")
    value = saved[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _types(kind)):
        expected = " or ".join(_kind_name(t) for t in _types(kind))
        raise RunError(f"{path}: {key!r} ({what}) is {_kind(value)}, expected {expected}; {REMEDY}")
    return value


def weights(saved: dict[str, Any], path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's 'model': parameter names to tensors, floating-point ones finite (training never saves
    a nan or inf weight, so one is damage)."""
    model = require(saved, path, "model", dict, "the weights")
    for name, value in model.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise RunError(
                f"{path}: 'model' (the weights) maps {_kind(name)} to {_kind(value)}; expected parameter "
                f"names to tensors; {REMEDY}"
            )
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise RunError(f"{path}: the weight {name!r} holds nan or infinite values; {REMEDY}")
    return model


def fit(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load `state` into `model`; names or shapes that differ are a RunError naming the file."""
    try:
        model.load_state_dict(state)
    except (RuntimeError, ValueError, TypeError) as exc:  # names or shapes differ
        details = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()]
        raise RunError(
            f"{path}: the checkpoint does not fit the model the run's recipe describes "
            "(model settings cannot change after training)" + (f": {details[0]}" if details else "")
        ) from None


def _types(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", int: "an integer", float: "a number"}.get(
        kind, f"a {kind.__name__}"
    )


def _kind(value: object) -> str:
    """'a Tensor of shape (3, 2)', 'a list', 'None': how messages describe what a checkpoint holds."""
    if value is None:
        return "None"
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return _kind_name(type(value))


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
