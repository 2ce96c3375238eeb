"""Tests of plugin discovery through the `transduce` entry-point group, of the registry, and of failure
isolation: a broken plugin is recorded in `registry.broken` and everything else still loads.

Third-party plugins are real installed-looking distributions: a module and a
`*.dist-info` folder written into a temporary directory put on `sys.path`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import sys
import textwrap
from pathlib import Path

import pytest

from transduce._cli import main as cli
from transduce._plugins.contracts import FAMILIES
from transduce._plugins.registry import BrokenPlugin, Provider, Registry, discover
from transduce._recipe.recipe import parse_recipe
from transduce.errors import PluginError, RecipeError

#: Built-ins every installation has (other built-in modules may add more).
BUILTINS = {
    "tokenizer": ["char", "word"],
    "encoder": ["lstm"],
    "attention": ["additive", "dot", "general"],
    "decoder": ["lstm"],
    "search": ["greedy"],
    "dataset": ["dates"],
    "metric": ["bleu", "chrf", "exact_match"],
    "logger": ["console", "jsonl", "tensorboard"],
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


def strict_error() -> PluginError:
    with pytest.raises(PluginError) as caught:
        discover(strict=True)
    return caught.value


def assert_builtins_loaded(registry: Registry) -> None:
    for family, names in BUILTINS.items():
        assert set(names) <= set(registry.names(family)), family


def only_problem(registry: Registry) -> BrokenPlugin:
    """The one recorded problem, after checking that every built-in still loaded."""
    assert_builtins_loaded(registry)
    assert len(registry.broken) == 1, registry.broken
    return registry.broken[0]


def recipe_error(text: str, registry: Registry) -> RecipeError:
    with pytest.raises(RecipeError) as caught:
        parse_recipe(text, registry, source="r.yaml")
    return caught.value


# --- built-ins -----------------------------------------------------------------------------


def test_builtins_load_cleanly_with_nothing_broken():
    registry = discover()
    assert registry.broken == []
    assert_builtins_loaded(registry)


def test_strict_discovery_of_the_builtins_raises_nothing():
    assert discover(strict=True).broken == []


def test_every_builtin_is_provided_by_the_transduce_distribution():
    infos = list(discover())
    assert len(infos) >= sum(len(names) for names in BUILTINS.values())
    for info in infos:
        assert f"{info.provider.distribution} {info.provider.version}" == BUILTIN_DIST
        assert info.cls.__module__.startswith("transduce_builtins.")


def test_builtin_entry_point_is_recorded_with_its_component():
    registry = discover()
    assert registry.get("encoder", "lstm").provider.entry_point == "encoders"
    assert registry.get("metric", "bleu").provider.entry_point == "metrics"
    assert registry.get("logger", "jsonl").provider.entry_point == "loggers"


def test_every_builtin_has_a_description():
    assert [info.name for info in discover() if not info.description] == []


def test_registry_iterates_family_by_family_then_by_name():
    order = [(info.family, info.name) for info in discover()]
    assert order == sorted(order, key=lambda pair: (FAMILIES.index(pair[0]), pair[1]))
    assert sorted({family for family, _ in order}, key=FAMILIES.index) == list(FAMILIES)


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


@pytest.mark.hook("transduce_components")
def test_third_party_distribution_adds_its_component_with_its_name_and_version(install_plugin):
    install_plugin("extra-plugin", "extraplugin", REVERSE_PLUGIN, version="2.0.1", entry_point="reverse")
    registry = discover()
    info = registry.get("tokenizer", "reverse")
    assert info is not None
    assert info.provider == Provider(distribution="extra-plugin", version="2.0.1", entry_point="reverse")
    assert info.cls.__module__ == "extraplugin"
    assert info.description == "Characters in reverse order."
    assert [p.name for p in info.params] == ["keep_spaces"]
    assert {"char", "reverse", "word"} <= set(registry.names("tokenizer"))
    assert registry.broken == []


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
    assert registry.broken == []
    assert registry.get("metric", "char").provider.distribution == "clash-plugin"
    assert registry.get("attention", "lstm").provider.distribution == "clash-plugin"
    assert registry.get("tokenizer", "char").provider.distribution == "transduce"
    assert registry.get("encoder", "lstm").provider.distribution == "transduce"


# --- name clashes ------------------------------------------------------------------------------


def shout_plugin(own: str) -> str:
    """A plugin with the metric `shout` (which clashes) and a metric `own` of its own."""
    return f"""
    class Shout(Metric):
        '''Counts exclamation marks.'''
        name = "shout"

    class Own(Metric):
        '''A metric only this distribution has.'''
        name = "{own}"

    @hookimpl
    def transduce_components():
        return [Shout, Own]
    """


CHAR_CLASH = """
    class Char(Tokenizer):
        '''Another character tokenizer.'''
        name = "char"

    class Upper(Tokenizer):
        '''Upper-cases.'''
        name = "upper"

    @hookimpl
    def transduce_components():
        return [Char, Upper]
    """


def test_a_builtin_keeps_its_name_and_the_third_party_class_claiming_it_is_refused(install_plugin):
    install_plugin("clash-plugin", "clashplugin", CHAR_CLASH, entry_point="clash")
    registry = discover()
    problem = only_problem(registry)
    assert problem.provider == Provider("clash-plugin", "1.2", "clash")
    assert "tokenizer 'char' (Char) is refused" in problem.problem
    assert BUILTIN_DIST in problem.problem
    assert registry.get("tokenizer", "char").provider.distribution == "transduce"
    assert registry.get("tokenizer", "upper").provider.distribution == "clash-plugin"
    recipe = parse_recipe("data: dates\nsource: {tokenizer: char}\n", registry)
    assert recipe["source"]["tokenizer"]["name"] == "char"


def test_two_third_party_distributions_with_one_name_both_lose_it_and_both_are_recorded(install_plugin):
    install_plugin("first-plugin", "firstplugin", shout_plugin("whisper"))
    install_plugin("second-plugin", "secondplugin", shout_plugin("mumble"), version="0.3")
    registry = discover()
    assert_builtins_loaded(registry)
    assert registry.get("metric", "shout") is None
    assert "shout" not in registry.names("metric")
    assert sorted(b.provider.distribution for b in registry.broken) == ["first-plugin", "second-plugin"]
    for broken in registry.broken:
        assert "metric 'shout' is registered twice" in broken.problem
        assert "first-plugin 1.2" in broken.problem and "second-plugin 0.3" in broken.problem
    assert registry.get("metric", "whisper").provider.distribution == "first-plugin"
    assert registry.get("metric", "mumble").provider.distribution == "second-plugin"


def test_recipe_naming_a_clashing_component_fails_at_validation_explaining_the_clash(install_plugin):
    install_plugin("first-plugin", "firstplugin", shout_plugin("whisper"))
    install_plugin("second-plugin", "secondplugin", shout_plugin("mumble"), version="0.3")
    error = recipe_error("data: dates\nevaluate:\n  metrics: [bleu, shout]\n", discover())
    assert str(error).startswith("r.yaml:3: evaluate.metrics.1.name: metric 'shout' is registered twice")
    assert "first-plugin 1.2" in str(error) and "second-plugin 0.3" in str(error)
    assert "uninstalled" in str(error)
    assert "unknown" not in str(error)


def test_strict_discovery_raises_on_a_clash_naming_both_distributions(install_plugin):
    install_plugin("clash-plugin", "clashplugin", CHAR_CLASH, entry_point="clash")
    message = str(strict_error())
    assert "tokenizer 'char' is registered twice" in message
    assert BUILTIN_DIST in message
    assert "clash-plugin 1.2 (entry point 'clash')" in message


# --- invalid plugins: recorded, the rest still loads ----------------------------------------

INVALID_CLASSES = {
    "not-a-component": ("class Helper:\n    name = 'helper'\nBAD = Helper", "returned <class 'badplugin.Helper'>"),
    "instance": ("class Lower(Tokenizer):\n    name = 'lower'\nBAD = Lower()", "expected a subclass"),
    "no-family": ("class Loose(Component):\n    name = 'loose'\nBAD = Loose", "Loose does not subclass a family base"),
    "no-name": ("class Nameless(Tokenizer):\n    pass\nBAD = Nameless", "Nameless must set a non-empty string `name`"),
    "empty-name": ("class Empty(Metric):\n    name = ''\nBAD = Empty", "Empty must set a non-empty string `name`"),
    "bad-params": (
        "class Sized(Tokenizer):\n    name = 'sized'\n    params = ('size', Param('x', int, 1))\nBAD = Sized",
        "Sized.params must hold only transduce.api.Param objects",
    ),
    "params-without-comma": (
        "class Sized(Tokenizer):\n    name = 'sized'\n    params = (Param('size', int, 1))\nBAD = Sized",
        "Sized.params must hold only transduce.api.Param objects",
    ),
}
GOOD_TOO = "\n\nclass Good(Metric):\n    '''Fine.'''\n    name = 'good'\n\n@hookimpl\ndef transduce_components():\n"


@pytest.mark.parametrize("case", INVALID_CLASSES)
def test_an_invalid_class_is_recorded_and_the_plugins_valid_classes_still_load(install_plugin, case):
    body, expected = INVALID_CLASSES[case]
    install_plugin("bad-plugin", "badplugin", body + GOOD_TOO + "    return [BAD, Good]\n")
    registry = discover()
    problem = only_problem(registry)
    assert problem.provider.distribution == "bad-plugin"
    assert expected in problem.problem
    assert str(problem).startswith("plugin bad-plugin 1.2 (entry point 'bad-plugin'): ")
    assert registry.get("metric", "good").provider.distribution == "bad-plugin"
    with pytest.raises(PluginError, match=re.escape(expected)):
        discover(strict=True)


def test_recipe_naming_a_refused_component_says_its_plugin_is_broken_and_why(install_plugin):
    install_plugin(
        "bad-plugin",
        "badplugin",
        """
        class Sized(Tokenizer):
            name = "sized"
            params = ("size",)

        @hookimpl
        def transduce_components():
            return [Sized]
        """,
    )
    error = recipe_error("data: dates\ntarget:\n  tokenizer: sized\n", discover())
    assert (error.line, error.key) == (3, "target.tokenizer.name")
    assert "tokenizer 'sized' cannot be used: its plugin bad-plugin 1.2 (entry point 'bad-plugin') is broken" in (
        str(error)
    )
    assert "Sized.params must hold only transduce.api.Param objects" in str(error)


def test_plugin_returning_one_class_instead_of_a_list_is_recorded_not_a_crash(install_plugin):
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
    problem = only_problem(discover())
    assert problem.provider.distribution == "bad-plugin"
    assert "must return a list of component classes" in problem.problem
    assert "Lower" in problem.problem


def test_plugin_raising_in_its_hook_is_recorded_with_the_error_and_unregistered(install_plugin):
    install_plugin(
        "bad-plugin",
        "badplugin",
        """
        @hookimpl
        def transduce_components():
            raise RuntimeError("no GPU kernels built")
        """,
    )
    registry = discover()
    problem = only_problem(registry)
    assert problem.provider.distribution == "bad-plugin"
    assert problem.problem == "raised in transduce_components: RuntimeError: no GPU kernels built"
    assert registry.plugins.get_plugin("bad-plugin:bad-plugin") is None  # none of its other hooks will be called
    assert isinstance(strict_error().__cause__, RuntimeError)


IMPORT_FAILURE = 'raise ImportError("libfoo.so: cannot open shared object file")\n'


def test_plugin_that_fails_to_import_is_recorded_with_the_original_error(install_plugin):
    install_plugin("broken-plugin", "brokenplugin", IMPORT_FAILURE, version="0.9", entry_point="foo")
    problem = only_problem(discover())
    assert problem.provider == Provider("broken-plugin", "0.9", "foo")
    assert problem.problem == "failed to import: ImportError: libfoo.so: cannot open shared object file"
    exc = strict_error()
    assert "plugin broken-plugin 0.9 (entry point 'foo'): failed to import" in str(exc)
    assert isinstance(exc.__cause__, ImportError)


def test_import_failure_leaves_other_third_party_plugins_working(install_plugin):
    install_plugin("broken-plugin", "brokenplugin", IMPORT_FAILURE)
    install_plugin("extra-plugin", "extraplugin", REVERSE_PLUGIN)
    registry = discover()
    assert [b.provider.distribution for b in registry.broken] == ["broken-plugin"]
    assert registry.get("tokenizer", "reverse") is not None


def test_recipe_naming_a_component_of_a_plugin_that_failed_to_import_names_that_plugin(install_plugin):
    install_plugin("foo-plugin", "fooplugin", IMPORT_FAILURE, entry_point="foo")
    error = recipe_error("data: dates\nmodel:\n  encoder: foo\n", discover())
    assert error.line == 3
    assert "unknown encoder 'foo'" in str(error)
    assert "failed to load and may provide it: plugin foo-plugin 1.2 (entry point 'foo'): failed to import" in (
        str(error)
    )


def test_a_plugin_exiting_at_import_is_recorded_not_an_exit(install_plugin):
    install_plugin("exit-plugin", "exitplugin", "import sys\nsys.exit(3)\n")
    assert only_problem(discover()).problem == "failed to import: SystemExit: 3"


def test_entry_point_naming_a_missing_module_is_recorded(install_plugin):
    install_plugin("ghost-plugin", "ghostplugin", None, target="ghostplugin_not_there")
    problem = only_problem(discover())
    assert problem.provider.distribution == "ghost-plugin"
    assert "ModuleNotFoundError" in problem.problem
    assert "ghostplugin_not_there" in problem.problem


def test_plugin_implementing_a_misspelled_hook_is_recorded_and_its_other_hooks_work(install_plugin):
    install_plugin(
        "typo-plugin",
        "typoplugin",
        """
        class Upper(Tokenizer):
            '''Upper-cases.'''
            name = "upper"

        @hookimpl
        def transduce_epoch_ends(record):
            pass

        @hookimpl
        def transduce_components():
            return [Upper]
        """,
    )
    registry = discover()
    problem = only_problem(registry)
    assert problem.provider.distribution == "typo-plugin"
    assert "implements hook 'transduce_epoch_ends', which does not exist. Did you mean 'transduce_epoch_end'?" in (
        problem.problem
    )
    assert "transduce_run_start" in problem.problem  # the known hooks are listed
    assert registry.get("tokenizer", "upper") is not None
    assert "transduce_epoch_ends" in str(strict_error())


def test_hook_with_an_argument_its_specification_lacks_is_recorded(install_plugin):
    install_plugin("args-plugin", "argsplugin", "\n@hookimpl\ndef transduce_components(device):\n    return []\n")
    problem = only_problem(discover())
    assert problem.provider.distribution == "args-plugin"
    assert problem.problem.startswith("cannot be registered:")
    assert "device" in problem.problem


UNMARKED_METRIC = """
class Fraction(Metric):
    '''Share of exact outputs.'''
    name = "fraction"

