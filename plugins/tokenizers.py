"""Built-in tokenizers: characters and words."""

from __future__ import annotations

import re
from collections.abc import Sequence

from transduce.api import Param, Tokenizer, hookimpl

_LOWERCASE = Param("lowercase", bool, False, "lowercase the text before splitting it")


class CharTokenizer(Tokenizer):
    """Every character is a token (spaces included); detokenizing joins them back."""

    name = "char"
    params = (_LOWERCASE,)

    def __init__(self, lowercase: bool = False) -> None:
        self.lowercase = lowercase

    def tokenize(self, text: str) -> list[str]:
        return list(text.lower() if self.lowercase else text)

    def detokenize(self, tokens: Sequence[str]) -> str:
        return "".join(tokens)


# A word keeps inner apostrophes and hyphens (don't, l'homme, well-known) and
# separators between digits (9:30, 3.5, 1,000, 12/05/2020); every other
# non-space, non-word character is a token of its own.
_WORD = re.compile(r"\w+(?:(?:['’-]|(?<=\d)[.,:/](?=\d))\w+)*|[^\w\s]")
_NO_SPACE_BEFORE = set(".,!?;:%)]}'’»")
_NO_SPACE_AFTER = set("([{«¿¡")


class WordTokenizer(Tokenizer):
    """Splits on whitespace and punctuation; detokenizing re-attaches punctuation.

    Round trips normalise spacing: one space between words, none before closing
    punctuation or after opening brackets; straight double quotes are taken to
    alternate opening and closing.
    """

    name = "word"
    params = (_LOWERCASE,)

    def __init__(self, lowercase: bool = False) -> None:
        self.lowercase = lowercase

    def tokenize(self, text: str) -> list[str]:
        return _WORD.findall(text.lower() if self.lowercase else text)

    def detokenize(self, tokens: Sequence[str]) -> str:
        pieces: list[str] = []
        quoted = False  # inside a straight double quote
        for token in tokens:
            if pieces:
                closes = token in _NO_SPACE_BEFORE or (token == '"' and quoted)
                opens = pieces[-1] in _NO_SPACE_AFTER or (pieces[-1] == '"' and quoted)
                if not closes and not opens:
                    pieces.append(" ")
            pieces.append(token)
            if token == '"':
                quoted = not quoted
        return "".join(pieces)


@hookimpl
def transduce_components() -> list[type[Tokenizer]]:
    return [CharTokenizer, WordTokenizer]
