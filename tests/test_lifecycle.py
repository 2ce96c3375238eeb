"""The lifecycle dispatcher: loggers and plugins' hooks receive a run's events in order, nobody listening
costs nothing, and an observer that fails is disabled with one warning while the run goes on."""

from __future__ import annotations

import importlib
import inspect
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from transduce._cli import main as cli
from transduce._plugins import hookspecs
from transduce._plugins.registry import Provider, Registry, discover
from transduce._recipe.recipe import parse_recipe
from transduce._training import lifecycle as lifecycle_module
from transduce._training.lifecycle import Lifecycle
from transduce.api import Logger, Report, Score, hookimpl

SUPPORT = Path(__file__).parent / "support"

EVENTS = list(hookspecs.events())

RECIPE = {"seed": 1, "train": {"epochs": 2}}
RECORD = {"epoch": 1, "step": 5, "loss": 1.25, "tokens_per_second": 1000.0, "seconds": 0.5}
REPORT = Report(split="test", size=3, scores=[Score("exact_match", 66.6667)])


def run_events(lifecycle: Lifecycle, run_dir: Path = Path("/runs/x")) -> None:
    """One epoch of a run, as the trainer emits it."""
    lifecycle.emit("run_start", recipe=RECIPE, run_dir=run_dir)
    lifecycle.emit("validation_end", epoch=1, metrics={"exact_match": 50.0})
    lifecycle.emit("checkpoint_saved", path=run_dir / "checkpoints" / "best.pt", kind="best")
    lifecycle.emit("checkpoint_saved", path=run_dir / "checkpoints" / "last.pt", kind="last")
    lifecycle.emit("epoch_end", record={**RECORD, "valid": {"exact_match": 50.0}, "best": True})
    lifecycle.emit("evaluation_end", report=REPORT)
    lifecycle.emit("run_end", report=REPORT)


class Recorder(Logger):
    """Records every call."""

    name = "recorder"

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def run_start(self, recipe, run_dir):
        self.calls.append(("run_start", recipe, run_dir))

    def epoch_end(self, record):
        self.calls.append(("epoch_end", record))

    def validation_end(self, epoch, metrics):
        self.calls.append(("validation_end", epoch, metrics))

    def checkpoint_saved(self, path, kind):
        self.calls.append(("checkpoint_saved", path, kind))

    def evaluation_end(self, report):
        self.calls.append(("evaluation_end", report))

    def run_end(self, report):
        self.calls.append(("run_end", report))

    def run_failed(self, error):
        self.calls.append(("run_failed", error))


class EpochsOnly(Logger):
    """Counts epochs; every other event keeps the base no-op."""

    name = "epochs-only"

    def __init__(self) -> None:
        self.epochs: list[int] = []

    def epoch_end(self, record):
        self.epochs.append(record["epoch"])


class Flaky(Logger):
    """Fails in epoch_end; records what else it gets."""

    name = "flaky"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def run_start(self, recipe, run_dir):
        self.calls.append("run_start")

    def epoch_end(self, record):
        raise OSError("disk full")

    def run_end(self, report):
        self.calls.append("run_end")


@pytest.fixture
def warnings() -> list[str]:
    return []


def dispatcher(loggers, warnings: list[str], registry: Registry | None = None) -> Lifecycle:
    return Lifecycle(registry if registry is not None else Registry(), loggers, warn=warnings.append)


# --- loggers ---------------------------------------------------------------------------------


def test_a_logger_receives_every_event_in_order_with_its_payload(warnings):
    recorder = Recorder()
    run_events(dispatcher([recorder], warnings), Path("/runs/x"))
    assert recorder.calls == [
        ("run_start", RECIPE, Path("/runs/x")),
        ("validation_end", 1, {"exact_match": 50.0}),
        ("checkpoint_saved", Path("/runs/x/checkpoints/best.pt"), "best"),
        ("checkpoint_saved", Path("/runs/x/checkpoints/last.pt"), "last"),
        ("epoch_end", {**RECORD, "valid": {"exact_match": 50.0}, "best": True}),
        ("evaluation_end", REPORT),
        ("run_end", REPORT),
    ]
    assert warnings == []


