"""Tests of the built-in LSTM encoder: shapes, padding invariance, direction joining, residual layers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from model_helpers import seq2seq
from torch import nn
from transduce_builtins import encoders
from transduce_builtins.encoders import LSTMEncoder

from transduce.api import EncoderOutput

INPUT, HIDDEN = 5, 6


def encoder(**params: object) -> LSTMEncoder:
    torch.manual_seed(0)
    return LSTMEncoder(input_size=INPUT, **{"hidden_size": HIDDEN, **params}).eval()


def inputs(lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Random embeddings (batch, longest, INPUT); padding positions hold large junk values."""
    generator = torch.Generator().manual_seed(1)
    embedded = torch.randn(len(lengths), max(lengths), INPUT, generator=generator)
    for row, length in enumerate(lengths):
        embedded[row, length:] = 1000.0
    return embedded, torch.tensor(lengths)


CONFIGS = {
    "uni": {"bidirectional": False},
    "bi": {"bidirectional": True},
    "stacked": {"bidirectional": True, "layers": 3},
    "stacked-uni": {"bidirectional": False, "layers": 2},
    "residual": {"bidirectional": True, "layers": 3, "residual": True},
    "residual-uni": {"bidirectional": False, "layers": 2, "residual": True},
}


@pytest.mark.parametrize("name", CONFIGS)
def test_encoder_output_shapes_and_declared_sizes(name: str) -> None:
    params = CONFIGS[name]
    enc = encoder(**params)
    embedded, lengths = inputs([4, 2, 3])
    out = enc(embedded, lengths)
    layers = params.get("layers", 1)
    assert isinstance(out, EncoderOutput)
    assert enc.output_size == HIDDEN and enc.layers == layers
    assert out.states.shape == (3, 4, HIDDEN)
    h, c = out.final
    assert h.shape == (layers, 3, HIDDEN)
    assert c.shape == (layers, 3, HIDDEN)


def test_encoder_states_keep_the_source_length_when_every_sequence_is_shorter() -> None:
    # The batch is padded to 6 but the longest sequence has 3 tokens: states must still cover 6 positions.
    enc = encoder(bidirectional=True)
    embedded, _ = inputs([6, 6])
    out = enc(embedded, torch.tensor([3, 2]))
    assert out.states.shape == (2, 6, HIDDEN)


def test_bidirectional_encoder_with_odd_hidden_size_raises_value_error() -> None:
    with pytest.raises(ValueError, match="even"):
        LSTMEncoder(input_size=INPUT, hidden_size=7, bidirectional=True)


def test_unidirectional_encoder_accepts_odd_hidden_size() -> None:
    enc = LSTMEncoder(input_size=INPUT, hidden_size=7, bidirectional=False)
    embedded, lengths = inputs([2])
    assert enc(embedded, lengths).states.shape == (1, 2, 7)


