"""The cross-request batcher of `transduce serve` on its own, with a recording decode function."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Hashable
from typing import Any

import pytest
from transduce_builtins.serve.batcher import Batcher, Busy, TimedOut
from transduce_builtins.serve.limits import Limits


class Recorder:
    """decode(key, items): upper-cases the items, records each call, fails for key 'bad'."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[tuple[Hashable, list[Any]]] = []
        self.delay = delay

    def __call__(self, key: Hashable, items: list[Any]) -> list[Any]:
        time.sleep(self.delay)
        self.calls.append((key, list(items)))
        if key == "bad":
            raise ValueError("bad settings")
        return [item.upper() for item in items]


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def with_batcher(decode: Recorder, limits: Limits, body: Any) -> Any:
    batcher = Batcher("m", decode, limits)
    batcher.start()
    try:
        return await body(batcher)
    finally:
        await batcher.stop()


def test_jobs_waiting_together_are_decoded_in_one_call_per_key():
    decode = Recorder()

    async def body(batcher: Batcher) -> list[Any]:
        jobs = [batcher.submit("k", ["a", "b"]), batcher.submit("k", ["c"]), batcher.submit("j", ["d"])]
        return await asyncio.gather(*jobs)

    assert run(with_batcher(decode, Limits(max_wait=0.05), body)) == [["A", "B"], ["C"], ["D"]]
    assert sorted(decode.calls) == [("j", ["d"]), ("k", ["a", "b", "c"])]


def test_a_failing_group_fails_only_its_own_jobs():
    decode = Recorder()

    async def body(batcher: Batcher) -> list[Any]:
        return await asyncio.gather(batcher.submit("bad", ["a"]), batcher.submit("k", ["b"]), return_exceptions=True)

    bad, good = run(with_batcher(decode, Limits(max_wait=0.05), body))
    assert isinstance(bad, ValueError) and good == ["B"]


def test_a_batch_holds_at_most_max_batch_items_and_a_larger_job_goes_alone():
    decode = Recorder()

    async def body(batcher: Batcher) -> list[Any]:
        return await asyncio.gather(*(batcher.submit("k", [c] * 2) for c in "abc"), batcher.submit("k", ["d"] * 5))

    run(with_batcher(decode, Limits(max_batch=4, max_wait=0.05), body))
    assert [len(items) for _, items in decode.calls] == [4, 2, 5]


def test_a_job_that_timed_out_in_the_queue_is_not_decoded():
    gate = threading.Event()
    decode = Recorder()
    slow = Recorder()

    def blocking(key: Hashable, items: list[Any]) -> list[Any]:
        if key == "first":
            gate.wait(5)
            return slow(key, items)
        return decode(key, items)

    async def body(batcher: Batcher) -> Any:
        first = asyncio.ensure_future(batcher.submit("first", ["a"]))
        await asyncio.sleep(0.05)  # taken: the worker waits on the gate
        with pytest.raises(TimedOut, match="did not finish within 0.2 seconds"):
            await batcher.submit("second", ["b"])
        gate.set()
        await asyncio.gather(first, return_exceptions=True)  # it timed out too, while being decoded
        await asyncio.sleep(0.2)  # time for the worker to take anything left

    run(with_batcher(blocking, Limits(timeout=0.2, max_wait=0), body))  # type: ignore[arg-type]
    assert decode.calls == [] and slow.calls == [("first", ["a"])]  # "second" timed out before the worker could take it


def test_a_full_queue_refuses_at_once():
    gate = threading.Event()

    def blocking(key: Hashable, items: list[Any]) -> list[Any]:
        gate.wait(5)
        return items

    async def body(batcher: Batcher) -> Any:
        first = asyncio.ensure_future(batcher.submit("k", ["a"]))
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(batcher.submit("k", ["b", "c"]))
        await asyncio.sleep(0.05)
        assert batcher.waiting == 2
        with pytest.raises(Busy, match="2 texts waiting"):
            await batcher.submit("k", ["d"])
        gate.set()
        return await asyncio.gather(first, queued)

    assert run(with_batcher(blocking, Limits(max_queue=2, max_wait=0), body)) == [["a"], ["b", "c"]]  # type: ignore[arg-type]


def test_stats_count_calls_items_and_the_largest_call():
    decode = Recorder()

    async def body(batcher: Batcher) -> Any:
        await asyncio.gather(batcher.submit("k", ["a"]), batcher.submit("k", ["b", "c"]))
        await batcher.submit("k", ["d"])
        return batcher.stats

    stats = run(with_batcher(decode, Limits(max_wait=0.05), body))
    assert (stats.batches, stats.items, stats.largest) == (2, 4, 3)
