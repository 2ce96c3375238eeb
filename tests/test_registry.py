"""Tests of plugin discovery through the `transduce` entry-point group and of the registry.

Third-party plugins are real installed-looking distributions: a module and a
`*.dist-info` folder written into a temporary directory put on `sys.path`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import textwrap
from pathlib import Path

import pytest

from transduce.errors import PluginError
from transduce.recipe import parse_recipe
from transduce.registry import Provider, Registry, discover

BUILTINS = {
    "tokenizer": ["char", "word"],
    "encoder": ["lstm"],
    "attention": ["additive", "dot", "general"],
    "decoder": ["greedy"],
    "dataset": ["dates"],
    "metric": ["bleu", "chrf", "exact_match"],
}
BUILTIN_DIST = f"transduce {importlib.metadata.version('transduce')}"

HEADER = "from transduce.api import AttentionScorer, Component, Metric, Param, Score, Tokenizer, hookimpl\n"


@pytest.fixture
def install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install a plugin distribution into a temporary directory on sys.path.

    `install_plugin(dist, module, source)` writes `module.py` (the `transduce.api`
    imports are prepended to `source`) and `<dist>-<version>.dist-info` with an
    entry point `entry_point = target` (target defaults to the module).
    """
    modules: list[str] = []

    def install(
        dist: str,
        module: str,
        source: str | None,
        *,
        version: str = "1.2",
        entry_point: str | None = None,
        target: str | None = None,
    ) -> None:
        root = tmp_path / dist
        root.mkdir()
        if source is not None:
            (root / f"{module}.py").write_text(HEADER + textwrap.dedent(source), encoding="utf-8")
        info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
        (info / "entry_points.txt").write_text(
            f"[transduce]\n{entry_point or dist} = {target or module}\n", encoding="utf-8"
        )
        modules.append(module)
        sys.modules.pop(module, None)
        monkeypatch.syspath_prepend(str(root))
        importlib.invalidate_caches()

    yield install
    for module in modules:
        sys.modules.pop(module, None)
    importlib.invalidate_caches()


def discover_error() -> PluginError:
    with pytest.raises(PluginError) as caught:
        discover()
    return caught.value


# --- built-ins -----------------------------------------------------------------------------


def test_discover_finds_every_builtin_component_by_family():
    registry = discover()
    assert {family: registry.names(family) for family in BUILTINS} == BUILTINS


def test_every_builtin_is_provided_by_the_transduce_distribution():
    infos = list(discover())
    assert len(infos) == sum(len(names) for names in BUILTINS.values())
    for info in infos:
        assert f"{info.provider.distribution} {info.provider.version}" == BUILTIN_DIST
        assert info.cls.__module__.startswith("transduce_builtins.")


def test_builtin_entry_point_is_recorded_with_its_component():
    registry = discover()
    assert registry.get("encoder", "lstm").provider.entry_point == "encoders"
    assert registry.get("metric", "bleu").provider.entry_point == "metrics"


def test_every_builtin_has_a_description():
    assert [info.name for info in discover() if not info.description] == []


def test_registry_iterates_family_by_family_then_by_name():
    order = [(info.family, info.name) for info in discover()]
    assert order == [(family, name) for family, names in BUILTINS.items() for name in names]


def test_get_of_an_unknown_name_is_none():
    assert discover().get("encoder", "transformer") is None


def test_each_discover_returns_a_fresh_registry():
    first, second = discover(), discover()
    assert first is not second
    assert first.get("encoder", "lstm").cls is second.get("encoder", "lstm").cls


# --- third-party plugins --------------------------------------------------------------------

REVERSE_PLUGIN = """
class Reverse(Tokenizer):
    '''Characters in reverse order.'''

    name = "reverse"
    params = (Param("keep_spaces", bool, True, "keep spaces as tokens"),)

    def tokenize(self, text):
        return list(reversed(text))

    def detokenize(self, tokens):
        return "".join(reversed(tokens))


@hookimpl
def transduce_components():
    return [Reverse]
"""


def test_third_party_distribution_adds_its_component_with_its_name_and_version(install_plugin):
    install_plugin("extra-plugin", "extraplugin", REVERSE_PLUGIN, version="2.0.1", entry_point="reverse")
    registry = discover()
    info = registry.get("tokenizer", "reverse")
    assert info is not None
    assert info.provider == Provider(distribution="extra-plugin", version="2.0.1", entry_point="reverse")
    assert info.cls.__module__ == "extraplugin"
    assert info.description == "Characters in reverse order."
    assert [p.name for p in info.params] == ["keep_spaces"]
    assert registry.names("tokenizer") == ["char", "reverse", "word"]


def test_third_party_component_can_be_used_in_a_recipe(install_plugin):
    install_plugin("extra-plugin", "extraplugin", REVERSE_PLUGIN)
    registry = discover()
    recipe = parse_recipe("data: dates\nsource:\n  tokenizer: {name: reverse, keep_spaces: false}\n", registry)
    assert recipe["source"]["tokenizer"] == {"name": "reverse", "keep_spaces": False}


