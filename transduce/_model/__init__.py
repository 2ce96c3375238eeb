"""The model: the encoder-decoder and its assembly from a resolved recipe."""
