"""The conformance kit (`transduce.testing`): every built-in passes it, a broken component of each family
fails it with a message naming the contract point, and `transduce plugins --check` runs it."""

from __future__ import annotations

import contextlib
import itertools
import random
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from transduce._cli import main as cli
from transduce._plugins.registry import default_disagreements, discover
from transduce.api import (
    REQUIRED,
    AttentionScorer,
    DataSource,
    DecoderNetwork,
    Encoder,
    EncoderOutput,
    Example,
    Hypotheses,
    Logger,
    Memory,
    Metric,
    Param,
    Score,
    SearchStrategy,
    Seq2Seq,
    Tokenizer,
)
from transduce.testing import (
    ConformanceError,
    assert_conforms,
    check_component,
    check_decoder,
    check_encoder,
    check_search,
    conformance,
)

# --- every built-in conforms --------------------------------------------------------------------


def write_corpora(directory: Path) -> dict[str, dict[str, Any]]:
    """Small generated files for the built-in data sources that read files, and the params naming them."""
    pairs = [(f"src {i} {'x' * (i % 5)}", f"tgt {i}") for i in range(60)]
    (directory / "pairs.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    (directory / "pairs.csv").write_text("Q,A\n" + "".join(f"{s},{t}\n" for s, t in pairs), encoding="utf-8")
    for stem, chunk in (("train", pairs[:40]), ("val", pairs[40:50]), ("test", pairs[50:])):
        (directory / f"{stem}.de").write_text("".join(f"{s}\n" for s, _ in chunk), encoding="utf-8")
        (directory / f"{stem}.en").write_text("".join(f"{t}\n" for _, t in chunk), encoding="utf-8")
    held_out = {"valid_size": 5, "test_size": 5}
    return {
        "tsv": {"path": str(directory / "pairs.tsv"), **held_out},
        "csv": {"path": str(directory / "pairs.csv"), "source_column": "Q", "target_column": "A", **held_out},
        "parallel": {"path": str(directory), "source_language": "de", "target_language": "en"},
    }


#: Further settings each built-in is checked with, besides its defaults.
VARIANTS: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("tokenizer", "char"): [{"lowercase": True}],
    ("tokenizer", "word"): [{"lowercase": True}],
    ("encoder", "lstm"): [
        {"hidden_size": 8, "layers": 2, "bidirectional": False, "dropout": 0.1},
        {"hidden_size": 8, "layers": 3, "residual": True},
    ],
    ("attention", "additive"): [{"hidden_size": 4}],
    ("search", "greedy"): [{"max_length": 1}],
    ("decoder", "lstm"): [{"hidden_size": 8, "layers": 2, "dropout": 0.2}, {"hidden_size": 5, "layers": 3}],
    ("dataset", "dates"): [{"train_size": 200, "valid_size": 20, "test_size": 20, "seed": 3}],
    ("metric", "exact_match"): [{"strip": False}],
    ("metric", "bleu"): [{"tokenize": "char", "lowercase": True}],
    ("metric", "chrf"): [{"word_order": 2}],
    ("optimizer", "adamw"): [{"weight_decay": 0.1, "beta1": 0.8}],
    ("optimizer", "sgd"): [{"momentum": 0.9, "nesterov": True, "weight_decay": 0.01}],
    ("schedule", "plateau"): [{"decay": 0.5, "min_lr": 0.001}],
    ("schedule", "warmup"): [{"warmup_steps": 5}, {"warmup_steps": 5, "model_size": 16}],
    ("schedule", "cosine"): [{"steps": 10, "min_lr": 0.001}],
    ("schedule", "exponential"): [{"decay": 0.9, "every": 3, "min_lr": 0.001}],
}

#: Built-ins whose behaviour cannot be checked in this environment, and why.
MAY_BE_PARTLY_CHECKED = {("logger", "tensorboard"): "needs the optional tensorboard package"}

BUILTINS = [info for info in discover() if info.provider.distribution == "transduce"]


@pytest.mark.parametrize("info", BUILTINS, ids=lambda info: f"{info.family}-{info.name}")
def test_every_builtin_component_conforms(info, tmp_path: Path) -> None:
    generated = write_corpora(tmp_path) if info.family == "dataset" else {}
    settings = [generated.get(info.name, {})]
    settings += [{**settings[0], **variant} for variant in VARIANTS.get((info.family, info.name), [])]
    for params in settings:
        report = conformance(info.cls, params)
        assert report.problems == [], params
        if (info.family, info.name) not in MAY_BE_PARTLY_CHECKED:
            assert not [note for note in report.notes if "behaviour not checked" in note], params


