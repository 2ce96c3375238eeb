"""Benchmark: the matrix products of one decoding step in float32, bfloat16 and int8 on this CPU.

A greedy or beam step multiplies rows (sentences, or sentences x beam) by three weight matrices: the
recurrent cell's ([embedding; h] -> 4 x hidden), the attentional layer's ([h; context] -> hidden) and the
output layer's (hidden -> vocabulary), the largest. For each shape this times, interleaved round by round
so that a busy machine slows every variant alike (compare ratios, not absolute figures):

  fp32          torch.addmm on float32 (what decoding does by default)
  bf16          torch.addmm on bfloat16 copies, inputs converted there and back (train.precision=bf16)
  int8          the `lstm` decoder's int8 product (Int8Matrix.addmm): inputs quantized per row, torch._int_mm,
                rescaled by the row and column scales, plus the bias (train.precision=int8)
  int8 kernel   torch._int_mm alone, on inputs already quantized (what the int8 arithmetic itself costs)
  int8 dynamic  PyTorch's dynamic quantized linear (torch.ops.quantized.linear_dynamic, per-channel qint8
                weights, the `x86` engine), which quantizes inputs per tensor
  int8 weights  torch._weight_int8pack_mm on bfloat16 inputs, plus the bias: int8 weights, bfloat16 arithmetic

and prints GFLOP/s (2 x rows x in x out per product; int8 counts the same operations) with the ratio to
fp32, after the float32 ceiling: a large square float32 product's GFLOP/s.

With --step it then times one whole greedy decoding step (Seq2Seq.step, log_softmax, max) of the Multi30K
recipe's model (random weights, a vocabulary of --vocab) on a batch of 64 sentences of 14 source tokens, in
each precision, over the whole vocabulary and over a shortlist of about 1,000 tokens, and prints where the
time goes (torch.profiler, operators by their share of the step).

    python benchmarks/kernels_benchmark.py [--threads 2] [--rounds 7] [--rows 64 320] [--hidden 256 512] [--step]
"""

from __future__ import annotations

import argparse
import copy as copy_module
import statistics
import time
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from transduce_builtins.decoder_networks import Int8Matrix, quantize_rows

from transduce._decoding.shortlist import Shortlisted
from transduce._model import assembly as pipeline
from transduce._model.model import Seq2Seq
from transduce._plugins.registry import discover
from transduce._recipe.recipe import load_recipe

#: Rows of a Multi30K step: a greedy batch of 64 sentences, and 64 x beam 5.
ROWS = (64, 320)
VOCAB = 8000
CEILING_SIZE = 1536
#: The greedy step of --step: sentences, source tokens, shortlist candidates beyond the 104 always listed.
STEP_BATCH, STEP_SOURCE, STEP_LISTED = 64, 14, 900
RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "translate-multi30k.yaml"
PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.int8}


def shapes(rows: list[int], hidden: list[int], vocab: int) -> list[tuple[str, int, int, int]]:
    """(name, rows, in, out) of the products: the output layer at every rows and hidden size; the cell
    (embedding 256, as the Multi30K recipe) and the attentional layer (memory 2 x hidden) at the first."""
    found = [(f"output h={size}", count, size, vocab) for count in rows for size in hidden]
    size = hidden[0]
    found.append((f"cell h={size}", rows[0], 256 + size, 4 * size))
    found.append((f"attentional h={size}", rows[0], 3 * size, size))
    return found


def variants(rows: int, inputs: int, outputs: int) -> dict[str, Callable[[], object]]:
    """The products of one shape, on random weights and inputs."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(outputs, inputs, generator=generator) / inputs**0.5
    bias = torch.randn(outputs, generator=generator)
    x = torch.randn(rows, inputs, generator=generator)
    transposed = weight.t().contiguous()
    bf16_weight, bf16_bias = transposed.bfloat16(), bias.bfloat16()
    int8 = Int8Matrix.of(weight, bias)
    quantized, _ = quantize_rows(x)
    found: dict[str, Callable[[], object]] = {
        "fp32": lambda: torch.addmm(bias, x, transposed),
        "bf16": lambda: torch.addmm(bf16_bias, x.bfloat16(), bf16_weight).float(),
        "int8": lambda: int8.addmm(x),
        "int8 kernel": lambda: torch._int_mm(quantized, int8.values),
    }
    if dynamic := _dynamic_linear(weight, bias):
        found["int8 dynamic"] = lambda: dynamic(x)
    packed, scales = quantize_rows(weight)
    bf16_x, bf16_scales = x.bfloat16(), scales.squeeze(1).bfloat16()
    if _works(lambda: torch._weight_int8pack_mm(bf16_x, packed, bf16_scales)):
        found["int8 weights"] = lambda: torch._weight_int8pack_mm(bf16_x, packed, bf16_scales).add_(bf16_bias)
    return found


def _dynamic_linear(weight: torch.Tensor, bias: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """PyTorch's dynamic quantized linear on the `x86` engine, or None where this torch has none."""
    if "x86" not in torch.backends.quantized.supported_engines:
        return None
    torch.backends.quantized.engine = "x86"
    _, scales = quantize_rows(weight)
    zeros = torch.zeros(weight.size(0), dtype=torch.long)
    with warnings.catch_warnings():  # quantized tensors are deprecated; measured while they exist
        warnings.simplefilter("ignore")
        qweight = torch.quantize_per_channel(weight, scales.squeeze(1).double(), zeros, 0, torch.qint8)
        packed = torch.ops.quantized.linear_prepack(qweight, bias)
    linear = torch.ops.quantized.linear_dynamic
    return (lambda x: linear(x, packed, False)) if _works(lambda: linear(weight[:1], packed, False)) else None


