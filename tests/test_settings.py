"""Typed settings: the core sections as dataclasses, their Params derived from the fields, every read of them
checked against the declared fields by reading the source (so a misspelled setting fails here, not at run time)."""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from recipe_helpers import parse, parse_error

from transduce._plugins.params import REQUIRED, Param
from transduce._recipe import recipe as recipe_module
from transduce._recipe.settings import (
    EvaluateSettings,
    ModelSettings,
    Settings,
    SideSettings,
    SourceSettings,
    TrainSettings,
    params_of,
    section_fields,
    setting,
)

ROOT = Path(__file__).resolve().parents[1]
CHECKED = sorted(ROOT.glob("transduce/**/*.py"))


# --- the typo check: every attribute read on a settings object names a declared field ------------------------


def _sections(cls: type = Settings) -> dict[str, type]:
    """Every section class reachable from Settings, by class name."""
    found = {cls.__name__: cls}
    for nested in section_fields(cls).values():
        if nested is not None:
            found.update(_sections(nested))
    return found


SECTIONS = _sections()
#: Where a name or `self.` attribute carries no binding the check can type, this name means the whole Settings.
CONVENTION = "settings"


@dataclasses.dataclass
class Read:
    """`owner.attr` at `path:line`, `owner` being a settings object of class `cls`."""

    path: str
    line: int
    end: int  # the column after the read, to order reads as they are written
    cls: type
    attr: str

    def ok(self) -> bool:
        return self.attr in {field.name for field in dataclasses.fields(self.cls)} or hasattr(self.cls, self.attr)

    def __str__(self) -> str:
        fields = ", ".join(field.name for field in dataclasses.fields(self.cls))
        return f"{self.path}:{self.line}: {self.cls.__name__} has no {self.attr!r} (fields: {fields})"


def _own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """The nodes of `scope`'s body, not descending into nested functions and classes (their own scopes)."""
    for child in ast.iter_child_nodes(scope):
        yield child
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            yield from _own_nodes(child)


def _annotated(annotation: ast.expr | None) -> type | None:
    """The section class an annotation names (`TrainSettings`, `"TrainSettings"`, `settings.TrainSettings`)."""
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return SECTIONS.get(annotation.value)
    if isinstance(annotation, ast.Name):
        return SECTIONS.get(annotation.id)
    if isinstance(annotation, ast.Attribute):
        return SECTIONS.get(annotation.attr)
    return None


