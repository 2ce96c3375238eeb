"""What every fuzz test shares: deterministic settings, a time limit per case, and a count of cases per target.

A fuzzed case passes when it ends in a result or in one of our own error types
with a message; any other exception, or a case that runs past its time limit
(a hang), fails the test with the input hypothesis found. Runs are
deterministic (derandomize=True); TRANSDUCE_FUZZ_SCALE=10 runs ten times as
many cases, TRANSDUCE_FUZZ_REPORT=FILE appends "target<TAB>cases" lines to FILE.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings

from transduce.errors import DataError, RecipeError, TransduceError

SCALE = float(os.environ.get("TRANSDUCE_FUZZ_SCALE", "1"))
#: Cases run per target in this process.
CASES: Counter[str] = Counter()
T = TypeVar("T")


def fuzz(examples: int) -> settings:
    """Hypothesis settings for `examples` cases (times TRANSDUCE_FUZZ_SCALE), deterministic, no deadline."""
    return settings(
        max_examples=max(1, round(examples * SCALE)),
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


class Hang(AssertionError):
    """A fuzzed case ran past its time limit."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise Hang in the body after `seconds` (main thread only; elsewhere no limit)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def ends_cleanly(
    target: str,
    action: Callable[[], T],
    errors: tuple[type[TransduceError], ...] = (TransduceError,),
    seconds: float = 20.0,
) -> T | TransduceError:
    """`action()`'s result, or the error of ours it raised (with a non-empty message); counts the case."""
    CASES[target] += 1
    with time_limit(seconds):
        try:
            return action()
        except errors as error:
            assert str(error).strip(), f"{type(error).__name__} without a message"
            return error


def report_cases(prefix: str, minimum: int = 10) -> dict[str, int]:
    """The counts of targets starting with `prefix`; each main one ("(built)" etc. aside) must have run `minimum`."""
    counts = {target: count for target, count in sorted(CASES.items()) if target.startswith(prefix)}
    report = os.environ.get("TRANSDUCE_FUZZ_REPORT")
    if report:
        with Path(report).open("a", encoding="utf-8") as handle:
            handle.writelines(f"{target}\t{count}\n" for target, count in counts.items())
    assert all(count >= minimum for target, count in counts.items() if "(" not in target), counts
    return counts


# --- the harness itself ---------------------------------------------------------------


def test_our_errors_end_a_case_and_others_fail_it() -> None:
    assert ends_cleanly("harness", lambda: 3) == 3
    assert isinstance(ends_cleanly("harness", _raise(DataError("x.tsv:3: bad"))), DataError)
    with pytest.raises(ZeroDivisionError):
        ends_cleanly("harness", lambda: 1 / 0)
    with pytest.raises(AssertionError, match="without a message"):
        ends_cleanly("harness", _raise(RecipeError("")))
    with pytest.raises(RecipeError):  # only the error types asked for
        ends_cleanly("harness", _raise(RecipeError("r.yaml: bad")), errors=(DataError,))


def test_a_case_that_hangs_fails_after_its_time_limit() -> None:
    started = time.monotonic()
    with pytest.raises(Hang):
        ends_cleanly("harness", lambda: time.sleep(5), seconds=0.2)
    assert time.monotonic() - started < 2


def _raise(error: Exception) -> Callable[[], Any]:
    def action() -> Any:
        raise error

    return action
