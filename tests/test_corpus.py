"""Tests of corpus preparation: one streamed pass, length limits, coverage, tokenizers that learn."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from transduce._cli import main as cli
from transduce._data.corpus import Coverage, Side, prepare_training, summarize
from transduce._data.vocab import Vocabulary
from transduce.api import Example, Tokenizer

SUPPORT = Path(__file__).parent / "support"


class Spaces(Tokenizer):
    name = "spaces"

    def tokenize(self, text: str) -> list[str]:
        return text.split()

    def detokenize(self, tokens: Sequence[str]) -> str:
        return " ".join(tokens)


def new_vocabulary(side: str, counts: Counter[str]) -> Vocabulary:
    return Vocabulary.from_counts(counts, min_freq=2)


def stream(examples: list[Example], consumed: list[int]) -> Iterator[Example]:
    for example in examples:
        consumed.append(1)
        yield example


EXAMPLES = [
    Example("a b c", "x y"),
    Example("a b", "x"),
    Example("a d e f g", "y z"),
    Example("b", "x y y y"),
]


def test_prepare_training_reads_the_stream_once_and_indexes_with_the_built_vocabulary() -> None:
    consumed: list[int] = []
    corpus = prepare_training(stream(EXAMPLES, consumed), Side(Spaces()), Side(Spaces()), new_vocabulary)
    assert len(consumed) == len(EXAMPLES)
    # min_freq 2: a (3), b (3) on the source side; x (3), y (5) on the target side
    assert corpus.source_vocab.tokens[4:] == ["a", "b"]
    assert corpus.target_vocab.tokens[4:] == ["y", "x"]
    unk = corpus.source_vocab.unk_index
    a, b = corpus.source_vocab.index("a"), corpus.source_vocab.index("b")
    assert corpus.pairs[0].source == [a, b, unk]
    x, y = corpus.target_vocab.index("x"), corpus.target_vocab.index("y")
    assert corpus.pairs[3].target == [x, y, y, y]


def test_length_limits_drop_long_training_pairs_and_count_them() -> None:
    corpus = prepare_training(
        iter(EXAMPLES), Side(Spaces(), max_length=3), Side(Spaces(), max_length=3), new_vocabulary
    )
    assert [len(p.source) for p in corpus.pairs] == [3, 2]
    assert corpus.summary.pairs == 2
    assert corpus.summary.filtered == 2


def test_an_empty_source_becomes_a_single_unk() -> None:
    corpus = prepare_training(iter([Example("", "x")]), Side(Spaces()), Side(Spaces()), new_vocabulary)
    assert corpus.pairs[0].source == [corpus.source_vocab.unk_index]


def test_coverage_counts_unknown_tokens_and_types() -> None:
    vocab = Vocabulary(["a", "b"])
    coverage = Coverage.of(Counter({"a": 6, "b": 2, "c": 1, "d": 1}), vocab)
    assert (coverage.tokens, coverage.unknown_tokens, coverage.types, coverage.unknown_types) == (10, 2, 4, 2)
    assert coverage.unk_rate == pytest.approx(20.0)
    assert coverage.type_coverage == pytest.approx(50.0)


def test_summarize_gives_pairs_and_unk_rates_of_a_held_out_split() -> None:
    source_vocab, target_vocab = Vocabulary(["a", "b"]), Vocabulary(["x"])
    summary = summarize(EXAMPLES[:2], Spaces(), Spaces(), source_vocab, target_vocab)
    assert summary.pairs == 2
    assert summary.source.unk_rate == pytest.approx(100 / 5)
    assert summary.target.unk_rate == pytest.approx(100 / 3)


# --- through a run ---------------------------------------------------------------------


def test_a_run_writes_data_json_and_the_report_shows_coverage_per_split(trained_run: Path) -> None:
    data = json.loads((trained_run / "data.json").read_text(encoding="utf-8"))
    assert list(data["splits"]) == ["train", "valid", "test"]
    assert data["splits"]["train"]["pairs"] == 300
    assert data["splits"]["valid"]["pairs"] == 50
    assert data["splits"]["train"]["source"]["unk_rate"] == 0.0
    report = json.loads((trained_run / "report.json").read_text(encoding="utf-8"))
    assert report["data"]["splits"]["test"]["pairs"] == 50
    assert "## Data" in (trained_run / "report.md").read_text(encoding="utf-8")


def test_length_limits_in_the_recipe_are_reported(make_recipe, train_run, tmp_path: Path, capsys) -> None:
    recipe = make_recipe(source={"max_length": 12})
    run = train_run(recipe, tmp_path / "run")
    train = json.loads((run / "data.json").read_text(encoding="utf-8"))["splits"]["train"]
    assert 0 < train["filtered_by_length"] < 300
    assert train["pairs"] == 300 - train["filtered_by_length"]
    assert "dropped by source/target.max_length" in capsys.readouterr().out


def test_a_length_limit_that_drops_everything_is_a_clear_error(make_recipe, tmp_path: Path, capsys) -> None:
    status = cli.main(["train", str(make_recipe(target={"max_length": 1})), "--run-dir", str(tmp_path / "run")])
    assert status == 2
    assert "training split is empty (300 pairs were longer than source/target.max_length)" in capsys.readouterr().err


@pytest.fixture
def alphabet_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list:
    """tests/support/alphabet_plugin.py installed as distribution `alphabet-support` through a dist-info."""
    site = tmp_path / "site"
    info = site / "alphabet_support-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: alphabet-support\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[transduce]\nalphabet = alphabet_plugin\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(SUPPORT))
    monkeypatch.syspath_prepend(str(site))
    import alphabet_plugin

    alphabet_plugin.CALLS.clear()
    return alphabet_plugin.CALLS


def test_a_learning_tokenizer_is_fitted_at_start_and_loaded_on_resume_and_translate(
    alphabet_plugin: list, make_recipe, train_run, tmp_path: Path, capsys
) -> None:
    recipe = make_recipe(source={"tokenizer": "alphabet"}, train={"epochs": 1})
    run = train_run(recipe, tmp_path / "run")
    directory = run / "tokenizers" / "source"
    assert alphabet_plugin == [("fit", directory)]
    assert (directory / "alphabet.txt").read_text(encoding="utf-8")

    alphabet_plugin.clear()
    assert cli.main(["train", "--resume", str(run), "--set", "train.epochs=2"]) == 0
    assert alphabet_plugin == [("load", directory)]

    alphabet_plugin.clear()
    capsys.readouterr()
    assert cli.main(["translate", str(run), "march 3, 2001"]) == 0
    assert alphabet_plugin == [("load", directory)]
    assert capsys.readouterr().out.strip()


def test_a_run_that_fails_before_its_first_checkpoint_removes_its_tokenizer_files(
    alphabet_plugin: list, make_recipe, tmp_path: Path
) -> None:
    recipe = make_recipe(source={"tokenizer": "alphabet"}, target={"max_length": 1})
    assert cli.main(["train", str(recipe), "--run-dir", str(tmp_path / "run")]) == 2
    assert not (tmp_path / "run").exists()
