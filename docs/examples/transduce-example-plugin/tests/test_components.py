"""Each component passes transduce's conformance kit, with its defaults and with other settings.

Run with `pytest` after `pip install -e ".[test]"`.
"""

from __future__ import annotations

import pytest
import torch
from transduce.api import Memory
from transduce.testing import assert_conforms, assert_discovered

from transduce_example import BahdanauDecoder, GRUEncoder, ScaledDotScorer, TranslationEditRate


def test_gru_encoder_conforms():
    assert_conforms(GRUEncoder, hidden_size=8)
    assert_conforms(GRUEncoder, hidden_size=6, layers=2, bidirectional=False, dropout=0.2)


def test_gru_encoder_gives_h_alone_as_its_final_state():
    encoder = GRUEncoder(input_size=4, hidden_size=8, layers=2)
    _, final = encoder(torch.randn(3, 5, 4), torch.tensor([5, 2, 4]))
    assert isinstance(final, torch.Tensor) and final.shape == (2, 3, 8)


def test_gru_encoder_rejects_an_odd_bidirectional_size():
    with pytest.raises(ValueError, match="must be even"):
        GRUEncoder(input_size=4, hidden_size=7)


def test_scaled_dot_conforms():
    assert_conforms(ScaledDotScorer)
    assert_conforms(ScaledDotScorer, temperature=2.0, projection=True)


def test_scaled_dot_projects_keys_only_when_sizes_differ():
    assert ScaledDotScorer(query_size=8, key_size=8).to_query is None
    assert ScaledDotScorer(query_size=8, key_size=6).to_query.weight.shape == (8, 6)


def test_scaled_dot_rejects_a_temperature_of_zero():
    with pytest.raises(ValueError, match="temperature must be positive"):
        ScaledDotScorer(query_size=8, key_size=8, temperature=0.0)


def test_ter_conforms():
    assert_conforms(TranslationEditRate)
    assert_conforms(TranslationEditRate, case_sensitive=True, normalized=True)


def test_ter_is_lower_for_better_hypotheses_and_capped_at_100():
    ter = TranslationEditRate()
    assert ter.compute(["a b c"], ["a b c"]).value == 0.0
    assert ter.compute(["a b"], ["a b c"]).value == pytest.approx(100 / 3)
    long = ter.compute(["x y z w v"], ["a"])
    assert long.value == 100.0 and long.extra["ter"] == 500.0


def test_bahdanau_conforms():
    """Step by step equals teacher forcing, batch and padding independence, reorder_state (the kit's checks)."""
    assert_conforms(BahdanauDecoder, hidden_size=8, attention_size=4)
    assert_conforms(BahdanauDecoder, hidden_size=5, attention_size=3, dropout=0.3)


def test_bahdanau_queries_attention_with_the_previous_state():
    """The first step's attention depends on the start state alone, not on the first token."""
    decoder = BahdanauDecoder(
        embedding_dim=4, vocab_size=9, memory_size=6, pad_index=0, hidden_size=8, attention_size=4, dropout=0.0
    )
    memory = decoder.prepare(Memory(torch.randn(2, 5, 6), torch.ones(2, 5, dtype=torch.bool)))
    state = decoder.start(memory)
    _, _, first = decoder.step(torch.tensor([4, 5]), state, memory)
    _, _, other = decoder.step(torch.tensor([7, 8]), state, memory)
    assert torch.equal(first, other)


def test_every_component_is_found_through_the_entry_point():
    """Needs the package installed (pip install -e .), as transduce finds it."""
    assert assert_discovered("encoder", "gru") is GRUEncoder
    assert assert_discovered("attention", "scaled_dot") is ScaledDotScorer
    assert assert_discovered("decoder", "bahdanau") is BahdanauDecoder
    assert assert_discovered("metric", "ter") is TranslationEditRate