def _works(call: Callable[[], object]) -> bool:
    try:
        call()
    except (RuntimeError, NotImplementedError):
        return False
    return True


def timed(calls: dict[str, Callable[[], object]], rounds: int, seconds: float = 0.02) -> dict[str, float]:
    """Median seconds per call of each variant, interleaved: every round times each variant once."""
    repeats = {}
    for name, call in calls.items():  # warm up, and size each variant's block to about `seconds`
        call()
        start = time.perf_counter()
        call()
        repeats[name] = max(1, int(seconds / max(time.perf_counter() - start, 1e-6)))
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            for _ in range(repeats[name]):
                call()
            times[name].append((time.perf_counter() - start) / repeats[name])
    return {name: statistics.median(values) for name, values in times.items()}


def ceiling(rounds: int) -> float:
    """GFLOP/s of a large square float32 product: what float32 can reach on these cores."""
    a, b = torch.randn(CEILING_SIZE, CEILING_SIZE), torch.randn(CEILING_SIZE, CEILING_SIZE)
    seconds = timed({"square": lambda: a @ b}, rounds)["square"]
    return 2 * CEILING_SIZE**3 / seconds / 1e9


def step_variants(vocab: int, stack: ExitStack) -> dict[str, Callable[[], object]]:
    """A greedy step of the Multi30K model in each precision, over the whole vocabulary and over a shortlist.

    Each variant decodes with its own copy of the model, whose reduced products and shortlist `stack` holds
    entered, as the Translator holds them for a whole batch: a step pays only the step.
    """
    registry = discover()
    recipe = load_recipe(RECIPE, registry, [f"data.path={RECIPE.parent}"])  # the model settings only
    model = pipeline.model(registry, recipe, vocab, vocab).eval()
    generator = torch.Generator().manual_seed(0)
    source = torch.randint(4, vocab, (STEP_BATCH, STEP_SOURCE), generator=generator)
    listed = torch.randint(104, vocab, (STEP_LISTED,), generator=generator)
    candidates = torch.unique(torch.cat([torch.arange(104), listed]))
    copies = [copy_module.deepcopy(model) for _ in range(2 * len(PRECISION_DTYPES))]  # before inference mode
    stack.enter_context(torch.inference_mode())
    memory = model.encode(source, torch.full((STEP_BATCH,), STEP_SOURCE))
    state, tokens = model.start(memory), torch.full((STEP_BATCH,), model.bos_index)

    def step(dtype: torch.dtype, shortlisted: bool) -> Callable[[], object]:
        copy = copies.pop()
        stack.enter_context(copy.reduced_products(dtype))
        decodable: Seq2Seq | Shortlisted = copy
        if shortlisted:
            stack.enter_context(copy.restricted_output(candidates))
            decodable = Shortlisted(copy, candidates)

        def one() -> object:
            logits, _, _ = decodable.step(tokens, state, memory)
            return torch.log_softmax(logits, dim=-1).max(dim=-1)

        return one

    found = {}
    for name, dtype in PRECISION_DTYPES.items():
        found[name] = step(dtype, False)
        found[f"{name} +shortlist {candidates.numel()}"] = step(dtype, True)
    return found


def print_steps(vocab: int, rounds: int) -> None:
    with ExitStack() as stack:
        steps = step_variants(vocab, stack)
        seconds = timed(steps, rounds)
        _print_steps(vocab, steps, seconds)


def _print_steps(vocab: int, steps: dict[str, Callable[[], object]], seconds: dict[str, float]) -> None:
    base = seconds["fp32"]
    print(f"\ngreedy step, Multi30K model (hidden 256, vocabulary {vocab:,}), {STEP_BATCH} sentences:")
    for name, value in seconds.items():
        print(f"  {name:<24}{value * 1e3:8.2f} ms  ({base / value:4.1f}x)")
    for name, call in steps.items():
        with profile(activities=[ProfilerActivity.CPU]) as profiled:
            for _ in range(20):
                call()
        events = sorted(profiled.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events)
        shares = ", ".join(
            f"{e.key.removeprefix('aten::')} {100 * e.self_cpu_time_total / total:.0f}%" for e in events[:8]
        )
        print(f"  {name}: {shares}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per shape (median)")
    parser.add_argument("--rows", type=int, nargs="+", default=list(ROWS))
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--vocab", type=int, default=VOCAB)
    parser.add_argument("--step", action="store_true", help="also time and profile a whole greedy step")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}"
    )
    print(f"float32 ceiling ({CEILING_SIZE}^3 product): {ceiling(args.rounds):.0f} GFLOP/s")
    names = ["fp32", "bf16", "int8", "int8 kernel", "int8 dynamic", "int8 weights"]
    print(f"{'product':<18}{'rows':>6}{'in':>6}{'out':>6}" + "".join(f"{name:>18}" for name in names))
    for name, rows, inputs, outputs in shapes(args.rows, args.hidden, args.vocab):
        seconds = timed(variants(rows, inputs, outputs), args.rounds)
        flops = 2 * rows * inputs * outputs
        cells = [
            f"{flops / seconds[v] / 1e9:7.0f} ({seconds['fp32'] / seconds[v]:4.1f}x)" if v in seconds else "-"
            for v in names
        ]
        print(f"{name:<18}{rows:>6}{inputs:>6}{outputs:>6}" + "".join(f"{cell:>18}" for cell in cells))
    print("GFLOP/s (speed-up over fp32); medians of interleaved rounds")
    if args.step:
        print_steps(args.vocab, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
