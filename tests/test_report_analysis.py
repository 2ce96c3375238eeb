"""The analysis of a full evaluation: length ratio, source-length buckets, best/worst examples, strategy comparison."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from recipe_helpers import parse, parse_error
from transduce_builtins.metrics import Bleu, ChrF, ExactMatch
from transduce_builtins.tokenizers import WordTokenizer

from transduce._cli import main as cli
from transduce._plugins.registry import Registry
from transduce._reports.evaluation import (
    Analysis,
    best_and_worst,
    bucket_ranges,
    evaluate,
    parse_strategy,
    strategies,
    strategy_label,
)
from transduce.api import Example
from transduce.errors import RecipeError

Capture = pytest.CaptureFixture[str]


@dataclass
class Lookup:
    """A translator that answers from a table: the analysis is checked without a model."""

    outputs: dict[str, str]
    source_tokenizer: WordTokenizer
    target_tokenizer: WordTokenizer
    truncated: int = 0  # a table cuts no input

    def truncation_note(self, since: int = 0) -> None:
        return None

    def translate(self, texts: list[str], batch_size: int = 256) -> list[str]:
        return [self.outputs[text] for text in texts]

    def translate_detailed(self, texts: list[str], batch_size: int = 256) -> list[object]:
        raise AssertionError("heatmaps=0: no heat map is drawn")


# source length (words) -> (source, reference, hypothesis)
PAIRS = [
    ("a", "x y", "x y"),  # 1 word, exact
    ("b", "x y", "x"),  # 1 word, short
    ("c d", "p q r", "p q r"),  # 2, exact
    ("e f g", "p q r", "p q r s t"),  # 3, long
    ("h i j k", "m n", "z"),  # 4, wrong
    ("l m n o p q", "m n o", "m n o"),  # 6, exact
]


def lookup_translator() -> Lookup:
    return Lookup({s: h for s, _, h in PAIRS}, WordTokenizer(), WordTokenizer())


def test_bucket_ranges_cut_at_quantiles_and_cover_every_length() -> None:
    assert bucket_ranges(list(range(1, 11)), 5) == [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10)]
    assert bucket_ranges([1, 1, 2, 3, 4, 6], 3) == [(1, 1), (2, 3), (4, 6)]
    # Ties never straddle a cut: many equal lengths give fewer ranges.
    assert bucket_ranges([5, 5, 5, 5, 9], 4) == [(5, 5), (6, 9)]
    assert bucket_ranges([7], 5) == [(7, 7)]
    assert bucket_ranges([], 5) == []


def test_evaluate_reports_length_ratio_and_scores_each_bucket_on_its_own() -> None:
    examples = [Example(s, r) for s, r, _ in PAIRS]
    metrics = [ExactMatch(), Bleu(), ChrF()]
    report = evaluate(
        lookup_translator(), examples, metrics, split="hand", analysis=Analysis(buckets=3, extremes=2, heatmaps=0)
    )
    # Output words 2+1+3+5+1+3 = 15 against reference words 2+2+3+3+2+3 = 15; per bucket it differs.
    assert (report.length.hypothesis_tokens, report.length.reference_tokens) == (15, 15)
    assert [(b.low, b.high, b.count) for b in report.buckets] == [(1, 1, 2), (2, 3, 2), (4, 6, 2)]
    assert [b.metrics["exact_match"] for b in report.buckets] == [50.0, 50.0, 50.0]
    assert [round(b.length.ratio, 4) for b in report.buckets] == [0.75, round(8 / 6, 4), 0.8]
    # Each bucket is scored by the metric itself on its own examples.
    last = [PAIRS[4], PAIRS[5]]
    expected_bleu = Bleu().compute([h for *_, h in last], [r for _, r, _ in last]).value
    assert report.buckets[2].metrics["bleu"] == round(expected_bleu, 4)
    data = json.loads(report.to_json())
    assert data["length"] == {"hypothesis_tokens": 15, "reference_tokens": 15, "ratio": 1.0}
    assert [b["count"] for b in data["buckets"]] == [2, 2, 2]
    markdown = report.to_markdown()
    assert "## Scores by source length" in markdown and "| 4–6 | 2 | 50.00 |" in markdown
    assert "Length ratio: 1.000 (15 output / 15 reference tokens" in markdown


def test_best_and_worst_rank_by_sentence_chrf_without_sharing_an_example() -> None:
    examples = [Example(s, r) for s, r, _ in PAIRS]
    hypotheses = [h for *_, h in PAIRS]
    best, worst = best_and_worst(examples, hypotheses, 2)
    # Three exact outputs score 100: the two earlier ones are best; 'z' for 'm n' is worst.
    assert [e.index for e in best] == [0, 2]
    assert all(e.chrf == 100.0 for e in best)
    assert worst[0].index == 4 and worst[0].hypothesis == "z"
    assert worst[0].chrf <= worst[1].chrf < 100.0
    assert not {e.index for e in best} & {e.index for e in worst}
    # Fewer examples than asked for: split between the two lists, best gets the larger half.
    best, worst = best_and_worst(examples[:3], hypotheses[:3], 5)
    assert (len(best), len(worst)) == (2, 1)


def test_a_perfect_example_is_never_among_the_worst() -> None:
    perfect = [PAIRS[0], PAIRS[2], PAIRS[5]]
    translator = Lookup({s: h for s, _, h in perfect}, WordTokenizer(), WordTokenizer())
    examples = [Example(s, r) for s, r, _ in perfect]
    report = evaluate(translator, examples, [ChrF()], split="hand", analysis=Analysis(extremes=2, heatmaps=0))
    assert len(report.best) == 2 and report.worst == []
    assert (
        "## Worst examples (sentence chrF)\n\nNone: every example has a sentence chrF of 100." in report.to_markdown()
    )


def test_parse_strategy_validates_like_a_recipe_and_keeps_the_recipe_decoders_shared_settings(
    registry: Registry,
) -> None:
    recipe_decoder = {"name": "greedy", "max_length": 12, "max_ratio": 2.0, "max_offset": 20}
    spec = parse_strategy(registry, "beam:size=3,length_penalty=0.6", inherit=recipe_decoder)
    assert spec["name"] == "beam" and spec["size"] == 3 and spec["length_penalty"] == 0.6
    assert spec["max_length"] == 12  # inherited, so both strategies may write as much
    assert parse_strategy(registry, "greedy:max_length=3", inherit=recipe_decoder)["max_length"] == 3
    assert strategy_label(registry, spec) == "beam:size=3,length_penalty=0.6,max_length=12"
    with pytest.raises(RecipeError, match=r"--compare bean:size=3: search.name: unknown search 'bean'.*'beam'"):
        parse_strategy(registry, "bean:size=3")
    with pytest.raises(RecipeError, match=r"--compare beam:width=3: search.width: unknown key for search 'beam'"):
        parse_strategy(registry, "beam:width=3")
    with pytest.raises(RecipeError, match=r"size: expected integer >= 1 and <= 256, got 0"):
        parse_strategy(registry, "beam:size=0")
    with pytest.raises(RecipeError, match=r"expected NAME:KEY=VALUE"):
        parse_strategy(registry, "beam:5")


RECIPE = """\
data: {name: dates}
search: {name: greedy, max_length: 12}
evaluate:
  compare:
    - {name: beam, size: 3}
    - sample
