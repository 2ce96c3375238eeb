"""Vocabularies: token <-> index maps built from the training split, stored as JSON."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from transduce.errors import RunError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIALS = (PAD, UNK, BOS, EOS)


class Vocabulary:
    """Specials first (`<pad>`=0, `<unk>`=1, `<s>`=2, `</s>`=3), then tokens by frequency."""

    pad_index, unk_index, bos_index, eos_index = 0, 1, 2, 3

    def __init__(self, tokens: Sequence[str]) -> None:
        self.tokens = list(SPECIALS) + [t for t in tokens if t not in SPECIALS]
        self._index = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def build(cls, sequences: Iterable[Sequence[str]], min_freq: int = 1, max_size: int | None = None) -> Vocabulary:
        """Count tokens; keep those seen `min_freq` times, most frequent first, ties by token."""
        return cls.from_counts(Counter(token for sequence in sequences for token in sequence), min_freq, max_size)

    @classmethod
    def from_counts(cls, counts: Counter[str], min_freq: int = 1, max_size: int | None = None) -> Vocabulary:
        """Keep tokens counted `min_freq` times, most frequent first, ties by token."""
        kept = (t for t, n in counts.items() if n >= min_freq and t not in SPECIALS)
        ranked = sorted(kept, key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[: max(0, max_size - len(SPECIALS))]
        return cls(ranked)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._index

    def index(self, token: str) -> int:
        """The token's index, `<unk>`'s for a token not in the vocabulary."""
        return self._index.get(token, self.unk_index)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self._index.get(token, self.unk_index) for token in tokens]

    def decode(self, indices: Iterable[int]) -> list[str]:
        """Indices -> tokens, stopping at `</s>` and dropping `<pad>` and `<s>`."""
        out: list[str] = []
        for index in indices:
            if index == self.eos_index:
                break
            if index not in (self.pad_index, self.bos_index):
                out.append(self.tokens[index])
        return out

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"tokens": self.tokens}, ensure_ascii=False, indent=0), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        try:
            tokens = json.loads(path.read_text(encoding="utf-8"))["tokens"]
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:  # RecursionError: deep nesting
            raise RunError(f"{path}: not a readable vocabulary file ({exc})") from None
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise RunError(f"{path}: not a readable vocabulary file ('tokens' is not a list of strings)")
        if len(set(tokens)) != len(tokens):
            raise RunError(f"{path}: vocabulary lists a token more than once")
        if list(tokens[: len(SPECIALS)]) != list(SPECIALS):
            raise RunError(f"{path}: vocabulary does not start with the specials {SPECIALS}")
        return cls(tokens[len(SPECIALS) :])
