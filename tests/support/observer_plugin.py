"""A test-support plugin that observes runs through the lifecycle hooks (no components).

Installed for a test through a temporary `.dist-info` (see the `observer_plugin`
fixture in tests/test_lifecycle.py). Every call is appended to `RECEIVED` as
(hook name, arguments); a hook whose name is in `FAIL_IN` raises instead.
"""

from __future__ import annotations

from typing import Any

from transduce.api import hookimpl

RECEIVED: list[tuple[str, dict[str, Any]]] = []
FAIL_IN: set[str] = set()


def _receive(hook: str, **arguments: Any) -> None:
    if hook in FAIL_IN:
        raise RuntimeError(f"observer broke in {hook}")
    RECEIVED.append((hook, arguments))


@hookimpl
def transduce_run_start(recipe, run_dir):
    _receive("run_start", recipe=recipe, run_dir=run_dir)


@hookimpl
def transduce_epoch_end(record):
    _receive("epoch_end", record=record)


@hookimpl
def transduce_validation_end(epoch, metrics):
    _receive("validation_end", epoch=epoch, metrics=metrics)


@hookimpl
def transduce_checkpoint_saved(kind):  # a hook implementation may take a subset of the arguments
    _receive("checkpoint_saved", kind=kind)


@hookimpl
def transduce_evaluation_end(report):
    _receive("evaluation_end", report=report)


@hookimpl
def transduce_run_end(report):
    _receive("run_end", report=report)


@hookimpl
def transduce_run_failed(error):
    _receive("run_failed", error=error)
