"""Error types a user can act on.

Every failure caused by input (a recipe, a data file, a run directory, a plugin)
is raised as a `TransduceError`; the CLI prints its message without a traceback.
"""

from __future__ import annotations


class TransduceError(Exception):
    """Base class of every error the CLI reports without a traceback."""


class RecipeError(TransduceError):
    """A recipe (or a --set override) is invalid.

    The message names the file, the line when known, the key path, what was
    found and what was expected.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str = "",
        source: str = "",
        line: int | None = None,
    ) -> None:
        self.key = key
        self.source = source
        self.line = line
        self.detail = message
        where = source
        if where and line is not None:
            where = f"{where}:{line}"
        prefix = ": ".join(part for part in (where, key) if part)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class PluginError(TransduceError):
    """A plugin could not be loaded or declares something invalid."""


class DataError(TransduceError):
    """A data file is missing or malformed."""


class RunError(TransduceError):
    """A run directory is missing, incomplete or would be overwritten."""


class Interrupted(RunError):
    """Training stopped on a signal, after writing what can be resumed; `status` is the exit status (130, 143)."""

    def __init__(self, message: str, status: int = 130) -> None:
        super().__init__(message)
        self.status = status
