"""`transduce serve`'s HTTP API: what each endpoint answers, batching across requests, limits, token, CORS.

The server runs in a thread on a free loopback port with a tiny trained run (serve_helpers.running);
requests go through real sockets.
"""

from __future__ import annotations

import concurrent.futures
import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from serve_helpers import EchoModel, exchange, running, status_of
from transduce_builtins.serve.limits import Limits

import transduce

DATES = ["April 5, 2001", "TUESDAY, SEPTEMBER 27, 1994", "5/7/99", "jan 1 2020", "30 Dec 1999", "Mar 3, 1803"]


@pytest.fixture(scope="module")
def model(trained_run: Path) -> Any:
    return transduce.load(trained_run, device="cpu")


@pytest.fixture(scope="module")
def server(model: Any) -> Any:
    with running([("dates", model)], Limits(max_texts=8, max_chars=200, max_body=20_000, body_seconds=1.0)) as served:
        yield served


# --- what the endpoints answer ---------------------------------------------------------------------------------


def test_translate_answers_what_the_model_gives(server, model):
    answer = server.request("POST", "/v1/translate", {"texts": DATES})
    assert answer.status == 200
    expected = model.translate(DATES)
    assert answer.json["model"] == "dates"
    assert [r["text"] for r in answer.json["results"]] == [r.text for r in expected]
    assert [r["score"] for r in answer.json["results"]] == pytest.approx([r.score for r in expected])
    first = answer.json["results"][0]
    assert first["source_tokens"] == expected[0].source_tokens and first["tokens"] == expected[0].tokens
    assert first["attention"] is None and first["heatmap_svg"] is None  # only when asked for


def test_translate_with_beam_gives_the_n_best_list_and_the_heat_map(server, model):
    request = {"texts": DATES[:2], "search": "beam", "options": {"size": 4, "n_best": 3}, "attention": True}
    answer = server.request("POST", "/v1/translate", request)
    assert answer.status == 200
    expected = model.translate(DATES[:2], "beam", size=4, n_best=3)
    for got, want in zip(answer.json["results"], expected, strict=True):
        assert [a["text"] for a in got["alternatives"]] == [a.text for a in want.alternatives]
        assert len(got["alternatives"]) == 3
        assert [a["score"] for a in got["alternatives"]] == pytest.approx([a.score for a in want.alternatives])
        assert len(got["attention"]) == len(want.attention)
        for row, wanted in zip(got["attention"], want.attention, strict=True):
            assert row == pytest.approx(wanted)
        assert got["heatmap_svg"] == model.heatmap_svg(want)
        assert got["heatmap_svg"].startswith("<svg")


def test_score_answers_the_models_log_probabilities(server, model):
    sources, targets = DATES[:3], ["2001-04-05", "1994-09-27", "1999-05-07"]
    answer = server.request("POST", "/v1/score", {"sources": sources, "targets": targets})
    assert answer.status == 200
    expected = model.score(sources, targets)
    assert [r["log_prob"] for r in answer.json["results"]] == pytest.approx([s.log_prob for s in expected])
    assert [r["tokens"] for r in answer.json["results"]] == [s.tokens for s in expected]
    assert [r["per_token"] for r in answer.json["results"]] == pytest.approx([s.per_token for s in expected])


def test_score_refuses_unequal_lists_naming_targets(server):
    answer = server.request("POST", "/v1/score", {"sources": DATES[:2], "targets": ["2001-04-05"]})
    assert answer.status == 422
    assert answer.error["field"] == "targets" and "1 targets for 2 sources" in answer.error["message"]


def test_chat_replies_as_the_model_does(server, model):
    answer = server.request("POST", "/v1/chat", {"text": "jan 1 2020"})
    assert answer.status == 200
    assert answer.json == {"model": "dates", "reply": model.reply("jan 1 2020")}


def test_models_lists_each_served_run_with_recipe_and_metrics(server, model, trained_run):
    answer = server.request("GET", "/v1/models")
    assert answer.status == 200
    (listed,) = answer.json["models"]
    assert listed["name"] == "dates" and listed["run"] == trained_run.name
    assert listed["metrics"] == model.info.metrics and listed["metrics"]  # the run's report.json
    assert listed["recipe"]["model"]["encoder"]["name"] == "lstm"
    assert listed["search"]["name"] == "greedy"
    assert str(trained_run) not in answer.body.decode()  # no paths of the server's file system


