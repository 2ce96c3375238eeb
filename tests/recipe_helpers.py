"""Helpers for tests that validate recipe text (imported by test modules; pytest puts tests/ on sys.path)."""

from __future__ import annotations

import pytest

from transduce._recipe.recipe import parse_recipe
from transduce.errors import RecipeError


def parse(text: str, registry, overrides=()):
    return parse_recipe(text, registry, source="r.yaml", overrides=list(overrides))


def parse_error(text: str, registry, overrides=()) -> RecipeError:
    with pytest.raises(RecipeError) as caught:
        parse(text, registry, overrides)
    return caught.value
