"""A test-support plugin: the `reverse` data source (random short strings and their reversal).

It is installed for a test by writing a `.dist-info` whose `entry_points.txt`
names this module in the `transduce` group (see the `reverse_plugin` fixture
in conftest.py), so the registry finds it exactly like a third party's plugin.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

from transduce.api import SPLITS, DataError, DataSource, Example, Param, hookimpl


class Reverse(DataSource):
    """Random strings over a small alphabet; the target is the string reversed."""

    name = "reverse"
    params = (
        Param("size", int, 2000, "training pairs", min=1),
        Param("held_out", int, 200, "pairs in each of valid and test", min=1),
        Param("seed", int, 7, "seed of the generation"),
        Param("min_len", int, 3, "shortest string", min=1),
        Param("max_len", int, 6, "longest string", min=1),
        Param("alphabet", str, "abcde", "characters the strings are made of"),
    )

    def __init__(
        self,
        size: int = 2000,
        held_out: int = 200,
        seed: int = 7,
        min_len: int = 3,
        max_len: int = 6,
        alphabet: str = "abcde",
    ) -> None:
        if min_len > max_len:
            raise ValueError(f"min_len {min_len} exceeds max_len {max_len}")
        if not alphabet:
            raise ValueError("alphabet must not be empty")
        self.sizes = {"train": size, "valid": held_out, "test": held_out}
        self.seed, self.min_len, self.max_len, self.alphabet = seed, min_len, max_len, alphabet
        self._splits: dict[str, list[Example]] | None = None

    def split(self, name: str) -> list[Example]:
        if name not in SPLITS:
            raise DataError(f"reverse: unknown split {name!r} (valid splits: {', '.join(SPLITS)})")
        if self._splits is None:
            self._splits = self._build()
        return self._splits[name]

    def _build(self) -> dict[str, list[Example]]:
        """Train first; valid and test strings never occur in train (nor in each other)."""
        rng = random.Random(self.seed)
        train = [self._string(rng) for _ in range(self.sizes["train"])]
        seen = set(train)
        splits = {"train": train}
        for name in ("valid", "test"):
            held: list[str] = []
            attempts = 0
            while len(held) < self.sizes[name]:
                attempts += 1
                if attempts > 1000 * self.sizes[name]:
                    raise DataError(f"reverse: too few distinct strings for {self.sizes[name]} {name} pairs")
                text = self._string(rng)
                if text not in seen:
                    seen.add(text)
                    held.append(text)
            splits[name] = held
        return {name: [Example(text, text[::-1]) for text in texts] for name, texts in splits.items()}

    def _string(self, rng: random.Random) -> str:
        return "".join(rng.choice(self.alphabet) for _ in range(rng.randint(self.min_len, self.max_len)))

    def read_file(self, path: Path) -> Iterator[Example]:
        """One source string per line; the target is derived by reversing it."""
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                yield Example(line.strip(), line.strip()[::-1])


@hookimpl
def transduce_components() -> list[type[DataSource]]:
    return [Reverse]
