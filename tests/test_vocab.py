"""Tests of vocabularies: building, encoding, decoding and the JSON file format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from transduce._data.vocab import BOS, EOS, PAD, SPECIALS, UNK, Vocabulary
from transduce.errors import RunError, TransduceError

CORPUS = [["b", "a", "c"], ["a", "b", "d"], ["a", "e"], ["b"]]  # a: 3, b: 3, c/d/e: 1


def test_specials_come_first_with_fixed_indices() -> None:
    vocab = Vocabulary.build(CORPUS)
    assert vocab.tokens[:4] == [PAD, UNK, BOS, EOS] == list(SPECIALS)
    assert (vocab.pad_index, vocab.unk_index, vocab.bos_index, vocab.eos_index) == (0, 1, 2, 3)
    assert vocab.encode([PAD, UNK, BOS, EOS]) == [0, 1, 2, 3]


def test_tokens_are_ranked_by_frequency_then_alphabetically() -> None:
    assert Vocabulary.build(CORPUS).tokens[4:] == ["a", "b", "c", "d", "e"]
    assert Vocabulary.build([["z", "z", "y"], ["x"], ["y"]]).tokens[4:] == ["y", "z", "x"]


def test_tie_order_does_not_depend_on_the_order_tokens_are_seen() -> None:
    first = Vocabulary.build([["q", "p", "r", "s"], ["s"]])
    second = Vocabulary.build([["s", "r"], ["p", "s", "q"]])
    assert first.tokens == second.tokens == [*SPECIALS, "s", "p", "q", "r"]


def test_min_freq_drops_rarer_tokens() -> None:
    assert Vocabulary.build(CORPUS, min_freq=2).tokens[4:] == ["a", "b"]
    assert Vocabulary.build(CORPUS, min_freq=4).tokens == list(SPECIALS)


def test_max_size_counts_the_specials() -> None:
    vocab = Vocabulary.build(CORPUS, max_size=6)
    assert len(vocab) == 6
    assert vocab.tokens[4:] == ["a", "b"]


def test_max_size_below_the_number_of_specials_keeps_only_the_specials() -> None:
    assert Vocabulary.build(CORPUS, max_size=2).tokens == list(SPECIALS)


def test_max_size_larger_than_the_data_keeps_everything() -> None:
    assert len(Vocabulary.build(CORPUS, max_size=100)) == 9


def test_special_strings_in_the_data_are_not_duplicated_and_do_not_use_up_max_size() -> None:
    data = [[BOS, BOS, BOS, "a", "b"], ["a", EOS, UNK]]
    vocab = Vocabulary.build(data, max_size=6)
    assert vocab.tokens == [*SPECIALS, "a", "b"]
    assert vocab.encode([BOS]) == [vocab.bos_index]


def test_unknown_tokens_encode_to_unk() -> None:
    vocab = Vocabulary.build(CORPUS)
    assert vocab.encode(["a", "never-seen", "e"]) == [4, vocab.unk_index, 8]


def test_decode_stops_at_eos_and_drops_pad_and_bos() -> None:
    vocab = Vocabulary.build(CORPUS)
    a, b, c = vocab.encode(["a", "b", "c"])
    assert vocab.decode([vocab.bos_index, a, vocab.pad_index, b, vocab.eos_index, c]) == ["a", "b"]
    assert vocab.decode([vocab.eos_index, a]) == []


def test_decode_keeps_unk() -> None:
    vocab = Vocabulary.build(CORPUS)
    assert vocab.decode([vocab.unk_index, 4]) == [UNK, "a"]


def test_decode_inverts_encode_for_known_tokens() -> None:
    vocab = Vocabulary.build(CORPUS)
    assert vocab.decode(vocab.encode(["e", "a", "d"])) == ["e", "a", "d"]


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    vocab = Vocabulary.build([["été", "naïve", "日本"], ["été"]])
    path = tmp_path / "vocab.json"
    vocab.save(path)
    loaded = Vocabulary.load(path)
    assert loaded.tokens == vocab.tokens
    assert loaded.encode(["日本", "été", "x"]) == vocab.encode(["日本", "été", "x"])
    assert json.loads(path.read_text(encoding="utf-8")) == {"tokens": vocab.tokens}
    assert "été" in path.read_text(encoding="utf-8")  # stored readable, not \\u-escaped


@pytest.mark.parametrize(
    "content",
    [
        "not json at all",
        '{"vocab": ["<pad>"]}',
        "[1, 2, 3]",
        '{"tokens": null}',
        '{"tokens": 5}',
        '{"tokens": "<pad><unk>"}',
        '{"tokens": ["a", "b"]}',
        '{"tokens": ["<pad>", "<unk>", "<s>", "</s>", 7]}',
        '{"tokens": ["<pad>", "<unk>", "<s>", "</s>", "a", "a"]}',
        '{"tokens": ["<pad>", "<unk>", "<s>", "</s>", "<s>"]}',
    ],
    ids=[
        "text",
        "no-tokens-key",
        "json-list",
        "null-tokens",
        "number-tokens",
        "string-tokens",
        "no-specials",
        "non-string-token",
        "duplicate-token",
        "duplicate-special",
    ],
)
def test_loading_a_file_that_is_not_a_vocabulary_raises_run_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "vocab.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(RunError, match="vocab.json"):
        Vocabulary.load(path)


def test_loading_a_binary_or_missing_file_raises_run_error(tmp_path: Path) -> None:
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(RunError):
        Vocabulary.load(binary)
    with pytest.raises(RunError):
        Vocabulary.load(tmp_path / "missing.json")
    assert issubclass(RunError, TransduceError)
