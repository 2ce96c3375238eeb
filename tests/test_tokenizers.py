"""Tests of the built-in char and word tokenizers: splitting, round trips, lowercasing."""

from __future__ import annotations

import pytest
from transduce_builtins.tokenizers import CharTokenizer, WordTokenizer, normalize_text, transduce_components

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


# --- word: Unicode normalisation ---------------------------------------------------------

# The spaces French typography puts before ! ? : ; and inside « » (the Tatoeba French side has all four).
FRENCH_SPACES = ["\u202f", "\u00a0", "\u2009", " "]


@pytest.mark.parametrize("space", FRENCH_SPACES)
@pytest.mark.parametrize("normalize", ["NFKC", "NFC", "none"])
def test_word_tokenizer_treats_french_typographic_spaces_as_spacing_never_as_tokens(space: str, normalize: str) -> None:
    tokens = WordTokenizer(normalize=normalize).tokenize(
        f"«{space}Cours{space}!{space}» Qui{space}? Note{space}: oui{space};"
    )
    assert tokens == ["«", "Cours", "!", "»", "Qui", "?", "Note", ":", "oui", ";"]


@pytest.mark.parametrize("invisible", ["\u200b", "\u00ad", "\u2060", "\ufeff"])
def test_word_tokenizer_drops_invisible_characters(invisible: str) -> None:
    assert WordTokenizer().tokenize(f"bon{invisible}jour {invisible}!") == ["bonjour", "!"]


def test_nfkc_unifies_compatibility_forms_and_nfc_keeps_them() -> None:
    text = "ｆｕｌｌ ﬁne ²"
    assert WordTokenizer().tokenize(text) == ["full", "fine", "2"]
    assert WordTokenizer(normalize="NFC").tokenize(text) == ["ｆｕｌｌ", "ﬁne", "²"]


def test_nfc_composes_accents_and_without_normalisation_combining_marks_stay_in_their_word() -> None:
    decomposed = "cafe\u0301 Mu\u0308nchen"
    assert WordTokenizer(normalize="NFC").tokenize(decomposed) == ["café", "München"]
    assert WordTokenizer(normalize="none").tokenize(decomposed) == ["cafe\u0301", "Mu\u0308nchen"]


@pytest.mark.parametrize("word", ["हिन्दी", "ภาษาไทย", "한국어", "Straße", "naïve", "Ελληνικά"])
def test_word_tokenizer_keeps_words_of_any_script_whole(word: str) -> None:
    assert WordTokenizer().tokenize(f"({word}),") == ["(", word, ")", ","]


def test_normalisation_keeps_hangul_compatibility_jamo_that_nfkc_would_change() -> None:
    assert normalize_text("ㅋㅋ ㅠㅠ ｆ") == "ㅋㅋ ㅠㅠ f"
    assert WordTokenizer().tokenize("안하지ㅠㅠ ㅋㅋ") == ["안하지ㅠㅠ", "ㅋㅋ"]


def test_word_tokenizer_rejects_an_unknown_normalisation() -> None:
    with pytest.raises(ValueError, match="NFKC, NFC, none"):
        WordTokenizer(normalize="NFD")


# --- word: languages ---------------------------------------------------------------------


@pytest.mark.parametrize("word", ["l’homme", "aujourd'hui", "qu’il", "Zwei-", "U.S.A.", "e.g."])
def test_word_tokenizer_keeps_apostrophe_words_suspended_hyphens_and_initials_whole(word: str) -> None:
    assert WordTokenizer().tokenize(f"{word} und") == [word, "und"]


def test_word_tokenizer_splits_words_with_periods_that_are_not_initials() -> None:
    assert WordTokenizer().tokenize("end.Next U.S. ok") == ["end", ".", "Next", "U.S.", "ok"]


ENGLISH = [
    "Tom doesn't know what Mary's doing.",
    "She said “hi” to me, and he said ‘bye’.",
    "It costs $30 (about 25 euros) at #1 store.",
    "A S.C.U.B.A. diver swims in deep blue water.",
    "Wait... what?!",
]
FRENCH = [
    "Tout le monde à bord !",
    "Est-ce que tu viens aujourd'hui ?",
    "« J'aime voyager. » « Moi aussi. »",
    "Il a dit : « Non ; jamais ! »",
    "J'en suis sûr à 99 %.",
    "L’homme qu’il a vu à 9:30 mesure 1,80 m.",
]
GERMAN = [
    "Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche.",
    "Ein Mann mit einem Schild „Geschlossen“ steht vor der Tür.",
    "Zwei- und vierbeinige Nachbarn kommen auf einen Besuch vorbei.",
    "Die Größe ist 3,5 Meter; der Preis: 20 €.",
]
KOREAN = [
    "12시 땡!",
    "SNS 맞팔 왜 안하지ㅠㅠ",
    "하루가 또 가네요.",
    "떠나요~ 제주도~",
    "배터리 15% 남았네. 충전해야지?",
]


@pytest.mark.parametrize("text", [*ENGLISH, *GERMAN, *KOREAN])
def test_word_tokenizer_round_trip_gives_back_english_german_and_korean_text(text: str) -> None:
    tokenizer = WordTokenizer()
    assert tokenizer.detokenize(tokenizer.tokenize(text)) == text


@pytest.mark.parametrize("text", FRENCH)
def test_word_tokenizer_round_trip_gives_back_french_text_with_language_fr(text: str) -> None:
    tokenizer = WordTokenizer(language="fr")
    assert tokenizer.detokenize(tokenizer.tokenize(text)) == text


def test_french_typographic_spaces_come_back_as_plain_spaces_with_language_fr() -> None:
    tokenizer = WordTokenizer(language="fr")
    raw = "«\u00a0Cours\u202f!\u00a0» Qui\u2009? Moi\u202f: oui\u202f;"
    assert tokenizer.detokenize(tokenizer.tokenize(raw)) == "« Cours ! » Qui ? Moi : oui ;"
    assert WordTokenizer().detokenize(tokenizer.tokenize(raw)) == "«Cours!» Qui? Moi: oui;"


def test_french_spacing_leaves_numbers_and_elisions_alone() -> None:
    tokenizer = WordTokenizer(language="fr")
    assert tokenizer.detokenize(["C'est", "à", "9:30", "l'heure", "?"]) == "C'est à 9:30 l'heure ?"


def test_word_detokenize_pairs_curly_and_german_quotes() -> None:
    detokenize = WordTokenizer().detokenize
    assert detokenize(["er", "sagt", "„", "ja", "“", "und", "„", "nein", "“", "."]) == "er sagt „ja“ und „nein“."
    assert detokenize(["she", "said", "“", "yes", "”", "and", "‘", "no", "’", "."]) == "she said “yes” and ‘no’."
    assert detokenize(["„", "a", "‚", "b", "‘", "c", "“"]) == "„a ‚b‘ c“"


def test_word_detokenize_pairs_straight_single_quotes_and_attaches_a_lone_apostrophe() -> None:
    detokenize = WordTokenizer().detokenize
    assert detokenize(["a", "'", "Grand", "Opening", "'", "sign", "'", "x", "'"]) == "a 'Grand Opening' sign 'x'"
    assert detokenize(["the", "dogs", "'", "toys", "."]) == "the dogs' toys."


def test_word_detokenize_attaches_currency_hash_and_tilde() -> None:
    assert WordTokenizer().detokenize(["$", "5", "#", "1", "좋아요", "~", "~"]) == "$5 #1 좋아요~~"
