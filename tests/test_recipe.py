"""Tests of recipes: reading, overrides, validation messages (file, line, key) and the `check` command."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from recipe_helpers import parse, parse_error

from transduce._cli import main as cli
from transduce._recipe.recipe import dump_recipe, load_recipe, recipe_differences
from transduce.errors import RecipeError

DATES_RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "dates.yaml"


# --- the shipped recipe and defaults ----------------------------------------------------


def test_shipped_dates_recipe_validates_and_keeps_its_settings(registry):
    recipe = load_recipe(DATES_RECIPE, registry)
    assert list(recipe) == ["seed", "data", "source", "target", "model", "train", "search", "evaluate", "loggers"]
    assert recipe["data"]["name"] == "dates"
    assert recipe["data"]["train_size"] == 20000
    assert recipe["data"]["valid_size"] == 500
    assert recipe["model"]["embedding_dim"] == 64
    assert recipe["model"]["encoder"]["bidirectional"] is True
    assert recipe["model"]["decoder"]["attention"] == {"name": "general"}
    assert recipe["model"]["decoder"]["hidden_size"] == 256
    assert recipe["train"]["epochs"] == 6
    assert recipe["train"]["patience"] == 2
    assert recipe["search"] == {"name": "greedy", "max_length": 16, "max_ratio": 2.0, "max_offset": 20}
    assert recipe["evaluate"]["examples"] == 8


def test_shipped_dates_recipe_gets_every_default_filled_in(registry):
    recipe = load_recipe(DATES_RECIPE, registry)
    assert recipe["data"]["path"] is None
    assert recipe["data"]["seed"] == 1234
    assert recipe["source"] == {
        "min_freq": 1,
        "max_size": 30000,
        "max_length": None,
        "reverse": False,
        "tokenizer": {"name": "char", "lowercase": False},
    }
    assert recipe["model"]["decoder"]["layers"] == 1
    assert recipe["model"]["encoder"]["layers"] == 1
    assert recipe["model"]["encoder"]["residual"] is False
    assert recipe["train"]["device"] == "auto"
    assert recipe["train"]["label_smoothing"] == 0.0
    assert recipe["train"]["threads"] is None
    assert recipe["train"]["best_metric"] == "exact_match"  # the first of evaluate.metrics
    assert recipe["evaluate"]["split"] == "test"
    assert recipe["evaluate"]["metrics"] == [
        {"name": "exact_match", "strip": True},
        {"name": "bleu", "tokenize": "13a", "lowercase": False},
        {"name": "chrf", "word_order": 0},
    ]


def test_recipe_naming_only_the_data_source_gets_the_default_components(registry):
    recipe = parse("data: dates\n", registry)
    assert recipe["seed"] == 1
    assert recipe["source"]["tokenizer"]["name"] == "char"
    assert recipe["target"]["tokenizer"]["name"] == "char"
    assert recipe["model"]["encoder"]["name"] == "lstm"
    assert recipe["model"]["decoder"]["attention"]["name"] == "general"
    assert recipe["search"] == {"name": "greedy", "max_length": 100, "max_ratio": 2.0, "max_offset": 20}
    assert [m["name"] for m in recipe["evaluate"]["metrics"]] == ["exact_match", "bleu", "chrf"]


def test_component_given_as_a_mapping_gets_its_params(registry):
    text = (
        "data: dates\nsource:\n  tokenizer: {name: word, lowercase: true}\nmodel:\n  decoder: {attention: additive}\n"
    )
    recipe = parse(text, registry)
    assert recipe["source"]["tokenizer"] == {"name": "word", "lowercase": True, "normalize": "NFKC", "language": None}
    assert recipe["model"]["decoder"]["attention"] == {"name": "additive", "hidden_size": None}


# --- unknown names and keys ---------------------------------------------------------------


def test_unknown_top_level_section_suggests_the_closest(registry):
    exc = parse_error("data: dates\n\ntrian:\n  epochs: 3\n", registry)
    assert exc.key == "trian"
    assert exc.line == 3
    assert "unknown section. Did you mean 'train'?" in str(exc)
    assert str(exc).startswith("r.yaml:3: trian: ")


def test_unknown_key_in_train_gives_its_line_and_suggests_the_closest(registry):
    text = "data: dates\ntrain:\n  epochs: 3\n  # batches\n  bach_size: 32\n  lr: 0.01\n"
    exc = parse_error(text, registry)
    assert exc.key == "train.bach_size"
    assert exc.line == 5
    assert exc.source == "r.yaml"
    assert str(exc).startswith("r.yaml:5: train.bach_size: unknown key for section 'train'")
    assert "Did you mean 'batch_size'?" in str(exc)
    assert "valid keys: accumulate, batch_size, batch_tokens, best_metric" in str(exc)


def test_unknown_attention_suggests_the_closest_and_lists_the_available(registry):
    text = "data: dates\nmodel:\n  decoder:\n    hidden_size: 64\n    attention: genral\n"
    exc = parse_error(text, registry)
    assert exc.line == 5
    assert exc.key.startswith("model.decoder.attention")
    assert "unknown attention 'genral'. Did you mean 'general'?" in str(exc)
    assert "(available: additive, dot, general)" in str(exc)


def test_unknown_metric_in_the_list_names_its_position(registry):
    exc = parse_error("data: dates\nevaluate:\n  metrics:\n    - bleu\n    - chfr\n", registry)
    assert exc.line == 5
    assert exc.key.startswith("evaluate.metrics.1")
    assert "Did you mean 'chrf'?" in str(exc)


def test_unknown_component_parameter_suggests_the_closest(registry):
    text = "data: dates\nmodel:\n  encoder: {name: lstm, layer: 2}\n"
    exc = parse_error(text, registry)
    assert exc.key == "model.encoder.layer"
    assert exc.line == 3
    assert "unknown key for encoder 'lstm'. Did you mean 'layers'?" in str(exc)


def test_component_mapping_without_name_lists_the_available(registry):
    exc = parse_error("data:\n  train_size: 5\n", registry)
    assert exc.key == "data"
    assert "missing 'name'" in str(exc)
    assert "available: csv, dates" in str(exc)


def test_component_mapping_without_name_at_a_place_with_a_default_names_the_default(registry):
    recipe = parse("data: dates\nsearch:\n  max_length: 5\nmodel:\n  decoder: {hidden_size: 64}\n", registry)
    assert recipe["search"]["name"] == "greedy" and recipe["search"]["max_length"] == 5
    assert recipe["model"]["decoder"]["name"] == "lstm" and recipe["model"]["decoder"]["hidden_size"] == 64


# --- wrong values ---------------------------------------------------------------------------


def test_string_for_an_integer_is_a_type_error(registry):
    exc = parse_error('data: dates\ntrain:\n  epochs: "ten"\n', registry)
    assert exc.key == "train.epochs"
    assert exc.line == 3
    assert "expected integer >= 1, got str 'ten'" in str(exc)


def test_true_for_an_integer_is_rejected_because_bools_are_not_ints(registry):
    exc = parse_error("data: dates\ntrain:\n  epochs: true\n", registry)
    assert exc.key == "train.epochs"
    assert "got bool True" in str(exc)


def test_integer_for_a_float_key_is_accepted_and_becomes_a_float(registry):
    recipe = parse("data: dates\nmodel:\n  dropout: 0\ntrain:\n  lr: 1\n", registry)
    assert recipe["train"]["lr"] == 1.0
    assert type(recipe["train"]["lr"]) is float
    assert type(recipe["model"]["dropout"]) is float


def test_exponent_notation_is_read_as_a_number(registry):
    recipe = parse("data: dates\ntrain:\n  lr: 1e-3\n  clip_grad_norm: 2.5E+0\n", registry, ["model.dropout=5e-2"])
    assert recipe["train"]["lr"] == pytest.approx(0.001)
    assert recipe["train"]["clip_grad_norm"] == pytest.approx(2.5)
    assert recipe["model"]["dropout"] == pytest.approx(0.05)


def test_zero_epochs_is_too_small(registry):
    exc = parse_error("data: dates\ntrain:\n  epochs: 0\n", registry)
    assert exc.key == "train.epochs"
    assert "got 0 (too small)" in str(exc)


def test_dropout_above_its_maximum_is_too_large(registry):
    exc = parse_error("data: dates\nmodel:\n  dropout: 1.5\n", registry)
    assert exc.key == "model.dropout"
    assert exc.line == 3
    assert "expected number >= 0.0 and <= 0.9, got 1.5 (too large)" in str(exc)


def test_device_outside_the_choices_suggests_the_closest(registry):
    exc = parse_error("data: dates\ntrain:\n  device: gpu\n", registry)
    assert exc.key == "train.device"
    assert "expected one of 'auto', 'cpu', 'cuda', got 'gpu'. Did you mean 'cpu'?" in str(exc)


def test_null_for_a_non_nullable_key_is_rejected(registry):
    exc = parse_error("data: dates\ntrain:\n  epochs: null\n", registry)
    assert "expected integer >= 1, got null" in str(exc)


def test_null_is_accepted_for_a_nullable_key(registry):
    recipe = parse("data: dates\ntrain:\n  clip_grad_norm: null\n", registry)
    assert recipe["train"]["clip_grad_norm"] is None


def test_section_that_is_not_a_mapping_is_an_error(registry):
    exc = parse_error("data: dates\ntrain: 5\n", registry)
    assert exc.key == "train"
    assert exc.line == 2
    assert "expected a mapping of keys, got int 5" in str(exc)


def test_empty_metric_list_is_an_error(registry):
    exc = parse_error("data: dates\nevaluate:\n  metrics: []\n", registry)
    assert exc.key == "evaluate.metrics"
    assert "non-empty list" in str(exc)


def test_best_metric_must_be_among_the_metrics(registry):
    text = "data: dates\ntrain:\n  best_metric: chfr\nevaluate:\n  metrics: [exact_match, chrf]\n"
    exc = parse_error(text, registry)
    assert exc.key == "train.best_metric"
    assert exc.line == 3
    assert "'chfr' is not among evaluate.metrics. Did you mean 'chrf'?" in str(exc)


def test_best_metric_among_the_metrics_is_kept(registry):
    text = "data: dates\ntrain:\n  best_metric: chrf\nevaluate:\n  metrics: [exact_match, chrf]\n"
    assert parse(text, registry)["train"]["best_metric"] == "chrf"


# --- whole-recipe problems -------------------------------------------------------------------


def test_missing_data_section_is_an_error_listing_the_data_sources(registry):
    exc = parse_error("seed: 3\ntrain:\n  epochs: 2\n", registry)
    assert exc.key == "data"
    assert "missing required section" in str(exc)
    assert "available: csv, dates, parallel, tsv" in str(exc)


def test_empty_recipe_is_missing_its_data_section(registry):
    exc = parse_error("# nothing yet\n", registry)
    assert exc.key == "data"
    assert str(exc).startswith("r.yaml: data: missing required section")


def test_yaml_syntax_error_gives_the_line(registry):
    exc = parse_error("data: dates\ntrain:\n  epochs: 3\n   lr: 1\n", registry)
    assert exc.line == 4
    assert str(exc).startswith("r.yaml:4: invalid YAML: ")


def test_recipe_that_is_not_a_mapping_is_an_error(registry):
    exc = parse_error("- data\n- train\n", registry)
    assert str(exc) == "r.yaml: a recipe must be a mapping of sections, got list"


def test_negative_seed_is_rejected(registry):
    exc = parse_error("seed: -1\ndata: dates\n", registry)
    assert exc.key == "seed"
    assert exc.line == 1


# --- overrides -----------------------------------------------------------------------------


def test_override_value_is_read_as_yaml_so_a_number_becomes_an_int(registry):
    recipe = parse("data: dates\ntrain:\n  epochs: 6\n", registry, ["train.epochs=3"])
    assert recipe["train"]["epochs"] == 3
    assert type(recipe["train"]["epochs"]) is int


def test_override_of_a_path_stays_a_string(registry, tmp_path):
    (tmp_path / "3").write_text("")
    recipe = parse("data:\n  name: dates\n", registry, [f"data.path={tmp_path / '3'}"])
    assert recipe["data"]["path"] == str(tmp_path / "3")


def test_override_null_clears_a_nullable_key(registry):
    recipe = parse("data: dates\ntrain:\n  patience: 2\n", registry, ["train.patience=null"])
    assert recipe["train"]["patience"] is None


def test_override_adds_a_section_the_recipe_lacks(registry):
    recipe = parse("data: dates\n", registry, ["evaluate.examples=0"])
    assert recipe["evaluate"]["examples"] == 0


def test_override_of_a_component_param_works_when_the_recipe_names_it_as_a_string(registry):
    recipe = parse("data: dates\nmodel:\n  encoder: lstm\n", registry, ["model.encoder.layers=2"])
    assert recipe["model"]["encoder"]["name"] == "lstm"
    assert recipe["model"]["encoder"]["layers"] == 2


def test_override_of_the_data_source_param_works_when_the_recipe_names_it_as_a_string(registry):
    recipe = parse("data: dates\n", registry, ["data.test_size=10"])
    assert recipe["data"]["name"] == "dates"
    assert recipe["data"]["test_size"] == 10


def test_later_override_wins(registry):
    recipe = parse("data: dates\n", registry, ["train.epochs=3", "train.epochs=4"])
    assert recipe["train"]["epochs"] == 4


def test_override_with_a_bad_value_names_the_override_as_the_source(registry):
    exc = parse_error("data: dates\ntrain:\n  epochs: 6\n", registry, ["train.epochs=abc"])
    assert exc.source == "--set train.epochs=abc"
    assert exc.line is None
    assert exc.key == "train.epochs"
    assert str(exc) == "--set train.epochs=abc: train.epochs: expected integer >= 1, got str 'abc'"


def test_override_without_equals_sign_is_an_error(registry):
    exc = parse_error("data: dates\n", registry, ["train.epochs"])
    assert "expected KEY=VALUE" in str(exc)
    assert "'train.epochs'" in str(exc)


def test_override_with_an_empty_key_part_is_an_error(registry):
    exc = parse_error("data: dates\n", registry, ["train..epochs=3"])
    assert "empty key" in str(exc)


def test_override_of_an_unknown_key_suggests_the_closest(registry):
    exc = parse_error("data: dates\n", registry, ["train.epoch=3"])
    assert exc.source == "--set train.epoch=3"
    assert exc.key == "train.epoch"
    assert "Did you mean 'epochs'?" in str(exc)


def test_override_of_an_unknown_section_blames_the_override_not_the_file(registry):
    exc = parse_error("data: dates\n", registry, ["trian.epochs=3"])
    assert exc.source == "--set trian.epochs=3"
    assert exc.line is None
    assert "Did you mean 'train'?" in str(exc)


def test_override_creating_an_incomplete_component_blames_the_override(registry):
    exc = parse_error("seed: 2\n", registry, ["data.path=/x/y"])
    assert exc.source == "--set data.path=/x/y"
    assert "missing 'name'" in str(exc)


def test_override_below_a_plain_value_is_an_error(registry):
    exc = parse_error("data: dates\ntrain:\n  epochs: 6\n", registry, ["train.epochs.max=3"])
    assert exc.source == "--set train.epochs.max=3"
    assert "train.epochs is not a mapping" in str(exc)


def test_overrides_do_not_hide_errors_elsewhere_in_the_file(registry):
    exc = parse_error("data: dates\ntrain:\n  lr: fast\n", registry, ["train.epochs=3"])
    assert exc.source == "r.yaml"
    assert exc.line == 3
    assert exc.key == "train.lr"


def test_a_set_that_replaces_a_section_owns_every_key_beneath_it(registry, tmp_path):
    # The case: the file's line 12 says `epochs: 1`; the 0 came from the --set.
    path = tmp_path / "r.yaml"
    path.write_text("data: dates\n" + "# a comment\n" * 9 + "train:\n  epochs: 1\n")
    exc = _load_error(path, registry, ["train={epochs: 0}"])
    assert str(exc) == "--set train={epochs: 0}: train.epochs: expected integer >= 1, got 0 (too small)"
    assert exc.line is None


def test_a_set_of_a_parent_owns_a_nested_key_the_file_also_gives(registry):
    text = "data: dates\nmodel:\n  encoder:\n    name: lstm\n    layers: 2\n"
    exc = parse_error(text, registry, ["model={encoder: {name: lstm, layers: 0}}"])
    assert exc.source == "--set model={encoder: {name: lstm, layers: 0}}"
    assert exc.key == "model.encoder.layers"
    exc = parse_error(text, registry, ["model.encoder={name: lstm, layers: 0}"])
    assert exc.source == "--set model.encoder={name: lstm, layers: 0}"


def test_the_last_set_that_covers_a_key_owns_it(registry):
    text = "data: dates\ntrain:\n  epochs: 1\n"
    exc = parse_error(text, registry, ["train={epochs: 0}", "train.lr=50"])
    assert (exc.source, exc.key) == ("--set train={epochs: 0}", "train.epochs")
    exc = parse_error(text, registry, ["train.epochs=0", "train={epochs: -1}"])
    assert exc.source == "--set train={epochs: -1}"
    exc = parse_error(text, registry, ["train={epochs: 0}", "train.epochs=-1"])
    assert exc.source == "--set train.epochs=-1"
    exc = parse_error(text.replace("epochs: 1", "epochs: 0"), registry, ["train.lr=0.5"])
    assert (exc.source, exc.line) == ("r.yaml", 3)  # a --set of a sibling does not own the file's key


def _load_error(path: Path, registry, overrides: list[str]) -> RecipeError:
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, registry, overrides)
    return caught.value


# --- dump, differences, files ---------------------------------------------------------------


def test_dumped_recipe_parses_back_to_the_same_resolved_recipe(registry, tmp_path):
    (tmp_path / "dates.txt").write_text("")
    recipe = load_recipe(DATES_RECIPE, registry, ["train.lr=1e-4", f"data.path={tmp_path / 'dates.txt'}"])
    text = dump_recipe(recipe)
    assert parse(text, registry) == recipe
    assert list(yaml.safe_load(text)) == list(recipe)


def test_recipe_differences_lists_changed_keys_with_old_and_new_values(registry):
    old = load_recipe(DATES_RECIPE, registry)
    new = load_recipe(DATES_RECIPE, registry, ["train.epochs=3", "model.encoder.layers=2"])
    assert recipe_differences(old, new) == ["model.encoder.layers: 1 -> 2", "train.epochs: 6 -> 3"]


def test_recipe_differences_of_equal_recipes_is_empty(registry):
    recipe = load_recipe(DATES_RECIPE, registry)
    assert recipe_differences(recipe, parse(dump_recipe(recipe), registry)) == []


def test_recipe_differences_reports_added_and_removed_keys():
    assert recipe_differences({"a": {"b": 1}}, {"a": {"c": 2}}) == ["a.b: 1 -> None", "a.c: None -> 2"]


def test_load_recipe_of_a_missing_file_names_the_path(registry, tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(RecipeError) as caught:
        load_recipe(missing, registry)
    assert str(missing) in str(caught.value)
    assert "not found" in str(caught.value)


def test_load_recipe_errors_name_the_file_and_line(registry, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data: dates\ntrain:\n  epochs: -2\n", encoding="utf-8")
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, registry)
    assert str(caught.value).startswith(f"{path}:3: train.epochs: ")


def test_load_recipe_applies_overrides(registry, tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("data: dates\n", encoding="utf-8")
    assert load_recipe(path, registry, ["seed=7"])["seed"] == 7


# --- `transduce check` ------------------------------------------------------------------------


@pytest.fixture
def plain_console(monkeypatch):
    """Keep rich from adding colour codes to captured output."""
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")


def test_check_prints_the_resolved_recipe_as_yaml(registry, capsys, plain_console):
    assert cli.main(["check", str(DATES_RECIPE)]) == 0
    captured = capsys.readouterr()
    assert yaml.safe_load(captured.out) == load_recipe(DATES_RECIPE, registry)
    assert "valid" in captured.err


def test_check_applies_set_overrides(capsys, plain_console):
    assert cli.main(["check", str(DATES_RECIPE), "--set", "train.epochs=2"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["train"]["epochs"] == 2


def test_check_of_a_bad_recipe_exits_2_with_file_line_and_key(tmp_path, capsys, plain_console):
    path = tmp_path / "bad.yaml"
    path.write_text("data: dates\ntrain:\n  epoch: 3\n", encoding="utf-8")
    assert cli.main(["check", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{path}:3: train.epoch: " in captured.err
    assert "Did you mean 'epochs'?" in captured.err
    assert "Traceback" not in captured.err


def test_check_of_a_bad_override_names_the_override(capsys, plain_console):
    assert cli.main(["check", str(DATES_RECIPE), "--set", "train.epochs=abc"]) == 2
    err = capsys.readouterr().err
    assert "--set train.epochs=abc: train.epochs: expected integer" in err
    assert "Traceback" not in err


def test_check_message_keeps_square_brackets_of_the_path(tmp_path, capsys, plain_console):
    folder = tmp_path / "[bold]"
    folder.mkdir()
    path = folder / "bad.yaml"
    path.write_text("data: dates\ntrain:\n  epoch: 3\n", encoding="utf-8")
    assert cli.main(["check", str(path)]) == 2
    assert f"{path}:3: train.epoch: " in capsys.readouterr().err


def test_check_of_a_missing_file_exits_2_naming_it(tmp_path, capsys, plain_console):
    missing = tmp_path / "missing.yaml"
    assert cli.main(["check", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err
    assert "Traceback" not in err


def test_a_key_given_twice_is_an_error_naming_both_lines(registry):
    exc = parse_error("data: dates\ntrain:\n  epochs: 3\n  epochs: 5\n", registry)
    assert exc.key == "train.epochs"
    assert exc.line == 4
    assert "first on line 3" in str(exc)


def test_nan_is_not_accepted_for_a_number(registry):
    exc = parse_error("data: dates\ntrain:\n  lr: .nan\n", registry)
    assert exc.key == "train.lr"
    assert "finite" in str(exc)
