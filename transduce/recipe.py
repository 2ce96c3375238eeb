"""Recipes: YAML files that name components and settings, validated completely before any work.

A recipe is read with the line of every key remembered, `--set KEY=VALUE`
overrides are applied, and then every section is checked against its declared
parameters: unknown keys, unknown component names, wrong types and
out-of-range values all raise `RecipeError` naming the file, line and key.
The result is a plain nested dict with every default filled in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from transduce import positions
from transduce.errors import RecipeError, RunError
from transduce.params import NONE, Param, absolute_path, did_you_mean, resolve_params
from transduce.positions import at
from transduce.provenance import require_plugins
from transduce.registry import Registry
from transduce.rundir import RunDir

Path_ = tuple[str, ...]


# A recipe is small: these bound what reading one may cost, checked as it is read (before anything is built).
MAX_BYTES = 1 << 20
MAX_VALUES = 100_000
MAX_DEPTH = 64
_PLAIN_DATA = "a recipe is plain data: write it out or remove the alias"
_SHALLOW = "a recipe is a few levels deep (section, component, key): flatten it"
_SMALL = "a recipe is small: it names components and settings, not data"


class _Unbounded(Exception):
    """YAML beyond the bounds above; `line` is where reading stopped."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


@dataclass
class _Open:
    """A collection being read: its anchor, its values so far (itself included, aliases expanded), its height."""

    anchor: str | None
    values: int = 1
    height: int = 0


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `1e-3` as a number (as YAML 1.2 does) and bounds what it composes.

    Each event is counted as the composer takes it: a node is one value, an alias the expanded size of
    its anchor's node. So an alias bomb (`&a [*a, *a, ...]`, nested) is refused having read only its
    text, and nesting deeper than MAX_DEPTH (aliases expanded) before anything recurses into it.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._read_values = 0
        self.event_line: int | None = None
        self._open: list[_Open] = []
        self._anchored: dict[str, tuple[int, int]] = {}  # anchor -> (values, height) of its node, expanded

    def get_event(self) -> yaml.Event:
        event = super().get_event()
        self.event_line = event.start_mark.line + 1 if event.start_mark is not None else self.event_line
        if isinstance(event, yaml.AliasEvent):
            self._alias(event.anchor)
        elif isinstance(event, yaml.ScalarEvent):
            self._count(1)
            self._finish(1, 0, event.anchor)
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(self._open) >= MAX_DEPTH:
                raise _Unbounded(f"nested more than {MAX_DEPTH} levels deep; {_SHALLOW}", self.event_line)
            self._count(1)
            self._open.append(_Open(event.anchor))
        elif isinstance(event, yaml.CollectionEndEvent):
            done = self._open.pop()
            self._finish(done.values, done.height + 1, done.anchor)
        return event

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """PyYAML's constructors raise bare errors for a value its tag does not fit (`!!int x`, `!!timestamp x`,
        `2001-02-30`): give them the node's line, as a YAML error."""
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, AttributeError, ArithmeticError, LookupError) as exc:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            why = f" ({exc})" if isinstance(exc, ValueError) else ""
            problem = f"{str(node.value)[:80]!r} is not a valid {tag}{why}; quote it to keep it text"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None

    def _alias(self, anchor: str) -> None:
        if any(frame.anchor == anchor for frame in self._open):
            raise _Unbounded(
                f"alias *{anchor} is inside the node it names (it contains itself); {_PLAIN_DATA}", self.event_line
            )
        values, height = self._anchored.get(anchor, (1, 0))  # an undefined alias: the composer says so
        if len(self._open) + height > MAX_DEPTH:
            raise _Unbounded(
                f"alias *{anchor} nests values more than {MAX_DEPTH} levels deep; {_PLAIN_DATA}", self.event_line
            )
        self._count(values, alias=True)
        self._finish(values, height, None)

    def _count(self, values: int, alias: bool = False) -> None:
        self._read_values += values
        if self._read_values > MAX_VALUES:
            what = "aliases expand to" if alias else "the recipe holds"
            raise _Unbounded(
                f"{what} more than {MAX_VALUES:,} values; {_PLAIN_DATA if alias else _SMALL}", self.event_line
            )

    def _finish(self, values: int, height: int, anchor: str | None) -> None:
        """A node of `values` values and `height` levels is read: remember it under its anchor, add it to its parent."""
        if anchor is not None:
            self._anchored[anchor] = (values, height)
        if self._open:
            parent = self._open[-1]
            parent.values += values
            parent.height = max(parent.height, height)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)

