"""Tests of the Seq2Seq model with the built-in `lstm` decoder network in its combinations: teacher forcing vs
step-by-step decoding, Memory, loss and gradients, bfloat16 and int8 products."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from model_helpers import SCORERS, seq2seq
from support.stateless_encoder import MeanEncoder
from transduce_builtins.decoder_networks import INT8_LEVELS, Int8Matrix, fast_tanh, quantize_rows
from transduce_builtins.encoders import LSTMEncoder

from transduce._model.model import Memory, Seq2Seq, sequence_loss

SRC_VOCAB, TGT_VOCAB, EMB = 13, 11, 5
PAD, BOS, EOS = 0, 2, 3


def build(
    scorer: str | None = "general",
    *,
    bidirectional: bool = True,
    encoder_layers: int = 1,
    decoder_layers: int = 1,
    encoder_hidden: int = 8,
    decoder_hidden: int = 8,
    dropout: float = 0.0,
    residual: bool = False,
    encoder_cell: str = "lstm",
    stateless: bool = False,
    embedding_dim: int = EMB,
    **options: Any,
) -> Seq2Seq:
    """A small model; `options` are the lstm decoder network's other parameters (cell, peeky, init, ...)."""
    torch.manual_seed(0)
    if stateless:
        encoder = MeanEncoder(input_size=embedding_dim, size=encoder_hidden)
    else:
        encoder = LSTMEncoder(
            input_size=embedding_dim,
            hidden_size=encoder_hidden,
            layers=encoder_layers,
            bidirectional=bidirectional,
            residual=residual,
            cell=encoder_cell,
        )
    return seq2seq(
        encoder,
        source_vocab_size=SRC_VOCAB,
        target_vocab_size=TGT_VOCAB,
        embedding_dim=embedding_dim,
        dropout=dropout,
        scorer=scorer,
        hidden_size=decoder_hidden,
        layers=decoder_layers,
        **options,
    )


