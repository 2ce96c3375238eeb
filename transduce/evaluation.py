"""Scoring a translator on a set of examples."""

from __future__ import annotations

import time
from collections.abc import Sequence

from transduce.components import Example, Metric
from transduce.corpus import DataSummary, summarize
from transduce.inference import Translator
from transduce.report import ExampleResult, Report


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
) -> Report:
    """Translate every source, score the outputs against the raw references.

    With `coverage`, the report also gives the vocabulary coverage (UNK rate) of the examples.
    """
    started = time.perf_counter()
    hypotheses = translator.translate([e.source for e in examples], batch_size=batch_size)
    seconds = time.perf_counter() - started
    references = [e.target for e in examples]
    scores = [metric.compute(hypotheses, references) for metric in metrics]
    results = [ExampleResult(e.source, e.target, h) for e, h in zip(examples[:shown], hypotheses, strict=False)]
    report = Report(split=split, size=len(examples), scores=scores, examples=results, seconds=seconds)
    if coverage:
        summary = summarize(
            examples,
            translator.source_tokenizer,
            translator.target_tokenizer,
            translator.source_vocab,
            translator.target_vocab,
        )
        report.data = DataSummary(splits={split: summary}, notes=list(notes)).as_dict()
    return report
