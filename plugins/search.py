"""Built-in search strategies: greedy, beam search and sampling.

Every strategy bounds each output twice: by `max_length` tokens and, relative to the source, by
ceil(max_ratio * source tokens) + max_offset (see `SearchStrategy.output_limits`). A hypothesis that
reaches its limit gets one more step, in which it may only end: with '</s>' when that is the strategy's
pick, otherwise it is cut there without '</s>'. So even a model that never predicts '</s>' stops.

Sentences that have finished are dropped from the batch as they accumulate (see COMPACT_SHARE), so a batch of
mixed output lengths does not cost every step as if all were still being decoded; the outputs stay the same.

The decoder network's state is opaque here: rows of it are selected only through `model.reorder_state`.
A decoder network without attention (step gives None) gives hypotheses without attention.
"""

from __future__ import annotations

import math

import torch

from transduce.api import MAX_OUTPUT_TOKENS, Decodable, Hypotheses, Memory, Param, SearchStrategy, hookimpl

#: Length parameters shared by every built-in strategy. The defaults keep whole answers in chat (questions of
#: 2-20 morphemes, answers up to 40) and similar-length translations, and cut only runaway outputs.
#: Each bound is far beyond any sensible setting and keeps a mistyped value (`size=1000000`) a clear error instead
#: of an allocation of gigabytes; the Translator also refuses a combination whose memory would be absurd.
MAX_RATIO = 100.0
MAX_BEAM = 256
MAX_TOP_K = 1_000_000
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.001, 1000.0
MAX_LENGTH_PENALTY = 10.0

LIMIT_PARAMS = (
    Param(
        "max_length",
        int,
        100,
        f"most output tokens per sentence, '</s>' excluded (at most {MAX_OUTPUT_TOKENS:,}: a long paragraph in "
        "characters; more only lets a runaway output run on)",
        min=1,
        max=MAX_OUTPUT_TOKENS,
    ),
    Param(
        "max_ratio",
        float,
        2.0,
        "output limit relative to the source: at most ceil(max_ratio * source tokens) + max_offset tokens "
        f"(and max_length); null: max_length alone (at most {MAX_RATIO:g}: no output is that much longer than its "
        "source)",
        min=0,
        max=MAX_RATIO,
        nullable=True,
    ),
    Param(
        "max_offset",
        int,
        20,
        f"tokens allowed beyond max_ratio * source tokens (see max_ratio; at most {MAX_OUTPUT_TOKENS:,})",
        min=0,
        max=MAX_OUTPUT_TOKENS,
    ),
)

#: Drop finished sentences from the decoded batch once this share of its active ones has finished since the
#: last drop: their rows cost every step as much as the live ones. None keeps every row to the end (tests
#: compare both paths, which give the same outputs).
COMPACT_SHARE: float | None = 0.25


#: Columns per block in `most_probable`'s two-stage search.
MAX_BLOCK = 64


