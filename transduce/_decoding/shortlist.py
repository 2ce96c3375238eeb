"""Vocabulary shortlists: decoding a batch over the target tokens its sources make likely, not the whole vocabulary.

As Marian's lexical shortlists and CTranslate2's vocabulary map do: a lexical table learned from the training
split ranks, for each source token, the target tokens by the number of training pairs that hold both. A
batch decodes over the specials, the `frequent` most frequent target tokens and, for each of its source
tokens, the first `per_source` entries of its row beyond those; the output layer multiplies by their rows
alone (with an 8,000-token vocabulary it is most of a decoding step's work), and the softmax and the
search rank C tokens instead of V. Outputs may differ from decoding over the whole vocabulary where the
best token is not on the list, so shortlists are off unless asked for (evaluate.shortlist).

The table is learned the first time a run decodes with a shortlist and kept in the run as lexicon.pt,
written atomically, with the fingerprints of the vocabularies it indexes (a lexicon of other vocabularies
is refused). It is kept rather than learned at every start because the training data may no longer be at
hand, and because reading and tokenizing it costs seconds (Multi30K) to minutes (large corpora).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from transduce._data.vocab import SPECIALS, Vocabulary
from transduce._model import assembly as pipeline
from transduce._model.model import Seq2Seq
from transduce._plugins.contracts import Example, Hypotheses, Memory, SearchStrategy, Tokenizer
from transduce._plugins.registry import Registry
from transduce._recipe.settings import MAX_SHORTLIST
from transduce._runs import checkpoint
from transduce._runs.rundir import RunDir
from transduce.errors import DataError, RunError

#: Entries kept per source token (row) in lexicon.pt, most associated first: the largest shortlist
#: (evaluate.shortlist) beyond the frequent tokens it leaves out.
STORED_PER_SOURCE = 2 * MAX_SHORTLIST
#: Training pairs counted at once while learning, so memory stays bounded on a large corpus (a chunk of
#: 20,000 pairs of 12 x 12 distinct tokens holds about 3M pair codes, some 100 MB while counted).
CHUNK = 20_000
FORMAT = 1

EncodedPair = tuple[Sequence[int], Sequence[int]]
#: How the lexicon reads one side of the training text: the run's tokenizer and vocabulary of that side.
Encoding = tuple[Tokenizer, Vocabulary]


@dataclass
class Lexicon:
    """For each source token s, the target tokens that share a training pair with it, ranked by the number
    of such pairs (ties: the more frequent target token, the lower index, first), at most STORED_PER_SOURCE.

    offsets: (source vocabulary + 1,) int64: row s is targets[offsets[s]:offsets[s + 1]]; targets: (n,) int64.
    fingerprints: the run's vocabulary files' SHA-256 it was learned with (RunDir.fingerprints).
    """

    offsets: torch.Tensor
    targets: torch.Tensor
    fingerprints: dict[str, str]

    @property
    def source_size(self) -> int:
        return self.offsets.numel() - 1

    @classmethod
    def learn(
        cls, pairs: Iterable[EncodedPair], source_size: int, target_size: int, fingerprints: dict[str, str]
    ) -> Lexicon:
        """Count, over `pairs` of (source, target) indices, the pairs that hold each (source, target) token pair."""
        codes, counts = torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long)
        iterator = iter(pairs)
        while chunk := list(itertools.islice(iterator, CHUNK)):
            codes, counts = _merged(codes, counts, torch.cat([_pair_codes(p, target_size) for p in chunk]))
        sources, targets = codes // target_size, codes % target_size
        order = torch.sort(-counts, stable=True).indices  # most pairs first; ties keep (source, target) order
        order = order[torch.sort(sources[order], stable=True).indices]  # then grouped by source, stably
        sources, targets = sources[order], targets[order]
        sizes = torch.bincount(sources, minlength=source_size)
        starts = torch.cumsum(sizes, 0) - sizes
        keep = torch.arange(sources.numel()) - starts[sources] < STORED_PER_SOURCE
        kept = torch.bincount(sources[keep], minlength=source_size)
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(kept, 0)])
        return cls(offsets, targets[keep], dict(fingerprints))

    def save(self, path: Path) -> None:
        payload = {"format": FORMAT, "offsets": self.offsets, "targets": self.targets, "files": self.fingerprints}
        checkpoint.save_atomic(payload, path)

    @classmethod
    def load(cls, path: Path) -> Lexicon:
        """lexicon.pt as `save` wrote it; anything else is a RunError naming the file and what to do."""
        saved = checkpoint.load(path)
        remedy = f"delete {path.name} and decode again: it is learned again from the training split"
        if saved.get("format") != FORMAT:
            raise RunError(f"{path}: not a lexicon of this transduce (format {saved.get('format')!r}); {remedy}")
        offsets, targets, files = saved.get("offsets"), saved.get("targets"), saved.get("files")
        if not (
            isinstance(offsets, torch.Tensor)
            and isinstance(targets, torch.Tensor)
            and isinstance(files, dict)
            and offsets.dtype == targets.dtype == torch.long
            and offsets.dim() == targets.dim() == 1
            and offsets.numel() >= 1
            and int(offsets[0]) == 0
            and int(offsets[-1]) == targets.numel()
            and bool((offsets[1:] >= offsets[:-1]).all())
        ):
            raise RunError(f"{path}: its offsets and targets do not form a lexicon (a damaged file?); {remedy}")
        return cls(offsets, targets, files)

    def check(self, path: Path, fingerprints: dict[str, str], source_size: int, target_size: int) -> None:
        """Refuse a lexicon learned with other vocabularies than the run's (or of other sizes)."""
        learned = {name: self.fingerprints.get(name) for name in fingerprints if name.startswith("vocab.")}
        now = {name: digest for name, digest in fingerprints.items() if name.startswith("vocab.")}
        in_range = self.targets.numel() == 0 or (0 <= int(self.targets.min()) and int(self.targets.max()) < target_size)
        if learned != now or self.source_size != source_size or not in_range:
            raise RunError(
                f"{path} was learned with other vocabularies than the run's; delete it and decode again: it is "
                "learned again from the training split"
            )


