"""Paths in a recipe: made absolute from the current directory when read (a run records that form, so
its commands work from any folder), checked to exist with an error that says where it looked, and the
data opened by `check` as `train` opens it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import write_recipe
from transduce_builtins.datasets import generate_splits, write_date_file

from transduce._cli import main as cli
from transduce._plugins.params import Param
from transduce._recipe.recipe import load_recipe
from transduce.errors import RecipeError

Capture = pytest.CaptureFixture[str]


def dates_file(path: Path, count: int = 500) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_date_file(path, generate_splits(7, {"train": count, "valid": 1, "test": 1})["train"])
    return path


def recipe_file(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"seed": 1, "data": data}, sort_keys=False), encoding="utf-8")
    return path


def load_error(path: Path, registry, overrides: tuple[str, ...] = ()) -> RecipeError:
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, registry, overrides)
    return caught.value


def test_a_relative_path_is_made_absolute_from_the_current_directory(registry, tmp_path, monkeypatch):
    data = dates_file(tmp_path / "work" / "d.txt")
    recipe = recipe_file(tmp_path / "recipes" / "r.yaml", {"name": "dates", "path": "d.txt"})
    monkeypatch.chdir(tmp_path / "work")
    assert load_recipe(recipe, registry)["data"]["path"] == str(data)
    monkeypatch.chdir(tmp_path / "recipes")
    assert load_recipe(recipe, registry, ["data.path=../work/./d.txt"])["data"]["path"] == str(data)


def test_a_path_starting_with_a_tilde_is_read_from_the_home_directory(registry, tmp_path, monkeypatch):
    data = dates_file(tmp_path / "home" / "d.txt")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    recipe = recipe_file(tmp_path / "r.yaml", {"name": "dates", "path": "~/d.txt"})
    assert load_recipe(recipe, registry)["data"]["path"] == str(data)


def test_a_missing_file_names_the_key_the_line_and_where_it_was_looked_for(registry, tmp_path, monkeypatch):
    recipe = recipe_file(tmp_path / "r.yaml", {"name": "dates", "path": "data/d.txt"})
    monkeypatch.chdir(tmp_path)
    assert str(load_error(recipe, registry)) == (
        f"{recipe}:4: data.path: no file 'data/d.txt' (a relative path is read from the current directory, "
        f"{tmp_path}: {tmp_path / 'data' / 'd.txt'}); write it relative to where you run transduce, or absolute"
    )
    error = load_error(recipe, registry, ("data.path=/nowhere/d.txt",))
    assert str(error) == "--set data.path=/nowhere/d.txt: data.path: no file '/nowhere/d.txt'"


def test_a_path_written_relative_to_the_recipe_is_suggested_from_where_transduce_runs(registry, tmp_path, monkeypatch):
    # The case: `check` passed in one folder, `train` from another failed on ../shared/data/...
    data = dates_file(tmp_path / "project" / "shared" / "data" / "d.txt")
    recipe = recipe_file(tmp_path / "project" / "recipes" / "r.yaml", {"name": "dates", "path": "../shared/data/d.txt"})
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    message = str(load_error(recipe, registry))
    assert message.startswith(f"{recipe}:4: data.path: no file '../shared/data/d.txt' (a relative path is read ")
    assert f"from the current directory, {tmp_path / 'elsewhere'}: {tmp_path / 'shared' / 'data' / 'd.txt'})" in message
    assert message.endswith(
        f". Did you mean it relative to the recipe ({data})? Write paths relative to where you run transduce "
        "(../project/shared/data/d.txt), or absolute"
    )
    monkeypatch.chdir(tmp_path / "project")
    assert "relative to the recipe" in str(load_error(recipe, registry))  # ../shared from the project's root


def test_a_file_where_a_directory_is_expected_and_the_reverse_are_named(registry, tmp_path):
    dates_file(tmp_path / "d.txt")
    parallel = {"name": "parallel", "path": str(tmp_path / "d.txt"), "source_language": "de", "target_language": "en"}
    error = load_error(recipe_file(tmp_path / "r.yaml", parallel), registry)
    assert error.key == "data.path" and f"'{tmp_path / 'd.txt'}' is a file, not a directory" in str(error)
    tsv = {"name": "tsv", "path": str(tmp_path), "valid_path": "v.tsv"}
    error = load_error(recipe_file(tmp_path / "r.yaml", tsv), registry)
    assert error.key == "data.path" and "is a directory, not a file" in str(error)
    tsv["path"] = str(tmp_path / "d.txt")
    error = load_error(recipe_file(tmp_path / "r.yaml", tsv), registry)
    assert (error.key, error.line) == ("data.valid_path", 5) and "no file 'v.tsv'" in str(error)


def test_a_null_path_that_means_download_stays_allowed_and_a_cache_dir_need_not_exist(registry, tmp_path):
    data = {"name": "tsv", "path": None, "url": "https://example.org/fra.zip", "cache_dir": "~/no/such/dir"}
    recipe = load_recipe(recipe_file(tmp_path / "r.yaml", data), registry)
    assert recipe["data"]["path"] is None
    assert recipe["data"]["cache_dir"] == os.path.expanduser("~/no/such/dir")  # absolute, made when needed
    assert load_recipe(recipe_file(tmp_path / "r.yaml", {"name": "dates"}), registry)["data"]["path"] is None


def test_a_run_records_the_absolute_path_so_its_commands_work_from_any_folder(tmp_path, monkeypatch, capsys):
    dates_file(tmp_path / "project" / "d.txt")
    recipe = write_recipe(tmp_path / "project", data={"path": "d.txt"})
    monkeypatch.chdir(tmp_path / "project")
    assert cli.main(["train", str(recipe), "--run-dir", str(tmp_path / "run")]) == 0
    saved = yaml.safe_load((tmp_path / "run" / "recipe.yaml").read_text(encoding="utf-8"))
    assert saved["data"]["path"] == str(tmp_path / "project" / "d.txt")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    assert cli.main(["evaluate", str(tmp_path / "run"), "--json"]) == 0, capsys.readouterr().err
    assert cli.main(["train", "--resume", str(tmp_path / "run"), "--set", "train.epochs=2"]) == 0


def test_an_old_run_with_a_relative_path_opens_from_its_folder_and_translates_without_its_data(
    trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    run = tmp_path / "run"
    _copy_run(trained_run, run)
    dates_file(tmp_path / "d.txt")
    saved = yaml.safe_load((run / "recipe.yaml").read_text(encoding="utf-8"))
    saved["data"]["path"] = "d.txt"  # as runs recorded it before paths were made absolute
    (run / "recipe.yaml").write_text(yaml.safe_dump(saved, sort_keys=False), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["evaluate", str(run), "--json"]) == 0, capsys.readouterr().err
    (tmp_path / "d.txt").unlink()  # the data is gone: translating needs none
    assert cli.main(["translate", str(run), "sept 6 63"]) == 0, capsys.readouterr().err


def _copy_run(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("train.lock"))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"name": "tsv", "valid_size": 1, "test_size": 1}, "no usable pairs"),
        ({"name": "csv", "source_column": "Q", "target_column": "A"}, "no column 'Q' in the header"),
    ],
)
def test_check_opens_the_data_as_train_would(tmp_path, capsys, data, expected):
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("one column only\n" * 5, encoding="utf-8")
    recipe = write_recipe(tmp_path, data={**data, "path": str(pairs)})
    assert cli.main(["check", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert expected in err and str(pairs) in err and "Traceback" not in err


def test_check_of_readable_data_says_so(tmp_path: Path, capsys: Capture, make_recipe: Callable[..., Path]) -> None:
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"a{i}\tb{i}\n" for i in range(30)), encoding="utf-8")
    recipe = make_recipe(data={"name": "tsv", "path": str(pairs), "valid_size": 2, "test_size": 2})
    assert cli.main(["check", str(recipe)]) == 0
    assert "valid (the first pair of each split read)" in capsys.readouterr().err


def test_a_path_param_is_a_string_of_a_known_kind():
    assert Param("path", str, None, nullable=True, path="file").describe_type() == "path of a file or null"
    assert Param("cache", str, "x", path="new directory").coerce("~/c") == os.path.expanduser("~/c")
    for bad in ({"type": int, "path": "file"}, {"type": str, "path": "folder"}):
        with pytest.raises(TypeError, match="path must be one of file, directory, new directory"):
            Param("p", **bad)