def test_health_answers_ok_with_what_was_decoded(server):
    before = server.request("GET", "/v1/health").json["decoded"]["dates"]
    server.request("POST", "/v1/translate", {"texts": DATES[:3]})
    answer = server.request("GET", "/v1/health")
    assert answer.status == 200 and answer.json["status"] == "ok" and answer.json["models"] == ["dates"]
    after = answer.json["decoded"]["dates"]
    assert after["batches"] == before["batches"] + 1 and after["items"] == before["items"] + 3
    assert after["largest"] >= 3


def test_several_models_are_picked_by_name(model):
    echo = EchoModel()
    with running([("dates", model), ("echo", echo)]) as served:
        assert (
            served.request("POST", "/v1/translate", {"texts": ["abc"], "model": "echo"}).json["results"][0]["text"]
            == "cba"
        )
        default = served.request("POST", "/v1/translate", {"texts": ["abc"]})
        assert default.json["model"] == "dates"
        wrong = served.request("POST", "/v1/chat", {"text": "abc", "model": "ecko"})
        assert wrong.status == 422 and wrong.error["field"] == "model"
        assert "did you mean 'echo'?" in wrong.error["message"] and "served: dates, echo" in wrong.error["message"]
        assert [m["name"] for m in served.request("GET", "/v1/models").json["models"]] == ["dates", "echo"]


# --- batching across requests ----------------------------------------------------------------------------------


def test_concurrent_requests_are_decoded_together_with_the_same_results(model):
    texts = [f"{month} {day}, 19{day + 50}" for month in ("jan", "feb", "march", "april") for day in range(1, 9)]
    alone = [r.text for r in model.translate(texts)]
    with running([("dates", model)], Limits(max_wait=0.2, max_batch=64)) as served:
        start = threading.Barrier(len(texts))

        def one(text: str) -> str:
            start.wait()
            answer = served.request("POST", "/v1/translate", {"texts": [text]})
            assert answer.status == 200, answer.body
            return answer.json["results"][0]["text"]

        with concurrent.futures.ThreadPoolExecutor(len(texts)) as pool:
            together = list(pool.map(one, texts))
        stats = served.app.state.batchers["dates"].stats
    assert together == alone  # batching never changes an output
    assert stats.items == len(texts)
    assert stats.batches < len(texts) / 2 and stats.largest >= 4


def test_requests_with_other_settings_are_not_merged(model):
    with running([("dates", model)], Limits(max_wait=0.2)) as served:
        requests = [{"texts": DATES[:2]}, {"texts": DATES[:2], "search": "beam", "options": {"size": 2}}] * 3
        with concurrent.futures.ThreadPoolExecutor(len(requests)) as pool:
            answers = list(pool.map(lambda body: served.request("POST", "/v1/translate", body), requests))
    greedy = [r.text for r in model.translate(DATES[:2])]
    beam = [r.text for r in model.translate(DATES[:2], "beam", size=2)]
    for body, answer in zip(requests, answers, strict=True):
        assert [r["text"] for r in answer.json["results"]] == (beam if "search" in body else greedy)


# --- what a request may not do ---------------------------------------------------------------------------------


def test_an_unknown_field_is_refused_naming_it(server):
    answer = server.request("POST", "/v1/translate", {"texts": ["x"], "serach": "beam"})
    assert answer.status == 422
    assert answer.error["field"] == "serach"
    assert "Did you mean 'search'?" in answer.error["message"]


@pytest.mark.parametrize(
    ("options", "field", "words"),
    [
        ({"sise": 3}, "options.sise", "Did you mean 'size'?"),
        ({"size": 0}, "options.size", "too small"),
        ({"size": "five"}, "options.size", "expected"),
        ({"batch_size": 3}, "options", "not a search option"),
        ({"size": 1e400}, "options.size", "finite"),
    ],
)
def test_search_options_are_validated_as_set_validates_them(server, options, field, words):
    answer = server.request("POST", "/v1/translate", {"texts": ["x"], "search": "beam", "options": options})
    assert answer.status == 422, answer.body
    assert answer.error["field"] == field
    assert words in answer.error["message"]


