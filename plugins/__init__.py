"""Built-in plugins of transduce, installed as the package `transduce_builtins`."""
