"""The `korean` tokenizer: morphemes found by Kiwi (kiwipiepy), with word starts marked for exact joining."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from transduce_builtins.tokenizers import NORMALIZATIONS, normalize_text

from transduce.api import Param, Tokenizer, hookimpl

if TYPE_CHECKING:
    from kiwipiepy import Kiwi

INSTALL_HINT = "pip install 'transduce[korean]' (or pip install kiwipiepy)"

#: Starts every token that begins a word (the text had a space, or nothing, before it).
WORD_START = "▁"

# What `tags: true` tokens look like after the word-start mark: form/TAG, the tag possibly
# marking regular or irregular conjugation (VV-R, VA-I).
_TAGGED = re.compile(r"(.+)/([A-Z_]+(?:-[RI])?)")
_UNTAGGED = "SW"  # Kiwi's tag for other symbols: used for text Kiwi left out and for tokens without a tag


class _Morpheme(NamedTuple):
    start: int  # where it is written in the text
    end: int
    form: str  # dictionary form, e.g. 었 for the 았 of 올랐어요
    tag: str
    word_start: bool  # the text has a space (or nothing) before it


@functools.cache
def _kiwi() -> Kiwi:
    """One analyser per process: its model takes ~100 MB and about a second to load.

    Without the typo and multi-word dictionaries it loads three times faster (they cost ~2 s) and
    tokenizes the Korean chatbot questions and answers exactly the same.
    """
    from kiwipiepy import Kiwi

    return Kiwi(num_workers=1, load_typo_dict=False, load_multi_dict=False)


class KoreanTokenizer(Tokenizer):
    """Korean morphemes found by Kiwi (kiwipiepy, no Java); needs pip install 'transduce[korean]'.

    Every token that starts a word begins with ▁, as in sentencepiece, so detokenizing gives
    the text's own spacing back. With `tags: false` (the default) a token is a morpheme as the
    text writes it (하루 가 ▁또 ▁가 네요 .), and joining gives the normalised text back exactly.
    With `tags: true` a token is the morpheme's dictionary form and part-of-speech tag
    (▁가/VV ᆯ까요/EF), a smaller, more regular vocabulary that Kiwi conjugates back when joining
    (가 + ᆯ까요 -> 갈까요); contractions come back spelled out (게 -> 것이), so round trips are
    a little less exact. Latin words, numbers, emoji and punctuation are tokens of their own.
    The text is first put in Unicode form `normalize` (NFKC keeps Hangul jamo such as ㅋㅋ).
    """

    name = "korean"
    params = (
        Param("tags", bool, False, "tokens are dictionary form/TAG, conjugated back by Kiwi; false: as written"),
        Param("normalize", str, "NFKC", "Unicode normalisation of the text", choices=NORMALIZATIONS),
    )

    def __init__(self, tags: bool = False, normalize: str = "NFKC") -> None:
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, got {normalize!r}")
        try:
            import kiwipiepy  # noqa: F401 - only checked here; the analyser loads on first use
        except ImportError:
            raise ModuleNotFoundError(f"it needs the Korean analyser kiwipiepy: {INSTALL_HINT}") from None
        self.tags = tags
        self.normalize = normalize

    def tokenize(self, text: str) -> list[str]:
        text = normalize_text(text, self.normalize)
        if not text.strip():
            return []
        morphemes = _morphemes(text)
        if self.tags:
            return [_mark(m.word_start, f"{m.form}/{m.tag}") for m in morphemes]
        return [_mark(word_start, text[start:end]) for start, end, word_start in _written_pieces(morphemes)]

    def detokenize(self, tokens: Sequence[str]) -> str:
        if not tokens:
            return ""
        if not self.tags:
            return "".join(" " + t[1:] if t.startswith(WORD_START) else t for t in tokens).removeprefix(" ")
        morphs = []
        for i, token in enumerate(tokens):
            body = token.removeprefix(WORD_START)
            tagged = _TAGGED.fullmatch(body)
            form, tag = tagged.groups() if tagged else (body, _UNTAGGED)
            morphs.append((form, tag, i > 0 and token.startswith(WORD_START)))
        try:
            return _kiwi().join(morphs)
        except ValueError:  # a tag Kiwi does not know: keep the forms, spaced as marked
            return "".join((" " if space else "") + form for form, _, space in morphs)


def _morphemes(text: str) -> list[_Morpheme]:
    """Kiwi's morphemes of `text`, plus any non-space text it left out (as symbols)."""
    end = len(text)
    found = [(t.start, t.start + t.len, t.form, t.tag) for t in _kiwi().tokenize(text)]
    covered = 0
    result: list[_Morpheme] = []
    for start, stop, form, tag in [*found, (end, end, "", "")]:
        if start > covered:
            for left_out in re.finditer(r"\S+", text[covered:start]):
                result.append(_morpheme(text, covered + left_out.start(), left_out.group(), _UNTAGGED, covered))
        if form:
            result.append(_morpheme(text, start, form, tag, covered, stop))
        covered = max(covered, stop)
    return result


def _morpheme(text: str, start: int, form: str, tag: str, covered: int, stop: int | None = None) -> _Morpheme:
    """A morpheme at `start`; it starts a word unless it shares a syllable with the one before (it starts before
    `covered`, the end of the text seen so far) or follows a non-space."""
    word_start = start >= covered and (start == 0 or text[start - 1].isspace())
    return _Morpheme(start, start + len(form) if stop is None else stop, form, tag, word_start)


def _written_pieces(morphemes: list[_Morpheme]) -> list[tuple[int, int, bool]]:
    """(start, end, word start) of the text the morphemes occupy; morphemes written in one syllable
    (가 + ᆯ까요 in 갈까요) share one piece."""
    pieces: list[tuple[int, int, bool]] = []
    for m in morphemes:
        if pieces and m.start < pieces[-1][1]:
            start, end, word_start = pieces[-1]
            pieces[-1] = (start, max(end, m.end), word_start)
        else:
            pieces.append((m.start, m.end, m.word_start))
    return pieces


def _mark(word_start: bool, token: str) -> str:
    return WORD_START + token if word_start else token


@hookimpl
def transduce_components() -> list[type[Tokenizer]]:
    return [KoreanTokenizer]