def test_run_failed_gives_the_exception_itself(warnings):
    recorder, error = Recorder(), KeyboardInterrupt()
    lifecycle = dispatcher([recorder], warnings)
    lifecycle.emit("run_start", recipe=RECIPE, run_dir=Path("r"))
    lifecycle.emit("run_failed", error=error)
    assert recorder.calls[1] == ("run_failed", error)
    assert recorder.calls[1][1] is error


def test_a_failure_before_the_run_started_is_not_an_event(warnings):
    recorder = Recorder()
    dispatcher([recorder], warnings).emit("run_failed", error=ValueError("bad recipe"))
    assert recorder.calls == []


def test_loggers_are_called_in_the_order_given(warnings):
    order: list[str] = []

    class Named(Logger):
        name = "named"

        def __init__(self, label: str) -> None:
            self.label = label

        def epoch_end(self, record):
            order.append(self.label)

    dispatcher([Named("b"), Named("a"), Named("c")], warnings).emit("epoch_end", record=RECORD)
    assert order == ["b", "a", "c"]


def test_a_logger_changing_its_record_does_not_change_the_trainers(warnings):
    class Meddler(Logger):
        name = "meddler"

        def epoch_end(self, record):
            record["loss"] = -1
            record["valid"]["bleu"] = 0

        def run_start(self, recipe, run_dir):
            recipe["train"]["epochs"] = 99

    record, recipe = {**RECORD, "valid": {"bleu": 10.0}}, {"train": {"epochs": 2}}
    lifecycle = dispatcher([Meddler()], warnings)
    lifecycle.emit("run_start", recipe=recipe, run_dir=Path("r"))
    lifecycle.emit("epoch_end", record=record)
    assert record == {**RECORD, "valid": {"bleu": 10.0}}
    assert recipe == {"train": {"epochs": 2}}


def test_a_logger_may_name_its_parameters_differently(warnings):
    seen = []

    class Renamed(Logger):
        name = "renamed"

        def checkpoint_saved(self, where, which):
            seen.append((where, which))

    dispatcher([Renamed()], warnings).emit("checkpoint_saved", path=Path("c.pt"), kind="last")
    assert seen == [(Path("c.pt"), "last")]


# --- nobody listening costs nothing ----------------------------------------------------------------


def test_with_no_logger_and_no_hook_implementation_no_event_has_a_listener(warnings):
    lifecycle = dispatcher([], warnings, discover())
    assert {event: lifecycle.listeners(event) for event in EVENTS} == {event: [] for event in EVENTS}


def test_only_the_methods_a_logger_overrides_are_listened_to(warnings):
    lifecycle = dispatcher([EpochsOnly()], warnings)
    assert [event for event in EVENTS if lifecycle.listeners(event)] == ["epoch_end"]


def test_an_event_nobody_listens_to_does_no_work(warnings, monkeypatch):
    def no_copies(value):
        raise AssertionError("the payload was copied although nobody listens")

    monkeypatch.setattr(lifecycle_module.copy, "deepcopy", no_copies)
    logger = EpochsOnly()
    lifecycle = dispatcher([logger], warnings)
    lifecycle.emit("run_start", recipe=RECIPE, run_dir=Path("r"))  # would deep-copy the recipe if anyone listened
    lifecycle.emit("validation_end", epoch=1, metrics={"bleu": 1.0})
    lifecycle.emit("run_end", report=REPORT)
    assert logger.epochs == []
    with pytest.raises(AssertionError, match="copied"):
        lifecycle.emit("epoch_end", record=RECORD)  # the one listened-to event does copy: the check above is real


# --- failures ----------------------------------------------------------------------------------------


