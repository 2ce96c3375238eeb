"""The `korean` tokenizer: Kiwi morphemes, word-start marks, round trips, and the missing-dependency message."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from transduce_builtins import korean
from transduce_builtins.korean import WORD_START, KoreanTokenizer, transduce_components

from transduce._cli import main as cli
from transduce.api import Tokenizer

INSTALL = "pip install 'transduce[korean]'"

# Questions and answers in the style of the Korean chatbot data, with Latin, digits, emoji and symbols mixed in.
SENTENCES = [
    "12시 땡!",
    "하루가 또 가네요.",
    "오늘 날씨가 좋아서 산책을 갈까요?",
    "SNS 맞팔 왜 안하지ㅠㅠ",
    "가끔은 혼자인게 좋다",
    "배터리 3.5% 남았어요. e-mail: kim@example.com 😀",
    "더워서 도와줘 했어 좋아욬ㅋ",
    "떠나요~ 제주도~ (2박 3일)",
]


@pytest.fixture(scope="module")
def plain() -> KoreanTokenizer:
    tokenizer = KoreanTokenizer()
    tokenizer.tokenize("준비")  # loads Kiwi once for the module (one analyser per process)
    return tokenizer


@pytest.fixture(scope="module")
def tagged() -> KoreanTokenizer:
    return KoreanTokenizer(tags=True)


def test_korean_is_registered_as_a_tokenizer() -> None:
    assert transduce_components() == [KoreanTokenizer]
    assert issubclass(KoreanTokenizer, Tokenizer) and KoreanTokenizer.name == "korean"


def test_tokens_are_morphemes_as_written_with_word_starts_marked(plain: KoreanTokenizer) -> None:
    assert plain.tokenize("하루가 또 가네요.") == ["▁하루", "가", "▁또", "▁가", "네요", "."]
    # 가 + ᆯ까요 share the syllable 갈, so they stay one token as written
    assert plain.tokenize("갈까요?") == ["▁갈까요", "?"]


def test_tagged_tokens_are_dictionary_forms_with_their_part_of_speech(tagged: KoreanTokenizer) -> None:
    assert tagged.tokenize("하루가 또 가네요.") == ["▁하루/NNG", "가/JKS", "▁또/MAG", "▁가/VV", "네요/EF", "./SF"]
    assert tagged.tokenize("갈까요?") == ["▁가/VV", "ᆯ까요/EF", "?/SF"]


@pytest.mark.parametrize("text", SENTENCES)
def test_round_trip_of_morphemes_as_written_gives_back_the_text(plain: KoreanTokenizer, text: str) -> None:
    assert plain.detokenize(plain.tokenize(text)) == text


@pytest.mark.parametrize("text", [s for s in SENTENCES if s != "가끔은 혼자인게 좋다"])
def test_round_trip_of_tagged_morphemes_conjugates_them_back(tagged: KoreanTokenizer, text: str) -> None:
    assert tagged.detokenize(tagged.tokenize(text)) == text


def test_tagged_round_trip_spells_contractions_out(tagged: KoreanTokenizer) -> None:
    assert tagged.detokenize(tagged.tokenize("가끔은 혼자인게 좋다")) == "가끔은 혼자인것이 좋다"


def test_latin_digits_emoji_and_symbols_are_tokens_of_their_own(plain: KoreanTokenizer) -> None:
    tokens = plain.tokenize("Hello world 123 😀 ㅋㅋ")
    assert tokens == ["▁Hello", "▁world", "▁123", "▁😀", "▁ㅋㅋ"]


def test_spacing_is_normalised_and_invisible_characters_dropped(plain: KoreanTokenizer) -> None:
    raw = "  안녕\u200b하세요\u00a0!  반가워요 "
    assert plain.detokenize(plain.tokenize(raw)) == "안녕하세요 ! 반가워요"


def test_empty_or_blank_text_gives_no_tokens(plain: KoreanTokenizer, tagged: KoreanTokenizer) -> None:
    for tokenizer in (plain, tagged):
        assert tokenizer.tokenize("") == [] and tokenizer.tokenize(" \n ") == []
        assert tokenizer.detokenize([]) == ""


def test_detokenize_copes_with_tokens_that_are_not_morphemes(tagged: KoreanTokenizer) -> None:
    # A model can output the vocabulary's <unk>; a tag Kiwi does not know falls back to the forms.
    assert tagged.detokenize(["▁하루/NNG", "가/JKS", "▁<unk>"]) == "하루가 <unk>"
    assert tagged.detokenize(["▁하루/NNG", f"{WORD_START}x/NOTATAG"]) == "하루 x"


def test_constructing_does_not_load_the_analyser(monkeypatch: pytest.MonkeyPatch) -> None:
    def load() -> None:
        raise AssertionError("Kiwi loaded by the constructor")

    monkeypatch.setattr(korean, "_kiwi", load)
    KoreanTokenizer(tags=True)


def test_without_kiwipiepy_construction_fails_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kiwipiepy", None)
    with pytest.raises(ImportError, match=r"kiwipiepy: pip install 'transduce\[korean\]'"):
        KoreanTokenizer()


def test_check_names_the_recipe_key_and_the_install_command_when_kiwipiepy_is_missing(
    make_recipe: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "kiwipiepy", None)
    status = cli.main(["check", str(make_recipe(source={"tokenizer": "korean"}))])
    err = capsys.readouterr().err
    assert status == 2
    assert "source.tokenizer" in err and "tokenizer 'korean' cannot be used" in err and INSTALL in err
    assert "Traceback" not in err
