"""Tests of the built-in attention scorers, alone and through the masking of the `lstm` decoder network's
`attend`."""

from __future__ import annotations

import pytest
import torch
from transduce_builtins.attention import AdditiveScorer, DotScorer, GeneralScorer
from transduce_builtins.decoder_networks import LSTMDecoder

from transduce.api import AttentionScorer, Memory

SIZE = 6
SCORERS = {"dot": DotScorer, "general": GeneralScorer, "additive": AdditiveScorer}


def scorer(name: str, query_size: int = SIZE, key_size: int = SIZE) -> AttentionScorer:
    torch.manual_seed(0)
    return SCORERS[name](query_size=query_size, key_size=key_size)


def model_with(scorer_: AttentionScorer) -> LSTMDecoder:
    """An lstm decoder network attending with `scorer_`."""
    torch.manual_seed(0)
    decoder = LSTMDecoder(
        embedding_dim=4,
        vocab_size=9,
        memory_size=SIZE,
        pad_index=0,
        attention=lambda query_size, key_size: scorer_,
        hidden_size=SIZE,
    )
    return decoder.eval()


def memory_for(model: LSTMDecoder, lengths: list[int]) -> Memory:
    """A Memory with random states; padding positions hold large junk values that must get no weight."""
    generator = torch.Generator().manual_seed(2)
    states = torch.randn(len(lengths), max(lengths), SIZE, generator=generator)
    mask = torch.arange(max(lengths)).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    states = states.masked_fill(~mask.unsqueeze(-1), 50.0)
    final = (torch.zeros(1, len(lengths), SIZE), torch.zeros(1, len(lengths), SIZE))
    return model.prepare(Memory(states, mask, final, {}))


def queries(batch: int, tgt_len: int) -> torch.Tensor:
    return torch.randn(batch, tgt_len, SIZE, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("tgt_len", [1, 4])
@pytest.mark.parametrize("name", SCORERS)
def test_attention_weights_sum_to_one_and_are_exactly_zero_on_padding(name: str, tgt_len: int) -> None:
    model = model_with(scorer(name))
    lengths = [5, 2, 3]
    memory = memory_for(model, lengths)
    with torch.no_grad():
        attentional, weights = model.attend(queries(3, tgt_len), memory)
    assert weights.shape == (3, tgt_len, 5)
    assert attentional.shape == (3, tgt_len, SIZE)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, tgt_len))
    for row, length in enumerate(lengths):
        assert torch.all(weights[row, :, length:] == 0.0)
        assert torch.all(weights[row, :, :length] > 0.0)


def test_padding_gets_zero_weight_even_when_every_real_score_is_very_negative() -> None:
    model = model_with(scorer("dot"))
    states = torch.zeros(1, 4, SIZE)
    states[0, :2] = 10.0  # real positions; the two padding positions score 0
    mask = torch.tensor([[True, True, False, False]])
    memory = model.prepare(Memory(states, mask, (torch.zeros(1, 1, SIZE), torch.zeros(1, 1, SIZE)), {}))
    with torch.no_grad():
        _, weights = model.attend(torch.full((1, 1, SIZE), -1000.0), memory)  # real scores: -60000
    assert weights[0, 0].tolist() == [0.5, 0.5, 0.0, 0.0]