# Core sections, declared like component parameters so validation and docs share them.
SEED = Param("seed", int, 1, "seed of every random choice: reruns give the same result", min=0, max=2**32 - 1)

VOCAB_PARAMS = (
    Param("min_freq", int, 1, "drop tokens seen fewer times than this in the training split", min=1),
    Param("max_size", int, 30000, "keep at most this many entries, specials included", min=5, nullable=True),
    Param(
        "max_length",
        int,
        None,
        "drop training pairs whose tokens on this side exceed this count (null: the decoding limits, 1,024 "
        "source and 4,096 target tokens)",
        min=1,
        nullable=True,
    ),
)

# Settings of the source side alone: the target is read and written in reading order.
SOURCE_PARAMS = (
    Param(
        "reverse",
        bool,
        False,
        "feed the source tokens to the encoder in reverse order (its first tokens then sit next to the decoder's "
        "start); reports and heat maps still show them in reading order",
    ),
)

# Bounds that keep a mistyped size a clear error instead of a huge allocation or a build that never ends.
MAX_SIZE = 8192
MAX_LAYERS = 32

MODEL_PARAMS = (
    Param(
        "embedding_dim",
        int,
        128,
        "size of the source and target token embeddings (the decoder network gets it for its target embeddings)",
        min=1,
        max=MAX_SIZE,
    ),
    Param("dropout", float, 0.1, "dropout on the source embeddings (model.decoder has its own)", min=0.0, max=0.9),
)

TRAIN_PARAMS = (
    Param("epochs", int, 10, "passes over the training split", min=1),
    Param(
        "batch_size",
        int,
        64,
        "sentences per batch, all processes together (batches are bucketed by length)",
        min=1,
    ),
    Param(
        "batch_tokens",
        int,
        None,
        "fill batches up to this many tokens instead of batch_size sentences, all processes together: rows x the "
        "longer side's padded length (the source, or the target with its end token), as fairseq's --max-tokens "
        "counts them; a pair longer than this gets a batch of its own (null: batch_size sentences)",
        min=1,
        max=10_000_000,
        nullable=True,
    ),
    Param(
        "accumulate",
        int,
        1,
        "batches per optimizer step (gradient accumulation): their gradients add up as one batch of their "
        "tokens would give; train.checkpoint_every counts optimizer steps",
        min=1,
        max=1024,
    ),
    Param("lr", float, 0.001, "Adam learning rate", min=0.0, max=10.0),
    Param(
        "clip_grad_norm", float, 5.0, "clip the gradient norm to this value (null: no clipping)", min=0.0, nullable=True
    ),
    Param("label_smoothing", float, 0.0, "label smoothing of the cross-entropy loss", min=0.0, max=0.99),
    Param(
        "patience",
        int,
        None,
        "stop after this many validations without improvement (null: never)",
        min=1,
        nullable=True,
    ),
    Param(
        "best_metric",
        str,
        None,
        "validation metric that picks the best checkpoint (null: the first of evaluate.metrics)",
        nullable=True,
    ),
    Param("device", str, "auto", "where to train: auto picks CUDA when present", choices=("auto", "cpu", "cuda")),
    Param(
        "precision",
        str,
        "fp32",
        "bf16: the training forward pass in bfloat16 autocast (GPUs since Ampere, CPUs with AMX), and on the CPU "
        "decoding's matrix products in bfloat16 (change it per command with --set train.precision=...)",
        choices=("fp32", "bf16"),
    ),
    Param("threads", int, None, "torch CPU threads (null: torch's default)", min=1, max=1024, nullable=True),
    Param("valid_every", int, 1, "validate every this many epochs", min=1),
    Param(
        "lr_decay",
        float,
        None,
        "multiply the learning rate by this after every validation without improvement (null: constant)",
        min=0.01,
        max=1.0,
        nullable=True,
    ),
    Param("min_lr", float, 1e-5, "the learning rate never decays below this", min=0.0),
    Param(
        "checkpoint_every",
        int,
        None,
        "also write the last checkpoint every this many steps within an epoch (null: only by time)",
        min=1,
        nullable=True,
    ),
    Param(
        "checkpoint_minutes",
        float,
        10.0,
        "also write the last checkpoint when this many minutes passed since the previous one (null: never)",
        min=0.0,
        nullable=True,
    ),
)