def test_component_is_gone_once_its_distribution_is_uninstalled(install_plugin, monkeypatch):
    install_plugin("extra-plugin", "extraplugin", REVERSE_PLUGIN)
    assert discover().get("tokenizer", "reverse") is not None
    monkeypatch.undo()
    importlib.invalidate_caches()
    assert discover().get("tokenizer", "reverse") is None


def test_name_taken_by_a_builtin_in_the_same_family_names_both_distributions(install_plugin):
    install_plugin(
        "clash-plugin",
        "clashplugin",
        """
        class Char(Tokenizer):
            '''Another character tokenizer.'''
            name = "char"

        @hookimpl
        def transduce_components():
            return [Char]
        """,
        entry_point="clash",
    )
    message = str(discover_error())
    assert "tokenizer 'char' is registered twice" in message
    assert BUILTIN_DIST in message
    assert "clash-plugin 1.2 (entry point 'clash')" in message


def test_name_clash_between_two_third_party_distributions_names_both(install_plugin):
    source = """
        class Shout(Metric):
            '''Counts exclamation marks.'''
            name = "shout"

        @hookimpl
        def transduce_components():
            return [Shout]
        """
    install_plugin("first-plugin", "firstplugin", source)
    install_plugin("second-plugin", "secondplugin", source, version="0.3")
    message = str(discover_error())
    assert "metric 'shout' is registered twice" in message
    assert "first-plugin 1.2" in message
    assert "second-plugin 0.3" in message


def test_same_name_in_two_different_families_is_fine(install_plugin):
    install_plugin(
        "clash-plugin",
        "clashplugin",
        """
        class CharOverlap(Metric):
            '''Share of characters in common.'''
            name = "char"

        class Lstm(AttentionScorer):
            '''An attention scorer that happens to be called lstm.'''
            name = "lstm"

        @hookimpl
        def transduce_components():
            return [CharOverlap, Lstm]
        """,
    )
    registry = discover()
    assert registry.get("metric", "char").provider.distribution == "clash-plugin"
    assert registry.get("attention", "lstm").provider.distribution == "clash-plugin"
    assert registry.get("tokenizer", "char").provider.distribution == "transduce"
    assert registry.get("encoder", "lstm").provider.distribution == "transduce"


# --- invalid plugins ---------------------------------------------------------------------------


def test_plugin_returning_a_class_that_is_not_a_component_names_its_distribution(install_plugin):
    install_plugin(
        "bad-plugin",
        "badplugin",
        """
        class Helper:
            name = "helper"

        @hookimpl
        def transduce_components():
            return [Helper]
        """,
    )
    message = str(discover_error())
    assert "bad-plugin 1.2" in message
    assert "Helper" in message
    assert "expected a subclass" in message


def test_plugin_returning_an_instance_instead_of_a_class_is_an_error(install_plugin):
    install_plugin(
        "bad-plugin",
        "badplugin",
        """
        class Lower(Tokenizer):
            name = "lower"

        @hookimpl
        def transduce_components():
            return [Lower()]
        """,
    )
    message = str(discover_error())
    assert "bad-plugin 1.2" in message
    assert "expected a subclass" in message


def test_plugin_class_outside_every_family_is_an_error(install_plugin):
    install_plugin(
        "bad-plugin",
        "badplugin",
        """
        class Loose(Component):
            name = "loose"

        @hookimpl
        def transduce_components():
            return [Loose]
        """,
    )
    message = str(discover_error())
    assert "bad-plugin 1.2" in message
    assert "Loose does not subclass a family base" in message


def test_plugin_class_without_a_name_is_an_error_naming_its_distribution(install_plugin):
    install_plugin(
        "bad-plugin",
        "badplugin",
        """
        class Nameless(Tokenizer):
            '''Forgot its name.'''

        @hookimpl
        def transduce_components():
            return [Nameless]
        """,
    )
    message = str(discover_error())
    assert "bad-plugin 1.2" in message
    assert "Nameless must set a non-empty string `name`" in message


def test_plugin_class_with_an_empty_name_is_an_error(install_plugin):
    install_plugin(
        "bad-plugin",
        "badplugin",
        """
        class Empty(Metric):
            name = ""

        @hookimpl
        def transduce_components():
            return [Empty]
        """,
    )
    assert "non-empty string `name`" in str(discover_error())


def test_plugin_params_that_are_not_param_objects_are_an_error_naming_its_distribution(install_plugin):
    install_plugin(
        "bad-plugin",
        "badplugin",
        """
        class Sized(Tokenizer):
            name = "sized"
            params = ("size", Param("lowercase", bool, False))

        @hookimpl
        def transduce_components():
            return [Sized]
        """,
    )
    message = str(discover_error())
    assert "bad-plugin 1.2" in message
    assert "Sized.params must hold only transduce.api.Param objects" in message