def flaky_registry() -> Registry:
    """A registry where `flaky` is provided by the distribution flaky-dist 3.1."""
    plugin = types.SimpleNamespace(transduce_components=hookimpl(lambda: [Flaky]))
    return discover(extra=[(plugin, Provider("flaky-dist", "3.1", "flaky"))])


def test_a_failing_logger_is_disabled_with_one_warning_naming_it_and_its_distribution(warnings):
    flaky, recorder = Flaky(), Recorder()
    lifecycle = dispatcher([flaky, recorder], warnings, flaky_registry())
    lifecycle.emit("run_start", recipe=RECIPE, run_dir=Path("r"))
    lifecycle.emit("epoch_end", record=RECORD)
    lifecycle.emit("epoch_end", record={**RECORD, "epoch": 2})
    lifecycle.emit("run_end", report=REPORT)
    assert flaky.calls == ["run_start"]  # disabled for every event after its failure
    assert [call[0] for call in recorder.calls] == ["run_start", "epoch_end", "epoch_end", "run_end"]
    assert len(warnings) == 1
    assert warnings[0].startswith("logger 'flaky' from flaky-dist 3.1 (entry point 'flaky') failed in epoch_end")
    assert "OSError: disk full" in warnings[0]
    assert "disabled for the rest of this run" in warnings[0]
    assert lifecycle.failures == warnings
    assert "logger 'flaky'" not in " ".join(lifecycle.listeners("run_end"))


def test_the_default_warning_goes_to_stderr(capsys):
    lifecycle = Lifecycle(Registry(), [Flaky()])
    lifecycle.emit("epoch_end", record=RECORD)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "warning:" in captured.err and "disk full" in captured.err


def test_an_interruption_inside_a_logger_is_not_swallowed(warnings):
    class Interrupted(Logger):
        name = "interrupted"

        def epoch_end(self, record):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dispatcher([Interrupted()], warnings).emit("epoch_end", record=RECORD)


# --- plugins' lifecycle hooks -------------------------------------------------------------------------


@pytest.fixture
def observer_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """tests/support/observer_plugin.py installed as the distribution `observer-support` 0.1; yields the module."""
    info = tmp_path / "site" / "observer_support-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: observer-support\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[transduce]\nobserver = observer_plugin\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(SUPPORT))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    sys.modules.pop("observer_plugin", None)
    module = importlib.import_module("observer_plugin")
    module.RECEIVED.clear()
    module.FAIL_IN.clear()
    yield module
    sys.modules.pop("observer_plugin", None)


def test_an_installed_plugins_hooks_receive_every_event_in_order(observer_plugin, warnings):
    registry = discover()
    assert registry.broken == []
    run_events(dispatcher([], warnings, registry), Path("/runs/x"))
    assert observer_plugin.RECEIVED == [
        ("run_start", {"recipe": RECIPE, "run_dir": Path("/runs/x")}),
        ("validation_end", {"epoch": 1, "metrics": {"exact_match": 50.0}}),
        ("checkpoint_saved", {"kind": "best"}),
        ("checkpoint_saved", {"kind": "last"}),
        ("epoch_end", {"record": {**RECORD, "valid": {"exact_match": 50.0}, "best": True}}),
        ("evaluation_end", {"report": REPORT}),
        ("run_end", {"report": REPORT}),
    ]
    assert warnings == []


def test_hooks_are_listed_with_their_distribution_after_the_loggers(observer_plugin, warnings):
    lifecycle = dispatcher([EpochsOnly()], warnings, discover())
    assert lifecycle.listeners("epoch_end") == [
        "logger 'epochs-only' (test_lifecycle.EpochsOnly)",
        "hook transduce_epoch_end of plugin observer-support 0.1 (entry point 'observer')",
    ]


def test_a_failing_hook_disables_that_plugin_with_a_warning_and_others_go_on(observer_plugin, warnings):
    observer_plugin.FAIL_IN.add("validation_end")
    recorder = Recorder()
    run_events(dispatcher([recorder], warnings, discover()))
    assert [hook for hook, _ in observer_plugin.RECEIVED] == ["run_start"]
    assert len(recorder.calls) == 7
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "hook transduce_validation_end of plugin observer-support 0.1 (entry point 'observer') failed in "
        "validation_end: RuntimeError: observer broke in validation_end"
    )


