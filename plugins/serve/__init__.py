"""`transduce serve RUN [RUN ...]`: trained runs behind an HTTP JSON API and a web page (docs/serving.md).

A built-in plugin command: it reaches the command line through the `transduce_commands` hook, as a third
party's would.
"""

from transduce_builtins.serve.command import Serve

from transduce.api import Command, hookimpl


@hookimpl
def transduce_commands() -> list[type[Command]]:
    return [Serve]