def test_the_builtins_are_all_there() -> None:
    families = {info.family for info in BUILTINS}
    assert {"tokenizer", "encoder", "attention", "decoder", "search", "dataset", "metric"} <= families
    assert {"optimizer", "schedule"} <= families


def test_a_component_that_needs_a_parameter_is_checked_partly_and_says_so() -> None:
    dataset = discover().get("dataset", "parallel").cls
    report = conformance(dataset)
    assert report.ok
    assert report.notes == [
        "behaviour not checked: required parameter(s) path, source_language, target_language not given "
        "(pass them, e.g. check_component(cls, {'path': ...}))"
    ]


def test_assert_conforms_raises_with_every_problem_listed() -> None:
    with pytest.raises(ConformanceError) as caught:
        assert_conforms(TransposedScorer)
    message = str(caught.value)
    assert message.startswith("attention 'transposed' does not conform to its contract:\n  - ")
    assert "scores must be (batch, tgt_len, src_len) = (3, 4, 5), got (3, 5, 4)" in message


def test_a_family_check_refuses_a_class_of_another_family() -> None:
    assert check_encoder(TransposedScorer) == [
        f"family: expected a encoder (a subclass of Encoder), got {TransposedScorer!r}"
    ]


def test_the_kit_leaves_the_callers_random_state_alone() -> None:
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    assert check_component(discover().get("encoder", "lstm").cls) == []
    assert torch.equal(torch.rand(3), expected)


# --- broken components fail, with the contract point in the message -------------------------------


class LossyTokenizer(Tokenizer):
    """Drops numbers."""

    name = "lossy"

    def tokenize(self, text: str) -> list[str]:
        return [word for word in text.split() if not word.isdigit()]

    def detokenize(self, tokens: Sequence[str]) -> str:
        return " ".join(tokens)


class ForgetfulTokenizer(Tokenizer):
    """Learns a vocabulary but does not save it, so `load` gives a different tokenizer."""

    name = "forgetful"

    def __init__(self) -> None:
        self.known: set[str] = set()

    def fit(self, texts, directory: Path) -> None:
        self.known = {word for text in texts for word in text.split()}

    def load(self, directory: Path) -> None:
        pass

    def tokenize(self, text: str) -> list[str]:
        return [word if word in self.known else "?" for word in text.split()]

    def detokenize(self, tokens: Sequence[str]) -> str:
        return " ".join(tokens)