EVALUATE_PARAMS = (
    Param("split", str, "test", "split the final report scores", choices=("train", "valid", "test")),
    Param("examples", int, 10, "examples shown in the report table", min=0),
    Param("batch_size", int, 256, "sentences per decoding batch", min=1),
    Param("buckets", int, 5, "source-length groups scored separately in the report", min=1, max=20),
    Param("extremes", int, 5, "best and worst examples (by sentence chrF) listed in the report", min=0),
    Param("heatmaps", int, 3, "examples drawn as attention heat maps in the HTML report", min=0),
)

TOP_LEVEL = ("seed", "data", "source", "target", "model", "train", "search", "evaluate", "loggers")

#: Keys of the layout before the decoder network became a component family, and where they went.
MOVED = {
    ("decoder",): "`decoder` now names the decoder network, under model.decoder; the search strategy "
    "(greedy, beam, sample) moved to the `search:` section, e.g. 'search: {name: beam, size: 5}'",
    ("model", "attention"): "moved to model.decoder.attention (the decoder network's attention scorer, or none)",
    ("model", "hidden_size"): "moved to model.decoder.hidden_size (the decoder network's state size)",
    ("model", "decoder_layers"): "moved to model.decoder.layers",
}


@dataclass
class _Located:
    """The recipe's raw mapping with where each key came from."""

    data: dict[str, Any]
    source: str
    lines: dict[Path_, int] = field(default_factory=dict)
    overrides: dict[Path_, str] = field(default_factory=dict)
    #: The recipe file's folder, where a relative path that is not found may have been meant.
    directory: Path | None = None
    #: Whether a path parameter must name an existing file or directory (not for a run's own recipe.yaml).
    check_paths: bool = True

    def fail(self, path: Path_, message: str) -> NoReturn:
        """Raise `message` about `path`, blamed on what gave it: the last --set of it or of a key above it
        (a --set that replaces a mapping owns every key beneath), else the file's line of it or of its parent."""
        key = ".".join(path)
        owner = next((a for assigned, a in reversed(self.overrides.items()) if path[: len(assigned)] == assigned), None)
        if owner is None and path not in self.lines:  # not in the file: blame an override that created it
            owner = next((a for assigned, a in self.overrides.items() if assigned[: len(path)] == path), None)
        if owner is not None:
            raise RecipeError(message, key=key, source=f"--set {owner}")
        for depth in range(len(path), -1, -1):
            if path[:depth] in self.lines:
                raise RecipeError(message, key=key, source=self.source, line=self.lines[path[:depth]])
        raise RecipeError(message, key=key, source=self.source)


# --- reading -----------------------------------------------------------------


