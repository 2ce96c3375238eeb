"""The server's bounds, declared once: what one request may ask and how long anything may take.

Every bound turns a request that would take unbounded memory or time into a 4xx answer naming the field, so
one client can neither exhaust the server nor hold it up for the others.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Bounds of `transduce serve` (each has a command-line option; docs/serving.md lists them).

    max_chars: characters per text (a source, target or chat message); longer ones are refused (422).
    max_texts: texts per request (translate, score).
    max_body: bytes of a request body; a larger one is refused with 413 before it is read.
    body_seconds: the longest wait for a request's body to arrive (a slow client gets 408).
    timeout: the longest a request waits for its decoding, queue included (503 after it).
    max_batch: texts decoded together: requests waiting for the same model are merged up to this many.
    max_wait: seconds an idle model waits for more requests to join a batch before decoding it.
    max_queue: texts waiting per model; beyond it new requests get 503 at once (with Retry-After).
    max_options: search options per request.
    max_connections: open connections; beyond it uvicorn answers 503.
    """

    max_chars: int = 2000
    max_texts: int = 64
    max_body: int = 1_000_000
    body_seconds: float = 10.0
    timeout: float = 60.0
    max_batch: int = 64
    max_wait: float = 0.002
    max_queue: int = 4096
    max_options: int = 16
    max_connections: int = 1000

    def __post_init__(self) -> None:
        for name in ("max_chars", "max_texts", "max_body", "max_batch", "max_queue", "max_connections"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("body_seconds", "timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.max_wait >= 0:
            raise ValueError(f"max_wait must be 0 or more, got {self.max_wait}")
