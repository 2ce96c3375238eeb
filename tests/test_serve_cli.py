"""`transduce serve` as a command: found through the commands hook, its errors, and a real server process
that stops gracefully on SIGTERM (the request in flight is answered first)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from serve_helpers import request, status_of
from transduce_builtins.serve.command import named_runs
from transduce_builtins.serve.server import is_loopback

from transduce._cli import main as cli
from transduce.api import TransduceError


def test_serve_is_a_command_from_the_plugin_hook(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "serve" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    usage = capsys.readouterr().out
    assert "--token" in usage and "--cors ORIGIN" in usage and "--max-batch" in usage


def test_without_the_serve_extra_it_says_how_to_install_it(trained_run, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # `import fastapi` raises ImportError
    assert cli.main(["serve", str(trained_run)]) == 2
    err = capsys.readouterr().err
    assert "fastapi is not installed" in err and "pip install 'transduce[serve]'" in err
    assert "Traceback" not in err


def test_a_port_in_use_is_a_clear_error(trained_run, capsys):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert cli.main(["serve", str(trained_run), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "pick another --port" in err


def test_a_missing_run_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["serve", str(tmp_path / "nothing"), "--port", "0"]) == 2
    assert "nothing" in capsys.readouterr().err


def test_runs_are_named_by_their_directory_or_explicitly(tmp_path):
    assert named_runs(["runs/dates", "fr=runs/fra-eng/"]) == [("dates", "runs/dates"), ("fr", "runs/fra-eng/")]
    with pytest.raises(TransduceError, match=r"two runs would be served as 'dates'.*dates-1=a/dates dates-2=b/dates"):
        named_runs(["a/dates", "b/dates"])
    odd = tmp_path / "a=b"
    odd.mkdir()
    assert named_runs([str(odd)]) == [("a=b", str(odd))]  # an existing directory is taken as it is


def test_only_loopback_addresses_count_as_private():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")


# --- a real server process -----------------------------------------------------------------------------------------


class Process:
    """`transduce serve` in a child process; its stderr collected by a thread."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        command = [sys.executable, "-m", "transduce", "serve", *args, "--port", "0"]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.port = self._port()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    def _port(self) -> int:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for line in self.lines:
                if line.startswith("serving "):
                    return int(line.split("http://127.0.0.1:")[1].split("/")[0])
            assert self.proc.poll() is None, "".join(self.lines)
            time.sleep(0.1)
        raise AssertionError("the server did not start:\n" + "".join(self.lines))

    @property
    def log(self) -> str:
        return "".join(self.lines)


def test_a_server_process_answers_needs_its_token_and_stops_gracefully_on_sigterm(trained_run):
    env = {**os.environ, "TRANSDUCE_SERVE_TOKEN": "s3cret"}
    server = Process(f"dates={trained_run}", "--threads", "1", env=env)
    try:
        assert request(server.port, "POST", "/v1/translate", {"texts": ["x"]}).status == 401
        good = request(server.port, "POST", "/v1/translate", {"texts": ["April 5, 2001"]}, token="s3cret")
        assert good.status == 200 and good.json["model"] == "dates"
        body = json.dumps({"texts": ["April 5, 2001", "jan 1 2020"]}).encode()
        head = (
            b"POST /v1/translate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"authorization: Bearer s3cret\r\ncontent-length: %d\r\n\r\n" % len(body)
        )
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(head + body[:10])  # in flight: the server waits for the rest of the body
            time.sleep(0.5)
            server.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            with pytest.raises(OSError):  # no new connections once stopping
                request(server.port, "GET", "/v1/health", timeout=5)
            sock.sendall(body[10:])
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert status_of(answer) == 200 and b'"model":"dates"' in answer
        assert server.proc.wait(30) == 0
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    log = server.log
    assert '"POST /v1/translate" 401' in log and '"POST /v1/translate" 200' in log  # the request log
    assert log.rstrip().endswith("stopped")
    assert "Traceback" not in log