def transduce_components():
    return [Fraction]
"""


def test_a_plugin_whose_only_hook_lacks_hookimpl_is_broken_not_silent(install_plugin):
    install_plugin("unmarked-plugin", "unmarkedplugin", UNMARKED_METRIC, entry_point="fraction")
    registry = discover()
    problem = only_problem(registry)
    assert problem.provider == Provider("unmarked-plugin", "1.2", "fraction")
    assert problem.problem == "implements no transduce hook: did you forget @hookimpl on transduce_components?"
    assert registry.get("metric", "fraction") is None
    assert "did you forget @hookimpl on transduce_components" in str(strict_error())


def test_a_recipe_naming_the_metric_of_an_unmarked_hook_names_the_plugin_and_the_missing_marker(install_plugin):
    install_plugin("unmarked-plugin", "unmarkedplugin", UNMARKED_METRIC, entry_point="fraction")
    error = recipe_error("data: dates\nevaluate:\n  metrics: [fraction]\n", discover())
    assert "unknown metric 'fraction'" in str(error)
    assert "plugin unmarked-plugin 1.2 (entry point 'fraction'): implements no transduce hook" in str(error)
    assert "did you forget @hookimpl on transduce_components?" in str(error)


def test_the_plugins_command_lists_a_plugin_with_an_unmarked_hook_as_broken(install_plugin, capsys):
    install_plugin("unmarked-plugin", "unmarkedplugin", UNMARKED_METRIC, entry_point="fraction")
    assert cli.main(["plugins"]) == 0
    broken = " ".join(capsys.readouterr().out.split("broken")[1].split())
    assert "fraction" in broken
    assert "implements no transduce hook" in broken


def test_a_plugin_with_no_hook_function_at_all_is_broken(install_plugin):
    install_plugin("empty-plugin", "emptyplugin", "VERSION = 1\n")
    problem = only_problem(discover())
    assert problem.problem.startswith("implements no transduce hook; mark its hook functions with @hookimpl")
    assert "transduce_components" in problem.problem


def test_an_unmarked_lifecycle_hook_beside_a_marked_one_is_broken_and_the_components_still_load(install_plugin):
    install_plugin(
        "half-plugin",
        "halfplugin",
        """
        class Upper(Tokenizer):
            '''Upper-cases.'''
            name = "upper"

        @hookimpl
        def transduce_components():
            return [Upper]

        def transduce_epoch_end(record):
            pass

        def transduce_epoch_ends(record):
            pass
        """,
    )
    registry = discover()
    problem = only_problem(registry)
    assert problem.problem.startswith(
        "defines transduce_epoch_end and transduce_epoch_ends without @hookimpl, so pluggy never calls it"
    )
    assert "check the name of transduce_epoch_ends" in problem.problem
    assert registry.get("tokenizer", "upper") is not None


def test_a_helper_function_named_with_the_prefix_beside_marked_hooks_is_fine(install_plugin):
    install_plugin(
        "helper-plugin",
        "helperplugin",
        """
        def transduce_version_string():
            return "1"

        @hookimpl
        def transduce_components():
            return []
        """,
    )
    assert discover().broken == []


def test_two_entry_points_naming_one_module_records_the_second_and_keeps_the_first(install_plugin):
    source = (
        "\nclass Upper(Tokenizer):\n    name = 'upper'\n\n@hookimpl\ndef transduce_components():\n    return [Upper]\n"
    )
    install_plugin("twice-a", "twicemod", source)
    install_plugin("twice-b", "twicemod_b", None, target="twicemod")
    registry = discover()
    problem = only_problem(registry)
    assert "names the plugin already loaded through" in problem.problem
    loaded = registry.get("tokenizer", "upper").provider.distribution
    assert {problem.provider.distribution, loaded} == {"twice-a", "twice-b"}


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


def test_add_is_strict_and_rejects_a_second_component_of_the_same_name_naming_both_providers():
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


def test_add_rejects_an_invalid_class_naming_its_provider():
    with pytest.raises(PluginError, match=re.escape("plugin dist-a 1 (entry point 'a'): returned 3")):
        Registry().add(3, Provider("dist-a", "1", "a"))


def test_unknown_encoder_name_suggests_the_closest():
    message = discover().unknown_name_message("encoder", "lstn")
    assert message == "unknown encoder 'lstn'. Did you mean 'lstm'? (available: lstm)"


def test_unknown_name_far_from_every_name_lists_the_available_without_a_guess():
    message = discover().unknown_name_message("attention", "transformer")
    assert message == "unknown attention 'transformer' (available: additive, dot, general)"


def test_unknown_name_in_an_empty_family_says_none_are_installed():
    assert Registry().unknown_name_message("metric", "bleu") == "unknown metric 'bleu' (available: none installed)"
