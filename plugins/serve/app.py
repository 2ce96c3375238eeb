"""The FastAPI application of `transduce serve`: the /v1 JSON endpoints, the web page and the error answers.

Every answer that is not a success is JSON of one shape, `{"error": {"status", "message", "field",
"details"}}` (schemas.ErrorResponse), with the request field at fault where there is one; a request the
server cannot make sense of is a 4xx, never a 500, and the server goes on serving. Models are decoded
through their Batcher, so concurrent requests are decoded together.
(No `from __future__ import annotations`: FastAPI reads the request models from the routes' annotations.)
"""

import contextlib
import dataclasses
import difflib
import functools
import json
import logging
from collections.abc import AsyncIterator, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from transduce_builtins.serve import page, schemas
from transduce_builtins.serve.batcher import Batcher, Busy, TimedOut
from transduce_builtins.serve.guard import Guard, error_body
from transduce_builtins.serve.limits import Limits

from transduce.api import TransduceError

log = logging.getLogger("transduce.serve")

#: Attention cells (output rows x source tokens) a result may return with its heat map; beyond, both are null
#: (a 2,000-character input decoded into 100 tokens would otherwise send megabytes of SVG).
MAX_HEATMAP_CELLS = 40_000
#: Error answers every /v1 endpoint may give, for the OpenAPI schema.
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.ErrorResponse, "description": text}
    for status, text in (
        (401, "a token is required and was missing or wrong"),
        (408, "the body did not arrive in time"),
        (413, "the body is too large"),
        (422, "a field is invalid: error.field names it"),
        (503, "busy or timed out: retry later"),
    )
}


class FieldError(Exception):
    """A request whose `field` is wrong in a way its schema cannot say (an unknown model, unequal lists)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class Served:
    """A loaded model (transduce.api's Model) under its name, with the batcher that decodes for it."""

    name: str
    model: Any
    batcher: Batcher


def decode(model: Any, key: Hashable, items: list[Any]) -> Sequence[Any]:
    """The Batcher's decode: one call of the model for the merged items of requests with equal `key`."""
    kind, detail = key  # type: ignore[misc]
    if kind == "translate":
        search, options = json.loads(detail)
        return model.translate(items, search, **options)
    if kind == "score":
        return model.score([source for source, _ in items], [target for _, target in items])
    return [model.reply(text) for text in items]


def create_app(
    models: Sequence[tuple[str, Any]], limits: Limits | None = None, token: str | None = None, cors: Sequence[str] = ()
) -> FastAPI:
    """The server for `models` ((name, Model) pairs; the first is the default): token required when given,
    CORS only for the `cors` origins."""
    limits = limits or Limits()
    served = {
        name: Served(name, model, Batcher(name, functools.partial(decode, model), limits)) for name, model in models
    }

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for each in served.values():
            each.batcher.start()
        try:
            yield
        finally:  # after uvicorn let the requests in flight finish
            for each in served.values():
                await each.batcher.stop()

    app = FastAPI(
        title="transduce serve",
        description="Translate, score and chat with trained transduce runs (see docs/serving.md).",
        version="1",
        docs_url=None,  # FastAPI's pages load scripts from a CDN: page.py serves a page of our own at /docs
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.batchers = {name: each.batcher for name, each in served.items()}  # their stats, for the tests
    bodies = schemas.request_models(limits)
    _add_error_handlers(app, bodies)
    _add_routes(app, served, bodies)
    page.add_routes(app)
    app.add_middleware(Guard, limits=limits, token=token)
    if cors:  # outside the Guard: a CORS preflight carries no token
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors),
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type"],
        )
    return app


