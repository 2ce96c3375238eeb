"""Use of a trained run from Python: the Model object behind `transduce.load`."""
