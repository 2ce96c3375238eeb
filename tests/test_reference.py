"""The checked-in parameter reference must match the declarations it is generated from."""

from pathlib import Path

from transduce.reference import render
from transduce.registry import discover

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference.md"


def test_checked_in_reference_is_up_to_date():
    expected = render(discover())
    assert REFERENCE.read_text(encoding="utf-8") == expected, (
        "docs/reference.md is stale: run `python -m transduce.reference > docs/reference.md`"
    )


def test_reference_lists_every_builtin_component_and_its_parameters():
    text = render(discover())
    for heading in (
        "encoder `lstm`",
        "attention `additive`",
        "decoder `greedy`",
        "dataset `dates`",
        "metric `bleu`",
        "tokenizer `word`",
    ):
        assert f"### {heading}" in text
    assert "| `bidirectional` | boolean | true |" in text
    assert "| `epochs` | integer >= 1 | `10` |" in text
