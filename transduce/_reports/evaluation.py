"""Scoring a translator on a set of examples, and the analysis behind the scores.

`evaluate` translates every source and scores the outputs with the recipe's
metrics. A full evaluation (`analysis=Analysis(...)`) adds what helps read the
scores: the length ratio, the scores per source-length bucket, the best and
worst examples by sentence-level chrF and attention heat maps of a few
examples; `compare_with` adds other search strategies scored and timed on the
same examples.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sacrebleu.metrics import CHRF

from transduce._data.corpus import DataSummary, summarize
from transduce._decoding.translator import Translator
from transduce._model import assembly as pipeline
from transduce._plugins.contracts import Example, Metric, SearchStrategy
from transduce._plugins.registry import Registry
from transduce._recipe.recipe import read_value, resolve_component
from transduce._recipe.settings import EvaluateSettings, Settings
from transduce._reports.heatmap import Heatmap
from transduce._reports.report import PERFECT, Bucket, ExampleResult, LengthRatio, RankedExample, Report, StrategyResult
from transduce.errors import RecipeError

#: Characters of a source or reference a report shows; the rest of a longer one is left out (and counted).
SHOWN_CHARACTERS = 500


@dataclass(frozen=True)
class Analysis:
    """How much a full evaluation adds: source-length buckets, best/worst examples each, heat maps."""

    buckets: int = 5
    extremes: int = 5
    heatmaps: int = 3

    @classmethod
    def from_settings(cls, evaluate: EvaluateSettings) -> Analysis:
        """From a recipe's `evaluate` section."""
        return cls(buckets=evaluate.buckets, extremes=evaluate.extremes, heatmaps=evaluate.heatmaps)


@dataclass
class Strategy:
    """A search strategy to compare, with the label the report shows (e.g. 'beam:size=5,max_length=16')."""

    label: str
    decoding: SearchStrategy


def evaluate(
    translator: Translator,
    examples: Sequence[Example],
    metrics: Sequence[Metric],
    *,
    split: str,
    shown: int = 10,
    batch_size: int = 256,
    coverage: bool = False,
    notes: Sequence[str] = (),
    analysis: Analysis | None = None,
    compare_with: Sequence[Strategy] = (),
    search: str = "",
) -> Report:
    """Translate every source, score the outputs against the raw references.

    With `coverage`, the report also gives the vocabulary coverage (UNK rate) of the examples; with
    `analysis`, the length ratio, buckets, best/worst examples and heat maps; with `compare_with`, a table
    of strategies whose first row is the translator's own (labelled `search`).
    """
    for strategy in compare_with:  # one the memory budget refuses is refused before any decoding
        _variant(translator, strategy)
    sources = [e.source for e in examples]
    references = [e.target for e in examples]
    cut_before = translator.truncated
    started = time.perf_counter()
    hypotheses = translator.translate(sources, batch_size=batch_size)
    seconds = time.perf_counter() - started
    scores = [metric.compute(hypotheses, references) for metric in metrics]
    results = [
        ExampleResult(shortened(e.source), shortened(e.target), h)
        for e, h in zip(examples[:shown], hypotheses, strict=False)
    ]
    report = Report(split=split, size=len(examples), scores=scores, examples=results, seconds=seconds, search=search)
    cut = translator.truncation_note(cut_before)
    notes = [*notes, cut] if cut else list(notes)
    if cut and not coverage:
        report.data = {"notes": notes}
    if coverage:
        summary = summarize(
            examples,
            translator.source_tokenizer,
            translator.target_tokenizer,
            translator.source_vocab,
            translator.target_vocab,
        )
        report.data = DataSummary(splits={split: summary}, notes=list(notes)).as_dict()
    if analysis is not None:
        _analyze(report, translator, examples, hypotheses, metrics, analysis, batch_size)
    if compare_with:  # the translator's own strategy is decoded again, so every row is timed alike (warm)
        own = Strategy(search or "recipe search", translator.decoding)
        report.comparison = compare(translator, examples, metrics, [own, *compare_with], batch_size)
    return report


