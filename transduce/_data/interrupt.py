"""Stopping cleanly on SIGINT (Ctrl-C) and SIGTERM: training, and commands that stream their output to files.

While training runs, `StopSignals` replaces the handlers of both signals (and
puts the previous ones back afterwards). Inside `deferred()`, around the
training steps, a first signal is only recorded: the loop finishes its step,
writes a checkpoint and stops with `Interrupted`. Everywhere else, and for a
second signal anywhere, the handler raises `SignalStop` at once; that is safe
because every checkpoint is written atomically (a stop mid-write leaves the
previous file).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SignalStop(KeyboardInterrupt):
    """Raised by the handler to stop at once; `status` is the conventional exit status, 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum
        self.status = 128 + signum


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


class StopSignals:
    """SIGINT/SIGTERM handlers for the duration of a `with` block.

    `requested` is the first signal received (None until then). Handlers are
    only installed from the main thread (Python allows no other); elsewhere the
    block runs with the process's handlers unchanged. A signal the process
    ignores stays ignored: a shell starts background jobs with SIGINT ignored, so
    that a Ctrl-C meant for the foreground command does not reach them.
    """

    def __init__(self) -> None:
        self.requested: int | None = None
        self._deferring = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        self.requested = None
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def deferred(self) -> AbstractContextManager[None]:
        """Within: a first signal only sets `requested`, for the caller to stop at its next safe point."""
        return self._deferring_as(True)

    def immediate(self) -> AbstractContextManager[None]:
        """Within (e.g. validation inside the deferred training loop): a first signal raises `SignalStop` too."""
        return self._deferring_as(False)

    @contextmanager
    def _deferring_as(self, deferring: bool) -> Iterator[None]:
        outer, self._deferring = self._deferring, deferring
        try:
            yield
        finally:
            self._deferring = outer

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.requested is None
        if first:
            self.requested = signum
        if not (first and self._deferring):
            raise SignalStop(signum)
        again = "Ctrl-C" if signum == signal.SIGINT else "the signal"
        sys.stderr.write(
            f"\n{signal_name(signum)} received: stopping after this step and writing a checkpoint "
            f"({again} again stops at once)\n"
        )
        sys.stderr.flush()