class _SettingsReads(ast.NodeVisitor):
    """Types the names and `self.` attributes bound to settings objects, scope by scope, and records every
    attribute read on them. Bindings it types: a parameter or variable annotated with a section class,
    `x = Section.of(...)`, `x = <settings object>.section`, `self.x = ...` of those (for the whole class)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.reads: list[Read] = []
        self.names: list[dict[str, type | None]] = [{}]
        self.members: list[dict[str, type | None]] = [{}]

    def type_of(self, node: ast.expr) -> type | None:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "of":
            return _annotated(node.func.value)
        if isinstance(node, ast.Name):
            names = self.names[-1]
            return names[node.id] if node.id in names else Settings if node.id == CONVENTION else None
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                members = self.members[-1]
                return members[node.attr] if node.attr in members else Settings if node.attr == CONVENTION else None
            owner = self.type_of(node.value)
            return section_fields(owner).get(node.attr) if owner is not None else None
        return None

    def visit_Module(self, node: ast.Module) -> None:
        self._scope(node, [])

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        members: dict[str, type | None] = {}
        for child in ast.walk(node):
            if isinstance(child, (ast.Assign, ast.AnnAssign)):
                for target in child.targets if isinstance(child, ast.Assign) else [child.target]:
                    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                        if target.value.id == "self" and child.value is not None:
                            members[target.attr] = _annotated(getattr(child, "annotation", None)) or self.type_of(
                                child.value
                            )
        self.members.append(members)
        self._scope(node, [])
        self.members.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        arguments = node.args
        every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg]
        self._scope(node, [argument for argument in every if argument is not None])

    visit_AsyncFunctionDef = visit_FunctionDef

    def _scope(self, scope: ast.AST, parameters: list[ast.arg]) -> None:
        names = dict(self.names[-1])
        self.names.append(names)
        for argument in parameters:  # an unannotated `settings` follows the convention; other names hide outer ones
            if argument.annotation is not None or argument.arg != CONVENTION:
                names[argument.arg] = _annotated(argument.annotation)
            else:
                names.pop(argument.arg, None)
        own = list(_own_nodes(scope))
        typed = set()
        for node in own:  # typed bindings first, then any other binding of a name hides the outer one
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names[node.target.id] = _annotated(node.annotation)
                typed.add(node.target.id)
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                names[node.targets[0].id] = self.type_of(node.value)
                typed.add(node.targets[0].id)
        for node in own:
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id not in typed:
                names[node.id] = None
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((alias.asname or alias.name.partition(".")[0], None) for alias in node.names)
        for node in own:
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                owner = self.type_of(node.value)
                if owner is not None:
                    self.reads.append(Read(self.path, node.lineno, node.end_col_offset or 0, owner, node.attr))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.visit(node)
        self.names.pop()


def settings_reads(source: str, path: str = "<source>") -> list[Read]:
    visitor = _SettingsReads(path)
    visitor.visit(ast.parse(source))
    return sorted(visitor.reads, key=lambda read: (read.line, read.end))


def test_every_read_of_a_setting_in_the_code_names_a_declared_field():
    reads = [read for path in CHECKED for read in settings_reads(path.read_text(), str(path.relative_to(ROOT)))]
    assert [str(read) for read in reads if not read.ok()] == []
    by_file = {read.path for read in reads}
    assert {
        "transduce/_training/trainer.py",
        "transduce/_decoding/translator.py",
        "transduce/_decoding/chat.py",
        "transduce/_reports/evaluation.py",
        "transduce/_cli/main.py",
        "transduce/_model/assembly.py",
    } <= by_file
    assert sum(read.path.endswith("trainer.py") for read in reads) > 40  # the check sees the trainer's reads


TYPOS = """
class Trainer:
    def __init__(self, recipe):
        self.settings = Settings.of(recipe)

    def run(self):
        return self.settings.train.epoch

def loop(settings):
    train = settings.train
    return train.patiense, settings.trian

def report(evaluate: EvaluateSettings, side: "SideSettings"):
    limits: SourceSettings = side
    return evaluate.bukets, side.min_frq, limits.revers, ModelSettings.of({}).dropuot
"""

FINE = """
from transduce._recipe import settings

PARAMS = settings.TRAIN_PARAMS

def label(spec):
    settings = ",".join(spec)
    return settings.upper()

def loop(settings):
    def inner(settings: dict):
        return settings.items()
    return settings.train.epochs, settings.search.items(), settings.model.encoder, inner

class Chat:
    def __init__(self, settings: str):
        self.settings = settings.split(",")

    def show(self):
        return self.settings.count
