"""Decoding: translating with a trained run, and chatting with it."""