def _variant(translator: Translator, strategy: Strategy) -> Translator:
    """The translator with `strategy`; its refusal (memory) names the strategy."""
    try:
        return translator.with_decoding(strategy.decoding)
    except RecipeError as exc:
        raise RecipeError(exc.detail, source=f"compare {strategy.label}") from None


def _analyze(
    report: Report,
    translator: Translator,
    examples: Sequence[Example],
    hypotheses: Sequence[str],
    metrics: Sequence[Metric],
    analysis: Analysis,
    batch_size: int,
) -> None:
    source_lengths = [len(translator.source_tokenizer.tokenize(e.source)) for e in examples]
    output_lengths = [len(translator.target_tokenizer.tokenize(h)) for h in hypotheses]
    reference_lengths = [len(translator.target_tokenizer.tokenize(e.target)) for e in examples]
    report.length = LengthRatio(sum(output_lengths), sum(reference_lengths))
    report.buckets = []
    for low, high in bucket_ranges(source_lengths, analysis.buckets):
        members = [i for i, length in enumerate(source_lengths) if low <= length <= high]
        hyps, refs = [hypotheses[i] for i in members], [examples[i].target for i in members]
        length = LengthRatio(sum(output_lengths[i] for i in members), sum(reference_lengths[i] for i in members))
        scores = {m.name: round(m.compute(hyps, refs).value, 4) for m in metrics}
        report.buckets.append(Bucket(low, high, len(members), scores, length))
    report.best, report.worst = best_and_worst(examples, hypotheses, analysis.extremes)
    drawn = [e.source for e in examples if e.source.strip()][: analysis.heatmaps]
    report.heatmaps = heatmaps(translator, drawn, batch_size)


def shortened(text: str) -> str:
    """`text` as a report shows it: a runaway one (a whole file on one line) cut to SHOWN_CHARACTERS."""
    if len(text) <= SHOWN_CHARACTERS:
        return text
    return f"{text[:SHOWN_CHARACTERS]}… ({len(text):,} characters)"