def test_an_unknown_search_strategy_is_refused_with_a_suggestion(server):
    answer = server.request("POST", "/v1/translate", {"texts": ["x"], "search": "bean"})
    assert (
        answer.status == 422 and answer.error["field"] == "search" and "Did you mean 'beam'?" in answer.error["message"]
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"texts": ["x"] * 9}, "texts"),  # max_texts 8
        ({"texts": []}, "texts"),
        ({"texts": ["x", "y" * 201]}, "texts.1"),  # max_chars 200
        ({"texts": "x"}, "texts"),
        ({"texts": [1]}, "texts.0"),
        ({"texts": ["\ud800"]}, "texts.0"),  # a lone surrogate
        ({}, "texts"),
        ({"texts": ["x"], "attention": "yes"}, "attention"),
    ],
)
def test_a_bad_field_is_refused_naming_it(server, body, field):
    answer = server.request("POST", "/v1/translate", body)
    assert answer.status == 422
    assert answer.error["field"] == field
    assert answer.error["message"].startswith(f"{field}: ")


def test_bad_json_and_bad_utf8_are_refused(server):
    broken = server.request("POST", "/v1/translate", raw=b'{"texts": [')
    assert broken.status == 422 and "not valid JSON" in broken.error["message"]
    latin1 = server.request("POST", "/v1/translate", raw='{"texts": ["été"]}'.encode("latin-1"))
    assert latin1.status == 400 and "not UTF-8" in latin1.error["message"]
    listed = server.request("POST", "/v1/translate", raw=b"[1, 2]")
    assert listed.status == 422 and "send a JSON object" in listed.error["message"]


def test_a_body_over_the_limit_gets_413_declared_or_streamed(server):
    big = b'{"texts": ["' + b"x" * 30_000 + b'"]}'
    assert server.request("POST", "/v1/translate", raw=big).status == 413
    chunked = (
        b"POST /v1/translate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
        + b"".join(b"%x\r\n%s\r\n" % (4096, b"x" * 4096) for _ in range(6))
        + b"0\r\n\r\n"
    )
    assert status_of(exchange(server.port, chunked)) == 413
    assert server.alive()


def test_a_slow_body_gets_408(server):
    head = b"POST /v1/translate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n"
    started = time.monotonic()
    answer = exchange(server.port, head + b'{"texts"', timeout=10)  # the other 92 bytes never come
    assert status_of(answer) == 408 and b"did not arrive within 1 seconds" in answer
    assert time.monotonic() - started < 5
    assert server.alive()


def test_a_client_stalled_mid_head_holds_up_no_one(server):
    with socket.create_connection(("127.0.0.1", server.port)) as stalled:
        stalled.sendall(b"POST /v1/translate HTTP/1.1\r\nhost: x\r\ncontent-ty")
        started = time.monotonic()
        assert server.request("POST", "/v1/translate", {"texts": ["x"]}).status == 200
        assert time.monotonic() - started < 5


def test_an_answer_does_not_wait_for_the_clients_delayed_ack(server):
    """Without TCP_NODELAY every answer's body waited 40 ms for the ACK of its head (Nagle's algorithm)."""
    with socket.create_connection(("127.0.0.1", server.port)) as connection:
        took = []
        for _ in range(20):
            started = time.perf_counter()
            connection.sendall(b"GET /v1/health HTTP/1.1\r\nhost: x\r\n\r\n")
            answer = b""
            while not answer.endswith(b"}"):
                answer += connection.recv(65536)
            took.append(time.perf_counter() - started)
    assert sorted(took)[10] < 0.03


def test_unknown_paths_and_methods_answer_json(server):
    missing = server.request("GET", "/v2/translate")
    assert missing.status == 404 and missing.error["message"].startswith("no such endpoint")
    wrong = server.request("GET", "/v1/translate")
    assert wrong.status == 405 and "GET is not allowed" in wrong.error["message"]


# --- time limits, a full queue -----------------------------------------------------------------------------------


def test_a_request_that_takes_too_long_gets_503_and_the_server_goes_on():
    slow = EchoModel(delay=1.0)
    with running([("echo", slow)], Limits(timeout=0.2)) as served:
        answer = served.request("POST", "/v1/translate", {"texts": ["abc"]})
        assert answer.status == 503 and "did not finish within 0.2 seconds" in answer.error["message"]
        assert answer.headers["retry-after"] == "1"
        slow.delay = 0.0
        time.sleep(1.0)  # the slow call finishes
        assert served.request("POST", "/v1/translate", {"texts": ["abc"]}).json["results"][0]["text"] == "cba"


