"""Built-in decoding strategies: greedy."""

from __future__ import annotations

import torch

from transduce.api import DecodingStrategy, Hypotheses, Memory, Param, Seq2Seq, hookimpl


class GreedyDecoding(DecodingStrategy):
    """Picks the most probable token at each step, for the whole batch at once."""

    name = "greedy"
    params = (Param("max_length", int, 100, "most output tokens per sentence, '</s>' excluded", min=1),)

    def __init__(self, max_length: int = 100) -> None:
        self.max_length = max_length

    @torch.inference_mode()
    def decode(self, model: Seq2Seq, memory: Memory) -> Hypotheses:
        batch = memory.batch_size
        device = memory.states.device
        tokens = torch.full((batch,), model.bos_index, dtype=torch.long, device=device)
        finished = torch.zeros(batch, dtype=torch.bool, device=device)
        state = model.start(memory)
        steps, weights = [], []
        # max_length tokens plus one step to produce '</s>'.
        for _ in range(self.max_length + 1):
            logits, state, attention = model.step(tokens, state, memory)
            tokens = logits.argmax(dim=-1).masked_fill(finished, model.eos_index)
            steps.append(tokens)
            weights.append(attention)
            finished |= tokens == model.eos_index
            if bool(finished.all()):
                break
        return _cut_at_eos(torch.stack(steps, dim=1), torch.stack(weights, dim=1), model.eos_index, self.max_length)


def _cut_at_eos(steps: torch.Tensor, weights: torch.Tensor, eos: int, max_length: int) -> Hypotheses:
    """(batch, steps) tokens -> lists without '</s>'; attention rows kept for emitted tokens and '</s>'."""
    tokens, attention = [], []
    for row, rows_weights in zip(steps.tolist(), weights.cpu(), strict=True):
        ended = eos in row[: max_length + 1]
        length = row.index(eos) if ended else max_length
        tokens.append(row[:length])
        attention.append(rows_weights[: length + 1 if ended else length])
    return Hypotheses(tokens=tokens, attention=attention)


@hookimpl
def transduce_components() -> list[type[DecodingStrategy]]:
    return [GreedyDecoding]
