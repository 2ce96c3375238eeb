"""The `subword` tokenizer: pieces learned by sentencepiece (BPE or unigram) from the training split."""

from __future__ import annotations

import io
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import sentencepiece as spm
from transduce_builtins.tokenizers import NORMALIZATIONS, normalize_text

from transduce.api import DataError, Param, Tokenizer, TransduceError, hookimpl

MODEL_FILE = "sentencepiece.model"
VOCAB_FILE = "sentencepiece.vocab"  # piece<TAB>score, one a line, for people to read

# sentencepiece writes the trainer's settings, the number of threads included, into the model:
# a fixed count makes the same texts give the same model bytes on every machine.
_THREADS = 1
_SAMPLE_SEED = 1  # for the sentences learned from when there are more than max_sentences


class SubwordTokenizer(Tokenizer):
    """Subword pieces learned by sentencepiece (BPE or unigram) from the training split.

    The text is normalised here, not by sentencepiece (its rule is set to identity): Unicode
    form `normalize` (NFKC, like sentencepiece's own nmt_nfkc, but keeping Hangul compatibility
    jamo such as ㅋ, which NFKC would change), invisible characters removed, runs of spaces made
    one, optional lowercasing. Round trips give back the text so normalised.

    The same texts give the same model, byte for byte. `vocab_size` is an upper bound: a small
    corpus gets fewer pieces. `character_coverage` 1.0
    keeps every character of the training text; 0.9995 suits scripts with thousands of
    characters (Chinese, Japanese, Korean), leaving the rarest out (they become `<unk>`).
    """

    name = "subword"
    params = (
        Param(
            "model_type",
            str,
            "bpe",
            "bpe merges frequent pairs (fast to learn); unigram keeps the likeliest pieces",
            choices=("bpe", "unigram"),
        ),
        Param("vocab_size", int, 8000, "most pieces to learn (fewer when the training text is small)", min=8),
        Param(
            "character_coverage",
            float,
            1.0,
            "share of the training characters that must be pieces; 0.9995 for Chinese, Japanese, Korean",
            min=0.98,
            max=1.0,
        ),
        Param("lowercase", bool, False, "lowercase the text first"),
        Param("normalize", str, "NFKC", "Unicode normalisation of the text", choices=NORMALIZATIONS),
        Param(
            "max_sentences",
            int,
            1_000_000,
            "learn from at most this many sentences, sampled from the training split; null: all",
            min=1,
            nullable=True,
        ),
    )

    def __init__(
        self,
        model_type: str = "bpe",
        vocab_size: int = 8000,
        character_coverage: float = 1.0,
        lowercase: bool = False,
        normalize: str = "NFKC",
        max_sentences: int | None = 1_000_000,
    ) -> None:
        if model_type not in ("bpe", "unigram"):
            raise ValueError(f"model_type must be bpe or unigram, got {model_type!r}")
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, got {normalize!r}")
        self.model_type = model_type
        self.vocab_size = vocab_size
        self.character_coverage = character_coverage
        self.lowercase = lowercase
        self.normalize = normalize
        self.max_sentences = max_sentences
        self._processor: spm.SentencePieceProcessor | None = None

    # --- learning and loading ------------------------------------------------------

    def fit(self, texts: Iterable[str], directory: Path) -> None:
        """Learn the pieces from `texts`; write sentencepiece.model (and .vocab, for people) in `directory`."""
        reader = _Reader((self._prepare(text) for text in texts), self.max_sentences)
        (directory / MODEL_FILE).write_bytes(self._train(reader))
        self.load(directory)
        model = self._model()
        pieces = (f"{model.id_to_piece(i)}\t{model.get_score(i):g}\n" for i in range(len(model)))
        (directory / VOCAB_FILE).write_text("".join(pieces), encoding="utf-8")

    def _train(self, reader: _Reader) -> bytes:
        model = io.BytesIO()  # not model_prefix: sentencepiece would record the run's path in the model
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(reader),
                model_writer=model,
                model_type=self.model_type,
                vocab_size=self.vocab_size,
                hard_vocab_limit=False,
                character_coverage=self.character_coverage,
                normalization_rule_name="identity",
                bos_id=-1,  # the core adds its own sentence markers
                eos_id=-1,
                num_threads=_THREADS,
                minloglevel=2,
            )
        except RuntimeError as exc:
            if reader.error is not None:
                raise reader.error from None
            raise self._training_error(str(exc), reader.count) from None
        if reader.error is not None:
            raise reader.error
        return model.getvalue()

    def load(self, directory: Path) -> None:
        path = directory / MODEL_FILE
        if not path.is_file():
            raise TransduceError(
                f"{path}: the subword model is missing, so the run directory is incomplete; "
                "train the run again (or copy the whole run directory, tokenizer files included)"
            )
        processor = spm.SentencePieceProcessor()
        try:
            processor.Load(str(path))
        except (OSError, RuntimeError) as exc:
            raise TransduceError(f"{path}: not a readable sentencepiece model ({exc}); train the run again") from None
        self._processor = processor

    def _training_error(self, message: str, sentences: int) -> DataError:
        if sentences == 0:
            return DataError("the subword tokenizer found no text to learn from: the training split is empty")
        needed = re.search(r"required_chars\. \d+ vs (\d+)", message)
        if needed:
            return DataError(
                f"subword vocab_size {self.vocab_size} is too small for the training text, whose characters "
                f"alone need {needed.group(1)} pieces; raise vocab_size (or lower character_coverage)"
            )
        return DataError(f"sentencepiece could not learn subwords from {sentences} sentences: {message}")

    # --- splitting and joining -----------------------------------------------------

    def tokenize(self, text: str) -> list[str]:
        text = self._prepare(text)
        return self._model().encode(text, out_type=str) if text else []

    def detokenize(self, tokens: Sequence[str]) -> str:
        return self._model().decode_pieces(list(tokens)) if tokens else ""

    def _prepare(self, text: str) -> str:
        text = " ".join(normalize_text(text, self.normalize).split())
        return text.lower() if self.lowercase else text

    def _model(self) -> spm.SentencePieceProcessor:
        if self._processor is None:
            raise RuntimeError("the subword tokenizer has learned nothing yet: call fit() or load() first")
        return self._processor


class _Reader:
    """Feeds sentencepiece the non-empty texts, or a sample of `limit` of them, and counts them.

    The sample is drawn here (reservoir sampling with a fixed seed, kept in corpus order)
    rather than by sentencepiece, whose own sampling differs from one process to the next.
    sentencepiece turns an exception raised by its input into a RuntimeError; this keeps the
    original (e.g. a DataError naming a bad line of a data file) so `fit` can raise it as it was.
    """

    def __init__(self, texts: Iterable[str], limit: int | None) -> None:
        self.texts = texts
        self.limit = limit
        self.count = 0
        self.error: Exception | None = None

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self._all() if self.limit is None else self._sample(self.limit)
        except Exception as exc:  # noqa: BLE001 - re-raised by `fit`
            self.error = exc

    def _all(self) -> Iterator[str]:
        for text in self.texts:
            if text:
                self.count += 1
                yield text

    def _sample(self, limit: int) -> Iterator[str]:
        rng = random.Random(_SAMPLE_SEED)
        sample: list[tuple[int, str]] = []
        for i, text in enumerate(self._all()):
            if i < limit:
                sample.append((i, text))
            elif (slot := rng.randrange(i + 1)) < limit:
                sample[slot] = (i, text)
        sample.sort()
        return (text for _, text in sample)


@hookimpl
def transduce_components() -> list[type[Tokenizer]]:
    return [SubwordTokenizer]
