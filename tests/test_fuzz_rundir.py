"""Fuzzing the files of a run directory: checkpoints of every wrong structure, damaged checkpoint bytes and
pickle payloads, vocabularies, tokenizer files, recipe.yaml and components.json.

A tiny run (a subword source side, so it has tokenizer files; a tab-separated data file, so it has a data
record) is trained once. Each case damages one or two of its files and opens the run through an entry
point: `Translator.from_run` with a translation, `transduce evaluate` or `transduce train --resume`. A case
passes when it ends in a result or one of our own errors (for the CLI: exit status 0 or 2, no traceback)
within its time limit, no pickle payload ran, and every file of the run and the data file (the damaged
ones aside) holds the same bytes afterwards. The run is reset to its trained bytes before each case.
The CLI's plugin discovery is replaced by the registry found once, which is not what is fuzzed here.
"""

from __future__ import annotations

import copy
import io
import json
import pickle
import random
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from conftest import write_recipe
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_harness import CASES, ends_cleanly, fuzz, report_cases

from transduce._cli import main as cli
from transduce._decoding.translator import Translator
from transduce._plugins.registry import discover
from transduce._recipe.recipe import load_recipe
from transduce._runs.rundir import RunDir
from transduce.errors import TransduceError

REGISTRY = discover()
#: Written, or rewritten with the same content, by the commands themselves: outputs, not the user's files.
OUTPUTS = ("report", "metrics.jsonl", "curves.png", "train.lock")
CHECKPOINTS = ("checkpoints/best.pt", "checkpoints/last.pt")
VOCABULARIES = ("vocab.source.json", "vocab.target.json")
TOKENIZER_FILES = ("tokenizers/source/sentencepiece.model", "tokenizers/source/sentencepiece.vocab")
#: Translating (through the Python API) is the cheapest entry, so it is drawn three times as often.
ENTRIES = ("translate", "translate", "translate", "evaluate", "resume")


class Folder:
    """Damage that puts an empty folder where a file was."""


Damage = dict[str, "bytes | None | type[Folder]"]


class Base:
    """The trained run, its files' bytes (run-relative path -> bytes), its data file and resolved recipe."""

    def __init__(self, run: Path, data: Path, files: dict[str, bytes], recipe: dict[str, Any]) -> None:
        self.run, self.data, self.files, self.recipe = run, data, files, recipe
        self.marker = run.parent / "payload-ran"  # what a pickle payload would create
        self._payloads: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:  # failing cases print it: not the files' bytes
        return f"Base({self.run})"

    def payload(self, name: str) -> dict[str, Any]:
        """A fresh copy of the checkpoint `name` as loaded."""
        if name not in self._payloads:
            self._payloads[name] = torch.load(io.BytesIO(self.files[name]), weights_only=True)
        return copy.deepcopy(self._payloads[name])


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    root = tmp_path_factory.mktemp("fuzz-rundir")
    data = root / "pairs.tsv"
    data.write_text("".join(f"a{i} b{i % 7}\tc{i} d{i % 5}\n" for i in range(120)), encoding="utf-8")
    recipe = write_recipe(
        root,
        data={"name": "tsv", "path": str(data), "valid_size": 5, "test_size": 5},
        source={"tokenizer": {"name": "subword", "vocab_size": 40}},
        model={"embedding_dim": 8, "encoder": {"name": "lstm", "hidden_size": 8}, "decoder": {"hidden_size": 8}},
        train={"epochs": 1},
        evaluate={"examples": 1, "buckets": 1, "extremes": 1, "heatmaps": 0},
    )
    run = root / "run"
    assert cli.main(["train", str(recipe), "--run-dir", str(run)]) == 0
    for path in run.iterdir():
        if path.name.startswith(OUTPUTS):
            path.unlink()
    last = torch.load(run / CHECKPOINTS[1], weights_only=True)
    last["progress"]["history"] = []  # no curves to draw: every case stays fast
    torch.save(last, run / CHECKPOINTS[1])
    files = {p.relative_to(run).as_posix(): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert set(TOKENIZER_FILES) <= set(files)
    resolved = load_recipe(run / "recipe.yaml", REGISTRY)
    return Base(run, data, files, resolved)


@pytest.fixture(autouse=True)
def _registry_found_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "discover", lambda: REGISTRY)


# --- opening the run ----------------------------------------------------------------------------------


