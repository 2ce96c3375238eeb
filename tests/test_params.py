"""Tests of parameter declarations: `Param.problem`, `describe_type`, `coerce` and `resolve_params`."""

from __future__ import annotations

import pytest

from transduce._plugins.params import REQUIRED, Param, did_you_mean, resolve_params
from transduce._plugins.registry import discover
from transduce._recipe import recipe as recipe_module


class Failed(Exception):
    """Raised by `fail` below so tests can look at the key and the message."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def fail(key: str, message: str):
    raise Failed(key, message)


def resolve(params, given, owner="section 'test'"):
    return resolve_params(params, given, owner=owner, fail=fail)


# --- Param.problem: types ----------------------------------------------------------


def test_int_param_accepts_an_int():
    assert Param("n", int, 1).problem(7) is None


@pytest.mark.parametrize("value", [2.5, "3", [3]])
def test_int_param_rejects_other_types_and_names_what_it_got(value):
    problem = Param("n", int, 1).problem(value)
    assert problem is not None
    assert problem.startswith("expected integer, got ")
    assert type(value).__name__ in problem
    assert repr(value) in problem


@pytest.mark.parametrize("value", [True, False])
def test_int_param_rejects_a_bool_because_bools_are_not_ints(value):
    assert Param("n", int, 1).problem(value) == f"expected integer, got bool {value!r}"


def test_float_param_accepts_floats_and_ints():
    param = Param("lr", float, 0.1)
    assert param.problem(0.5) is None
    assert param.problem(2) is None


def test_float_param_rejects_a_bool_and_a_string():
    param = Param("lr", float, 0.1)
    assert param.problem(True) == "expected number, got bool True"
    assert param.problem("0.1") == "expected number, got str '0.1'"


def test_bool_param_accepts_only_true_and_false():
    param = Param("flag", bool, False)
    assert param.problem(True) is None
    assert param.problem(False) is None
    assert param.problem(1) == "expected boolean, got int 1"
    assert param.problem("yes") == "expected boolean, got str 'yes'"


def test_str_param_rejects_a_number():
    param = Param("path", str, "x")
    assert param.problem("data.txt") is None
    assert param.problem(3) == "expected string, got int 3"


# --- Param.problem: null, ranges, choices --------------------------------------------


def test_null_is_rejected_unless_the_param_is_nullable():
    assert Param("n", int, 1).problem(None) == "expected integer, got null"
    assert Param("n", int, None, nullable=True).problem(None) is None


def test_nullable_param_still_checks_non_null_values():
    param = Param("n", int, None, min=1, nullable=True)
    assert param.problem(0) == "expected integer >= 1 or null, got 0 (too small)"
    assert param.problem("x") == "expected integer >= 1 or null, got str 'x'"


def test_min_is_inclusive_and_a_smaller_value_is_too_small():
    param = Param("epochs", int, 10, min=1)
    assert param.problem(1) is None
    assert param.problem(0) == "expected integer >= 1, got 0 (too small)"


def test_max_is_inclusive_and_a_larger_value_is_too_large():
    param = Param("dropout", float, 0.1, min=0.0, max=0.9)
    assert param.problem(0.9) is None
    assert param.problem(0.0) is None
    assert param.problem(0.91) == "expected number >= 0.0 and <= 0.9, got 0.91 (too large)"
    assert param.problem(-0.1) == "expected number >= 0.0 and <= 0.9, got -0.1 (too small)"


def test_a_value_outside_the_choices_is_rejected_with_the_closest_choice():
    param = Param("device", str, "auto", choices=("auto", "cpu", "cuda"))
    assert param.problem("cuda") is None
    problem = param.problem("gpu")
    assert problem == "expected one of 'auto', 'cpu', 'cuda', got 'gpu'. Did you mean 'cpu'?"


def test_a_choice_of_the_wrong_type_is_a_type_problem_not_a_choice_problem():
    param = Param("device", str, "auto", choices=("auto", "cpu", "cuda"))
    assert param.problem(3) == "expected one of 'auto', 'cpu', 'cuda', got int 3"


def test_a_value_far_from_every_choice_gets_no_suggestion():
    param = Param("split", str, "test", choices=("train", "valid", "test"))
    problem = param.problem("everything")
    assert problem is not None
    assert "Did you mean" not in problem


# --- describe_type, coerce, construction ---------------------------------------------


@pytest.mark.parametrize(
    ("param", "text"),
    [
        (Param("a", int, 1), "integer"),
        (Param("a", float, 1.0), "number"),
        (Param("a", bool, True), "boolean"),
        (Param("a", str, ""), "string"),
        (Param("a", int, 1, min=1), "integer >= 1"),
        (Param("a", float, 0.1, min=0.0, max=0.9), "number >= 0.0 and <= 0.9"),
        (Param("a", int, None, max=6, nullable=True), "integer <= 6 or null"),
        (Param("a", str, "x", choices=("x", "y")), "one of 'x', 'y'"),
    ],
)
def test_describe_type_reads_like_the_accepted_values(param, text):
    assert param.describe_type() == text


def test_coerce_widens_an_int_to_float_for_float_params_only():
    widened = Param("lr", float, 0.1).coerce(2)
    assert widened == 2.0
    assert type(widened) is float
    assert type(Param("n", int, 1).coerce(2)) is int
    assert Param("flag", bool, True).coerce(True) is True


def test_coerce_leaves_null_alone():
    assert Param("x", float, None, nullable=True).coerce(None) is None


def test_param_type_must_be_a_scalar_type():
    with pytest.raises(TypeError, match="'sizes'"):
        Param("sizes", list, [])


def test_a_param_without_default_is_required():
    assert Param("path", str).required
    assert Param("path", str).default is REQUIRED
    assert not Param("path", str, None, nullable=True).required
    assert repr(REQUIRED) == "required"


def test_did_you_mean_suggests_only_close_words():
    assert did_you_mean("epoch", ["epochs", "lr"]) == ". Did you mean 'epochs'?"
    assert did_you_mean("zzz", ["epochs", "lr"]) == ""
    assert did_you_mean("x", []) == ""


# --- resolve_params -------------------------------------------------------------------

PARAMS = (
    Param("path", str, help="file to read"),
    Param("size", int, 10, min=1),
    Param("rate", float, 0.5, min=0.0, max=1.0),
    Param("limit", int, None, nullable=True),
)


def test_resolve_params_fills_defaults_in_declaration_order():
    resolved = resolve(PARAMS, {"path": "a.txt"})
    assert resolved == {"path": "a.txt", "size": 10, "rate": 0.5, "limit": None}
    assert list(resolved) == ["path", "size", "rate", "limit"]


def test_resolve_params_keeps_given_values_and_widens_ints_for_floats():
    resolved = resolve(PARAMS, {"path": "a.txt", "size": 3, "rate": 1, "limit": 7})
    assert resolved == {"path": "a.txt", "size": 3, "rate": 1.0, "limit": 7}
    assert type(resolved["rate"]) is float


def test_resolve_params_does_not_change_the_given_mapping():
    given = {"path": "a.txt", "rate": 1}
    resolve(PARAMS, given)
    assert given == {"path": "a.txt", "rate": 1}


def test_resolve_params_reports_a_missing_required_key_with_its_help():
    with pytest.raises(Failed) as caught:
        resolve(PARAMS, {"size": 3}, owner="dataset 'files'")
    assert caught.value.key == "path"
    assert caught.value.message == "missing required key for dataset 'files': file to read"


def test_missing_required_key_without_help_describes_its_type():
    with pytest.raises(Failed) as caught:
        resolve((Param("count", int, min=1),), {})
    assert caught.value.message == "missing required key for section 'test': integer >= 1"


def test_resolve_params_reports_an_unknown_key_with_suggestion_and_valid_keys():
    with pytest.raises(Failed) as caught:
        resolve(PARAMS, {"path": "a.txt", "sise": 3}, owner="encoder 'lstm'")
    assert caught.value.key == "sise"
    assert caught.value.message == (
        "unknown key for encoder 'lstm'. Did you mean 'size'? (valid keys: limit, path, rate, size)"
    )


def test_unknown_key_is_reported_before_a_missing_required_one():
    with pytest.raises(Failed) as caught:
        resolve(PARAMS, {"colour": "red"})
    assert caught.value.key == "colour"


def test_any_key_is_unknown_for_a_component_without_params():
    with pytest.raises(Failed) as caught:
        resolve((), {"hidden_size": 3}, owner="attention 'dot'")
    assert caught.value.message == "unknown key for attention 'dot' (valid keys: none)"


def test_resolve_params_reports_a_bad_value_under_its_own_key():
    with pytest.raises(Failed) as caught:
        resolve(PARAMS, {"path": "a.txt", "rate": 2})
    assert caught.value.key == "rate"
    assert caught.value.message == "expected number >= 0.0 and <= 1.0, got 2 (too large)"


def test_a_non_string_key_is_reported_as_text():
    with pytest.raises(Failed) as caught:
        resolve(PARAMS, {"path": "a.txt", 3: "x"})
    assert caught.value.key == "3"


# --- declared defaults ----------------------------------------------------------------


def _declared_params():
    core = (
        (recipe_module.SEED,)
        + recipe_module.VOCAB_PARAMS
        + recipe_module.MODEL_PARAMS
        + recipe_module.TRAIN_PARAMS
        + recipe_module.EVALUATE_PARAMS
    )
    components = tuple(p for info in discover() for p in info.params)
    return core + components


def test_every_declared_default_passes_its_own_checks():
    bad = [(p.name, p.default, p.problem(p.default)) for p in _declared_params() if not p.required]
    assert [entry for entry in bad if entry[2] is not None] == []
