"""benchmarks/kernels_benchmark.py and benchmarks/decoding_benchmark.py measure what they say: every kernel variant
computes the same product, and the decoding benchmark scores each precision and shortlist of a run (the lead runs
the benchmarks themselves on a quiet machine)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str) -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]


@pytest.fixture(scope="module")
def kernels() -> Iterator[ModuleType]:
    yield from _load("kernels_benchmark")


@pytest.fixture(scope="module")
def decoding() -> Iterator[ModuleType]:
    yield from _load("decoding_benchmark")


def test_every_kernel_variant_computes_the_products_float32_does(kernels: ModuleType) -> None:
    variants = kernels.variants(8, 64, 40)
    assert {"fp32", "bf16", "int8", "int8 kernel", "int8 dynamic", "int8 weights"} <= set(variants)
    exact = variants.pop("fp32")()
    assert variants.pop("int8 kernel")().dtype == torch.int32  # the bare kernel, on quantized inputs
    for name, call in variants.items():
        torch.testing.assert_close(call().float(), exact, atol=0.1, rtol=0.05, msg=name)


def test_the_step_profile_covers_each_precision_with_and_without_a_shortlist(kernels: ModuleType) -> None:
    with kernels.ExitStack() as stack:
        steps = kernels.step_variants(300, stack)
        assert [name.split(" +")[0] for name in steps] == ["fp32", "fp32", "bf16", "bf16", "int8", "int8"]
        tokens = {name: call().indices for name, call in steps.items()}  # type: ignore[attr-defined]
    assert all(t.shape == (kernels.STEP_BATCH,) for t in tokens.values())


def test_the_decoding_benchmark_scores_every_precision_and_shortlist_of_a_run(
    decoding: ModuleType, learned_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(learned_run), "--limit", "30", "--rounds", "1", "--threads", "1", "--precisions", "fp32", "int8"]
    assert decoding.main([*argv, "--shortlists", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{learned_run}: 30 test sentences, greedy, 1 threads")
    rows = {line.split("  ")[0]: line for line in lines[2:]}
    assert list(rows) == ["fp32", "fp32 +shortlist 2", "int8", "int8 +shortlist 2"]
    assert rows["fp32"].endswith("100.0%") and "(+0.00)" in rows["fp32"]


@pytest.fixture(scope="module")
def refill() -> Iterator[ModuleType]:
    yield from _load("decode_refill_benchmark")


def test_the_refill_benchmark_counts_every_step_and_the_row_steps_a_sentence_needed(
    refill: ModuleType, trained_run: Path
) -> None:
    from transduce._decoding.translator import Translator
    from transduce._plugins.registry import discover
    from transduce._runs.rundir import RunDir

    translator = Translator.from_run(RunDir.open(trained_run), discover(), device="cpu")
    lines = ["sept 6 63", "27 sep 1994", "MON, SEP 21, 1959", "6 FEB 2039", "1/2/03"] * 3
    figures = refill.measure(translator, lines, batch_size=4)
    outputs = translator.translate_tokens(lines, 4)
    assert figures["lines"] == 15 and figures["row_steps_needed"] == sum(len(tokens) + 1 for tokens in outputs)
    assert figures["row_steps_computed"] >= figures["row_steps_needed"] and 0 <= figures["wasted_share"] < 1
    assert figures["steps"] >= -(-15 // 4)  # at least one step per batch
    assert "step" not in vars(translator.model)  # the clock put the model's own step back
