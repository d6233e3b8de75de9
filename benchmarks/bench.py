"""fusedact vs torch, torch.compile and Liger-Kernel: time, bandwidth, memory, overhead.

Run from the repository root (what `make bench` does):

    PYTHONPATH=python .venv/bin/python benchmarks/bench.py --out benchmarks/results

What it measures, per device (CPU always, CUDA when present; `--device` picks):

- every op of `fusedact.registry`: the unary ops, the gated ops on a packed (tokens, 2d)
  input, prelu and learnable_swish with a per-channel weight (input (batch, 64, length)),
  rrelu in training mode, the row-wise ops (softmax, log_softmax, softmin) over the last dim
  (dim=-1, no dtype=); each with its default parameters and every parameter set that
  selects another formula (gelu/geglu approximate='tanh'; `--all-params` sweeps them all;
  the row-wise ops always run dim=-1);
- forward, backward, and for the gated ops forward+backward; float32 and bfloat16, plus
  float16 on CUDA (`--dtypes`);
- sizes: a large tensor (2^24 output elements on CPU, 2^26 on CUDA) for every op, and the
  LLM shapes tokens x d (tokens 7, 83, 2048, 8192; d 4096, 14336) for the gated ops and
  gelu/silu; the row-wise ops instead run rows of 128, 1024, 4096 and 32768 elements and
  vocabulary-sized rows of 131072 and 262144 (`--row-lengths`), as many rows as make the
  large size (at least one row);
- contenders: fusedact; the torch built-in (the registry's `reference`: F.gelu, ...; for
  the gated ops the eager composition chunk + F.silu(a) * b etc.; for the row-wise ops
  F.softmax / F.log_softmax / F.softmin(x, dim=-1)); torch.compile of that
  same function (compiled once per op/shape/dtype and warmed up, its compile time excluded
  from the timings; `--no-compile` skips it); torch's fused F.glu for glu; and on CUDA
  Liger-Kernel's swiglu and (tanh) geglu on separate contiguous gate/up tensors, its natural
  input, when the package is importable (a note in the output says when it is not);
- time: one process; every contender and a copy of the same byte count interleaved rep by
  rep (the order alternating); warm-up first; the median of many reps. CUDA: CUDA events
  around each call, queued behind a spin kernel so that only GPU time is measured, and
  inputs rotated over enough buffers to cover twice the L2 cache, so each rep reads cold
  data. CPU: a wall clock, one buffer (timings on small shared machines are noisy: read
  the ratios). The forward runs on inputs that require grad (the training forward);
  backward is torch.autograd.grad on a retained graph (the forward outside the timed call);
  forward+backward is both in one timed call;
- bandwidth from the fewest bytes each op must move (`counted_bytes`), and its fraction of
  the bandwidth of a device-to-device copy (`x.clone()`) of the same byte count, measured
  in the same reps;
- peak memory of forward+backward of the gated ops vs the eager composition (CUDA:
  torch.cuda.max_memory_allocated; CPU: the allocations the torch profiler records, after
  a self-check that says when it cannot be trusted);
- per-call overhead on a 1-element tensor vs torch's gelu through the same kind of entry
  point (F.gelu; torch.ops.aten.gelu for torch.ops.fusedact.gelu), and vs F.gelu;
- the check of the performance issue's targets, PASS or MISS with the measured figure (a
  MISS never changes the exit status).

Writes a table to stdout (a progress bar to stderr) and, per device, under --out:
<device>-<date>.json, .md (with device, torch version, date and command) and .png (fraction
of copy bandwidth per op at the large size, forward and backward; needs matplotlib).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

_HERE = Path(__file__).resolve().parent
_REPO = _HERE.parent
if str(_REPO / "python") not in sys.path:
    sys.path.append(str(_REPO / "python"))  # PYTHONPATH, when set, still wins

import fusedact  # noqa: E402  (loads the extension: torch.ops.fusedact.*)
import fusedact.functional as FA  # noqa: E402
from fusedact import registry  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEFAULT_DTYPES = {"cpu": ["float32", "bfloat16"], "cuda": ["float32", "bfloat16", "float16"]}

LLM_TOKENS = (7, 83, 2048, 8192)
LLM_D = (4096, 14336)
LLM_UNARY = ("gelu", "silu")  # the unary ops also run at the LLM shapes
QUICK_OPS = ("gelu", "swiglu", "prelu", "rrelu", "softmax")
# Row-wise ops (kind "rowwise"): row lengths of attention/hidden sizes and of LLM vocabularies
# (Llama 3: 128256, Gemma: 262144), each with as many rows as make the large size.
ROW_LENGTHS = (128, 1024, 4096, 32768, 131072, 262144)
QUICK_ROW_LENGTHS = (128, 4096)
ROWWISE_TORCH = {"softmax": F.softmax, "log_softmax": F.log_softmax, "softmin": F.softmin}
WEIGHT_CHANNELS = 64  # weighted ops: input (batch, 64, length), one weight per channel

DIRECTIONS = ("forward", "backward", "fwd+bwd")
_DIR = {"forward": "fwd", "backward": "bwd", "fwd+bwd": "fwd+bwd"}

# Baselines: key, column title, description.
BASELINES = {
    "torch": ("x torch", "the torch built-in (registry reference; gated: eager composition)"),
    "compile": ("x compile", "torch.compile of the same function"),
    "liger": ("x liger", "Liger-Kernel (swiglu; geglu tanh), separate gate/up tensors"),
    "builtin": ("x F.glu", "torch's fused F.glu (glu only)"),
}

# Issue targets (DESIGN.md section 6 and the performance issue).
CPU_UNARY_MIN = 1.0
CPU_GATED_MIN = 2.0
OVERHEAD_MAX = 1.25
CUDA_COPY_FRAC_MIN = 0.90
CUDA_COPY_MIN_NUMEL = 2**26
CUDA_GATED_EAGER_MIN = 2.3
CUDA_GATED_COMPILE_MIN = 1.1


# ----------------------------------------------------------------------------- cases


@dataclasses.dataclass
class Case:
    spec: registry.OpSpec
    params: dict
    dtype_name: str
    shape_kind: str  # "large", "llm" or "rows" (the row-wise ops: rows x row length)
    in_shape: Tuple[int, ...]
    out_shape: Tuple[int, ...]

    @property
    def label(self) -> str:
        """"-" for the op's default parameters, else the parameters that differ."""
        default = {**self.spec.params, **self.spec.param_sets[0]}
        diff = {k: v for k, v in self.params.items() if default.get(k) != v}
        return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in diff.items()) or "-"

    @property
    def numel_out(self) -> int:
        return math.prod(self.out_shape)

    @property
    def shape_label(self) -> str:
        return "x".join(map(str, self.out_shape))

    @property
    def directions(self) -> Tuple[str, ...]:
        return DIRECTIONS if self.spec.kind == "gated" else DIRECTIONS[:2]


def counted_bytes(case: Case, direction: str) -> int:
    """The fewest bytes the op must move (DESIGN.md section 6), reads plus writes.

    Per output element, in units of the element size s: unary forward 2 (read x, write y),
    backward 3 (read dy and x or y, write dx); gated forward 3 (read both halves, write
    out), backward 5 (read dy and both halves, write both halves of dx); weighted as unary
    plus the C weights (forward reads them, backward reads them and writes their gradient);
    rrelu in training forward 3 (read x, write y and the slopes it keeps for backward),
    backward 3 (read dy and the slopes, write dx); row-wise forward 2 (read the N elements
    of x once, write y; a kernel that reads a row twice, for its max and sum and then for
    the output, moves more but counts only this), backward 3 (read dy and y, write dx).
    forward+backward is the sum.
    """
    if direction == "fwd+bwd":
        return counted_bytes(case, "forward") + counted_bytes(case, "backward")
    s = DTYPES[case.dtype_name].itemsize
    n = case.numel_out
    kind = case.spec.kind
    if kind == "gated":
        return (3 if direction == "forward" else 5) * n * s
    if kind == "random":
        return 3 * n * s
    if kind == "rowwise":
        return (2 if direction == "forward" else 3) * n * s
    per = 2 if direction == "forward" else 3
    extra = 0
    if kind == "weighted":
        extra = (1 if direction == "forward" else 2) * WEIGHT_CHANNELS * s
    return per * n * s + extra


def _param_sets(spec: registry.OpSpec, all_params: bool) -> List[dict]:
    """The defaults plus every set that changes a string parameter (a different formula,
    e.g. approximate='tanh'); numeric parameters do not change the cost."""
    sets = [dict(p) for p in spec.param_sets]
    if all_params:
        return sets
    default = sets[0]
    picked = [default]
    for p in sets[1:]:
        if any(isinstance(v, str) and v != default.get(k) for k, v in p.items()):
            picked.append(p)
    return picked


