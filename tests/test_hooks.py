"""Meta-tests of the hook specifications (transduce/_plugins/hookspecs.py), the one declaration of every hook.

Every hook is documented in docs/plugins.md with its exact signature, every hook
is exercised by a test marked `@pytest.mark.hook("transduce_...")`, and every
event the core emits is one the specs declare, with their argument names. A new
spec without its documentation and its test fails here.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

from transduce._plugins import hookspecs
from transduce._plugins.registry import hook_names

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "plugins.md"
TESTS = ROOT / "tests"
HEADING = re.compile(r"^#{2,6} `(transduce_\w+\(.*)`\s*$", re.MULTILINE)


def normalized(definition: str) -> str:
    """`name(parameters) -> result` as ast writes it, with quoted (postponed) annotations read as code."""
    function = ast.parse(f"def {definition}: ...").body[0]
    assert isinstance(function, ast.FunctionDef)
    arguments = function.args
    annotated = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg]
    for argument in annotated:
        if argument is not None and argument.annotation is not None:
            argument.annotation = _unquoted(argument.annotation)
    if function.returns is not None:
        function.returns = _unquoted(function.returns)
    return ast.unparse(function).removeprefix("def ").removesuffix(":\n    ...")


def _unquoted(annotation: ast.expr) -> ast.expr:
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return ast.parse(annotation.value, mode="eval").body
    return annotation


@cache
def documented() -> dict[str, str]:
    """Hook name -> the signature its heading in docs/plugins.md gives."""
    return {text.split("(")[0]: normalized(text) for text in HEADING.findall(GUIDE.read_text(encoding="utf-8"))}


@cache
def marked_tests() -> dict[str, list[str]]:
    """Hook name -> the tests under tests/ marked `@pytest.mark.hook(...)` with it."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and ast.unparse(decorator.func) == "pytest.mark.hook":
                    for argument in decorator.args:
                        found[ast.literal_eval(argument)].append(f"{path.relative_to(ROOT)}::{node.name}")
    return found


@cache
def emits() -> list[tuple[str, str, set[str]]]:
    """Every `.emit("event", name=...)` call in transduce/: (where, event, argument names)."""
    calls = []
    for path in sorted((ROOT / "transduce").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "emit":
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                event = ast.literal_eval(node.args[0]) if node.args else None
                calls.append((where, event, {keyword.arg for keyword in node.keywords}))
    return calls


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_is_documented_with_its_exact_signature(hook):
    spec = getattr(hookspecs, hook)
    expected = normalized(f"{hook}{inspect.signature(spec)}")
    assert hook in documented(), f"docs/plugins.md (section 10) does not document {hook}: add a heading {expected!r}"
    assert documented()[hook] == expected


def test_the_guide_documents_no_hook_that_does_not_exist():
    assert set(documented()) - set(hook_names()) == set()


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_is_exercised_by_a_marked_test(hook):
    assert marked_tests()[hook], f'no test is marked @pytest.mark.hook("{hook}"): write one that exercises it'


def test_hook_markers_name_existing_hooks():
    assert set(marked_tests()) - set(hook_names()) == set()


def test_every_event_the_core_emits_is_declared_with_its_argument_names():
    calls = emits()
    events = hookspecs.events()
    assert {event for _, event, _ in calls} == set(events)  # each declared event is emitted somewhere, too
    for where, event, arguments in calls:
        assert arguments == set(events[event].arguments), f"{where}: emit({event!r}) with {sorted(arguments)}"


def test_the_meta_tests_see_what_they_check():
    """The parsers above find something, so the checks cannot pass by finding nothing."""
    assert len(documented()) >= 8
    assert "test_hooks.py" not in " ".join(test for tests in marked_tests().values() for test in tests)
    assert len(emits()) >= len(hookspecs.events())
    assert normalized("f(a: 'dict[str, Any]') -> 'None'") == normalized("f(a: dict[str, Any]) -> None")