def reset(base: Base) -> None:
    """Put the run back as trained: every file's bytes, nothing else."""
    for path in sorted(base.run.rglob("*"), reverse=True):
        name = path.relative_to(base.run).as_posix()
        if path.is_symlink() or (path.is_file() and name not in base.files):
            path.unlink()
        elif path.is_dir() and not any(n.startswith(name + "/") for n in base.files):
            shutil.rmtree(path)
    for name, content in base.files.items():
        path = base.run / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        if not path.is_file() or path.read_bytes() != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)


def cli_status(capsys: pytest.CaptureFixture[str], *argv: str) -> int:
    capsys.readouterr()
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert status in (0, 2) and "Traceback" not in out + err, out + err
    return status


def open_run(base: Base, entry: str, capsys: pytest.CaptureFixture[str]) -> object:
    run = str(base.run)
    if entry == "translate":
        # The recipe the run was trained with is passed resolved (parsing it is the slowest step) unless the
        # case damaged it; every other file is read from the run.
        recipe = base.recipe if (base.run / "recipe.yaml").read_bytes() == base.files["recipe.yaml"] else None
        translator = Translator.from_run(RunDir.open(base.run), REGISTRY, device="cpu", recipe=recipe)
        outputs = translator.translate(["a1 b1", "", "zz 9"], batch_size=2)
        assert len(outputs) == 3 and all(isinstance(o, str) for o in outputs)
        return outputs
    if entry == "evaluate":
        return cli_status(capsys, "evaluate", run, "--json")
    return cli_status(capsys, "train", "--resume", run)


def damaged(base: Base, target: str, damage: Damage, entry: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Write `damage` (run-relative path -> bytes; None: removed; Folder: a folder instead) into the run, open
    it through `entry`, and check that the other files are unchanged and no payload ran."""
    reset(base)
    for name, content in damage.items():
        path = base.run / name
        path.unlink(missing_ok=True)
        if content is Folder:
            path.mkdir()
        elif isinstance(content, bytes):
            path.write_bytes(content)
    data = base.data.read_bytes()
    result = ends_cleanly(target, lambda: open_run(base, entry, capsys), seconds=30)
    refused = isinstance(result, TransduceError) or result == 2
    CASES[f"{target} ({'refused' if refused else 'opened'})"] += 1
    assert not base.marker.exists(), "a pickle payload ran"
    assert base.data.read_bytes() == data
    for name, content in base.files.items():
        if name not in damage:
            assert (base.run / name).read_bytes() == content, f"{name} changed"


# --- generated values ------------------------------------------------------------------------------------

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.uint8, torch.bool]
TENSORS = st.builds(
    lambda shape, dtype, fill: torch.full(shape, fill).to(dtype),
    st.lists(st.integers(0, 5), max_size=3).map(tuple),
    st.sampled_from(DTYPES),
    st.sampled_from([0.0, 1.0, -2.5, float("nan"), float("inf")]),
)
PLAIN_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)


def nested(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Lists and mappings (text or integer keys) of `scalars`, a few levels deep."""
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.one_of(st.text(max_size=8), st.integers(-3, 20)), children, max_size=4),
        ),
        max_leaves=10,
    )


SCALARS = st.one_of(PLAIN_SCALARS, TENSORS)
VALUES = nested(SCALARS)  # what a checkpoint may hold
PLAIN = nested(PLAIN_SCALARS)  # what JSON and YAML files may hold


def paths_of(value: Any, prefix: tuple[Any, ...] = (), depth: int = 4) -> Iterator[tuple[Any, ...]]:
    """Every key path into the nested dicts and lists of `value`, down to `depth`."""
    if depth == 0:
        return
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield (*prefix, key)
        yield from paths_of(child, (*prefix, key), depth - 1)


def changed_at(payload: Any, path: tuple[Any, ...], change: Callable[[Any, Any], None]) -> Any:
    node = payload
    for key in path[:-1]:
        node = node[key]
    change(node, path[-1])
    return payload


def reshaped(value: Any, draw: Callable[..., Any]) -> Any:
    """A tensor like `value` with one dimension one longer or shorter (or a scalar for a 0-d one)."""
    if not isinstance(value, torch.Tensor) or value.dim() == 0:
        return torch.zeros(2)
    shape = list(value.shape)
    axis = draw(st.integers(0, len(shape) - 1))
    shape[axis] = max(0, shape[axis] + draw(st.sampled_from([-1, 1])))
    return torch.zeros(shape, dtype=value.dtype)


