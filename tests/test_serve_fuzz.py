"""Fuzzing `transduce serve` with malformed requests: bad JSON, wrong types, huge fields, invalid UTF-8,
unknown options, missing or wrong tokens, broken HTTP and slow clients.

Each case goes over its own socket as raw bytes. A case passes when the server answers with a status
below 500 (an error of ours as JSON naming the problem), or, for bytes that are not HTTP, answers 4xx or
closes; never a 5xx, never a traceback, never a hang. Every 50 cases and at the end the server must still
answer a good request with the right translation. The cases are drawn from a seeded generator, so a run is
repeatable; TRANSDUCE_FUZZ_SCALE multiplies their number (as for the other fuzzers).

The same generator as a longer script, against a real `transduce serve` process (where a crash is the
process dying):

    .venv/bin/python tests/test_serve_fuzz.py RUN --cases 5000 [--seed 1]
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from serve_helpers import exchange, request, status_of

#: The bounds the fuzzed server runs with (the script passes them as options).
MAX_TEXTS, MAX_CHARS, MAX_BODY, BODY_SECONDS = 8, 300, 50_000, 1.0
TOKEN = "fuzz-token"
ENDPOINTS = ("/v1/translate", "/v1/score", "/v1/chat")
FIELDS = {
    "/v1/translate": ("texts", "model", "search", "options", "attention"),
    "/v1/score": ("sources", "targets", "model"),
    "/v1/chat": ("text", "model"),
}
GOOD = {
    "/v1/translate": {"texts": ["April 5, 2001"]},
    "/v1/score": {"sources": ["a"], "targets": ["b"]},
    "/v1/chat": {"text": "hi"},
}
ODD_TEXT = ["", " ", "\0", "\u2028", "\ufeff", "🙂" * 30, "안녕하세요", "</s>", "\x1b[31m", "é" * 5, "\\ud800"]
SEARCHES = ["greedy", "beam", "sample", "bean", "", "GREEDY", None, 3]
OPTION_NAMES = [
    "size",
    "n_best",
    "max_length",
    "temperature",
    "top_k",
    "seed",
    "length_penalty",
    "sise",
    "name",
    "batch_size",
]


@dataclass
class Case:
    """One malformed request: its kind, its bytes, and how the client behaves."""

    kind: str
    data: bytes
    pause: float = 0.0  # silence before sending


def http(path: str, body: bytes, headers: dict[str, str] | None = None, method: str = "POST") -> bytes:
    """A request with `body` and Content-Length, closing the connection after the answer."""
    lines = [f"{method} {path} HTTP/1.1", "host: fuzz", "connection: close", "content-type: application/json"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def authorized(path: str, body: bytes) -> bytes:
    return http(path, body, {"authorization": f"Bearer {TOKEN}"})


def value(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value: scalars of every type (huge and negative numbers, odd strings), lists, objects."""
    kinds = ["int", "float", "str", "bool", "null"] + (["list", "dict"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.choice([0, -1, 1, 2**31, -(2**63), 10**30, rng.randint(-1000, 1000)])
    if kind == "float":
        return rng.choice([0.5, -1e308, 1e-320, 3.14, float(rng.randint(0, 100))])
    if kind == "str":
        return rng.choice(
            ODD_TEXT + ["x" * rng.randint(0, 2 * MAX_CHARS), "".join(chr(rng.randint(32, 0x2FFFF)) for _ in range(8))]
        )
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["texts", "x", "options", "", "size"]): value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def dumps(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


# --- the kinds of case ---------------------------------------------------------------------------------------------


def bad_json(rng: random.Random) -> Case:
    path = rng.choice(ENDPOINTS)
    good = dumps(GOOD[path])
    body = rng.choice(
        [
            good[: rng.randint(0, len(good) - 1)],  # cut short
            bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 60))),
            "".join(rng.choice('{}[]",:0e-.tfn\\u ') for _ in range(rng.randint(1, 80))).encode(),
            good + b"garbage",
            b"[" * rng.randint(1000, 40_000) + b"]" * rng.randint(0, 10),  # deep nesting
            b'{"texts": [NaN, Infinity]}',
            b'{"texts": ["a"], "texts": 3}',  # a repeated key
            b'{"texts": ["a"]}' + b" " * rng.randint(0, 1000),
            b"1" * 5000,  # a number longer than Python parses
        ]
    )
    return Case("bad json", authorized(path, body))