def _parse_once(text: str, source: str) -> tuple[Any, dict[Path_, int]]:
    """The data and the line of every key path (both from one bounded parse); None for an empty text.

    Lines are indexed before the data is built, because building applies merge keys (`<<: *base`)
    by rewriting the tree.
    """
    if len(text) > MAX_BYTES:
        raise RecipeError(f"more than {MAX_BYTES >> 20} MiB of text; {_SMALL}", source=source)
    try:
        loader = _Loader(text)
    except yaml.YAMLError as exc:  # a character YAML does not allow
        raise _yaml_error(exc, source) from None
    try:
        node = loader.get_single_node()
        lines: dict[Path_, int] = {}
        if node is None:
            return None, lines
        _index_lines(node, (), lines, source)
        return _unshared(loader.construct_document(node)), lines
    except _Unbounded as exc:
        raise RecipeError(str(exc), source=source, line=exc.line) from None
    except RecursionError:  # the bounds make this unlikely; PyYAML's reader recurses per level all the same
        raise RecipeError(f"nested too deeply to read; {_SHALLOW}", source=source, line=loader.event_line) from None
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    finally:
        loader.dispose()


def _yaml_error(exc: yaml.YAMLError, source: str) -> RecipeError:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in problem:
        problem += "; a recipe is plain data: tags such as !!python/object are never run, remove the tag"
    return RecipeError(f"invalid YAML: {problem}", source=source, line=line)


def _unshared(value: Any) -> Any:
    """A copy in which no dict or list appears twice, so an override of one alias's copy changes only that one."""
    if isinstance(value, dict):
        return {key: _unshared(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unshared(item) for item in value]
    return value


def _read_yaml(text: str, source: str) -> _Located:
    data, lines = _parse_once(text, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"a recipe must be a mapping of sections, got {type(data).__name__}", source=source)
    return _Located(data=data, source=source, lines=lines)


_MERGE = "tag:yaml.org,2002:merge"


def _index_lines(node: yaml.Node, path: Path_, lines: dict[Path_, int], source: str) -> None:
    """Record the line of every key; a key given twice in one mapping is an error (YAML keeps the last).

    A key that a merge (`<<: *base`) brings in has the line where the base wrote it, unless the mapping
    gives the key itself.
    """
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                continue
            child = (*path, str(key_node.value))
            line = key_node.start_mark.line + 1
            if child[-1] in seen:
                raise RecipeError(
                    f"key given twice (first on line {lines[child]}); keep one",
                    key=".".join(child),
                    source=source,
                    line=line,
                )
            seen.add(child[-1])
            _index_lines(value_node, child, lines, source)
            lines[child] = line
        for key_node, value_node in _merged_pairs(node):
            child = (*path, str(key_node.value))
            if child[-1] not in seen:
                seen.add(child[-1])
                _index_lines(value_node, child, lines, source)
                lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, str(index)), lines, source)


def _merged_pairs(node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node]]:
    """The (key, value) pairs the merge keys of `node` bring in, those that win first (as YAML merges)."""
    pairs: list[tuple[yaml.Node, yaml.Node]] = []
    for key_node, value_node in node.value:
        if key_node.tag != _MERGE:
            continue
        bases = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for base in bases:
            if isinstance(base, yaml.MappingNode):  # anything else: the constructor says what is wrong
                pairs += [pair for pair in base.value if pair[0].tag != _MERGE] + _merged_pairs(base)
    return pairs


def apply_override(located: _Located, assignment: str) -> None:
    """Apply one `KEY.PATH=VALUE` override; VALUE is read as YAML (3 -> int, null -> None)."""
    if "=" not in assignment:
        raise RecipeError(f"expected KEY=VALUE (e.g. train.epochs=3), got {assignment!r}", source="--set")
    key, raw = assignment.split("=", 1)
    shown = assignment if len(assignment) <= 80 else assignment[:77] + "..."
    path = tuple(part.strip() for part in key.strip().split("."))
    if not all(path):
        raise RecipeError(f"empty key in {assignment!r}", source="--set")
    value = read_value(raw, source=f"--set {shown}")
    node: Any = located.data
    for depth, part in enumerate(path[:-1]):
        child = node.get(part)
        if isinstance(child, str) and positions.is_single(path[: depth + 1]):
            child = {"name": child}  # `model.encoder: lstm` then --set model.encoder.layers=2
        if child is None:
            child = {}
        if not isinstance(child, dict):
            raise RecipeError(
                f"cannot set {'.'.join(path)}: {'.'.join(path[: depth + 1])} is not a mapping",
                source=f"--set {shown}",
            )
        node[part] = child
        node = child
    node[path[-1]] = value
    located.overrides.pop(path, None)  # kept in the order applied: the last one that covers a key owns it
    located.overrides[path] = shown