def _large_shapes(spec: registry.OpSpec, numel: int, width: int):
    if spec.kind == "gated":
        d = max(1, min(width, numel))
        tokens = max(1, numel // d)
        return (tokens, 2 * d), (tokens, d)
    if spec.kind == "weighted":
        length = max(1, min(1024, numel // WEIGHT_CHANNELS))
        batch = max(1, numel // (WEIGHT_CHANNELS * length))
        shape = (batch, WEIGHT_CHANNELS, length)
        return shape, shape
    w = max(1, min(width, numel))
    shape = (max(1, numel // w), w)
    return shape, shape


def build_cases(device: torch.device, cfg: argparse.Namespace, dtypes: List[str]) -> List[Case]:
    large = cfg.cuda_size if device.type == "cuda" else cfg.size
    names = cfg.ops or (list(QUICK_OPS) if cfg.quick else [s.name for s in registry.OPS])
    specs = [registry.get(n) for n in names]
    cases: List[Case] = []
    for dtype_name in dtypes:
        for spec in specs:
            if spec.kind == "rowwise":  # dim=-1 over rows of each length, at the large size
                for length in cfg.row_lengths:
                    shape = (max(1, large // length), length)
                    cases.append(Case(spec, {}, dtype_name, "rows", shape, shape))
                continue
            for params in _param_sets(spec, cfg.all_params):
                in_shape, out_shape = _large_shapes(spec, large, cfg.width)
                cases.append(Case(spec, params, dtype_name, "large", in_shape, out_shape))
        for spec in specs:
            if spec.kind != "gated" and spec.name not in LLM_UNARY:
                continue
            for params in _param_sets(spec, cfg.all_params):
                for tokens in cfg.llm_tokens:
                    for d in cfg.llm_d:
                        in_shape = (tokens, 2 * d) if spec.kind == "gated" else (tokens, d)
                        cases.append(Case(spec, params, dtype_name, "llm", in_shape, (tokens, d)))
    return cases


# ----------------------------------------------------------------------------- contenders


def _weight_view(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    shape = [1] * x.dim()
    shape[1] = w.numel()
    return w.view(shape)


def _functions(spec: registry.OpSpec, params: dict):
    """(ours, torch) as functions of the benchmark's argument tuple."""
    kind = spec.kind
    if kind == "unary":
        return (lambda x: spec.op(x, **params)), (lambda x: spec.reference(x, **params))
    if kind == "gated":
        return ((lambda x: spec.op(x, **params, dim=-1)),
                (lambda x: registry.reference(spec, x, -1, **params)))
    if kind == "weighted":
        if spec.name == "prelu":
            ref = lambda x, w: F.prelu(x, w)  # noqa: E731
        else:
            ref = lambda x, w: spec.reference(x, _weight_view(x, w))  # noqa: E731
        return (lambda x, w: spec.op(x, w)), ref
    if kind == "rowwise":  # dim=-1, no dtype=; torch's F.<op> itself (the registry's reference wraps it)
        op = spec.op.default
        ref = ROWWISE_TORCH.get(spec.name) or functools.partial(registry.reference, spec)
        return (lambda x: op(x, -1)), (lambda x: ref(x, dim=-1))
    if kind == "random":
        p = {**spec.params, **params}
        lower, upper = p["lower"], p["upper"]
        return ((lambda x: torch.ops.fusedact.rrelu(x, lower, upper, True)),
                (lambda x: F.rrelu(x, lower, upper, training=True)))
    raise ValueError(f"unknown kind {kind!r}")


_LIGER: Optional[dict] = None
_LIGER_NOTE = ""


def liger_functions() -> dict:
    """{op name or (name, approximate): autograd.Function.apply} of Liger-Kernel, or {}."""
    global _LIGER, _LIGER_NOTE
    if _LIGER is None:
        _LIGER = {}
        try:
            from liger_kernel.ops.geglu import LigerGELUMulFunction
            from liger_kernel.ops.swiglu import LigerSiLUMulFunction
        except Exception as exc:  # not installed, or no Triton
            _LIGER_NOTE = (f"Liger-Kernel not importable ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}): its swiglu/geglu "
                           "baselines skipped (pip install liger-kernel to add them)")
        else:
            import importlib.metadata as md
            try:
                version = md.version("liger-kernel")
            except md.PackageNotFoundError:
                version = "?"
            _LIGER = {"swiglu": LigerSiLUMulFunction.apply,
                      ("geglu", "tanh"): LigerGELUMulFunction.apply}
            _LIGER_NOTE = (f"Liger-Kernel {version}: swiglu (LigerSiLUMulFunction) and geglu "
                           "approximate='tanh' (LigerGELUMulFunction, tanh GELU only) on separate "
                           "contiguous gate/up tensors; its backward writes the gradients into "
                           "its saved inputs, so in the backward reps it reads the previous "
                           "rep's gradients as inputs (same bytes, same time)")
    return _LIGER


def _liger_for(case: Case) -> Optional[Callable]:
    fns = liger_functions()
    if case.spec.name == "swiglu":
        return fns.get("swiglu")
    if case.spec.name == "geglu" and case.params.get("approximate") == "tanh":
        return fns.get(("geglu", "tanh"))
    return None


# ----------------------------------------------------------------------------- timing


class Timer:
    """Times one call on a device: CUDA events on the current stream, or a wall clock.

    On CUDA each timed call is queued behind a spin kernel, so the GPU is still busy while
    Python (and, for backward, the autograd engine) issues the call: the start event then
    fires when the work is already waiting, and the time measured is the GPU's alone, not
    the host's launch overhead. The spin lasts at least 300 us and twice the longest host
    time of a warm-up call of the row (`set_host_time`).
    """

    MIN_PREFILL_US = 300.0

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self._cycles_per_us = 0.0
        self._prefill_cycles = 0
        if self.cuda:
            self._start = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)
            if hasattr(torch.cuda, "_sleep"):
                torch.cuda._sleep(1000)
                cycles = 2_000_000
                self._start.record()
                torch.cuda._sleep(cycles)
                self._end.record()
                self._end.synchronize()
                self._cycles_per_us = cycles / (self._start.elapsed_time(self._end) * 1e3)
            self.set_host_time(0.0)

    def set_host_time(self, seconds: float) -> None:
        if self._cycles_per_us:
            us = max(self.MIN_PREFILL_US, min(2 * seconds * 1e6, 20_000.0))
            self._prefill_cycles = int(self._cycles_per_us * us)

    def seconds(self, fn: Callable[[], object]) -> float:
        if self.cuda:
            if self._prefill_cycles:
                torch.cuda._sleep(self._prefill_cycles)
            self._start.record()
            out = fn()
            self._end.record()
            self._end.synchronize()
            del out
            return self._start.elapsed_time(self._end) * 1e-3
        t0 = time.perf_counter()
        out = fn()
        t1 = time.perf_counter()
        del out
        return t1 - t0

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()


def measure(timer: Timer, fns: Dict[str, List[Callable[[], object]]], cfg: argparse.Namespace) -> Dict[str, List[float]]:
    """Interleaved reps of every contender; returns the per-call times (seconds).

    Each rep runs every contender once, the order flipped on alternate reps so none always
    runs on a cache or clock state left by another. A contender with several rotation
    buffers takes the next one at each call. Reps go on until both the minimum count and
    the time budget are reached, or the maximum count.
    """
    names = list(fns)
    counter = {name: 0 for name in names}

    def next_fn(name):
        lst = fns[name]
        fn = lst[counter[name] % len(lst)]
        counter[name] += 1
        return fn

    host = 0.0
    for w in range(cfg.warmup):
        for name in names:
            fn = next_fn(name)
            t0 = time.perf_counter()
            out = fn()
            if w == cfg.warmup - 1:
                host = max(host, time.perf_counter() - t0)
            del out
        timer.sync()
    timer.set_host_time(host)
    times: Dict[str, List[float]] = {name: [] for name in names}
    t_begin = time.perf_counter()
    for rep in range(cfg.max_reps):
        for name in names if rep % 2 == 0 else reversed(names):
            times[name].append(timer.seconds(next_fn(name)))
        if rep + 1 >= cfg.min_reps and time.perf_counter() - t_begin >= cfg.budget:
            break
    return times


def _quantile(values: List[float], q: float) -> float:
    return float(np.quantile(np.asarray(values), q))


def rotation_count(device: torch.device, nbytes: int, cfg: argparse.Namespace) -> int:
    """Buffers to rotate over so that one pass covers twice the L2 cache (CUDA only)."""
    if device.type != "cuda" or cfg.no_rotate:
        return 1
    l2 = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0) or 50 * 2**20
    return int(max(1, min(cfg.max_buffers, math.ceil(2 * l2 / max(1, nbytes)))))


# ----------------------------------------------------------------------------- numerics


def max_abs_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| in float64; NaN in the same place in both counts as equal."""
    a64, b64 = a.detach().double(), b.detach().double()
    diff = (a64 - b64).abs()
    diff = diff.masked_fill(torch.isnan(a64) & torch.isnan(b64), 0.0)
    if diff.numel() == 0:
        return 0.0
    return float(diff.max().item())


def _value_and_grads(fn, args, dy):
    y = fn(*args)
    grads = torch.autograd.grad(y, args, dy)
    return y.detach(), [g.detach() for g in grads]


def accuracy(ours, ref, args: tuple, dy: torch.Tensor) -> dict:
    """Max abs error of ours vs torch and of both vs torch in float64, forward output and
    input gradients (all inputs, weight included), on the first rows of the input, at most
    2^22 output elements and at least one row (a sample: these are elementwise ops, or
    row-wise ops over the last dim, whose rows are independent)."""
    x = args[0]
    per_row = max(1, dy[0].numel()) if dy.dim() > 0 else 1
    rows = max(1, min(x.shape[0], 2**22 // per_row))
    sample = tuple(a.detach()[:rows].requires_grad_() if j == 0 else a.detach().requires_grad_()
                   for j, a in enumerate(args))
    dys = dy[:rows]
    y_o, g_o = _value_and_grads(ours, sample, dys)
    y_t, g_t = _value_and_grads(ref, sample, dys)
    s64 = tuple(a.detach().double().requires_grad_() for a in sample)
    y_64, g_64 = _value_and_grads(ref, s64, dys.double())

    def worst(xs, ys):
        return max(max_abs_err(a, b) for a, b in zip(xs, ys))

    return {
        "forward": (max_abs_err(y_o, y_t), max_abs_err(y_o, y_64), max_abs_err(y_t, y_64)),
        "backward": (worst(g_o, g_t), worst(g_o, g_64), worst(g_t, g_64)),
        "sample_rows": rows,
    }


# ----------------------------------------------------------------------------- memory


def _cpu_profile_peak(fn: Callable[[], object]) -> Tuple[int, object]:
    """Peak of the running sum of the CPU allocations the torch profiler records while fn
    runs (bytes allocated and freed inside; what fn returns stays allocated)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    cur = peak = 0
    for e in events:
        if e.device_type() != torch.autograd.DeviceType.CPU:
            continue
        cur += e.nbytes()
        peak = max(peak, cur)
    return peak, out


_CPU_MEMORY_OK: Optional[bool] = None
_CPU_MEMORY_NOTE = ""


def cpu_memory_reliable() -> bool:
    """Self-check of the profiler's allocation records: an out-of-place op of a known size
    and a temporary inside a function must come out exactly."""
    global _CPU_MEMORY_OK, _CPU_MEMORY_NOTE
    if _CPU_MEMORY_OK is None:
        import warnings

        try:
            x = torch.randn(1000, 1000)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p1, _ = _cpu_profile_peak(lambda: x.clone())

                def two():
                    t = x * 2
                    return t + 1

                p2, _ = _cpu_profile_peak(two)
            # Slack for the few bytes of wrapped Python scalars (x * 2 allocates a 0-dim tensor).
            _CPU_MEMORY_OK = abs(p1 - x.nbytes) <= 1024 and abs(p2 - 2 * x.nbytes) <= 1024
            if not _CPU_MEMORY_OK:
                _CPU_MEMORY_NOTE = (f"CPU peak memory not measured: the profiler's allocation records "
                                    f"failed the self-check (clone {p1} B, expected {x.nbytes}; "
                                    f"temporary {p2} B, expected {2 * x.nbytes})")
        except Exception as exc:
            _CPU_MEMORY_OK = False
            _CPU_MEMORY_NOTE = f"CPU peak memory not measured: the torch profiler failed ({type(exc).__name__}: {exc})"
        if _CPU_MEMORY_OK:
            _CPU_MEMORY_NOTE = ("CPU peak memory: running sum of the allocations the torch profiler "
                                "records (profile_memory=True) during forward+backward; self-check passed")
    return bool(_CPU_MEMORY_OK)


def peak_fwd_bwd(device: torch.device, fn, args: tuple, dy: torch.Tensor) -> Optional[int]:
    """Bytes allocated at the peak of y = fn(*args); autograd.grad(y, args, dy), over what
    was allocated before (the inputs and dy are not counted; y and the gradients are)."""
    def run():
        y = fn(*args)
        grads = torch.autograd.grad(y, args, dy)
        return y, grads

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        out = run()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        del out
        return int(peak)
    if not cpu_memory_reliable():
        return None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peak, out = _cpu_profile_peak(run)
    del out
    return int(peak)


# ----------------------------------------------------------------------------- progress


class Progress:
    """A progress bar on stderr (tqdm when installed) that keeps the stdout table intact."""

    def __init__(self, total: int, desc: str) -> None:
        self.total, self.desc, self.n = total, desc, 0
        self._tqdm = None
        self._tty = sys.stderr.isatty()
        self._t0 = time.perf_counter()
        self._last = -1e9
        if self._tty:  # a log file gets a plain line every 30 s instead
            try:
                from tqdm import tqdm

                self._tqdm = tqdm(total=total, desc=desc, file=sys.stderr, unit="case",
                                  dynamic_ncols=True, leave=False)
            except ImportError:
                pass

    def set(self, label: str) -> None:
        if self._tqdm is not None:
            self._tqdm.set_postfix_str(label, refresh=True)
            return
        self._draw(label)

    def update(self) -> None:
        self.n += 1
        if self._tqdm is not None:
            self._tqdm.update(1)

    def _draw(self, label: str) -> None:
        frac = self.n / max(1, self.total)
        bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
        elapsed = time.perf_counter() - self._t0
        line = f"{self.desc} [{bar}] {self.n}/{self.total} {elapsed:6.0f}s {label}"
        if self._tty:
            sys.stderr.write("\r" + line[: 150].ljust(150))
        elif elapsed - self._last >= 30:
            sys.stderr.write(line + "\n")
            self._last = elapsed
        sys.stderr.flush()

    def write(self, line: str) -> None:
        if self._tqdm is not None:
            self._tqdm.write(line, file=sys.stdout)
            return
        if self._tty:
            sys.stderr.write("\r" + " " * 150 + "\r")
            sys.stderr.flush()
        print(line, flush=True)

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
        elif self._tty:
            sys.stderr.write("\r" + " " * 150 + "\r")
            sys.stderr.flush()


# ----------------------------------------------------------------------------- device info


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def device_info(device: torch.device) -> dict:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        name = torch.cuda.get_device_name(device)
        return {
            "device": name,
            "device_type": "cuda",
            "slug": _slug(name),
            "compute_capability": f"{props.major}.{props.minor}",
            "multiprocessors": props.multi_processor_count,
            "memory_GiB": round(props.total_memory / 2**30, 1),
            "L2_MiB": round(getattr(props, "L2_cache_size", 0) / 2**20, 1),
            "torch_cuda": torch.version.cuda,
        }
    name = cpu_name()
    cleaned = re.sub(r"\((r|tm)\)|\bcpu\b|\bprocessor\b|@.*$", " ", name, flags=re.I)
    return {
        "device": name,
        "device_type": "cpu",
        "slug": "cpu-" + _slug(cleaned) if _slug(cleaned) else "cpu",
        "threads": torch.get_num_threads(),
        "logical_cpus": os.cpu_count(),
    }


def git_commit() -> Optional[str]:
    try:
        out = subprocess.run(
            ["git", "-C", str(_REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# ----------------------------------------------------------------------------- one case


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().requires_grad_(True)


def _msg(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:200]


def _time_direction(direction: str, contenders: Dict[str, Tuple[Callable, List[tuple]]], dys: List[torch.Tensor],
                    nbytes: int, dtype: torch.dtype, device: torch.device, timer: Timer,
                    cfg: argparse.Namespace, notes: Dict[str, str]) -> Dict[str, List[float]]:
    """Builds each contender's calls for one direction (one per rotation buffer), leaves out
    a baseline that cannot run it (noted), adds the copy of the same byte count and times
    them all interleaved. The graphs built here die with the call."""
    fns: Dict[str, List[Callable[[], object]]] = {}
    for name, (fn, a) in contenders.items():
        if direction == "forward":
            fns[name] = [functools.partial(fn, *ai) for ai in a]
        elif direction == "backward":
            fns[name] = [functools.partial(torch.autograd.grad, fn(*ai), ai, dy, retain_graph=True)
                         for ai, dy in zip(a, dys)]
        else:
            def fwd_bwd(fn=fn, ai=None, dy=None):
                return torch.autograd.grad(fn(*ai), ai, dy)

            fns[name] = [functools.partial(fwd_bwd, ai=ai, dy=dy) for ai, dy in zip(a, dys)]
    # One call of each first: a baseline that cannot run this direction (a compiled backward
    # with donated buffers refuses retain_graph=True) is left out of the row.
    for name in list(fns):
        try:
            fns[name][0]()
        except Exception as exc:
            if name == "ours":
                raise
            del fns[name]
            notes[name] = f"left out of {direction}: {_msg(exc)}"
    # The copy moves the same byte count: a clone reads and writes nbytes / 2.
    copy_numel = max(1, nbytes // 2 // dtype.itemsize)
    fns["copy"] = [torch.randn(copy_numel, device=device).to(dtype).clone
                   for _ in range(rotation_count(device, nbytes, cfg))]
    return measure(timer, fns, cfg)


def run_case(case: Case, device: torch.device, timer: Timer, cfg: argparse.Namespace,
             emit: Callable[[dict], None]) -> Tuple[List[dict], Optional[dict]]:
    """Times every direction of one op/params/dtype/shape; returns its records and, for a
    gated op, its peak-memory record."""
    spec, dtype = case.spec, DTYPES[case.dtype_name]
    base = {
        "op": spec.name, "kind": spec.kind, "params": dict(case.params),
        "params_label": case.label, "dtype": case.dtype_name, "shape_kind": case.shape_kind,
        "shape": list(case.out_shape), "input_shape": list(case.in_shape),
        "numel_out": case.numel_out,
    }
    records: List[dict] = []

    def fail(msg: str, directions=case.directions):
        for direction in directions:
            rec = dict(base, direction=direction, error=msg)
            records.append(rec)
            emit(rec)

    torch.manual_seed(0)
    k = rotation_count(device, counted_bytes(case, "forward"), cfg)
    try:
        args: List[tuple] = []
        for _ in range(k):
            x = torch.randn(case.in_shape, device=device).to(dtype)
            if spec.kind == "weighted":
                w = (0.5 + 0.25 * torch.randn(WEIGHT_CHANNELS, device=device)).to(dtype)
                args.append((_leaf(x), _leaf(w)))
            else:
                args.append((_leaf(x),))
        dys = [torch.randn(case.out_shape, device=device).to(dtype) for _ in range(k)]
    except Exception as exc:  # out of memory, typically
        fail(_msg(exc))
        return records, None

    ours, ref = _functions(spec, case.params)
    contenders: Dict[str, Tuple[Callable, List[tuple]]] = {"ours": (ours, args), "torch": (ref, args)}
    notes: Dict[str, str] = {}
    compile_s = None
    if cfg.compile:
        try:
            torch._dynamo.reset()
            compiled = torch.compile(ref, dynamic=False)
            t0 = time.perf_counter()
            y = compiled(*args[0])
            torch.autograd.grad(y, args[0], dys[0])
            timer.sync()
            compile_s = time.perf_counter() - t0
            del y
            contenders["compile"] = (compiled, args)
        except Exception as exc:
            notes["compile"] = _msg(exc)
    if spec.name == "glu":
        contenders["builtin"] = (lambda x: F.glu(x, dim=-1), args)
    liger = _liger_for(case) if device.type == "cuda" else None
    if liger is not None:
        d = case.out_shape[-1]
        largs = [(_leaf(a[0].detach()[..., :d].contiguous()), _leaf(a[0].detach()[..., d:].contiguous()))
                 for a in args]
        try:
            y = liger(*largs[0])
            torch.autograd.grad(y, largs[0], dys[0])
            timer.sync()
            del y
            contenders["liger"] = (liger, largs)
        except Exception as exc:
            notes["liger"] = _msg(exc)

    # Peak memory of forward+backward (gated ops), before any graph is kept alive.
    mem = None
    if spec.kind == "gated":
        mem = dict(base, activation_bytes=case.numel_out * dtype.itemsize, peak_bytes={})
        for name, (fn, a) in contenders.items():
            if name == "builtin":
                continue
            try:
                mem["peak_bytes"][name] = peak_fwd_bwd(device, fn, a[0], dys[0])
            except Exception as exc:
                mem.setdefault("errors", {})[name] = _msg(exc)
        if all(v is None for v in mem["peak_bytes"].values()):
            mem["peak_bytes"] = {}

    # Accuracy on a sample (not for rrelu in training: its slopes are random).
    errors = None
    if spec.kind != "random":
        try:
            errors = accuracy(ours, ref, args[0], dys[0])
        except Exception as exc:
            fail(_msg(exc))
            return records, mem

    for direction in case.directions:
        nbytes = counted_bytes(case, direction)
        dir_notes: Dict[str, str] = {}
        try:
            times = _time_direction(direction, contenders, dys, nbytes, dtype, device, timer, cfg, dir_notes)
        except Exception as exc:
            fail(_msg(exc), (direction,))
            continue
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        t = {name: statistics.median(v) for name, v in times.items()}
        rec = dict(
            base,
            direction=direction,
            bytes=nbytes,
            buffers=k,
            reps=len(times["ours"]),
            times_us={name: v * 1e6 for name, v in t.items()},
            iqr_us={name: [_quantile(v, 0.25) * 1e6, _quantile(v, 0.75) * 1e6] for name, v in times.items()},
            speedup={name: t[name] / t["ours"] for name in t if name not in ("ours", "copy")},
            GBps={name: nbytes / v / 1e9 for name, v in t.items()},
            frac_copy={name: t["copy"] / v for name, v in t.items() if name != "copy"},
            copy_GBps=nbytes / t["copy"] / 1e9,
        )
        if compile_s is not None:
            rec["compile_s"] = compile_s
        if notes or dir_notes:
            rec["notes"] = {**notes, **dir_notes}
        if errors is not None:
            key = "forward" if direction == "forward" else "backward"
            if direction == "fwd+bwd":
                e = tuple(max(a, b) for a, b in zip(errors["forward"], errors["backward"]))
            else:
                e = errors[key]
            rec.update(max_abs_err=e[0], max_abs_err_vs_fp64_ours=e[1], max_abs_err_vs_fp64_torch=e[2],
                       err_sample_rows=errors["sample_rows"])
        records.append(rec)
        emit(rec)
    del contenders, args, dys
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return records, mem


# ----------------------------------------------------------------------------- overhead


def measure_overhead(device: torch.device, cfg: argparse.Namespace) -> List[dict]:
    """Host time per call on a 1-element tensor, without and with autograd recording, of
    fusedact's gelu through each of its Python entry points, each against torch's gelu
    through the same kind of entry point: fusedact.functional.gelu vs F.gelu (both bindings
    that skip schema parsing), torch.ops.fusedact.gelu vs torch.ops.aten.gelu (torch.ops
    matches the arguments against the op's schema on every call, for torch's ops as for
    ours: about 1 us that no op registered there can avoid). Every entry also carries its
    ratio to F.gelu."""
    results = []
    calls = cfg.overhead_calls
    baselines = {"fusedact.functional.gelu": "F.gelu", "torch.ops.fusedact.gelu": "torch.ops.aten.gelu"}
    for grad in (False, True):
        x = torch.randn(1, device=device)
        if grad:
            x.requires_grad_(True)
        fns = {
            "F.gelu": lambda: F.gelu(x),
            "torch.ops.fusedact.gelu": lambda: torch.ops.fusedact.gelu(x),
            "fusedact.functional.gelu": lambda: FA.gelu(x),
            "torch.ops.aten.gelu": lambda: torch.ops.aten.gelu(x),
        }
        times = {name: [] for name in fns}
        for _ in range(3):  # warm-up
            for fn in fns.values():
                fn()
        for rep in range(cfg.overhead_reps):
            order = list(fns) if rep % 2 == 0 else list(reversed(list(fns)))
            for name in order:
                fn = fns[name]
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                t0 = time.perf_counter()
                for _ in range(calls):
                    fn()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                times[name].append((time.perf_counter() - t0) / calls)
        median = {name: statistics.median(t) for name, t in times.items()}
        for name, baseline in baselines.items():
            results.append({"api": name, "requires_grad": grad, "ns": median[name] * 1e9,
                            "baseline": baseline, "baseline_ns": median[baseline] * 1e9,
                            "ratio": median[name] / median[baseline],
                            "F.gelu_ns": median["F.gelu"] * 1e9,
                            "ratio_F.gelu": median[name] / median["F.gelu"],
                            "calls": calls, "reps": cfg.overhead_reps})
    return results


# ----------------------------------------------------------------------------- targets


def _where(r) -> str:
    p = "" if r["params_label"] == "-" else f"[{r['params_label']}]"
    d = f" {_DIR[r['direction']]}" if "direction" in r else ""
    return f"{r['op']}{p} {r['dtype']} {'x'.join(map(str, r['shape']))}{d}"


def check_targets(device_type: str, records: List[dict], memory: List[dict], overhead: List[dict],
                  cfg: argparse.Namespace, large: int, dtypes: List[str]) -> List[dict]:
    ok = [r for r in records if "error" not in r]
    out: List[dict] = []

    def add(target, rows, key, threshold, fmt="{:.2f}x"):
        rows = [r for r in rows if key(r) is not None]
        if not rows:
            out.append({"target": target, "measured": "no rows measured", "status": "n/a"})
            return
        worst = min(rows, key=key)
        meets = [r for r in rows if key(r) >= threshold]
        out.append({"target": target, "status": "PASS" if len(meets) == len(rows) else "MISS",
                    "value": key(worst),
                    "measured": f"min {fmt.format(key(worst))} ({_where(worst)}); "
                                f"{len(meets)}/{len(rows)} rows meet",
                    "misses": [_where(r) for r in rows if key(r) < threshold][:50]})

    big = max(1, large // 4)
    sp = lambda name: (lambda r: r["speedup"].get(name))  # noqa: E731
    if device_type == "cpu":
        for dtype in dtypes:
            for direction in ("forward", "backward"):
                rows = [r for r in ok if r["kind"] == "unary" and r["shape_kind"] == "large"
                        and r["dtype"] == dtype and r["direction"] == direction]
                add(f"CPU: unary {_DIR[direction]} {dtype} >= {CPU_UNARY_MIN:.2f}x torch at the large size "
                    f"({large} elements)", rows, sp("torch"), CPU_UNARY_MIN)
        for dtype in dtypes:
            for direction in ("forward", "backward"):
                rows = [r for r in ok if r["kind"] == "gated" and r["numel_out"] >= big
                        and r["dtype"] == dtype and r["direction"] == direction]
                add(f"CPU: gated {_DIR[direction]} {dtype} >= {CPU_GATED_MIN:.1f}x eager "
                    f"(shapes >= {big} output elements)", rows, sp("torch"), CPU_GATED_MIN)
    else:
        for dtype in dtypes:
            for direction in ("forward", "backward"):
                rows = [r for r in ok if r["numel_out"] >= min(CUDA_COPY_MIN_NUMEL, large)
                        and r["dtype"] == dtype and r["direction"] == direction]
                add(f"CUDA: every op {_DIR[direction]} {dtype} >= {CUDA_COPY_FRAC_MIN:.0%} of copy bandwidth "
                    f"(>= {min(CUDA_COPY_MIN_NUMEL, large)} elements)", rows,
                    lambda r: r["frac_copy"].get("ours"), CUDA_COPY_FRAC_MIN, fmt="{:.0%}")
        for dtype in dtypes:
            rows = [r for r in ok if r["kind"] == "gated" and r["numel_out"] >= big
                    and r["dtype"] == dtype and r["direction"] == "fwd+bwd"]
            add(f"CUDA: gated fwd+bwd {dtype} >= {CUDA_GATED_EAGER_MIN:.1f}x eager (shapes >= {big} output elements)",
                rows, sp("torch"), CUDA_GATED_EAGER_MIN)
            if cfg.compile:
                add(f"CUDA: gated fwd+bwd {dtype} >= {CUDA_GATED_COMPILE_MIN:.1f}x torch.compile "
                    f"(shapes >= {big} output elements)", rows, sp("compile"), CUDA_GATED_COMPILE_MIN)
            else:
                out.append({"target": f"CUDA: gated fwd+bwd {dtype} >= {CUDA_GATED_COMPILE_MIN:.1f}x torch.compile",
                            "measured": "not measured (--no-compile)", "status": "n/a"})
        for dtype in dtypes:
            rows = [r for r in ok if r["dtype"] == dtype]
            add(f"CUDA: never slower than torch/eager, {dtype}, any op, shape and direction", rows,
                sp("torch"), 1.0)
    # Peak memory (the design's claim; the issue states it for CUDA).
    mem_rows = [m for m in memory if m.get("peak_bytes", {}).get("ours") is not None
                and m["peak_bytes"].get("torch") is not None]
    for m in mem_rows:
        m["margin_act"] = (m["peak_bytes"]["torch"] - m["peak_bytes"]["ours"]) / m["activation_bytes"]
    if memory and not mem_rows:
        out.append({"target": "gated peak memory fwd+bwd <= eager - 1 activation",
                    "measured": _CPU_MEMORY_NOTE or "not measured", "status": "n/a"})
    elif mem_rows:
        worst = min(mem_rows, key=lambda m: m["margin_act"])
        meets = [m for m in mem_rows if m["margin_act"] >= 1.0]
        out.append({
            "target": "gated peak memory fwd+bwd <= eager - 1 activation-sized tensor",
            "status": "PASS" if len(meets) == len(mem_rows) else "MISS",
            "value": worst["margin_act"],
            "measured": (f"min saving {worst['margin_act']:.2f} activations ({_where(worst)}: ours "
                         f"{worst['peak_bytes']['ours'] / 2**20:.1f} MiB, eager "
                         f"{worst['peak_bytes']['torch'] / 2**20:.1f} MiB); {len(meets)}/{len(mem_rows)} shapes meet"),
        })
    for o in overhead:
        meets = o["ratio"] <= OVERHEAD_MAX
        vs_f_gelu = "" if o["baseline"] == "F.gelu" else f"; {o['ratio_F.gelu']:.2f}x F.gelu ({o['F.gelu_ns'] / 1e3:.2f} us)"
        out.append({
            "target": f"per-call overhead, 1 element, {o['api']}{' (requires_grad)' if o['requires_grad'] else ''} "
                      f"<= {OVERHEAD_MAX:.2f}x {o['baseline']}",
            "status": "PASS" if meets else "MISS", "value": o["ratio"],
            "measured": f"{o['ratio']:.2f}x ({o['ns'] / 1e3:.2f} us vs {o['baseline_ns'] / 1e3:.2f} us){vs_f_gelu}",
        })
    return out


def targets_text(targets: List[dict]) -> List[str]:
    lines = []
    width = max((len(t["target"]) for t in targets), default=20)
    for t in targets:
        lines.append(f"{t['status']:<5} {t['target'].ljust(width)}  {t['measured']}")
    return lines


# ----------------------------------------------------------------------------- tables


def _fmt(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec)


def table_columns(baselines: Sequence[str]):
    cols = [("op", "<", 15), ("params", "<", 16), ("dtype", "<", 8), ("shape", "<", 11), ("dir", "<", 7),
            ("ours us", ">", 10), ("torch us", ">", 10)]
    cols += [(BASELINES[b][0], ">", 9) for b in baselines]
    cols += [("ours GB/s", ">", 9), ("ours/copy", ">", 9), ("torch/copy", ">", 10), ("max err", ">", 8)]
    return cols


def row_cells(rec: dict, baselines: Sequence[str]) -> List[str]:
    head = [rec["op"], rec["params_label"], rec["dtype"], "x".join(map(str, rec["shape"])), _DIR[rec["direction"]]]
    if "error" in rec:
        return head + ["ERROR " + rec["error"][:80]]
    t = rec["times_us"]
    cells = head + [_fmt(t["ours"], ".1f"), _fmt(t.get("torch"), ".1f")]
    cells += [_fmt(rec["speedup"].get(b), ".2f") for b in baselines]
    cells += [_fmt(rec["GBps"]["ours"], ".1f"), _fmt(rec["frac_copy"]["ours"], ".2f"),
              _fmt(rec["frac_copy"].get("torch"), ".2f"), _fmt(rec.get("max_abs_err"), ".1e")]
    return cells


def text_line(cells: List[str], columns) -> str:
    parts = []
    for (_, align, width), cell in zip(columns, cells):
        parts.append(cell.ljust(width) if align == "<" else cell.rjust(width))
    parts += cells[len(columns):]
    return "  ".join(parts).rstrip()


def text_header(columns) -> str:
    head = text_line([name for name, _, _ in columns], columns)
    return head + "\n" + "-" * len(head)


def markdown_table(header: List[str], aligns: str, rows: List[List[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(":---" if a == "<" else "---:" for a in aligns) + "|"]
    for cells in rows:
        cells = list(cells) + [""] * (len(header) - len(cells))
        lines.append("| " + " | ".join(c if c else " " for c in cells) + " |")
    return "\n".join(lines)


def records_markdown(records: List[dict], baselines: Sequence[str]) -> str:
    cols = table_columns(baselines)
    return markdown_table([c[0] for c in cols], "".join(c[1] for c in cols),
                          [row_cells(r, baselines) for r in records])


def memory_rows(memory: List[dict]) -> Tuple[List[str], str, List[List[str]]]:
    names = [n for n in ("ours", "torch", "compile", "liger") if any(n in m.get("peak_bytes", {}) for m in memory)]
    header = ["op", "params", "dtype", "shape"] + [f"{'eager' if n == 'torch' else n} MiB" for n in names] + \
        ["activation MiB", "eager - ours (activations)"]
    rows = []
    for m in memory:
        pb = m.get("peak_bytes", {})
        cells = [m["op"], m["params_label"], m["dtype"], "x".join(map(str, m["shape"]))]
        cells += [_fmt(pb[n] / 2**20 if pb.get(n) is not None else None, ".4g") for n in names]
        cells += [_fmt(m["activation_bytes"] / 2**20, ".4g"), _fmt(m.get("margin_act"), ".2f")]
        rows.append(cells)
    return header, "<<<<" + ">" * (len(names) + 2), rows


def overhead_rows(overhead: List[dict]):
    header = ["api", "requires_grad", "us/call", "torch's", "its us/call", "x torch's time", "x F.gelu's time"]
    rows = [[o["api"], str(o["requires_grad"]), f"{o['ns'] / 1e3:.2f}", o["baseline"],
             f"{o['baseline_ns'] / 1e3:.2f}", f"{o['ratio']:.2f}", f"{o['ratio_F.gelu']:.2f}"] for o in overhead]
    return header, "<<><>>>", rows


def copy_summary(records: List[dict]) -> List[dict]:
    """Median copy bandwidth per dtype and shape kind over the rows that measured it."""
    groups: Dict[tuple, List[float]] = {}
    for r in records:
        if "error" not in r:
            groups.setdefault((r["dtype"], r["shape_kind"]), []).append(r["copy_GBps"])
    return [{"dtype": d, "shapes": k, "GBps": statistics.median(v), "rows": len(v)}
            for (d, k), v in sorted(groups.items())]


def geomean(values: List[float]) -> float:
    values = [v for v in values if v and v > 0 and math.isfinite(v)]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def geomean_lines(records: List[dict], baselines: Sequence[str]) -> List[str]:
    lines = []
    ok = [r for r in records if "error" not in r]
    for dtype in sorted({r["dtype"] for r in ok}):
        for direction in DIRECTIONS:
            rows = [r for r in ok if r["dtype"] == dtype and r["direction"] == direction]
            if not rows:
                continue
            parts = []
            for b in baselines:
                vals = [r["speedup"][b] for r in rows if b in r["speedup"]]
                if vals:
                    parts.append(f"{BASELINES[b][0]} {geomean(vals):.2f} ({len(vals)})")
            lines.append(f"geomean speedup, {dtype} {direction}: " + ", ".join(parts))
    return lines


# ----------------------------------------------------------------------------- plot


def write_plot(path: Path, records: List[dict], title: str, device_type: str) -> Optional[str]:
    """Fraction of copy bandwidth per op at the large size (the row-wise ops: per row length),
    forward and backward."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed: no plot written"
    rows = [r for r in records if "error" not in r and r["shape_kind"] in ("large", "rows")
            and r["direction"] in ("forward", "backward")]
    if not rows:
        return "no large-size rows: no plot written"
    dtypes = list(dict.fromkeys(r["dtype"] for r in rows))

    def label(r):
        return (r["op"] + ("" if r["params_label"] == "-" else f" ({r['params_label']})")
                + (f" [rows of {r['shape'][-1]}]" if r["shape_kind"] == "rows" else ""))

    labels = list(dict.fromkeys(label(r) for r in rows))
    names = [n for n in ("ours", "torch", "compile", "liger", "builtin") if any(n in r["frac_copy"] for r in rows)]
    legend = {"ours": "fusedact", "torch": "torch / eager", "compile": "torch.compile",
              "liger": "Liger-Kernel", "builtin": "F.glu"}
    fig, axes = plt.subplots(len(dtypes), 2, figsize=(14, 0.28 * len(labels) * len(dtypes) + 1.5 * len(dtypes)),
                             squeeze=False, sharey="row")
    height = 0.8 / len(names)
    for i, dtype in enumerate(dtypes):
        for j, direction in enumerate(("forward", "backward")):
            ax = axes[i][j]
            for n_i, name in enumerate(names):
                ys, xs = [], []
                for r in rows:
                    if r["dtype"] != dtype or r["direction"] != direction or name not in r["frac_copy"]:
                        continue
                    ys.append(labels.index(label(r)) - 0.4 + (n_i + 0.5) * height)
                    xs.append(r["frac_copy"][name])
                ax.barh(ys, xs, height=height, label=legend[name])
            ax.axvline(1.0, color="black", linewidth=0.8)
            if device_type == "cuda":
                ax.axvline(CUDA_COPY_FRAC_MIN, color="red", linestyle="--", linewidth=0.8)
            ax.set_yticks(range(len(labels)))
            ax.set_yticklabels(labels, fontsize=7)
            ax.invert_yaxis()
            ax.set_title(f"{dtype} {direction}", fontsize=9)
            ax.set_xlabel("fraction of copy bandwidth (counted bytes / time, over a copy of the same bytes)",
                          fontsize=7)
            ax.grid(axis="x", alpha=0.3)
    handles, labels_ = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels_, fontsize=8, loc="upper right", ncol=len(names))
    fig.suptitle(title, fontsize=10, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


# ----------------------------------------------------------------------------- run


def bench_device(device: torch.device, cfg: argparse.Namespace, command: str) -> dict:
    info = device_info(device)
    timer = Timer(device)
    dtypes = cfg.dtypes or DEFAULT_DTYPES[device.type]
    large = cfg.cuda_size if device.type == "cuda" else cfg.size
    cases = build_cases(device, cfg, dtypes)
    notes: List[str] = []
    if device.type == "cuda":
        liger_functions()
        notes.append(_LIGER_NOTE)
    else:
        notes.append("Liger-Kernel: CUDA only (Triton), not run on CPU")
    if not cfg.compile:
        notes.append("torch.compile baseline skipped (--no-compile)")
    else:
        # The backward rows call autograd.grad on a retained graph, which a compiled backward
        # refuses while it donates saved intermediates' buffers to its outputs.
        from torch._functorch import config as functorch_config

        functorch_config.donated_buffer = False
        notes.append("torch.compile: buffer donation off (torch._functorch.config.donated_buffer = False), "
                     "so its backward can be timed on a retained graph like the others")
    baselines = [b for b in BASELINES if b != "liger" or (device.type == "cuda" and liger_functions())]
    if not cfg.compile:
        baselines.remove("compile")
    if not any(c.spec.name == "glu" for c in cases):
        baselines.remove("builtin")
    if device.type == "cpu":
        notes.append("pages: THP_MEM_ALLOC_ENABLE=1, torch's allocator gives every tensor of 2 MiB or more "
                     "(fusedact's outputs too) transparent huge pages" if os.environ.get("THP_MEM_ALLOC_ENABLE") == "1"
                     else "pages: 4 KiB; a large op's time is then mostly its fresh output's page faults "
                          "(benchmarks/first_touch.py), which shrinks the ratios toward 1")
    if device.type == "cpu" and any(c.spec.kind == "gated" for c in cases):
        cpu_memory_reliable()
        notes.append(_CPU_MEMORY_NOTE)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if device.type == "cpu" and load is not None and load > 0.5 * (os.cpu_count() or 1):
        notes.append(f"load average {load:.1f} on {os.cpu_count()} logical CPUs at the start: other processes "
                     "compete for the cores; torch's multi-threaded CPU kernels then wait for descheduled "
                     "worker threads (up to milliseconds per call), so this run's CPU figures are unreliable")

    header = (f"\n== {info['device']} ({device.type}), torch {torch.__version__}"
              + (f", {info['threads']} threads" if device.type == "cpu" else
                 f", CUDA {info['torch_cuda']}, sm_{info['compute_capability'].replace('.', '')}, "
                 f"L2 {info['L2_MiB']} MiB")
              + f"; {len(cases)} cases ({', '.join(dtypes)}); large size {large} elements; LLM shapes "
              f"tokens {list(cfg.llm_tokens)} x d {list(cfg.llm_d)}; row-wise row lengths {list(cfg.row_lengths)}; "
              f"median of {cfg.min_reps}..{cfg.max_reps} reps "
              f"(budget {cfg.budget:g} s per row)")
    print(header, flush=True)
    for note in notes:
        print("note: " + note, flush=True)
    columns = table_columns(baselines)
    print(text_header(columns), flush=True)

    progress = Progress(len(cases) + 1, device.type)

    def emit(rec: dict) -> None:
        progress.write(text_line(row_cells(rec, baselines), columns))
        for name, note in rec.get("notes", {}).items():
            if note.startswith("left out") or name in ("compile", "liger"):
                progress.write(f"    note: {name} {note}" if note.startswith("left out") else f"    note: {name}: {note}")

    records: List[dict] = []
    memory: List[dict] = []
    t_start = time.perf_counter()
    for case in cases:
        progress.set(f"{case.spec.name} {case.label} {case.dtype_name} {case.shape_label}")
        recs, mem = run_case(case, device, timer, cfg, emit=emit)
        records += recs
        if mem is not None:
            memory.append(mem)
        progress.update()
    progress.set("per-call overhead")
    overhead = measure_overhead(device, cfg)
    progress.update()
    progress.close()
    wall = time.perf_counter() - t_start

    targets = check_targets(device.type, records, memory, overhead, cfg, large, dtypes)
    copies = copy_summary(records)
    gm = geomean_lines(records, baselines)
    print()
    if memory:
        h, _, rows = memory_rows(memory)
        widths = [max(len(h[i]), *(len(r[i]) for r in rows)) for i in range(len(h))]
        print("peak memory, forward+backward (MiB):")
        print("  ".join(c.ljust(w) for c, w in zip(h, widths)))
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    print("\nper-call overhead, 1-element tensor:")
    for o in overhead:
        print(f"  {o['api']:<26} requires_grad={str(o['requires_grad']):<5} {o['ns'] / 1e3:7.2f} us "
              f"vs {o['baseline']} {o['baseline_ns'] / 1e3:7.2f} us: {o['ratio']:.2f}x "
              f"(F.gelu {o['F.gelu_ns'] / 1e3:.2f} us: {o['ratio_F.gelu']:.2f}x)")
    print("\ncopy bandwidth (median over rows): " + "; ".join(
        f"{c['dtype']} {c['shapes']} {c['GBps']:.1f} GB/s" for c in copies))
    for line in gm:
        print(line)
    print(f"\n== issue targets ({device.type}) ==")
    for line in targets_text(targets):
        print(line)
    print(f"({wall:.0f} s on this device)", flush=True)

    today = datetime.date.today().isoformat()
    result = {
        "device": info["device"],
        "device_info": {k: v for k, v in info.items() if k != "slug"},
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "fusedact_version": getattr(fusedact, "__version__", None),
        "git_commit": git_commit(),
        "date": today,
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "wall_s": wall,
        "load_average_start": load,
        "load_average_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "method": {
            "timing": ("CUDA events per call, queued behind a spin kernel of >= "
                       f"{Timer.MIN_PREFILL_US:g} us (twice the row's longest host time); inputs rotated over "
                       "enough buffers to cover twice the L2 cache" if device.type == "cuda"
                       else "time.perf_counter per call, one buffer"),
            "statistic": "median; every contender and the copy interleaved, order alternating per rep",
            "forward": "inputs require grad (the training forward)",
            "backward": "torch.autograd.grad on a retained graph (fused: one X_backward node; "
                        "torch: the eager backward of the composition)",
            "fwd+bwd": "forward then torch.autograd.grad in one timed call (gated ops)",
            "bytes": "counted_bytes(): unary fwd 2s, bwd 3s per element; gated fwd 3s, bwd 5s per "
                     "output element; weighted + C weights; rrelu training 3s and 3s; row-wise fwd 2s "
                     "(read x once, write y), bwd 3s (read dy and y, write dx)",
            "copy": "x.clone() of a buffer of half the counted bytes (reads + writes = counted bytes)",
            "max_err": "max |ours - torch| on the first rows (<= 2^22 output elements)",
            "large_numel": large, "width": cfg.width, "llm_tokens": list(cfg.llm_tokens),
            "llm_d": list(cfg.llm_d), "row_lengths": list(cfg.row_lengths), "warmup": cfg.warmup,
            "min_reps": cfg.min_reps,
            "max_reps": cfg.max_reps, "budget_s": cfg.budget, "compile": cfg.compile,
            "cpu_reuse_memory": bool(cfg.cpu_reuse_memory) if device.type == "cpu" else None,
            "times_unit": "us", "bandwidth_unit": "GB/s (1e9 bytes/s)",
        },
        "notes": notes,
        "baselines": {b: BASELINES[b][1] for b in baselines},
        "targets": targets,
        "copy": copies,
        "geomeans": gm,
        "memory": memory,
        "overhead": overhead,
        "records": records,
    }
    if cfg.out:
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        stem = out / (f"{info['slug']}-{today}" + (f"-{_slug(cfg.tag)}" if cfg.tag else ""))
        with open(f"{stem}.json", "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        plot_note = None if cfg.no_plot else write_plot(
            Path(f"{stem}.png"), records, f"fusedact, {info['device']}, torch {torch.__version__}, {today}",
            device.type)
        write_markdown(Path(f"{stem}.md"), result, info, device, baselines, copies, gm, targets,
                       memory, overhead, records, plot_note, cfg, large)
        print(f"wrote {stem}.json, {stem}.md"
              + ("" if cfg.no_plot or plot_note else f", {stem}.png")
              + (f" ({plot_note})" if plot_note else ""))
    return result


def write_markdown(path: Path, result: dict, info: dict, device: torch.device, baselines, copies, gm,
                   targets, memory, overhead, records, plot_note, cfg, large) -> None:
    dev = f"{info['device']} ({device.type}" + (
        f", sm_{info['compute_capability'].replace('.', '')}, CUDA {info['torch_cuda']})" if device.type == "cuda"
        else f", {info['threads']} threads)")
    md = [
        f"# fusedact benchmark: {info['device']}",
        "",
        f"- device: {dev}",
        f"- torch: {torch.__version__}; python {platform.python_version()}; fusedact commit {result['git_commit']}",
        f"- date: {result['date']} ({result['timestamp']}); {result['wall_s']:.0f} s",
        f"- command: `{result['command']}`",
        f"- sizes: large tensor {large} output elements (unary (n/{cfg.width}, {cfg.width}); gated packed "
        f"(tokens, 2x{cfg.width}); weighted (batch, {WEIGHT_CHANNELS}, length)); LLM shapes tokens "
        f"{list(cfg.llm_tokens)} x d {list(cfg.llm_d)} for the gated ops and {', '.join(LLM_UNARY)}; row-wise "
        f"ops (dim=-1): (max(1, {large} / L), L) for row lengths L {list(cfg.row_lengths)}",
        "- time: median of the per-call times, in microseconds; " + result["method"]["timing"]
        + "; every contender and the copy interleaved, the order alternating per rep",
        "- forward on inputs that require grad; backward = torch.autograd.grad on a retained graph; "
        "fwd+bwd = both in one timed call (gated ops)",
        "- `x B` = B's time / fusedact's time (> 1: fusedact faster). Baselines: "
        + "; ".join(f"{BASELINES[b][0]}: {BASELINES[b][1]}" for b in baselines),
        "- GB/s from the fewest bytes the op must move (" + result["method"]["bytes"] + "); `/copy` = that "
        "bandwidth over the bandwidth of an `x.clone()` moving the same bytes in the same reps",
        "- max err = max |fusedact - torch| over the first rows (<= 2^22 output elements) of the output "
        "(fwd) or the input gradients (bwd)",
    ] + [f"- note: {n}" for n in result["notes"] if n] + [
        "",
        "## Issue targets",
        "",
        markdown_table(["status", "target", "measured"], "<<<",
                       [[t["status"], t["target"], t["measured"]] for t in targets]),
        "",
    ]
    if not plot_note and not cfg.no_plot:
        md += [f"![fraction of copy bandwidth]({path.stem}.png)", ""]
    elif plot_note:
        md += [f"(plot: {plot_note})", ""]
    md += ["## Summary", "", f"- copy bandwidth (median over rows): " + "; ".join(
        f"{c['dtype']} {c['shapes']} {c['GBps']:.1f} GB/s" for c in copies)]
    md += [f"- {line}" for line in gm] + [""]
    for kind, title in (("large", f"## Large tensor ({large} output elements)"), ("llm", "## LLM shapes (tokens x d)"),
                        ("rows", "## Row-wise ops, dim=-1 (rows x row length)")):
        rows = [r for r in records if r["shape_kind"] == kind]
        if rows:
            md += [title, "", records_markdown(rows, baselines), ""]
    noted = [r for r in records if r.get("notes")]
    if noted:
        md += ["## Row notes", ""] + [f"- {_where(r)}: " + "; ".join(f"{k}: {v}" for k, v in r["notes"].items())
                                      for r in noted] + [""]
    if memory:
        h, a, rows = memory_rows(memory)
        md += ["## Peak memory, forward+backward (gated ops)", "",
               "Bytes allocated at the peak of `y = f(x); autograd.grad(y, x, dy)` beyond the inputs and dy "
               "(y and the gradient included). " + ("torch.cuda.max_memory_allocated." if device.type == "cuda"
                                                     else _CPU_MEMORY_NOTE + "."), "",
               markdown_table(h, a, rows), ""]
    h, a, rows = overhead_rows(overhead)
    md += ["## Per-call overhead (1-element tensor)", "",
           f"Host time per call, median of {cfg.overhead_reps} interleaved batches of {cfg.overhead_calls} calls.", "",
           markdown_table(h, a, rows), ""]
    path.write_text("\n".join(md))


# ----------------------------------------------------------------------------- arguments


def _int_list(text: str) -> Tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(_HERE / "results"),
                   help="folder for <device>-<date>.json/.md/.png (default benchmarks/results); '' writes nothing")
    p.add_argument("--device", "--devices", dest="devices", default="auto",
                   help="cpu, cuda or a comma list; auto = cpu, plus cuda when present")
    p.add_argument("--dtypes", default="",
                   help="comma list of " + ",".join(DTYPES) + " (default float32,bfloat16, plus float16 on CUDA)")
    p.add_argument("--ops", default="", help="comma list of op names (default: all; --quick: "
                   + ",".join(QUICK_OPS) + ")")
    p.add_argument("--quick", action="store_true",
                   help="a smoke test: ops " + ",".join(QUICK_OPS) + ", large size 2^16 (CPU) / 2^20 (CUDA), "
                   "LLM shapes 7,83 x 256, row lengths " + ",".join(map(str, QUICK_ROW_LENGTHS)) + ", few reps")
    p.add_argument("--no-compile", dest="compile", action="store_false", help="skip the torch.compile baseline")
    p.add_argument("--all-params", action="store_true", help="every parameter set of the registry, "
                   "not only the defaults and the sets that change the formula")
    p.add_argument("--size", type=int, default=None, help="large size on CPU, output elements (default 2^24; --quick 2^16)")
    p.add_argument("--cuda-size", type=int, default=None, help="large size on CUDA (default 2^26; --quick 2^20)")
    p.add_argument("--width", type=int, default=None,
                   help="last dim of the large tensor; gated: d of the packed (tokens, 2d) input (default 4096; --quick 256)")
    p.add_argument("--llm-tokens", type=_int_list, default=None,
                   help="comma list of token counts of the LLM shapes (default 7,83,2048,8192; --quick 7,83); '' for none")
    p.add_argument("--llm-d", type=_int_list, default=None,
                   help="comma list of hidden sizes d of the LLM shapes (default 4096,14336; --quick 256)")
    p.add_argument("--row-lengths", type=_int_list, default=None,
                   help="comma list of row lengths of the row-wise ops (softmax, log_softmax, softmin; dim=-1), "
                   "each with max(1, large size / length) rows (default " + ",".join(map(str, ROW_LENGTHS))
                   + "; --quick " + ",".join(map(str, QUICK_ROW_LENGTHS)) + ")")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls per contender (default 2 CPU, 5 CUDA; --quick 1)")
    p.add_argument("--min-reps", type=int, default=None, help="default 5 CPU, 25 CUDA; --quick 3")
    p.add_argument("--max-reps", type=int, default=None, help="default 100 CPU, 300 CUDA; --quick 5")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds of timed reps per row before stopping (default 1.0 CPU, 0.25 CUDA; --quick 0.05)")
    p.add_argument("--max-buffers", type=int, default=512, help="CUDA: at most this many rotation buffers (default 512)")
    p.add_argument("--no-rotate", action="store_true", help="CUDA: one input buffer (cache-warm reps)")
    p.add_argument("--overhead-calls", type=int, default=None, help="calls per overhead batch (default 200)")
    p.add_argument("--overhead-reps", type=int, default=None, help="overhead batches (default 31; --quick 5)")
    p.add_argument("--no-plot", action="store_true", help="write no PNG")
    p.add_argument("--tag", default="", help="suffix of the result files, <device>-<date>-<tag>.* "
                   "(e.g. when one run per dtype goes into the same folder)")
    p.add_argument("--cpu-reuse-memory", action="store_true",
                   help="keep glibc from mapping fresh pages for every large CPU allocation "
                        "(times the kernels without page faults; see reuse_cpu_memory)")
    cfg = p.parse_args(argv)
    cfg.dtypes = [d for d in cfg.dtypes.split(",") if d]
    for d in cfg.dtypes:
        if d not in DTYPES:
            p.error(f"--dtypes: unknown dtype {d!r}; choose from {list(DTYPES)}")
    cfg.ops = [o for o in cfg.ops.split(",") if o]
    for o in cfg.ops:
        if o not in registry.BY_NAME:
            p.error(f"--ops: unknown op {o!r}; known: {sorted(registry.BY_NAME)}")
    q = cfg.quick
    cfg.size = cfg.size or (2**16 if q else 2**24)
    cfg.cuda_size = cfg.cuda_size or (2**20 if q else 2**26)
    cfg.width = cfg.width or (256 if q else 4096)
    if cfg.llm_tokens is None:
        cfg.llm_tokens = (7, 83) if q else LLM_TOKENS
    if cfg.llm_d is None:
        cfg.llm_d = (256,) if q else LLM_D
    if cfg.row_lengths is None:
        cfg.row_lengths = QUICK_ROW_LENGTHS if q else ROW_LENGTHS
    for length in cfg.row_lengths:
        if length < 1:
            p.error(f"--row-lengths: row lengths must be >= 1, got {length}")
    cfg.overhead_calls = cfg.overhead_calls or 200
    cfg.overhead_reps = cfg.overhead_reps or (5 if q else 31)
    cfg._args = {k: getattr(cfg, k) for k in ("warmup", "min_reps", "max_reps", "budget")}
    return cfg


def _device_defaults(cfg: argparse.Namespace, kind: str) -> None:
    q, a = cfg.quick, cfg._args
    cuda = kind == "cuda"
    cfg.warmup = a["warmup"] if a["warmup"] is not None else (1 if q else (5 if cuda else 2))
    cfg.min_reps = a["min_reps"] or (3 if q else (25 if cuda else 5))
    cfg.max_reps = a["max_reps"] or (5 if q else (300 if cuda else 100))
    cfg.budget = a["budget"] if a["budget"] is not None else (0.05 if q else (0.25 if cuda else 1.0))


def reuse_cpu_memory() -> bool:
    """Keep glibc from serving large blocks with fresh mmap pages (opt-in).

    By default glibc maps every allocation of 32 MB or more anew and unmaps it on free, so
    each call that allocates such an output pays page faults that can cost more than the
    kernel. Both sides pay them, which pulls ratios toward 1; this keeps freed memory in
    the heap so CPU times measure the kernels. Linux/glibc only.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
        return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**30))
    except (OSError, AttributeError):
        return False


def main(argv: Optional[List[str]] = None) -> int:
    cfg = parse_args(argv)
    if cfg.cpu_reuse_memory:
        cfg.cpu_reuse_memory = reuse_cpu_memory()
        print(f"glibc large-block reuse: {'on' if cfg.cpu_reuse_memory else 'not available'}")
    exe = sys.executable
    if exe.startswith(os.getcwd() + os.sep):
        exe = os.path.relpath(exe)
    command = " ".join(shlex.quote(a) for a in [exe] + (sys.argv if argv is None else ["bench.py"] + argv))
    if os.environ.get("PYTHONPATH"):
        command = f"PYTHONPATH={shlex.quote(os.environ['PYTHONPATH'])} {command}"
    if cfg.devices == "auto":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = [d for d in cfg.devices.split(",") if d]
    t0 = time.perf_counter()
    for name in devices:
        if name == "cuda" and not torch.cuda.is_available():
            print("cuda: not available, skipped")
            continue
        _device_defaults(cfg, name)
        bench_device(torch.device(name), cfg, command)
    print(f"\ntotal wall time {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