def _pair_codes(pair: EncodedPair, target_size: int) -> torch.Tensor:
    """source * target_size + target for every distinct (source token, target token) of one training pair."""
    source = torch.tensor(sorted(set(pair[0])), dtype=torch.long)
    target = torch.tensor(sorted(set(pair[1])), dtype=torch.long)
    return (source.unsqueeze(1) * target_size + target).flatten()


def _merged(codes: torch.Tensor, counts: torch.Tensor, new: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sorted distinct codes, how many pairs hold each) after adding the codes `new` (one per pair)."""
    all_codes = torch.cat([codes, new])
    weights = torch.cat([counts, torch.ones_like(new)])
    distinct, inverse = torch.unique(all_codes, return_inverse=True)
    return distinct, torch.zeros_like(distinct).index_add_(0, inverse, weights)


class Shortlist:
    """The candidates of each batch (see the module's docstring): the specials and the `frequent` most
    frequent target tokens (a Vocabulary's indices 4, 5, ... rank its tokens by frequency), and per source
    token its `per_source` best lexicon entries beyond those."""

    def __init__(self, lexicon: Lexicon, per_source: int, frequent: int, target_size: int) -> None:
        self.per_source, self.frequent, self.target_size = per_source, frequent, target_size
        self.always = min(len(SPECIALS) + frequent, target_size)  # indices below it are always candidates
        self.table = _rows(lexicon, per_source, self.always)  # (source vocabulary, per_source), 0 where none

    def candidates(self, source: torch.Tensor) -> torch.Tensor:
        """source (batch, src_len) indices -> (C,) sorted target indices (specials included)."""
        rows = self.table.to(source.device)[source.unique()].flatten()  # padding's row is all 0 (`<pad>`)
        always = torch.arange(self.always, device=source.device)
        return torch.unique(torch.cat([always, rows]))

    def decode(self, strategy: SearchStrategy, model: Seq2Seq, memory: Memory, source: torch.Tensor) -> Hypotheses:
        """`strategy`'s hypotheses for the batch of `source` (batch, src_len), over its candidates; over the whole
        vocabulary, as without a shortlist, when they are all of it."""
        candidates = self.candidates(source.to(memory.states.device))
        if candidates.numel() == self.target_size:
            return strategy.decode(model, memory)
        return Shortlisted(model, candidates).decode(strategy, memory)


def _rows(lexicon: Lexicon, per_source: int, always: int) -> torch.Tensor:
    """(source vocabulary, per_source): each row's first `per_source` entries of index >= always, 0-padded."""
    sizes = lexicon.offsets[1:] - lexicon.offsets[:-1]
    sources = torch.repeat_interleave(torch.arange(lexicon.source_size), sizes)
    wanted = lexicon.targets >= always
    sources, targets = sources[wanted], lexicon.targets[wanted]
    kept = torch.bincount(sources, minlength=lexicon.source_size)
    rank = torch.arange(sources.numel()) - (torch.cumsum(kept, 0) - kept)[sources]
    inside = rank < per_source
    table = torch.zeros((lexicon.source_size, per_source), dtype=torch.long)
    table[sources[inside], rank[inside]] = targets[inside]
    return table


class Shortlisted:
    """`model` decoding over the target tokens `candidates` (C,) only, for search strategies: the vocabulary
    they see has C tokens, positions in `candidates` (sorted, with the specials, so `<s>` and `</s>` keep
    their indices). `hypotheses` maps their results back to target indices."""

    def __init__(self, model: Seq2Seq, candidates: torch.Tensor) -> None:
        self.model, self.candidates = model, candidates
        self.bos_index = int(torch.searchsorted(candidates, model.bos_index))
        self.eos_index = int(torch.searchsorted(candidates, model.eos_index))

    def start(self, memory: Memory) -> Any:
        return self.model.start(memory)

    def reorder_state(self, state: Any, index: torch.Tensor) -> Any:
        return self.model.reorder_state(state, index)

    def step(self, tokens: torch.Tensor, state: Any, memory: Memory) -> tuple[torch.Tensor, Any, torch.Tensor | None]:
        """tokens (rows,) positions in `candidates` -> logits (rows, C), next state, attention."""
        logits, state, attention = self.model.step(self.candidates[tokens], state, memory)
        if logits.size(-1) != self.candidates.numel():  # a decoder network that scores the whole vocabulary
            logits = logits.index_select(-1, self.candidates)
        return logits, state, attention

    def decode(self, strategy: SearchStrategy, memory: Memory) -> Hypotheses:
        """`strategy`'s hypotheses over the candidates, as target indices."""
        with self.model.restricted_output(self.candidates):
            return self.hypotheses(strategy.decode(self, memory))

    def hypotheses(self, found: Hypotheses) -> Hypotheses:
        """A search strategy's result, its tokens (positions in `candidates`) as target indices."""
        index = self.candidates.tolist()
        nbest = [self.hypotheses(candidates) for candidates in found.nbest] if found.nbest is not None else None
        tokens = [[index[position] for position in tokens] for tokens in found.tokens]
        return Hypotheses(tokens, found.attention, found.scores, nbest)


def run_lexicon(run: RunDir, registry: Registry, recipe: dict[str, Any], sides: tuple[Encoding, Encoding]) -> Lexicon:
    """The run's lexicon.pt; the first time, learned from the recipe's training split and saved there (a run
    that cannot be written learns it again next time)."""
    fingerprints = run.fingerprints()
    if run.lexicon.exists():
        lexicon = Lexicon.load(run.lexicon)
    else:
        try:
            examples = pipeline.data_source(registry, recipe).split("train")
            lexicon = Lexicon.learn(_encoded(examples, sides), *(len(side[1]) for side in sides), fingerprints)
        except DataError as exc:
            raise DataError(
                f"evaluate.shortlist learns its lexicon from the run's training split the first time it is used, and "
                f"that failed: {exc}; point --set data.path=... at the training data, or decode without a shortlist"
            ) from None
        with contextlib.suppress(OSError):
            lexicon.save(run.lexicon)
    lexicon.check(run.lexicon, fingerprints, len(sides[0][1]), len(sides[1][1]))
    return lexicon


def _encoded(examples: Iterable[Example], sides: tuple[Encoding, Encoding]) -> Iterator[EncodedPair]:
    """(source, target) indices of each training example, as the run's tokenizers and vocabularies give them."""
    (source_tokenizer, source_vocab), (target_tokenizer, target_vocab) = sides
    for example in examples:
        yield (
            source_vocab.encode(source_tokenizer.tokenize(example.source)),
            target_vocab.encode(target_tokenizer.tokenize(example.target)),
        )
