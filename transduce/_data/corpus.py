"""Preparing a training corpus: one streamed pass, vocabularies from counts, and coverage statistics.

The training split is tokenized once. Each distinct token gets a provisional
id as it is first seen, so the pass keeps only integer lists (never the raw
text or token strings of the corpus); once the vocabulary is known the
provisional ids are mapped to vocabulary indices in place.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from transduce._data.batching import EncodedPair
from transduce._data.vocab import Vocabulary
from transduce._plugins.contracts import Example, Tokenizer


@dataclass
class Coverage:
    """How well a vocabulary covers one side of a split."""

    tokens: int = 0
    unknown_tokens: int = 0
    types: int = 0
    unknown_types: int = 0

    @property
    def unk_rate(self) -> float:
        """Percentage of running tokens that map to `<unk>`."""
        return 100.0 * self.unknown_tokens / self.tokens if self.tokens else 0.0

    @property
    def type_coverage(self) -> float:
        """Percentage of distinct tokens that are in the vocabulary."""
        return 100.0 * (self.types - self.unknown_types) / self.types if self.types else 100.0

    @classmethod
    def of(cls, counts: Counter[str], vocab: Vocabulary) -> Coverage:
        unknown = [token for token in counts if token not in vocab]
        return cls(
            tokens=sum(counts.values()),
            unknown_tokens=sum(counts[token] for token in unknown),
            types=len(counts),
            unknown_types=len(unknown),
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "unk_rate": round(self.unk_rate, 3), "type_coverage": round(self.type_coverage, 3)}


@dataclass
class SplitSummary:
    """Pairs of one split and the vocabulary coverage of each side."""

    pairs: int
    source: Coverage
    target: Coverage
    filtered: int = 0  # pairs dropped by the length limits (training split only)

    def as_dict(self) -> dict[str, Any]:
        out = {"pairs": self.pairs, "source": self.source.as_dict(), "target": self.target.as_dict()}
        if self.filtered:
            out["filtered_by_length"] = self.filtered
        return out


@dataclass
class DataSummary:
    """What the run read: per split sizes and coverage, and the data source's notes."""

    splits: dict[str, SplitSummary] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"splits": {name: s.as_dict() for name, s in self.splits.items()}, "notes": self.notes}


class _Interner:
    """Provisional ids for tokens in order of first appearance, with their counts."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.counts: list[int] = []

    def encode(self, tokens: Sequence[str]) -> list[int]:
        out = []
        for token in tokens:
            index = self.ids.get(token)
            if index is None:
                index = self.ids[token] = len(self.counts)
                self.counts.append(0)
            self.counts[index] += 1
            out.append(index)
        return out

    def counter(self) -> Counter[str]:
        return Counter({token: self.counts[i] for token, i in self.ids.items()})

    def mapping(self, vocab: Vocabulary) -> list[int]:
        """Provisional id -> vocabulary index (`<unk>` for tokens the vocabulary lacks)."""
        return [vocab.index(token) for token in self.ids]


@dataclass
class TrainingCorpus:
    """The indexed training pairs, the vocabularies and the training split's summary."""

    pairs: list[EncodedPair]
    source_vocab: Vocabulary
    target_vocab: Vocabulary
    summary: SplitSummary


@dataclass(frozen=True)
class Side:
    """How one side of the training split is read: its tokenizer and the longest sequence kept."""

    tokenizer: Tokenizer
    max_length: int | None = None


VocabularySource = Callable[[str, Counter[str]], Vocabulary]


def prepare_training(
    examples: Iterable[Example], source: Side, target: Side, vocabularies: VocabularySource
) -> TrainingCorpus:
    """Tokenize the training split once and index it.

    `vocabularies(side, counts)` returns the vocabulary of "source" or
    "target" given the training split's token counts: a new one (built and
    saved by the caller) or, on resume, the run's saved one.
    """
    interners = _Interner(), _Interner()
    provisional: list[EncodedPair] = []
    filtered = 0
    for example in examples:
        source_tokens = source.tokenizer.tokenize(example.source)
        target_tokens = target.tokenizer.tokenize(example.target)
        if _too_long(source_tokens, source.max_length) or _too_long(target_tokens, target.max_length):
            filtered += 1
            continue
        provisional.append(EncodedPair(interners[0].encode(source_tokens), interners[1].encode(target_tokens)))
    counts = interners[0].counter(), interners[1].counter()
    source_vocab, target_vocab = vocabularies("source", counts[0]), vocabularies("target", counts[1])
    source_map, target_map = interners[0].mapping(source_vocab), interners[1].mapping(target_vocab)
    for pair in provisional:  # in place: never two copies of the corpus
        pair.source = [source_map[i] for i in pair.source] or [source_vocab.unk_index]
        pair.target = [target_map[i] for i in pair.target]
    summary = SplitSummary(
        pairs=len(provisional),
        source=Coverage.of(counts[0], source_vocab),
        target=Coverage.of(counts[1], target_vocab),
        filtered=filtered,
    )
    return TrainingCorpus(provisional, source_vocab, target_vocab, summary)


def _too_long(tokens: Sequence[str], limit: int | None) -> bool:
    return limit is not None and len(tokens) > limit


def summarize(
    examples: Iterable[Example],
    source_tokenizer: Tokenizer,
    target_tokenizer: Tokenizer,
    source_vocab: Vocabulary,
    target_vocab: Vocabulary,
) -> SplitSummary:
    """Pair count and vocabulary coverage of a held-out split."""
    source_counts: Counter[str] = Counter()
    target_counts: Counter[str] = Counter()
    pairs = 0
    for example in examples:
        source_counts.update(source_tokenizer.tokenize(example.source))
        target_counts.update(target_tokenizer.tokenize(example.target))
        pairs += 1
    return SplitSummary(pairs, Coverage.of(source_counts, source_vocab), Coverage.of(target_counts, target_vocab))
