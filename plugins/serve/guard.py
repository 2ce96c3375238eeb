"""What every HTTP request passes before the application sees it: the token, the body's bounds, the log.

A pure ASGI middleware, so that it runs before FastAPI reads anything: a request without the token is
refused before its body is read, and the body is read here, at most `Limits.max_body` bytes within
`Limits.body_seconds`, then handed on whole. Every request is logged with its status and duration.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from transduce_builtins.serve.limits import Limits

log = logging.getLogger("transduce.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Paths anyone may fetch without the token: the health check (for load balancers), the page and the schema.
OPEN_PATHS = ("/v1/health",)
PROTECTED_PREFIX = "/v1/"


class Refused(Exception):
    """A request answered here with `status`, without reaching the application."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def error_body(
    status: int, message: str, field: str | None = None, details: list[dict[str, Any]] | None = None
) -> bytes:
    """The JSON of every error answer: {"error": {status, message, field, details}}; ASCII with escapes, so
    whatever a message quotes from the request (a lone surrogate, say) it stays valid JSON."""
    return json.dumps(
        {"error": {"status": status, "message": message, "field": field, "details": details or []}}
    ).encode("ascii")


class Guard:
    """The ASGI middleware: token check, bounded body, request log."""

    def __init__(self, app: ASGIApp, limits: Limits, token: str | None) -> None:
        self.app = app
        self.limits = limits
        self.token = token.encode("utf-8") if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [0]

        async def recorded(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.start":
                status[0] = message["status"]

        try:
            self._check_token(scope)
            body = await self._read_body(scope, receive)
        except Refused as refused:
            await _answer(recorded, refused)
        except _Disconnected:
            pass
        else:
            await self.app(scope, _replay(body, receive), recorded)
        finally:
            _log(scope, status[0], time.perf_counter() - started)

    def _check_token(self, scope: Scope) -> None:
        """401 for a /v1 request (but the health check) without `Authorization: Bearer TOKEN`."""
        path = scope.get("path", "")
        if self.token is None or not path.startswith(PROTECTED_PREFIX) or path in OPEN_PATHS:
            return
        given = _header(scope, b"authorization") or b""
        scheme, _, credential = given.partition(b" ")
        # compare_digest takes as long whatever the mismatch, so timing reveals nothing of the token
        if not (scheme.lower() == b"bearer" and hmac.compare_digest(credential.strip(), self.token)):
            problem = "missing" if not given else "wrong"
            raise Refused(
                401,
                f"this server needs a token and the request's was {problem}: send the header "
                "'Authorization: Bearer TOKEN' (the token the server was started with)",
                {"www-authenticate": "Bearer"},
            )

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        """The whole body: 413 beyond Limits.max_body (by Content-Length before reading), 408 when it takes
        longer than Limits.body_seconds, 400 when it is not UTF-8 (JSON is)."""
        limit = self.limits.max_body
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            raise _too_large(limit, int(declared))
        try:
            async with asyncio.timeout(self.limits.body_seconds):
                body = await _collect(receive, limit)
        except TimeoutError:
            raise Refused(408, f"the request body did not arrive within {self.limits.body_seconds:g} seconds") from None
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise Refused(
                400,
                f"the request body is not UTF-8 (byte {error.start:,} is {body[error.start]:#04x}): send JSON in UTF-8",
            ) from None
        return body


class _Disconnected(Exception):
    """The client went away before its body was read."""


async def _collect(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit, None)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _too_large(limit: int, declared: int | None) -> Refused:
    size = f" ({declared:,} bytes)" if declared is not None else ""
    return Refused(
        413, f"the request body{size} is larger than the server's limit of {limit:,} bytes: send fewer texts"
    )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives `body` whole, then waits on the connection (for its disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


async def _answer(send: Send, refused: Refused) -> None:
    """Send the refusal, unless the connection can no longer carry an answer: the client broke the protocol
    while its body was awaited (uvicorn has answered 400 and closes) or left."""
    try:
        await _send_error(send, refused)
    except Exception as error:  # noqa: BLE001 - uvicorn's protocol errors are its own types
        log.debug("no answer sent (%s): %s", type(error).__name__, error)


async def _send_error(send: Send, refused: Refused) -> None:
    body = error_body(refused.status, str(refused))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in refused.headers.items()]
    if refused.status in (408, 413):
        headers.append((b"connection", b"close"))  # the rest of the body is not read
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value
    return None


def _log(scope: Scope, status: int, seconds: float) -> None:
    client = scope.get("client") or ("-", 0)
    path = ascii(scope.get("path", ""))[1:-1]  # escaped: a path cannot write lines of its own into the log
    log.info('%s:%s "%s %s" %s %.1f ms', client[0], client[1], scope.get("method", ""), path, status, seconds * 1000)
