"""The training loss works through the logits a few rows at a time: F.cross_entropy's value and gradient without
its three extra (rows, vocab) tensors, and with `overwrite` the gradient takes the logits' own memory."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from transduce._model import model
from transduce._model.model import sequence_loss

PAD = 0


def logits_and_targets(rows: int = 37, vocab: int = 50, seed: int = 0) -> tuple[nn.Linear, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    layer = nn.Linear(8, vocab)
    features = torch.randn(rows, 8, generator=generator)
    target = torch.randint(1, vocab, (rows,), generator=generator)
    target[::5] = PAD  # padding rows count for nothing
    return layer, features, target


def gradients(layer: nn.Linear) -> list[torch.Tensor]:
    grads = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad(set_to_none=True)
    return grads


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("overwrite", [False, True])
def test_the_chunked_loss_has_cross_entropys_value_and_gradient(
    monkeypatch: pytest.MonkeyPatch, label_smoothing: float, overwrite: bool
) -> None:
    monkeypatch.setattr(model, "LOSS_CHUNK_ELEMENTS", 50 * 4)  # 4 rows a chunk: 10 chunks, the last one short
    layer, features, target = logits_and_targets()
    expected = F.cross_entropy(layer(features), target, ignore_index=PAD, label_smoothing=label_smoothing)
    expected.backward()
    expected_grads = gradients(layer)

    loss = sequence_loss(layer(features), target, PAD, label_smoothing, overwrite=overwrite)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    for mine, theirs in zip(gradients(layer), expected_grads, strict=True):
        torch.testing.assert_close(mine, theirs)


def test_the_loss_of_batch_shaped_logits_ignores_padding_positions() -> None:
    layer, features, target = logits_and_targets(rows=24)
    logits = layer(features).view(4, 6, -1)  # (batch, tgt_len, vocab) as a GPU step gives them
    expected = F.cross_entropy(layer(features), target, ignore_index=PAD)
    torch.testing.assert_close(sequence_loss(logits, target.view(4, 6), PAD, overwrite=True), expected)


def test_bfloat16_logits_get_a_bfloat16_gradient_computed_in_float32() -> None:
    layer, features, target = logits_and_targets()
    logits = layer(features).to(torch.bfloat16).detach().requires_grad_()
    sequence_loss(logits, target, PAD).backward()
    reference = logits.detach().float().requires_grad_()
    F.cross_entropy(reference, target, ignore_index=PAD).backward()
    assert logits.grad.dtype == torch.bfloat16
    torch.testing.assert_close(logits.grad.float(), reference.grad, atol=2e-4, rtol=1e-2)


def test_overwrite_writes_the_gradient_into_the_logits_of_a_matrix_product() -> None:
    layer, features, target = logits_and_targets()
    logits = layer(features)
    seen: list[torch.Tensor] = []
    logits.register_hook(seen.append)
    sequence_loss(logits, target, PAD, overwrite=True).backward()
    assert seen[0].data_ptr() == logits.data_ptr()  # no second (rows, vocab) tensor
    logits = layer(features)
    logits.register_hook(seen.append)
    sequence_loss(logits, target, PAD).backward()
    assert seen[1].data_ptr() != logits.data_ptr()  # without overwrite, the logits stay as they were


def test_overwrite_leaves_logits_alone_that_their_own_backward_still_reads() -> None:
    # tanh keeps its output for its backward: writing over it would corrupt (or stop) the backward pass.
    layer, features, target = logits_and_targets()
    F.cross_entropy(torch.tanh(layer(features)), target, ignore_index=PAD).backward()
    expected = gradients(layer)
    logits = torch.tanh(layer(features))
    kept = logits.detach().clone()
    sequence_loss(logits, target, PAD, overwrite=True).backward()
    assert torch.equal(logits.detach(), kept)
    for mine, theirs in zip(gradients(layer), expected, strict=True):
        torch.testing.assert_close(mine, theirs)
