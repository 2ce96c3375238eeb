"""Recipes: reading YAML, validating it against the registry, resolving defaults."""