def source_batch(lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    source = torch.full((len(lengths), max(lengths)), PAD)
    for row, length in enumerate(lengths):
        source[row, :length] = torch.randint(4, SRC_VOCAB, (length,), generator=generator)
    return source, torch.tensor(lengths)


def target_prefix(batch: int, length: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(6)
    target = torch.randint(4, TGT_VOCAB, (batch, length), generator=generator)
    target[:, 0] = BOS
    return target


CONFIGS = (
    [
        pytest.param(
            {"scorer": s, "bidirectional": bi, "decoder_layers": dl}, id=f"{s}-{'bi' if bi else 'uni'}-dec{dl}"
        )
        for s in SCORERS
        for bi in (False, True)
        for dl in (1, 2)
    ]
    + [
        pytest.param({"scorer": s, "bidirectional": bi, "decoder_hidden": 6}, id=f"{s}-{'bi' if bi else 'uni'}-bridge")
        for s in ("general", "additive")
        for bi in (False, True)
    ]
    + [
        pytest.param({"scorer": "general", "encoder_layers": 2, "decoder_layers": 1}, id="enc2-dec1"),
        # The lstm decoder network's options, alone and together.
        pytest.param({"scorer": None}, id="no-attention"),
        pytest.param({"scorer": None, "decoder_layers": 2, "cell": "gru"}, id="no-attention-gru-2"),
        pytest.param({"scorer": None, "peeky": True}, id="peeky"),
        pytest.param({"scorer": None, "peeky": True, "decoder_hidden": 6, "init": "zero"}, id="peeky-zero"),
        pytest.param({"scorer": "general", "peeky": True, "cell": "gru"}, id="attention-peeky-gru"),
        pytest.param({"scorer": "general", "input_feeding": True}, id="feeding"),
        pytest.param({"scorer": "additive", "input_feeding": True, "decoder_layers": 2}, id="feeding-2"),
        pytest.param(
            {"scorer": "dot", "input_feeding": True, "peeky": True, "cell": "gru", "decoder_layers": 2},
            id="feeding-peeky-gru-2",
        ),
        pytest.param({"scorer": "general", "init": "bridge"}, id="init-bridge"),
        pytest.param({"scorer": "general", "init": "zero", "decoder_layers": 2}, id="init-zero-2"),
        pytest.param({"scorer": "general", "tie_embeddings": True, "decoder_hidden": EMB}, id="tied"),
        pytest.param({"scorer": "general", "encoder_cell": "gru", "encoder_layers": 2}, id="gru-encoder"),
        pytest.param({"scorer": "general", "encoder_cell": "gru", "cell": "gru"}, id="gru-gru"),
        pytest.param({"scorer": "general", "stateless": True, "decoder_hidden": 6}, id="stateless-encoder"),
        pytest.param({"scorer": None, "stateless": True, "peeky": True}, id="stateless-encoder-peeky"),
        pytest.param({"scorer": "additive", "encoder_layers": 1, "decoder_layers": 3}, id="enc1-dec3"),
        pytest.param(
            {"scorer": "dot", "encoder_layers": 3, "decoder_layers": 2, "residual": True}, id="residual3-dec2"
        ),
        pytest.param(
            {"scorer": "general", "encoder_layers": 2, "decoder_layers": 2, "decoder_hidden": 10}, id="bridge-2x2"
        ),
    ]
)


@pytest.mark.parametrize("config", CONFIGS)
def test_teacher_forced_forward_equals_step_by_step_decoding(config: dict) -> None:
    model = build(**config, dropout=0.3).eval()  # dropout must be off in eval mode
    source, lengths = source_batch([5, 2, 4])
    target_in = target_prefix(3, 4)
    with torch.no_grad():
        parallel = model(source, lengths, target_in)
        memory = model.encode(source, lengths)
        state = model.start(memory)
        stepped = []
        for t in range(target_in.size(1)):
            logits, state, weights = model.step(target_in[:, t], state, memory)
            stepped.append(logits)
            assert weights is None if config["scorer"] is None else weights.shape == (3, 5)
    assert parallel.shape == (3, 4, TGT_VOCAB)
    torch.testing.assert_close(torch.stack(stepped, dim=1), parallel, atol=1e-5, rtol=0)


@pytest.mark.parametrize("config", CONFIGS)
def test_start_gives_one_state_per_decoder_layer_of_the_decoder_size(config: dict) -> None:
    model = build(**config)
    source, lengths = source_batch([3, 1])
    state = model.start(model.encode(source, lengths))
    layers, hidden = config.get("decoder_layers", 1), config.get("decoder_hidden", 8)
    assert state.h.shape == (layers, 2, hidden)
    assert state.c is None if config.get("cell") == "gru" else state.c.shape == (layers, 2, hidden)
    assert state.feed is None if not config.get("input_feeding") else state.feed.shape == (2, hidden)


def test_start_uses_the_top_encoder_layers_when_the_decoder_has_fewer() -> None:
    model = build(encoder_layers=3, decoder_layers=2)
    source, lengths = source_batch([3, 1])
    memory = model.encode(source, lengths)
    h, c, _ = model.start(memory)
    assert torch.equal(h, memory.final[0][1:])
    assert torch.equal(c, memory.final[1][1:])


def test_start_repeats_the_top_encoder_layer_for_extra_decoder_layers() -> None:
    model = build(encoder_layers=2, decoder_layers=4)
    source, lengths = source_batch([3, 1])
    memory = model.encode(source, lengths)
    h = model.start(memory).h
    assert torch.equal(h[:2], memory.final[0])
    assert torch.equal(h[2], memory.final[0][1]) and torch.equal(h[3], memory.final[0][1])


def test_bridge_exists_only_when_encoder_and_decoder_sizes_differ() -> None:
    assert build(encoder_hidden=8, decoder_hidden=8).decoder.bridge is None
    bridged = build(encoder_hidden=8, decoder_hidden=6).decoder
    assert bridged.bridge is not None
    assert (bridged.bridge.in_features, bridged.bridge.out_features) == (8, 6)
    assert build(encoder_hidden=8, decoder_hidden=8, init="bridge").decoder.bridge is not None
    assert build(encoder_hidden=8, decoder_hidden=6, init="zero").decoder.bridge is None


def test_tied_embeddings_share_one_weight_and_train_it_from_both_uses() -> None:
    model = build(decoder_hidden=EMB, tie_embeddings=True).train()
    decoder = model.decoder
    assert decoder.output.weight is decoder.embedding.weight
    assert (
        sum(p.numel() for p in model.parameters())
        == sum(p.numel() for p in build(decoder_hidden=EMB).parameters()) - TGT_VOCAB * EMB
    )
    source, lengths = source_batch([5, 2, 4])
    target_in = target_prefix(3, 4)
    sequence_loss(model(source, lengths, target_in), target_prefix(3, 4), PAD).backward()
    assert decoder.embedding.weight.grad[PAD].any()  # the output layer's row of <pad> gets a gradient too


def test_encode_masks_exactly_the_padding_positions() -> None:
    model = build()
    source, lengths = source_batch([4, 1, 3])
    memory = model.encode(source, lengths)
    expected = torch.arange(4).unsqueeze(0) < lengths.unsqueeze(1)
    assert torch.equal(memory.mask, expected)
    assert memory.batch_size == 3


def test_memory_select_reorders_and_repeats_every_tensor_row() -> None:
    model = build(scorer="additive", encoder_layers=2)
    source, lengths = source_batch([4, 1, 3])
    with torch.no_grad():
        memory = model.encode(source, lengths)
    index = torch.tensor([2, 0, 0, 1])
    picked = memory.select(index)
    assert picked.batch_size == 4
    assert torch.equal(picked.states, memory.states[index])
    assert torch.equal(picked.prepared["keys"], memory.prepared["keys"][index])
    assert torch.equal(picked.mask, memory.mask[index])
    assert torch.equal(picked.final[0], memory.final[0][:, index])
    assert torch.equal(picked.final[1], memory.final[1][:, index])


def test_decoding_a_selected_memory_gives_the_selected_rows_of_the_logits() -> None:
    model = build(scorer="general").eval()
    source, lengths = source_batch([4, 1, 3])
    tokens = torch.tensor([BOS, BOS, BOS])
    index = torch.tensor([1, 2, 0])
    with torch.no_grad():
        memory = model.encode(source, lengths)
        logits, _, _ = model.step(tokens, model.start(memory), memory)
        picked = memory.select(index)
        picked_logits, _, _ = model.step(tokens, model.start(picked), picked)
    torch.testing.assert_close(picked_logits, logits[index])


def test_sequence_loss_ignores_logits_at_padding_positions() -> None:
    torch.manual_seed(1)
    logits = torch.randn(2, 4, TGT_VOCAB)
    target_out = torch.tensor([[5, 6, 7, EOS], [8, EOS, PAD, PAD]])
    loss = sequence_loss(logits, target_out, PAD)
    changed = logits.clone()
    changed[1, 2:] = torch.randn(2, TGT_VOCAB) * 100
    torch.testing.assert_close(sequence_loss(changed, target_out, PAD), loss)
    # ...but logits at a real position do count.
    changed[1, 1] += torch.randn(TGT_VOCAB) * 10
    assert not torch.isclose(sequence_loss(changed, target_out, PAD), loss)


def test_sequence_loss_is_the_mean_cross_entropy_over_real_tokens() -> None:
    torch.manual_seed(1)
    logits = torch.randn(2, 3, TGT_VOCAB)
    target_out = torch.tensor([[5, 6, EOS], [EOS, PAD, PAD]])
    log_probs = torch.log_softmax(logits, dim=-1)
    real = [(0, 0), (0, 1), (0, 2), (1, 0)]
    expected = -sum(log_probs[b, t, target_out[b, t]] for b, t in real) / len(real)
    torch.testing.assert_close(sequence_loss(logits, target_out, PAD), expected)


def test_sequence_loss_with_label_smoothing_is_larger_for_confident_correct_logits() -> None:
    logits = torch.full((1, 2, TGT_VOCAB), -10.0)
    target_out = torch.tensor([[5, EOS]])
    logits[0, 0, 5] = logits[0, 1, EOS] = 10.0
    assert sequence_loss(logits, target_out, PAD, label_smoothing=0.1) > sequence_loss(logits, target_out, PAD) + 0.1


@pytest.mark.parametrize(
    "config",
    [
        {"scorer": "dot"},
        {"scorer": "general", "bidirectional": False, "decoder_hidden": 6},
        {"scorer": "additive", "encoder_layers": 2, "decoder_layers": 2},
        {"scorer": "general", "encoder_layers": 3, "residual": True},
    ],
    ids=["dot", "general-bridge", "additive-stacked", "residual"],
)
def test_one_backward_pass_reaches_every_parameter(config: dict) -> None:
    model = build(**config).train()
    source, lengths = source_batch([5, 2, 4])
    target_in = target_prefix(3, 4)
    target_out = torch.cat([target_in[:, 1:], torch.full((3, 1), EOS)], dim=1)
    sequence_loss(model(source, lengths, target_in), target_out, PAD).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    zero = [name for name, p in model.named_parameters() if p.grad is not None and not p.grad.any()]
    assert missing == []
    assert zero == []


def test_padding_embeddings_get_no_gradient() -> None:
    model = build().train()
    source, lengths = source_batch([5, 2, 4])
    target_in = target_prefix(3, 4)
    target_in[1, 2:] = PAD
    target_out = torch.cat([target_in[:, 1:], torch.full((3, 1), EOS)], dim=1)
    sequence_loss(model(source, lengths, target_in), target_out, PAD).backward()
    assert not model.source_embedding.weight.grad[PAD].any()
    assert not model.decoder.embedding.weight.grad[PAD].any()
    assert not model.source_embedding.weight[PAD].any()


def test_a_sources_logits_do_not_depend_on_the_other_sentences_in_the_batch() -> None:
    model = build(scorer="additive", encoder_layers=2).eval()
    source, lengths = source_batch([2, 6])
    target_in = target_prefix(2, 3)
    with torch.no_grad():
        batched = model(source, lengths, target_in)
        alone = model(source[:1, :2], lengths[:1], target_in[:1])
    torch.testing.assert_close(batched[:1], alone, atol=1e-5, rtol=0)


def test_memory_holds_encoder_states_and_the_scorers_prepared_keys() -> None:
    model = build(scorer="general")
    source, lengths = source_batch([3, 2])
    with torch.no_grad():
        memory = model.encode(source, lengths)
        torch.testing.assert_close(memory.prepared["keys"], model.decoder.scorer.prepare(memory.states))
    assert isinstance(memory, Memory)
    assert memory.states.shape == (2, 3, 8)


def test_forward_at_given_positions_gives_those_logits_and_the_same_loss() -> None:
    model = build(dropout=0.3).eval()
    source, lengths = source_batch([5, 2, 4])
    target_in = target_prefix(3, 4)
    target_out = target_prefix(3, 4)
    target_out[0, 3:] = PAD
    target_out[1, 1:] = PAD
    real = target_out != PAD
    with torch.no_grad():
        everywhere = model(source, lengths, target_in)
        selected = model(source, lengths, target_in, positions=real)
    assert selected.shape == (int(real.sum()), TGT_VOCAB)
    torch.testing.assert_close(selected, everywhere[real], atol=1e-6, rtol=0)
    torch.testing.assert_close(
        sequence_loss(selected, target_out[real], PAD), sequence_loss(everywhere, target_out, PAD), atol=1e-6, rtol=0
    )


@pytest.mark.parametrize("config", CONFIGS)
def test_rows_sharing_a_memory_row_step_as_rows_with_its_copies(config: dict) -> None:
    # k consecutive rows per sentence (a beam) against the sentence's memory row, or against k copies of it.
    model = build(**config).eval()
    source, lengths = source_batch([5, 2, 4])
    k = 3
    copies = torch.arange(3).repeat_interleave(k)
    with torch.no_grad():
        memory = model.encode(source, lengths)
        start = model.start(memory)
        shared = model.reorder_state(start, copies)
        repeated = model.start(memory.select(copies))
        tokens = torch.randint(4, TGT_VOCAB, (9,), generator=torch.Generator().manual_seed(2))
        for _ in range(3):
            logits, shared, weights = model.step(tokens, shared, memory)
            expected, repeated, expected_weights = model.step(tokens, repeated, memory.select(copies))
            torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)
            if weights is not None:
                torch.testing.assert_close(weights, expected_weights, atol=1e-6, rtol=0)
            tokens = logits.argmax(-1)
    with pytest.raises(ValueError, match="do not share 3 memory rows evenly"):
        model.step(tokens[:4], model.reorder_state(start, torch.zeros(4, dtype=torch.long)), memory)


# --- reduced-precision products (bf16 decoding on the CPU) -------------------------------------------------


def _stepped_logits(model: Seq2Seq, source_lengths: list[int], steps: int = 4) -> torch.Tensor:
    source, lengths = source_batch(source_lengths)
    target_in = target_prefix(len(source_lengths), steps)
    with torch.inference_mode():
        memory = model.encode(source, lengths)
        state = model.start(memory)
        logits = []
        for t in range(steps):
            out, state, _ = model.step(target_in[:, t], state, memory)
            logits.append(out)
    return torch.stack(logits, dim=1)


#: The reduced dtypes decoding multiplies in: bf16's and int8's.
REDUCED = [pytest.param(torch.bfloat16, id="bf16"), pytest.param(torch.int8, id="int8")]


@pytest.mark.parametrize("dtype", REDUCED)
@pytest.mark.parametrize("config", CONFIGS)
def test_reduced_products_step_like_float32_to_their_precision(config: dict, dtype: torch.dtype) -> None:
    model = build(**config).eval()
    exact = _stepped_logits(model, [5, 2, 4])
    with model.reduced_products(dtype):
        assert model.product_dtype == dtype
        reduced = _stepped_logits(model, [5, 2, 4])
    assert model.product_dtype == torch.float32
    assert reduced.dtype == torch.float32 and not torch.equal(reduced, exact)  # it did multiply in `dtype`
    torch.testing.assert_close(reduced, exact, atol=3e-2, rtol=0)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


@pytest.mark.parametrize("dtype", REDUCED)
def test_reduced_products_give_a_row_the_same_result_whatever_else_is_in_its_batch(dtype: torch.dtype) -> None:
    # bfloat16 products run on row counts padded to a multiple of 64: padding rows must not reach the real
    # ones. int8 products quantize their inputs per row, so no other sentence changes a row's scale.
    model = build("general", decoder_layers=2).eval()
    lengths = [5, 2, 4] * 30
    with model.reduced_products(dtype):
        alone = _stepped_logits(model, lengths[:3])  # 3 rows, padded to 64 in bfloat16
        for rows in (64, 90):  # not padded; padded to 128
            torch.testing.assert_close(_stepped_logits(model, lengths[:rows])[:3], alone, atol=1e-6, rtol=0)


def test_reduced_products_copy_the_weights_on_entry_and_are_dropped_on_exit_even_after_an_error() -> None:
    model = build().eval()
    with model.reduced_products(torch.bfloat16):
        before = _stepped_logits(model, [3, 4])
        with torch.no_grad():
            model.decoder.output.bias += 1.0  # changed inside: the copies made on entry still hold
        assert torch.equal(_stepped_logits(model, [3, 4]), before)
    with model.reduced_products(torch.bfloat16):
        assert not torch.equal(_stepped_logits(model, [3, 4]), before)  # a new pass copies the new weights
    with pytest.raises(RuntimeError, match="boom"), model.reduced_products(torch.bfloat16):
        raise RuntimeError("boom")
    assert model.product_dtype == torch.float32
    with model.reduced_products(torch.float32):  # the weights' own dtype: nothing to copy
        assert model.product_dtype == torch.float32


# --- int8 products (int8 decoding on the CPU) -----------------------------------------------------------


@pytest.mark.parametrize("dtype", REDUCED)
def test_reduced_products_are_made_again_only_when_a_weight_changed(dtype: torch.dtype) -> None:
    model = build().eval()
    decoder = model.decoder

    def copies() -> object:
        with model.reduced_products(dtype):
            return decoder._products

    first = copies()
    assert copies() is first  # batch after batch: the same copies
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(*source_batch([3, 2]), target_prefix(2, 3)).sum().backward()
    optimizer.step()  # in place, as training between validations
    stepped = copies()
    assert stepped is not first and copies() is stepped
    fresh = build().eval()
    model.load_state_dict(fresh.state_dict())  # in place again: back to the built weights
    assert copies() is not stepped
    with model.reduced_products(dtype):
        mine = _stepped_logits(model, [3, 4])
    with fresh.reduced_products(dtype):
        assert torch.equal(mine, _stepped_logits(fresh, [3, 4]))
    other = torch.bfloat16 if dtype == torch.int8 else torch.int8
    with model.reduced_products(other):  # another dtype: other copies
        assert decoder.product_dtype == other


def test_a_model_made_in_inference_mode_decodes_with_reduced_products_too() -> None:
    # Its weights have no version counter to tell whether they changed: the copies are made at every entry.
    with torch.inference_mode():
        model = build().eval()
        for dtype in (torch.int8, torch.int8, torch.bfloat16):
            with model.reduced_products(dtype):
                assert model.product_dtype == dtype and _stepped_logits(model, [3, 4]).isfinite().all()


def test_the_reduced_steps_tanh_is_torchs_to_float32_rounding_and_saturates() -> None:
    x = torch.cat([torch.linspace(-20, 20, 10001), torch.tensor([-1e30, 1e30, float("-inf"), float("inf"), 1e-30])])
    torch.testing.assert_close(fast_tanh(x), torch.tanh(x), atol=2.5e-7, rtol=0)
    assert fast_tanh(torch.tensor([float("inf"), float("-inf")])).tolist() == [1.0, -1.0]


def test_quantize_rows_keeps_every_entry_within_half_its_rows_scale() -> None:
    generator = torch.Generator().manual_seed(3)
    magnitudes = 10.0 ** torch.linspace(-6, 3, 10).unsqueeze(1)  # rows from 1e-6 to 1e3 in one matrix
    matrix = torch.randn(10, 37, generator=generator) * magnitudes
    values, scales = quantize_rows(matrix)
    assert values.dtype == torch.int8 and scales.shape == (10, 1)
    assert int(values.abs().max()) == INT8_LEVELS  # each row's largest entry is exact at +-127
    error = (values.float() * scales - matrix).abs()
    assert bool((error <= scales / 2 * (1 + 1e-5)).all())  # per row: a row of small values keeps its precision
    zeros, _ = quantize_rows(torch.zeros(2, 5))
    assert not zeros.any()


def test_an_int8_product_is_off_by_no_more_than_its_two_roundings_allow() -> None:
    generator = torch.Generator().manual_seed(4)
    weight = torch.randn(50, 40, generator=generator) * 10.0 ** torch.linspace(-3, 2, 50).unsqueeze(1)
    inputs = torch.randn(7, 40, generator=generator) * 10.0 ** torch.linspace(-2, 3, 7).unsqueeze(1)
    bias = torch.randn(50, generator=generator)
    matrix = Int8Matrix.of(weight, bias)
    exact = inputs.double() @ weight.double().t() + bias.double()
    # x.w - x'.w' = x.(w - w') + w'.(x - x'), each rounding at most half its row's scale
    half_input = inputs.abs().amax(1, keepdim=True).double() / (2 * INT8_LEVELS)
    half_weight = weight.abs().amax(1).double() / (2 * INT8_LEVELS)
    bound = inputs.abs().double() @ half_weight.expand(40, 50) + half_input * (
        weight.abs().double().sum(1) + 40 * half_weight
    )
    error = (matrix.addmm(inputs).double() - exact).abs()
    assert bool((error <= bound + 1e-5 * exact.abs()).all())
    assert bool((error > 0).any())  # it did round
