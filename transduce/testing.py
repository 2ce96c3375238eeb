"""The conformance kit: behavioural checks of a component against its family's contract.

A plugin author runs it in their own tests::

    from transduce.testing import assert_conforms
    assert_conforms(MyEncoder, hidden_size=8, layers=2)

and `transduce plugins --check` runs it over every installed component. Each
check builds the component with small sizes, feeds it generated inputs and
compares what it does with the contract in `transduce._plugins.contracts`; every
problem names the contract point and what was observed. A decoder network is
checked hardest, since search strategies trust it blindly: decoding step by step
must give the logits of teacher forcing, a sentence's logits must not depend on
its batch or on what padding holds, and a state reordered by `reorder_state` must
step as the reordered rows. Nothing is downloaded, the caller's random state is
left as it was, and a search strategy that never stops is cut off after a
bounded number of model steps.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import io
import math
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, NoReturn

import torch
from torch import nn

from transduce._model import assembly as pipeline
from transduce._model.model import Seq2Seq
from transduce._plugins.contracts import (
    BASES,
    FAMILIES,
    SPLITS,
    AttentionScorer,
    Component,
    DataSource,
    Decodable,
    DecoderNetwork,
    Encoder,
    EncoderOutput,
    Hypotheses,
    Memory,
    Metric,
    Optimizer,
    Schedule,
    Score,
    SearchStrategy,
    Tokenizer,
    map_tensors,
)
from transduce._plugins.params import Param, resolve_params
from transduce._plugins.registry import default_disagreements, discover
from transduce._recipe import recipe as recipes
from transduce._reports.report import Report
from transduce.errors import TransduceError

#: Sizes the core passes to model parts, by family; they are not declared as `Param`s.
SIZE_ARGUMENTS = {
    "encoder": ("input_size",),
    "attention": ("query_size", "key_size"),
    "decoder": ("embedding_dim", "vocab_size", "memory_size", "pad_index"),
}

#: Texts every tokenizer must round-trip (up to case and whitespace); the empty string included.
SAMPLE_TEXTS = (
    "",
    "hello world",
    "Hello, world!",
    "27 sep 1994",
    "it's 9:30 - isn't it?",
    "Ça va? 안녕하세요.",
)

#: Examples read per split of a data source: enough to see its behaviour, bounded for large corpora.
DATA_LIMIT = 1000

#: max_length given to a search strategy that declares one and was given none.
DECODE_MAX_LENGTH = 5

TOLERANCE = {"atol": 1e-5, "rtol": 1e-4}


@dataclass
class Conformance:
    """The outcome of checking one component class.

    problems: contract points that failed, each with what was observed; empty when it conforms.
    notes: what could not be checked and why (e.g. a required parameter was not given).
    partial: True when the behaviour was not checked, only the declarations (see `notes`).
    """

    component: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    partial: bool = False
    point: str = "constructing it"  # the contract point being checked, for messages about exceptions
    within: str = ""  # the setting every point is checked under now (e.g. "final=None"), added to each point

    @property
    def ok(self) -> bool:
        return not self.problems

    def unchecked(self, why: str) -> None:
        """Note that the behaviour could not be checked here, and why."""
        self.partial = True
        self.notes.append(f"behaviour not checked: {why}")

    def at(self, point: str) -> None:
        self.point = f"{point}, {self.within}" if self.within else point

    def fail(self, observed: str, point: str | None = None) -> None:
        self.problems.append(f"{point or self.point}: {observed}")


class ConformanceError(AssertionError):
    """Raised by `assert_conforms`; the message lists every problem."""


# --- entry points ----------------------------------------------------------------------------


def conformance(
    cls: type, params: Mapping[str, Any] | None = None, sizes: Mapping[str, int] | None = None
) -> Conformance:
    """Check `cls` against its family's contract, constructed with `params` (defaults filled in).

    `sizes`, for a decoder network only: `embedding_dim` and/or `memory_size` to build it with instead of the
    kit's (6 and 8), for settings that need particular sizes (e.g. tied embeddings).
    """
    label = f"{getattr(cls, 'family', '?')} {getattr(cls, 'name', getattr(cls, '__name__', cls))!r}"
    report = Conformance(label)
    if not _check_declarations(cls, report):
        return report
    network_sizes = _network_sizes(cls, sizes)
    given = dict(params or {})
    if cls.family == "search" and "max_length" in {p.name for p in cls.params}:
        given.setdefault("max_length", DECODE_MAX_LENGTH)  # short decodes keep the checks fast
    resolved = _resolve(cls, given, report)
    if resolved is None:
        return report
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        try:
            check = FAMILY_CHECKS.get(cls.family)
            if check is None:
                report.notes.append(f"only declarations checked: the kit has no behavioural checks for {cls.family}s")
            else:
                if cls.family == "decoder":
                    check = functools.partial(_decoder_network, sizes=network_sizes)
                with contextlib.redirect_stdout(io.StringIO()):  # a component's prints would garble listings
                    check(cls, resolved, report)
        except _Runaway as runaway:
            report.fail(str(runaway))
        except Exception as exc:  # any failure inside the component is a finding, not a crash of the kit
            report.fail(f"raised {type(exc).__name__}: {exc}")
    return report


def check_component(
    cls: type, params: Mapping[str, Any] | None = None, sizes: Mapping[str, int] | None = None
) -> list[str]:
    """The problems of `cls` (empty when it conforms); dispatches on its family."""
    return conformance(cls, params, sizes).problems


def _network_sizes(cls: type, sizes: Mapping[str, int] | None) -> dict[str, int]:
    """The sizes a decoder network is built with: the kit's, with the caller's embedding_dim and memory_size."""
    given = dict(sizes or {})
    if given and cls.family != "decoder":
        raise ValueError(f"sizes are given to decoder networks only, not to a {cls.family}")
    if unknown := set(given) - {"embedding_dim", "memory_size"}:
        raise ValueError(f"sizes takes embedding_dim and memory_size, not {sorted(unknown)}")
    return {**NETWORK_SIZES, **given}


def assert_conforms(cls: type, **params: Any) -> None:
    """For pytest: raise `ConformanceError` listing every problem unless `cls(**params)` conforms."""
    report = conformance(cls, params)
    if report.problems:
        lines = "\n".join(f"  - {problem}" for problem in report.problems)
        raise ConformanceError(f"{report.component} does not conform to its contract:\n{lines}")


def assert_discovered(family: str, name: str) -> type[Component]:
    """For pytest: the class installed plugins provide as `family` `name`, found through the entry-point
    group as `transduce` finds it; raise `ConformanceError` with the registry's reason (not installed,
    a name clash, an import error) otherwise."""
    registry = discover()
    info = registry.get(family, name) if family in FAMILIES else None
    if info is None:
        raise ConformanceError(registry.unknown_name_message(family, name))
    return info.cls


def _family_check(family: str) -> Callable[..., list[str]]:
    def check(cls: type, params: Mapping[str, Any] | None = None, sizes: Mapping[str, int] | None = None) -> list[str]:
        if getattr(cls, "family", None) != family:
            return [f"family: expected a {family} (a subclass of {BASES[family].__name__}), got {cls!r}"]
        return check_component(cls, params, sizes)

    check.__name__ = f"check_{family}"
    check.__doc__ = f"The problems of a {family} class (empty when it conforms)."
    return check


check_tokenizer = _family_check("tokenizer")
check_encoder = _family_check("encoder")
check_attention = _family_check("attention")
check_decoder = _family_check("decoder")
check_search = _family_check("search")
check_dataset = _family_check("dataset")
check_metric = _family_check("metric")
check_logger = _family_check("logger")
check_optimizer = _family_check("optimizer")
check_schedule = _family_check("schedule")


# --- declarations ------------------------------------------------------------------------------


def _check_declarations(cls: type, report: Conformance) -> bool:
    """What the registry and recipes rely on; False when the class cannot be checked further."""
    report.at("declaration")
    if not isinstance(cls, type) or not issubclass(cls, Component) or getattr(cls, "family", None) not in BASES:
        report.fail(f"expected a subclass of a transduce.api family base, got {cls!r}")
        return False
    if not issubclass(cls, BASES[cls.family]):
        report.fail(f"family is {cls.family!r} but the class does not subclass {BASES[cls.family].__name__}")
        return False
    if not isinstance(getattr(cls, "name", None), str) or not cls.name:
        report.fail("`name` must be a non-empty string")
    if not cls.description():
        report.fail("the class needs a docstring; its first line is the description `transduce plugins` shows")
    params = getattr(cls, "params", ())
    if not isinstance(params, (tuple, list)) or not all(isinstance(p, Param) for p in params):
        report.fail("`params` must be a tuple of transduce.api.Param")
        return False
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        report.fail(f"parameter names repeat: {names}")
    for param in params:
        if not param.required and (problem := param.problem(param.default)):
            report.fail(f"the default of {param.name!r} does not pass its own declaration: {problem}")
    _check_signature(cls, names, report)
    for problem in default_disagreements(cls):
        report.fail(problem)
    return report.ok


def _check_signature(cls: type, declared: list[str], report: Conformance) -> None:
    """The core calls cls(**sizes, **params): every declared name must be accepted, nothing else required."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return  # a constructor without a signature (e.g. in C) cannot be inspected; behaviour checks still run
    accepted = {
        name
        for name, p in signature.parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    sizes = SIZE_ARGUMENTS.get(cls.family, ())
    if not open_ended and (missing := [n for n in (*sizes, *declared) if n not in accepted]):
        report.fail(f"the constructor {signature} does not accept {missing}, which the core passes as keywords")
    extra = [
        name
        for name, p in signature.parameters.items()
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and name not in declared
        and name not in sizes
    ]
    if extra:
        report.fail(f"the constructor requires {extra}, which are neither declared Params nor sizes the core passes")


def _resolve(cls: type, given: dict[str, Any], report: Conformance) -> dict[str, Any] | None:
    """Given params with defaults filled in, or None (with a note) when a required one is missing."""
    missing = [p.name for p in cls.params if p.required and p.name not in given]
    if missing:
        report.unchecked(
            f"required parameter(s) {', '.join(missing)} not given "
            f"(pass them, e.g. check_component(cls, {{{missing[0]!r}: ...}}))"
        )
        return None

    def fail(key: str, message: str) -> NoReturn:
        raise ValueError(f"{key}: {message}")

    def nested(param: Param, value: Any) -> dict[str, Any]:
        """A component-valued parameter's name or mapping, resolved as a recipe resolves it."""
        spec = {"name": value} if isinstance(value, str) else value
        return recipes.resolve_component(discover(), str(param.family), spec, source=report.component)

    try:
        return resolve_params(cls.params, given, owner=report.component, fail=fail, nested=nested)
    except (ValueError, TransduceError) as exc:
        report.fail(str(exc), "parameters given to the kit")
        return None


def _construct(cls: type, params: dict[str, Any], report: Conformance, **sizes: int) -> Any:
    """cls(**sizes, **params), or None (with a note) where it cannot be built here for a reason of its own:
    an optional dependency that is not installed, or a data source that needs settings (a file) to exist."""
    report.at(f"constructing it as {cls.__name__}({', '.join(f'{k}={v!r}' for k, v in {**sizes, **params}.items())})")
    try:
        return cls(**sizes, **_with_builders(cls, params))
    except ImportError as exc:
        report.unchecked(f"an optional dependency is missing ({exc})")
    except ValueError as exc:
        if cls.family != "dataset":
            raise
        report.unchecked(f"it rejects these parameters ({exc}); pass ones it accepts")
    return None


def _with_builders(cls: type, params: dict[str, Any]) -> dict[str, Any]:
    """params with every component-valued one (Param.family) turned into the builder the core passes."""
    nested = [p for p in cls.params if p.family is not None and params.get(p.name) is not None]
    if not nested:
        return params
    registry, built = discover(), dict(params)
    for param in nested:
        key = f"{cls.name}.{param.name}"
        built[param.name] = functools.partial(pipeline.build, registry, param.family, params[param.name], key)
    return built


# --- tokenizer -----------------------------------------------------------------------------------


def _fit_corpus() -> Iterator[str]:
    """A one-pass stream of a few hundred lines for tokenizers that learn (the samples included)."""
    words = "the a date of june may march sep 1994 2001 27 3 new old world hello it is was day year".split()
    yield from SAMPLE_TEXTS
    for i in range(400):
        yield " ".join(words[(i * k + k) % len(words)] for k in range(1, 2 + i % 7))


def _loose(text: str) -> str:
    """Text up to case and whitespace: the normalisation a round trip may apply."""
    return "".join(text.split()).casefold()


def _tokenizer(cls: type[Tokenizer], params: dict[str, Any], report: Conformance) -> None:
    tokenizer = _construct(cls, params, report)
    if tokenizer is None:
        return
    if cls.fit is not Tokenizer.fit:
        with tempfile.TemporaryDirectory() as directory:
            report.at("fit(texts, directory) with a one-pass stream of texts")
            tokenizer.fit(_fit_corpus(), Path(directory))
            report.at("load(directory) into a new instance, after fit")
            loaded = cls(**params)
            loaded.load(Path(directory))
            for text in SAMPLE_TEXTS:
                if loaded.tokenize(text) != tokenizer.tokenize(text):
                    report.fail(f"{text!r} -> {tokenizer.tokenize(text)} after fit but {loaded.tokenize(text)}")
    for text in SAMPLE_TEXTS:
        report.at(f"tokenize({text!r})")
        tokens = tokenizer.tokenize(text)
        if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
            report.fail(f"expected a list of non-empty str, got {tokens!r}")
            continue
        report.at(f"round trip detokenize(tokenize({text!r}))")
        back = tokenizer.detokenize(tokens)
        if not isinstance(back, str) or _loose(back) != _loose(text):
            report.fail(f"expected the same text up to case and whitespace, got {back!r} (tokens {tokens!r})")
    report.at("detokenize([])")
    if (empty := tokenizer.detokenize([])) != "":
        report.fail(f"expected '', got {empty!r}")


# --- encoder -------------------------------------------------------------------------------------

ENCODER_INPUT = 6
LENGTHS = (3, 5, 1, 4)  # unsorted, one of length 1; the batch is padded to the longest


def _encoder(cls: type[Encoder], params: dict[str, Any], report: Conformance) -> None:
    encoder = _construct(cls, params, report, input_size=ENCODER_INPUT)
    if encoder is None:
        return
    report.at("output_size and layers")
    size, layers = getattr(encoder, "output_size", None), getattr(encoder, "layers", None)
    if not (isinstance(size, int) and size >= 1 and isinstance(layers, int) and layers >= 1):
        report.fail(f"the constructor must set positive integers, got output_size={size!r}, layers={layers!r}")
        return
    encoder.eval()
    lengths = torch.tensor(LENGTHS)
    embedded = torch.randn(len(LENGTHS), max(LENGTHS), ENCODER_INPUT)
    for row, length in enumerate(LENGTHS):
        embedded[row, length:] = 100.0  # padding holds garbage: it must not leak into a sequence's outputs
    report.at(f"forward(embedded (4, 5, {ENCODER_INPUT}), unsorted lengths {list(LENGTHS)})")
    with torch.no_grad():
        batch = _encoder_output(encoder(embedded, lengths), len(LENGTHS), max(LENGTHS), size, layers, report)
        if batch is None:
            return
        states, final = batch
        for row, length in enumerate(LENGTHS):
            report.at(f"forward of sequence {row} alone (batch size 1, length {length})")
            alone = _encoder_output(
                encoder(embedded[row : row + 1, :length], lengths[row : row + 1]), 1, length, size, layers, report
            )
            if alone is None:
                return
            report.at("padding invariance")
            same = [("states", states[row, :length], alone.states[0])]
            same += [
                (f"final state tensor {i}", in_batch[:, row], by_itself[:, 0])
                for i, (in_batch, by_itself) in enumerate(zip(_tensors(final), _tensors(alone.final), strict=True))
            ]
            for what, in_batch, by_itself in same:
                if not torch.allclose(in_batch, by_itself, **TOLERANCE):
                    report.fail(
                        f"sequence {row} (length {length}) gets different {what} in a padded batch than alone "
                        f"(max difference {(in_batch - by_itself).abs().max().item():.3g}); use `lengths`, "
                        "e.g. pack_padded_sequence(..., enforce_sorted=False)"
                    )
        _encoder_reduced_products(encoder, embedded, lengths, batch, report)
    _encoder_gradients(encoder, embedded, lengths, report)


def _encoder_reduced_products(
    encoder: Encoder, embedded: torch.Tensor, lengths: torch.Tensor, exact: EncoderOutput, report: Conformance
) -> None:
    """The bf16 and int8 decoding paths: within reduced_products, the shapes and dtypes of float32 and values
    close to them (bfloat16 keeps about 3 significant digits)."""
    for dtype in (torch.bfloat16, torch.int8):
        report.at(f"forward within reduced_products({dtype}) (bf16 and int8 decoding on the CPU)")
        with encoder.reduced_products(dtype):
            output = encoder(embedded, lengths)
        reduced = _encoder_output(output, *exact.states.shape[:2], exact.states.size(2), encoder.layers, report)
        if reduced is None:
            return
        pairs = [("states", reduced.states, exact.states)]
        pairs += [
            (f"final state tensor {i}", mine, theirs)
            for i, (mine, theirs) in enumerate(zip(_tensors(reduced.final), _tensors(exact.final), strict=True))
        ]
        for what, mine, theirs in pairs:
            if mine.dtype != theirs.dtype:
                report.fail(f"{what} come back as {mine.dtype}, expected float32's {theirs.dtype}")
            elif what == "states":
                real = torch.arange(mine.size(1)) < lengths.unsqueeze(1)  # padding may hold anything
                mine, theirs = mine[real], theirs[real]
            if mine.dtype == theirs.dtype and not torch.allclose(mine, theirs, atol=REDUCED_TOLERANCE, rtol=0):
                report.fail(
                    f"{what} differ from float32's by {(mine - theirs).abs().max().item():.3g}, more than "
                    f"{REDUCED_TOLERANCE} (compute in float32 there, or in bfloat16 keeping float32 states)"
                )


#: How far an encoder's outputs within reduced_products may be from float32's (bfloat16 products).
REDUCED_TOLERANCE = 5e-2


def _encoder_output(
    output: Any, batch: int, length: int, size: int, layers: int, report: Conformance
) -> EncoderOutput | None:
    """The output unpacked if its shapes follow the contract; None (after failing) otherwise."""
    try:
        states, final = output
    except (TypeError, ValueError):
        report.fail(f"expected EncoderOutput(states, final), got {type(output).__name__}")
        return None
    checked = [("states", (batch, length, size), "(batch, src_len, output_size)", states)]
    checked += [
        (f"final state tensor {i}", (layers, batch, size), "(layers, batch, output_size)", tensor)
        for i, tensor in enumerate(_tensors(final))
    ]
    ok = True
    for what, shape, axes, tensor in checked:
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape:
            observed = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            report.fail(f"{what} must be {axes} = {shape}, got {observed}")
            ok = False
        elif not torch.isfinite(tensor).all():
            report.fail(f"{what} holds NaN or infinite values")
            ok = False
    return EncoderOutput(states, final) if ok else None


def _tensors(structure: Any) -> list[torch.Tensor]:
    """Every tensor in a structure (an encoder's final state: a tensor, tuples of them, or None), in order."""
    found: list[torch.Tensor] = []
    map_tensors(found.append, structure)
    return found


def _encoder_gradients(encoder: Encoder, embedded: torch.Tensor, lengths: torch.Tensor, report: Conformance) -> None:
    report.at("gradients")
    encoder.train()
    embedded = embedded.clone().requires_grad_(True)
    with torch.enable_grad():
        states, final = encoder(embedded, lengths)
        mask = torch.arange(states.size(1)).unsqueeze(0) < lengths.unsqueeze(1)
        loss = states[mask].sum() + sum(t.sum() for t in _tensors(final) if t.requires_grad)
        if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
            report.fail("the outputs do not depend on the input or the parameters (no autograd graph)")
            return
        loss.backward()
    if embedded.grad is None or not embedded.grad.abs().sum() > 0:
        report.fail("no gradient reaches the embedded input, so the embeddings would not train")
    _report_parameters_without_gradient(encoder, report)


def _report_parameters_without_gradient(module: nn.Module, report: Conformance) -> None:
    idle = [name for name, p in module.named_parameters() if p.requires_grad and p.grad is None]
    if idle:
        report.fail(f"parameters get no gradient: {', '.join(idle)}")


# --- attention -----------------------------------------------------------------------------------

BATCH, SOURCE_LENGTH, TARGET_LENGTH = 3, 5, 4
ATTENTION_SIZES = ((8, 8), (6, 10))  # equal query and key sizes, then different ones


def _attention(cls: type[AttentionScorer], params: dict[str, Any], report: Conformance) -> None:
    for query_size, key_size in ATTENTION_SIZES:
        try:
            scorer = _construct(cls, params, report, query_size=query_size, key_size=key_size)
        except ValueError as exc:
            if query_size == key_size:
                raise
            report.notes.append(f"rejects query_size {query_size} != key_size {key_size}: {exc}")
            continue
        if scorer is None:
            return
        _attention_sizes(scorer.eval(), query_size, key_size, report)
        _attention_gradients(scorer.train(), query_size, key_size, report)


def _attention_sizes(scorer: AttentionScorer, query_size: int, key_size: int, report: Conformance) -> None:
    sizes = f"(query_size={query_size}, key_size={key_size})"
    keys = torch.randn(BATCH, SOURCE_LENGTH, key_size)
    query = torch.randn(BATCH, TARGET_LENGTH, query_size)
    with torch.no_grad():
        report.at(f"prepare(keys (3, 5, {key_size})) {sizes}")
        prepared = scorer.prepare(keys)
        if not isinstance(prepared, torch.Tensor) or prepared.dim() == 0 or prepared.size(0) != BATCH:
            observed = tuple(prepared.shape) if isinstance(prepared, torch.Tensor) else type(prepared).__name__
            report.fail(f"expected a batch-first tensor (first dimension {BATCH}), got {observed}")
            return
        order = torch.tensor([2, 0])
        if not torch.allclose(scorer.prepare(keys[order]), prepared[order], **TOLERANCE):
            report.fail("prepare(keys[rows]) differs from prepare(keys)[rows]: rows must be independent")
        report.at(f"score(query (3, 4, {query_size}), prepared) {sizes}")
        scores = scorer.score(query, prepared)
        expected = (BATCH, TARGET_LENGTH, SOURCE_LENGTH)
        if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != expected:
            observed = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
            report.fail(f"scores must be (batch, tgt_len, src_len) = {expected}, got {observed}")
            return
        if not torch.isfinite(scores).all():
            report.fail("scores hold NaN or infinite values (the core masks padding itself)")
        report.at(f"scoring one query position at a time {sizes}")
        steps = torch.cat([scorer.score(query[:, t : t + 1], prepared) for t in range(TARGET_LENGTH)], dim=1)
        if tuple(steps.shape) != expected or not torch.allclose(steps, scores, **TOLERANCE):
            report.fail("scores of positions taken one at a time (decoding) differ from all at once (training)")
        report.at(f"scoring rows selected from the batch (Memory.select, beam search) {sizes}")
        if not torch.allclose(scorer.score(query[order], prepared[order]), scores[order], **TOLERANCE):
            report.fail("scores of selected rows differ from the same rows scored in the full batch")
        report.at(f"batch size 1, one source and one target position {sizes}")
        single = scorer.score(torch.randn(1, 1, query_size), scorer.prepare(torch.randn(1, 1, key_size)))
        if tuple(single.shape) != (1, 1, 1):
            report.fail(f"expected scores (1, 1, 1), got {tuple(single.shape)}")


def _attention_gradients(scorer: AttentionScorer, query_size: int, key_size: int, report: Conformance) -> None:
    report.at(f"gradients (query_size={query_size}, key_size={key_size})")
    keys = torch.randn(BATCH, SOURCE_LENGTH, key_size, requires_grad=True)
    query = torch.randn(BATCH, TARGET_LENGTH, query_size, requires_grad=True)
    with torch.enable_grad():
        scores = scorer.score(query, scorer.prepare(keys))
        if not scores.requires_grad:
            report.fail("the scores do not depend on the query, the keys or the parameters (no autograd graph)")
            return
        (scores * torch.randn_like(scores)).sum().backward()  # random weights: a plain sum can cancel out
    for what, tensor in (("query", query), ("keys", keys)):
        if tensor.grad is None:
            report.fail(f"no gradient reaches the {what}")
    _report_parameters_without_gradient(scorer, report)


# --- search strategy -----------------------------------------------------------------------------

PAD, BOS, EOS, VOCAB = 0, 2, 3, 12
DECODE_LENGTHS = (3, 5, 2, 4)
NEVER, ALWAYS = -1e4, 1e4


class _Runaway(BaseException):
    """Raised from the probe model's `step` when a search strategy does not stop (BaseException,
    so a strategy's own `except Exception` cannot swallow it)."""


class _ProbeEncoder(Encoder):
    """A small deterministic encoder: a linear map, and no final state (the probe decoder needs none)."""

    name = "probe"

    def __init__(self, input_size: int, size: int = 8) -> None:
        super().__init__()
        self.output_size, self.layers = size, 1
        self.linear = nn.Linear(input_size, size)

    def forward(self, embedded: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        return EncoderOutput(torch.tanh(self.linear(embedded)), None)


class _ProbeDecoder(DecoderNetwork):
    """A GRU cell with dot attention. Its state is {"hidden": (1, rows, size)}, not batch first, so a search
    strategy that reorders a state itself instead of through model.reorder_state breaks on it."""

    name = "probe"

    def __init__(self, embedding_dim: int, vocab_size: int, memory_size: int, pad_index: int, attention: bool) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)
        self.cell = nn.GRUCell(embedding_dim, memory_size)
        self.output = nn.Linear(2 * memory_size, vocab_size)
        self.attention = attention

    def start(self, memory: Memory) -> dict[str, torch.Tensor]:
        mask = memory.mask.unsqueeze(-1).to(memory.states.dtype)
        return {"hidden": ((memory.states * mask).sum(1) / mask.sum(1)).unsqueeze(0)}

    def reorder_state(self, state: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"hidden": state["hidden"].index_select(1, index)}

    def step(
        self, tokens: torch.Tensor, state: dict[str, torch.Tensor], memory: Memory
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor | None]:
        rows, batch = tokens.size(0), memory.batch_size
        hidden = self.cell(self.embedding(tokens), state["hidden"][0])
        scores = torch.bmm(hidden.view(batch, rows // batch, -1), memory.states.transpose(1, 2))
        weights = torch.softmax(scores.masked_fill(~memory.mask.unsqueeze(1), float("-inf")), dim=-1)
        context = torch.bmm(weights, memory.states).view(rows, -1)
        logits = self.output(torch.cat([hidden, context], dim=-1))
        return logits, {"hidden": hidden.unsqueeze(0)}, weights.view(rows, -1) if self.attention else None


class _ProbeModel(Seq2Seq):
    """A tiny random Seq2Seq whose output bias decides when `</s>` comes, and which counts its steps."""

    def __init__(self, eos_bias: float, max_steps: int, attention: bool = True) -> None:
        decoder = _ProbeDecoder(embedding_dim=8, vocab_size=VOCAB, memory_size=8, pad_index=PAD, attention=attention)
        super().__init__(source_vocab_size=VOCAB, encoder=_ProbeEncoder(8), decoder=decoder, embedding_dim=8)
        with torch.no_grad():
            decoder.output.bias[PAD] = decoder.output.bias[BOS] = NEVER  # a trained model never predicts these
            decoder.output.bias[EOS] = eos_bias
        self.steps, self.max_steps = 0, max_steps
        self.eval()

    def step(self, tokens: torch.Tensor, state: Any, memory: Memory) -> tuple[torch.Tensor, Any, torch.Tensor | None]:
        self.steps += 1
        if self.steps > self.max_steps:
            raise _Runaway(
                f"decode called model.step more than {self.max_steps} times for "
                f"{len(DECODE_LENGTHS)} sentences; it was cut off there"
            )
        return super().step(tokens, state, memory)


def _probe(eos_bias: float, max_length: int, attention: bool = True) -> tuple[_ProbeModel, Memory]:
    """A probe model and the encoded memory of a fixed random batch."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = _ProbeModel(eos_bias, max_steps=20 * (max_length + 2) * len(DECODE_LENGTHS), attention=attention)
        source = torch.randint(4, VOCAB, (len(DECODE_LENGTHS), max(DECODE_LENGTHS)))
    lengths = torch.tensor(DECODE_LENGTHS)
    for row, length in enumerate(DECODE_LENGTHS):
        source[row, length:] = PAD
    with torch.no_grad():
        return model, model.encode(source, lengths)


def _search(cls: type[SearchStrategy], params: dict[str, Any], report: Conformance) -> None:
    if "max_length" not in params:
        report.fail("declares no `max_length` Param; the contract requires stopping by max_length", "declaration")
    max_length = params.get("max_length") or DECODE_MAX_LENGTH
    strategy = _construct(cls, params, report)
    if strategy is None:
        return

    report.at("decode with a random model")
    model, memory = _probe(0.0, max_length)
    first = _hypotheses(_seeded(strategy.decode, model, memory), len(DECODE_LENGTHS), max_length, report)
    if first is None:
        return
    report.at("determinism")
    model.steps = 0
    if _seeded(strategy.decode, model, memory).tokens != first:
        report.fail("two decodes of the same batch (same torch seed) give different hypotheses")
    report.at("each sentence decoded alone (batch size 1)")
    for row in range(len(DECODE_LENGTHS)):
        model.steps = 0
        alone = _hypotheses(_seeded(strategy.decode, model, memory.select(torch.tensor([row]))), 1, max_length, report)
        if alone is not None and alone[0] != first[row]:
            report.fail(f"sentence {row} gives {alone[0]} alone but {first[row]} in the batch")

    report.at("stops by max_length (a model that never predicts </s>)")
    model, memory = _probe(NEVER, max_length)
    endless = _hypotheses(strategy.decode(model, memory), len(DECODE_LENGTHS), max_length, report)
    if endless is not None and any(len(tokens) != max_length for tokens in endless):
        report.fail(f"expected {max_length} tokens per sentence, got lengths {[len(t) for t in endless]}")

    report.at("stops at </s> and leaves it out (a model that predicts </s> first)")
    model, memory = _probe(ALWAYS, max_length)
    ended = _hypotheses(strategy.decode(model, memory), len(DECODE_LENGTHS), max_length, report)
    if ended is not None and any(ended):
        report.fail(f"expected an empty hypothesis for every sentence, got {ended}")

    report.at("decode with a decoder network that has no attention (step gives None)")
    model, memory = _probe(0.0, max_length, attention=False)
    _hypotheses(strategy.decode(model, memory), len(DECODE_LENGTHS), max_length, report)


def _seeded(decode: Callable[[Decodable, Memory], Hypotheses], model: Seq2Seq, memory: Memory) -> Hypotheses:
    torch.manual_seed(0)
    return decode(model, memory)


def _hypotheses(result: Any, batch: int, max_length: int, report: Conformance) -> list[list[int]] | None:
    """The token lists if `result` follows the Hypotheses contract; None (after failing) otherwise."""
    tokens = getattr(result, "tokens", None)
    if not isinstance(result, Hypotheses) or not isinstance(tokens, list) or len(tokens) != batch:
        size = len(tokens) if isinstance(tokens, list) else "no"
        report.fail(f"expected Hypotheses with one token list per sentence ({batch}), got {size} ({result!r:.80})")
        return None
    ok = True
    for row, sentence in enumerate(tokens):
        if not isinstance(sentence, list) or not all(isinstance(t, int) for t in sentence):
            report.fail(f"sentence {row}: expected a list of int token ids, got {sentence!r:.80}")
            ok = False
        elif bad := [t for t in sentence if not 0 <= t < VOCAB]:
            report.fail(f"sentence {row}: token ids {bad} are outside the vocabulary (size {VOCAB})")
            ok = False
        elif BOS in sentence or EOS in sentence:
            report.fail(f"sentence {row}: {sentence} holds <s> ({BOS}) or </s> ({EOS}); leave them out")
            ok = False
        elif len(sentence) > max_length:
            report.fail(f"sentence {row}: {len(sentence)} tokens, more than max_length={max_length}")
            ok = False
    if ok and result.attention is not None:
        ok = _check_attention_rows(result.attention, tokens, report)
    return tokens if ok else None


def _check_attention_rows(attention: Any, tokens: list[list[int]], report: Conformance) -> bool:
    if not isinstance(attention, list) or len(attention) != len(tokens):
        report.fail(f"attention must be None or one tensor per sentence, got {type(attention).__name__}")
        return False
    for row, (weights, sentence) in enumerate(zip(attention, tokens, strict=True)):
        shape = tuple(weights.shape) if isinstance(weights, torch.Tensor) else None
        if shape is None or len(shape) != 2 or shape[0] not in (len(sentence), len(sentence) + 1):
            report.fail(
                f"sentence {row}: attention must be (out_len, src_len) with out_len {len(sentence)} "
                f"(or one more row for </s>), got {shape or type(weights).__name__}"
            )
            return False
    return True


# --- decoder network -----------------------------------------------------------------------------

#: Sizes the kit builds a decoder network with: E, V, K and the padding index (0, as the core's vocabularies).
NETWORK_SIZES = {"embedding_dim": 6, "vocab_size": VOCAB, "memory_size": 8, "pad_index": PAD}
TARGET_LENGTHS = (4, 2, 6, 3)  # one per sentence of LENGTHS; the batch is padded to the longest
FINAL_LAYERS = 2
GARBAGE = 100.0  # what padded source positions hold: it must not reach a real position's logits


def _decoder_network(
    cls: type[DecoderNetwork], params: dict[str, Any], report: Conformance, sizes: Mapping[str, int] = NETWORK_SIZES
) -> None:
    network = _construct(cls, params, report, **sizes)
    if network is None:
        return
    network.eval()
    for final in ("(h, c)", None):
        report.within = f"final={final}"
        memory, target = _network_batch(final, sizes["memory_size"])
        with torch.no_grad():
            report.at("prepare(memory)")
            prepared = network.prepare(memory)
            if not _is_memory(prepared, memory.batch_size, report):
                return
            report.at("forward(target_in (4, 6), memory)")
            logits = network(target, prepared)
            if not _logits_ok(logits, (*target.shape, VOCAB), "logits", report):
                return
            _check_positions(network, target, prepared, logits, report)
            _check_steps(network, target, prepared, logits, report)
            _check_alone(network, memory, target, logits, report)
            _check_padding(network, memory, target, logits, report)
            _check_reorder(network, target, prepared, report)
            _check_reduced_products(network, target, prepared, report)
            _check_restricted_output(network, target, prepared, report)
    report.within = ""
    _network_gradients(network, sizes["memory_size"], report)


def _network_batch(final: str | None, size: int) -> tuple[Memory, torch.Tensor]:
    """A memory of 4 sentences of LENGTHS, states (4, 5, size) with garbage at padding, final (h, c) of
    FINAL_LAYERS layers or None; target_in (4, 6) starting with <s>, padded after TARGET_LENGTHS."""
    batch = len(LENGTHS)
    states = torch.randn(batch, max(LENGTHS), size)
    mask = torch.arange(max(LENGTHS)).unsqueeze(0) < torch.tensor(LENGTHS).unsqueeze(1)
    states[~mask] = GARBAGE
    state = (torch.randn(FINAL_LAYERS, batch, size), torch.randn(FINAL_LAYERS, batch, size))
    target = torch.randint(4, VOCAB, (batch, max(TARGET_LENGTHS)))
    target[:, 0] = BOS
    target[_target_padding()] = PAD
    return Memory(states, mask, state if final else None), target


def _target_padding() -> torch.Tensor:
    """(4, 6) bool, True past each sentence's target length."""
    return torch.arange(max(TARGET_LENGTHS)).unsqueeze(0) >= torch.tensor(TARGET_LENGTHS).unsqueeze(1)


def _is_memory(memory: Any, batch: int, report: Conformance) -> bool:
    if not isinstance(memory, Memory):
        report.fail(f"expected a Memory (memory.with_prepared(...)), got {type(memory).__name__}")
        return False
    bad = [name for name, t in memory.prepared.items() if not isinstance(t, torch.Tensor) or t.size(0) != batch]
    if bad:
        report.fail(f"prepared tensors must be batch first (dimension 0 = {batch}): {bad}; Memory.select reorders them")
    return not bad


def _logits_ok(logits: Any, shape: tuple[int, ...], what: str, report: Conformance) -> bool:
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != shape:
        observed = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        report.fail(f"{what} must be {shape}, got {observed}")
        return False
    if not torch.isfinite(logits).all():
        report.fail(f"{what} hold NaN or infinite values")
        return False
    return True


def _differs(observed: torch.Tensor, expected: torch.Tensor) -> str | None:
    """None when close, else the largest difference, for messages."""
    if observed.shape == expected.shape and torch.allclose(observed, expected, **TOLERANCE):
        return None
    if observed.shape != expected.shape:
        return f"shapes {tuple(observed.shape)} and {tuple(expected.shape)}"
    return f"max difference {(observed - expected).abs().max().item():.3g}"


def _check_positions(
    network: DecoderNetwork, target: torch.Tensor, memory: Memory, logits: torch.Tensor, report: Conformance
) -> None:
    report.at("forward(target_in, memory, positions): only the logits at the real target positions")
    real = ~_target_padding()
    selected = network(target, memory, real)
    if _logits_ok(selected, (int(real.sum()), VOCAB), "logits at positions", report):
        if difference := _differs(selected, logits[real]):
            report.fail(f"they differ from forward(target_in, memory)[positions] ({difference})")


def _check_steps(
    network: DecoderNetwork, target: torch.Tensor, memory: Memory, logits: torch.Tensor, report: Conformance
) -> None:
    report.at("start(memory), then step(tokens, state, memory) over target_in, one position at a time")
    state, real = network.start(memory), ~_target_padding()
    for position in range(target.size(1)):
        step_logits, state, attention = network.step(target[:, position], state, memory)
        if not _logits_ok(step_logits, (target.size(0), VOCAB), f"step {position}'s logits", report):
            return
        rows = real[:, position]
        if difference := _differs(step_logits[rows], logits[rows, position]):
            report.fail(
                f"position {position}: step's logits differ from forward's (teacher forcing) ({difference}); "
                "both paths must compute the same function"
            )
            return
        if not _attention_ok(attention, memory, target.size(0), report):
            return


def _attention_ok(attention: Any, memory: Memory, rows: int, report: Conformance) -> bool:
    """None, or (rows, src_len) weights with nothing on padded source positions."""
    if attention is None:
        return True
    shape = (rows, memory.mask.size(1))
    if not isinstance(attention, torch.Tensor) or tuple(attention.shape) != shape:
        observed = tuple(attention.shape) if isinstance(attention, torch.Tensor) else type(attention).__name__
        report.fail(f"step's attention must be None or (rows, src_len) = {shape}, got {observed}")
        return False
    mask = memory.mask.repeat_interleave(rows // memory.batch_size, dim=0)
    if attention.masked_fill(mask, 0.0).abs().max() > 0:
        report.fail("step's attention puts weight on padded source positions (mask them before the softmax)")
        return False
    return True


def _check_alone(
    network: DecoderNetwork, memory: Memory, target: torch.Tensor, logits: torch.Tensor, report: Conformance
) -> None:
    lengths = TARGET_LENGTHS
    for row, (length, source) in enumerate(zip(lengths, LENGTHS, strict=True)):
        report.at(f"sentence {row} alone (batch size 1, source length {source}, no padding)")
        index = torch.tensor([row])
        alone = memory.select(index)
        alone = Memory(alone.states[:, :source], alone.mask[:, :source], alone.final)
        by_itself = network(target[row : row + 1, :length], network.prepare(alone))
        if difference := _differs(by_itself[0], logits[row, :length]):
            report.fail(f"its logits differ from those it gets in a padded batch ({difference})")


def _check_padding(
    network: DecoderNetwork, memory: Memory, target: torch.Tensor, logits: torch.Tensor, report: Conformance
) -> None:
    real = ~_target_padding()
    report.at("padding never leaks: other values at the padded source positions")
    states = memory.states.clone()
    states[~memory.mask] = -GARBAGE * torch.rand_like(states[~memory.mask])
    changed = network(target, network.prepare(Memory(states, memory.mask, memory.final)))
    if difference := _differs(changed[real], logits[real]):
        report.fail(f"the logits at real target positions change ({difference}); mask the padded positions")
    report.at("padding never leaks: other tokens at the padded target positions")
    tokens = target.clone()
    tokens[~real] = torch.randint(4, VOCAB, (int((~real).sum()),))
    changed = network(tokens, network.prepare(memory))
    if difference := _differs(changed[real], logits[real]):
        report.fail(f"the logits at real target positions change ({difference}): a position may only read earlier ones")


def _check_reorder(network: DecoderNetwork, target: torch.Tensor, memory: Memory, report: Conformance) -> None:
    """A state two steps in, reordered by reorder_state, must step as the reordered rows of the original."""
    report.at("reorder_state after two steps")
    state = network.start(memory)
    for position in range(2):
        _, state, _ = network.step(target[:, position], state, memory)
    tokens = target[:, 2]
    expected, _, expected_attention = network.step(tokens, state, memory)
    batch = memory.batch_size
    cases = {
        "sentences reordered ([2, 0, 3, 1], memory.select alike)": (torch.tensor([2, 0, 3, 1]), True),
        "finished sentences dropped ([3, 1], memory.select alike)": (torch.tensor([3, 1]), True),
        "each row repeated twice (2 beams sharing a memory row)": (torch.arange(batch).repeat_interleave(2), False),
    }
    for case, (index, select) in cases.items():
        report.at(f"reorder_state: {case}")
        rows_memory = memory.select(index) if select else memory
        logits, _, attention = network.step(tokens[index], network.reorder_state(state, index), rows_memory)
        if difference := _differs(logits, expected[index]):
            report.fail(f"stepping the reordered state differs from reordering the step's rows ({difference})")
        elif (attention is None) != (expected_attention is None) or (
            attention is not None and _differs(attention, expected_attention[index])
        ):
            report.fail("the attention of the reordered state differs from the reordered rows' attention")


def _check_reduced_products(network: DecoderNetwork, target: torch.Tensor, memory: Memory, report: Conformance) -> None:
    """The bf16 decoding path: within reduced_products(bfloat16), step still answers in the memory's dtype."""
    report.at("step within reduced_products(torch.bfloat16) (bf16 decoding on the CPU)")
    with network.reduced_products(torch.bfloat16):
        if not isinstance(network.product_dtype, torch.dtype):
            report.fail(f"product_dtype must be a torch.dtype, got {network.product_dtype!r}")
        logits, _, _ = network.step(target[:, 0], network.start(memory), memory)
    if _logits_ok(logits, (target.size(0), VOCAB), "logits", report) and logits.dtype != memory.states.dtype:
        report.fail(f"logits come back as {logits.dtype}, expected the memory's {memory.states.dtype}")


#: The target tokens of the kit's vocabulary shortlist: the specials and a few others, in order.
SHORTLIST = (0, 1, 2, 3, 5, 8, 11)


def _check_restricted_output(
    network: DecoderNetwork, target: torch.Tensor, memory: Memory, report: Conformance
) -> None:
    """A vocabulary shortlist: within restricted_output(candidates), step gives the whole layer's logits of the
    candidates, in their order (or, not restricting, all of them)."""
    report.at(f"step within restricted_output({list(SHORTLIST)}) (a vocabulary shortlist)")
    candidates = torch.tensor(SHORTLIST)
    whole, _, _ = network.step(target[:, 0], network.start(memory), memory)
    with network.restricted_output(candidates):
        logits, _, _ = network.step(target[:, 0], network.start(memory), memory)
    expected = whole if isinstance(logits, torch.Tensor) and logits.size(-1) == VOCAB else whole[:, candidates]
    if _logits_ok(logits, tuple(expected.shape), "logits", report) and (difference := _differs(logits, expected)):
        report.fail(f"the logits differ from the whole output layer's logits of the candidates ({difference})")


def _network_gradients(network: DecoderNetwork, memory_size: int, report: Conformance) -> None:
    report.at("gradients (training mode, forward)")
    network.train()
    memory, target = _network_batch("(h, c)", memory_size)
    states = memory.states.clone().masked_fill(~memory.mask.unsqueeze(-1), 0.0).requires_grad_(True)
    final = tuple(tensor.requires_grad_(True) for tensor in memory.final)
    with torch.enable_grad():
        logits = network(target, network.prepare(Memory(states, memory.mask, final)), ~_target_padding())
        (logits * torch.randn_like(logits)).sum().backward()
    if not any(t.grad is not None and t.grad.abs().sum() > 0 for t in (states, *final)):
        report.fail("no gradient reaches the memory (states or final): the decoder does not read the source")
    _report_parameters_without_gradient(network, report)


# --- data source -------------------------------------------------------------------------------


def _dataset(cls: type[DataSource], params: dict[str, Any], report: Conformance) -> None:
    source = _construct(cls, params, report)
    if source is None:
        return
    for name in SPLITS:
        report.at(f"split({name!r})")
        first = list(islice(source.split(name), DATA_LIMIT))
        bad = [example for example in first if not _is_example(example)]
        if bad:
            report.fail(f"expected Example(source: str, target: str) items, got {bad[0]!r:.80}")
            continue
        if name == "train" and not first:
            report.fail("the train split is empty")
        if list(islice(source.split(name), DATA_LIMIT)) != first:
            report.fail("a second call gives different examples: splits must be deterministic")
        if name == "train" and list(islice(cls(**params).split(name), DATA_LIMIT)) != first:
            report.fail("a new instance with the same parameters gives different examples")
    report.at("notes()")
    notes = source.notes()
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        report.fail(f"expected a list of str, got {notes!r:.80}")
    report.notes.append(f"read_file not checked (its format is the source's own); at most {DATA_LIMIT} per split read")


def _is_example(item: Any) -> bool:
    return isinstance(item, tuple) and len(item) == 2 and all(isinstance(text, str) for text in item)


# --- metric --------------------------------------------------------------------------------------

SCALE_SLACK = 1e-6  # floating-point noise, e.g. sacrebleu's BLEU of 100.00000000000004
REFERENCES = ("1994-09-27", "the cat sat on the mat", "2001-06-03", "hello world", "a b c d e f g")


def _metric(cls: type[Metric], params: dict[str, Any], report: Conformance) -> None:
    metric = _construct(cls, params, report)
    if metric is None:
        return
    report.at("higher_is_better")
    if not isinstance(cls.higher_is_better, bool):
        report.fail(f"expected a bool, got {cls.higher_is_better!r}")
        return
    references = list(REFERENCES)
    cases = {
        "perfect hypotheses": references,
        "empty hypotheses": [""] * len(references),
        "hypotheses paired with the wrong references": references[1:] + references[:1],
    }
    values = {}
    for case, hypotheses in cases.items():
        report.at(f"compute on {case}")
        values[case] = _score_value(metric.compute(hypotheses, references), report)
    report.at("compute([], []) on an empty list")
    _score_value(metric.compute([], []), report)
    if any(value is None for value in values.values()):
        return
    report.at("perfect hypotheses score best")
    best = max if cls.higher_is_better else min
    perfect = values["perfect hypotheses"]
    worse = {case: value for case, value in values.items() if best(value, perfect) != perfect}
    if worse or values["empty hypotheses"] == perfect:
        direction = "higher" if cls.higher_is_better else "lower"
        report.fail(
            f"with higher_is_better={cls.higher_is_better}, perfect hypotheses ({perfect:g}) must score {direction} "
            f"than {', '.join(f'{case} ({value:g})' for case, value in values.items() if case != 'perfect hypotheses')}"
        )


def _score_value(score: Any, report: Conformance) -> float | None:
    if not isinstance(score, Score) or not isinstance(score.value, (int, float)) or isinstance(score.value, bool):
        report.fail(f"expected a Score with a numeric value, got {score!r:.80}")
        return None
    if not math.isfinite(score.value) or not -SCALE_SLACK <= score.value <= 100.0 + SCALE_SLACK:
        report.fail(f"the value must be on the 0-100 scale, got {score.value!r}")
        return None
    return float(score.value)


# --- logger --------------------------------------------------------------------------------------


def _sample_recipe(logger: str) -> dict[str, Any]:
    """A resolved recipe as a run passes it to loggers: the core's defaults, as validation fills them in."""
    recipe = recipes.parse_recipe("data: dates\n", discover(), source="<the conformance kit's sample recipe>")
    recipe["train"]["epochs"] = 1
    recipe["loggers"] = [{"name": logger}]
    return recipe


def _logger(cls: type, params: dict[str, Any], report: Conformance) -> None:
    with tempfile.TemporaryDirectory() as directory:
        run_dir = Path(directory) / "run"
        run_dir.mkdir()
        logger = _construct(cls, params, report)
        if logger is None:
            return
        scores = {"exact_match": 50.0}
        final = Report(split="test", size=2, scores=[Score("exact_match", 50.0)])
        record = {"epoch": 1, "step": 4, "loss": 1.5, "tokens_per_second": 900.0, "seconds": 0.2, "valid": scores}
        calls = (
            ("run_start", (_sample_recipe(cls.name), run_dir)),
            ("validation_end", (1, scores)),
            ("checkpoint_saved", (run_dir / "checkpoints" / "best.pt", "best")),
            ("epoch_end", ({**record, "best": True},)),
            ("checkpoint_saved", (run_dir / "checkpoints" / "last.pt", "last")),
            ("evaluation_end", (final,)),
            ("run_end", (final,)),
        )
        for method, arguments in calls:
            report.at(f"{method} (called in run order)")
            before = copy.deepcopy(arguments)
            getattr(logger, method)(*arguments)
            if arguments != before:
                report.fail(f"changed what it received: {before!r:.80} became {arguments!r:.80}")
        failing = _construct(cls, params, report)
        report.at("run_failed after run_start, on a new instance")
        failed_dir = Path(directory) / "failed"
        failed_dir.mkdir()
        failing.run_start(_sample_recipe(cls.name), failed_dir)
        failing.run_failed(RuntimeError("stopped by the conformance kit"))


# --- optimizer ---------------------------------------------------------------------------------------

KIT_LR = 0.01  # the base rate the kit builds optimizers with and starts schedules from
OPTIMIZER_STEPS = 5


def _regression() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small two-layer model (weights of several shapes) with inputs and targets to fit."""
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)), torch.randn(16, 4), torch.randn(16, 2)


def _descend(module: nn.Module, optimizer: torch.optim.Optimizer, data: tuple[torch.Tensor, ...], steps: int) -> float:
    """`steps` training steps on the squared error of `module` on `data`; the loss before the last one."""
    inputs, targets = data
    loss = torch.zeros(())
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = ((module(inputs) - targets) ** 2).mean()
        loss.backward()
        optimizer.step()
    return float(loss.detach())


def _saved_and_loaded(state: Any) -> Any:
    """`state` through torch.save and torch.load(weights_only=True), as last.pt keeps it."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _optimizer(cls: type[Optimizer], params: dict[str, Any], report: Conformance) -> None:
    component = _construct(cls, params, report)
    if component is None:
        return
    module, *data = _regression()
    report.at(f"build(the parameters of a small model, lr={KIT_LR})")
    optimizer = component.build(list(module.parameters()), KIT_LR)
    if not _covers(optimizer, module, report):
        return
    report.at(f"{OPTIMIZER_STEPS} steps on a squared error")
    before = [p.detach().clone() for p in module.parameters()]
    first = _descend(module, optimizer, data, 1)
    last = _descend(module, optimizer, data, OPTIMIZER_STEPS - 1)
    if still := [name for (name, p), old in zip(module.named_parameters(), before, strict=True) if torch.equal(p, old)]:
        report.fail(f"weights with a gradient did not change: {', '.join(still)}")
    elif not all(torch.isfinite(p).all() for p in module.parameters()):
        report.fail("the weights became nan or infinite")
    elif not last < first:
        report.fail(f"the loss did not go down ({first:.4g} at the first step, {last:.4g} at the last)")
    _optimizer_resumed(component, module, optimizer, data, report)
    _optimizer_at_rate_0(module, optimizer, data, report)


def _covers(optimizer: Any, module: nn.Module, report: Conformance) -> bool:
    """Whether `optimizer` is a torch optimizer over every parameter once, each group starting at KIT_LR."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        report.fail(f"expected a torch.optim.Optimizer, got {type(optimizer).__name__}")
        return False
    held = [id(p) for group in optimizer.param_groups for p in group["params"]]
    if sorted(held) != sorted(id(p) for p in module.parameters()):
        report.fail(f"the groups must hold each of the {len(list(module.parameters()))} parameters once, got {held}")
        return False
    if rates := [group["lr"] for group in optimizer.param_groups if group["lr"] != KIT_LR]:
        report.fail(f"every group's lr must start at the rate given, {KIT_LR} (schedules change it), got {rates}")
        return False
    return True


def _optimizer_resumed(
    component: Optimizer, module: nn.Module, optimizer: torch.optim.Optimizer, data: Any, report: Conformance
) -> None:
    """A copy of the model with a new optimizer loaded from the first's state_dict must step bit for bit alike."""
    report.at("state_dict() saved as last.pt saves it, loaded into a new optimizer, then 2 more steps of both")
    twin = copy.deepcopy(module)
    resumed = component.build(list(twin.parameters()), KIT_LR)
    resumed.load_state_dict(_saved_and_loaded(optimizer.state_dict()))
    _descend(module, optimizer, data, 2)
    _descend(twin, resumed, data, 2)
    if differ := [
        name for (name, a), b in zip(module.named_parameters(), twin.parameters(), strict=True) if not torch.equal(a, b)
    ]:
        report.fail(f"the resumed optimizer updates {', '.join(differ)} otherwise: resuming would not be bitwise")


def _optimizer_at_rate_0(module: nn.Module, optimizer: torch.optim.Optimizer, data: Any, report: Conformance) -> None:
    report.at("a step with every group's lr set to 0 (as a schedule sets rates)")
    for group in optimizer.param_groups:
        group["lr"] = 0.0
    before = [p.detach().clone() for p in module.parameters()]
    _descend(module, optimizer, data, 1)
    if moved := [
        name for (name, p), old in zip(module.named_parameters(), before, strict=True) if not torch.equal(p, old)
    ]:
        report.fail(f"the weights {', '.join(moved)} changed: the groups' lr must scale every update")


# --- schedule ------------------------------------------------------------------------------------

KIT_TOTAL_STEPS = 40  # the total_steps the kit starts schedules with; it runs a few more


def _schedule_events() -> list[tuple[str, Any]]:
    """What a run calls: after_step for every step, after_validation every 5 (improving every other time)."""
    events: list[tuple[str, Any]] = []
    for step in range(1, KIT_TOTAL_STEPS + 6):
        events.append(("after_step", step))
        if step % 5 == 0:
            events.append(("after_validation", step % 10 == 0))
    return events


def _kit_optimizer() -> tuple[nn.Module, torch.optim.Optimizer]:
    """A small model's optimizer with two groups (weights, biases), both at KIT_LR."""
    module, _, _ = _regression()
    groups = [[p for n, p in module.named_parameters() if n.endswith(kind)] for kind in ("weight", "bias")]
    return module, torch.optim.SGD([{"params": group} for group in groups], lr=KIT_LR)


def _follow(schedule: Schedule, optimizer: torch.optim.Optimizer, events: list, report: Conformance) -> list | None:
    """The groups' rates after each of `events`; None (after failing) when one is not a finite number >= 0."""
    rates = []
    for method, argument in events:
        report.at(f"{method}(optimizer, {argument!r})")
        getattr(schedule, method)(optimizer, argument)
        now = [group["lr"] for group in optimizer.param_groups]
        if not all(
            isinstance(r, (int, float)) and not isinstance(r, bool) and math.isfinite(r) and r >= 0 for r in now
        ):
            report.fail(f"the groups' lr must be finite numbers >= 0, got {now}")
            return None
        rates.append(now)
    return rates


def _schedule(cls: type[Schedule], params: dict[str, Any], report: Conformance) -> None:
    schedule = _construct(cls, params, report)
    if schedule is None:
        return
    report.at("validation_param()")
    param = schedule.validation_param()
    if param is not None and param not in {p.name for p in cls.params}:
        report.fail(f"expected None or the name of a declared parameter, got {param!r}")
    module, optimizer = _kit_optimizer()
    before = [p.detach().clone() for p in module.parameters()]
    report.at(f"start(optimizer with lr {KIT_LR}, total_steps={KIT_TOTAL_STEPS})")
    schedule.start(optimizer, KIT_TOTAL_STEPS)
    events = _schedule_events()
    if _follow(schedule, optimizer, events, report) is None:
        return
    if not all(torch.equal(p, old) for p, old in zip(module.parameters(), before, strict=True)):
        report.fail("the weights changed: a schedule sets only the groups' lr")
    _schedule_resumed(cls, params, events, report)


def _schedule_resumed(cls: type[Schedule], params: dict[str, Any], events: list, report: Conformance) -> None:
    """Stopped halfway and resumed as the trainer resumes (start, the optimizer's state, load_state_dict), a
    schedule must give the rates of one that never stopped."""
    half = len(events) // 2
    first, (_, optimizer) = cls(**params), _kit_optimizer()
    first.start(optimizer, KIT_TOTAL_STEPS)
    if _follow(first, optimizer, events[:half], report) is None:
        return
    report.at("state_dict() saved as last.pt saves it (torch.save, then torch.load with weights_only=True)")
    state = first.state_dict()
    if not isinstance(state, dict):
        report.fail(f"expected a dict, got {type(state).__name__}")
        return
    try:
        saved = _saved_and_loaded(state)
    except Exception as exc:  # torch raises several types for what it cannot save or load safely
        report.fail(
            f"cannot be saved and loaded without unpickling code ({type(exc).__name__}: {exc}); keep plain data"
        )
        return
    report.at("a new instance: start, the optimizer's state, load_state_dict(state), then the rest of the run")
    second, (_, resumed) = cls(**params), _kit_optimizer()
    second.start(resumed, KIT_TOTAL_STEPS)
    resumed.load_state_dict(_saved_and_loaded(optimizer.state_dict()))
    second.load_state_dict(saved)
    expected, got = _follow(first, optimizer, events[half:], report), _follow(second, resumed, events[half:], report)
    report.at("the resumed schedule's rates against those of one that never stopped")
    if expected is not None and got is not None and expected != got:
        at = next(i for i, (a, b) in enumerate(zip(expected, got, strict=True)) if a != b)
        method, argument = events[half + at]
        report.fail(
            f"after call {half + at + 1} of the run, {method}(optimizer, {argument!r}), the resumed schedule sets "
            f"{got[at]} but one that never stopped {expected[at]}: keep everything the rates depend on in state_dict()"
        )


FAMILY_CHECKS: dict[str, Callable[[Any, dict[str, Any], Conformance], None]] = {
    "tokenizer": _tokenizer,
    "encoder": _encoder,
    "attention": _attention,
    "decoder": _decoder_network,
    "search": _search,
    "dataset": _dataset,
    "metric": _metric,
    "logger": _logger,
    "optimizer": _optimizer,
    "schedule": _schedule,
}

__all__ = [
    "Conformance",
    "ConformanceError",
    "assert_conforms",
    "assert_discovered",
    "check_attention",
    "check_component",
    "check_dataset",
    "check_search",
    "check_encoder",
    "check_logger",
    "check_metric",
    "check_optimizer",
    "check_schedule",
    "check_search",
    "check_tokenizer",
    "conformance",
]