def wrong_types(rng: random.Random) -> Case:
    path = rng.choice(ENDPOINTS)
    body = dict(GOOD[path])
    for field in rng.sample(FIELDS[path], rng.randint(1, len(FIELDS[path]))):
        body[field] = value(rng)
    if rng.random() < 0.3:
        body = rng.choice([value(rng), [body], None])
    return Case("wrong types", authorized(path, dumps(body)))


def huge_fields(rng: random.Random) -> Case:
    path = "/v1/translate"
    choice = rng.randrange(5)
    if choice == 0:
        body = dumps({"texts": ["x" * rng.randint(MAX_CHARS + 1, MAX_BODY // 2)]})
    elif choice == 1:
        body = dumps({"texts": ["a"] * rng.randint(MAX_TEXTS + 1, 5000)})
    elif choice == 2:
        body = dumps({"texts": ["a"], "options": {f"o{i}": i for i in range(rng.randint(17, 3000))}})
    elif choice == 3:  # over the body limit, declared
        body = b'{"texts": ["' + b"y" * rng.randint(MAX_BODY, 3 * MAX_BODY) + b'"]}'
    else:
        body = dumps({"texts": ["a"], "model": "m" * rng.randint(101, 20_000)})
    if choice == 3 and rng.random() < 0.5:  # ... or streamed in chunks without a declared length
        head = (
            f"POST {path} HTTP/1.1\r\nhost: fuzz\r\nconnection: close\r\nauthorization: Bearer {TOKEN}\r\n"
            "transfer-encoding: chunked\r\n\r\n"
        ).encode()
        chunks = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 8192]), body[i : i + 8192]) for i in range(0, len(body), 8192)
        )
        return Case("huge fields", head + chunks + b"0\r\n\r\n")
    return Case("huge fields", authorized(path, body))


def invalid_utf8(rng: random.Random) -> Case:
    path = rng.choice(ENDPOINTS)
    good = bytearray(dumps(GOOD[path]))
    bad = rng.choice([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\x80", b"\xf8\x88\x80\x80\x80"])
    position = rng.randint(0, len(good))
    if rng.random() < 0.3:
        body = "\ufeff".encode("utf-16") + json.dumps(GOOD[path]).encode("utf-16-le")  # UTF-16 with a BOM
    else:
        body = bytes(good[:position] + bad + good[position:])
    return Case("invalid utf-8", authorized(path, body))


def unknown_options(rng: random.Random) -> Case:
    options = {rng.choice(OPTION_NAMES + ["x" * rng.randint(1, 70)]): value(rng) for _ in range(rng.randint(0, 4))}
    body: dict[str, Any] = {"texts": [rng.choice(ODD_TEXT + ["April 5, 2001"])], "options": options}
    search = rng.choice(SEARCHES)
    if search is not None:
        body["search"] = search
    if rng.random() < 0.3:
        body[rng.choice(["serach", "option", "n_best", "Texts", "extra"])] = value(rng)
    return Case("unknown options", authorized("/v1/translate", dumps(body)))


def tokens(rng: random.Random) -> Case:
    path = rng.choice([*ENDPOINTS, "/v1/models"])
    given = rng.choice(
        [
            None,
            f"Bearer {TOKEN[:-1]}",
            f"Bearer {TOKEN}x",
            f"Basic {TOKEN}",
            "Bearer",
            f"bearer  {TOKEN}",
            "Bearer " + "t" * rng.randint(100, 15_000),
            "Bearer \u00e9t\u00e9",
            f"Token {TOKEN}",
        ]
    )
    headers = {} if given is None else {"authorization": given}
    method = "GET" if path == "/v1/models" else "POST"
    return Case("tokens", http(path, dumps(GOOD.get(path, {})), headers, method))


def broken_http(rng: random.Random) -> Case:
    body = dumps(GOOD["/v1/translate"])
    choice = rng.randrange(9)
    if choice == 0:
        data = bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 200))) + rng.choice([b"", b"\r\n\r\n"])
    elif choice == 1:
        length = rng.choice(["-1", "abc", "99999999999999999999", "1, 2", ""])
        head = f"POST /v1/translate HTTP/1.1\r\nhost: x\r\ncontent-length: {length}\r\n\r\n"
        data = head.encode() + body
    elif choice == 2:
        head = "POST /v1/translate HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n"
        data = head.encode() + rng.choice([b"zz\r\nabc\r\n0\r\n\r\n", b'5\r\n{"te\r\n', b"fffffffff\r\n"])
    elif choice == 3:
        data = b"GET /" + b"a" * rng.randint(20_000, 100_000) + b" HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    elif choice == 4:
        method = rng.choice(["PUT", "DELETE", "PATCH", "TRACE", "FOO", "G\x01T"])
        data = http(rng.choice([*ENDPOINTS, "/", "/v1/health"]), body, method=method)
    elif choice == 5:
        path = "/" + "".join(rng.choice("v1/%2e%00%0a%ff..translate?#&=") for _ in range(rng.randint(1, 40)))
        data = http(path.replace(" ", ""), body, method=rng.choice(["GET", "POST"]))
    elif choice == 6:
        data = b"POST /v1/translate HTTP/1.1\r\nhost: x\r\nx-bad: \xff\xfe\x00\r\ncontent-length: %d\r\n\r\n%s" % (
            len(body),
            body,
        )
    elif choice == 7:
        data = (
            b"GET /v1/health HTTP/1.1\r\nconnection: close\r\n"
            + b"".join(b"x-h%d: v\r\n" % i for i in range(rng.randint(100, 3000)))
            + b"\r\n"
        )
    else:
        data = (authorized("/v1/translate", body) + b"GET /v1/health HTTP/1.0\r\n\r\n") * rng.randint(1, 3)  # pipelined
    return Case("broken http", data)