"""


def test_recipe_compare_lists_decoders_built_before_the_command_lines(registry: Registry) -> None:
    recipe = parse(RECIPE, registry)
    assert [d["name"] for d in recipe["evaluate"]["compare"]] == ["beam", "sample"]
    built = strategies(registry, recipe, ["greedy:max_length=4", "beam:size=5"])
    # Recipe entries are complete decoders with their own defaults; a --compare inherits max_length, and
    # its label keeps what was typed even where it is the default (beam's size is 5 by default).
    assert [s.label for s in built] == ["beam:size=3", "sample", "greedy:max_length=4", "beam:size=5,max_length=12"]
    assert [s.decoding.name for s in built] == ["beam", "sample", "greedy", "beam"]
    assert parse("data: {name: dates}", registry)["evaluate"]["compare"] == []
    error = parse_error(RECIPE.replace("sample", "sampel"), registry)
    assert (error.key, error.line) == ("evaluate.compare.1.name", 6) and "Did you mean 'sample'" in str(error)


@pytest.fixture(scope="module")
def run(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("analysis") / "run"
    shutil.copytree(trained_run, copy)
    return copy


def test_evaluate_compare_gives_one_row_per_strategy_in_every_format(
    run: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    strategies = ("greedy:max_length=2", "sample:temperature=0.8,seed=1")
    argv = ["evaluate", str(run), "--split", "valid"] + [a for s in strategies for a in ("--compare", s)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    report = json.loads((run / "report.valid.json").read_text(encoding="utf-8"))
    rows = report["comparison"]
    sample = "sample:temperature=0.8,seed=1,max_length=12"  # max_length inherited from the recipe's decoder
    assert [r["strategy"] for r in rows] == ["greedy:max_length=12", "greedy:max_length=2", sample]
    assert rows[0]["metrics"] == report["metrics"]  # the recipe's own decoder, decoded again
    assert rows[1]["metrics"]["exact_match"] == 0.0  # 2 characters never make a 10-character date
    assert all(r["sentences_per_second"] > 0 for r in rows)
    # The first 3 examples (evaluate.heatmaps) as heat maps: a row per output token, a column per source token.
    assert [h["source_text"] for h in report["heatmaps"]] == [e["source"] for e in report["examples"]][:3]
    for heatmap in report["heatmaps"]:
        assert len(heatmap["weights"]) == len(heatmap["output"])
        assert all(len(row) == len(heatmap["source"]) and abs(sum(row) - 1) < 0.01 for row in heatmap["weights"])
    assert "Decoding strategies" in out and sample in out
    markdown = (run / "report.valid.md").read_text(encoding="utf-8")
    assert "| greedy:max_length=2 | 0.00 |" in markdown
    html = (run / "report.valid.html").read_text(encoding="utf-8")
    assert html.count('<td class="text">greedy:max_length=') == 2 and sample in html


def test_evaluate_with_a_bad_compare_strategy_fails_before_loading_the_model(run: Path, capsys: Capture) -> None:
    assert cli.main(["evaluate", str(run), "--compare", "beam:sise=2"]) == 2
    err = capsys.readouterr().err
    assert "--compare beam:sise=2: search.sise: unknown key for search 'beam'. Did you mean 'size'?" in err
    assert "Traceback" not in err
