"""Benchmark ``significance_postprocess``: torch reference vs the Triton kernel.

Usage: python -m bench.bench_kernel [--samples 512] [--words 600] [--dim 1024]

Three inputs: classifier logit differences (fp32), client values (float64, as values mode
sends them) and the fused head (bf16 hidden states and the 2-label head row). Reports wall
time per call (median of CUDA-event timings) and effective bandwidth: the bytes the op must
touch at least once (scores or hidden in, offsets in, word values and counts out) over time,
next to the card's measured device-to-device copy bandwidth, then checks that each Triton
answer has the bits of the torch reference run on the CPU. On a machine without CUDA only the
torch reference is timed (on the CPU).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from sigreward.kernels import (
    kernel_backend,
    reference,
    significance_postprocess,
    significance_postprocess_fused,
)
from sigreward.kernels.contract import (
    FusedCall,
    RaggedOffsets,
    ScoresCall,
    SignificanceOutput,
)


def make_batch(
    samples: int, words: int, device: torch.device, seed: int = 0
) -> tuple[int, RaggedOffsets]:
    """``samples`` responses of about ``words`` words (1-4 tokens) in 510-token segments."""
    gen = torch.Generator().manual_seed(seed)
    n_words = torch.randint(words // 2, words * 3 // 2 + 1, (samples,), generator=gen)
    word_len = torch.randint(1, 5, (int(n_words.sum()),), generator=gen)
    cu_words = torch.zeros(word_len.numel() + 1, dtype=torch.int32)
    cu_words[1:] = torch.cumsum(word_len, 0)
    seg_sizes, per_sample, start = [], [], 0
    for n in n_words.tolist():  # segments of ~170 words, the size of a 510-token chunk
        sizes = [170] * (n // 170) + ([n % 170] if n % 170 else [])
        seg_sizes += sizes
        per_sample.append(len(sizes))
        start += n
    cu_segments = torch.zeros(len(seg_sizes) + 1, dtype=torch.int32)
    cu_segments[1:] = torch.cumsum(torch.tensor(seg_sizes), 0)
    cu_samples = torch.zeros(samples + 1, dtype=torch.int32)
    cu_samples[1:] = torch.cumsum(torch.tensor(per_sample), 0)
    return int(cu_words[-1]), RaggedOffsets(cu_words, cu_segments, cu_samples).to(device)


def time_call(fn: Callable[[], object], device: torch.device, reps: int = 30) -> float:
    """Median seconds per call."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def copy_bandwidth(device: torch.device) -> float:
    """Measured device-to-device copy bandwidth in bytes/s (read + write)."""
    src = torch.empty(1 << 28, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    seconds = time_call(lambda: dst.copy_(src), device, reps=10)
    return 2 * src.numel() / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--words", type=int, default=600)
    parser.add_argument("--dim", type=int, default=1024)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    n_tok, offsets = make_batch(args.samples, args.words, device)
    n_words, n_seg = offsets[0].numel() - 1, offsets[1].numel() - 1
    scores = torch.randn(n_tok, device=device) * 3
    values = torch.randn(n_tok, device=device, dtype=torch.float64)
    hidden = torch.randn(n_tok, args.dim, device=device, dtype=torch.bfloat16)
    w_diff = torch.randn(args.dim, device=device) / args.dim**0.5
    index_bytes = 4 * (n_words + n_seg + args.samples + 3)
    out_bytes = 4 * n_words + 8 * args.samples
    plain_bytes = 4 * n_tok + index_bytes + out_bytes
    values_bytes = 8 * n_tok + index_bytes + out_bytes + 4 * n_words
    fused_bytes = 2 * n_tok * args.dim + index_bytes + out_bytes
    print(f"device {device}; T={n_tok} tokens, W={n_words} words, G={n_seg} segments, "
          f"N={args.samples} samples, d={args.dim}")  # fmt: skip
    # Each backend on its own, without the public op's checks; the op's checks (one device
    # sync) are timed on their own, through the op, with the backend its device picks.
    plain = ScoresCall(scores, offsets, 0.5)
    exact = ScoresCall(values, offsets, 0.5, "values")
    fused = FusedCall(hidden, w_diff, 0.1, offsets, 0.5)
    cases: list[tuple[str, Callable[[], object], int]] = [
        ("torch  logit_diff", lambda: reference.postprocess_scores(plain), plain_bytes),
        ("torch  values fp64", lambda: reference.postprocess_scores(exact), values_bytes),
        ("torch  fused bf16", lambda: reference.postprocess_fused(fused), fused_bytes),
        (f"op ({kernel_backend(device)}) logit_diff, with checks",
         lambda: significance_postprocess(scores, offsets, 0.5), plain_bytes),
    ]  # fmt: skip
    if device.type == "cuda":
        from sigreward.kernels import significance

        cases += [
            ("triton logit_diff", lambda: significance.postprocess_scores(plain), plain_bytes),
            ("triton values fp64", lambda: significance.postprocess_scores(exact), values_bytes),
            ("triton fused bf16", lambda: significance.postprocess_fused(fused), fused_bytes),
            (f"op ({kernel_backend(device)}) fused bf16, with checks",
             lambda: significance_postprocess_fused(hidden, w_diff, 0.1, offsets, 0.5),
             fused_bytes),
        ]  # fmt: skip
        print(f"measured copy bandwidth {copy_bandwidth(device) / 1e9:.0f} GB/s")
    for name, fn, nbytes in cases:
        seconds = time_call(fn, device)
        print(f"{name:36s} {seconds * 1e3:9.3f} ms  {nbytes / seconds / 1e9:8.1f} GB/s")
    if device.type == "cuda":
        cpu = offsets.to("cpu")
        checks = [
            ("logit_diff", significance.postprocess_scores(plain),
             reference.postprocess_scores(ScoresCall(scores.cpu(), cpu, 0.5))),
            ("values fp64", significance.postprocess_scores(exact),
             reference.postprocess_scores(ScoresCall(values.cpu(), cpu, 0.5, "values"))),
            ("fused bf16", significance.postprocess_fused(fused),
             reference.postprocess_fused(FusedCall(hidden.cpu(), w_diff.cpu(), 0.1, cpu, 0.5))),
        ]  # fmt: skip
        for name, got, want in checks:
            print(f"triton {name} bit-identical to the torch reference on the CPU: "
                  f"{'yes' if same_answer(got, want) else 'NO'}")  # fmt: skip


def same_answer(got: SignificanceOutput, want: SignificanceOutput) -> bool:
    """Same word-value bits and counts (the backends promise one answer per input)."""
    return (
        torch.equal(got.word_values.cpu(), want.word_values)
        and torch.equal(got.significant.cpu(), want.significant)
        and torch.equal(got.insignificant.cpu(), want.insignificant)
    )


if __name__ == "__main__":
    main()