def test_a_full_queue_answers_503_at_once():
    gate = threading.Event()
    blocked = EchoModel(gate=gate)
    with running([("echo", blocked)], Limits(max_queue=4, max_batch=2, max_wait=0)) as served:
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            first = pool.submit(served.request, "POST", "/v1/translate", {"texts": ["ab", "cd"]})
            time.sleep(0.3)  # taken by the worker, which waits on the gate
            queued = pool.submit(served.request, "POST", "/v1/translate", {"texts": ["ef", "gh", "ij", "kl"]})
            time.sleep(0.3)
            full = served.request("POST", "/v1/translate", {"texts": ["mn"]})
            gate.set()
            assert first.result().status == 200 and queued.result().status == 200
    assert full.status == 503 and "texts waiting" in full.error["message"] and full.headers["retry-after"] == "1"


# --- token, CORS, log --------------------------------------------------------------------------------------------


def test_a_token_is_required_when_given(model):
    with running([("dates", model)], token="s3cret") as served:
        missing = served.request("POST", "/v1/translate", {"texts": ["x"]})
        assert missing.status == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert "missing" in missing.error["message"]
        wrong = served.request("GET", "/v1/models", token="s3cre")
        assert wrong.status == 401 and "wrong" in wrong.error["message"]
        assert served.request("GET", "/v1/models", token="s3cret").status == 200
        assert served.request("POST", "/v1/chat", {"text": "x"}, token="s3cret").status == 200
        assert served.request("GET", "/v1/health").status == 200  # for load balancers
        assert served.request("GET", "/").status == 200  # the page asks for the token itself


def test_no_cors_unless_asked(server, model):
    origin = {"origin": "https://example.org", "content-type": "application/json"}
    plain = server.request("POST", "/v1/translate", {"texts": ["x"]}, headers=origin)
    assert plain.status == 200 and "access-control-allow-origin" not in plain.headers
    with running([("dates", model)], token="t", cors=["https://example.org"]) as served:
        allowed = served.request("POST", "/v1/translate", {"texts": ["x"]}, headers=origin, token="t")
        assert allowed.headers["access-control-allow-origin"] == "https://example.org"
        preflight = served.request(
            "OPTIONS",
            "/v1/translate",
            headers={"origin": "https://example.org", "access-control-request-method": "POST"},
        )
        assert preflight.status == 200  # no token needed for the preflight
        other = served.request(
            "POST", "/v1/translate", {"texts": ["x"]}, headers={**origin, "origin": "https://evil.example"}, token="t"
        )
        assert "access-control-allow-origin" not in other.headers


def test_each_request_is_logged_with_status_and_duration(server, caplog):
    with caplog.at_level(logging.INFO, logger="transduce.serve"):
        server.request("POST", "/v1/translate", {"texts": ["x"]})
        server.request("GET", "/v1/nothing%0Aforged%20line")
        time.sleep(0.2)  # the line is written once the answer is sent
    lines = [r.getMessage() for r in caplog.records if r.name == "transduce.serve"]
    assert any('"POST /v1/translate" 200' in line and line.endswith(" ms") for line in lines)
    assert any('"GET /v1/nothing\\nforged line" 404' in line for line in lines)  # no line of the client's own


# --- the page, the schema ----------------------------------------------------------------------------------------


def test_the_page_and_the_api_docs_use_no_external_url(server):
    for path in ("/", "/docs", "/page/page.js", "/page/docs.js", "/page/page.css"):
        answer = server.request("GET", path)
        assert answer.status == 200, path
        text = answer.body.decode("utf-8")
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, path
        assert answer.headers["content-security-policy"].startswith("default-src 'self'")
    assert "Noto Sans CJK KR" in server.request("GET", "/page/page.css").body.decode()  # Hangul has a font


def test_the_openapi_schema_lists_the_v1_endpoints(server):
    schema = server.request("GET", "/openapi.json").json
    assert {"/v1/translate", "/v1/score", "/v1/chat", "/v1/models", "/v1/health"} <= set(schema["paths"])
    translate = schema["components"]["schemas"]["TranslateRequest"]
    assert translate["additionalProperties"] is False
    assert translate["properties"]["texts"]["maxItems"] == 8
