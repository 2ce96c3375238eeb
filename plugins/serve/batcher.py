"""Batching across requests: texts that arrive together are decoded together.

Decoding one sentence costs nearly as much as decoding a batch of them (the model's matrix products are
the same few calls, only wider), so a server that decodes each request alone spends most of its time on
per-call overhead. Each model gets one worker thread (one model copy, never two decodings at once) and a
queue in front of it: a job waits until the thread is free, then every job queued by then with the same
settings (`key`) is merged into one call, up to `Limits.max_batch` texts; an idle model waits up to
`Limits.max_wait` for company first.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from transduce_builtins.serve.limits import Limits

log = logging.getLogger("transduce.serve")

#: decode(key, items) -> one output per item, in order; runs in the model's worker thread.
Decode = Callable[[Hashable, list[Any]], Sequence[Any]]


class Busy(Exception):
    """The model's queue is full: the client should retry later (503 with Retry-After)."""


class TimedOut(Exception):
    """A job waited longer than Limits.timeout for its decoding (503)."""


@dataclass
class Job:
    """One request's items, decoded with every other job of the same `key` that is waiting with it."""

    key: Hashable
    items: list[Any]
    future: asyncio.Future[list[Any]] = field(repr=False)


@dataclass
class Stats:
    """What the worker did, for /v1/health and the tests: calls made, items decoded, the largest call."""

    batches: int = 0
    items: int = 0
    largest: int = 0


class Batcher:
    """The queue and worker thread of one model; `submit` from the server's event loop."""

    def __init__(self, name: str, decode: Decode, limits: Limits) -> None:
        self.name = name
        self.limits = limits
        self.stats = Stats()
        self.waiting = 0  # items queued, not yet taken by the worker
        self._decode = decode
        self._jobs: collections.deque[Job] = collections.deque()
        self._arrived = asyncio.Event()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"decode-{name}")
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the worker (in the running event loop)."""
        self._worker = asyncio.get_running_loop().create_task(self._work(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        """Stop the worker once its current call returns; jobs still queued fail with Busy."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        for job in self._jobs:
            if not job.future.done():
                job.future.set_exception(Busy("the server is shutting down"))
        self._jobs.clear()
        self._thread.shutdown(wait=True)

    async def submit(self, key: Hashable, items: list[Any]) -> list[Any]:
        """Outputs for `items`, decoded with whatever else waits with the same `key`.

        Raises Busy when Limits.max_queue items already wait, TimedOut after Limits.timeout, and whatever
        `decode` raised for this job's group."""
        if self.waiting + len(items) > self.limits.max_queue:
            raise Busy(f"model {self.name!r} has {self.waiting:,} texts waiting; retry shortly")
        job = Job(key, items, asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        self.waiting += len(items)
        self._arrived.set()
        try:
            return await asyncio.wait_for(job.future, self.limits.timeout)
        except TimeoutError:  # the future is cancelled: the worker skips the job if it has not taken it yet
            raise TimedOut(
                f"model {self.name!r} did not finish within {self.limits.timeout:g} seconds; "
                "send fewer or shorter texts, or retry later"
            ) from None

    async def _work(self) -> None:
        while True:
            jobs = await self._collect()
            try:
                await self._run(jobs)
            except Exception as error:  # noqa: BLE001 - the worker must outlive any one batch
                log.exception("model %r: a batch failed outside decoding", self.name)
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(error)

    async def _collect(self) -> list[Job]:
        """The next jobs to decode together: every job waiting now, then (while the batch has room) those
        arriving within Limits.max_wait, up to Limits.max_batch items (a larger job alone)."""
        while not self._jobs:
            self._arrived.clear()
            await self._arrived.wait()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.max_wait
        taken: list[Job] = []
        size = 0
        while size < self.limits.max_batch:
            if not self._jobs:
                if not await self._wait_for_more(deadline - loop.time()):
                    break
                continue
            if taken and size + len(self._jobs[0].items) > self.limits.max_batch:
                break  # it starts the next batch
            job = self._jobs.popleft()
            self.waiting -= len(job.items)
            if not job.future.done():  # else it timed out while waiting
                taken.append(job)
                size += len(job.items)
        return taken

    async def _wait_for_more(self, seconds: float) -> bool:
        """Whether a job arrived within `seconds`."""
        if seconds <= 0:
            return False
        self._arrived.clear()
        try:
            await asyncio.wait_for(self._arrived.wait(), seconds)
        except TimeoutError:
            return bool(self._jobs)
        return True

    async def _run(self, jobs: list[Job]) -> None:
        """Decode `jobs` in the worker thread, one call per key, and hand each job its outputs."""
        if not jobs:  # every job taken had timed out
            return
        groups: dict[Hashable, list[Job]] = {}
        for job in jobs:
            groups.setdefault(job.key, []).append(job)
        loop = asyncio.get_running_loop()
        outcomes = await loop.run_in_executor(self._thread, self._decode_groups, groups)
        for group, outcome in zip(groups.values(), outcomes, strict=True):
            start = 0
            for job in group:
                if job.future.done():
                    continue
                if isinstance(outcome, BaseException):
                    job.future.set_exception(outcome)
                else:
                    job.future.set_result(list(outcome[start : start + len(job.items)]))
                start += len(job.items)

    def _decode_groups(self, groups: dict[Hashable, list[Job]]) -> list[Sequence[Any] | BaseException]:
        """In the worker thread: one decode call per group; an exception is the outcome of its group only."""
        outcomes: list[Sequence[Any] | BaseException] = []
        for key, group in groups.items():
            items = [item for job in group for item in job.items]
            try:
                outputs = self._decode(key, items)
                if len(outputs) != len(items):
                    raise RuntimeError(f"decoding gave {len(outputs)} outputs for {len(items)} inputs")
            except Exception as error:  # noqa: BLE001 - handed to the requests of this group
                outcomes.append(error)
                continue
            self.stats.batches += 1
            self.stats.items += len(items)
            self.stats.largest = max(self.stats.largest, len(items))
            outcomes.append(outputs)
        return outcomes
