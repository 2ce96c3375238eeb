"""Throughput and latency of `transduce serve` under 1, 8 and 32 concurrent clients.

For each run given, a real `transduce serve` process is started and clients (threads of this process, each
with its own keep-alive connection) send one sentence per request, drawn in turn from the run's test split,
for a fixed time per level. Reported per level: sentences/s, median and 99th-percentile latency, errors, the
texts per decoding call (from the server's /v1/health), and the server's peak resident memory (sampled from
/proc), which should stay flat from level to level. One more row serves the busiest level with batching off
(--max-batch 1): what cross-request batching is worth.

    .venv/bin/python benchmarks/serve_benchmark.py dates=runs/dates multi30k=runs/multi30k --seconds 20

Runs on the CPU unless the runs' recipes say otherwise; --threads sets the server's torch threads.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from transduce._model import assembly as pipeline
from transduce._plugins.registry import discover
from transduce._recipe.recipe import load_recipe
from transduce._runs.rundir import RunDir

CLIENTS = (1, 8, 32)
#: Test sentences read per run (the clients cycle through them).
SENTENCES = 2000


@dataclass
class Level:
    """What one load level measured."""

    clients: int
    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds, of the successful requests
    errors: int = 0
    peak_rss: int = 0  # bytes
    batching: bool = True
    mean_batch: float = 0.0  # texts per decoding call, from the server's /v1/health

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")

    def row(self, base: float) -> str:
        label = f"{self.clients}" + ("" if self.batching else " (batching off)")
        return (
            f"| {label} | {self.per_second:,.1f} | {self.per_second / base:.1f}x | {self.percentile(0.5):.1f} | "
            f"{self.percentile(0.99):.1f} | {self.errors} | {self.mean_batch:.1f} | {self.peak_rss / 2**20:,.0f} |"
        )


class Server:
    """A `transduce serve` process for one run, on a free port."""

    def __init__(self, run: str, threads: int | None, extra: list[str]) -> None:
        command = [sys.executable, "-m", "transduce", "serve", run, "--port", "0", *extra]
        if threads:
            command += ["--threads", str(threads)]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.port = self._port()
        threading.Thread(target=self._drain, daemon=True).start()

    def _port(self) -> int:
        for line in self.proc.stderr:
            if line.startswith("serving "):
                return int(line.split("http://127.0.0.1:")[1].split("/")[0])
        raise SystemExit(f"the server did not start (exit status {self.proc.wait()})")

    def _drain(self) -> None:
        for _ in self.proc.stderr:  # the request log: read, so the pipe never fills
            pass

    def rss(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def decoded(self) -> dict[str, int]:
        """What the server's batcher decoded so far (its one model): batches, items, largest."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        connection.request("GET", "/v1/health")
        (stats,) = json.loads(connection.getresponse().read())["decoded"].values()
        connection.close()
        return stats

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(60)


def sentences(run: str) -> list[str]:
    """Sources of the run's test split (its evaluation split), as `transduce evaluate` reads them."""
    registry = discover()
    recipe = load_recipe(RunDir.open(Path(run)).recipe, registry)
    split = pipeline.data_source(registry, recipe).split(recipe["evaluate"]["split"])
    return [source for source, _ in itertools.islice(split, SENTENCES)]


def client(port: int, texts: list[str], start: int, deadline: float, level: Level, lock: threading.Lock) -> None:
    """Send one sentence per request on one keep-alive connection until `deadline`."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"content-type": "application/json"}
    for text in itertools.islice(itertools.cycle(texts), start, None):
        if time.monotonic() >= deadline:
            break
        began = time.perf_counter()
        try:
            connection.request("POST", "/v1/translate", json.dumps({"texts": [text]}), headers)
            response = connection.getresponse()
            ok = response.status == 200 and bool(json.loads(response.read())["results"])
        except (OSError, http.client.HTTPException, ValueError):
            ok = False
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        with lock:
            if ok:
                level.latencies.append(time.perf_counter() - began)
            else:
                level.errors += 1
    connection.close()


def measure(server: Server, texts: list[str], clients: int, seconds: float, batching: bool = True) -> Level:
    level = Level(clients, seconds, batching=batching)
    lock = threading.Lock()
    warm = time.monotonic() + min(2.0, seconds / 5)  # warm-up, not counted
    client(server.port, texts, 0, warm, Level(1, 1), lock)
    before = server.decoded()
    deadline = time.monotonic() + seconds
    workers = [
        threading.Thread(target=client, args=(server.port, texts, i * 37, deadline, level, lock))
        for i in range(clients)
    ]
    for worker in workers:
        worker.start()
    while any(worker.is_alive() for worker in workers):
        level.peak_rss = max(level.peak_rss, server.rss())
        time.sleep(0.2)
    after = server.decoded()
    level.mean_batch = (after["items"] - before["items"]) / max(1, after["batches"] - before["batches"])
    return level


def benchmark(name: str, run: str, args: argparse.Namespace) -> list[Level]:
    texts = sentences(run)
    server = Server(run, args.threads, [])
    try:
        levels = [measure(server, texts, clients, args.seconds) for clients in args.clients]
    finally:
        status = server.stop()
    if status != 0:
        print(f"note: the {name} server exited with {status} on SIGTERM")
    unbatched = Server(run, args.threads, ["--max-batch", "1"])
    try:
        levels.append(measure(unbatched, texts, max(args.clients), args.seconds, batching=False))
    finally:
        unbatched.stop()
    return levels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="NAME=RUN")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per level (default: 20)")
    parser.add_argument("--clients", type=int, nargs="+", default=list(CLIENTS))
    parser.add_argument("--threads", type=int, help="the server's torch threads (default: torch's)")
    args = parser.parse_args()
    for given in args.runs:
        name, _, run = given.rpartition("=")
        name = name or Path(run).name
        levels = benchmark(name, run, args)
        base = levels[0].per_second or float("nan")
        print(f"\n{name} ({run}): one sentence per request, {args.seconds:g} s per level")
        print("| clients | sentences/s | vs 1 client | p50 ms | p99 ms | errors | texts per batch | peak RSS MiB |")
        print("|---|---|---|---|---|---|---|---|")
        for level in levels:
            print(level.row(base))
        sys.stdout.flush()
        rss = [level.peak_rss for level in levels if level.batching]
        print(
            f"median latency {statistics.median(levels[0].latencies) * 1000:.1f} ms alone; peak RSS spread "
            f"{(max(rss) - min(rss)) / 2**20:.0f} MiB across levels"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
