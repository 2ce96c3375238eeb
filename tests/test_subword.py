"""The `subword` tokenizer: learning a sentencepiece model from streamed texts, saving, loading, round trips."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from transduce_builtins.subword import MODEL_FILE, VOCAB_FILE, SubwordTokenizer, transduce_components

from transduce._cli import main as cli
from transduce.api import DataError, Tokenizer, TransduceError

SUBJECTS = ["le chat", "la femme", "l'homme", "un élève", "the dog", "my brother", "die Straße", "ein Mädchen"]
VERBS = ["voit", "mange", "aime", "sees", "likes", "sieht", "öffnet"]
OBJECTS = ["une pomme", "le garçon", "a ball", "the river", "den Fluß", "große Bäume", "ㅋㅋ 좋아요"]


def corpus() -> Iterator[str]:
    """A few hundred generated sentences in French, English, German and some Korean (a generator, like the core's)."""
    for subject, verb, obj in itertools.product(SUBJECTS, VERBS, OBJECTS):
        yield f"{subject.capitalize()} {verb} {obj} !"


def fitted(directory: Path, **params: object) -> SubwordTokenizer:
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = SubwordTokenizer(vocab_size=120, **params)  # type: ignore[arg-type]
    tokenizer.fit(corpus(), directory)
    return tokenizer


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> tuple[SubwordTokenizer, Path]:
    directory = tmp_path_factory.mktemp("subword")
    return fitted(directory), directory


def test_subword_is_registered_as_a_tokenizer() -> None:
    assert transduce_components() == [SubwordTokenizer]
    assert issubclass(SubwordTokenizer, Tokenizer) and SubwordTokenizer.name == "subword"


def test_fit_saves_the_model_and_its_vocabulary_in_the_directory(learned: tuple[SubwordTokenizer, Path]) -> None:
    _, directory = learned
    assert sorted(p.name for p in directory.iterdir()) == [MODEL_FILE, VOCAB_FILE]
    pieces = (directory / VOCAB_FILE).read_text(encoding="utf-8").splitlines()
    assert 50 < len(pieces) <= 120
    assert pieces[0] == "<unk>\t0" and all(len(line.split("\t")) == 2 for line in pieces)


def test_tokenize_gives_subword_pieces_shorter_than_characters(learned: tuple[SubwordTokenizer, Path]) -> None:
    tokenizer, _ = learned
    tokens = tokenizer.tokenize("La femme aime le garçon !")
    assert tokens[0].startswith("▁") and all(isinstance(t, str) and t for t in tokens)
    assert len("La femme aime le garçon !") / 2 > len(tokens) > 4
    assert "".join(tokens).replace("▁", " ").strip() == "La femme aime le garçon !"


@pytest.mark.parametrize(
    "text", ["Le chat mange une pomme !", "Die Straße sieht große Bäume", "l'homme ㅋㅋ 좋아요", "élève", ""]
)
def test_round_trip_gives_back_the_text(learned: tuple[SubwordTokenizer, Path], text: str) -> None:
    tokenizer, _ = learned
    assert tokenizer.detokenize(tokenizer.tokenize(text)) == text


def test_round_trip_normalises_spaces_and_keeps_hangul_jamo(learned: tuple[SubwordTokenizer, Path]) -> None:
    tokenizer, _ = learned
    raw = "  Le\u00a0chat  voit\u200b le garçon\u202f! ㅋㅋ "
    assert tokenizer.detokenize(tokenizer.tokenize(raw)) == "Le chat voit le garçon ! ㅋㅋ"
    assert tokenizer.tokenize(" \t ") == [] and tokenizer.detokenize([]) == ""


def test_a_new_instance_loads_the_saved_model_and_tokenizes_identically(
    learned: tuple[SubwordTokenizer, Path],
) -> None:
    tokenizer, directory = learned
    reopened = SubwordTokenizer(vocab_size=120)
    reopened.load(directory)
    texts = list(itertools.islice(corpus(), 0, None, 37)) + ["Un élève öffnet la rivière"]
    assert [reopened.tokenize(t) for t in texts] == [tokenizer.tokenize(t) for t in texts]


def test_the_same_texts_give_the_same_model_bytes(tmp_path: Path) -> None:
    fitted(tmp_path / "a")
    fitted(tmp_path / "b")
    assert (tmp_path / "a" / MODEL_FILE).read_bytes() == (tmp_path / "b" / MODEL_FILE).read_bytes()


def test_unigram_and_lowercase_options(tmp_path: Path) -> None:
    tokenizer = fitted(tmp_path, model_type="unigram", lowercase=True)
    assert tokenizer.detokenize(tokenizer.tokenize("Le Chat VOIT l'Homme !")) == "le chat voit l'homme !"


def test_vocab_size_is_an_upper_bound_so_a_small_corpus_gets_fewer_pieces(tmp_path: Path) -> None:
    tokenizer = SubwordTokenizer(vocab_size=5000)
    tokenizer.fit(["le chat voit le chien", "le chien voit le chat"], tmp_path)
    pieces = (tmp_path / VOCAB_FILE).read_text(encoding="utf-8").splitlines()
    assert len(pieces) < 50
    assert tokenizer.detokenize(tokenizer.tokenize("le chien voit le chat")) == "le chien voit le chat"


def test_max_sentences_learns_from_a_sample_spread_over_the_corpus_the_same_every_time(tmp_path: Path) -> None:
    # Sentence i alone holds the character U+4E00+i, so the model's characters tell which sentences it learned from.
    texts = [f"{chr(0x4E00 + i)} le chat" for i in range(300)]
    learned = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        SubwordTokenizer(vocab_size=1000, max_sentences=30).fit(iter(texts), tmp_path / name)
        pieces = (tmp_path / name / VOCAB_FILE).read_text(encoding="utf-8").splitlines()
        learned.append(sorted(ord(p[0]) - 0x4E00 for p in pieces if "\u4e00" <= p[0] <= "\u9fff"))
    assert learned[0] == learned[1]
    assert len(learned[0]) == 30 and learned[0][-1] > 150


def test_a_vocab_size_smaller_than_the_alphabet_is_a_data_error_suggesting_a_larger_one(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"vocab_size 8 is too small .* raise vocab_size"):
        SubwordTokenizer(vocab_size=8).fit(["abcdefghijklmnopqrstuvwxyz"], tmp_path)


def test_no_training_text_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no text to learn from"):
        SubwordTokenizer().fit(iter(["", "   "]), tmp_path)


def test_an_error_raised_while_reading_the_texts_comes_through_unchanged(tmp_path: Path) -> None:
    def texts() -> Iterator[str]:
        yield "le chat"
        raise DataError("train.txt:2: expected a tab")

    with pytest.raises(DataError, match="train.txt:2: expected a tab"):
        SubwordTokenizer(vocab_size=20).fit(texts(), tmp_path)


def test_tokenize_or_detokenize_before_fit_or_load_says_what_to_call() -> None:
    with pytest.raises(RuntimeError, match=r"fit\(\) or load\(\)"):
        SubwordTokenizer().tokenize("le chat")
    with pytest.raises(RuntimeError, match=r"fit\(\) or load\(\)"):
        SubwordTokenizer().detokenize(["▁le"])


def test_load_from_a_directory_without_the_model_names_the_file_and_the_incomplete_run(tmp_path: Path) -> None:
    with pytest.raises(TransduceError, match=rf"{MODEL_FILE}: the subword model is missing.*incomplete"):
        SubwordTokenizer().load(tmp_path)


def test_load_of_a_damaged_model_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / MODEL_FILE).write_bytes(b"not a model")
    with pytest.raises(TransduceError, match="not a readable sentencepiece model"):
        SubwordTokenizer().load(tmp_path)


def test_a_run_with_subword_tokenizers_saves_them_and_translate_reloads_them(
    tmp_path: Path, make_recipe, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = make_recipe(
        source={"tokenizer": {"name": "subword", "vocab_size": 60}},
        target={"tokenizer": {"name": "subword", "vocab_size": 30}},
        data={"train_size": 100},
    )
    run = tmp_path / "run"
    assert cli.main(["train", str(recipe), "--run-dir", str(run)]) == 0
    for side in ("source", "target"):
        assert (run / "tokenizers" / side / MODEL_FILE).is_file()
    capsys.readouterr()
    assert cli.main(["translate", str(run), "september 27, 1994"]) == 0
    assert "▁" not in capsys.readouterr().out