def slow_clients(rng: random.Random) -> Case:
    body = dumps(GOOD["/v1/translate"])
    full = authorized("/v1/translate", body)
    choice = rng.randrange(3)
    if choice == 0:  # the body stops half-way: 408 after BODY_SECONDS
        return Case("slow clients", full[: len(full) - rng.randint(1, len(body))])
    if choice == 1:  # the head stops half-way (the client is dropped by the test's own timeout)
        return Case("slow clients", full[: rng.randint(1, full.index(b"\r\n\r\n"))])
    return Case("slow clients", full, pause=rng.uniform(0.1, 0.6))  # silence before a good request


KINDS: list[Callable[[random.Random], Case]] = [
    bad_json,
    wrong_types,
    huge_fields,
    invalid_utf8,
    unknown_options,
    tokens,
    broken_http,
    slow_clients,
]


def cases(seed: int, count: int) -> Iterator[Case]:
    """`count` cases, the kinds in turn (slow clients rarer: each takes up to a few seconds)."""
    rng = random.Random(seed)
    for index in range(count):
        kind = KINDS[index % len(KINDS)]
        if kind is slow_clients and index % (4 * len(KINDS)) != len(KINDS) - 1:
            kind = rng.choice(KINDS[:-1])
        yield kind(rng)


# --- running them ----------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What the server answered, per kind of case."""

    statuses: collections.Counter[tuple[str, int | None]]
    failures: list[str]

    @property
    def count(self) -> int:
        return sum(self.statuses.values())

    def table(self) -> str:
        kinds = sorted({kind for kind, _ in self.statuses})
        lines = []
        for kind in kinds:
            found = {status: n for (k, status), n in sorted(self.statuses.items(), key=str) if k == kind}
            total = sum(found.values())
            lines.append(
                f"{kind:16} {total:6,}  " + ", ".join(f"{status or 'closed'}: {n:,}" for status, n in found.items())
            )
        return "\n".join(lines)


def run_case(port: int, case: Case) -> tuple[int | None, str | None]:
    """(status, problem or None) of one case."""
    try:
        answer = exchange(port, case.data, timeout=BODY_SECONDS + 2, pause=case.pause)
    except ConnectionRefusedError:
        return None, "the server refused the connection (is it down?)"
    except OSError as error:  # the server closed while we were still sending (a huge body): no answer
        return None, None if case.kind in ("huge fields", "broken http") else f"{type(error).__name__}: {error}"
    status = status_of(answer)
    return status, problem(case, status, answer)


