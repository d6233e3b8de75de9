"""What a fresh output costs on CPU before any kernel runs: the first write to a newly
allocated large tensor page-faults every page, and the kernel zeroes it. torch's ops and
fusedact's pay this alike, so at the benchmark's 2^24 elements it shrinks the ratios between
them toward 1.

    PYTHONPATH=python .venv/bin/python benchmarks/first_touch.py [--threads 1] [--elements 16777216]

Prints the median of 15 calls of each: writing into a fresh tensor vs into a reused one,
x.clone() vs copy_ into a reused tensor, x.exp() vs torch.exp(x, out=reused), and (Linux)
a fresh tensor advised for transparent huge pages before its first write, as torch's
allocator does for every tensor under THP_MEM_ALLOC_ENABLE=1. (fusedact does not advise its
outputs itself: on a VM that reports freed memory to its host, huge pages re-faulted from
there stalled 50-100 ms, see the README.)
"""

import argparse
import ctypes
import sys
import time

import torch


def median_ms(fn, reps=15):
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[reps // 2] * 1e3


def huge_page_empty_like(x):
    """torch.empty_like(x) with its 2 MiB-aligned interior madvise(MADV_HUGEPAGE)d."""
    out = torch.empty_like(x)
    page = 2 << 20
    begin = out.data_ptr()
    first = (begin + page - 1) // page * page
    last = (begin + out.nbytes) // page * page
    if last > first:
        _libc.madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), 14)  # MADV_HUGEPAGE
    return out


_libc = ctypes.CDLL(None) if sys.platform.startswith("linux") else None


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
    if _libc is not None:
        rows += [
            ("huge-page empty_like(x).zero_()", lambda: huge_page_empty_like(x).zero_()),
            ("huge-page empty_like(x).copy_(x)", lambda: huge_page_empty_like(x).copy_(x)),
            ("torch.exp(x, out=huge-page fresh)", lambda: torch.exp(x, out=huge_page_empty_like(x))),
        ]
    print(f"float32, {args.elements} elements ({args.elements * 4 / 2**20:.0f} MiB), {args.threads} thread(s)")
    for name, fn in rows:
        print(f"  {name:34s} {median_ms(fn):8.2f} ms")


if __name__ == "__main__":
    main()
