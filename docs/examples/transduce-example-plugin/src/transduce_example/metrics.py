"""The `ter` metric: translation edit rate by sacrebleu, the lower the better."""

from __future__ import annotations

from collections.abc import Sequence

from sacrebleu.metrics import TER
from transduce.api import Metric, Param, Score


class TranslationEditRate(Metric):
    """Translation edit rate (TER) by sacrebleu: word edits per reference word, in percent; lower is better."""

    name = "ter"
    higher_is_better = False  # early stopping and the best checkpoint follow this
    params = (
        Param("case_sensitive", bool, False, "count a change of case as an edit"),
        Param("normalized", bool, False, "normalise punctuation and tokenise before counting (tercom)"),
    )

    def __init__(self, case_sensitive: bool = False, normalized: bool = False) -> None:
        self.options = {"case_sensitive": case_sensitive, "normalized": normalized}

    def compute(self, hypotheses: Sequence[str], references: Sequence[str]) -> Score:
        """TER can pass 100 when hypotheses are much longer than their references; the value is capped at
        100 to stay on the 0-100 scale of the Metric contract, and `extra["ter"]` keeps the uncapped figure."""
        if not references:
            return Score(self.name, 0.0)  # no reference words, no edits
        metric = TER(**self.options)
        result = metric.corpus_score(list(hypotheses), [list(references)])
        return Score(
            self.name,
            min(float(result.score), 100.0),
            str(metric.get_signature()),
            extra={"ter": float(result.score), "edits": float(result.num_edits), "reference_words": result.ref_length},
        )
