"""Data: reading and writing text, corpora summaries, vocabularies, batches."""
