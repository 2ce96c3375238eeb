"""Hook specifications: everything a plugin can implement.

Plugins are found through the entry-point group `transduce`; each entry point
names a module (or object) whose functions are marked with `hookimpl`.
"""

from __future__ import annotations

import pluggy

from transduce.components import Component

PROJECT = "transduce"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def transduce_components() -> list[type[Component]]:
    """Return the component classes this plugin provides.

    Each class subclasses one family base from `transduce.api` and sets a
    `name` that is unique within its family across all installed plugins.
    """