# --- validation --------------------------------------------------------------


def _section(located: _Located, path: Path_) -> dict[str, Any]:
    value: Any = located.data
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        located.fail(path, f"expected a mapping of keys, got {type(value).__name__} {value!r}")
    return value


def _params(
    located: _Located, path: Path_, params: Sequence[Param], given: Mapping[str, Any], owner: str
) -> dict[str, Any]:
    return resolve_params(params, given, owner=owner, fail=lambda key, msg: located.fail((*path, key), msg))


def _component(
    located: _Located, registry: Registry, family: str, path: Path_, raw: Any, default: str | None = None
) -> dict[str, Any]:
    """Resolve `name` or `{name: ..., params...}` into `{name: ..., params...}`; a mapping without `name` names
    the position's `default` when it has one (`model.decoder: {hidden_size: 64}` is the default decoder)."""
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        located.fail(path, f"expected a {family} name or a mapping with 'name', got {raw!r}")
    if "name" not in raw and default is not None:
        raw = {"name": default, **raw}
    if "name" not in raw:
        located.fail(path, f"missing 'name': which {family} to use (available: {', '.join(registry.names(family))})")
    name = raw["name"]
    info = registry.get(family, name) if isinstance(name, str) else None
    if info is None:
        located.fail((*path, "name"), registry.unknown_name_message(family, name))
    given = {k: v for k, v in raw.items() if k != "name"}

    def nested(param: Param, value: Any) -> dict[str, Any]:
        assert param.family is not None
        default = param.default if isinstance(param.default, str) and param.default != NONE else None
        return _component(located, registry, param.family, (*path, param.name), value, default)

    resolved = resolve_params(
        info.params,
        given,
        owner=f"{family} {name!r}",
        fail=lambda key, msg: located.fail((*path, key), msg),
        nested=nested,
    )
    if located.check_paths:
        for param in info.params:
            problem = _path_problem(param.path, given.get(param.name), located.directory)
            if problem:
                located.fail((*path, param.name), problem)
    return {"name": name, **resolved}


def _single(located: _Located, registry: Registry, raw: Mapping[str, Any], *path: str) -> dict[str, Any]:
    """The component at a fixed single position, `raw` being its parent section; its default when omitted."""
    position = at(*path)
    value = raw.get(path[-1], position.default)
    default = position.default if isinstance(position.default, str) else None
    return _component(located, registry, position.family, position.path, value, default)


def _many(located: _Located, registry: Registry, value: Any, *path: str) -> list[dict[str, Any]]:
    """The components of a list position (a single name or mapping is a list of one)."""
    position = at(*path)
    if isinstance(value, (str, dict)):
        value = [value]
    if not isinstance(value, list):
        example = ", ".join(registry.names(position.family)[:2])
        located.fail(position.path, f"expected a list of {position.family} names, e.g. [{example}], got {value!r}")
    return [_component(located, registry, position.family, (*position.path, str(i)), v) for i, v in enumerate(value)]


