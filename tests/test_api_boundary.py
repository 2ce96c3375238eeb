"""The built-in plugins use exactly the API a third party would: `transduce.api` and nothing else of ours."""

from pathlib import Path

from test_architecture import transduce_imports  # the one import reader, which also checks the core's stages

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"


def test_builtin_plugins_import_only_the_public_api():
    files = sorted(PLUGINS.rglob("*.py"))  # plugins/serve/ too
    assert len(files) >= 6
    offenders = {f.name: bad for f in files if (bad := [n for n in transduce_imports(f) if n != "transduce.api"])}
    assert offenders == {}


def test_the_boundary_check_sees_a_back_door(tmp_path):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text(
        "from transduce._model.model import Seq2Seq\nimport transduce._plugins.registry\n", encoding="utf-8"
    )
    assert transduce_imports(sneaky) == ["transduce._model.model", "transduce._plugins.registry"]