"""


def test_the_typo_check_finds_misspelled_settings_through_attributes_aliases_and_annotations():
    bad = [f"{read.cls.__name__}.{read.attr}" for read in settings_reads(TYPOS) if not read.ok()]
    assert bad == [
        "TrainSettings.epoch",
        "TrainSettings.patiense",
        "Settings.trian",
        "EvaluateSettings.bukets",
        "SideSettings.min_frq",
        "SourceSettings.revers",
        "ModelSettings.dropuot",
    ]


def test_the_typo_check_leaves_other_objects_named_settings_alone():
    reads = settings_reads(FINE)
    assert [read for read in reads if not read.ok()] == []
    assert [f"{read.cls.__name__}.{read.attr}" for read in reads] == [
        "Settings.train",
        "TrainSettings.epochs",
        "Settings.search",
        "Settings.model",
        "ModelSettings.encoder",
    ]


# --- the derived Params are the declarations they replace -------------------------------------------------------

#: Every core parameter (those of before the move to dataclasses, with the optimizer/schedule and int8/shortlist
#: changes since), as `transduce plugins` describes it: type, bounds,
#: choices, null and default. (The help texts are checked by the reference pages, tests/test_reference.py.)
DECLARED = """
seed: integer >= 0 and <= 4294967295 = 1
source.min_freq: integer >= 1 = 1
source.max_size: integer >= 5 or null = 30000
source.max_length: integer >= 1 or null = null
source.reverse: boolean = false
target.min_freq: integer >= 1 = 1
target.max_size: integer >= 5 or null = 30000
target.max_length: integer >= 1 or null = null
model.embedding_dim: integer >= 1 and <= 8192 = 128
model.dropout: number >= 0.0 and <= 0.9 = 0.1
train.epochs: integer >= 1 = 10
train.batch_size: integer >= 1 = 64
train.batch_tokens: integer >= 1 and <= 10000000 or null = null
train.accumulate: integer >= 1 and <= 1024 = 1
train.lr: number >= 0.0 and <= 10.0 = 0.001
train.clip_grad_norm: number >= 0.0 or null = 5.0
train.label_smoothing: number >= 0.0 and <= 0.99 = 0.0
train.patience: integer >= 1 or null = null
train.best_metric: string or null = null
train.device: one of 'auto', 'cpu', 'cuda' = auto
train.precision: one of 'fp32', 'bf16', 'int8' = fp32
train.threads: integer >= 1 and <= 1024 or null = null
train.valid_every: integer >= 1 = 1
train.checkpoint_every: integer >= 1 or null = null
train.checkpoint_minutes: number >= 0.0 or null = 10.0
evaluate.split: one of 'train', 'valid', 'test' = test
evaluate.examples: integer >= 0 = 10
evaluate.batch_size: integer >= 1 = 256
evaluate.shortlist: integer >= 1 and <= 500 or null = null
evaluate.shortlist_frequent: integer >= 0 and <= 1000000 = 100
evaluate.buckets: integer >= 1 and <= 20 = 5
evaluate.extremes: integer >= 0 = 5
evaluate.heatmaps: integer >= 0 = 3
"""


def _described(prefix: str, params: tuple[Param, ...]) -> list[str]:
    return [f"{prefix}{p.name}: {p.describe_type()} = {p.default_text()}" for p in params]


def test_the_params_derived_from_the_fields_are_the_ones_declared_before():
    derived = (
        _described("", params_of(Settings))
        + _described("source.", params_of(SourceSettings))
        + _described("target.", params_of(SideSettings))
        + _described("model.", params_of(ModelSettings))
        + _described("train.", params_of(TrainSettings))
        + _described("evaluate.", params_of(EvaluateSettings))
    )
    assert derived == DECLARED.strip().splitlines()
    assert all(p.help and p.family is None and p.path is None for p in params_of(TrainSettings))


def test_validation_and_the_reference_pages_use_the_derived_params():
    assert recipe_module.TRAIN_PARAMS == params_of(TrainSettings)
    assert recipe_module.VOCAB_PARAMS + recipe_module.SOURCE_PARAMS == params_of(SourceSettings)
    assert (recipe_module.SEED,) == params_of(Settings)
    assert recipe_module.TOP_LEVEL == tuple(field.name for field in dataclasses.fields(Settings))


def test_a_field_made_by_setting_is_a_param_with_its_annotation_as_type():
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Example(SideSettings):
        rate: float | None = setting(0.5, "a rate", min=0.0, max=1.0)
        corpus: str = setting(help="where the text is", path="file")
        mode: str = setting("a", "a mode", choices=("a", "b"))

    rate, corpus, mode = params_of(Example)[-3:]
    assert rate == Param("rate", float, 0.5, "a rate", min=0.0, max=1.0, nullable=True)
    assert corpus == Param("corpus", str, REQUIRED, "where the text is", path="file")
    assert mode == Param("mode", str, "a", "a mode", choices=("a", "b"))


def test_a_setting_annotated_with_two_types_is_refused():
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Mixed(TrainSettings):
        size: int | str = setting(1, "a size")

    with pytest.raises(TypeError, match=r"setting 'size': annotate it as one type, or one type \| None"):
        params_of(Mixed)


# --- from the resolved recipe ------------------------------------------------------------------------------------

RECIPE = """\
seed: 7
data: {name: dates, train_size: 50}
source: {reverse: true, max_length: 40}
model: {embedding_dim: 32, decoder: {hidden_size: 48, attention: dot}}
train: {epochs: 2, lr_decay: 0.5}
search: {name: beam, size: 3}
evaluate: {metrics: [chrf, exact_match], compare: [greedy]}
loggers: [console]
"""


def test_settings_hold_every_resolved_value_as_attributes(registry):
    recipe = parse(RECIPE, registry)
    settings = Settings.of(recipe)
    assert dataclasses.asdict(settings) == recipe
    assert (settings.seed, settings.train.epochs, settings.train.schedule["decay"]) == (7, 2, 0.5)
    assert (settings.source.reverse, settings.source.max_length, settings.target.max_length) == (True, 40, None)
    assert settings.train.best_metric == "chrf"  # null resolves to the first metric
    assert settings.model.decoder["attention"] == {"name": "dot"}
    assert [spec["name"] for spec in settings.evaluate.compare] == ["greedy"]
    assert isinstance(settings.source, SourceSettings) and type(settings.target) is SideSettings


def test_settings_are_frozen_and_share_no_dict_with_the_recipe(registry):
    recipe = parse(RECIPE, registry)
    settings = Settings.of(recipe)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.train.epochs = 3  # type: ignore[misc]
    recipe["search"]["size"] = 9
    recipe["evaluate"]["metrics"].clear()
    assert settings.search["size"] == 3
    assert len(settings.evaluate.metrics) == 2


def test_a_resolved_key_without_a_field_is_refused(registry):
    recipe = parse(RECIPE, registry)
    recipe["train"]["warmup"] = 100
    with pytest.raises(TypeError, match="warmup"):
        Settings.of(recipe)


# --- recipe errors are the ones the separate declarations gave --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "train: {epocs: 3}",
            "r.yaml:2: train.epocs: unknown key for section 'train' (or 'optimizer', 'schedule'). Did you mean "
            "'epochs'? (valid keys: accumulate, batch_size, batch_tokens, best_metric, checkpoint_every, "
            "checkpoint_minutes, clip_grad_norm, device, epochs, label_smoothing, lr, patience, precision, threads, "
            "valid_every)",
        ),
        ("train:\n  lr: 20", "r.yaml:3: train.lr: expected number >= 0.0 and <= 10.0, got 20 (too large)"),
        (
            "target: {reverse: true}",
            "r.yaml:2: target.reverse: only the source side has 'reverse' (the decoder writes the target in reading "
            "order); set source.reverse instead",
        ),
        ("model: {dropout: x}", "r.yaml:2: model.dropout: expected number >= 0.0 and <= 0.9, got str 'x'"),
        (
            "evaluate: {split: tset}",
            "r.yaml:2: evaluate.split: expected one of 'train', 'valid', 'test', got 'tset'. Did you mean 'test'?",
        ),
        ("seed: -1", "r.yaml:2: seed: expected integer >= 0 and <= 4294967295, got -1 (too small)"),
        ("source: {max_size: 2}", "r.yaml:2: source.max_size: expected integer >= 5 or null, got 2 (too small)"),
        (
            "trian: {}",
            "r.yaml:2: trian: unknown section. Did you mean 'train'? (valid sections: seed, data, source, target, "
            "model, train, search, evaluate, loggers)",
        ),
        (
            "train: {best_metric: chrff}",
            "r.yaml:2: train.best_metric: 'chrff' is not among evaluate.metrics. Did you mean 'chrf'? "
            "(exact_match, bleu, chrf)",
        ),
    ],
)
def test_recipe_errors_are_unchanged(registry, text, message):
    assert str(parse_error(f"data: dates\n{text}\n", registry)) == message
