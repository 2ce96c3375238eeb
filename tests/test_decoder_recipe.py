"""Recipes of the decoder network (`model.decoder`) and the search strategy (`search`): the new layout, the old
layout's keys refused with their new place, nested attention, combinations the `lstm` decoder refuses at their
key (file and line), and runs made before the change."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import pytest
import torch
from recipe_helpers import parse, parse_error

from transduce._cli import main as cli
from transduce._model import assembly as pipeline
from transduce._recipe.recipe import parse_recipe
from transduce._runs import checkpoint
from transduce._runs.provenance import components_used
from transduce.errors import RecipeError, RunError

BASE = "data: dates\nmodel:\n  embedding_dim: 8\n  encoder: {name: lstm, hidden_size: 8}\n"


def checked(text: str, registry, overrides=()):  # type: ignore[no-untyped-def]
    """Parse and build (as `check` and `train` do): construction refusals are located in the file."""
    return parse_recipe(
        text, registry, source="r.yaml", overrides=list(overrides), check=functools.partial(pipeline.check, registry)
    )


def checked_error(text: str, registry, overrides=()) -> RecipeError:  # type: ignore[no-untyped-def]
    with pytest.raises(RecipeError) as caught:
        checked(text, registry, overrides)
    return caught.value


# --- the new layout -----------------------------------------------------------------------------


def test_defaults_name_the_lstm_decoder_network_with_general_attention_and_greedy_search(registry):
    recipe = parse("data: dates\n", registry)
    assert recipe["model"]["decoder"] == {
        "name": "lstm",
        "hidden_size": 256,
        "layers": 1,
        "dropout": 0.1,
        "cell": "lstm",
        "attention": {"name": "general"},
        "peeky": False,
        "input_feeding": False,
        "init": "final",
        "tie_embeddings": False,
    }
    assert recipe["search"] == {"name": "greedy", "max_length": 100, "max_ratio": 2.0, "max_offset": 20}
    assert "decoder" not in recipe and "attention" not in recipe["model"]


@pytest.mark.parametrize(
    ("given", "resolved"),
    [
        ("none", None),
        ("null", None),
        ("dot", {"name": "dot"}),
        ("{name: additive, hidden_size: 4}", {"name": "additive", "hidden_size": 4}),
    ],
)
def test_attention_is_a_scorer_name_a_mapping_or_none(registry, given: str, resolved) -> None:  # type: ignore[no-untyped-def]
    recipe = parse(BASE + f"  decoder: {{name: lstm, hidden_size: 8, attention: {given}}}\n", registry)
    assert recipe["model"]["decoder"]["attention"] == resolved


def test_set_reaches_the_decoder_its_attention_and_the_search(registry):
    recipe = parse(
        BASE,
        registry,
        [
            "model.decoder.cell=gru",
            "model.decoder.attention=additive",
            "model.decoder.attention.hidden_size=5",
            "search.name=beam",
            "search.size=3",
        ],
    )
    assert recipe["model"]["decoder"]["cell"] == "gru"
    assert recipe["model"]["decoder"]["attention"] == {"name": "additive", "hidden_size": 5}
    assert recipe["search"]["name"] == "beam" and recipe["search"]["size"] == 3


def test_the_encoder_takes_a_gru_cell(registry):
    recipe = parse(BASE.replace("hidden_size: 8}", "hidden_size: 8, cell: gru}"), registry)
    assert recipe["model"]["encoder"]["cell"] == "gru"
    error = parse_error(BASE.replace("hidden_size: 8}", "hidden_size: 8, cell: gur}"), registry)
    assert (error.line, error.key) == (4, "model.encoder.cell")
    assert "Did you mean 'gru'?" in str(error)


def test_components_used_lists_the_nested_attention_scorer(registry):
    used = components_used(parse("data: dates\n", registry), registry)
    assert {"decoder/lstm", "attention/general", "search/greedy", "encoder/lstm"} <= set(used)
    plain = components_used(parse(BASE + "  decoder: {name: lstm, attention: none}\n", registry), registry)
    assert not any(key.startswith("attention/") for key in plain)


# --- the old layout -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "key", "hint"),
    [
        ("data: dates\ndecoder:\n  name: beam\n", 2, "decoder", "the search strategy (greedy, beam, sample) moved to"),
        ("data: dates\ndecoder: greedy\n", 2, "decoder", "`search:` section"),
        (
            "data: dates\nmodel:\n  embedding_dim: 8\n  attention: dot\n",
            4,
            "model.attention",
            "model.decoder.attention",
        ),
        ("data: dates\nmodel:\n  hidden_size: 64\n", 3, "model.hidden_size", "model.decoder.hidden_size"),
        ("data: dates\nmodel:\n  decoder_layers: 2\n", 3, "model.decoder_layers", "model.decoder.layers"),
    ],
)
def test_a_key_of_the_old_layout_names_its_new_place(registry, text: str, line: int, key: str, hint: str) -> None:
    error = parse_error(text, registry)
    assert (error.source, error.line, error.key) == ("r.yaml", line, key)
    assert hint in str(error)


def test_an_old_style_set_names_the_new_key(registry):
    error = parse_error("data: dates\n", registry, ["decoder.size=5"])
    assert error.source == "--set decoder.size=5"
    assert "`search:`" in str(error)


# --- the new keys' mistakes, at their file and line ------------------------------------------------


@pytest.mark.parametrize(
    ("decoder", "line", "key", "expected"),
    [
        ("{name: lstm, hiden_size: 8}", 5, "model.decoder.hiden_size", "Did you mean 'hidden_size'?"),
        ("{name: lstm, cell: lstn}", 5, "model.decoder.cell", "Did you mean 'lstm'?"),
        ("{name: lstm, init: brige}", 5, "model.decoder.init", "Did you mean 'bridge'?"),
        ("{name: lstm, peeky: 3}", 5, "model.decoder.peeky", "expected boolean"),
        ("{name: lstm, layers: 0}", 5, "model.decoder.layers", "too small"),
        ("{name: lstm, attention: genral}", 5, "model.decoder.attention.name", "Did you mean 'general'?"),
        (
            "{name: lstm, attention: [dot]}",
            5,
            "model.decoder.attention",
            "expected attention name or mapping with 'name' or 'none', got list",
        ),
        ("{name: lstm, attention: {name: additive, hiden: 3}}", 5, "model.decoder.attention.hiden", "valid keys"),
        ("{name: lstn}", 5, "model.decoder.name", "unknown decoder 'lstn'. Did you mean 'lstm'?"),
    ],
)
def test_a_mistake_in_the_decoder_section_is_reported_at_its_key(  # type: ignore[no-untyped-def]
    registry, decoder: str, line: int, key: str, expected: str
) -> None:
    error = parse_error(BASE + f"  decoder: {decoder}\n", registry)
    assert (error.source, error.line, error.key) == ("r.yaml", line, key)
    assert expected in str(error)


@pytest.mark.parametrize(
    ("decoder", "key", "expected"),
    [
        (
            "\n    name: lstm\n    attention: none\n    input_feeding: true\n",
            "model.decoder.input_feeding",
            "it needs attention",
        ),
        ("\n    name: lstm\n    hidden_size: 6\n    tie_embeddings: true\n", "model.decoder.tie_embeddings", "(8)"),
        (
            "\n    name: lstm\n    hidden_size: 8\n    peeky: true\n    tie_embeddings: true\n",
            "model.decoder.tie_embeddings",
            "plus the encoder's output size (peeky)",
        ),
        (
            "\n    name: lstm\n    hidden_size: 6\n    attention: dot\n",
            "model.decoder.attention",
            "to equal the encoder",
        ),
    ],
)
def test_a_combination_the_decoder_refuses_is_reported_at_the_key_and_its_line(  # type: ignore[no-untyped-def]
    registry, decoder: str, key: str, expected: str
) -> None:
    text = BASE + "  decoder:" + decoder
    error = checked_error(text, registry)
    assert (error.source, error.key) == ("r.yaml", key)
    assert text.splitlines()[error.line - 1].strip().startswith(key.rsplit(".", 1)[1] + ":")
    assert expected in str(error)


def test_a_refused_combination_made_by_set_names_the_set(registry):
    error = checked_error(BASE, registry, ["model.decoder.attention=none", "model.decoder.input_feeding=true"])
    assert error.key == "model.decoder.input_feeding"
    assert error.source == "--set model.decoder.input_feeding=true"


def test_check_command_reports_a_refused_combination_with_file_and_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    recipe = tmp_path / "r.yaml"
    recipe.write_text(BASE + "  decoder:\n    attention: none\n    input_feeding: true\n", encoding="utf-8")
    assert cli.main(["check", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert f"{recipe}:7: model.decoder.input_feeding:" in " ".join(err.split())


def test_sensible_combinations_build(registry):
    for decoder in (
        "{attention: none, peeky: true, cell: gru}",
        "{hidden_size: 8, attention: dot, input_feeding: true, layers: 2}",
        "{hidden_size: 8, tie_embeddings: true}",
        "{init: zero, attention: additive}",
    ):
        checked(BASE.replace("embedding_dim: 8", "embedding_dim: 8") + f"  decoder: {decoder}\n", registry)


# --- runs made before the change ---------------------------------------------------------------------


OLD_RECIPE = """seed: 1
data: {name: dates, train_size: 300, valid_size: 50, test_size: 50}
model:
  embedding_dim: 16
  hidden_size: 32
  decoder_layers: 1
  dropout: 0.1
  encoder: {name: lstm, hidden_size: 32}
  attention: {name: general}
