"""The package's version, in a module of its own so that every stage can name it without importing the
package's public face (transduce/__init__.py re-exports it)."""

__version__ = "0.1.0"
