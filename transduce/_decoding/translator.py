"""A trained model ready to use: text in, text out, batched and length-sorted."""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from transduce._data.batching import by_length, source_tensors
from transduce._data.vocab import Vocabulary
from transduce._decoding.shortlist import Shortlist, run_lexicon
from transduce._model import assembly as pipeline
from transduce._model.model import Seq2Seq
from transduce._plugins.contracts import Hypotheses, SearchStrategy, Tokenizer
from transduce._plugins.registry import Registry
from transduce._recipe.settings import Settings
from transduce._runs.opening import open_run
from transduce._runs.rundir import RunDir
from transduce.errors import RecipeError

#: Source tokens one decoded input may have; longer inputs are cut to it, with a note (docs/decoding.md). Far
#: beyond the sentences the bundled recipes train on (dates: 29 characters, Multi30K: about 40 words), so only
#: runaway inputs (a whole file on one line) are cut, and one sentence's attention record stays a few MB.
MAX_SOURCE_TOKENS = 1024
#: Characters kept per allowed source token before tokenizing, so a 1,000,000-character line is cut before
#: the tokenizer sees it.
CHARS_PER_TOKEN = 64
#: The estimated peak memory (bytes) of one decoding batch: a larger batch is split into smaller ones (the
#: outputs do not depend on the batch), and a strategy that needs more for one sentence is refused.
DECODE_MEMORY_BUDGET = 2_000_000_000
#: Floats per source token and model width that encoding holds (embeddings, encoder states and their
#: internals, the attention's prepared keys): a generous round figure.
ENCODER_COPIES = 8


def decode_bytes(sentences: int, rows_each: int, source_length: int, output_tokens: int, vocab: int, width: int) -> int:
    """Estimated peak bytes of decoding `sentences` sources of `source_length` tokens into up to
    `output_tokens` tokens each, with `rows_each` model rows per sentence (a beam's size).

    Per sentence: the encoded source (ENCODER_COPIES x source_length x width floats). Per row: one step's
    logits and log-probabilities (3 x vocab floats) and the attention record, one (source_length,) row per
    step, copied once more when stacked (3 x steps x source_length floats).
    """
    per_row = 3 * vocab + 3 * (output_tokens + 1) * source_length
    return 4 * sentences * (ENCODER_COPIES * source_length * width + rows_each * per_row)


def _size(count: float) -> str:
    """Bytes for people: '6.4 GB', '512 MB'."""
    return f"{count / 1e9:.1f} GB" if count >= 1e9 else f"{max(count / 1e6, 0.1):.1f} MB"


def decoding_dtype(device: torch.device, precision: str) -> torch.dtype:
    """The dtype the decoding steps multiply in (Seq2Seq.reduced_products): on the CPU, bfloat16 for `bf16`
    (oneDNN's bfloat16 matrix kernels) and int8 for `int8` (torch._int_mm); float32 otherwise (on CUDA the
    bfloat16 path is unmeasured). A RecipeError for `int8` where torch has no int8 kernel for the device."""
    if precision == "int8":
        _check_int8(device)
        return torch.int8
    return torch.bfloat16 if precision == "bf16" and device.type == "cpu" else torch.float32


def _check_int8(device: torch.device) -> None:
    if device.type != "cpu":
        raise RecipeError(
            f"int8 decoding runs on the CPU's int8 kernels, not on {device.type}: use fp32 or bf16 there, or "
            "decode on the CPU with --set train.device=cpu",
            key="train.precision",
        )
    if missing := int8_kernel_missing():
        raise RecipeError(
            f"int8 decoding needs an int8 matrix kernel, and this PyTorch build has none on this CPU ({missing}); "
            "use bf16 (CPUs with AVX-512 BF16 or AMX) or fp32 instead",
            key="train.precision",
        )


@functools.cache
def int8_kernel_missing() -> str | None:
    """Why torch cannot multiply int8 matrices on this CPU, or None when it can: a small product through
    torch._int_mm (oneDNN, with VNNI or AMX where the CPU has them), checked against the exact result."""
    left = torch.arange(-64, 64, dtype=torch.int8).view(4, 32)
    right = left.t().flip(0).contiguous()
    try:
        product = torch._int_mm(left, right)
    except (AttributeError, NotImplementedError, RuntimeError) as exc:
        return f"torch._int_mm: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    if not torch.equal(product, left.int() @ right.int()):
        return "torch._int_mm gave a wrong product"
    return None


