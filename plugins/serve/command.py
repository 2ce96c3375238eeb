"""The `transduce serve` command: its arguments, loading the runs, starting the server.

FastAPI and uvicorn (the `serve` extra) are imported only when the command runs, so the rest of transduce
works without them and `transduce serve` says how to install them.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from transduce_builtins.serve.limits import Limits

from transduce.api import Command, CommandContext, TransduceError, add_set_option, add_threads_option

#: The environment variable that gives the token when --token does not.
TOKEN_VARIABLE = "TRANSDUCE_SERVE_TOKEN"
#: NAME=RUN: the name a run is served under (what requests give as "model").
NAMED_RUN = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,99})=(.+)")
INSTALL = "pip install 'transduce[serve]'"


def _at_least(low: float, kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value >= low:
            raise argparse.ArgumentTypeError(f"expected at least {low:g}, got {text!r}")
        return value

    return parse


class Serve(Command):
    """`transduce serve`."""

    name = "serve"
    help = "serve trained runs over HTTP: a JSON API (/v1) and a web page (/)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("runs", nargs="+", metavar="RUN", help="a run directory, or NAME=RUN to name it")
        parser.add_argument(
            "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)"
        )
        parser.add_argument(
            "--port", type=_port, default=8000, help="port to listen on (default: 8000; 0: any free port)"
        )
        parser.add_argument(
            "--token",
            help=f"require 'Authorization: Bearer TOKEN' on /v1 requests (default: ${TOKEN_VARIABLE}; none: no token)",
        )
        parser.add_argument(
            "--cors",
            action="append",
            default=[],
            metavar="ORIGIN",
            help="let pages of ORIGIN call the API (repeatable)",
        )
        parser.add_argument("--checkpoint", default="best", help="best (default), last, or a checkpoint file")
        parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: auto")
        parser.add_argument("--precision", help="decoding precision, e.g. fp32 or bf16 (default: the run's)")
        add_set_option(parser, "override every run's recipe, e.g. --set search.max_length=50 (repeatable)")
        add_threads_option(parser)
        self._add_limits(parser)

    @staticmethod
    def _add_limits(parser: argparse.ArgumentParser) -> None:
        default = Limits()
        limits = parser.add_argument_group("limits (see docs/serving.md)")
        whole = _at_least(1, int)
        limits.add_argument(
            "--max-batch", type=whole, default=default.max_batch, help="texts decoded together (default: %(default)s)"
        )
        limits.add_argument(
            "--max-wait-ms",
            type=_at_least(0, float),
            default=default.max_wait * 1000,
            help="how long an idle model waits for more requests to batch (milliseconds; default: %(default)s)",
        )
        limits.add_argument(
            "--max-texts", type=whole, default=default.max_texts, help="texts per request (default: %(default)s)"
        )
        limits.add_argument(
            "--max-chars", type=whole, default=default.max_chars, help="characters per text (default: %(default)s)"
        )
        limits.add_argument(
            "--max-body", type=whole, default=default.max_body, help="bytes per request body (default: %(default)s)"
        )
        limits.add_argument(
            "--max-queue", type=whole, default=default.max_queue, help="texts waiting per model (default: %(default)s)"
        )
        limits.add_argument(
            "--body-timeout",
            type=_at_least(0.001, float),
            default=default.body_seconds,
            help="seconds a request's body may take to arrive; a slower client gets 408 (default: %(default)s)",
        )
        limits.add_argument(
            "--timeout",
            type=_at_least(0.001, float),
            default=default.timeout,
            help="seconds a request may wait for its answer (default: %(default)s)",
        )

    def run(self, args: argparse.Namespace, context: CommandContext) -> int:
        _require_packages()
        from transduce_builtins.serve import server
        from transduce_builtins.serve.app import create_app

        limits = _limits(args)
        token = args.token if args.token is not None else os.environ.get(TOKEN_VARIABLE) or None
        named = named_runs(args.runs)
        sock = server.listen(args.host, args.port)  # a port in use is reported before the models load
        try:
            models = [(name, self._load(path, args, context)) for name, path in named]
        except BaseException:
            sock.close()
            raise
        url = server.address(sock)
        names = ", ".join(name for name, _ in models)
        context.err.print(f"serving {names} at {url} (page: {url}, API: {url}docs)", markup=False, highlight=False)
        if token is None and not server.is_loopback(args.host):
            context.err.print(
                f"warning: {args.host} is reachable from other machines and no token is required; give --token "
                f"or set {TOKEN_VARIABLE}",
                markup=False,
            )
        server.log_to_stderr()
        server.serve(create_app(models, limits, token, args.cors), sock, limits)
        context.err.print("stopped", markup=False)
        return 0

    @staticmethod
    def _load(path: str, args: argparse.Namespace, context: CommandContext) -> Any:
        return context.load(
            path, checkpoint=args.checkpoint, device=args.device, precision=args.precision, overrides=args.set
        )


def _limits(args: argparse.Namespace) -> Limits:
    return Limits(
        max_chars=args.max_chars,
        max_texts=args.max_texts,
        max_body=args.max_body,
        body_seconds=args.body_timeout,
        timeout=args.timeout,
        max_batch=args.max_batch,
        max_wait=args.max_wait_ms / 1000,
        max_queue=args.max_queue,
    )


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, got {text!r}")
    return int(text)


def named_runs(runs: Sequence[str]) -> list[tuple[str, str]]:
    """(name, run directory) per RUN argument: NAME=RUN, else the directory's own name; names must differ."""
    named: dict[str, str] = {}
    for given in runs:
        match = NAMED_RUN.fullmatch(given)
        name, path = (
            match.groups()
            if match and not os.path.exists(given)
            else (os.path.basename(os.path.normpath(given)), given)
        )
        if name in named:
            raise TransduceError(
                f"two runs would be served as {name!r} ({named[name]} and {path}): name them, e.g. "
                f"{name}-1={named[name]} {name}-2={path}"
            )
        named[name] = path
    return list(named.items())


def _require_packages() -> None:
    """A TransduceError saying how to install the `serve` extra when FastAPI or uvicorn is missing."""
    for package in ("fastapi", "uvicorn"):
        try:
            __import__(package)
        except ImportError:
            raise TransduceError(
                f"transduce serve needs the packages of the 'serve' extra, and {package} is not installed: {INSTALL}"
            ) from None