@pytest.mark.parametrize("name", ["uni", "bi", "stacked", "residual", "residual-uni"])
def test_encoder_output_of_a_sequence_does_not_depend_on_padding_next_to_a_longer_one(name: str) -> None:
    enc = encoder(**CONFIGS[name])
    embedded, lengths = inputs([3, 7])
    short = embedded[:1, :3]
    with torch.no_grad():
        alone = enc(short, torch.tensor([3]))
        batched = enc(embedded, lengths)
    torch.testing.assert_close(batched.states[0, :3], alone.states[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(batched.final[0][:, 0], alone.final[0][:, 0], atol=1e-6, rtol=0)
    torch.testing.assert_close(batched.final[1][:, 0], alone.final[1][:, 0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["uni", "bi", "stacked", "residual"])
def test_encoder_padding_positions_of_states_are_zero(name: str) -> None:
    # The documented contract allows anything there, but packing gives zeros: junk input must not leak.
    enc = encoder(**CONFIGS[name])
    embedded, lengths = inputs([2, 5])
    with torch.no_grad():
        states = enc(embedded, lengths).states
    assert torch.equal(states[0, 2:], torch.zeros(3, HIDDEN))


@pytest.mark.parametrize("layers", [1, 2])
def test_bidirectional_final_h_is_forward_at_last_real_token_and_backward_at_first(layers: int) -> None:
    enc = encoder(bidirectional=True, layers=layers)
    lengths_list = [4, 2, 6]
    embedded, lengths = inputs(lengths_list)
    with torch.no_grad():
        out = enc(embedded, lengths)
    half = HIDDEN // 2
    top = out.final[0][-1]
    for row, length in enumerate(lengths_list):
        forward_last = out.states[row, length - 1, :half]
        backward_first = out.states[row, 0, half:]
        torch.testing.assert_close(top[row], torch.cat([forward_last, backward_first]), atol=1e-6, rtol=0)


def test_unidirectional_final_h_is_the_state_at_the_last_real_token() -> None:
    enc = encoder(bidirectional=False)
    lengths_list = [3, 5]
    embedded, lengths = inputs(lengths_list)
    with torch.no_grad():
        out = enc(embedded, lengths)
    for row, length in enumerate(lengths_list):
        torch.testing.assert_close(out.final[0][0, row], out.states[row, length - 1], atol=1e-6, rtol=0)


def test_residual_encoder_has_one_lstm_per_layer_with_the_right_input_sizes() -> None:
    enc = encoder(bidirectional=True, layers=3, residual=True)
    assert isinstance(enc.rnns, nn.ModuleList) and len(enc.rnns) == 3
    assert [rnn.input_size for rnn in enc.rnns] == [INPUT, HIDDEN, HIDDEN]
    assert all(rnn.hidden_size == HIDDEN // 2 and rnn.bidirectional and rnn.num_layers == 1 for rnn in enc.rnns)
    assert not hasattr(enc, "rnn")


def test_residual_with_one_layer_is_a_plain_lstm() -> None:
    enc = encoder(bidirectional=True, layers=1, residual=True)
    assert not enc.residual
    assert isinstance(enc.rnn, nn.LSTM)


def _copy_residual_into_stacked(residual: LSTMEncoder, stacked: LSTMEncoder) -> None:
    """Give `stacked` (one multi-layer nn.LSTM) the weights of `residual` (one nn.LSTM per layer)."""
    with torch.no_grad():
        for layer, rnn in enumerate(residual.rnns):
            for name, value in rnn.named_parameters():  # e.g. weight_ih_l0, weight_hh_l0_reverse
                getattr(stacked.rnn, name.replace("_l0", f"_l{layer}")).copy_(value)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_residual_encoder_adds_each_layer_input_to_its_output(bidirectional: bool) -> None:
    residual = encoder(bidirectional=bidirectional, layers=2, residual=True)
    stacked = encoder(bidirectional=bidirectional, layers=2, residual=False)
    _copy_residual_into_stacked(residual, stacked)
    one_layer = encoder(bidirectional=bidirectional, layers=1)
    with torch.no_grad():
        for name, value in residual.rnns[0].named_parameters():
            getattr(one_layer.rnn, name).copy_(value)
    lengths_list = [5, 3]
    embedded, lengths = inputs(lengths_list)
    with torch.no_grad():
        res, plain, first = residual(embedded, lengths), stacked(embedded, lengths), one_layer(embedded, lengths)
    for row, length in enumerate(lengths_list):
        # top output = second LSTM's output + its input (the first layer's output)
        expected = plain.states[row, :length] + first.states[row, :length]
        torch.testing.assert_close(res.states[row, :length], expected, atol=1e-6, rtol=0)
    # The final states are the LSTMs' own, with no residual added.
    torch.testing.assert_close(res.final[0], plain.final[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(res.final[1], plain.final[1], atol=1e-6, rtol=0)


def test_residual_encoder_with_a_zeroed_top_lstm_passes_the_lower_output_through() -> None:
    # An LSTM with all-zero weights and biases outputs exactly 0 (o * tanh(c) with c = 0.5*0 + 0.5*tanh(0)).
    residual = encoder(bidirectional=True, layers=2, residual=True)
    with torch.no_grad():
        for value in residual.rnns[1].parameters():
            value.zero_()
    embedded, lengths = inputs([4, 4])
    with torch.no_grad():
        out = residual(embedded, lengths)
        lower, _ = residual.rnns[0](embedded)
    torch.testing.assert_close(out.states, lower, atol=1e-6, rtol=0)
    assert torch.equal(out.final[0][1], torch.zeros(2, HIDDEN))


# --- one LSTM call per distinct length (fast path) vs packing ----------------------------------------


def _outputs_and_gradients(enc: LSTMEncoder, lengths_list: list[int]) -> list[torch.Tensor]:
    embedded, lengths = inputs(lengths_list)
    embedded.requires_grad_(True)
    out = enc(embedded, lengths)
    mask = (torch.arange(max(lengths_list)) < lengths.unsqueeze(1)).unsqueeze(-1)
    # A loss that weighs every position and final state differently, so a mix-up of rows shows.
    weights = torch.linspace(0.5, 1.5, out.states.numel()).view_as(out.states)
    (out.states * weights).sum().backward(retain_graph=True)
    (out.final[0] * 3 + out.final[1] * 2).sum().backward()
    grads = [embedded.grad * mask] + [p.grad for p in enc.parameters()]
    return [out.states, *out.final, *grads]


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])  # (the configs have no dropout)
@pytest.mark.parametrize("name", ["uni", "bi", "stacked", "residual", "residual-uni"])
@pytest.mark.parametrize("lengths_list", [[3, 7, 3, 5, 7, 1], [4, 4, 4], [2, 6]])
def test_grouping_rows_by_length_gives_the_packed_results_and_gradients(
    name: str, lengths_list: list[int], training: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import transduce_builtins.encoders as module

    grouped = _outputs_and_gradients(encoder(**CONFIGS[name]).train(training), lengths_list)
    monkeypatch.setattr(module, "MAX_LENGTH_GROUPS", 0)  # every batch packed
    packed = _outputs_and_gradients(encoder(**CONFIGS[name]).train(training), lengths_list)
    for ours, reference in zip(grouped, packed, strict=True):
        torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


def test_length_groups_list_each_row_once_under_its_length() -> None:
    from transduce_builtins.encoders import length_groups

    groups = length_groups(torch.tensor([3, 1, 3, 2]))
    assert [(length, rows.tolist()) for length, rows in groups] == [(1, [1]), (2, [3]), (3, [0, 2])]


def test_a_batch_with_more_lengths_than_the_group_limit_is_packed(monkeypatch: pytest.MonkeyPatch) -> None:
    import transduce_builtins.encoders as module

    enc = encoder(bidirectional=True)
    calls: list[bool] = []
    original = enc._forward_packed
    monkeypatch.setattr(enc, "_forward_packed", lambda *args: calls.append(True) or original(*args))
    monkeypatch.setattr(module, "MAX_LENGTH_GROUPS", 2)
    enc(*inputs([3, 2, 3]))
    assert calls == []
    enc(*inputs([3, 2, 1]))
    assert calls == [True]


@pytest.mark.parametrize(
    ("lengths_list", "dtype", "packed"),
    [([3, 2, 3], torch.float32, True), ([3, 3, 3], torch.float32, False), ([3, 2, 3], torch.bfloat16, False)],
    ids=["fp32-mixed", "fp32-one-length", "bf16-mixed"],
)
def test_decoding_packs_mixed_lengths_in_float32_only(
    lengths_list: list[int], dtype: torch.dtype, packed: bool
) -> None:
    # Decoding meets new shapes in nearly every batch: in float32 the packed path compiles no oneDNN kernels.
    enc = encoder(bidirectional=True).eval().to(dtype)
    calls: list[bool] = []
    original = enc._forward_packed
    enc._forward_packed = lambda *args: calls.append(True) or original(*args)  # type: ignore[method-assign]
    embedded, lengths = inputs(lengths_list)
    embedded = embedded.to(dtype)
    with torch.inference_mode():
        decoding = enc(embedded, lengths)
    with torch.no_grad():
        enc(embedded, lengths)
    assert calls == ([True, True] if packed else [])
    training = enc(embedded, lengths)  # with gradients: one oneDNN call per length, whatever the dtype
    assert len(calls) == (2 if packed else 0)
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    for ours, reference in zip([decoding.states, *decoding.final], [training.states, *training.final], strict=True):
        torch.testing.assert_close(ours, reference.detach(), atol=tolerance, rtol=tolerance)


def test_training_runs_onednn_lstm_kernels_on_length_groups() -> None:
    # The speed path: unpacked groups reach oneDNN's LSTM (a packed batch would step in PyTorch's own loop).
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch has no oneDNN")
    enc = encoder(bidirectional=True).train()
    with torch.profiler.profile() as profile:
        outputs = enc(*inputs([3, 2, 3]))
        outputs.states.sum().backward()
    names = {event.key for event in profile.key_averages()}
    assert "aten::mkldnn_rnn_layer" in names and "aten::mkldnn_rnn_layer_backward" in names


# --- bfloat16 copies in reduced-precision decoding ---------------------------------------------------------

needs_native_bf16 = pytest.mark.skipif(
    not encoders.native_bfloat16(torch.device("cpu")), reason="this CPU has no native bfloat16 (AVX-512 BF16 or AMX)"
)


def _finals(output: EncoderOutput) -> list[torch.Tensor]:
    return [output.final] if isinstance(output.final, torch.Tensor) else list(output.final)


@needs_native_bf16
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.int8], ids=["bf16", "int8"])
@pytest.mark.parametrize("name", [*CONFIGS, "gru"])
def test_reduced_products_encode_in_bfloat16_close_to_float32_and_answer_in_float32(
    name: str, dtype: torch.dtype
) -> None:
    model = encoder(**CONFIGS.get(name, {"cell": "gru"}))
    for lengths in ([4, 2, 3], [3, 3]):  # packed (mixed lengths) and one length
        embedded, lengths_ = inputs(lengths)
        with torch.inference_mode():
            exact = model(embedded, lengths_)
            with model.reduced_products(dtype):
                reduced = model(embedded, lengths_)
        for mine, theirs in zip([reduced.states, *_finals(reduced)], [exact.states, *_finals(exact)], strict=True):
            assert mine.dtype == torch.float32 and mine.shape == theirs.shape
            torch.testing.assert_close(mine, theirs, atol=3e-2, rtol=0)
        assert not torch.equal(reduced.states, exact.states)  # it did run in bfloat16
        for row, length in enumerate(lengths):
            assert not reduced.states[row, length:].any()  # padding stays zero
    assert {p.dtype for p in model.parameters()} == {torch.float32} and model._reduced is None


@needs_native_bf16
def test_the_bfloat16_copies_are_made_again_only_when_a_weight_changed() -> None:
    model = encoder(layers=2)

    def copies() -> object:
        with model.reduced_products(torch.bfloat16):
            return model._reduced

    first = copies()
    assert copies() is first
    with torch.no_grad():
        model.rnn.weight_hh_l0.add_(1.0)  # in place, as an optimizer step
    assert copies() is not first


def test_reduced_products_leave_the_encoder_as_is_where_the_cpu_lacks_native_bfloat16(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # There oneDNN emulates bfloat16, slower than float32: the encoder keeps float32, and so its exact results.
    monkeypatch.setattr(encoders, "native_bfloat16", lambda device: False)
    model = encoder()
    embedded, lengths = inputs([4, 2, 3])
    with torch.inference_mode():
        exact = model(embedded, lengths)
        for dtype in (torch.bfloat16, torch.int8, torch.float32):
            with model.reduced_products(dtype):
                assert torch.equal(model(embedded, lengths).states, exact.states)


def test_a_model_enters_its_encoders_reduced_products_with_its_decoder_networks() -> None:
    entered = []

    class Watching(LSTMEncoder):
        @contextmanager
        def reduced_products(self, dtype: torch.dtype) -> Iterator[None]:
            entered.append(dtype)
            yield

    model = seq2seq(Watching(input_size=4, hidden_size=6), source_vocab_size=9, target_vocab_size=9, embedding_dim=4)
    with model.reduced_products(torch.int8):
        assert entered == [torch.int8] and model.product_dtype == torch.int8
