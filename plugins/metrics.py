"""Built-in metrics: exact match, and BLEU and chrF through sacrebleu (with its signature)."""

from __future__ import annotations

from collections.abc import Sequence

from sacrebleu.metrics import BLEU, CHRF

from transduce.api import Metric, Param, Score, hookimpl


class ExactMatch(Metric):
    """Percentage of hypotheses identical to their reference."""

    name = "exact_match"
    params = (Param("strip", bool, True, "ignore leading and trailing whitespace"),)

    def __init__(self, strip: bool = True) -> None:
        self.strip = strip

    def compute(self, hypotheses: Sequence[str], references: Sequence[str]) -> Score:
        if not references:
            return Score(self.name, 0.0)
        clean = (lambda s: s.strip()) if self.strip else (lambda s: s)
        hits = sum(clean(h) == clean(r) for h, r in zip(hypotheses, references, strict=True))
        return Score(self.name, 100.0 * hits / len(references))


class Bleu(Metric):
    """Corpus BLEU by sacrebleu on detokenized text against the raw references."""

    name = "bleu"
    params = (
        Param(
            "tokenize",
            str,
            "13a",
            "sacrebleu tokenizer",
            choices=("13a", "intl", "char", "none", "zh", "ja-mecab", "ko-mecab", "flores101", "flores200"),
        ),
        Param("lowercase", bool, False, "compare lowercased text"),
    )

    def __init__(self, tokenize: str = "13a", lowercase: bool = False) -> None:
        self.metric = BLEU(tokenize=tokenize, lowercase=lowercase)

    def compute(self, hypotheses: Sequence[str], references: Sequence[str]) -> Score:
        if not references:  # sacrebleu fails on an empty corpus
            return Score(self.name, 0.0, str(self.metric.get_signature()))
        result = self.metric.corpus_score(list(hypotheses), [list(references)])
        return Score(
            self.name,
            float(result.score),
            str(self.metric.get_signature()),
            extra={"brevity_penalty": float(result.bp), "length_ratio": float(result.ratio)},
        )


class ChrF(Metric):
    """Corpus chrF (chrF++ with word_order 2) by sacrebleu."""

    name = "chrf"
    params = (Param("word_order", int, 0, "word n-gram order: 0 is chrF, 2 is chrF++", min=0, max=6),)

    def __init__(self, word_order: int = 0) -> None:
        self.metric = CHRF(word_order=word_order)

    def compute(self, hypotheses: Sequence[str], references: Sequence[str]) -> Score:
        if not references:
            return Score(self.name, 0.0, str(self.metric.get_signature()))
        result = self.metric.corpus_score(list(hypotheses), [list(references)])
        return Score(self.name, float(result.score), str(self.metric.get_signature()))


@hookimpl
def transduce_components() -> list[type[Metric]]:
    return [ExactMatch, Bleu, ChrF]