def _path_problem(kind: str | None, given: Any, recipe_dir: Path | None) -> str | None:
    """Why the `kind` path `given` (as written) names nothing usable, with where it was looked for; or None."""
    if kind not in ("file", "directory") or not isinstance(given, str):
        return None  # not a path, not given (a default or null: e.g. download), or made when missing
    resolved = absolute_path(given)
    found = _kind_at(resolved)
    if found == kind:
        return None
    problem = f"{given!r} is a {found}, not a {kind}" if found else f"no {kind} {given!r}"
    if os.path.isabs(os.path.expanduser(given)):
        return problem
    problem += f" (a relative path is read from the current directory, {os.getcwd()}: {resolved})"
    beside = absolute_path(str(recipe_dir / os.path.expanduser(given))) if recipe_dir is not None else None
    if beside is not None and _kind_at(beside) == kind:
        return (
            f"{problem}. Did you mean it relative to the recipe ({beside})? Write paths relative to where you "
            f"run transduce ({os.path.relpath(beside)}), or absolute"
        )
    return problem + "; write it relative to where you run transduce, or absolute"


def _kind_at(path: str) -> str | None:
    """What is at `path`: a file, a directory, a special file, or None (nothing, or nothing that can be looked at)."""
    try:
        place = Path(path)
        return (
            "directory" if place.is_dir() else "file" if place.is_file() else "special file" if place.exists() else None
        )
    except (OSError, ValueError):  # e.g. a NUL byte in the name, or a name too long
        return None


def read_value(raw: str, *, source: str = "") -> Any:
    """A value typed on a command line or at a prompt, read as YAML (3 -> int, 1e-3 -> float, null -> None).

    Text that is not valid YAML stays text. YAML beyond a recipe's bounds (an alias bomb, deep nesting)
    is a RecipeError naming `source` when one is given (a --set); without one (a chat switch) it stays
    text too, which the parameter it is given to then refuses.
    """
    if not raw.strip():
        return ""
    try:
        data, _ = _parse_once(raw, source)
        return data
    except RecipeError as exc:
        if source and not exc.detail.startswith("invalid YAML"):
            raise RecipeError(exc.detail, source=source) from None  # the line of a one-line value says nothing
        return raw


def resolve_component(
    registry: Registry,
    family: str,
    raw: Mapping[str, Any],
    *,
    inherit: Mapping[str, Any] | None = None,
    source: str = "",
) -> dict[str, Any]:
    """Validate one component spec `{name, params...}` as a recipe's section would be; defaults filled in.

    For specs that come from elsewhere than a recipe file (a command-line option, a chat switch).
    Settings of `inherit` that the named component also declares and `raw` does not give are kept,
    so that e.g. switching search strategy keeps the recipe's length limits. Mistakes
    raise a RecipeError whose key is `FAMILY.PARAM` and whose source is `source`.
    """
    name = raw.get("name")
    info = registry.get(family, name) if isinstance(name, str) else None
    if info is None:
        raise RecipeError(registry.unknown_name_message(family, name), key=f"{family}.name", source=source)
    declared = {param.name for param in info.params}
    given = {key: value for key, value in (inherit or {}).items() if key in declared}
    given.update((key, value) for key, value in raw.items() if key != "name")

    def fail(key: str, message: str) -> NoReturn:
        raise RecipeError(message, key=f"{family}.{key}", source=source)

    def nested(param: Param, value: Any) -> dict[str, Any]:
        assert param.family is not None
        spec = {"name": value} if isinstance(value, str) else value
        return resolve_component(registry, param.family, spec, source=source)

    resolved = resolve_params(info.params, given, owner=f"{family} {name!r}", fail=fail, nested=nested)
    return {"name": name, **resolved}


def _side(located: _Located, registry: Registry, side: str) -> dict[str, Any]:
    raw = dict(_section(located, (side,)))
    params = (*VOCAB_PARAMS, *SOURCE_PARAMS) if side == "source" else VOCAB_PARAMS
    for param in SOURCE_PARAMS:
        if side != "source" and param.name in raw:
            located.fail(
                (side, param.name),
                f"only the source side has {param.name!r} (the decoder writes the target in reading order); "
                f"set source.{param.name} instead",
            )
    resolved = _params(
        located, (side,), params, {k: v for k, v in raw.items() if k != "tokenizer"}, f"section {side!r}"
    )
    resolved["tokenizer"] = _single(located, registry, raw, side, "tokenizer")
    return resolved


