"""transduce: a plugin-based sequence transduction toolkit on PyTorch."""

__version__ = "0.1.0"
