"""The checked-in reference pages (docs/reference/) must match the declarations they are generated from."""

from __future__ import annotations

from pathlib import Path

import pytest

from transduce._cli.reference import COMMAND, main, render, stale, write
from transduce._plugins.contracts import FAMILIES
from transduce._plugins.registry import discover
from transduce._recipe import recipe

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference"


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return render(discover())


def test_checked_in_reference_is_up_to_date(pages):
    assert stale(pages, REFERENCE) == [], f"docs/reference/ is stale: run `{COMMAND}`"


def test_the_old_single_page_reference_is_gone():
    assert not (REFERENCE.parent / "reference.md").exists()


def test_there_is_an_index_a_recipe_page_and_one_page_per_family(pages):
    assert set(pages) == {"index.md", "recipe.md", *(f"{family}.md" for family in FAMILIES)}
    for family in FAMILIES:
        assert f"[{family}]({family}.md)" in pages["index.md"]


def test_family_page_has_the_contract_and_every_builtin_with_its_parameters(pages):
    encoder = pages["encoder.md"]
    assert encoder.startswith("# `encoder` components\n")
    assert "Base class: `transduce.api.Encoder`. Named in a recipe at `model.encoder` (default `lstm`)." in encoder
    assert "## Contract\n\nReads embedded source tokens." in encoder
    assert "## `lstm`" in encoder
    assert "| `bidirectional` | boolean | true | any |" in encoder
    assert "| `layers` | integer | `1` | >= 1 and <= 32 |" in encoder
    assert "- `prepare(keys)`: keys (batch, src_len, K)" in pages["attention.md"]
    assert "| `tokenize` | string | `13a` | one of " in pages["metric.md"]
    for heading in ("## `additive`", "## `greedy`", "## `dates`", "## `bleu`", "## `word`", "## `jsonl`"):
        assert any(heading in page for page in pages.values()), heading


def test_logger_page_lists_the_methods_and_the_builtin_loggers(pages):
    logger = pages["logger.md"]
    assert "Named in a recipe at `loggers`, a list (default `[console]`)." in logger
    assert "- `epoch_end(record)`:" in logger
    assert "- `run_failed(error)`:" in logger
    for name in ("console", "jsonl", "tensorboard"):
        assert f"## `{name}`" in logger


def test_recipe_page_covers_every_top_level_section_and_core_parameter(pages):
    page = pages["recipe.md"]
    for section in recipe.TOP_LEVEL:
        assert f"`{section}`" in page.split("\n## ", 1)[1], section
    assert "| `epochs` | integer | `10` | >= 1 | passes over the training split |" in page
    assert "| `device` | string | `auto` | one of `'auto'`, `'cpu'`, `'cuda'` |" in page
    assert "| `patience` | integer or null | null | >= 1 |" in page
    assert "integer, >= 0 and <= 4294967295, default `1`" in page  # seed


def test_only_the_builtins_are_documented(reverse_plugin):
    registry = discover()
    assert registry.get("dataset", "reverse") is not None
    assert "`reverse`" not in render(registry)["dataset.md"]


def test_write_then_check_round_trip_and_a_stale_page_is_reported(tmp_path, pages, capsys):
    target = tmp_path / "ref"
    assert main([str(target)]) == 0
    assert sorted(p.name for p in target.iterdir()) == sorted(pages)
    assert main([str(target), "--check"]) == 0
    (target / "metric.md").write_text("edited by hand\n", encoding="utf-8")
    (target / "old-family.md").write_text("left over\n", encoding="utf-8")
    assert main([str(target), "--check"]) == 1
    err = capsys.readouterr().err
    assert "metric.md" in err and "old-family.md" in err
    assert COMMAND in err
    assert write(pages, target) == ["metric.md", "old-family.md"]
    assert not (target / "old-family.md").exists()
    assert stale(pages, target) == []


def test_a_method_from_a_shared_contract_mixin_is_listed_on_each_family_that_takes_it(pages):
    # reduced_products is declared once (ReducedProducts) for the encoder and the decoder network.
    for family in ("encoder", "decoder"):
        assert "- `reduced_products(dtype)`: Within: decoding may multiply in `dtype`" in pages[f"{family}.md"]
    assert "reduced_products" not in pages["attention.md"]