def most_probable(logp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """logp (rows, V) -> each row's largest value and its column (the first of equal ones), as logp.max(dim=-1).

    On the CPU torch's max with indices is not vectorized: for (64, 8,000) float32 it took 127 us, amax 13 us.
    So: amax over blocks of MAX_BLOCK columns, then the max with indices over the first best block of each row
    only (48 us in all); a greedy step on an 8,000-token vocabulary saves about a tenth of its time.
    """
    rows, vocab = logp.shape
    if logp.device.type != "cpu" or vocab < 4 * MAX_BLOCK:
        return logp.max(dim=-1)
    padding = -vocab % MAX_BLOCK
    if padding:
        logp = torch.nn.functional.pad(logp, (0, padding), value=float("-inf"))
    blocks = logp.view(rows, -1, MAX_BLOCK)
    block = blocks.amax(dim=-1).max(dim=-1).indices  # (rows,) the first block holding the row's largest value
    values, offsets = blocks[torch.arange(rows, device=logp.device), block].max(dim=-1)
    return values, block * MAX_BLOCK + offsets


def _should_compact(finished: int, active: int) -> bool:
    return COMPACT_SHARE is not None and 0 < finished < active and finished >= COMPACT_SHARE * active


class _Limited(SearchStrategy):
    """Holds the length parameters every built-in strategy shares."""

    def __init__(self, max_length: int = 100, max_ratio: float | None = 2.0, max_offset: int = 20) -> None:
        self.max_length, self.max_ratio, self.max_offset = max_length, max_ratio, max_offset

    def limits(self, memory: Memory) -> torch.Tensor:
        return self.output_limits(memory, self.max_length, self.max_ratio, self.max_offset)

    def most_output_tokens(self, source_length: int) -> int:
        """As `limits` gives it for one source of `source_length` tokens."""
        if self.max_ratio is None:
            return self.max_length
        return min(self.max_length, math.ceil(source_length * self.max_ratio - 1e-9) + self.max_offset)


class GreedyDecoding(_Limited):
    """Picks the most probable token at each step, for the whole batch at once."""

    name = "greedy"
    params = LIMIT_PARAMS

    @torch.inference_mode()
    def decode(self, model: Decodable, memory: Memory) -> Hypotheses:
        return _run(model, memory, self.limits(memory), most_probable)


class SampleDecoding(_Limited):
    """Draws each token from the model's distribution (ancestral sampling), e.g. for varied chat replies."""

    name = "sample"
    params = (
        Param(
            "temperature",
            float,
            1.0,
            "> 0; divides the logits: below 1 sharper and safer, above 1 more varied "
            f"({MIN_TEMPERATURE:g} to {MAX_TEMPERATURE:g}: below, every draw is greedy's pick; above, it is uniform)",
            min=MIN_TEMPERATURE,
            max=MAX_TEMPERATURE,
        ),
        Param(
            "top_k",
            int,
            0,
            f"draw only among the k most probable tokens; 0: among all (at most {MAX_TOP_K:,}, more than any "
            "vocabulary)",
            min=0,
            max=MAX_TOP_K,
        ),
        Param(
            "seed",
            int,
            None,
            "seed of the sampler's own generator: the same seed gives the same output, whatever else uses torch's "
            "random numbers; null: seeded from torch's global generator (0 to 2**32 - 1, as the recipe's seed)",
            min=0,
            max=2**32 - 1,
            nullable=True,
        ),
        *LIMIT_PARAMS,
    )

    def __init__(
        self,
        temperature: float = 1.0,
        top_k: int = 0,
        seed: int | None = None,
        max_length: int = 100,
        max_ratio: float | None = 2.0,
        max_offset: int = 20,
    ) -> None:
        super().__init__(max_length, max_ratio, max_offset)
        if not temperature >= MIN_TEMPERATURE:  # lower ones overflow the scaled logits to -inf (no draw at all)
            raise ValueError(
                f"sample: temperature must be > 0 (at least {MIN_TEMPERATURE:g}; 1.0 samples the model as is), "
                f"got {temperature}"
            )
        if top_k < 0:
            raise ValueError(f"sample: top_k must be >= 0 (0 draws among all tokens), got {top_k}")
        self.temperature, self.top_k, self.seed = temperature, top_k, seed

    @torch.inference_mode()
    def decode(self, model: Decodable, memory: Memory) -> Hypotheses:
        device = memory.states.device
        seed = self.seed if self.seed is not None else int(torch.randint(2**62, (1,)))
        generator = torch.Generator(device=device).manual_seed(seed)

        def pick(logp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits = logp / self.temperature
            if 0 < self.top_k < logits.size(-1):
                kth = logits.topk(self.top_k, dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            # Inverse-CDF draw with one uniform number per step for every row: a sentence's output depends on
            # it and the seed only, never on the other sentences of its batch.
            cumulative = torch.softmax(logits, dim=-1).cumsum(dim=-1)
            point = torch.rand((), generator=generator, device=logp.device) * cumulative[:, -1:]
            tokens = torch.searchsorted(cumulative, point, right=True).squeeze(1)
            return logp.gather(1, tokens.unsqueeze(1)).squeeze(1), tokens

        return _run(model, memory, self.limits(memory), pick)


class BeamSearch(_Limited):
    """Keeps the `size` most probable partial outputs of every sentence, all sentences of a batch at once."""

    name = "beam"
    params = (
        Param(
            "size",
            int,
            5,
            "partial outputs kept per sentence (the beam width); 1 (with length_penalty 0) gives greedy's output "
            f"(at most {MAX_BEAM}: beyond a few dozen, wider beams rarely improve and cost as many model rows)",
            min=1,
            max=MAX_BEAM,
        ),
        Param(
            "length_penalty",
            float,
            0.0,
            "alpha of the GNMT length penalty: outputs are ranked by log-probability / ((5 + tokens) / 6)^alpha; "
            "0 ranks by raw log-probability (favours short outputs), 0.6-1.0 usual for translation "
            f"(at most {MAX_LENGTH_PENALTY:g})",
            min=0,
            max=MAX_LENGTH_PENALTY,
        ),
        Param(
            "n_best",
            int,
            1,
            "finished outputs returned per sentence, best first (at most size)",
            min=1,
            max=MAX_BEAM,
        ),
        *LIMIT_PARAMS,
    )

    def __init__(
        self,
        size: int = 5,
        length_penalty: float = 0.0,
        n_best: int = 1,
        max_length: int = 100,
        max_ratio: float | None = 2.0,
        max_offset: int = 20,
    ) -> None:
        super().__init__(max_length, max_ratio, max_offset)
        if not 1 <= n_best <= size:
            raise ValueError(f"beam: n_best must be between 1 and size ({size}), got {n_best}")
        self.size, self.length_penalty, self.n_best = size, length_penalty, n_best

    def rows_per_sentence(self) -> int:
        return self.size

    def penalty(self, lengths: torch.Tensor) -> torch.Tensor:
        """GNMT lp(Y) = ((5 + |Y|) / 6) ^ alpha, |Y| the output tokens without '</s>'."""
        return ((5.0 + lengths.float()) / 6.0) ** self.length_penalty

    @torch.inference_mode()
    def decode(self, model: Decodable, memory: Memory) -> Hypotheses:
        batch, size, eos, device = memory.batch_size, self.size, model.eos_index, memory.states.device
        limits = self.limits(memory)
        # `size` rows per sentence; they share the sentence's memory row (see Seq2Seq.step).
        state = model.reorder_state(model.start(memory), torch.arange(batch, device=device).repeat_interleave(size))
        # Live hypotheses: (batch, size) raw log-probabilities; only the first slot is live at the start.
        scores = torch.full((batch, size), float("-inf"), device=device)
        scores[:, 0] = 0.0
        tokens = torch.full((batch * size,), model.bos_index, dtype=torch.long, device=device)
        pool = _Pool(batch, self.n_best, device)
        record = _Segments(batch)  # per step: tokens, parent slots, attention of the live beam
        offsets = torch.arange(batch, device=device).unsqueeze(1) * size  # each sentence's first row
        rows = torch.arange(batch, device=device)  # the original sentence of each active one
        parts: list[tuple[torch.Tensor, _Pool]] = []  # pools of dropped sentences, by original sentence
        for step in range(int(limits.max()) + 1):
            active = scores.size(0)
            logits, state, attention = model.step(tokens, state, memory)
            attention = _weights(attention, logits)
            logp = torch.log_softmax(logits, dim=-1, dtype=torch.float32).view(active, size, -1)
            at_limit = (limits <= step).unsqueeze(1)
            # Candidates: the extensions of every live hypothesis; '</s>' among the best `size` finishes one.
            # The best 2 * size of all of them are among each hypothesis's own best 2 * size, so only those
            # are ranked (with a large vocabulary, far less work than ranking size x vocabulary candidates).
            own, tokens_of = logp.topk(min(2 * size, logp.size(-1)), dim=-1)
            candidates = (scores.unsqueeze(-1) + own).view(active, -1)
            values, flat = candidates.topk(min(2 * size, candidates.size(1)), dim=-1)
            parents, chosen = flat // own.size(-1), tokens_of.view(active, -1).gather(1, flat)
            ends = (chosen == eos) & (torch.arange(values.size(1), device=device) < size)
            # At its limit a hypothesis only ends: with '</s>' when that is its best token, else cut without it.
            best_is_eos = logp[..., eos] >= own[..., 0]
            limit_scores = torch.where(best_is_eos, scores + logp[..., eos], scores)
            pool.offer(
                step,
                torch.cat(
                    [
                        values.masked_fill(~ends | at_limit, float("-inf")),
                        limit_scores.masked_fill(~at_limit, float("-inf")),
                    ],
                    1,
                ),
                torch.cat([parents, torch.arange(size, device=device).expand(active, size)], 1),
                torch.cat([torch.ones_like(ends), best_is_eos], 1),
                ((5.0 + step) / 6.0) ** self.length_penalty,  # the penalty of `step` tokens
            )
            # The next beam: the best `size` candidates that do not end.
            stops = (chosen == eos).long() * values.size(1)  # '</s>' never continues a hypothesis
            order = (stops + torch.arange(values.size(1), device=device)).argsort(dim=-1)[:, :size]
            scores = values.gather(1, order)
            parents, chosen = parents.gather(1, order), chosen.gather(1, order)
            record.add(chosen, parents, attention.view(active, size, -1))
            # A sentence is done at its limit, or when no live hypothesis can still enter its n-best list:
            # log-probabilities only fall, so the best a live one can reach is its score at the longest length.
            bound = scores.max(dim=1).values / self.penalty(limits)
            done = at_limit.squeeze(1) | (bound <= pool.worst_rank())
            scores = scores.masked_fill(done.unsqueeze(1), float("-inf"))
            finished = int(done.sum())
            if finished == active:
                break
            state = model.reorder_state(state, (offsets[:active] + parents).view(-1))
            tokens = chosen.view(-1)
            if _should_compact(finished, active):  # drop the finished sentences, all `size` rows of each
                keep = (~done).nonzero().squeeze(1)
                gone = done.nonzero().squeeze(1)
                parts.append((rows[gone], pool.select(gone)))
                pool, rows, kept_rows = pool.select(keep), rows[keep], _beam_rows(keep, size)
                record.select(keep)
                scores, limits = scores[keep], limits[keep]
                memory, tokens = memory.select(keep), tokens[kept_rows]
                state = model.reorder_state(state, kept_rows)
        parts.append((rows, pool))
        chosen_steps, parent_steps, weights = record.stacked((0, 0, 0.0))
        history = list(zip(chosen_steps.unbind(1), parent_steps.unbind(1), strict=True))
        return _without_empty_attention(_Pool.merged(batch, parts).hypotheses(history, weights, self.n_best > 1))


def _weights(attention: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
    """A step's attention, or (rows, 0) where the decoder network has none (recorded alike, dropped at the end)."""
    return attention if attention is not None else logits.new_zeros(logits.size(0), 0)


def _without_empty_attention(hypotheses: Hypotheses) -> Hypotheses:
    """Hypotheses whose attention rows have no columns (a decoder network without attention) carry None."""
    attention = hypotheses.attention
    if attention and attention[0].size(-1) == 0:
        hypotheses.attention = None
        for candidates in hypotheses.nbest or ():
            candidates.attention = None
    return hypotheses


def _beam_rows(sentences: torch.Tensor, size: int) -> torch.Tensor:
    """The rows (of a batch with `size` rows per sentence) of the given sentences, in order."""
    return (sentences.unsqueeze(1) * size + torch.arange(size, device=sentences.device)).view(-1)


class _Pool:
    """The best `n` finished hypotheses of each sentence, by length-penalised score, as (step, parent) pointers
    into the beam's history; traced back into token lists once decoding is over."""

    def __init__(self, batch: int, n: int, device: torch.device) -> None:
        self.rank = torch.full((batch, n), float("-inf"), device=device)
        self.score = torch.full((batch, n), float("-inf"), device=device)
        self.step = torch.zeros((batch, n), dtype=torch.long, device=device)
        self.parent = torch.zeros((batch, n), dtype=torch.long, device=device)
        self.ended = torch.zeros((batch, n), dtype=torch.bool, device=device)

    _FIELDS = ("rank", "score", "step", "parent", "ended")

    def select(self, index: torch.Tensor) -> _Pool:
        """The pool of sentences `index` only."""
        pool = _Pool.__new__(_Pool)
        for field in self._FIELDS:
            setattr(pool, field, getattr(self, field)[index])
        return pool

    @staticmethod
    def merged(batch: int, parts: list[tuple[torch.Tensor, _Pool]]) -> _Pool:
        """One pool of `batch` sentences from pools of some of them (by original sentence)."""
        if len(parts) == 1:
            return parts[0][1]
        pool = _Pool.__new__(_Pool)
        for field in _Pool._FIELDS:
            first = getattr(parts[0][1], field)
            full = first.new_empty((batch, first.size(1)))
            for rows, part in parts:
                full[rows] = getattr(part, field)
            setattr(pool, field, full)
        return pool

    def worst_rank(self) -> torch.Tensor:
        """(batch,) the rank a hypothesis must beat to enter (-inf while the pool is not full)."""
        return self.rank[:, -1]

    def offer(
        self, step: int, scores: torch.Tensor, parents: torch.Tensor, ended: torch.Tensor, penalty: float
    ) -> None:
        """Candidates finished at `step` (-inf scores: none), each ending the hypothesis in slot `parent`."""
        rank = torch.cat([self.rank, scores / penalty], 1)
        keep = rank.topk(self.rank.size(1), dim=-1).indices
        steps = torch.full_like(parents, step)
        self.rank = rank.gather(1, keep)
        self.score = torch.cat([self.score, scores], 1).gather(1, keep)
        self.step = torch.cat([self.step, steps], 1).gather(1, keep)
        self.parent = torch.cat([self.parent, parents], 1).gather(1, keep)
        self.ended = torch.cat([self.ended, ended], 1).gather(1, keep)

    def hypotheses(
        self, history: list[tuple[torch.Tensor, torch.Tensor]], stacked: torch.Tensor, nbest: bool
    ) -> Hypotheses:
        """Token lists and attention rows of the pooled hypotheses, best first; `history` holds per step the
        (tokens, parent slots) of the beam, `stacked` its attention (batch, steps, size, src_len)."""
        batch, n = self.rank.shape
        rows = torch.arange(batch, device=stacked.device).unsqueeze(1)
        tokens = torch.zeros((batch, n, len(history)), dtype=torch.long, device=stacked.device)
        rows_weights = torch.zeros((batch, n, len(history) + 1, stacked.size(-1)), device=stacked.device)
        rows_weights[:, :, -1] = stacked[rows, self.step, self.parent]  # the row of '</s>' (if it ended with it)
        # Trace every pooled hypothesis back through the beam at once, last position first.
        slot = self.parent
        for position in range(len(history) - 1, -1, -1):
            active = self.step > position
            chosen, parents = history[position]
            fed = parents.gather(1, slot)
            tokens[:, :, position] = torch.where(active, chosen.gather(1, slot), 0)
            rows_weights[:, :, position] = torch.where(active.unsqueeze(-1), stacked[rows, position, fed], 0.0)
            slot = torch.where(active, fed, slot)
        return _unpack(
            tokens.cpu(), rows_weights.cpu(), self.step.tolist(), self.ended.tolist(), self.score.tolist(), nbest
        )


def _unpack(
    tokens: torch.Tensor,
    weights: torch.Tensor,
    lengths: list[list[int]],
    ended: list[list[bool]],
    scores: list[list[float]],
    nbest: bool,
) -> Hypotheses:
    """Per-sentence candidate tensors (padded, '</s>' row last) -> Hypotheses, n-best lists when asked for."""
    lists = []
    for b, sentence_scores in enumerate(scores):
        found = Hypotheses(tokens=[], attention=[], scores=[])
        for i, score in enumerate(sentence_scores):
            if score == float("-inf"):  # fewer finished than n_best (a tiny vocabulary)
                continue
            length = lengths[b][i]
            rows = weights[b, i, :length]
            if ended[b][i]:
                rows = torch.cat([rows, weights[b, i, -1:]])
            found.tokens.append(tokens[b, i, :length].tolist())
            found.attention.append(rows)
            found.scores.append(score)
        lists.append(found)
    return Hypotheses(
        tokens=[found.tokens[0] for found in lists],
        attention=[found.attention[0] for found in lists],
        scores=[found.scores[0] for found in lists],
        nbest=lists if nbest else None,
    )


def _run(model: Decodable, memory: Memory, limits: torch.Tensor, pick) -> Hypotheses:  # type: ignore[no-untyped-def]
    """Decode one token per row and step: `pick(log-probs) -> (their log-probs, tokens)` chooses them.

    Kept lean for speed: a few small tensor operations and one host sync (how many rows have finished?) per
    step. Finished rows are fed '</s>' until enough of them have finished to drop them from the batch (see
    COMPACT_SHARE); which picks count (and the scores) is worked out once at the end.
    """
    batch, device, eos = memory.batch_size, memory.states.device, model.eos_index
    tokens = torch.full((batch,), model.bos_index, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    state = model.start(memory)
    shortest, longest = (int(n) for n in torch.stack([limits.min(), limits.max()]).tolist())
    active_limits = limits
    record = _Segments(batch)
    for step in range(longest + 1):
        logits, state, attention = model.step(tokens, state, memory)
        logp, tokens = pick(torch.log_softmax(logits, dim=-1, dtype=torch.float32))
        tokens = tokens.masked_fill(finished, eos)
        record.add(tokens, _weights(attention, logits), logp)
        finished |= tokens == eos
        if step >= shortest:  # at its limit a row ends, with '</s>' if picked, else cut without it
            finished |= active_limits <= step
        done = int(finished.sum())
        if done == finished.size(0):
            break
        if _should_compact(done, finished.size(0)):
            keep = (~finished).nonzero().squeeze(1)
            record.select(keep)
            memory, tokens, active_limits = memory.select(keep), tokens[keep], active_limits[keep]
            state = model.reorder_state(state, keep)
            finished = finished[keep]
    steps, weights, logps = record.stacked((eos, 0.0, 0.0))
    return _without_empty_attention(_collect(steps, weights, logps, limits, eos))


class _Segments:
    """Per-step tensors of the rows still decoded, kept as segments of steps over a fixed set of rows: a
    segment closes when finished rows are dropped, and `stacked` writes them back into the original rows."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.rows: torch.Tensor | None = None  # original rows of the current ones; None: all, in order
        self.current: list[tuple[torch.Tensor, ...]] = []
        self.closed: list[tuple[torch.Tensor | None, int, list[torch.Tensor]]] = []
        self.steps = 0

    def add(self, *tensors: torch.Tensor) -> None:
        self.current.append(tensors)

    def select(self, keep: torch.Tensor) -> None:
        """Close the current segment; from now on the rows `keep` (of the current ones) go on."""
        self._close()
        self.rows = keep if self.rows is None else self.rows[keep]

    def _close(self) -> None:
        if self.current:
            stacked = [torch.stack(column, 1) for column in zip(*self.current, strict=True)]
            self.closed.append((self.rows, self.steps, stacked))
            self.steps += len(self.current)
            self.current = []

    def stacked(self, fills: tuple[float | int, ...]) -> list[torch.Tensor]:
        """One (batch, steps, ...) tensor per recorded column; steps after a row was dropped hold `fills`."""
        self._close()
        if len(self.closed) == 1 and self.closed[0][0] is None:  # no row was ever dropped
            return self.closed[0][2]
        out = []
        for column, fill in enumerate(fills):
            first = self.closed[0][2][column]
            full = torch.full((self.batch, self.steps, *first.shape[2:]), fill, dtype=first.dtype, device=first.device)
            for rows, start, tensors in self.closed:
                part = tensors[column]
                if rows is None:
                    full[:, start : start + part.size(1)] = part
                else:
                    full[rows, start : start + part.size(1)] = part
            out.append(full)
        return out


def _collect(
    steps: torch.Tensor, weights: torch.Tensor, logps: torch.Tensor, limits: torch.Tensor, eos: int
) -> Hypotheses:
    """(batch, steps) picks -> token lists, scores and attention rows. A row ends at its first '</s>' when that
    comes by its limit (its row of attention and log-probability count too); otherwise it is cut at the limit."""
    is_eos = steps == eos
    first = torch.where(is_eos.any(1), is_eos.int().argmax(1), steps.size(1))
    ended = first <= limits
    lengths = torch.minimum(first, limits)
    counted = torch.arange(steps.size(1), device=steps.device) < (lengths + ended.long()).unsqueeze(1)
    scores = torch.where(counted, logps, 0.0).sum(1)
    tokens, attention = [], []
    for row, rows_weights, length, with_eos in zip(
        steps.tolist(), weights.float().cpu(), lengths.tolist(), ended.tolist(), strict=True
    ):
        tokens.append(row[:length])
        attention.append(rows_weights[: length + with_eos])
    return Hypotheses(tokens=tokens, attention=attention, scores=scores.tolist())


@hookimpl
def transduce_components() -> list[type[SearchStrategy]]:
    return [GreedyDecoding, BeamSearch, SampleDecoding]
