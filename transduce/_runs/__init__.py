"""Run directories: their files, provenance and checkpoints."""