def test_a_wrapper_hook_is_ignored_with_a_warning(warnings):
    def wrapper(record):
        yield

    plugin = types.SimpleNamespace(transduce_epoch_end=hookimpl(wrapper=True)(wrapper))
    lifecycle = dispatcher([], warnings, discover(extra=[(plugin, Provider("wrap-dist", "1", "wrap"))]))
    assert lifecycle.listeners("epoch_end") == []
    assert len(warnings) == 1 and "wrap-dist 1" in warnings[0] and "not wrappers" in warnings[0]


# --- events come from the specs ------------------------------------------------------------------------


def test_emit_refuses_argument_names_the_spec_does_not_have(warnings):
    lifecycle = dispatcher([], warnings)  # nobody listens: the names are checked all the same
    with pytest.raises(TypeError, match=r"event 'epoch_end' takes record \(see transduce_epoch_end in .*\), got recrd"):
        lifecycle.emit("epoch_end", recrd=RECORD)
    with pytest.raises(TypeError, match="takes path, kind .* got path$"):
        lifecycle.emit("checkpoint_saved", path=Path("c.pt"))


def test_emit_refuses_an_event_the_specs_do_not_declare(warnings):
    with pytest.raises(TypeError, match=r"no lifecycle event 'epoch_ended' .*\(events: run_start, .*epoch_end"):
        dispatcher([], warnings).emit("epoch_ended", record=RECORD)


def test_the_base_loggers_methods_are_made_from_the_specs():
    for event in hookspecs.events().values():
        method = getattr(Logger, event.name)
        assert list(inspect.signature(method).parameters) == ["self", *inspect.signature(event.spec).parameters]
        assert method.__doc__ == event.spec.__doc__
        assert method(Logger(), *event.arguments) is None


def test_a_logger_may_call_the_base_method_it_overrides(warnings):
    class Polite(Logger):
        name = "polite"

        def epoch_end(self, record):
            super().epoch_end(record)
            self.epoch = record["epoch"]

    logger = Polite()
    dispatcher([logger], warnings).emit("epoch_end", record=RECORD)
    assert logger.epoch == 1 and warnings == []


def test_a_new_event_needs_only_its_spec(monkeypatch, warnings):
    """Declared in hookspecs alone, an event reaches the loggers' method of its name and the plugins' hook."""

    def transduce_batch_end(step: int, loss: float) -> None:
        """A batch ended."""

    monkeypatch.setattr(hookspecs, "transduce_batch_end", hookspecs.event(transduce_batch_end), raising=False)

    class Batches(Logger):
        name = "batches"

        def __init__(self) -> None:
            self.seen: list[tuple[int, float]] = []

        def batch_end(self, number, value):
            self.seen.append((number, value))

    heard: list[float] = []
    plugin = types.SimpleNamespace(transduce_batch_end=hookimpl(lambda loss: heard.append(loss)))
    logger = Batches()
    lifecycle = dispatcher(
        [EpochsOnly(), logger], warnings, discover(extra=[(plugin, Provider("batch-dist", "1", "b"))])
    )
    lifecycle.emit("batch_end", step=7, loss=0.5)
    assert logger.seen == [(7, 0.5)] and heard == [0.5]
    assert len(lifecycle.listeners("batch_end")) == 2  # not EpochsOnly, which has no such method
    assert warnings == []


def test_loggers_come_before_a_plugin_hook_marked_tryfirst(warnings):
    order: list[str] = []

    class Ordered(Logger):
        name = "ordered"

        def epoch_end(self, record):
            order.append("logger")

    plugin = types.SimpleNamespace(transduce_epoch_end=hookimpl(tryfirst=True)(lambda: order.append("plugin")))
    registry = discover(extra=[(plugin, Provider("eager-dist", "1", "eager"))])
    dispatcher([Ordered()], warnings, registry).emit("epoch_end", record=RECORD)
    assert order == ["logger", "plugin"]


