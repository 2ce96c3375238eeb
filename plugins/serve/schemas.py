"""The JSON bodies of the /v1 endpoints, as pydantic models: they are the OpenAPI schema too.

Request models forbid unknown fields, as a recipe refuses unknown keys, and carry the bounds of `Limits`,
so a request that is too large is refused with the field that is. The models are made per server by
`request_models(limits)`, since the bounds are the server's settings. (No `from __future__ import
annotations` here: pydantic reads the annotations of classes made inside a function.)
"""

import json
import math
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from transduce_builtins.serve.limits import Limits

#: A search option's name: what a recipe's `search` section could hold.
OPTION_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
#: Characters of a model name or search strategy name, and of a string option's value.
NAME_CHARS = 100
#: Options that are arguments of translate() rather than of the search strategy.
NOT_OPTIONS = {
    "batch_size": "the server picks its batches",
    "name": "give the strategy's name as the field 'search'",
    "search": "give the strategy's name as the field 'search'",
    "texts": "give the inputs as the field 'texts'",
}


def _unicode(text: str) -> str:
    """Refuse lone surrogates (JSON's "\\ud800" escapes can make them): they are not characters, no tokenizer
    reads them and no answer could be encoded in UTF-8 with them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"character {error.start:,} is a lone surrogate (U+{ord(text[error.start]):04X}), not a character: "
            "send valid Unicode"
        ) from None
    return text


def _option_value(value: Any) -> Any:
    """A search option's value as a recipe could hold it: true/false, a finite number, a short string or null."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value}")
    if isinstance(value, str) and len(value) > NAME_CHARS:
        raise ValueError(f"expected a string of at most {NAME_CHARS} characters, got {len(value):,}")
    if isinstance(value, str):
        _unicode(value)
    if value is not None and not isinstance(value, (bool, int, float, str)):
        raise ValueError(f"expected true/false, a number, a string or null, got {type(value).__name__}")
    return value


OptionValue = Annotated[
    Any,
    AfterValidator(_option_value),
    WithJsonSchema(
        {
            "anyOf": [{"type": t} for t in ("boolean", "integer", "number", "null")]
            + [{"type": "string", "maxLength": NAME_CHARS}]
        }
    ),
]
Name = Annotated[str, StringConstraints(min_length=1, max_length=NAME_CHARS), AfterValidator(_unicode)]


class Strict(BaseModel):
    """Unknown fields are refused (422 naming the field)."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class RequestModels:
    """The request bodies of one server (its Limits)."""

    translate: type[Strict]
    score: type[Strict]
    chat: type[Strict]


def request_models(limits: Limits) -> RequestModels:
    """The request models with `limits` as their bounds."""
    Text = Annotated[str, StringConstraints(max_length=limits.max_chars), AfterValidator(_unicode)]
    Texts = Annotated[list[Text], Field(min_length=1, max_length=limits.max_texts)]
    Options = Annotated[
        dict[Annotated[str, StringConstraints(pattern=OPTION_NAME)], OptionValue],
        Field(max_length=limits.max_options),
    ]

    class TranslateRequest(Strict):
        """Texts to translate, with an optional search strategy and its settings."""

        texts: Texts = Field(description="the inputs, in order; results come back in the same order")
        model: Name | None = Field(None, description="which served model (GET /v1/models); default: the first")
        search: Name | None = Field(None, description="search strategy (e.g. greedy, beam); default: the run's")
        options: Options = Field(
            default_factory=dict,
            description="the strategy's settings, validated as `--set search.KEY=VALUE` is, e.g. "
            '{"size": 5, "n_best": 3}; settings the run\'s strategy shares (max_length) carry over',
        )
        attention: StrictBool = Field(False, description="also return each result's attention rows and heat map SVG")

        @field_validator("options")
        @classmethod
        def _no_call_arguments(cls, options: dict[str, Any]) -> dict[str, Any]:
            for key in options:
                if key in NOT_OPTIONS:
                    raise ValueError(f"{key!r} is not a search option: {NOT_OPTIONS[key]}")
            return options

    class ScoreRequest(Strict):
        """Pairs to score: how probable the model finds each target given its source."""

        sources: Texts
        targets: Texts = Field(description="one per source")
        model: Name | None = None

    class ChatRequest(Strict):
        """One chat message; the reply uses the run's search strategy."""

        text: Text
        model: Name | None = None

    return RequestModels(TranslateRequest, ScoreRequest, ChatRequest)


def options_key(search: str | None, options: dict[str, Any]) -> str:
    """What decides a decoding: requests with equal keys may be decoded in one batch (True, 1 and 1.0 differ)."""
    return json.dumps([search, options], sort_keys=True)


def option_field(key: str) -> str:
    """The request field a RecipeError's key names: 'search.size' -> 'options.size', 'search' -> 'search'."""
    match = re.fullmatch(r"search\.(.+)", key)
    if match:
        return "search" if match.group(1) == "name" else f"options.{match.group(1)}"
    return key


class Alternative(BaseModel):
    """One candidate of an n-best list."""

    text: str
    tokens: list[str]
    score: float | None


class Translated(BaseModel):
    """One input's translation."""

    text: str
    tokens: list[str]
    source_tokens: list[str]
    score: float | None = Field(description="natural-log probability of the output (with </s>); null: none given")
    alternatives: list[Alternative] = Field(description="the n-best list, best first (the first is this result)")
    attention: list[list[float]] | None = Field(None, description="rows: output tokens (+ </s>), columns: source")
    heatmap_svg: str | None = Field(None, description="the attention heat map as an SVG picture")


class TranslateResponse(BaseModel):
    model: str
    results: list[Translated]


class ScoredPair(BaseModel):
    log_prob: float | None = Field(description="natural-log probability of the target plus </s>; null: empty source")
    tokens: int
    per_token: float | None


class ScoreResponse(BaseModel):
    model: str
    results: list[ScoredPair]


class ChatResponse(BaseModel):
    model: str
    reply: str


class ServedModel(BaseModel):
    name: str
    run: str = Field(description="the run directory's name")
    precision: str
    device: str
    search: dict[str, Any]
    metrics: dict[str, float]
    metrics_split: str | None
    source_language: str | None
    target_language: str | None
    recipe: dict[str, Any]


class ModelsResponse(BaseModel):
    models: list[ServedModel]


class Decoded(BaseModel):
    batches: int = Field(description="decoding calls made")
    items: int = Field(description="texts (or pairs) decoded in them")
    largest: int = Field(description="the most texts decoded in one call")


class Health(BaseModel):
    status: str
    models: list[str]
    waiting: int = Field(description="texts queued for decoding, all models together")
    decoded: dict[str, Decoded] = Field(description="per model: what its batcher decoded since the start")


class ErrorDetail(BaseModel):
    field: str | None
    message: str


class ErrorBody(BaseModel):
    status: int
    message: str
    field: str | None = Field(None, description="the request field at fault, dotted (texts.3, options.size)")
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    error: ErrorBody
