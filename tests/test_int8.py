"""int8 decoding (`train.precision: int8`): a learned task decodes as in float32, per command and in Python; the
CPU without an int8 kernel, and GPUs, get a clear error naming the precision and what to use instead."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from test_inference import teacher_forced_score

from transduce._cli import main as cli
from transduce._decoding import translator as inference
from transduce._decoding.translator import Translator
from transduce._plugins.registry import discover
from transduce._recipe.settings import PRECISIONS
from transduce._runs.rundir import RunDir
from transduce.errors import RecipeError

TEXTS = ["27 sep 1994", "monday, march 3, 2001", "1/2/03", "june 30, 1970", "DEC 24, 1999", "4.7.2012"]


def _translator(run: Path, precision: str) -> Translator:
    return Translator.from_run(RunDir.open(run), discover(), device="cpu", overrides=[f"train.precision={precision}"])


def test_int8_is_one_of_the_precisions() -> None:
    assert PRECISIONS == ("fp32", "bf16", "int8")


def test_int8_decoding_of_a_learned_task_gives_float32s_outputs_and_their_scores(learned_run: Path) -> None:
    exact, fast = _translator(learned_run, "fp32"), _translator(learned_run, "int8")
    assert fast.precision == "int8" and {p.dtype for p in fast.model.parameters()} == {torch.float32}
    seen: list[torch.dtype] = []
    original = fast.model.decoder.step

    def recording(*args: object) -> object:
        seen.append(fast.model.product_dtype)
        return original(*args)

    fast.model.decoder.step = recording  # type: ignore[method-assign]
    results = fast.translate_detailed(TEXTS)
    assert set(seen) == {torch.int8} and fast.model.product_dtype == torch.float32  # only while decoding
    assert [r.text for r in results] == exact.translate(TEXTS)
    assert [r.text for r in results][:2] == ["1994-09-27", "2001-03-03"]  # the task was learned
    for result in results:  # each score is float32's score of the same output, to int8's precision
        assert result.score is not None and result.attention is not None
        source = exact.source_vocab.encode(result.source_tokens)
        output = exact.target_vocab.encode(result.tokens)
        ended = result.attention.size(0) > len(result.tokens)
        expected = teacher_forced_score(exact.model, source, output, ended)
        assert result.score == pytest.approx(expected, abs=0.02 * (len(output) + 1))


def test_int8_is_chosen_per_command_and_evaluates_like_float32(
    learned_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert cli.main(["translate", str(learned_run), TEXTS[0], "--set", "train.precision=int8"]) == 0
    assert capsys.readouterr().out == "1994-09-27\n"
    scores = {}
    for precision in ("fp32", "int8"):
        assert cli.main(["evaluate", str(learned_run), "--json", "--set", f"train.precision={precision}"]) == 0
        scores[precision] = capsys.readouterr().out
    assert scores["int8"] == scores["fp32"]


def test_a_cpu_without_an_int8_kernel_is_told_to_use_bf16_or_fp32(
    learned_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:  # the probe's answer is cached per process: cleared before and after
    def missing(*args: object) -> torch.Tensor:
        raise RuntimeError("_int_mm: no kernel for this CPU\nmore detail")

    with monkeypatch.context() as patched:
        patched.setattr(torch, "_int_mm", missing)
        inference.int8_kernel_missing.cache_clear()
        with pytest.raises(RecipeError, match="train.precision: int8 decoding needs an int8 matrix kernel") as caught:
            _translator(learned_run, "int8")
        assert "(torch._int_mm: _int_mm: no kernel for this CPU)" in str(caught.value)
        assert "use bf16" in str(caught.value) and "or fp32 instead" in str(caught.value)
        capsys.readouterr()
        assert cli.main(["translate", str(learned_run), TEXTS[0], "--set", "train.precision=int8"]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert "int8 decoding needs an int8 matrix kernel" in err and "Traceback" not in err
        _translator(learned_run, "bf16")  # the other precisions still work
    inference.int8_kernel_missing.cache_clear()
    assert inference.int8_kernel_missing() is None  # this CPU has one


def test_int8_on_a_gpu_is_refused_with_what_to_use_there() -> None:
    with pytest.raises(RecipeError, match="int8 decoding runs on the CPU's int8 kernels, not on cuda") as caught:
        inference.decoding_dtype(torch.device("cuda"), "int8")
    assert "use fp32 or bf16 there" in str(caught.value) and "--set train.device=cpu" in str(caught.value)
    assert caught.value.key == "train.precision"


def test_decoding_dtype_by_precision_on_the_cpu() -> None:
    cpu = torch.device("cpu")
    dtypes = {precision: inference.decoding_dtype(cpu, precision) for precision in PRECISIONS}
    assert dtypes == {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.int8}


def test_a_run_trained_with_int8_trains_in_float32_and_decodes_in_int8(
    make_recipe: Callable[..., Path], train_run: Callable[..., Path], tmp_path: Path
) -> None:
    run = train_run(make_recipe(train={"precision": "int8"}), tmp_path / "run")
    translator = Translator.from_run(RunDir.open(run), discover(), device="cpu")
    assert translator.precision == "int8"  # the run decodes so by default
    assert {p.dtype for p in translator.model.parameters()} == {torch.float32}
