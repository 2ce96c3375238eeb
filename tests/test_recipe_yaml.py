"""Hostile YAML in a recipe or a --set: alias bombs, deep nesting, huge files end in a RecipeError with
the file and line, fast; merge keys and plain aliases keep working as YAML defines them."""

from __future__ import annotations

import time

import pytest
from recipe_helpers import parse, parse_error

from transduce._recipe.recipe import MAX_BYTES, MAX_DEPTH, MAX_VALUES, load_recipe, read_value
from transduce.errors import RecipeError

DATA = "data: {name: dates, train_size: 30, valid_size: 5, test_size: 5}\n"


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """`a: &a [1 x width]`, then each level a list of `width` aliases of the one before: width**levels values."""
    names = [chr(ord("a") + i) for i in range(levels + 1)]
    lines = [f"{names[0]}: &{names[0]} [{','.join(['1'] * width)}]"]
    lines += [
        f"{new}: &{new} [{','.join([f'*{old}'] * width)}]" for old, new in zip(names[:-1], names[1:], strict=True)
    ]
    return "\n".join(lines) + "\n"


def quickly(action, seconds: float = 5.0) -> RecipeError:
    started = time.monotonic()
    with pytest.raises(RecipeError) as caught:
        action()
    assert time.monotonic() - started < seconds
    return caught.value


def test_an_alias_bomb_is_refused_at_the_line_of_the_alias_that_crosses_the_bound(registry):
    text = alias_bomb()
    assert len(text) < 400  # the 351-byte recipe expands to 9**10 values
    error = quickly(lambda: parse(text, registry))
    assert f"aliases expand to more than {MAX_VALUES:,} values" in str(error)
    assert "write it out or remove the alias" in str(error)
    assert error.source == "r.yaml"
    assert error.line == 6  # 9**5 > 100,000: the fifth list of aliases


