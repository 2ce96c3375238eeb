"""Tests of the built-in char and word tokenizers: splitting, round trips, lowercasing."""

from __future__ import annotations

import pytest
from transduce_builtins.tokenizers import CharTokenizer, WordTokenizer, transduce_components

from transduce.api import Tokenizer

SENTENCES = [
    "Hello, world! It's 9:30.",
    "I don't know l'homme, a well-known man (really).",
    "Is it 3.5% or 1,000 people on 12/05/2020?",
    'He said "hi" and left.',
    '"Yes," she said, "it costs 3.50 dollars."',
    "¿Qué tal? [Bien] {ok} «merci»",
    "Wait... what?!",
    "the dogs' toys; a list: one, two",
    "Ünïcödé wörds ça va",
]


def test_both_tokenizers_are_registered_under_their_names() -> None:
    classes = transduce_components()
    assert {cls.name: cls for cls in classes} == {"char": CharTokenizer, "word": WordTokenizer}
    assert all(issubclass(cls, Tokenizer) and cls.description() for cls in classes)


# --- char --------------------------------------------------------------------


def test_char_tokenizer_makes_every_character_a_token_spaces_included() -> None:
    assert CharTokenizer().tokenize("ab c!") == ["a", "b", " ", "c", "!"]


@pytest.mark.parametrize("text", [*SENTENCES, "", "  two  spaces\tand a tab\n"])
def test_char_tokenizer_round_trip_gives_back_the_text_exactly(text: str) -> None:
    tokenizer = CharTokenizer()
    assert tokenizer.detokenize(tokenizer.tokenize(text)) == text


def test_char_tokenizer_lowercase_option_lowercases_before_splitting() -> None:
    assert CharTokenizer(lowercase=True).tokenize("AbÇ") == ["a", "b", "ç"]
    assert CharTokenizer().tokenize("AbÇ") == ["A", "b", "Ç"]


# --- word --------------------------------------------------------------------


def test_word_tokenizer_splits_off_punctuation() -> None:
    assert WordTokenizer().tokenize("Hello, world! (Yes)") == ["Hello", ",", "world", "!", "(", "Yes", ")"]


def test_word_tokenizer_makes_each_repeated_punctuation_mark_its_own_token() -> None:
    assert WordTokenizer().tokenize("Wait...?!") == ["Wait", ".", ".", ".", "?", "!"]


@pytest.mark.parametrize("word", ["don't", "l'homme", "It's", "aujourd’hui", "well-known", "state-of-the-art"])
def test_word_tokenizer_keeps_inner_apostrophes_and_hyphens_in_one_token(word: str) -> None:
    assert WordTokenizer().tokenize(f"so {word}.") == ["so", word, "."]


@pytest.mark.parametrize("number", ["9:30", "3.5", "1,000", "12/05/2020", "1.2.3", "9:30am", "3.5-fold", "v2.0"])
def test_word_tokenizer_keeps_numbers_with_inner_separators_in_one_token(number: str) -> None:
    assert WordTokenizer().tokenize(f"at {number}, ok") == ["at", number, ",", "ok"]


def test_word_tokenizer_splits_a_sentence_final_period_off_a_number() -> None:
    assert WordTokenizer().tokenize("Born in 1990. Then 7.") == ["Born", "in", "1990", ".", "Then", "7", "."]


def test_word_tokenizer_splits_separators_that_are_not_between_digits() -> None:
    assert WordTokenizer().tokenize("a.b 1. 2 ,3") == ["a", ".", "b", "1", ".", "2", ",", "3"]


def test_word_tokenizer_splits_leading_and_trailing_apostrophes_and_hyphens() -> None:
    assert WordTokenizer().tokenize("dogs' -x") == ["dogs", "'", "-", "x"]


@pytest.mark.parametrize("text", SENTENCES)
def test_word_tokenizer_round_trip_gives_back_ordinary_sentences(text: str) -> None:
    tokenizer = WordTokenizer()
    assert tokenizer.detokenize(tokenizer.tokenize(text)) == text


def test_word_tokenizer_round_trip_normalises_spacing() -> None:
    tokenizer = WordTokenizer()
    assert tokenizer.detokenize(tokenizer.tokenize("a  b ,c ( d )\te ;")) == "a b, c (d) e;"


def test_word_detokenize_attaches_closing_and_opening_punctuation() -> None:
    tokens = ["(", "a", ")", "b", ",", "c", "%", "[", "d", "]", "e", "!"]
    assert WordTokenizer().detokenize(tokens) == "(a) b, c% [d] e!"


def test_word_detokenize_treats_straight_double_quotes_as_alternately_opening_and_closing() -> None:
    assert WordTokenizer().detokenize(['"', "a", '"', "b", '"', "c", "d", '"', "."]) == '"a" b "c d".'
    assert WordTokenizer().detokenize(['"', '"']) == '""'


def test_word_tokenizer_on_empty_or_blank_text_gives_no_tokens() -> None:
    tokenizer = WordTokenizer()
    assert tokenizer.tokenize("") == []
    assert tokenizer.tokenize("  \t\n") == []
    assert tokenizer.detokenize([]) == ""


def test_word_tokenizer_lowercase_option() -> None:
    assert WordTokenizer(lowercase=True).tokenize("Don't SHOUT, Éric") == ["don't", "shout", ",", "éric"]
    assert WordTokenizer().tokenize("Don't SHOUT") == ["Don't", "SHOUT"]


def test_word_tokenizer_lowercase_round_trip_gives_the_lowercased_text() -> None:
    tokenizer = WordTokenizer(lowercase=True)
    text = "Hello, World! It's 9:30."
    assert tokenizer.detokenize(tokenizer.tokenize(text)) == text.lower()
