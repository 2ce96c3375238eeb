"""Each component passes transduce's conformance kit, with its defaults and with other settings.

Run with `pytest` after `pip install -e ".[test]"`.
"""

from __future__ import annotations

import pytest
import torch
from transduce.testing import assert_conforms, assert_discovered

from transduce_example import GRUEncoder, ScaledDotScorer, TranslationEditRate


def test_gru_encoder_conforms():
    assert_conforms(GRUEncoder, hidden_size=8)
    assert_conforms(GRUEncoder, hidden_size=6, layers=2, bidirectional=False, dropout=0.2)


def test_gru_encoder_passes_a_zero_cell_state():
    encoder = GRUEncoder(input_size=4, hidden_size=8, layers=2)
    _, (h, c) = encoder(torch.randn(3, 5, 4), torch.tensor([5, 2, 4]))
    assert h.shape == c.shape == (2, 3, 8)
    assert not c.any()


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


def test_every_component_is_found_through_the_entry_point():
    """Needs the package installed (pip install -e .), as transduce finds it."""
    assert assert_discovered("encoder", "gru") is GRUEncoder
    assert assert_discovered("attention", "scaled_dot") is ScaledDotScorer
    assert assert_discovered("metric", "ter") is TranslationEditRate
