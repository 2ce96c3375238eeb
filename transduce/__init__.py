"""transduce: a plugin-based sequence transduction toolkit on PyTorch.

`transduce.load(RUN)` opens a trained run for use from Python (see docs/python-api.md).
"""

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def __getattr__(name: str) -> Any:
    """`transduce.load`, imported on first use: `import transduce` stays light (no torch) until then."""
    if name == "load":
        from transduce.usage import load

        return load
    raise AttributeError(f"module 'transduce' has no attribute {name!r}")
