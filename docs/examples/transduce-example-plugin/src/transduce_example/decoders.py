"""The `bahdanau` decoder network: attention queried with the previous state, its context fed into the cell.

As in Bahdanau, Cho and Bengio (2015): at output position i, additive attention scores every source state
h_j against the PREVIOUS decoder state s_(i-1), e_ij = v . tanh(W s_(i-1) + U h_j); the context
c_i = sum_j softmax(e_i)_j h_j joins the embedded previous token as the GRU's input, s_i = GRU([y_(i-1); c_i],
s_(i-1)); the output layer reads [s_i; c_i; y_(i-1)] through a tanh layer ("deep output").
"""

from __future__ import annotations

import torch
from torch import nn
from transduce.api import DecoderNetwork, Memory, Param


class BahdanauDecoder(DecoderNetwork):
    """Bahdanau attention: a GRU whose input is the previous token and the context its previous state attends to."""

    name = "bahdanau"
    params = (
        Param("hidden_size", int, 256, "GRU state size", min=1),
        Param("attention_size", int, 128, "size of the additive attention's hidden layer", min=1),
        Param("dropout", float, 0.0, "dropout on the target embeddings and the output layer's input", min=0.0, max=0.9),
    )

    def __init__(
        self,
        *,
        embedding_dim: int,
        vocab_size: int,
        memory_size: int,
        pad_index: int,
        hidden_size: int,
        attention_size: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)
        self.init = nn.Linear(memory_size, hidden_size)  # s_0 from the mean of the source states
        self.keys = nn.Linear(memory_size, attention_size, bias=False)  # U
        self.query = nn.Linear(hidden_size, attention_size)  # W
        self.energy = nn.Linear(attention_size, 1, bias=False)  # v
        self.cell = nn.GRUCell(embedding_dim + memory_size, hidden_size)
        self.readout = nn.Linear(hidden_size + memory_size + embedding_dim, hidden_size)
        self.output = nn.Linear(hidden_size, vocab_size)
        self.dropout = nn.Dropout(dropout)

    def prepare(self, memory: Memory) -> Memory:
        """U h_j for every source position, once per batch: (batch, src_len, attention_size)."""
        return memory.with_prepared(keys=self.keys(memory.states))

    def start(self, memory: Memory) -> torch.Tensor:
        """s_0 = tanh(W_init mean_j h_j) over the real source positions: (batch, hidden_size). It needs no final
        encoder state, so any encoder will do."""
        mask = memory.mask.unsqueeze(-1).to(memory.states.dtype)
        mean = (memory.states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return torch.tanh(self.init(mean))

    def step(self, tokens: torch.Tensor, state: torch.Tensor, memory: Memory):
        """tokens (rows,), state (rows, hidden_size) -> logits (rows, V), state, attention (rows, src_len);
        rows = k * batch, k consecutive rows sharing a memory row (beams)."""
        return self._advance(self.dropout(self.embedding(tokens)), state, memory)

    def forward(self, target_in: torch.Tensor, memory: Memory, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher forcing, target_in (batch, tgt_len) -> logits (batch, tgt_len, V), or (positions.sum(), V).
        A loop over positions: each query is the state the previous position made."""
        embedded = self.dropout(self.embedding(target_in))
        state, logits = self.start(memory), []
        for position in range(target_in.size(1)):
            out, state, _ = self._advance(embedded[:, position], state, memory)
            logits.append(out)
        stacked = torch.stack(logits, dim=1)
        return stacked if positions is None else stacked[positions]

    def _advance(self, embedded: torch.Tensor, state: torch.Tensor, memory: Memory):
        """embedded (rows, E), previous state (rows, H) -> logits (rows, V), next state, weights (rows, src_len)."""
        batch, rows = memory.batch_size, embedded.size(0)
        query = self.query(state).view(batch, rows // batch, 1, -1)  # (batch, k, 1, A)
        keys = memory.prepared["keys"].unsqueeze(1)  # (batch, 1, src_len, A)
        scores = self.energy(torch.tanh(query + keys)).squeeze(-1)  # (batch, k, src_len)
        weights = torch.softmax(scores.masked_fill(~memory.mask.unsqueeze(1), float("-inf")), dim=-1)
        context = torch.bmm(weights, memory.states).reshape(rows, -1)  # (rows, K)
        state = self.cell(torch.cat([embedded, context], dim=-1), state)
        readout = torch.tanh(self.readout(torch.cat([state, context, embedded], dim=-1)))
        return self.output(self.dropout(readout)), state, weights.reshape(rows, -1)
