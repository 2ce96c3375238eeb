"""Running the application under uvicorn: the listening socket, the logs, a graceful stop.

Imported only once the `serve` extra is known to be installed (uvicorn is imported at the top).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn
from transduce_builtins.serve.limits import Limits

from transduce.api import TransduceError

#: Seconds an idle keep-alive connection stays open.
KEEP_ALIVE = 5
#: Bytes of a request head still incomplete (uvicorn's h11 default, stated): beyond, it gets 400.
MAX_HEAD = 16 * 1024
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Server(uvicorn.Server):
    """uvicorn's server, except that a stop by SIGTERM or Ctrl-C, once the requests in flight have finished,
    ends `serve` normally (exit status 0) instead of raising the signal again."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one); a TransduceError when it cannot be had.

    Made with the protocol named (IPPROTO_TCP), not 0 as `socket.create_server` makes it: asyncio sets
    TCP_NODELAY only on connections of such a socket, and without it every answer waited for the client's
    delayed ACK between its head and its body (40 ms on Linux, for a 1 ms answer)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as error:
        sock.close()
        hint = "; pick another --port (0: any free port)" if error.errno in (98, 48) else ""
        raise TransduceError(f"cannot listen on {host}:{port}: {error.strerror or error}{hint}") from None
    return sock


def address(sock: socket.socket) -> str:
    """The URL the socket serves."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach `host` ('localhost' counts)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def log_to_stderr() -> None:
    """The request log and uvicorn's start and stop messages on stderr, one line each."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    for name in ("transduce.serve", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False


def serve(app: Any, sock: socket.socket, limits: Limits) -> None:
    """Serve `app` on `sock` until SIGTERM or Ctrl-C; the requests in flight finish first (for up to
    Limits.timeout seconds, the longest a request may take)."""
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,  # the Guard logs each request, with its duration
        lifespan="on",
        timeout_keep_alive=KEEP_ALIVE,
        timeout_graceful_shutdown=int(limits.timeout + limits.body_seconds) + 1,
        limit_concurrency=limits.max_connections,
        h11_max_incomplete_event_size=MAX_HEAD,
        server_header=False,
    )
    asyncio.run(Server(config).serve(sockets=[sock]))