def bucket_ranges(lengths: Sequence[int], count: int) -> list[tuple[int, int]]:
    """Up to `count` contiguous (low, high) length ranges, each holding about as many of `lengths`.

    Cut at quantiles of the sorted lengths; equal lengths never straddle a cut, so with many ties
    there are fewer ranges. Together the ranges cover every length from the shortest to the longest.
    """
    ordered = sorted(lengths)
    if not ordered or count < 1:
        return []
    n = len(ordered)
    highs = sorted({ordered[-(-n * (i + 1) // count) - 1] for i in range(count)})
    ranges, low = [], ordered[0]
    for high in highs:
        ranges.append((low, high))
        low = high + 1
    return ranges


def best_and_worst(
    examples: Sequence[Example], hypotheses: Sequence[str], count: int
) -> tuple[list[RankedExample], list[RankedExample]]:
    """The `count` examples with the highest and the lowest sentence-level chrF (sacrebleu).

    Ties go to the earlier example; the two lists never share an example (with fewer than 2 * count
    examples, best gets the larger half), and a perfect example (chrF 100) is never among the worst.
    Best is listed best first, worst worst first.
    """
    chrf = CHRF()
    ranked = [
        RankedExample(
            i, shortened(e.source), shortened(e.target), h, round(chrf.sentence_score(h, [e.target]).score, 2)
        )
        for i, (e, h) in enumerate(zip(examples, hypotheses, strict=True))
    ]
    ranked.sort(key=lambda r: (-r.chrf, r.index))
    worst_count = min(count, len(ranked) // 2)
    best_count = min(count, len(ranked) - worst_count)
    worst = sorted(ranked[len(ranked) - worst_count :], key=lambda r: (r.chrf, r.index))
    worst = [r for r in worst if r.chrf < PERFECT]
    return ranked[:best_count], worst


def heatmaps(translator: Translator, texts: Sequence[str], batch_size: int = 256) -> list[Heatmap]:
    """Attention heat maps of `texts` (one row per output token, one column per source token); none for a
    text whose search strategy (or decoder network) gives no attention weights."""
    if not texts:
        return []
    translations = translator.translate_detailed(list(texts), batch_size=batch_size)
    maps = []
    for translation, text in zip(translations, texts, strict=True):
        if translation.attention is None or not translation.source_tokens:
            continue
        try:
            maps.append(Heatmap.from_translation(translation, text))
        except ValueError:  # a strategy's attention rows do not match its tokens: leave this picture out
            continue
    return maps


def compare(
    translator: Translator,
    examples: Sequence[Example],
    metrics: Sequence[Metric],
    strategies: Sequence[Strategy],
    batch_size: int = 256,
) -> list[StrategyResult]:
    """Each strategy's scores and decoding time on the same examples with the same model."""
    sources = [e.source for e in examples]
    references = [e.target for e in examples]
    results = []
    for strategy in strategies:
        variant = _variant(translator, strategy)
        started = time.perf_counter()
        hypotheses = variant.translate(sources, batch_size=batch_size)
        seconds = time.perf_counter() - started
        scores = {m.name: round(m.compute(hypotheses, references).value, 4) for m in metrics}
        results.append(StrategyResult(strategy.label, scores, len(examples), seconds))
    return results


# --- strategies named on the command line ---------------------------------------


def strategy_label(registry: Registry, spec: Mapping[str, Any], given: Sequence[str] = ()) -> str:
    """The strategy's name, the settings `given` and those that differ from its defaults: 'beam:size=4'."""
    info = registry.get("search", spec["name"])
    defaults = {param.name: param.default for param in info.params} if info is not None else {}
    changed = [(k, v) for k, v in spec.items() if k != "name" and (k in given or k not in defaults or defaults[k] != v)]
    settings = ",".join(f"{key}={_yaml_scalar(value)}" for key, value in changed)
    return f"{spec['name']}:{settings}" if settings else str(spec["name"])


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def parse_strategy(registry: Registry, text: str, inherit: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read 'NAME' or 'NAME:KEY=VALUE,KEY=VALUE' (e.g. 'beam:size=5') into a validated search spec.

    Values are read as YAML scalars (5 -> int, 0.8 -> float, true -> bool). Settings of `inherit` (the
    recipe's search strategy) that the named one also declares and the text does not give are kept, so that
    e.g. max_length stays the same across the compared strategies. Mistakes raise a RecipeError naming
    `--compare TEXT`.
    """
    source = f"--compare {text}"
    name, _, rest = text.partition(":")
    name = name.strip()
    given: dict[str, Any] = {}
    for item in (part.strip() for part in rest.split(",")):
        if not item:
            continue
        key, equals, raw = item.partition("=")
        if not equals or not key.strip():
            raise RecipeError(f"expected NAME:KEY=VALUE,KEY=VALUE (e.g. beam:size=5), got {item!r}", source=source)
        given[key.strip()] = read_value(raw)
    return resolve_component(registry, "search", {"name": name, **given}, inherit=inherit, source=source)


def strategies(registry: Registry, recipe: Mapping[str, Any], texts: Sequence[str] = ()) -> list[Strategy]:
    """The recipe's `evaluate.compare` strategies, then those `texts` name (see `parse_strategy`)."""
    settings = Settings.of(recipe)
    built = []
    for i, spec in enumerate(settings.evaluate.compare):
        decoding = pipeline.build(registry, "search", spec, f"evaluate.compare.{i}")
        built.append(Strategy(strategy_label(registry, spec), decoding))
    for text in texts:
        spec = parse_strategy(registry, text, inherit=settings.search)
        given = [item.partition("=")[0].strip() for item in text.partition(":")[2].split(",")]
        try:
            decoding = pipeline.build(registry, "search", spec, "")
        except RecipeError as exc:
            raise RecipeError(exc.detail, source=f"--compare {text}") from None
        built.append(Strategy(strategy_label(registry, spec, given), decoding))
    return built