@pytest.mark.parametrize("name", SCORERS)
def test_attention_output_ignores_the_values_of_padding_states(name: str) -> None:
    model = model_with(scorer(name))
    memory = memory_for(model, [4, 2])
    states = memory.states.clone()
    states[1, 2:] = -7.0
    changed = model.prepare(Memory(states, memory.mask, memory.final, {}))
    query = queries(2, 3)
    with torch.no_grad():
        before, _ = model.attend(query, memory)
        after, _ = model.attend(query, changed)
    torch.testing.assert_close(after, before, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", SCORERS)
def test_scorer_gives_one_score_per_target_and_source_position(name: str) -> None:
    s = scorer(name)
    keys = torch.randn(2, 5, SIZE, generator=torch.Generator().manual_seed(4))
    for tgt_len in (1, 3):
        assert s.score(queries(2, tgt_len), s.prepare(keys)).shape == (2, tgt_len, 5)


@pytest.mark.parametrize("name", SCORERS)
def test_scoring_all_positions_at_once_equals_scoring_each_position_alone(name: str) -> None:
    # Training scores all decoder positions at once, decoding one at a time: both must agree.
    s = scorer(name)
    keys = torch.randn(2, 5, SIZE, generator=torch.Generator().manual_seed(4))
    query = queries(2, 4)
    with torch.no_grad():
        prepared = s.prepare(keys)
        together = s.score(query, prepared)
        alone = torch.cat([s.score(query[:, t : t + 1], prepared) for t in range(4)], dim=1)
    torch.testing.assert_close(together, alone, atol=1e-6, rtol=0)


def test_dot_scorer_is_the_dot_product_of_query_and_key() -> None:
    s = scorer("dot")
    keys = torch.randn(1, 3, SIZE, generator=torch.Generator().manual_seed(4))
    query = queries(1, 2)
    expected = torch.einsum("bth,bsh->bts", query, keys)
    torch.testing.assert_close(s.score(query, s.prepare(keys)), expected)


def test_dot_scorer_with_different_sizes_raises_a_helpful_value_error() -> None:
    with pytest.raises(ValueError) as excinfo:
        DotScorer(query_size=8, key_size=6)
    message = str(excinfo.value)
    assert "8" in message and "6" in message
    assert "general" in message


def test_general_scorer_scores_against_the_projected_keys() -> None:
    general = scorer("general")
    keys = torch.randn(2, 5, SIZE, generator=torch.Generator().manual_seed(4))
    query = queries(2, 3)
    with torch.no_grad():
        got = general.score(query, general.prepare(keys))
        dot = DotScorer(SIZE, SIZE).score(query, keys)
        expected = torch.einsum("bth,bsk,hk->bts", query, keys, general.project.weight)
    assert not torch.allclose(got, dot, atol=1e-3)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_general_scorer_with_identity_projection_equals_dot() -> None:
    general = scorer("general")
    with torch.no_grad():
        general.project.weight.copy_(torch.eye(SIZE))
    keys = torch.randn(2, 5, SIZE, generator=torch.Generator().manual_seed(4))
    query = queries(2, 3)
    torch.testing.assert_close(general.score(query, general.prepare(keys)), DotScorer(SIZE, SIZE).score(query, keys))


def test_general_scorer_accepts_different_query_and_key_sizes() -> None:
    general = scorer("general", query_size=4, key_size=SIZE)
    keys = torch.randn(2, 5, SIZE)
    assert general.score(torch.randn(2, 3, 4), general.prepare(keys)).shape == (2, 3, 5)


def test_additive_scorer_hidden_size_defaults_to_the_key_size() -> None:
    s = AdditiveScorer(query_size=4, key_size=SIZE)
    assert s.keys.weight.shape == (SIZE, SIZE)
    assert s.query.weight.shape == (SIZE, 4)
    assert s.v.weight.shape == (1, SIZE)


def test_additive_scorer_hidden_size_sets_the_hidden_layer_size() -> None:
    s = AdditiveScorer(query_size=4, key_size=SIZE, hidden_size=11)
    assert s.keys.weight.shape == (11, SIZE)
    assert s.query.weight.shape == (11, 4)
    assert s.v.weight.shape == (1, 11)
    keys = torch.randn(2, 5, SIZE)
    assert s.score(torch.randn(2, 3, 4), s.prepare(keys)).shape == (2, 3, 5)


def test_additive_scorer_computes_v_tanh_of_projected_key_plus_projected_query() -> None:
    s = scorer("additive")
    keys = torch.randn(1, 3, SIZE, generator=torch.Generator().manual_seed(4))
    query = queries(1, 2)
    with torch.no_grad():
        got = s.score(query, s.prepare(keys))
        expected = torch.empty(1, 2, 3)
        for t in range(2):
            for j in range(3):
                hidden = torch.tanh(s.keys.weight @ keys[0, j] + s.query.weight @ query[0, t] + s.query.bias)
                expected[0, t, j] = s.v.weight[0] @ hidden
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