def test_a_plugin_disabled_in_one_run_observes_the_next_and_the_registry_is_untouched(observer_plugin, warnings):
    registry = discover()
    plugins = registry.plugins.list_name_plugin()
    observer_plugin.FAIL_IN.add("epoch_end")
    first = dispatcher([EpochsOnly()], warnings, registry)
    first.emit("epoch_end", record=RECORD)
    assert len(warnings) == 1 and first.listeners("run_end") == []
    observer_plugin.FAIL_IN.clear()
    dispatcher([], warnings, registry).emit("run_end", report=REPORT)
    assert observer_plugin.RECEIVED == [("run_end", {"report": REPORT})]
    assert registry.plugins.list_name_plugin() == plugins  # loggers were registered with each run's own manager


# --- from a recipe -------------------------------------------------------------------------------------


def test_for_recipe_constructs_the_recipes_loggers(warnings):
    registry = discover()
    recipe = parse_recipe("data: dates\nloggers: [jsonl, console]\n", registry)
    lifecycle = Lifecycle.for_recipe(registry, recipe, warn=warnings.append)
    assert lifecycle.listeners("epoch_end") == [
        f"logger 'jsonl' from {registry.get('logger', 'jsonl').provider}",
        f"logger 'console' from {registry.get('logger', 'console').provider}",
    ]
    assert lifecycle.listeners("checkpoint_saved") == [
        f"logger 'jsonl' from {registry.get('logger', 'jsonl').provider}"
    ]


# --- through a real training run -----------------------------------------------------------------


@pytest.mark.hook(
    "transduce_run_start",
    "transduce_validation_end",
    "transduce_checkpoint_saved",
    "transduce_epoch_end",
    "transduce_evaluation_end",
    "transduce_run_end",
)
def test_a_training_run_tells_its_loggers_and_plugins_every_event_in_order(
    observer_plugin, make_recipe, train_run, tmp_path: Path, capsys
) -> None:
    recipe = make_recipe(train={"epochs": 2}, loggers=["console", "jsonl"])
    run = train_run(recipe, tmp_path / "run")
    events = [json.loads(line) for line in (run / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    names = [event["event"] for event in events]
    epoch = ["validation_end", "checkpoint_saved", "checkpoint_saved", "epoch_end"]
    assert names[0] == "run_start" and names[-2:] == ["evaluation_end", "run_end"]
    assert [n for n in names[1:-2] if n != "checkpoint_saved"] == ["validation_end", "epoch_end"] * 2
    assert names.count("checkpoint_saved") in (3, 4)  # 'last' each epoch, 'best' when it improved
    assert names[1:5] == epoch  # the first validation is always a new best
    hooks = [name for name, _ in observer_plugin.RECEIVED]
    assert hooks == names
    ends = [arguments["record"] for name, arguments in observer_plugin.RECEIVED if name == "epoch_end"]
    assert [record["epoch"] for record in ends] == [1, 2]
    assert all("loss" in record and "valid" in record for record in ends)
    out = capsys.readouterr().out
    assert "epoch 1/2" in out and "epoch 2/2" in out


@pytest.mark.hook("transduce_run_start", "transduce_run_failed")
def test_a_failed_run_is_told_to_observers(observer_plugin, make_recipe, tmp_path: Path) -> None:
    # Every training pair is too long: the run fails after run_start, before its first checkpoint.
    recipe = make_recipe(target={"max_length": 1}, loggers=["jsonl"])
    assert cli.main(["train", str(recipe), "--run-dir", str(tmp_path / "run")]) == 2
    assert not (tmp_path / "run").exists()  # events.jsonl included: the same command can run again
    names = [name for name, _ in observer_plugin.RECEIVED]
    assert names == ["run_start", "run_failed"]
    assert "training split is empty" in str(observer_plugin.RECEIVED[-1][1]["error"])
