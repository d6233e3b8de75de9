"""What a fresh output costs on CPU before any kernel runs: the first write to a newly
allocated large tensor page-faults every page, and the kernel zeroes it. torch's ops and
fusedact's pay this alike, so at the benchmark's 2^24 elements it shrinks the ratios between
them toward 1.

    PYTHONPATH=python .venv/bin/python benchmarks/first_touch.py [--threads 1] [--elements 16777216]

Prints the median of 15 calls of each: writing into a fresh tensor vs into a reused one,
x.clone() vs copy_ into a reused tensor, x.exp() vs torch.exp(x, out=reused).
"""

import argparse
import time

import torch


def median_ms(fn, reps=15):
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[reps // 2] * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--elements", type=int, default=1 << 24)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(args.elements)
    reused = torch.empty_like(x)
    rows = [
        ("torch.empty_like(x).zero_()", lambda: torch.empty_like(x).zero_()),
        ("reused.zero_()", lambda: reused.zero_()),
        ("x.clone()", lambda: x.clone()),
        ("reused.copy_(x)", lambda: reused.copy_(x)),
        ("x.exp()", lambda: x.exp()),
        ("torch.exp(x, out=reused)", lambda: torch.exp(x, out=reused)),
    ]
    print(f"float32, {args.elements} elements ({args.elements * 4 / 2**20:.0f} MiB), {args.threads} thread(s)")
    for name, fn in rows:
        print(f"  {name:30s} {median_ms(fn):8.2f} ms")


if __name__ == "__main__":
    main()