def problem(case: Case, status: int | None, answer: bytes) -> str | None:
    """What is wrong with the server's answer to `case`, if anything."""
    if b"Traceback" in answer:
        return "a traceback in the answer"
    if status is None:
        fine = case.kind in ("broken http", "slow clients") or (case.kind == "huge fields" and not answer)
        return None if fine else "no answer"
    if status >= 500:
        return f"status {status}: {answer[:300]!r}"
    head, _, body = answer.partition(b"\r\n\r\n")
    if status >= 400 and b"application/json" in head.lower() and b"transfer-encoding: chunked" not in head.lower():
        try:
            message = json.loads(body)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            return f"status {status} without the JSON error: {body[:200]!r}"
        if not message:
            return f"status {status} with an empty message"
    return None


def good_request_works(port: int, expected: str) -> bool:
    try:
        answer = request(port, "POST", "/v1/translate", {"texts": ["April 5, 2001"]}, token=TOKEN, timeout=20)
    except OSError:
        return False
    return answer.status == 200 and answer.json["results"][0]["text"] == expected


def fuzz_server(port: int, seed: int, count: int, expected: str, alive: Callable[[], bool]) -> Tally:
    """Run `count` cases against the server on `port`; `expected` is the translation of the good request."""
    tally = Tally(collections.Counter(), [])
    for index, case in enumerate(cases(seed, count), start=1):
        status, wrong = run_case(port, case)
        tally.statuses[(case.kind, status)] += 1
        if wrong:
            tally.failures.append(f"case {index} ({case.kind}, {case.data[:120]!r}): {wrong}")
        if index % 50 == 0 or index == count:
            if not (alive() and good_request_works(port, expected)):
                tally.failures.append(f"after case {index}: the server no longer answers a good request")
                break
    return tally


# --- the test ----------------------------------------------------------------------------------------------------


def test_malformed_requests_get_4xx_never_5xx_and_the_server_goes_on(trained_run):
    from serve_helpers import running
    from test_fuzz_harness import CASES, SCALE, report_cases
    from transduce_builtins.serve.limits import Limits

    import transduce

    model = transduce.load(trained_run, device="cpu")
    expected = model.translate("April 5, 2001").text
    limits = Limits(max_texts=MAX_TEXTS, max_chars=MAX_CHARS, max_body=MAX_BODY, body_seconds=BODY_SECONDS)
    with running([("dates", model)], limits, token=TOKEN) as served:
        count = max(len(KINDS), round(240 * SCALE))
        tally = fuzz_server(served.port, seed=1, count=count, expected=expected, alive=served.thread.is_alive)
        assert served.thread.is_alive()
    for (kind, _), n in tally.statuses.items():
        CASES[f"serve: {kind}"] += n
    report_cases("serve:", minimum=5)
    assert tally.failures == [], "\n".join(tally.failures[:20])
    assert tally.count == count
    assert not any(status and status >= 500 for _, status in tally.statuses)


# --- the script ----------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description="Fuzz a `transduce serve` process with malformed requests.")
    parser.add_argument("run", help="a trained run directory to serve")
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    command = [sys.executable, "-m", "transduce", "serve", args.run, "--port", "0", "--token", TOKEN, "--threads", "1"]
    command += ["--max-texts", str(MAX_TEXTS), "--max-chars", str(MAX_CHARS), "--max-body", str(MAX_BODY)]
    command += ["--body-timeout", str(BODY_SECONDS)]
    server = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(server.stderr), daemon=True).start()
    try:
        port = _port_of(log, server)
        import transduce

        expected = transduce.load(args.run, device="cpu").translate("April 5, 2001").text
        started = time.monotonic()
        tally = fuzz_server(port, args.seed, args.cases, expected, alive=lambda: server.poll() is None)
        seconds = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(60)
    fives = sum(n for (_, status), n in tally.statuses.items() if status and status >= 500)
    print(tally.table())
    print(f"{tally.count:,} cases in {seconds:.0f} s: {fives} answers 5xx, {len(tally.failures)} failures, ", end="")
    tracebacks = "".join(log).count("Traceback")
    print(f"server exit status {server.returncode} after SIGTERM, tracebacks in its log: {tracebacks}")
    for failure in tally.failures[:20]:
        print(failure)
    return 1 if tally.failures or fives or server.returncode != 0 else 0


def _port_of(log: list[str], server: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for line in log:
            if line.startswith("serving "):
                return int(line.split("http://127.0.0.1:")[1].split("/")[0])
        if server.poll() is not None:
            raise SystemExit("the server stopped:\n" + "".join(log))
        time.sleep(0.1)
    raise SystemExit("the server did not start")


if __name__ == "__main__":
    sys.exit(main())