def test_an_alias_bomb_in_a_recipe_file_names_the_file(registry, tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(DATA + "train: " + alias_bomb().replace("\n", ", ").rstrip(", ").join("{}") + "\n")
    error = quickly(lambda: load_recipe(path, registry))
    assert str(error).startswith(f"{path}:2: aliases expand to more than")


@pytest.mark.parametrize(
    "text",
    [
        "[" * 500 + "]" * 500,
        "{a: " * 5000 + "1" + "}" * 5000,
        "a:\n" + "".join(f"{' ' * i}- \n" for i in range(1, 300)),
    ],
)
def test_deep_nesting_is_refused_before_anything_recurses(registry, text):
    error = quickly(lambda: parse(text, registry))
    assert f"nested more than {MAX_DEPTH} levels deep" in str(error)
    assert error.line is not None


def test_nesting_within_the_bound_still_reads(registry):
    deep = "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2)
    error = parse_error(DATA + f"train: {{epochs: {deep}}}\n", registry)
    assert "train.epochs: expected integer" in str(error)


def test_aliases_that_nest_beyond_the_depth_bound_are_refused(registry):
    deep = "[" * 40 + "]" * 40
    error = quickly(lambda: parse(f"a: &a {deep}\nb: {'[' * 30}*a{']' * 30}\n", registry))
    assert "alias *a nests values more than 64 levels deep" in str(error)
    assert error.line == 2


def test_an_alias_inside_its_own_anchor_is_refused(registry):
    for text in ("a: &a [1, *a]\n", "a: &a {b: {<<: *a}}\n"):
        error = quickly(lambda text=text: parse(text, registry))
        assert "alias *a is inside the node it names" in str(error)


def test_a_recipe_text_over_the_size_bound_is_refused(registry, tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(DATA + "# " + "x" * MAX_BYTES + "\n")
    error = quickly(lambda: load_recipe(path, registry))
    assert str(error) == f"{path}: larger than 1 MiB; a recipe is small: it names components and settings, not data"
    error = quickly(lambda: parse(DATA + "# " + "x" * MAX_BYTES, registry))
    assert "more than 1 MiB of text" in str(error)


def test_a_recipe_of_many_plain_values_is_refused(registry):
    text = DATA + "train: {epochs: [" + "1," * MAX_VALUES + "]}\n"
    error = quickly(lambda: parse(text, registry), seconds=30)
    assert f"the recipe holds more than {MAX_VALUES:,} values" in str(error)


def test_a_recursion_error_of_the_yaml_reader_is_a_recipe_error_with_the_line(registry, monkeypatch):
    monkeypatch.setattr("transduce._recipe.recipe.MAX_DEPTH", 10**6)  # as if the bound missed a case
    error = quickly(lambda: parse("a:\n  b: " + "[" * 5000 + "]" * 5000, registry), seconds=30)
    assert "nested too deeply to read" in str(error)
    assert error.line == 2


def test_merge_keys_work_as_yaml_defines_them_with_the_line_of_each_key(registry):
    text = DATA + "source: &side\n  tokenizer: word\n  min_freq: 2\ntarget:\n  <<: *side\n  min_freq: 0\n"
    error = parse_error(text, registry)
    assert str(error).startswith("r.yaml:7: target.min_freq: expected integer >= 1, got 0")
    recipe = parse(text.replace("min_freq: 0", "min_freq: 3"), registry)
    assert recipe["target"]["tokenizer"]["name"] == "word"  # from the base
    assert (recipe["source"]["min_freq"], recipe["target"]["min_freq"]) == (2, 3)  # the mapping's own key wins
    merged_only = text.replace("min_freq: 2", "min_freq: -2").replace("  min_freq: 0\n", "")
    error = parse_error(merged_only, registry, ["source.min_freq=1"])
    assert str(error).startswith("r.yaml:4: target.min_freq:")  # a merged key: the line where the base gives it


def test_a_list_of_merges_takes_each_key_from_the_first_that_gives_it(registry):
    recipe = parse(DATA + "source: &x {min_freq: 2}\ntarget: {<<: [*x, {min_freq: 3, max_size: 100}]}\n", registry)
    assert (recipe["target"]["min_freq"], recipe["target"]["max_size"]) == (2, 100)


def test_merges_are_bounded_like_aliases(registry):
    chain = [f"m{i}: &m{i} {{<<: *m{i - 1}, k{i}: 1}}\n" for i in range(1, 80)]  # each merges the one before
    text = "m0: &m0 {x: 1}\n" + "".join(chain)
    error = quickly(lambda: parse(text, registry))
    assert "nests values more than 64 levels deep" in str(error)


def test_an_override_of_one_alias_copy_leaves_the_others(registry):
    recipe = parse(DATA + "source: &side {tokenizer: word}\ntarget: *side\n", registry, ["target.min_freq=3"])
    assert (recipe["source"]["min_freq"], recipe["target"]["min_freq"]) == (1, 3)


def test_a_set_value_is_read_with_the_same_bounds_and_names_the_set(registry):
    bomb = alias_bomb().replace("\n", ", ").rstrip(", ").join("{}")
    error = quickly(lambda: parse(DATA, registry, [f"train={bomb}"]))
    assert error.source.startswith("--set train={a: &a [1,1")
    assert error.source.endswith("...") and len(error.source) < 100  # a long --set is shortened
    assert "aliases expand to more than" in str(error)
    error = quickly(lambda: parse(DATA, registry, ["train.epochs=" + "[" * 500 + "]" * 500]))
    assert str(error).startswith("--set train.epochs=[[[")
    assert "nested more than 64 levels deep" in str(error)


def test_a_value_at_a_prompt_beyond_the_bounds_stays_text():
    bomb = alias_bomb().replace("\n", ", ").rstrip(", ").join("{}")
    assert read_value(bomb) == bomb  # a chat switch: the parameter it is given to refuses the text
    assert read_value("[" * 200 + "]" * 200) == "[" * 200 + "]" * 200
    assert read_value("{size: [1, 2]}") == {"size": [1, 2]}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("!!int attention", "'attention' is not a valid !!int (invalid literal"),
        ("!!timestamp x", "'x' is not a valid !!timestamp; quote it to keep it text"),
        ("2001-02-30", "'2001-02-30' is not a valid !!timestamp (day is out of range for month)"),
    ],
)
def test_a_value_its_tag_does_not_fit_is_an_error_with_the_line(registry, value, expected):
    error = parse_error(DATA + f"train:\n  epochs: {value}\n", registry)
    assert (error.source, error.line) == ("r.yaml", 3)
    assert expected in str(error)