def test_plugin_params_missing_the_tuple_comma_is_an_error_not_a_crash(install_plugin):
    install_plugin(
        "bad-plugin",
        "badplugin",
        """
        class Sized(Tokenizer):
            name = "sized"
            params = (Param("size", int, 1))

        @hookimpl
        def transduce_components():
            return [Sized]
        """,
    )
    message = str(discover_error())
    assert "bad-plugin 1.2" in message
    assert "Sized.params" in message


def test_plugin_returning_one_class_instead_of_a_list_is_an_error_not_a_crash(install_plugin):
    install_plugin(
        "bad-plugin",
        "badplugin",
        """
        class Lower(Tokenizer):
            name = "lower"

        @hookimpl
        def transduce_components():
            return Lower
        """,
    )
    message = str(discover_error())
    assert "bad-plugin 1.2" in message
    assert "Lower" in message


def test_plugin_raising_in_its_hook_names_its_distribution_and_the_error(install_plugin):
    install_plugin(
        "bad-plugin",
        "badplugin",
        """
        @hookimpl
        def transduce_components():
            raise RuntimeError("no GPU kernels built")
        """,
    )
    exc = discover_error()
    assert "bad-plugin 1.2" in str(exc)
    assert "no GPU kernels built" in str(exc)
    assert isinstance(exc.__cause__, RuntimeError)


def test_plugin_that_fails_to_import_names_its_distribution_and_the_original_error(install_plugin):
    install_plugin(
        "broken-plugin",
        "brokenplugin",
        """
        raise ImportError("libfoo.so: cannot open shared object file")
        """,
        version="0.9",
    )
    exc = discover_error()
    assert "broken-plugin 0.9" in str(exc)
    assert "failed to import" in str(exc)
    assert "ImportError: libfoo.so: cannot open shared object file" in str(exc)
    assert isinstance(exc.__cause__, ImportError)


def test_entry_point_naming_a_missing_module_names_its_distribution(install_plugin):
    install_plugin("ghost-plugin", "ghostplugin", None, target="ghostplugin_not_there")
    exc = discover_error()
    assert "ghost-plugin 1.2" in str(exc)
    assert "ModuleNotFoundError" in str(exc)
    assert "ghostplugin_not_there" in str(exc)


# --- adding plugins by hand and messages ------------------------------------------------------


def test_extra_plugins_are_registered_with_their_provider():
    import types

    from transduce.api import Metric, hookimpl

    class Length(Metric):
        """Length ratio."""

        name = "length"

    plugin = types.SimpleNamespace(transduce_components=hookimpl(lambda: [Length]))
    provider = Provider("embedded", "0", "inline")
    registry = discover(extra=[(plugin, provider)])
    assert registry.get("metric", "length").provider == provider
    assert registry.get("metric", "bleu") is not None


def test_add_rejects_a_second_component_of_the_same_name_naming_both_providers():
    from transduce.api import Tokenizer

    class A(Tokenizer):
        name = "same"

    class B(Tokenizer):
        name = "same"

    registry = Registry()
    registry.add(A, Provider("dist-a", "1", "a"))
    with pytest.raises(PluginError) as caught:
        registry.add(B, Provider("dist-b", "2", "b"))
    assert "dist-a 1" in str(caught.value)
    assert "dist-b 2" in str(caught.value)
    assert registry.get("tokenizer", "same").cls is A


def test_unknown_encoder_name_suggests_the_closest():
    message = discover().unknown_name_message("encoder", "lstn")
    assert message == "unknown encoder 'lstn'. Did you mean 'lstm'? (available: lstm)"


def test_unknown_name_far_from_every_name_lists_the_available_without_a_guess():
    message = discover().unknown_name_message("attention", "transformer")
    assert message == "unknown attention 'transformer' (available: additive, dot, general)"


def test_unknown_name_in_an_empty_family_says_none_are_installed():
    assert Registry().unknown_name_message("metric", "bleu") == "unknown metric 'bleu' (available: none installed)"


def test_plugin_implementing_a_misspelled_hook_is_an_error_naming_the_hook(install_plugin):
    install_plugin(
        "typo-plugin",
        "typoplugin",
        """
        @hookimpl
        def transduce_component():
            return []
        """,
    )
    exc = discover_error()
    assert "transduce_component" in str(exc)
    assert "typo-plugin" in str(exc)


def test_two_entry_points_naming_one_module_is_an_error_not_a_crash(install_plugin):
    install_plugin("twice-a", "twicemod", "\n@hookimpl\ndef transduce_components():\n    return []\n")
    install_plugin("twice-b", "twicemod_b", None, target="twicemod")
    exc = discover_error()
    assert "twice-b" in str(exc) or "twice-a" in str(exc)
