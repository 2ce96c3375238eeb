"""Built-in tokenizers: characters and words, with the text normalisation the other tokenizers share."""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from collections.abc import Callable, Iterator, Sequence

from transduce.api import Param, Tokenizer, hookimpl

_LOWERCASE = Param("lowercase", bool, False, "lowercase the text before splitting it")

# --- normalisation -------------------------------------------------------------

NORMALIZATIONS = ("NFKC", "NFC", "none")

# Invisible characters that only hint at line breaking or hyphenation: zero-width space, word
# joiner, byte-order mark, soft hyphen. They are deleted, never kept as (parts of) tokens.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u2060\ufeff\u00ad"))

# Hangul compatibility jamo (ㅋ, ㅠ, as in ㅋㅋ and ㅠㅠ of Korean chat) are kept as they are: NFKC
# would turn them into conjoining jamo, which render differently and never match the references.
_NOT_JAMO = re.compile(r"[^\u3131-\u318e]+")


def normalize_text(text: str, form: str = "NFKC") -> str:
    """`text` in Unicode normal form `form` (one of NORMALIZATIONS), without invisible characters.

    NFKC also turns the no-break, narrow no-break and thin spaces that French puts before
    `! ? : ;` into plain spaces, and full-width or ligature forms into ordinary letters.
    """
    if form != "none":
        text = _NOT_JAMO.sub(lambda match: unicodedata.normalize(form, match.group()), text)
    return text.translate(_INVISIBLE)


# --- char ----------------------------------------------------------------------


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


# --- word ----------------------------------------------------------------------


@functools.cache
def _word_pattern() -> re.Pattern[str]:
    """The token pattern, built on first use (listing the combining marks takes a moment).

    A word is letters and digits with their combining marks (so Devanagari or decomposed
    accents stay whole), joined inside by apostrophes, hyphens or ampersands (don't,
    l'homme, aujourd’hui, well-known, R&B) and by separators between digits (9:30, 3.5,
    1,000, 12/05/2020); it keeps a hyphen that a space follows (German "Zwei- und
    vierbeinige"). Single letters with periods are one token (U.S.A., e.g.). Any other
    non-space character is a token of its own, with the marks and joiners that follow it.
    """
    marks = "".join(f"{re.escape(chr(first))}-{re.escape(chr(last))}" for first, last in _ranges(_is_extending))
    extend = f"[{marks}\u200c\u200d]"  # combining marks, zero-width (non-)joiner, emoji modifiers
    word = rf"\w(?:\w|{extend})*"
    joined = rf"{word}(?:(?:['’&-]|(?<=\d)[.,:/](?=\d)){word})*(?:-(?=\s))?"
    initials = r"(?:\b[^\W\d_]\.){2,}"
    return re.compile(rf"{initials}|{joined}|[^\w\s]{extend}*")


def _is_extending(char: str) -> bool:
    return unicodedata.category(char).startswith("M") or "\U0001f3fb" <= char <= "\U0001f3ff"


def _ranges(predicate: Callable[[str], bool]) -> list[tuple[int, int]]:
    """Runs of consecutive code points for which `predicate(char)` holds."""
    runs: list[tuple[int, int]] = []
    start = None
    for point in range(sys.maxunicode + 2):
        inside = point <= sys.maxunicode and predicate(chr(point))
        if inside and start is None:
            start = point
        elif not inside and start is not None:
            runs.append((start, point - 1))
            start = None
    return runs


# How a token attaches to its neighbours when detokenizing. Quotes that look the same when
# opening and closing are handled by `_attachments`.
_NO_SPACE_BEFORE = frozenset(".,!?;:%)]}…»”’'~")
_NO_SPACE_AFTER = frozenset("([{«¿¡$#")
# French puts a space before these and inside guillemets.
_FRENCH_SPACED = frozenset("!?;:%«»")
# German opening quotes and the quotes that close them; where none is open, “ and ‘ open (English).
_GERMAN_QUOTES = {"“": "„", "‘": "‚"}


def _attachments(tokens: Sequence[str], french: bool) -> Iterator[tuple[bool, bool]]:
    """For each token: whether it attaches to the token before it, and to the token after it.

    Straight double quotes alternate opening and closing; so do straight single quotes when a
    sentence has an even number of them ('Thriller'), otherwise one is an apostrophe (the dogs').
    """
    alternating = {'"'} | ({"'"} if tokens.count("'") % 2 == 0 else set())
    open_quotes: set[str] = set()
    for token in tokens:
        if token in alternating:
            closing = token in open_quotes
            open_quotes ^= {token}
            yield closing, not closing
        elif token in ("„", "‚"):
            open_quotes.add(token)
            yield False, True
        elif token in _GERMAN_QUOTES:
            closing = _GERMAN_QUOTES[token] in open_quotes
            open_quotes.discard(_GERMAN_QUOTES[token])
            yield closing, not closing
        elif french and token in _FRENCH_SPACED:
            yield False, False
        else:
            yield token in _NO_SPACE_BEFORE, token in _NO_SPACE_AFTER


class WordTokenizer(Tokenizer):
    """Splits on whitespace and punctuation; detokenizing re-attaches punctuation.

    Text is first put in Unicode normal form `normalize` (NFKC by default, which makes the
    no-break and narrow no-break spaces of French typography plain spaces) and stripped of
    invisible characters (zero-width space, soft hyphen). Round trips also normalise spacing:
    one space between words, none before closing punctuation or after opening brackets and
    quotes; straight quotes are taken to alternate opening and closing. With
    `language: fr`, a plain space goes before `! ? ; : %` and inside « » (plain rather than
    narrow no-break: NFKC makes every such space plain, so that is what normalised references
    hold, and most Tatoeba French lines use it).
    """

    name = "word"
    params = (
        _LOWERCASE,
        Param(
            "normalize",
            str,
            "NFKC",
            "Unicode normalisation before splitting (NFKC also unifies spaces and full-width forms)",
            choices=NORMALIZATIONS,
        ),
        Param(
            "language",
            str,
            None,
            "typography of detokenized text: fr puts a space before ! ? ; : % and inside « »; null: English",
            choices=("fr",),
            nullable=True,
        ),
    )

    def __init__(self, lowercase: bool = False, normalize: str = "NFKC", language: str | None = None) -> None:
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, got {normalize!r}")
        if language not in (None, "fr"):
            raise ValueError(f"language must be fr or null, got {language!r}")
        self.lowercase = lowercase
        self.normalize = normalize
        self.language = language

    def tokenize(self, text: str) -> list[str]:
        text = normalize_text(text, self.normalize)
        return _word_pattern().findall(text.lower() if self.lowercase else text)

    def detokenize(self, tokens: Sequence[str]) -> str:
        pieces: list[str] = []
        glued = True  # the previous token attaches to the next one (true at the start)
        for token, (left, right) in zip(tokens, _attachments(tokens, self.language == "fr"), strict=True):
            if not (left or glued):
                pieces.append(" ")
            pieces.append(token)
            glued = right
        return "".join(pieces)


@hookimpl
def transduce_components() -> list[type[Tokenizer]]:
    return [CharTokenizer, WordTokenizer]