def mutate_structure(payload: dict[str, Any], draw: Callable[..., Any]) -> Any:
    """One generated change to a checkpoint's structure: a key removed, a value replaced by a generated one
    or by a tensor of another shape, an extra key, or the whole payload replaced."""
    paths = sorted(paths_of(payload), key=repr)
    kind = draw(st.sampled_from(["remove", "replace", "reshape", "extra", "whole"] if paths else ["extra", "whole"]))
    if kind == "whole":
        return draw(VALUES)
    if kind == "extra":
        payload[draw(st.text(max_size=8))] = draw(VALUES)
        return payload
    path = draw(st.sampled_from(paths))
    if kind == "remove":
        return changed_at(payload, path, lambda node, key: node.pop(key))
    value = reshaped(_at(payload, path), draw) if kind == "reshape" else draw(VALUES)
    return changed_at(payload, path, lambda node, key: node.__setitem__(key, value))


def _at(payload: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        payload = payload[key]
    return payload


def saved_bytes(payload: Any, legacy: bool = False) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer, _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


class Payload:
    """Unpickles by writing a marker file: code hidden in a checkpoint, which must never run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "ran"))


def without_file_record(base: Base) -> Damage:
    """Both checkpoints as an older run saved them, without the hashes of the vocabularies and tokenizer
    files: the loaders themselves then meet the damage, not the hash check."""
    out: Damage = {}
    for name in CHECKPOINTS:
        payload = base.payload(name)
        payload.pop("files")
        out[name] = saved_bytes(payload)
    return out


ENTRY = st.sampled_from(ENTRIES)


# --- checkpoints ------------------------------------------------------------------------------------------


@fuzz(320)
@given(data=st.data())
def test_checkpoints_of_every_wrong_structure(base: Base, data: st.DataObject, capsys: Any) -> None:
    name = data.draw(st.sampled_from(CHECKPOINTS))
    payload = base.payload(name)
    for _ in range(data.draw(st.integers(1, 3))):
        payload = mutate_structure(payload, data.draw) if isinstance(payload, dict) else data.draw(VALUES)
    damaged(base, "rundir: checkpoint structure", {name: saved_bytes(payload)}, data.draw(ENTRY), capsys)


BYTE_DAMAGE = ["truncated", "empty", "random bytes", "bit flips", "text", "legacy format", "payload", "raw pickle"]


@fuzz(160)
@given(data=st.data(), kind=st.sampled_from(BYTE_DAMAGE))
def test_damaged_checkpoint_bytes_and_pickle_payloads(base: Base, data: st.DataObject, kind: str, capsys: Any) -> None:
    name = data.draw(st.sampled_from(CHECKPOINTS))
    original = base.files[name]
    content: bytes
    if kind == "truncated":
        content = original[: data.draw(st.integers(0, len(original) - 1))]
    elif kind == "empty":
        content = b""
    elif kind == "random bytes":
        content = data.draw(st.binary(max_size=300))
    elif kind == "bit flips":
        flipped = bytearray(original)
        for offset in data.draw(st.lists(st.integers(0, len(original) - 1), min_size=1, max_size=8)):
            flipped[offset] ^= 1 << data.draw(st.integers(0, 7))
        content = bytes(flipped)
    elif kind == "text":
        content = data.draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    elif kind == "legacy format":
        content = saved_bytes(base.payload(name), legacy=True)
    else:
        payload = base.payload(name)
        evil = Payload(base.marker)
        if kind == "raw pickle":
            content = pickle.dumps(evil)
        else:
            path = data.draw(st.sampled_from(sorted(paths_of(payload), key=repr)))
            changed_at(payload, path, lambda node, key: node.__setitem__(key, evil))
            content = saved_bytes(payload, legacy=data.draw(st.booleans()))
    damaged(base, "rundir: checkpoint bytes and payloads", {name: content}, data.draw(ENTRY), capsys)


# --- vocabularies and tokenizer files ---------------------------------------------------------------------

VOCAB_DAMAGE = ["garbage", "json", "swap", "drop", "duplicate", "insert", "wrong type", "specials", "deep"]


def damaged_vocabulary(tokens: list[str], kind: str, draw: Callable[..., Any]) -> bytes:
    tokens = list(tokens)
    rng = random.Random(draw(st.integers(0, 2**16)))
    if kind == "garbage":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(PLAIN)).encode()
    if kind == "deep":
        depth = draw(st.sampled_from([50, 5_000, 200_000]))
        return ('{"tokens": ' + "[" * depth + "]" * depth + "}").encode()
    if kind == "swap":
        i, j = rng.sample(range(len(tokens)), 2)
        tokens[i], tokens[j] = tokens[j], tokens[i]
    elif kind == "drop":
        del tokens[rng.randrange(len(tokens)) :]
    elif kind == "duplicate":
        tokens.insert(rng.randrange(len(tokens)), rng.choice(tokens))
    elif kind == "insert":
        tokens[rng.randrange(4, len(tokens)) : 0] = draw(st.lists(st.text(max_size=5), min_size=1, max_size=3))
    elif kind == "wrong type":
        tokens[rng.randrange(len(tokens))] = draw(PLAIN_SCALARS)
    else:  # specials moved
        rng.shuffle(tokens)
    return json.dumps({"tokens": tokens}).encode()


@fuzz(230)
@given(data=st.data(), kind=st.sampled_from(VOCAB_DAMAGE), older=st.booleans())
def test_damaged_vocabularies(base: Base, data: st.DataObject, kind: str, older: bool, capsys: Any) -> None:
    name = data.draw(st.sampled_from(VOCABULARIES))
    tokens = json.loads(base.files[name])["tokens"]
    damage = without_file_record(base) if older else {}
    damage[name] = damaged_vocabulary(tokens, kind, data.draw)
    damaged(base, "rundir: vocabularies", damage, data.draw(ENTRY), capsys)


@fuzz(110)
@given(
    data=st.data(),
    kind=st.sampled_from(["random bytes", "truncated", "bit flips", "removed", "empty", "a folder"]),
    older=st.booleans(),
)
def test_damaged_tokenizer_files(base: Base, data: st.DataObject, kind: str, older: bool, capsys: Any) -> None:
    name = data.draw(st.sampled_from(TOKENIZER_FILES))
    original = base.files[name]
    content: bytes | None = None if kind == "removed" else b""
    if kind == "random bytes":
        content = data.draw(st.binary(max_size=400))
    elif kind == "truncated":
        content = original[: data.draw(st.integers(0, len(original) - 1))]
    elif kind == "bit flips":
        flipped = bytearray(original)
        for offset in data.draw(st.lists(st.integers(0, len(original) - 1), min_size=1, max_size=8)):
            flipped[offset] ^= 0xFF
        content = bytes(flipped)
    damage = without_file_record(base) if older else {}
    damage[name] = Folder if kind == "a folder" else content
    damaged(base, "rundir: tokenizer files", damage, data.draw(ENTRY), capsys)


# --- recipe.yaml and components.json -----------------------------------------------------------------------


@fuzz(160)
@given(data=st.data(), kind=st.sampled_from(["text", "punctuation", "structure", "wrong value", "removed key"]))
def test_damaged_recipes(base: Base, data: st.DataObject, kind: str, capsys: Any) -> None:
    if kind == "text":
        text = data.draw(st.text(max_size=200))
    elif kind == "punctuation":
        text = "".join(data.draw(st.lists(st.sampled_from([*":-[]{}&*!|>'\"%@`#, ?\n\t", "a", "1"]), max_size=40)))
    elif kind == "structure":
        text = yaml.safe_dump(data.draw(PLAIN), default_flow_style=None)
    else:
        recipe = copy.deepcopy(base.recipe)
        path = data.draw(st.sampled_from(sorted(paths_of(recipe), key=repr)))
        if kind == "removed key":
            changed_at(recipe, path, lambda node, key: node.pop(key))
        else:
            value = data.draw(st.sampled_from([None, True, "", "x", [], {}, -1, 0, 0.5, [1, 2], {"a": 1}]))
            changed_at(recipe, path, lambda node, key: node.__setitem__(key, value))
        text = yaml.safe_dump(recipe, sort_keys=False)
    damaged(
        base, "rundir: recipe.yaml", {"recipe.yaml": text.encode("utf-8", "surrogatepass")}, data.draw(ENTRY), capsys
    )


@fuzz(120)
@given(data=st.data(), kind=st.sampled_from(["garbage", "json", "deep", "removed"]), unknown=st.booleans())
def test_damaged_component_records(base: Base, data: st.DataObject, kind: str, unknown: bool, capsys: Any) -> None:
    content: bytes | None = None
    if kind == "garbage":
        content = data.draw(st.binary(max_size=200))
    elif kind == "json":
        content = json.dumps(data.draw(PLAIN)).encode()
    elif kind == "deep":
        content = ("[" * 100_000 + "]" * 100_000).encode()
    damage: Damage = {"components.json": content}
    if unknown:  # the recipe names a component that is not installed: the record is read to say which plugin
        recipe = copy.deepcopy(base.recipe)
        recipe["data"]["name"] = "gone"
        damage["recipe.yaml"] = yaml.safe_dump(recipe, sort_keys=False).encode()
    damaged(base, "rundir: components.json", damage, data.draw(ENTRY), capsys)


def test_cases_ran() -> None:
    counts = report_cases("rundir: ")
    print(counts, sum(count for target, count in counts.items() if "(" not in target))
