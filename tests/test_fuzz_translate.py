"""Fuzzing inference with hostile inputs: empty, control characters, unseen characters, NUL, lone surrogates,
inputs far longer than any training example.

`Translator.translate` must return one string per input, in order, within a
time limit (the decoder's max_length bounds every output); the CLI must
translate the same inputs given as TEXT or as lines of --input without a
traceback, one output line per input line.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_harness import ends_cleanly, fuzz, report_cases

from transduce._cli import main as cli
from transduce._decoding.translator import Translator
from transduce._plugins.registry import discover
from transduce._runs.rundir import RunDir

REGISTRY = discover()
ODD = ["", " ", "\0", "\r", "\n", "\t\t", "\u2028", "\ufeff", "\ud800", "🙂" * 50, "<unk>", "</s>", "<s>"]
REPEATED = st.builds(
    lambda piece, count: piece * count, st.sampled_from(["9", "sep ", "x\u0301", "\x1b[31m"]), st.integers(1000, 2500)
)
HOSTILE = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec=None, categories=["Cc", "Cf", "Zs", "Zl", "Zp", "Cs", "Co"]), max_size=20),
    st.text(alphabet=st.characters(min_codepoint=0x3000), max_size=20),  # never seen in training
    st.sampled_from(ODD),
    REPEATED,  # 1,000 to 10,000 characters
)
LONG = "september 27, 1994 " * 530  # about 10,000 characters, far longer than any training source


@pytest.fixture(scope="module")
def translator(trained_run: Path) -> Translator:
    return Translator.from_run(RunDir.open(trained_run), REGISTRY, device="cpu")


def outputs(translator: Translator, texts: list[str]) -> list[str]:
    result = translator.translate(texts, batch_size=4)
    assert isinstance(result, list) and len(result) == len(texts)
    assert all(isinstance(text, str) for text in result)
    return result


@fuzz(80)
@given(texts=st.lists(HOSTILE, min_size=1, max_size=6))
def test_translator_on_hostile_inputs(translator: Translator, texts: list[str]) -> None:
    ends_cleanly("translate: Translator, hostile inputs", lambda: outputs(translator, texts), seconds=30)


def test_an_input_far_longer_than_training_ends_within_the_decoder_limit(translator: Translator) -> None:
    (output,) = ends_cleanly("translate: Translator, hostile inputs", lambda: outputs(translator, [LONG]), seconds=30)
    assert len(translator.target_tokenizer.tokenize(output)) <= translator.decoding.max_length


@fuzz(25)
@given(text=HOSTILE)
def test_cli_translate_text(trained_run: Path, text: str, capsys: pytest.CaptureFixture[str]) -> None:
    def run() -> None:
        capsys.readouterr()
        try:
            status = cli.main(["translate", str(trained_run), text])
        except SystemExit as stop:  # TEXT that looks like an option: argparse's usage error
            status = stop.code
        out, err = capsys.readouterr()
        assert status in (0, 2) and "Traceback" not in out + err, out + err

    ends_cleanly("translate: CLI, TEXT", run, seconds=30)


@fuzz(25)
@given(lines=st.lists(HOSTILE.filter(lambda t: "\n" not in t), min_size=1, max_size=8))
def test_cli_translate_file(trained_run: Path, lines: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    def run() -> None:
        with tempfile.TemporaryDirectory() as name:
            source, output = Path(name) / "in.txt", Path(name) / "out.txt"
            source.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + b"\n")
            capsys.readouterr()
            status = cli.main(["translate", str(trained_run), "--input", str(source), "--output", str(output)])
            err = capsys.readouterr().err
            assert "Traceback" not in err
            if status == 0:  # one line out per line in, in order
                assert output.read_bytes().count(b"\n") == len(lines)
            else:
                assert status == 2 and "not valid UTF-8" in err  # a lone surrogate is not UTF-8

    ends_cleanly("translate: CLI, --input file", run, seconds=30)


@fuzz(20)
@given(lines=st.lists(HOSTILE, max_size=6))
def test_cli_translate_stdin(trained_run: Path, lines: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    def run() -> None:
        stdin = sys.stdin
        sys.stdin = io.StringIO("".join(line + "\n" for line in lines))
        try:
            capsys.readouterr()
            with contextlib.suppress(SystemExit):
                assert cli.main(["translate", str(trained_run)]) == 0
        finally:
            sys.stdin = stdin
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err

    ends_cleanly("translate: CLI, stdin", run, seconds=30)


def test_cases_ran() -> None:
    print(report_cases("translate:"))
