"""The Python API: open a trained run once, then translate, score and chat from Python.

`transduce.load(RUN)` opens a run with the same safe loading and validation as the command line (its
recipe, vocabularies, tokenizers and checkpoint, through `Translator.from_run`) and returns a `Model`.
Its methods take Python values and give dataclasses; every mistake is one of transduce's own errors
(a `RecipeError` naming the key for a bad search option, a `RunError` for a run that cannot be opened).

A `Model` loads everything once, so calling it repeatedly is cheap: inputs are grouped into batches of
similar length and the results come back in input order. It is safe to share between threads: one lock
serialises its calls (a model decodes one batch at a time anyway; batch across requests to go faster).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import torch

from transduce import pipeline
from transduce.batching import pad, source_tensors
from transduce.components import MAX_OUTPUT_TOKENS, DataSource, Decodable, Memory
from transduce.errors import DataError, RecipeError, RunError
from transduce.heatmap import Heatmap
from transduce.html_report import heatmap_svg
from transduce.inference import CHARS_PER_TOKEN, Translation, Translator, decoding_dtype
from transduce.recipe import TRAIN_PARAMS, load_recipe, resolve_component
from transduce.registry import Registry, discover
from transduce.rundir import RunDir

#: Search strategies (with their settings) a Model keeps built; beyond this many the least recently used go.
STRATEGY_CACHE = 16
#: `batch_size` when none is given: sentences per decoding batch.
BATCH_SIZE = 64
#: Target tokens `score` reads per pair (MAX_OUTPUT_TOKENS: the longest output a search may be asked for);
#: longer targets are scored on their first SCORED_TARGET_TOKENS tokens, counted in `Model.targets_cut`.
SCORED_TARGET_TOKENS = MAX_OUTPUT_TOKENS


@dataclass(eq=False)
class Result:
    """One input's translation.

    source: the input text; source_tokens: it as the tokenizer split it (cut to the decoding limit).
    tokens: the output tokens, without `<s>` and `</s>`; text: them detokenized.
    score: natural-log probability of `tokens` plus `</s>` (when the output ended with it) under the model;
        None when the search strategy gives no scores, or for an empty input.
    attention: list of rows, one per output token plus a last one for `</s>` when it was emitted, each a
        list of len(source_tokens) weights summing to 1 (plain floats, ready for JSON); None when the
        strategy or the model gives none.
    alternatives: the n-best list, best first; its first element is this Result itself (so a strategy
        without n-best output gives [self]).
    """

    source: str
    source_tokens: list[str]
    tokens: list[str]
    text: str
    score: float | None = None
    attention: list[list[float]] | None = None
    alternatives: list[Result] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if not self.alternatives:
            self.alternatives = [self]


@dataclass(frozen=True)
class Scored:
    """How probable the model finds a target given its source (forced decoding).

    log_prob: natural-log probability of the target's tokens plus `</s>`, the sum of each token's
        log-probability given the source and the tokens before it: the definition of a search strategy's
        `score`, so a beam hypothesis scored here gets the beam's own score back. None when the source is
        empty after tokenizing (the model reads nothing; translating it gives an empty output).
    tokens: the tokens scored, `</s>` included.
    """

    log_prob: float | None
    tokens: int

    @property
    def per_token(self) -> float | None:
        """log_prob / tokens: comparable across targets of different lengths."""
        return None if self.log_prob is None else self.log_prob / self.tokens


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded Model is: where it came from and how it decodes.

    metrics: the scores of the run's report.json (metric -> value) when the run has one, else {};
    metrics_split: the split (or file) they were measured on. Languages: from the recipe when it names
    them (a parallel corpus's suffixes, a word tokenizer's language), else None.
    """

    run: Path
    name: str
    recipe: dict[str, Any]
    checkpoint: Path
    device: str
    precision: str
    search: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    metrics_split: str | None = None
    source_language: str | None = None
    target_language: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: paths as strings."""
        return {
            "run": str(self.run),
            "name": self.name,
            "checkpoint": str(self.checkpoint),
            "device": self.device,
            "precision": self.precision,
            "search": self.search,
            "metrics": self.metrics,
            "metrics_split": self.metrics_split,
            "source_language": self.source_language,
            "target_language": self.target_language,
            "recipe": self.recipe,
        }


class Model:
    """A trained run ready to use from Python; made by `load`. Thread-safe (one lock serialises calls)."""

    def __init__(self, translator: Translator, registry: Registry, info: ModelInfo) -> None:
        self._translator = translator
        self._registry = registry
        self._info = info
        self._strategies: OrderedDict[str, Translator] = OrderedDict()
        self._lock = threading.RLock()
        #: Sources (translated or scored) cut to the decoding limit so far (Translator.max_source_tokens).
        self.inputs_cut = 0
        #: Targets `score` cut to SCORED_TARGET_TOKENS so far.
        self.targets_cut = 0

    @property
    def info(self) -> ModelInfo:
        return self._info

    # --- translating ---------------------------------------------------------------

    @overload
    def translate(
        self, texts: str, search: str | None = None, *, batch_size: int = BATCH_SIZE, **options: Any
    ) -> Result: ...

    @overload
    def translate(
        self, texts: Sequence[str], search: str | None = None, *, batch_size: int = BATCH_SIZE, **options: Any
    ) -> list[Result]: ...

    def translate(
        self, texts: str | Sequence[str], search: str | None = None, *, batch_size: int = BATCH_SIZE, **options: Any
    ) -> Result | list[Result]:
        """Translate one text (-> Result) or a sequence of them (-> list[Result], in input order).

        `search` names a search strategy (default: the run's) and `options` are its settings, validated as
        `--set search.KEY=VALUE` is (the strategy's declared parameters and bounds; settings the run's
        strategy shares, e.g. max_length, carry over): translate(texts, "beam", size=5, n_best=3).
        """
        single = isinstance(texts, str)
        items = _texts(texts, "texts")
        _check_batch_size(batch_size)
        with self._lock:
            translator = self._with_search(search, options)
            before = translator.truncated
            translations = translator.translate_detailed(items, batch_size)
            self.inputs_cut += translator.truncated - before
        results = [_result(text, t) for text, t in zip(items, translations, strict=True)]
        return results[0] if single else results

    def reply(self, text: str) -> str:
        """A chat reply, as `transduce chat` gives it: the run's search strategy (see the `--set`s of `load`)."""
        return self.translate(text).text

    def _with_search(self, search: str | None, options: dict[str, Any]) -> Translator:
        """The translator for a search strategy and settings, built once and kept (STRATEGY_CACHE)."""
        if search is None and not options:
            return self._translator
        carried = self._info.search
        raw = {"name": carried["name"] if search is None else search, **options}
        spec = resolve_component(self._registry, "search", raw, inherit=carried, source="translate()")
        key = json.dumps(spec, sort_keys=True, default=str)
        if key not in self._strategies:
            strategy = pipeline.search(self._registry, {"search": spec})
            self._strategies[key] = self._translator.with_decoding(strategy)
            if len(self._strategies) > STRATEGY_CACHE:
                self._strategies.popitem(last=False)
        self._strategies.move_to_end(key)
        return self._strategies[key]

    # --- scoring -------------------------------------------------------------------

    @overload
    def score(self, sources: str, targets: str, *, batch_size: int = BATCH_SIZE) -> Scored: ...

    @overload
    def score(
        self, sources: Sequence[str], targets: Sequence[str], *, batch_size: int = BATCH_SIZE
    ) -> list[Scored]: ...

    def score(
        self, sources: str | Sequence[str], targets: str | Sequence[str], *, batch_size: int = BATCH_SIZE
    ) -> Scored | list[Scored]:
        """Score each target given its source by forced decoding (-> list[Scored], in input order; one pair
        of strings -> one Scored). Batched by length like translate."""
        single = isinstance(sources, str) and isinstance(targets, str)
        source_items, target_items = _texts(sources, "sources"), _texts(targets, "targets")
        if len(source_items) != len(target_items):
            raise DataError(
                f"score(): {len(source_items):,} sources but {len(target_items):,} targets; give one target per source"
            )
        _check_batch_size(batch_size)
        with self._lock:
            scored = self._score(source_items, target_items, batch_size)
        return scored[0] if single else scored

    def _score(self, sources: list[str], targets: list[str], batch_size: int) -> list[Scored]:
        translator = self._translator
        before = translator.truncated
        encoded = [translator.source_vocab.encode(tokens) for tokens in translator.source_tokens(sources)]
        self.inputs_cut += translator.truncated - before
        wanted = [self._target_indices(text) for text in targets]
        results: list[Scored] = [Scored(None, len(w)) for w in wanted]
        todo = [i for i, e in enumerate(encoded) if e]
        longest = [max(len(encoded[i]), len(wanted[i])) for i in todo]  # steps and source length both cost
        model = translator.model
        dtype = decoding_dtype(translator.device, translator.precision)
        was_training = model.training
        model.eval()
        try:
            for group in translator.batches(longest, batch_size):
                indices = [todo[g] for g in group]
                source, lengths = source_tensors(
                    [encoded[i] for i in indices], translator.source_vocab.pad_index, reverse=translator.reverse_source
                )
                target = pad([wanted[i] for i in indices], translator.target_vocab.pad_index)
                with torch.inference_mode(), model.reduced_products(dtype):
                    memory = model.encode(source.to(translator.device), lengths)
                    sums = forced_log_probs(model, memory, target.to(translator.device))
                for index, value in zip(indices, sums.tolist(), strict=True):
                    results[index] = Scored(value, len(wanted[index]))
        finally:
            model.train(was_training)
        return results

    def _target_indices(self, text: str) -> list[int]:
        """The target's indices with `</s>`; a target beyond SCORED_TARGET_TOKENS is cut there (without `</s>`)."""
        translator, limit = self._translator, SCORED_TARGET_TOKENS
        tokens = translator.target_tokenizer.tokenize(text[: limit * CHARS_PER_TOKEN])
        if len(tokens) > limit or len(text) > limit * CHARS_PER_TOKEN:
            self.targets_cut += 1
            return translator.target_vocab.encode(tokens[:limit])
        return [*translator.target_vocab.encode(tokens), translator.target_vocab.eos_index]

    def data_source(self) -> DataSource:
        """The run's data source, built from its recipe: `read_file(PATH)` reads a file in the run's data
        format, as `transduce evaluate --data` does."""
        return pipeline.data_source(self._registry, self._info.recipe)

    # --- pictures ------------------------------------------------------------------

    def heatmap_svg(self, result: Result) -> str | None:
        """The attention of `result` as the SVG picture the HTML report draws; None without attention."""
        if result.attention is None or not result.source_tokens:
            return None
        try:
            heatmap = Heatmap.from_translation(result, source_text=result.source)
        except ValueError as exc:
            raise RunError(f"the attention of this result does not fit its output: {exc}") from None
        return heatmap_svg(heatmap)


def forced_log_probs(model: Decodable, memory: Memory, target: torch.Tensor) -> torch.Tensor:
    """Natural-log probability of each row of `target` (batch, steps), padded with `<pad>` after its last
    token, under the model: (batch,) float32.

    Teacher forcing one position at a time through `start` and `step`, exactly as a search strategy calls
    the model (the same products and log_softmax), so a hypothesis gets the score the search gave it.
    """
    rows = target.size(0)
    tokens = torch.full((rows,), model.bos_index, dtype=torch.long, device=target.device)
    total = torch.zeros(rows, dtype=torch.float32, device=target.device)
    state = model.start(memory)
    real = target != model.pad_index
    for position in range(target.size(1)):
        logits, state, _ = model.step(tokens, state, memory)
        logp = torch.log_softmax(logits, dim=-1, dtype=torch.float32)
        picked = logp.gather(1, target[:, position : position + 1]).squeeze(1)
        total += picked.masked_fill(~real[:, position], 0.0)
        tokens = target[:, position]
    return total


# --- loading -------------------------------------------------------------------


def load(
    run: str | Path,
    checkpoint: str | Path = "best",
    device: str = "auto",
    precision: str | None = None,
    overrides: Iterable[str] = (),
    *,
    registry: Registry | None = None,
) -> Model:
    """Open the run directory `run` for translating and scoring.

    checkpoint: "best" (the best validation score; the last checkpoint when there is none), "last", or the
        path of a checkpoint file saved with this run. device: "auto" (CUDA when present), "cpu" or "cuda".
    precision: the decoding precision (the recipe's train.precision choices, e.g. "fp32", "bf16");
        None: the run's own.
    overrides: `--set` style "KEY=VALUE" strings applied to the run's recipe (e.g. "search.name=beam"),
        validated exactly as `--set` is.
    registry: the installed plugins (default: discovered now).
    """
    if registry is None:
        registry = discover()
    settings = [*_overrides(overrides), _train_setting("device", device)]
    if precision is not None:
        settings.append(_train_setting("precision", precision))
    if not isinstance(checkpoint, (str, Path)):
        raise RecipeError(
            f"expected 'best', 'last' or a checkpoint file's path, got {checkpoint!r}",
            key="checkpoint",
            source="load()",
        )
    directory = RunDir.open(Path(run))
    recipe = load_recipe(directory.recipe, registry, settings)
    which = checkpoint if checkpoint in ("best", "last") else Path(checkpoint)
    translator = Translator.from_run(directory, registry, which=which, device=device, recipe=recipe)
    used = which if isinstance(which, Path) else directory.checkpoint(which)
    return Model(translator, registry, _info(directory, recipe, used, translator))


def _overrides(overrides: Iterable[str]) -> list[str]:
    """The `--set` strings; anything but strings (a single string is one override) is a RecipeError."""
    items = [overrides] if isinstance(overrides, str) else list(overrides)
    for item in items:
        if not isinstance(item, str):
            raise RecipeError(
                f"expected 'KEY=VALUE' strings as --set takes them (e.g. 'search.name=beam'), got {item!r}",
                source="load(overrides=...)",
            )
    return items


def _train_setting(name: str, value: Any) -> str:
    """`load`'s argument `name` checked against the recipe's train.NAME declaration, as an override."""
    param = next(p for p in TRAIN_PARAMS if p.name == name)
    problem = param.problem(value)
    if problem:
        raise RecipeError(problem, key=name, source="load()")
    return f"train.{name}={json.dumps(value)}"


def _info(run: RunDir, recipe: dict[str, Any], checkpoint: Path, translator: Translator) -> ModelInfo:
    split, metrics = _report_metrics(run)
    data, sides = recipe["data"], (recipe["source"]["tokenizer"], recipe["target"]["tokenizer"])
    return ModelInfo(
        run=run.path.resolve(),
        name=run.path.resolve().name,
        recipe=recipe,
        checkpoint=checkpoint,
        device=str(translator.device),
        precision=translator.precision,
        search=dict(recipe["search"]),
        metrics=metrics,
        metrics_split=split,
        source_language=data.get("source_language") or sides[0].get("language"),
        target_language=data.get("target_language") or sides[1].get("language"),
    )


#: report.json files larger than this are not read for ModelInfo.metrics (a run's report is a few hundred KB).
REPORT_LIMIT = 64 * 1024 * 1024


def _report_metrics(run: RunDir) -> tuple[str | None, dict[str, float]]:
    """(split, metric -> value) of the run's report.json; (None, {}) when it is missing or unreadable."""
    path = run.report("report", "json")
    try:
        if path.stat().st_size > REPORT_LIMIT:
            return None, {}
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None, {}
    metrics = report.get("metrics") if isinstance(report, dict) else None
    if not isinstance(metrics, dict):
        return None, {}
    numbers = {str(k): float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    split = report.get("split")
    return (split if isinstance(split, str) else None), numbers


# --- helpers -------------------------------------------------------------------


def _texts(value: str | Sequence[str], argument: str) -> list[str]:
    """One string or a sequence of strings, as a list; anything else is a DataError naming the item."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, Sequence):
        raise DataError(f"{argument}: expected a string or a list of strings, got {type(value).__name__}")
    items = list(value)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise DataError(f"{argument}[{i}]: expected a string, got {type(item).__name__} {item!r:.60}")
    return items


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise RecipeError(f"expected a whole number >= 1, got {batch_size!r}", key="batch_size")


def _result(source: str, translation: Translation) -> Result:
    """A Translation as a Result, its n-best list (each alternative's own list is just itself) included."""
    best = _candidate(source, translation)
    if translation.alternatives:
        best.alternatives = [best, *(_candidate(source, t) for t in translation.alternatives[1:])]
    return best


def _candidate(source: str, translation: Translation) -> Result:
    attention = translation.attention.tolist() if translation.attention is not None else None
    return Result(
        source=source,
        source_tokens=list(translation.source_tokens),
        tokens=list(translation.tokens),
        text=translation.text,
        score=translation.score,
        attention=attention,
    )
