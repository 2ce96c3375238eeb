"""transduce: a plugin-based sequence transduction toolkit on PyTorch."""

from transduce._version import __version__

__all__ = ["__version__"]
