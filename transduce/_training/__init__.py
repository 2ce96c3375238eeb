"""Training: the trainer, its lifecycle events, interruption and distribution."""