def _model(located: _Located, registry: Registry) -> dict[str, Any]:
    raw = dict(_section(located, ("model",)))
    for key in raw:
        if ("model", key) in MOVED:
            located.fail(("model", key), MOVED[("model", key)])
    given = {k: v for k, v in raw.items() if k not in ("encoder", "decoder")}
    resolved = _params(located, ("model",), MODEL_PARAMS, given, "section 'model' (or 'encoder', 'decoder')")
    resolved["encoder"] = _single(located, registry, raw, "model", "encoder")
    resolved["decoder"] = _single(located, registry, raw, "model", "decoder")
    return resolved


def _evaluate(located: _Located, registry: Registry) -> dict[str, Any]:
    raw = dict(_section(located, ("evaluate",)))
    metrics = raw.pop("metrics", list(at("evaluate", "metrics").default or ()))
    compare = raw.pop("compare", None) or []
    resolved = _params(located, ("evaluate",), EVALUATE_PARAMS, raw, "section 'evaluate' (or 'metrics', 'compare')")
    if not isinstance(metrics, list) or not metrics:
        located.fail(("evaluate", "metrics"), f"expected a non-empty list of metric names, got {metrics!r}")
    resolved["metrics"] = _many(located, registry, metrics, "evaluate", "metrics")
    # Search strategies the report also scores and times, as the `search` section names one.
    resolved["compare"] = _many(located, registry, compare, "evaluate", "compare")
    return resolved


def _loggers(located: _Located, registry: Registry) -> list[dict[str, Any]]:
    """`loggers: [console, {name: jsonl}]`; one name or mapping alone is a list of one; null or [] is none."""
    raw = located.data.get("loggers", list(at("loggers").default or ()))
    resolved: list[dict[str, Any]] = []
    for i, logger in enumerate(_many(located, registry, [] if raw is None else raw, "loggers")):
        first = next((j for j, seen in enumerate(resolved) if seen["name"] == logger["name"]), None)
        if first is not None:
            located.fail(("loggers", str(i)), f"logger {logger['name']!r} is listed twice (also as loggers.{first})")
        resolved.append(logger)
    return resolved


def _validate(located: _Located, registry: Registry) -> dict[str, Any]:
    for key in located.data:
        if (key,) in MOVED:
            located.fail((key,), MOVED[(key,)])
        if key not in TOP_LEVEL:
            located.fail(
                (str(key),),
                f"unknown section{did_you_mean(str(key), TOP_LEVEL)} (valid sections: {', '.join(TOP_LEVEL)})",
            )
    if "data" not in located.data:
        located.fail(
            ("data",),
            "missing required section: which data source to use, e.g. 'data: {name: dates}' "
            f"(available: {', '.join(registry.names('dataset'))})",
        )
    seed = _params(located, (), (SEED,), {k: v for k, v in located.data.items() if k == "seed"}, "the recipe")
    recipe: dict[str, Any] = {"seed": seed["seed"]}
    recipe["data"] = _single(located, registry, located.data, "data")
    recipe["source"] = _side(located, registry, "source")
    recipe["target"] = _side(located, registry, "target")
    recipe["model"] = _model(located, registry)
    recipe["train"] = _params(located, ("train",), TRAIN_PARAMS, _section(located, ("train",)), "section 'train'")
    recipe["search"] = _single(located, registry, located.data, "search")
    recipe["evaluate"] = _evaluate(located, registry)
    recipe["loggers"] = _loggers(located, registry)
    _check_best_metric(located, recipe)
    return recipe


def _check_best_metric(located: _Located, recipe: dict[str, Any]) -> None:
    names = [m["name"] for m in recipe["evaluate"]["metrics"]]
    best = recipe["train"]["best_metric"]
    if best is None:
        recipe["train"]["best_metric"] = names[0]
    elif best not in names:
        located.fail(
            ("train", "best_metric"),
            f"{best!r} is not among evaluate.metrics{did_you_mean(best, names)} ({', '.join(names)})",
        )


