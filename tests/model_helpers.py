"""Building small models in tests: Seq2Seq with the built-in `lstm` decoder network, constructed directly
(imported by test modules; pytest puts tests/ on sys.path)."""

from __future__ import annotations

from typing import Any

from transduce_builtins.attention import AdditiveScorer, DotScorer, GeneralScorer
from transduce_builtins.decoder_networks import LSTMDecoder

from transduce._model.model import Seq2Seq
from transduce.api import AttentionScorer, Encoder

SCORERS: dict[str, type[AttentionScorer]] = {"dot": DotScorer, "general": GeneralScorer, "additive": AdditiveScorer}


def attention(name: str | None):  # type: ignore[no-untyped-def]
    """The builder the core passes for `attention: NAME` (None for `none`)."""
    if name is None:
        return None
    return lambda query_size, key_size: SCORERS[name](query_size=query_size, key_size=key_size)


def lstm_decoder(
    embedding_dim: int, vocab_size: int, memory_size: int, *, scorer: str | None = "general", **options: Any
) -> LSTMDecoder:
    """The `lstm` decoder network as the core builds it; `options` are its recipe parameters (dropout 0)."""
    options.setdefault("dropout", 0.0)
    return LSTMDecoder(
        embedding_dim=embedding_dim,
        vocab_size=vocab_size,
        memory_size=memory_size,
        pad_index=0,
        attention=attention(scorer),
        **options,
    )


def seq2seq(
    encoder: Encoder,
    *,
    source_vocab_size: int,
    target_vocab_size: int,
    embedding_dim: int,
    dropout: float = 0.0,
    scorer: str | None = "general",
    **options: Any,
) -> Seq2Seq:
    """Seq2Seq over `encoder` with an `lstm` decoder network (`options`: its parameters; dropout 0)."""
    options.setdefault("dropout", dropout)
    decoder = lstm_decoder(embedding_dim, target_vocab_size, encoder.output_size, scorer=scorer, **options)
    return Seq2Seq(
        source_vocab_size=source_vocab_size,
        encoder=encoder,
        decoder=decoder,
        embedding_dim=embedding_dim,
        dropout=dropout,
    )
