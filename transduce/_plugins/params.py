"""Parameter declarations: declared once, used by validation, `transduce plugins` and the docs.

A component (or a core recipe section) lists its parameters as `Param` objects.
`resolve_params` checks a mapping from a recipe against them and returns the
complete set of values, defaults filled in.
"""

from __future__ import annotations

import difflib
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn


class _Required:
    def __repr__(self) -> str:
        return "required"


REQUIRED: Any = _Required()

_TYPE_NAMES = {int: "integer", float: "number", bool: "boolean", str: "string"}

#: What a `path` Param names (a file or directory that must exist, or a directory made when missing): its type's name.
PATH_KINDS = {
    "file": "path of a file",
    "directory": "path of a directory",
    "new directory": "path of a directory (made when missing)",
}

#: Called with (key, message) to report a problem; never returns.
Fail = Callable[[str, str], NoReturn]

#: The value a component-valued parameter (Param.family) takes to name no component at all.
NONE = "none"


class ParamError(ValueError):
    """A component refuses a combination of its parameters: raised from its constructor, reported by the core
    at the recipe key `key` (one of the component's parameters), with file and line."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Param:
    """One parameter of a component: its type, default, help text and limits."""

    name: str
    type: type
    default: Any = REQUIRED
    help: str = ""
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    #: The value names a component of this family: a name, or a mapping with `name` and its parameters, or
    #: `none` when nullable; the component receives a builder (see transduce.api.DecoderNetwork).
    family: str | None = None
    #: None, or one of PATH_KINDS for a string naming a place on disk: the core makes it absolute.
    path: str | None = None

    def __post_init__(self) -> None:
        if self.type not in _TYPE_NAMES:
            raise TypeError(f"Param {self.name!r}: type must be one of int, float, bool, str")
        if self.family is not None and self.type is not str:
            raise TypeError(f"Param {self.name!r}: a component-valued Param (family=...) has type str (its name)")
        if self.path is not None and (self.path not in PATH_KINDS or self.type is not str):
            raise TypeError(f"Param {self.name!r}: path must be one of {', '.join(PATH_KINDS)}, for a str")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def describe_type(self) -> str:
        """Human description of the accepted values, e.g. 'integer >= 1'."""
        if self.family is not None:
            return f"{self.family} name or mapping with 'name'" + (f" or {NONE!r}" if self.nullable else "")
        text = _TYPE_NAMES[self.type] if self.path is None else PATH_KINDS[self.path]
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        bounds = []
        if self.min is not None:
            bounds.append(f">= {self.min}")
        if self.max is not None:
            bounds.append(f"<= {self.max}")
        if bounds:
            text += " " + " and ".join(bounds)
        if self.nullable:
            text += " or null"
        return text

    def default_text(self) -> str:
        """The default as a recipe would spell it: required, null, true/false, or the value."""
        if self.required:
            return "required"
        if self.default is None:
            return "null"
        if isinstance(self.default, bool):
            return str(self.default).lower()
        return str(self.default)

    def problem(self, value: Any) -> str | None:
        """Why `value` is not acceptable, or None when it is (a component-valued one: its form only)."""
        if self.family is not None:
            return self._component_problem(value)
        if value is None:
            return None if self.nullable else f"expected {self.describe_type()}, got null"
        if not _has_type(value, self.type):
            return f"expected {self.describe_type()}, got {type(value).__name__} {value!r}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"expected {self.describe_type()}, got {value!r} (not a finite number)"
        if self.type is float and isinstance(value, int) and abs(value) > sys.float_info.max:
            return f"expected {self.describe_type()}, got {value!r} (too large for a number)"
        if self.choices is not None and value not in self.choices:
            hint = _did_you_mean(str(value), [str(c) for c in self.choices])
            return f"expected {self.describe_type()}, got {value!r}{hint}"
        if self.min is not None and value < self.min:
            return f"expected {self.describe_type()}, got {value!r} (too small)"
        if self.max is not None and value > self.max:
            return f"expected {self.describe_type()}, got {value!r} (too large)"
        return None

    def _component_problem(self, value: Any) -> str | None:
        if value is None or value == NONE:
            return None if self.nullable else f"expected {self.describe_type()} (`none` is not allowed here)"
        if isinstance(value, str) or (isinstance(value, dict) and "name" in value):
            return None
        return f"expected {self.describe_type()}, got {type(value).__name__} {value!r}"

    def coerce(self, value: Any) -> Any:
        """Widen an int to float for float parameters; make a path absolute; leave everything else."""
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if self.path is not None and isinstance(value, str):
            return absolute_path(value)
        return value


def absolute_path(text: str) -> str:
    """`text` with `~` expanded and, when relative, joined to the current directory (`..` folded):
    the same file from whichever directory it is used later (a run records this form)."""
    return os.path.abspath(os.path.expanduser(text))


def _has_type(value: Any, expected: type) -> bool:
    if isinstance(value, bool):
        return expected is bool
    if expected is float:
        return isinstance(value, (int, float))
    return isinstance(value, expected)


def _did_you_mean(word: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f". Did you mean {close[0]!r}?" if close else ""


def did_you_mean(word: str, candidates: Sequence[str]) -> str:
    """A '. Did you mean 'x'?' suffix, or '' when nothing is close."""
    return _did_you_mean(word, candidates)


#: Resolves a component-valued parameter's value (a name or mapping, never `none`) into a validated spec.
Nested = Callable[[Param, Any], Any]


def resolve_params(
    params: Sequence[Param],
    given: Mapping[str, Any],
    *,
    owner: str,
    fail: Fail,
    nested: Nested | None = None,
) -> dict[str, Any]:
    """Validate `given` against `params`; return every parameter's value.

    `owner` names what the parameters belong to in messages ("encoder 'lstm'").
    `fail(key, message)` raises the caller's error with its location.
    `nested(param, value)` resolves the component a component-valued parameter names (its `none` becomes
    None); without it such values are kept as given.
    """
    known = {p.name: p for p in params}
    for key in given:
        if key not in known:
            names = sorted(known)
            listing = ", ".join(names) if names else "none"
            fail(
                str(key),
                f"unknown key for {owner}{_did_you_mean(str(key), names)} (valid keys: {listing})",
            )
    resolved: dict[str, Any] = {}
    for param in params:
        if param.name not in given:
            if param.required:
                fail(param.name, f"missing required key for {owner}: {param.help or param.describe_type()}")
            value = param.coerce(param.default)  # a default path is recorded resolved too
        else:
            value = given[param.name]
            problem = param.problem(value)
            if problem:
                fail(param.name, problem)
            value = param.coerce(value)
        resolved[param.name] = _component_value(param, value, nested) if param.family else value
    return resolved


def _component_value(param: Param, value: Any, nested: Nested | None) -> Any:
    if value is None or value == NONE:
        return None
    return nested(param, value) if nested is not None else value
