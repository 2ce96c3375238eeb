"""What the tests of `transduce serve` share: a server running in a thread, plain HTTP requests, a fake model.

The server is the real application under the real uvicorn, listening on a free loopback port; requests go
through real sockets (http.client, or raw bytes for what http.client cannot send).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import uvicorn
from transduce_builtins.serve.app import create_app
from transduce_builtins.serve.limits import Limits
from transduce_builtins.serve.server import listen


@dataclass
class Answer:
    """An HTTP answer: status, headers (lowercase names), the body and, when it is JSON, its value."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> dict[str, Any]:
        return self.json["error"]


@dataclass
class Running:
    """A server in a thread of this process."""

    server: uvicorn.Server
    thread: threading.Thread
    port: int
    app: Any

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
        timeout: float = 30,
    ) -> Answer:
        """One request on a new connection: `body` sent as JSON, or `raw` bytes as they are."""
        return request(self.port, method, path, body, raw=raw, headers=headers, token=token, timeout=timeout)

    def alive(self) -> bool:
        return self.thread.is_alive() and self.request("GET", "/v1/health").status == 200


def request(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    token: str | None = None,
    timeout: float = 30,
) -> Answer:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        sent = {"content-type": "application/json"} if headers is None else dict(headers)
        if token is not None:
            sent["authorization"] = f"Bearer {token}"
        data = raw if raw is not None else None if body is None else json.dumps(body).encode("utf-8")
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def exchange(port: int, data: bytes, timeout: float = 10, pause: float = 0.0) -> bytes:
    """Send raw `data` (after `pause` seconds of silence), then read the answer until the server closes the
    connection or `timeout` seconds pass without a byte (a client that has more to send but does not).

    The connection stays open for writing: uvicorn takes a client's half-close for a disconnect."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        if pause:
            time.sleep(pause)
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(data)
        chunks = []
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def status_of(answer: bytes) -> int | None:
    """The status code of a raw HTTP answer; None when the server closed without answering."""
    if not answer.startswith(b"HTTP/1.1 "):
        return None
    return int(answer[9:12])


@contextlib.contextmanager
def running(
    models: Sequence[tuple[str, Any]], limits: Limits | None = None, token: str | None = None, cors: Sequence[str] = ()
) -> Iterator[Running]:
    """The application for `models` served on a free port, stopped (gracefully) on exit."""
    app = create_app(models, limits, token, cors)
    sock = listen("127.0.0.1", 0)
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=10)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield Running(server, thread, sock.getsockname()[1], app)
    finally:
        server.should_exit = True
        thread.join(30)


# --- a fake model, for what a real one cannot be made to do on cue -------------------------------------


@dataclass
class EchoModel:
    """Translates by reversing the text; each call waits on `gate` (when set) and `delay`, and is recorded.

    For the tests of timeouts, full queues and shutdown, where decoding must take as long as the test says.
    """

    delay: float = 0.0
    gate: threading.Event | None = None
    calls: list[int] = field(default_factory=list)
    info: Any = field(
        default_factory=lambda: SimpleNamespace(
            name="echo",
            precision="fp32",
            device="cpu",
            search={"name": "greedy"},
            metrics={},
            metrics_split=None,
            source_language=None,
            target_language=None,
            recipe={},
        )
    )

    def translate(self, texts: list[str], search: str | None = None, **options: Any) -> list[Any]:
        if self.gate is not None:
            self.gate.wait(30)
        time.sleep(self.delay)
        self.calls.append(len(texts))
        return [
            SimpleNamespace(
                text=text[::-1],
                tokens=list(text[::-1]),
                source_tokens=list(text),
                score=None,
                attention=None,
                alternatives=[],
            )
            for text in texts
        ]

    def reply(self, text: str) -> str:
        return self.translate([text])[0].text