decoder: {name: greedy, max_length: 12}
"""


@pytest.mark.parametrize("command", ["evaluate", "translate", "attention", "chat", "resume"])
def test_a_run_made_by_an_older_version_gets_a_clear_error_and_stays_as_it_was(  # type: ignore[no-untyped-def]
    trained_run: Path, tmp_path: Path, capsys, command: str
) -> None:
    # A run directory as the version before the decoder network became a component wrote it: the old
    # recipe.yaml layout, components.json naming decoder/greedy and attention/general, old state_dict keys.
    run = tmp_path / "old"
    shutil.copytree(trained_run, run)
    (run / "recipe.yaml").write_text(OLD_RECIPE, encoding="utf-8")
    components = {"decoder/greedy": "transduce 0.1.0", "attention/general": "transduce 0.1.0"}
    (run / "components.json").write_text(json.dumps(components), encoding="utf-8")
    saved = checkpoint.load(trained_run / "checkpoints" / "best.pt")
    old_keys = {
        key.replace("decoder.rnn.", "decoder.").replace("decoder.embedding", "target_embedding"): value
        for key, value in saved["model"].items()
    }
    for which in ("best", "last"):
        torch.save({**saved, "model": old_keys}, run / "checkpoints" / f"{which}.pt")
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    arguments = {
        "evaluate": ["evaluate", str(run)],
        "translate": ["translate", str(run), "27 sep 1994"],
        "attention": ["attention", str(run), "27 sep 1994"],
        "chat": ["chat", str(run)],
        "resume": ["train", "--resume", str(run)],
    }[command]
    assert cli.main(arguments) != 0
    err = " ".join(capsys.readouterr().err.split())
    assert "was made by an older transduce version" in err
    assert "`decoder`" in err and "Traceback" not in err
    assert {path: path.read_bytes() for path in run.rglob("*") if path.is_file()} == before


def test_the_old_run_error_is_a_run_error(trained_run: Path, tmp_path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    from transduce._recipe.recipe import load_recipe
    from transduce._runs.opening import read_run_recipe
    from transduce._runs.rundir import RunDir

    run = tmp_path / "old"
    run.mkdir()
    (run / "recipe.yaml").write_text(OLD_RECIPE, encoding="utf-8")
    (run / "components.json").write_text(json.dumps({"decoder/greedy": "transduce 0.1.0"}), encoding="utf-8")
    with pytest.raises(RunError, match="older transduce version"):
        read_run_recipe(RunDir(run), registry)
    # The same text as a user's own recipe (not a run's) is a recipe mistake naming the new key.
    mine = tmp_path / "mine.yaml"
    mine.write_text(OLD_RECIPE, encoding="utf-8")
    with pytest.raises(RecipeError, match="the search strategy .greedy, beam, sample. moved to the `search:` section"):
        load_recipe(mine, registry)
    mine.write_text(OLD_RECIPE.replace("decoder: {name: greedy", "search: {name: greedy"), encoding="utf-8")
    with pytest.raises(RecipeError, match="moved to model.decoder.hidden_size"):
        load_recipe(mine, registry)


# --- component-valued parameters ---------------------------------------------------------------------------


def test_a_component_valued_param_is_a_name_a_mapping_or_none_when_nullable() -> None:
    from transduce._plugins.params import Param, resolve_params

    required = Param("scorer", str, "general", "an attention scorer", family="attention")
    optional = Param("scorer", str, "general", "an attention scorer", family="attention", nullable=True)
    assert required.problem("dot") is None and required.problem({"name": "dot", "x": 1}) is None
    assert "`none` is not allowed" in (required.problem("none") or "")
    assert "got int 3" in (required.problem(3) or "")
    assert optional.problem(None) is None and optional.problem("none") is None
    assert optional.describe_type() == "attention name or mapping with 'name' or 'none'"

    def fail(key: str, message: str):  # type: ignore[no-untyped-def]
        raise ValueError(f"{key}: {message}")

    nested = lambda param, value: {"resolved": value}  # noqa: E731
    assert resolve_params([optional], {"scorer": "none"}, owner="x", fail=fail, nested=nested) == {"scorer": None}
    assert resolve_params([optional], {}, owner="x", fail=fail, nested=nested) == {"scorer": {"resolved": "general"}}
    with pytest.raises(TypeError, match="has type str"):
        Param("scorer", int, 1, family="attention")