@dataclass
class Translation:
    """One input's translation with what the search strategy knows about it.

    source_tokens: the source as the tokenizer split it.
    tokens: output tokens, without `<s>` and `</s>`; text: them detokenized.
    score: raw log-probability (natural log) of the tokens, plus `</s>` when it was emitted, under the model;
        None when the strategy gives no scores (or the input was empty).
    attention: (rows, len(source_tokens)) float on the CPU, one row per output token plus a last row for
        `</s>` when it was emitted, each row summing to 1; None when the strategy gives none.
    alternatives: the n-best list in score order (the first is this translation) when the strategy gives
        one, else [].
    """

    source_tokens: list[str]
    tokens: list[str]
    text: str
    score: float | None = None
    attention: torch.Tensor | None = None
    alternatives: list[Translation] = field(default_factory=list)


@dataclass
class Translator:
    """Tokenizers, vocabularies, model and search strategy of one run.

    precision: "bf16" decodes on the CPU with the decoding steps' matrix products in bfloat16
    (Seq2Seq.reduced_products; a run trained with `train.precision: bf16` decodes so by default). On CPUs with
    AMX beam search runs faster (1.3-1.4x on 2 cores), greedy decoding about as fast; the weights, the
    encoder and everything elementwise stay in float32. Outputs may differ from float32 decoding where two
    tokens are nearly tied. "int8" multiplies in int8 with per-row scales (the CPU only; a RecipeError where
    torch has no int8 kernel). GPUs decode in float32, with bf16 too, and refuse int8.
    max_source_tokens: longer inputs are cut to it (counted in `truncated`, a plain counter: one Translator per
    thread); memory_budget: the estimated bytes one decoding batch may take (decode_bytes): a strategy that
    needs more for one longest input is refused when the Translator is made, a larger batch is split.
    reverse_source: the encoder reads each source reversed (the recipe's `source.reverse`); a Translation's
    attention columns are turned back, so they follow `source_tokens` in reading order.
    shortlist: decode each batch over its vocabulary shortlist only (transduce._decoding.shortlist; evaluate.shortlist),
    None: over the whole target vocabulary.
    """

    model: Seq2Seq
    source_tokenizer: Tokenizer
    target_tokenizer: Tokenizer
    source_vocab: Vocabulary
    target_vocab: Vocabulary
    decoding: SearchStrategy
    device: torch.device
    precision: str = "fp32"
    reverse_source: bool = False
    shortlist: Shortlist | None = None
    max_source_tokens: int = MAX_SOURCE_TOKENS
    memory_budget: int = DECODE_MEMORY_BUDGET
    truncated: int = field(default=0, compare=False)  # inputs cut to max_source_tokens so far

    def __post_init__(self) -> None:
        """Refuse a precision the device cannot decode in (decoding_dtype), and, before anything is allocated,
        a strategy whose decoding of one longest input (of max_source_tokens) would exceed the memory budget;
        a batch of them is then split to fit."""
        decoding_dtype(self.device, self.precision)
        need = self._batch_bytes(1, self.max_source_tokens)
        if need > self.memory_budget:
            strategy = self.decoding
            raise RecipeError(
                f"decoding one input of {self.max_source_tokens:,} source tokens with {strategy.name!r} "
                f"({strategy.rows_per_sentence():,} rows per sentence, up to "
                f"{strategy.most_output_tokens(self.max_source_tokens):,} output tokens, a vocabulary of "
                f"{len(self.target_vocab):,}) would take about {_size(need)}, more than the "
                f"{_size(self.memory_budget)} one decoding batch may take: lower the beam size, max_length or "
                "max_ratio",
                key="search",
            )

    @classmethod
    def from_run(
        cls,
        run: RunDir,
        registry: Registry,
        *,
        which: str | Path = "best",
        device: str = "auto",
        overrides: Sequence[str] = (),
        recipe: dict[str, Any] | None = None,
    ) -> Translator:
        """Load a run's vocabularies and checkpoint, with its recipe (`overrides` may change e.g. the search
        strategy, or `train.precision` to decode in another precision) unless the caller already resolved it and
        passes `recipe` (transduce._runs.opening.open_run)."""
        opened = open_run(run, registry, overrides, checkpoint=which, device=device, recipe=recipe)
        recipe = opened.recipe
        settings = Settings.of(recipe)
        shortlist = None
        if settings.evaluate.shortlist is not None:
            sides = ((opened.source_tokenizer, opened.source_vocab), (opened.target_tokenizer, opened.target_vocab))
            lexicon = run_lexicon(opened.run, registry, recipe, sides)
            size, frequent = settings.evaluate.shortlist, settings.evaluate.shortlist_frequent
            shortlist = Shortlist(lexicon, size, frequent, len(opened.target_vocab))
        return cls(
            model=opened.model,
            source_tokenizer=opened.source_tokenizer,
            target_tokenizer=opened.target_tokenizer,
            source_vocab=opened.source_vocab,
            target_vocab=opened.target_vocab,
            decoding=pipeline.search(registry, recipe),
            device=opened.device,
            precision=settings.train.precision,
            reverse_source=settings.source.reverse,
            shortlist=shortlist,
        )

    def _batch_bytes(self, sentences: int, source_length: int) -> int:
        """decode_bytes for this model and strategy."""
        strategy = self.decoding
        return decode_bytes(
            sentences,
            strategy.rows_per_sentence(),
            source_length,
            strategy.most_output_tokens(source_length),
            len(self.target_vocab),
            2 * self.model.encoder.output_size,  # the states, and a decoder network's vector per position
        )

    def truncation_note(self, since: int = 0) -> str | None:
        """What to tell the user about the inputs cut since the count was `since`; None when none was."""
        count = self.truncated - since
        if count <= 0:
            return None
        inputs, their = ("1 input was", "its") if count == 1 else (f"{count:,} inputs were", "their")
        return (
            f"{inputs} longer than {self.max_source_tokens:,} source tokens (the decoding limit): only {their} "
            f"first {self.max_source_tokens:,} tokens were translated (see docs/decoding.md)"
        )

    def translate(self, texts: Sequence[str], batch_size: int = 256) -> list[str]:
        """Detokenized outputs, in the order of `texts`."""
        return [self.target_tokenizer.detokenize(tokens) for tokens in self.translate_tokens(texts, batch_size)]

    def translate_stream(self, texts: Iterable[str], batch_size: int = 256, chunk: int = 4096) -> Iterator[str]:
        """Outputs in input order, translating `chunk` texts at a time, so memory stays flat on long inputs."""
        iterator = iter(texts)
        while piece := list(itertools.islice(iterator, chunk)):
            yield from self.translate(piece, batch_size)

    def translate_tokens(self, texts: Sequence[str], batch_size: int = 256) -> list[list[str]]:
        """Output tokens for each text; batches group texts of similar length; an empty text gives []."""
        encoded = [self.source_vocab.encode(tokens) for tokens in self.source_tokens(texts)]
        outputs: list[list[str]] = [[] for _ in texts]
        for indices, hypotheses in self._decode(encoded, batch_size):
            for index, tokens in zip(indices, hypotheses.tokens, strict=True):
                outputs[index] = self.target_vocab.decode(tokens)
        return outputs

    def translate_detailed(self, texts: Sequence[str], batch_size: int = 256) -> list[Translation]:
        """A `Translation` per text, in the order of `texts`: tokens, score, attention and n-best when the
        search strategy gives them. An empty text gives an empty Translation."""
        sources = self.source_tokens(texts)
        encoded = [self.source_vocab.encode(tokens) for tokens in sources]
        outputs = [Translation(tokens, [], self.target_tokenizer.detokenize([])) for tokens in sources]
        for indices, hypotheses in self._decode(encoded, batch_size):
            for row, index in enumerate(indices):
                outputs[index] = self._detailed(sources[index], hypotheses, row)
        return outputs

    def source_tokens(self, texts: Iterable[str]) -> list[list[str]]:
        """Each text tokenized, cut to max_source_tokens (counted in `truncated`); the text is cut to
        CHARS_PER_TOKEN characters per allowed token first, so the tokenizer never reads a runaway line."""
        limit, sources = self.max_source_tokens, []
        for text in texts:
            tokens = self.source_tokenizer.tokenize(text[: limit * CHARS_PER_TOKEN])
            if len(tokens) > limit or len(text) > limit * CHARS_PER_TOKEN:
                tokens = tokens[:limit]
                self.truncated += 1
            sources.append(tokens)
        return sources

    def with_decoding(self, strategy: SearchStrategy) -> Translator:
        """The same model, vocabularies and tokenizers with another search strategy; a RecipeError when
        the strategy would need more memory than the budget (see __post_init__)."""
        return dataclasses.replace(self, decoding=strategy)

    def _decode(self, encoded: Sequence[list[int]], batch_size: int) -> Iterator[tuple[list[int], Hypotheses]]:
        """(indices into `encoded`, their hypotheses) per length-sorted batch; empty inputs are skipped.
        Batch by batch, so memory stays flat however many texts are given."""
        todo = [i for i, e in enumerate(encoded) if e]
        was_training = self.model.training
        self.model.eval()
        product_dtype = decoding_dtype(self.device, self.precision)
        try:
            for group in self.batches([len(encoded[i]) for i in todo], batch_size):
                indices = [todo[g] for g in group]
                source, lengths = source_tensors(
                    [encoded[i] for i in indices], self.source_vocab.pad_index, reverse=self.reverse_source
                )
                with torch.inference_mode(), self.model.reduced_products(product_dtype):
                    memory = self.model.encode(source.to(self.device), lengths)
                    if self.shortlist is None:
                        hypotheses = self.decoding.decode(self.model, memory)
                    else:
                        hypotheses = self.shortlist.decode(self.decoding, self.model, memory, source)
                yield indices, hypotheses  # outside inference mode: the caller's code runs as usual
        finally:
            self.model.train(was_training)

    def batches(self, lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
        """by_length's batches (indices into `lengths`, source tokens), each split further so that its
        estimated decoding memory fits the budget."""
        for group in by_length(lengths, batch_size):
            each = self._batch_bytes(1, max(lengths[i] for i in group))
            fitting = max(1, self.memory_budget // each)
            for start in range(0, len(group), fitting):
                yield group[start : start + fitting]

    def _detailed(self, source: list[str], hypotheses: Hypotheses, row: int) -> Translation:
        """Sentence `row` of `hypotheses` (its n-best list too) as a Translation."""
        best = self._candidate(
            source,
            hypotheses.tokens[row],
            hypotheses.scores[row] if hypotheses.scores is not None else None,
            hypotheses.attention[row] if hypotheses.attention is not None else None,
        )
        if hypotheses.nbest is not None:
            nbest = hypotheses.nbest[row]
            best.alternatives = [
                self._candidate(
                    source,
                    tokens,
                    nbest.scores[i] if nbest.scores is not None else None,
                    nbest.attention[i] if nbest.attention is not None else None,
                )
                for i, tokens in enumerate(nbest.tokens)
            ]
        return best

    def _candidate(
        self, source: list[str], indices: list[int], score: float | None, attention: torch.Tensor | None
    ) -> Translation:
        # '<pad>' and '<s>' (only an untrained model emits them) are dropped as `translate` drops them,
        # together with their attention rows, so rows and tokens stay aligned.
        specials = (self.target_vocab.pad_index, self.target_vocab.bos_index)
        keep = [i for i, index in enumerate(indices) if index not in specials]
        tokens = [self.target_vocab.tokens[indices[i]] for i in keep]
        if attention is not None:
            rows = keep + list(range(len(indices), attention.size(0)))  # and the row of '</s>', if any
            attention = attention[rows, : len(source)].float().cpu()
            if self.reverse_source:  # column j weighed the source's j-th token from the end
                attention = attention.flip(-1)
        return Translation(source, tokens, self.target_tokenizer.detokenize(tokens), score, attention)
