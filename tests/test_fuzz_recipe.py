"""Fuzzing the recipe loader: random text and bytes, random YAML structures, wrong values at real keys, --set,
and YAML built to hurt: anchors, aliases and merge keys (alias bombs among them), depth, size and odd tags.

Every case ends in a resolved recipe or a RecipeError (see test_fuzz_harness);
resolved recipes are also built (`pipeline.check`, what `check` and `train`
do first), which must end in None or a RecipeError too.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_harness import ends_cleanly, fuzz, report_cases

from transduce._model import assembly as pipeline
from transduce._plugins.registry import discover
from transduce._recipe.recipe import MAX_BYTES, MAX_DEPTH, MAX_VALUES, TOP_LEVEL, dump_recipe, load_recipe, parse_recipe
from transduce.errors import RecipeError

REGISTRY = discover()

VALID: dict[str, Any] = {
    "seed": 1,
    "data": {"name": "dates", "train_size": 30, "valid_size": 5, "test_size": 5},
    "source": {"tokenizer": "char", "min_freq": 1},
    "target": {"tokenizer": {"name": "word", "lowercase": True}},
    "model": {
        "embedding_dim": 8,
        "encoder": {"name": "lstm", "hidden_size": 8},
        "decoder": {"name": "lstm", "hidden_size": 8, "attention": "general"},
    },
    "train": {"epochs": 1, "batch_size": 4, "lr": 0.01},
    "search": {"name": "greedy", "max_length": 5},
    "evaluate": {"metrics": ["exact_match", "bleu"], "examples": 2},
    "loggers": ["console"],
}


def _key_paths(node: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [path] if path else []
    if isinstance(node, dict):
        for key, value in node.items():
            paths += _key_paths(value, (*path, key))
    return paths


#: Every key of the resolved recipe (each section, each parameter with its default) and of VALID.
PATHS = sorted(set(_key_paths(parse_recipe(dump_recipe(VALID), REGISTRY))) | set(_key_paths(VALID)))
KEY_WORDS = sorted({part for path in PATHS for part in path} | set(TOP_LEVEL))

#: Values the fuzzing found that crashed or hung in other modules (fixed there since); kept as regressions.
FOUND_ELSEWHERE = {
    ("model", "encoder", "hidden_size"): 2**40,  # torch could not allocate it
    ("model", "encoder", "layers"): 10**6,  # building 10**6 LSTM layers never ended
    ("model", "decoder", "attention"): {"name": "additive", "hidden_size": 2**40},
    ("train", "min_lr"): 10**400,  # an int beyond float range overflowed in Param.coerce
    ("search", "max_ratio"): 10**400,
}
HUGE = (2**31, 2**40, 10**30, 10**400)

#: Scalars as YAML gives them, biased to the edges: huge and negative numbers, NaN, odd strings.
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=300),
    st.sampled_from([0, -1, *HUGE]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e-308, 5e-324]),
    st.text(max_size=12),
    st.sampled_from(KEY_WORDS),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEY_WORDS) | st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def resolves_or_refuses(target: str, build: Any, seconds: float = 20.0) -> None:
    """`build()` gives a recipe (which must then build) or a RecipeError."""
    recipe = ends_cleanly(target, build, errors=(RecipeError,), seconds=seconds)
    if isinstance(recipe, dict):
        assert set(recipe) == set(TOP_LEVEL)
        built = lambda: pipeline.check(REGISTRY, recipe)  # noqa: E731
        ends_cleanly(target + " (built)", built, errors=(RecipeError,), seconds=seconds)


def _known_elsewhere(path: tuple[str, ...], value: Any) -> bool:
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    if abs(value) > 1e308:  # any float parameter (params.py)
        return True
    return value >= 2**31 and path[:2] in (("model", "attention"), ("model", "encoder"))


def _with_value(path: tuple[str, ...], value: Any, delete: bool = False) -> dict[str, Any]:
    data = copy.deepcopy(VALID)
    node = data
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {"name": node[part]} if isinstance(node.get(part), str) else {}
        node = node[part]
    if delete:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return data


@fuzz(150)
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    resolves_or_refuses("recipe: random text", lambda: parse_recipe(text, REGISTRY))


@fuzz(60)
@given(st.lists(st.sampled_from([*":-[]{}&*!|>'\"%@`#, ?\n\t", "a", "1", "data", "name"]), max_size=40).map("".join))
def test_random_yaml_punctuation(text: str) -> None:
    resolves_or_refuses("recipe: YAML punctuation", lambda: parse_recipe(text, REGISTRY))


@fuzz(100)
@given(st.dictionaries(st.sampled_from(KEY_WORDS) | st.text(max_size=6), VALUES, max_size=6))
def test_random_structures(data: dict[str, Any]) -> None:
    text = yaml.safe_dump(data, allow_unicode=True)
    resolves_or_refuses("recipe: random structures", lambda: parse_recipe(text, REGISTRY))


@fuzz(250)
@given(st.sampled_from(PATHS), st.one_of(st.sampled_from([None, True, "", "x", [], {}, -1, 0, *HUGE]), VALUES))
def test_a_wrong_value_at_a_real_key(path: tuple[str, ...], value: Any) -> None:
    if _known_elsewhere(path, value):
        return
    text = yaml.safe_dump(_with_value(path, value), allow_unicode=True)
    resolves_or_refuses("recipe: wrong value at a real key", lambda: parse_recipe(text, REGISTRY))


@fuzz(60)
@given(st.sampled_from(PATHS))
def test_a_missing_key(path: tuple[str, ...]) -> None:
    text = yaml.safe_dump(_with_value(path, None, delete=True), allow_unicode=True)
    resolves_or_refuses("recipe: a key removed", lambda: parse_recipe(text, REGISTRY))


@fuzz(120)
@given(
    st.lists(
        st.tuples(st.sampled_from([".".join(p) for p in PATHS]) | st.text(max_size=10), st.text(max_size=10)).map(
            "=".join
        )
        | st.text(max_size=16),
        max_size=3,
    )
)
def test_random_overrides(overrides: list[str]) -> None:
    text = yaml.safe_dump(VALID)
    resolves_or_refuses("recipe: random --set", lambda: parse_recipe(text, REGISTRY, overrides=overrides))


@fuzz(60)
@given(data=st.binary(max_size=120), prefix=st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\x00", b"data: "]))
def test_random_bytes_in_a_recipe_file(data: bytes, prefix: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "r.yaml"
        path.write_bytes(prefix + data)
        resolves_or_refuses("recipe: random file bytes", lambda: load_recipe(path, REGISTRY))


# --- YAML structure: anchors, aliases, merge keys, depth, size, tags ------------------------------

ANCHORS = ("a", "b", "c")
#: Tags YAML knows, tags PyYAML's unsafe loaders would run, and tags nobody knows, with and without values.
TAGS = (
    "!!python/object/apply:os.system",
    "!!python/object:builtins.dict",
    "!!python/name:os.system",
    "!!binary",
    "!!timestamp",
    "!!set",
    "!!omap",
    "!!pairs",
    "!!int",
    "!!float",
    "!!str",
    "!!null",
    "!!bool",
    "!!map",
    "!!seq",
    "!!merge",
    "!custom",
    "!<tag:yaml.org,2002:int>",
    "!<!>",
)
PLAIN_SCALARS = st.sampled_from(
    ["1", "0", "-1", "3", "0.5", "1e-3", "null", "~", "true", "no", "x", "''", "'a b'", '"\\0"', ".nan", "-.inf",
     "0x10", "0o7", "1_000", "2001-12-14", "aGk=", "dates", "greedy", "char", "word", "lstm", "console", "bleu"]
)  # fmt: skip
SCALAR_TEXT = PLAIN_SCALARS | st.sampled_from(KEY_WORDS) | st.text(max_size=8).map(json.dumps)
ALIAS = st.sampled_from(ANCHORS).map(lambda name: f"*{name}")
KEY_TEXT = st.sampled_from([*KEY_WORDS, "<<", "name", "? [a]", "!!int k", "&a k"]) | PLAIN_SCALARS


def _flow_nodes(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Flow collections of `children`, anchored, tagged, or merging aliases into a mapping."""
    pairs = st.lists(st.tuples(KEY_TEXT, children).map(": ".join), max_size=4)
    return st.one_of(
        st.lists(children, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
        pairs.map(lambda items: "{" + ", ".join(items) + "}"),
        st.tuples(st.sampled_from(ANCHORS), children).map(lambda t: f"&{t[0]} {t[1]}"),
        st.tuples(st.sampled_from(TAGS), children).map(" ".join),
        st.tuples(ALIAS | st.lists(ALIAS, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"), pairs).map(
            lambda t: "{" + ", ".join([f"<<: {t[0]}", *t[1]]) + "}"
        ),
    )


#: One YAML value in flow style: scalars, aliases (maybe undefined, maybe of the node they are in), collections.
NODES = st.deferred(lambda: st.recursive(SCALAR_TEXT | ALIAS | st.sampled_from(TAGS), _flow_nodes, max_leaves=12))


def _section_lines(sections: list[tuple[str, str]]) -> str:
    return "".join(f"{key}: {value}\n" for key, value in sections)


@fuzz(220)
@given(st.lists(st.tuples(st.sampled_from(KEY_WORDS) | KEY_TEXT, NODES), max_size=6))
def test_yaml_structures(sections: list[tuple[str, str]]) -> None:
    text = _section_lines(sections)
    resolves_or_refuses("recipe: YAML structure", lambda: parse_recipe(text, REGISTRY))


def _flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()


@fuzz(200)
@given(
    anchored=st.dictionaries(st.sampled_from(list(VALID)), st.sampled_from(ANCHORS), max_size=3),
    reused=st.dictionaries(
        st.sampled_from(list(VALID)), st.tuples(st.sampled_from(["alias", "merge", "merge list"]), ALIAS), max_size=3
    ),
    path=st.sampled_from(PATHS),
    value=st.none() | NODES,
)
def test_anchors_aliases_and_merges_in_a_real_recipe(
    anchored: dict[str, str], reused: dict[str, tuple[str, str]], path: tuple[str, ...], value: str | None
) -> None:
    """VALID with sections anchored, later sections replaced by an alias of one or merging one, and maybe
    a generated node at a real key: some of these resolve (source and target take the same keys)."""
    placeholder = "PLACEHOLDER_VALUE"
    data = _with_value(path, placeholder) if value is not None else VALID
    lines = []
    for key, section in data.items():
        text = _flow(section).replace(placeholder, value or "")
        how, alias = reused.get(key, ("keep", ""))
        if how == "alias":
            text = alias
        elif how.startswith("merge") and isinstance(section, dict):  # merge, and keep the section's first key
            merged = f"[{alias}, {{}}]" if how == "merge list" else alias
            own = _flow(dict(list(section.items())[:1])).replace(placeholder, value or "")
            text = "{" + f"<<: {merged}, " + own[1:]
        if key in anchored:
            text = f"&{anchored[key]} {text}"
        lines.append((key, text))
    text = _section_lines(lines)
    resolves_or_refuses("recipe: YAML anchors and merges", lambda: parse_recipe(text, REGISTRY))


def alias_bomb(levels: int, width: int, shape: str) -> list[str]:
    """Anchored lists or mappings, each holding `width` aliases of the one before: width**(levels+1) values."""
    nodes = ["&n0 [" + ", ".join(["1"] * width) + "]"]
    for level in range(1, levels + 1):
        alias = f"*n{level - 1}"
        items = [alias] * width if shape == "list" else [f"k{i}: {alias}" for i in range(width)]
        body = ", ".join(items).join("[]" if shape == "list" else "{}")
        nodes.append(f"&n{level} {body}")
    return nodes


def _bomb_text(levels: int, width: int, shape: str) -> str:
    if shape == "merge":  # a chain of mappings, each merging the previous one `width` times
        nodes = ["&m0 {k: 1}"] + [
            f"&m{level} {{<<: [" + ", ".join([f"*m{level - 1}"] * width) + f"], k{level}: 1}}"
            for level in range(1, levels + 1)
        ]
    else:
        nodes = alias_bomb(levels, width, shape)
    return "{" + ", ".join(f"x{i}: {node}" for i, node in enumerate(nodes)) + "}"


def _expanded(levels: int, width: int) -> int:
    return width ** (levels + 1)


@fuzz(100)
@given(
    levels=st.integers(1, 12),
    width=st.integers(1, 12),
    shape=st.sampled_from(["list", "map", "merge"]),
    where=st.sampled_from(["top", "train", "--set"]),
)
def test_alias_bombs(levels: int, width: int, shape: str, where: str) -> None:
    bomb = _bomb_text(levels, width, shape)
    if where == "--set":
        action = lambda: parse_recipe(dump_recipe(VALID), REGISTRY, overrides=[f"train={bomb}"])  # noqa: E731
    else:
        text = (
            f"bomb: {bomb}\n" if where == "top" else dump_recipe(VALID).replace("train:\n", f"train:\n  bomb: {bomb}\n")
        )
        action = lambda: parse_recipe(text, REGISTRY)  # noqa: E731
    outcome = ends_cleanly("recipe: YAML alias bombs", action, errors=(RecipeError,), seconds=5)
    if _expanded(levels, width) > 10 * MAX_VALUES:
        assert isinstance(outcome, RecipeError) and "more than" in str(outcome), outcome


@fuzz(100)
@given(
    depth=st.integers(1, 600) | st.sampled_from([MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 5000]),
    style=st.sampled_from(["[", "{a: ", "block list", "block map", "anchored"]),
    inner=SCALAR_TEXT | ALIAS,
    at_set=st.booleans(),
)
def test_deep_nesting(depth: int, style: str, inner: str, at_set: bool) -> None:
    if style == "[":
        value = "[" * depth + inner + "]" * depth
    elif style == "{a: ":
        value = "{a: " * depth + inner + "}" * depth
    elif style == "anchored":  # a deep node, then aliases of it nested as deep again
        half = depth // 2 + 1
        value = "{x: &a " + "[" * half + "1" + "]" * half + ", y: " + "[" * half + "*a" + "]" * half + "}"
    else:
        item = "- " if style == "block list" else "k: "
        value = "\n" + "".join(f"{'  ' * (level + 1)}{item}\n" for level in range(min(depth, 400)))
        value = value.rstrip("\n") + f" {inner}" if not at_set else value
    if at_set:
        action = lambda: parse_recipe(dump_recipe(VALID), REGISTRY, overrides=[f"train.epochs={value}"])  # noqa: E731
    else:
        text = dump_recipe(VALID).replace("train:\n", f"train:\n  epochs: {value}\n", 1)
        action = lambda: parse_recipe(text, REGISTRY)  # noqa: E731
    outcome = ends_cleanly("recipe: YAML depth", action, errors=(RecipeError,), seconds=5)
    if depth > MAX_DEPTH + 2 and style in ("[", "{a: "):
        assert isinstance(outcome, RecipeError) and "levels deep" in str(outcome), outcome


@fuzz(60)
@given(
    length=st.sampled_from([0, 1, 100, 10_000, 200_000, MAX_BYTES + 1]) | st.integers(0, 5000),
    keys=st.sampled_from([1, 10, 1000, 5000]) | st.integers(0, 300),
    where=st.sampled_from(["value", "key", "many keys", "--set"]),
    quoted=st.booleans(),
)
def test_large_recipes(length: int, keys: int, where: str, quoted: bool) -> None:
    scalar = ("'" + "x" * length + "'") if quoted else ("x" * length or "''")
    if where == "many keys":
        value = "{" + ", ".join(f"k{i}: {scalar[:50]}" for i in range(keys)) + "}"
    else:
        value = scalar
    if where == "--set":
        action = lambda: parse_recipe(dump_recipe(VALID), REGISTRY, overrides=[f"data.path={value}"])  # noqa: E731
    else:
        line = f"  {value}: 1\n" if where == "key" else f"  path: {value}\n"
        text = dump_recipe(VALID).replace("data:\n", "data:\n" + line, 1)
        action = lambda: parse_recipe(text, REGISTRY)  # noqa: E731
    resolves_or_refuses("recipe: YAML size", action, seconds=10)


@fuzz(150)
@given(path=st.sampled_from(PATHS), tag=st.sampled_from(TAGS), value=SCALAR_TEXT | NODES, at_set=st.booleans())
def test_odd_tags(path: tuple[str, ...], tag: str, value: str, at_set: bool) -> None:
    tagged = f"{tag} {value}"
    if at_set:
        text = yaml.safe_dump(VALID)
        action = lambda: parse_recipe(text, REGISTRY, overrides=[f"{'.'.join(path)}={tagged}"])  # noqa: E731
    else:
        text = yaml.safe_dump(_with_value(path, "PLACEHOLDER_VALUE")).replace("PLACEHOLDER_VALUE", tagged)
        action = lambda: parse_recipe(text, REGISTRY)  # noqa: E731
    resolves_or_refuses("recipe: YAML tags", action)


@fuzz(250)
@given(st.lists(st.tuples(st.sampled_from([".".join(p) for p in PATHS]), NODES).map("=".join), min_size=1, max_size=3))
def test_set_values_with_yaml_structure(overrides: list[str]) -> None:
    text = yaml.safe_dump(VALID)
    resolves_or_refuses("recipe: --set YAML structure", lambda: parse_recipe(text, REGISTRY, overrides=overrides))


def test_the_harness_tells_a_recipe_from_a_refusal() -> None:
    assert isinstance(ends_cleanly("harness", lambda: parse_recipe(dump_recipe(VALID), REGISTRY)), dict)
    assert isinstance(ends_cleanly("harness", lambda: parse_recipe("seed: .nan", REGISTRY)), RecipeError)


def test_model_sizes_are_bounded_so_a_typo_is_an_error_not_an_allocation() -> None:
    for path in (
        ("model", "decoder", "hidden_size"),
        ("model", "embedding_dim"),
        ("model", "decoder", "layers"),
        ("model", "encoder", "hidden_size"),
        ("seed",),
    ):
        with pytest.raises(RecipeError, match="too large"):
            parse_recipe(yaml.safe_dump(_with_value(path, 2**40)), REGISTRY)


@pytest.mark.parametrize(("path", "value"), list(FOUND_ELSEWHERE.items()), ids=lambda x: str(x)[:30])
def test_values_found_by_fuzzing_are_refused_clearly(path: tuple[str, ...], value: Any) -> None:
    text = yaml.safe_dump(_with_value(path, value))
    with pytest.raises(RecipeError, match="too large"):
        parse_recipe(text, REGISTRY)


def test_cases_ran() -> None:
    print(report_cases("recipe:"))