class UnjoinedEncoder(Encoder):
    """Bidirectional LSTM that returns its final states without joining the two directions."""

    name = "unjoined"
    params = (Param("hidden_size", int, 8, "size"),)

    def __init__(self, input_size: int, hidden_size: int = 8) -> None:
        super().__init__()
        self.output_size, self.layers = hidden_size, 1
        self.rnn = nn.LSTM(input_size, hidden_size // 2, batch_first=True, bidirectional=True)

    def forward(self, embedded: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        out, final = self.rnn(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=embedded.size(1))
        return EncoderOutput(states, final)


class PaddingEncoder(Encoder):
    """Runs an LSTM over the padded batch, ignoring `lengths`."""

    name = "padding"

    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.output_size, self.layers = 8, 1
        self.rnn = nn.LSTM(input_size, 8, batch_first=True)

    def forward(self, embedded: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        states, final = self.rnn(embedded)
        return EncoderOutput(states, final)


class HalfStatesEncoder(UnjoinedEncoder):
    """Joins its directions, but within reduced_products hands back bfloat16 states."""

    name = "half_states"

    def __init__(self, input_size: int, hidden_size: int = 8) -> None:
        super().__init__(input_size, hidden_size)
        self.reduced = False

    @contextlib.contextmanager
    def reduced_products(self, dtype):
        self.reduced = True
        try:
            yield
        finally:
            self.reduced = False

    def forward(self, embedded: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        states, (h, c) = super().forward(embedded, lengths)
        h, c = (torch.cat(state.unbind(0), dim=-1).unsqueeze(0) for state in (h, c))
        return EncoderOutput(states.bfloat16() if self.reduced else states, (h, c))


class TransposedScorer(AttentionScorer):
    """Returns (batch, src_len, tgt_len)."""

    name = "transposed"

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__()
        self.project = nn.Linear(key_size, query_size)

    def prepare(self, keys: torch.Tensor) -> torch.Tensor:
        return self.project(keys)

    def score(self, query: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        return torch.bmm(prepared, query.transpose(1, 2))


class PeekingScorer(AttentionScorer):
    """Adds the mean of all query positions, so a position's score depends on later ones."""

    name = "peeking"

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__()
        self.project = nn.Linear(key_size, query_size)

    def prepare(self, keys: torch.Tensor) -> torch.Tensor:
        return self.project(keys)

    def score(self, query: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        return torch.bmm(query + query.mean(dim=1, keepdim=True), prepared.transpose(1, 2))


class EndlessDecoding(SearchStrategy):
    """Greedy decoding that ignores both `</s>` and max_length."""

    name = "endless"
    params = (Param("max_length", int, 100, "ignored", min=1),)
    steps = 0

    def __init__(self, max_length: int = 100) -> None:
        self.max_length = max_length

    def decode(self, model: Seq2Seq, memory: Memory) -> Hypotheses:
        tokens = torch.full((memory.batch_size,), model.bos_index)
        state, out = model.start(memory), []
        while True:
            EndlessDecoding.steps += 1
            logits, state, _ = model.step(tokens, state, memory)
            tokens = logits.argmax(-1)
            out.append(tokens)


class EosKeepingDecoding(SearchStrategy):
    """Greedy decoding that leaves `</s>` in its output."""

    name = "eos_keeping"
    params = (Param("max_length", int, 100, "most tokens", min=1),)

    def __init__(self, max_length: int = 100) -> None:
        self.max_length = max_length

    @torch.no_grad()
    def decode(self, model: Seq2Seq, memory: Memory) -> Hypotheses:
        tokens = torch.full((memory.batch_size,), model.bos_index)
        state, rows = model.start(memory), []
        for _ in range(self.max_length):
            logits, state, _ = model.step(tokens, state, memory)
            tokens = logits.argmax(-1)
            rows.append(tokens)
        out = []
        for row in torch.stack(rows, 1).tolist():
            out.append(row[: row.index(model.eos_index) + 1] if model.eos_index in row else row)
        return Hypotheses(out)


class StateIndexingDecoding(SearchStrategy):
    """Greedy decoding that takes the state for an LSTM's (h, c) and reorders its rows itself."""

    name = "state_indexing"
    params = (Param("max_length", int, 100, "most tokens", min=1),)

    def __init__(self, max_length: int = 100) -> None:
        self.max_length = max_length

    def decode(self, model: Seq2Seq, memory: Memory) -> Hypotheses:
        tokens = torch.full((memory.batch_size,), model.bos_index)
        state, rows = model.start(memory), []
        for _ in range(self.max_length):
            logits, state, _ = model.step(tokens, state, memory)
            order = torch.arange(memory.batch_size)
            h, c = state  # an LSTM's layout, which a search strategy must never assume
            state = (h.index_select(1, order), c.index_select(1, order))
            tokens = logits.argmax(-1)
            rows.append(tokens)
        return Hypotheses([[t for t in row if t != model.eos_index] for row in torch.stack(rows, 1).tolist()])


class ShuffledData(DataSource):
    """Different examples on every call."""

    name = "shuffled"

    def split(self, name: str) -> list[Example]:
        return [Example(str(random.random()), "x") for _ in range(3)]


class FractionMetric(Metric):
    """Exact match as a fraction times 1000."""

    name = "fraction"

    def compute(self, hypotheses: Sequence[str], references: Sequence[str]) -> Score:
        hits = sum(h == r for h, r in zip(hypotheses, references, strict=True))
        return Score(self.name, 1000.0 * hits / max(len(references), 1))


class UpsideDownMetric(Metric):
    """An error rate that claims higher is better."""

    name = "upside_down"

    def compute(self, hypotheses: Sequence[str], references: Sequence[str]) -> Score:
        misses = sum(h != r for h, r in zip(hypotheses, references, strict=True))
        return Score(self.name, 100.0 * misses / max(len(references), 1))


class MeddlingLogger(Logger):
    """Removes the loss from the record it is given."""

    name = "meddling"

    def epoch_end(self, record: dict[str, Any]) -> None:
        record.pop("loss")


class UndeclaredMetric(Metric):
    """Declares a parameter its constructor does not take."""

    name = "undeclared"
    params = (Param("smooth", bool, False, "smoothing"),)

    def compute(self, hypotheses: Sequence[str], references: Sequence[str]) -> Score:
        return Score(self.name, 0.0)


BROKEN: list[tuple[type, str]] = [
    (
        LossyTokenizer,
        "round trip detokenize(tokenize('27 sep 1994')): expected the same text up to case and whitespace, "
        "got 'sep' (tokens ['sep'])",
    ),
    (
        ForgetfulTokenizer,
        "load(directory) into a new instance, after fit: 'hello world' -> ['hello', 'world'] after fit",
    ),
    (UnjoinedEncoder, "final state tensor 0 must be (layers, batch, output_size) = (1, 4, 8), got (2, 4, 4)"),
    (
        PaddingEncoder,
        "padding invariance: sequence 0 (length 3) gets different final state tensor 0 in a padded batch than alone",
    ),
    (
        HalfStatesEncoder,
        "forward within reduced_products(torch.bfloat16) (bf16 and int8 decoding on the CPU): states come back as "
        "torch.bfloat16, expected float32's torch.float32",
    ),
    (TransposedScorer, "scores must be (batch, tgt_len, src_len) = (3, 4, 5), got (3, 5, 4)"),
    (
        PeekingScorer,
        "scoring one query position at a time (query_size=8, key_size=8): scores of positions taken one at a "
        "time (decoding) differ from all at once (training)",
    ),
    (
        EndlessDecoding,
        "decode with a random model: decode called model.step more than 560 times for 4 sentences; "
        "it was cut off there",
    ),
    (EosKeepingDecoding, "holds <s> (2) or </s> (3); leave them out"),
    (StateIndexingDecoding, "decode with a random model: raised ValueError: not enough values to unpack"),
    (ShuffledData, "split('train'): a second call gives different examples: splits must be deterministic"),
    (FractionMetric, "compute on perfect hypotheses: the value must be on the 0-100 scale, got 1000.0"),
    (UpsideDownMetric, "perfect hypotheses score best: with higher_is_better=True, perfect hypotheses (0) must score"),
    (MeddlingLogger, "epoch_end (called in run order): changed what it received"),
    (UndeclaredMetric, "declaration: the constructor () does not accept ['smooth'], which the core passes"),
]


@pytest.mark.parametrize(("cls", "expected"), BROKEN, ids=[cls.name for cls, _ in BROKEN])
def test_a_broken_component_fails_with_the_contract_point(cls: type, expected: str) -> None:
    problems = check_component(cls)
    assert problems, f"{cls.__name__} passed the kit"
    assert any(expected in problem for problem in problems), problems


def test_a_search_strategy_that_never_stops_is_cut_off_after_a_bounded_number_of_steps() -> None:
    EndlessDecoding.steps = 0
    assert check_search(EndlessDecoding, {"max_length": 3})
    assert EndlessDecoding.steps == 20 * (3 + 2) * 4 + 1


# --- transduce plugins --check and broken plugins ------------------------------------------------------

BROKEN_PLUGIN = '''
    from transduce.api import Metric, Score, hookimpl


    class Fraction(Metric):
        """Exact match as a fraction times 1000."""

        name = "fraction"

        def compute(self, hypotheses, references):
            return Score(self.name, 1000.0)


    @hookimpl
    def transduce_components():
        return [Fraction]
'''


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")


def install(expose_distribution: Callable[..., str], directory: Path, module: str, source: str) -> str:
    """A distribution `demo-MODULE` 1.0 whose entry point loads `source` as `module`."""
    directory.mkdir()
    (directory / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    return expose_distribution(f"demo-{module.replace('_', '-')}", "1.0", {module: module}, directory)


@pytest.mark.usefixtures("wide")
def test_plugins_check_shows_a_table_and_exits_1_when_a_component_fails(
    expose_distribution, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dist = install(expose_distribution, tmp_path / "plugin", "fraction_metric", BROKEN_PLUGIN)
    assert cli.main(["plugins", "--check"]) == 1
    out = capsys.readouterr().out
    assert "family" in out and "distribution" in out and "result" in out
    row = next(line for line in out.splitlines() if "│ fraction" in line)
    assert f"{dist} 1.0" in row and "FAIL" in row
    assert "the value must be on the 0-100 scale, got 1000.0" in out
    lstm = next(line for line in out.splitlines() if "│ lstm" in line)
    assert "transduce 0.1.0" in lstm and "ok" in lstm


@pytest.mark.usefixtures("wide")
def test_plugins_check_exits_0_when_every_component_conforms(capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["plugins", "--check"])
    out = capsys.readouterr().out
    assert "FAIL" not in out
    assert status == 0
    total = sum(1 for _ in discover())
    assert f"{total} of {total} components conform" in out


@pytest.mark.usefixtures("wide")
def test_a_plugin_that_fails_to_import_is_listed_as_broken(
    expose_distribution, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dist = install(expose_distribution, tmp_path / "plugin", "typo_plugin", "import no_such_module_here\n")
    assert cli.main(["plugins"]) == 0
    out = capsys.readouterr().out
    broken = out.split("broken ───")[1]
    row = next(line for line in broken.splitlines() if line.startswith("typo_plugin"))
    assert f"from {dist} 1.0" in row
    assert "No module named 'no_such_module_here'" in row

    assert cli.main(["plugins", "--check"]) == 1
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "typo_plugin" in line)
    assert f"{dist} 1.0" in row and "BROKEN" in row


# --- parameter defaults: the Param is the one declaration -------------------------------------------------

DRIFTED_PLUGIN = '''
    from transduce.api import Metric, Param, Score, hookimpl


    class Drifted(Metric):
        """Exact match, whose constructor default drifted from its Param."""

        name = "drifted"
        params = (Param("strip", bool, True, "ignore surrounding spaces"),)

        def __init__(self, strip=False):
            self.strip = strip

        def compute(self, hypotheses, references):
            return Score(self.name, 0.0)


    @hookimpl
    def transduce_components():
        return [Drifted]
'''


class DriftedTokenizer(Tokenizer):
    """Splits on spaces; its constructor states another default than its Param."""

    name = "drifted"
    params = (Param("lowercase", bool, False, "lower-case first"), Param("limit", int, 8, "most tokens", min=1))

    def __init__(self, lowercase: bool = False, limit: int = 16) -> None:
        self.lowercase, self.limit = lowercase, limit

    def tokenize(self, text: str) -> list[str]:
        return text.split()[: self.limit]

    def detokenize(self, tokens: Sequence[str]) -> str:
        return " ".join(tokens)


class DefaultedRequirement(Metric):
    """Gives a default to a parameter its Param declares required."""

    name = "defaulted"
    params = (Param("column", str, REQUIRED, "which column"),)

    def __init__(self, *, column: str = "") -> None:
        self.column = column

    def compute(self, hypotheses: Sequence[str], references: Sequence[str]) -> Score:
        return Score(self.name, 0.0)


class InheritedDefaults(DriftedTokenizer):
    """Passes its parameters on to a base class whose default drifted."""

    name = "inherited"

    def __init__(self, **common: Any) -> None:
        super().__init__(**common)


class ParamsOnly(Tokenizer):
    """States no defaults in its constructor at all: the Params alone declare them."""

    name = "params_only"
    params = (Param("lowercase", bool, False, "lower-case first"), Param("limit", int, 8, "most tokens", min=1))

    def __init__(self, *, lowercase: bool, limit: int) -> None:
        self.lowercase, self.limit = lowercase, limit

    def tokenize(self, text: str) -> list[str]:
        return text.split()[: self.limit]

    def detokenize(self, tokens: Sequence[str]) -> str:
        return " ".join(tokens)


def test_the_kit_reports_a_constructor_default_that_differs_from_the_param() -> None:
    problems = check_component(DriftedTokenizer)
    assert problems == [
        "declaration: DriftedTokenizer.__init__ gives 'limit' the default 16, but its Param declares 8: "
        "the Param is the declaration, so drop the default from __init__ or make it equal"
    ]


def test_the_kit_reports_a_default_given_to_a_required_param() -> None:
    problems = check_component(DefaultedRequirement, {"column": "Q"})
    assert any("gives 'column' the default '', but its Param declares it required" in p for p in problems)


def test_defaults_passed_on_through_kwargs_are_compared_too() -> None:
    assert any("gives 'limit' the default 16" in p for p in check_component(InheritedDefaults))


def test_a_constructor_without_defaults_conforms() -> None:
    assert check_component(ParamsOnly) == []


def test_a_plugin_whose_constructor_default_drifted_is_refused_as_broken(
    expose_distribution, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dist = install(expose_distribution, tmp_path / "plugin", "drifted_metric", DRIFTED_PLUGIN)
    registry = discover()
    assert registry.get("metric", "drifted") is None
    [broken] = [b for b in registry.broken if b.provider.distribution == dist]
    assert "Drifted.__init__ gives 'strip' the default False, but its Param declares True" in broken.problem
    assert "metric 'drifted' cannot be used" in registry.unknown_name_message("metric", "drifted")


def test_no_builtin_states_a_default_other_than_its_params() -> None:
    assert [str(b) for b in discover().broken if b.provider.builtin] == []
    assert {info.name: default_disagreements(info.cls) for info in BUILTINS if default_disagreements(info.cls)} == {}


# --- decoder networks ----------------------------------------------------------------------------------


class TinyDecoder(DecoderNetwork):
    """A correct minimal decoder network: a GRU cell fed the previous context, masked dot attention."""

    name = "tiny"
    params = (Param("hidden_size", int, 8, "state size", min=1),)

    def __init__(self, *, embedding_dim: int, vocab_size: int, memory_size: int, pad_index: int, hidden_size: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)
        self.init = nn.Linear(memory_size, hidden_size)
        self.query = nn.Linear(hidden_size, memory_size)
        self.cell = nn.GRUCell(embedding_dim + memory_size, hidden_size)
        self.output = nn.Linear(hidden_size + memory_size, vocab_size)

    def start(self, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """(hidden (batch, H), previous context (batch, K))."""
        mask = memory.mask.unsqueeze(-1).float()
        mean = (memory.states * mask).sum(1) / mask.sum(1)
        return torch.tanh(self.init(mean)), torch.zeros_like(mean)

    def step(self, tokens, state, memory):
        hidden, context = state
        hidden = self.cell(torch.cat([self.embedding(tokens), context], -1), hidden)
        context, weights = self.attend(hidden, memory)
        return self.output(torch.cat([hidden, context], -1)), (hidden, context), weights

    def attend(self, hidden: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        batch, rows = memory.batch_size, hidden.size(0)
        scores = torch.bmm(self.query(hidden).view(batch, rows // batch, -1), memory.states.transpose(1, 2))
        weights = torch.softmax(scores.masked_fill(~memory.mask.unsqueeze(1), float("-inf")), -1)
        return torch.bmm(weights, memory.states).view(rows, -1), weights.view(rows, -1)

    def forward(self, target_in, memory, positions=None):
        state, logits = self.initial(memory), []
        for position in range(target_in.size(1)):
            out, state, _ = self.step(self.inputs(target_in, position), state, memory)
            logits.append(out)
        stacked = torch.stack(logits, 1)
        return stacked if positions is None else stacked[positions]

    def initial(self, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        return self.start(memory)

    def inputs(self, target_in: torch.Tensor, position: int) -> torch.Tensor:
        return target_in[:, position]


class UnmaskedAttentionDecoder(TinyDecoder):
    """Takes the softmax over every source position, padding included."""

    name = "unmasked"

    def attend(self, hidden, memory):
        batch, rows = memory.batch_size, hidden.size(0)
        weights = torch.softmax(torch.bmm(self.query(hidden).view(batch, rows // batch, -1), memory.states.mT), -1)
        return torch.bmm(weights, memory.states).view(rows, -1), weights.view(rows, -1)


class PaddedMeanDecoder(TinyDecoder):
    """Starts from the mean over every source position, padding included (its attention is masked)."""

    name = "padded_mean"

    def start(self, memory):
        mean = memory.states.mean(1)
        return torch.tanh(self.init(mean)), torch.zeros_like(mean)


class ColdStartDecoder(TinyDecoder):
    """Teacher forcing starts from zeros, `start` from the source: step and forward disagree."""

    name = "cold_start"

    def initial(self, memory):
        hidden, context = self.start(memory)
        return torch.zeros_like(hidden), context


class LookaheadDecoder(TinyDecoder):
    """Teacher forcing reads the NEXT target token at each position: it sees the future, and padding."""

    name = "lookahead"

    def inputs(self, target_in, position):
        return target_in[:, min(position + 1, target_in.size(1) - 1)]


class ForgetfulReorderDecoder(TinyDecoder):
    """reorder_state reorders the hidden state but forgets the fed-back context."""

    name = "forgetful_reorder"

    def reorder_state(self, state, index):
        hidden, context = state
        return hidden.index_select(0, index), context


class BatchNormalisingDecoder(TinyDecoder):
    """Centres the source states on the mean of the whole batch's: a sentence's output depends on its batch."""

    name = "batch_normalising"

    def prepare(self, memory):
        centred = memory.states - memory.states[memory.mask].mean(0)
        return Memory(centred, memory.mask, memory.final, memory.prepared)


class SourceFirstKeysDecoder(TinyDecoder):
    """Keeps its precomputed keys source position first, so Memory.select would reorder the wrong axis."""

    name = "source_first_keys"

    def prepare(self, memory):
        return memory.with_prepared(keys=memory.states.transpose(0, 1).contiguous())


class PositionsIgnoringDecoder(TinyDecoder):
    """Returns every position's logits even when asked for some."""

    name = "positions_ignoring"

    def forward(self, target_in, memory, positions=None):
        return super().forward(target_in, memory)


class HalfPrecisionDecoder(TinyDecoder):
    """Within reduced_products(bfloat16), hands back its logits in bfloat16."""

    name = "half_precision"
    reduced: torch.dtype | None = None

    @contextlib.contextmanager
    def reduced_products(self, dtype):
        self.reduced = dtype
        try:
            yield
        finally:
            self.reduced = None

    def step(self, tokens, state, memory):
        logits, state, weights = super().step(tokens, state, memory)
        return (logits if self.reduced is None else logits.to(self.reduced)), state, weights


class FirstRowsDecoder(TinyDecoder):
    """Within restricted_output, scores the first C tokens instead of the candidates."""

    name = "first_rows"
    listed: torch.Tensor | None = None

    @contextlib.contextmanager
    def restricted_output(self, candidates):
        self.listed = candidates
        try:
            yield
        finally:
            self.listed = None

    def step(self, tokens, state, memory):
        logits, state, weights = super().step(tokens, state, memory)
        return (logits if self.listed is None else logits[:, : self.listed.numel()]), state, weights


BROKEN_DECODERS: list[tuple[type, list[str]]] = [
    (
        UnmaskedAttentionDecoder,
        [
            "step's attention puts weight on padded source positions (mask them before the softmax)",
            "padding never leaks: other values at the padded source positions, final=(h, c): the logits at real "
            "target positions change",
        ],
    ),
    (PaddedMeanDecoder, ["padding never leaks: other values at the padded source positions, final=(h, c)"]),
    (
        ColdStartDecoder,
        ["position 0: step's logits differ from forward's (teacher forcing)", "both paths must compute the same"],
    ),
    (
        LookaheadDecoder,
        [
            "position 0: step's logits differ from forward's (teacher forcing)",
            "padding never leaks: other tokens at the padded target positions, final=(h, c): the logits at real "
            "target positions change",
        ],
    ),
    (
        ForgetfulReorderDecoder,
        [
            "reorder_state: sentences reordered ([2, 0, 3, 1], memory.select alike), final=(h, c): stepping the "
            "reordered state differs from reordering the step's rows"
        ],
    ),
    (
        SourceFirstKeysDecoder,
        ["prepare(memory), final=(h, c): prepared tensors must be batch first (dimension 0 = 4): ['keys']"],
    ),
    (
        PositionsIgnoringDecoder,
        [
            "forward(target_in, memory, positions): only the logits at the real target positions, final=(h, c): "
            "logits at positions must be (15, 12), got (4, 6, 12)"
        ],
    ),
    (
        HalfPrecisionDecoder,
        [
            "step within reduced_products(torch.bfloat16) (bf16 decoding on the CPU), final=(h, c): logits come back "
            "as torch.bfloat16, expected the memory's torch.float32"
        ],
    ),
    (
        FirstRowsDecoder,
        [
            "step within restricted_output([0, 1, 2, 3, 5, 8, 11]) (a vocabulary shortlist), final=(h, c): the "
            "logits differ from the whole output layer's logits of the candidates"
        ],
    ),
    (
        BatchNormalisingDecoder,
        ["sentence 0 alone (batch size 1, source length 3, no padding), final=(h, c): its logits differ"],
    ),
]


def test_a_correct_decoder_network_conforms() -> None:
    assert check_decoder(TinyDecoder) == []
    assert check_decoder(TinyDecoder, {"hidden_size": 3}) == []


@pytest.mark.parametrize(("cls", "expected"), BROKEN_DECODERS, ids=[cls.name for cls, _ in BROKEN_DECODERS])
def test_a_broken_decoder_network_is_reported_at_the_contract_point(cls: type, expected: list[str]) -> None:
    problems = check_decoder(cls)
    for text in expected:
        assert any(text in problem for problem in problems), (text, problems)


# --- every combination of the built-in `lstm` decoder network's options ---------------------------------

LSTM_OPTIONS = {
    "cell": ("lstm", "gru"),
    "attention": ("none", "general", "additive", "dot"),
    "peeky": (False, True),
    "input_feeding": (False, True),
    "init": ("final", "bridge", "zero"),
    "tie_embeddings": (False, True),
}
HIDDEN = 8  # equal to the kit's memory_size, so that `dot` attention applies


def every_lstm_combination() -> list[dict[str, Any]]:
    return [dict(zip(LSTM_OPTIONS, values, strict=True)) for values in itertools.product(*LSTM_OPTIONS.values())]


def reads_no_source(options: dict[str, Any]) -> bool:
    """No attention, no peeky summary and a zero start: the decoder never reads the source (a language model)."""
    return options["attention"] == "none" and not options["peeky"] and options["init"] == "zero"


def lstm_combinations() -> list[dict[str, Any]]:
    """Every combination of the `lstm` decoder network that makes a seq2seq decoder: input feeding needs
    attention, and the source must reach the decoder somehow."""
    return [
        c
        for c in every_lstm_combination()
        if not (c["input_feeding"] and c["attention"] == "none") and not reads_no_source(c)
    ]


def tied_sizes(options: dict[str, Any]) -> dict[str, int]:
    """Tied embeddings share the output layer's weights, whose input is the state (and, peeky, the summary)."""
    if not options["tie_embeddings"]:
        return {}
    return {"embedding_dim": HIDDEN + (8 if options["peeky"] else 0)}


def label(options: dict[str, Any]) -> str:
    return "-".join(f"{k}={v}" for k, v in options.items())


@pytest.mark.parametrize("options", lstm_combinations(), ids=label)
def test_every_combination_of_the_lstm_decoder_network_conforms(options: dict[str, Any]) -> None:
    """Step by step equals teacher forcing, batch and padding independence, reorder_state, for each combination."""
    lstm = discover().get("decoder", "lstm").cls
    report = conformance(lstm, {"hidden_size": HIDDEN, "dropout": 0.0, **options}, sizes=tied_sizes(options))
    assert report.problems == []
    assert not report.partial


def test_the_lstm_combinations_left_out_are_refused_or_reported() -> None:
    """Input feeding without attention is refused at its key; a decoder that never reads the source is either
    refused or reported by the kit."""
    lstm = discover().get("decoder", "lstm").cls
    every = every_lstm_combination()
    left_out = [options for options in every if options not in lstm_combinations()]
    assert len(every) == 192 and len(left_out) == 24 + 4
    for options in left_out:
        problems = check_decoder(lstm, {"hidden_size": HIDDEN, **options}, sizes=tied_sizes(options))
        if options["input_feeding"]:
            assert any("input_feeding" in problem and "needs attention" in problem for problem in problems), problems
        else:
            assert any("ParamError" in problem or "does not read the source" in problem for problem in problems)


def test_sizes_are_given_to_decoder_networks_only() -> None:
    with pytest.raises(ValueError, match="decoder networks only"):
        conformance(TransposedScorer, sizes={"memory_size": 4})
    with pytest.raises(ValueError, match="not \\['vocab_size'\\]"):
        conformance(TinyDecoder, sizes={"vocab_size": 4})


LEAKY_DECODER_PLUGIN = '''
    import torch
    from torch import nn
    from transduce.api import DecoderNetwork, hookimpl


    class Leaky(DecoderNetwork):
        """Starts from the mean of every source position, padding included."""

        name = "leaky"

        def __init__(self, embedding_dim, vocab_size, memory_size, pad_index):
            super().__init__()
            self.embedding = nn.Embedding(vocab_size, embedding_dim)
            self.cell = nn.GRUCell(embedding_dim, memory_size)
            self.output = nn.Linear(memory_size, vocab_size)

        def start(self, memory):
            return memory.states.mean(1)

        def step(self, tokens, state, memory):
            state = self.cell(self.embedding(tokens), state)
            return self.output(state), state, None

        def forward(self, target_in, memory, positions=None):
            state, logits = self.start(memory), []
            for position in range(target_in.size(1)):
                out, state, _ = self.step(target_in[:, position], state, memory)
                logits.append(out)
            logits = torch.stack(logits, 1)
            return logits if positions is None else logits[positions]


    @hookimpl
    def transduce_components():
        return [Leaky]
'''


@pytest.mark.usefixtures("wide")
def test_plugins_check_covers_decoder_networks_and_search_strategies(
    expose_distribution, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dist = install(expose_distribution, tmp_path / "plugin", "leaky_decoder", LEAKY_DECODER_PLUGIN)
    assert cli.main(["plugins", "--check"]) == 1
    out = capsys.readouterr().out
    decoder_rows = [line for line in out.splitlines() if line.startswith("│ decoder")]
    assert any("│ lstm" in line and "transduce 0.1.0" in line and "ok" in line for line in decoder_rows)
    assert any("│ leaky" in line and f"{dist} 1.0" in line and "FAIL" in line for line in decoder_rows)
    assert "padding never leaks: other values at the padded source positions" in out
    search_rows = [line for line in out.splitlines() if line.startswith("│ search")]
    assert {name for name in ("greedy", "beam", "sample") if any(f"│ {name} " in line for line in search_rows)} == {
        "greedy",
        "beam",
        "sample",
    }
    assert all("ok" in line for line in search_rows)