def _pick(served: dict[str, Served], name: str | None) -> Served:
    if name is None:
        return next(iter(served.values()))
    if name not in served:
        close = difflib.get_close_matches(name, served, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise FieldError("model", f"no model {name!r} is served{hint} (served: {', '.join(served)})")
    return served[name]


def _add_routes(app: FastAPI, served: dict[str, Served], bodies: schemas.RequestModels) -> None:
    TranslateRequest, ScoreRequest, ChatRequest = bodies.translate, bodies.score, bodies.chat

    @app.post("/v1/translate", response_model=schemas.TranslateResponse, responses=ERRORS)
    async def translate(request: TranslateRequest) -> dict[str, Any]:  # type: ignore[valid-type]
        """Translate texts; concurrent requests with the same model, search and options are decoded together."""
        target = _pick(served, request.model)
        key = ("translate", schemas.options_key(request.search, request.options))
        results = await target.batcher.submit(key, list(request.texts))
        return {"model": target.name, "results": [_translated(target.model, r, request.attention) for r in results]}

    @app.post("/v1/score", response_model=schemas.ScoreResponse, responses=ERRORS)
    async def score(request: ScoreRequest) -> dict[str, Any]:  # type: ignore[valid-type]
        """How probable the model finds each target given its source (forced decoding)."""
        if len(request.sources) != len(request.targets):
            raise FieldError(
                "targets", f"{len(request.targets)} targets for {len(request.sources)} sources: give one per source"
            )
        target = _pick(served, request.model)
        pairs = list(zip(request.sources, request.targets, strict=True))
        results = await target.batcher.submit(("score", ""), pairs)
        return {
            "model": target.name,
            "results": [{"log_prob": r.log_prob, "tokens": r.tokens, "per_token": r.per_token} for r in results],
        }

    @app.post("/v1/chat", response_model=schemas.ChatResponse, responses=ERRORS)
    async def chat(request: ChatRequest) -> dict[str, Any]:  # type: ignore[valid-type]
        """A chat reply to one message, with the run's search strategy (as `transduce chat`)."""
        target = _pick(served, request.model)
        (reply,) = await target.batcher.submit(("chat", ""), [request.text])
        return {"model": target.name, "reply": reply}

    @app.get("/v1/models", response_model=schemas.ModelsResponse, responses=ERRORS)
    async def models() -> dict[str, Any]:
        """The models served, the default first: their recipe, search strategy and report metrics."""
        return {"models": [_described(each) for each in served.values()]}

    @app.get("/v1/health", response_model=schemas.Health)
    async def health() -> dict[str, Any]:
        """For load balancers (needs no token), and what each model's batcher has done so far."""
        waiting = sum(each.batcher.waiting for each in served.values())
        decoded = {name: dataclasses.asdict(each.batcher.stats) for name, each in served.items()}
        return {"status": "ok", "models": list(served), "waiting": waiting, "decoded": decoded}


def _translated(model: Any, result: Any, attention: bool) -> dict[str, Any]:
    """A Result as JSON; with `attention`, its rows and heat map when they are within MAX_HEATMAP_CELLS."""
    rows = result.attention if attention else None
    if rows is not None and len(rows) * len(result.source_tokens) > MAX_HEATMAP_CELLS:
        rows = None
    picture = None
    if rows is not None:
        with contextlib.suppress(TransduceError):  # attention that does not fit its output: no picture
            picture = model.heatmap_svg(result)
    return {
        "text": result.text,
        "tokens": result.tokens,
        "source_tokens": result.source_tokens,
        "score": result.score,
        "alternatives": [{"text": a.text, "tokens": a.tokens, "score": a.score} for a in result.alternatives],
        "attention": rows,
        "heatmap_svg": picture,
    }


def _described(each: Served) -> dict[str, Any]:
    info = each.model.info
    return {
        "name": each.name,
        "run": info.name,  # not its path: the server's file system is its own business
        "precision": info.precision,
        "device": info.device,
        "search": info.search,
        "metrics": info.metrics,
        "metrics_split": info.metrics_split,
        "source_language": info.source_language,
        "target_language": info.target_language,
        "recipe": json.loads(json.dumps(info.recipe, default=str)),
    }


# --- errors --------------------------------------------------------------------


def _error(
    status: int,
    message: str,
    field: str | None = None,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    response = JSONResponse(None, status_code=status, headers=headers)
    response.body = error_body(status, message, field, details)
    response.headers["content-length"] = str(len(response.body))
    return response


def _add_error_handlers(app: FastAPI, bodies: schemas.RequestModels) -> None:
    fields = {
        "/v1/translate": bodies.translate.model_fields,
        "/v1/score": bodies.score.model_fields,
        "/v1/chat": bodies.chat.model_fields,
    }

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        known = list(fields.get(request.url.path, {}))
        details = [_validation_detail(problem, known) for problem in exc.errors()]
        first = details[0] if details else {"field": None, "message": "invalid request"}
        where = f"{first['field']}: " if first["field"] else ""
        return _error(422, where + first["message"], first["field"], details)

    @app.exception_handler(FieldError)
    async def wrong_field(request: Request, exc: FieldError) -> JSONResponse:
        return _error(422, f"{exc.field}: {exc}", exc.field)

    @app.exception_handler(TransduceError)
    async def refused(request: Request, exc: TransduceError) -> JSONResponse:
        """What the model refused: a search option (RecipeError names its key), or an input."""
        key = getattr(exc, "key", "")
        field = schemas.option_field(key) if key else None
        detail = getattr(exc, "detail", None) or str(exc)
        return _error(422, f"{field}: {detail}" if field else detail, field)

    @app.exception_handler(Busy)
    @app.exception_handler(TimedOut)
    async def busy(request: Request, exc: Exception) -> JSONResponse:
        return _error(503, str(exc), headers={"retry-after": "1"})

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = {
            404: f"no such endpoint: {request.url.path} (see /docs)",
            405: f"{request.method} is not allowed on {request.url.path} (see /docs)",
        }.get(exc.status_code, str(exc.detail))
        return _error(exc.status_code, message, headers=exc.headers)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _error(500, f"the server failed on this request ({type(exc).__name__}); its log has the details")


def _validation_detail(problem: dict[str, Any], known: list[str]) -> dict[str, Any]:
    """One pydantic problem as {field, message}: the dotted field and a message that says what to send."""
    location = [str(part) for part in problem.get("loc", ())]
    kind = problem.get("type", "")
    if kind == "json_invalid":
        error = problem.get("ctx", {}).get("error", "")
        where = location[1] if len(location) > 1 else "?"
        return {"field": None, "message": f"the body is not valid JSON: {error} at character {where}"}
    field = ".".join(location[1:]) if location[:1] == ["body"] else ".".join(location)
    if not field:
        return {"field": None, "message": "send a JSON object as the body, e.g. " + _example(known)}
    message = problem.get("msg", "invalid")
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(location[-1], known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        message = f"unknown field.{hint} (valid fields: {', '.join(known)})"
    elif kind == "missing":
        message = "required field is missing"
    elif kind == "value_error":  # our own validators' messages, without pydantic's "Value error, "
        message = str(problem.get("ctx", {}).get("error", message))
    return {"field": field, "message": message}


def _example(known: list[str]) -> str:
    return '{"texts": ["..."]}' if "texts" in known else '{"text": "..."}' if "text" in known else "{...}"