# --- public entry points -----------------------------------------------------


#: Builds a resolved recipe's components to find combinations they refuse (pipeline.check); a RecipeError it
#: raises with a key but no file is reported at that key's line.
Check = Callable[[dict[str, Any]], None]


def load_recipe(
    path: str | Path, registry: Registry, overrides: Iterable[str] = (), check: Check | None = None
) -> dict[str, Any]:
    """Read, override and validate the recipe file at `path` (and `check` it); return the resolved recipe."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)  # never more: the file may be huge, or endless (a device, a pipe)
        if len(raw) > MAX_BYTES:
            raise RecipeError(f"larger than {MAX_BYTES >> 20} MiB; {_SMALL}", source=str(path))
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise RecipeError(
            "recipe file not found; check the path (recipes live in recipes/)", source=str(path)
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"cannot read the recipe: {exc}", source=str(path)) from None
    try:
        return parse_recipe(
            text,
            registry,
            source=str(path),
            overrides=overrides,
            check=check,
            directory=path.parent,
            check_paths=not _is_run_recipe(path),
        )
    except RecipeError as error:
        _explain_run_recipe(path, error, registry)
        raise


def _run_of(path: Path) -> RunDir | None:
    """The run whose recipe.yaml `path` is, or None for any other recipe file."""
    run = RunDir(path.parent)
    return run if path.name == run.recipe.name else None


def _is_run_recipe(path: Path) -> bool:
    """Whether `path` is the recipe.yaml of a run: its data may be gone, and translate needs none."""
    run = _run_of(path)
    return run is not None and run.last_checkpoint.parent.is_dir()


def _explain_run_recipe(path: Path, error: RecipeError, registry: Registry) -> None:
    """For a run's own recipe.yaml: a run made before the recipe layout changed is named as such, and a missing
    plugin with the distribution to install (RunError)."""
    run = _run_of(path)
    if run is None:
        return
    moved = tuple(error.key.split("."))
    if error.source == str(path) and moved in MOVED:
        raise RunError(
            f"{run.path} was made by an older transduce version, from before the decoder network became a "
            f"component: its recipe.yaml has `{error.key}` ({MOVED[moved]}). This version cannot open it; "
            "train it again from its recipe in the new layout (docs/recipes.md shows it), or evaluate and "
            "translate with the transduce version that trained it"
        )
    require_plugins(run, registry)


def parse_recipe(
    text: str,
    registry: Registry,
    *,
    source: str = "<recipe>",
    overrides: Iterable[str] = (),
    check: Check | None = None,
    directory: Path | None = None,
    check_paths: bool = True,
) -> dict[str, Any]:
    """Validate recipe text (and `check` the result); `source` names it in error messages.

    Path parameters come out absolute (relative ones are read from the current directory) and, with
    `check_paths`, must name an existing file or directory; `directory` is the recipe's folder, which
    the error suggests when the path exists relative to it instead.
    """
    located = _read_yaml(text, source)
    located.directory, located.check_paths = directory, check_paths
    for assignment in overrides:
        apply_override(located, assignment)
    recipe = _validate(located, registry)
    if check is not None:
        try:
            check(recipe)
        except RecipeError as error:
            if error.source or not error.key:
                raise
            located.fail(tuple(error.key.split(".")), error.detail)
    return recipe


def dump_recipe(recipe: Mapping[str, Any]) -> str:
    """The resolved recipe as YAML, keys in recipe order."""
    return yaml.safe_dump(dict(recipe), sort_keys=False, allow_unicode=True)


def recipe_differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Keys whose values differ between two resolved recipes, as 'key: old -> new'."""
    changes: list[str] = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            changes.extend(recipe_differences(a, b, prefix=f"{name}."))
        elif a != b:
            changes.append(f"{name}: {a!r} -> {b!r}")
    return changes
