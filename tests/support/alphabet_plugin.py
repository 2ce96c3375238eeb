"""A test-support plugin: the `alphabet` tokenizer, which learns its alphabet from the training split.

Characters seen in `fit` are tokens; any other character becomes `?`. It
records every call so tests can check when the core calls `fit` and `load`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from transduce.api import DataError, Tokenizer, hookimpl

CALLS: list[tuple[str, Path]] = []


class Alphabet(Tokenizer):
    """Characters of the training split; unseen characters become '?'."""

    name = "alphabet"

    def __init__(self) -> None:
        self.alphabet: set[str] | None = None

    def fit(self, texts: Iterable[str], directory: Path) -> None:
        CALLS.append(("fit", directory))
        self.alphabet = {character for text in texts for character in text}
        (directory / "alphabet.txt").write_text("".join(sorted(self.alphabet)), encoding="utf-8")

    def load(self, directory: Path) -> None:
        CALLS.append(("load", directory))
        try:
            self.alphabet = set((directory / "alphabet.txt").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"{directory}: no alphabet.txt; the run directory is incomplete") from None

    def tokenize(self, text: str) -> list[str]:
        if self.alphabet is None:
            raise DataError("alphabet: tokenize called before fit or load")
        return [c if c in self.alphabet else "?" for c in text]

    def detokenize(self, tokens: Sequence[str]) -> str:
        return "".join(tokens)


@hookimpl
def transduce_components() -> list[type[Tokenizer]]:
    return [Alphabet]
