"""fusedact vs torch: forward/backward time, achieved bandwidth and max error per op.

Run from the repository root (what `make bench` does):

    PYTHONPATH=python .venv/bin/python benchmarks/bench.py --out benchmarks/results

For every op and parameter set of `fusedact.registry`, on every device present (CPU always,
CUDA when available) and for float32 and bfloat16, it measures

- forward: the fused op vs the torch built-in (unary: F.gelu, F.silu, ...; glu: F.glu;
  the other gated ops: the eager composition from the registry, e.g. chunk + F.silu(a) * b);
- backward: the input gradient of each, timed alone (see `_backward_fn`);
- achieved bandwidth from the fewest bytes each op must move (DESIGN.md section 6) and its
  fraction of a plain copy (`x.clone()`) of the same input measured in the same run;
- the max abs difference of our output and input gradient from torch's.

Method: one process; ours, torch and the copy interleaved rep by rep (alternating the
order); warm-up first; the median of many repetitions. CUDA is timed with CUDA events around
each call (see `Timer`), CPU with a wall clock. CPU timings on small shared machines are noisy: read the
ratios, not the absolute times.

Writes a plain-text table to stdout and, per device, <out>/<device>-<YYYY-MM-DD>.json and
.md with the same table.
"""

from __future__ import annotations

import argparse
import datetime
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
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

_HERE = Path(__file__).resolve().parent
_REPO = _HERE.parent
if str(_REPO / "python") not in sys.path:
    sys.path.append(str(_REPO / "python"))  # PYTHONPATH, when set, still wins

import fusedact  # noqa: E402  (loads the extension: torch.ops.fusedact.*)
from fusedact import registry  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}

# Fewest bytes per element, in units of the element size (DESIGN.md section 6).
# Unary, per element: forward reads x, writes y; backward reads dy and x, writes dx.
# Gated, per OUTPUT element: forward reads both halves, writes out; backward reads dy and
# both halves, writes both halves of dx.
BYTES_PER_ELEM = {
    ("unary", "forward"): 2,
    ("unary", "backward"): 3,
    ("gated", "forward"): 3,
    ("gated", "backward"): 5,
}


# ----------------------------------------------------------------------------- timing


class Timer:
    """Times one call on a device: CUDA events on the current stream, or a wall clock.

    On CUDA each timed call is queued behind a short spin kernel, so the GPU is still busy
    while Python (and, for backward, the autograd engine) issues the call: the start event
    then fires when the work is already waiting, and the time measured is the GPU's alone,
    not the host's launch overhead.
    """

    PREFILL_US = 300.0

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
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
                cycles_per_us = cycles / (self._start.elapsed_time(self._end) * 1e3)
                self._prefill_cycles = int(cycles_per_us * self.PREFILL_US)

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


def measure(timer: Timer, fns: Dict[str, Callable[[], object]], cfg: argparse.Namespace) -> Dict[str, List[float]]:
    """Interleaved repetitions of every contender; returns the per-call times (seconds).

    Each rep runs every contender once, the order flipped on alternate reps so neither
    always runs on a cache or clock state left by the other. Reps go on until both the
    minimum count and the time budget are reached, or the maximum count.
    """
    names = list(fns)
    for _ in range(cfg.warmup):
        for name in names:
            fns[name]()
    timer.sync()
    times: Dict[str, List[float]] = {name: [] for name in names}
    t_begin = time.perf_counter()
    for rep in range(cfg.max_reps):
        for name in names if rep % 2 == 0 else reversed(names):
            times[name].append(timer.seconds(fns[name]))
        if rep + 1 >= cfg.min_reps and time.perf_counter() - t_begin >= cfg.budget:
            break
    return times


def _quantile(values: List[float], q: float) -> float:
    return float(np.quantile(np.asarray(values), q))


# ----------------------------------------------------------------------------- numerics


def max_abs_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| in float64; NaN in the same place in both counts as equal."""
    a64, b64 = a.detach().double(), b.detach().double()
    diff = (a64 - b64).abs()
    diff = diff.masked_fill(torch.isnan(a64) & torch.isnan(b64), 0.0)
    if diff.numel() == 0:
        return 0.0
    return float(diff.max().item())


# ----------------------------------------------------------------------------- inputs


def make_input(spec: registry.OpSpec, numel_out: int, width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Unary: a flat-ish (rows, width) tensor; gated: packed (tokens, 2 * d) with d = width."""
    width = max(1, min(width, numel_out))
    rows = max(1, numel_out // width)
    cols = 2 * width if spec.kind == "gated" else width
    # randn covers the curved part of every activation and both signs.
    return torch.randn(rows, cols, dtype=torch.float32, device=device).to(dtype)


# Where torch has a fused built-in for a gated op, that is what a user would otherwise call.
# The other gated ops have none: torch's side is the registry's eager composition.
BUILTIN = {"glu": lambda x: F.glu(x, dim=-1)}


def _forward_fns(spec: registry.OpSpec, params: dict):
    ours = lambda x: registry.call(spec, x, **params)  # noqa: E731
    ref = BUILTIN.get(spec.name) or (lambda x: registry.reference(spec, x, -1, **params))  # noqa: E731
    return ours, ref


def _backward_fn(fwd: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor):
    """A callable timing only the backward of fwd at x, plus the gradient it returns.

    Backward is timed as torch.autograd.grad on a retained graph: the forward runs once,
    outside the timed region, and each timed call walks the saved graph again. For the
    fused op that graph is one node whose backward calls `X_backward` (one kernel); for
    torch it is the eager backward of the composition (for gated ops the mul, the
    activation's backward and the chunk's backward that assembles the packed gradient).
    Both pay the same autograd-engine overhead per call.
    """
    xg = x.detach().requires_grad_(True)
    y = fwd(xg)
    gen = torch.Generator(device=x.device).manual_seed(1)
    dy = torch.randn(y.shape, generator=gen, dtype=torch.float32, device=x.device).to(y.dtype)

    def run():
        return torch.autograd.grad(y, xg, dy, retain_graph=True)[0]

    return run, dy


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
            "memory_GiB": round(props.total_memory / 2**30, 1),
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


# ----------------------------------------------------------------------------- table

COLUMNS = [
    ("op", "<"), ("params", "<"), ("dtype", "<"), ("dir", "<"),
    ("ours us", ">"), ("torch us", ">"), ("torch/ours", ">"),
    ("ours GB/s", ">"), ("torch GB/s", ">"), ("ours/copy", ">"), ("torch/copy", ">"),
    ("max err", ">"),
]


def _fmt(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def row_cells(rec: dict) -> List[str]:
    if "error" in rec:
        return [rec["op"], rec["params_label"], rec["dtype"], _DIR[rec["direction"]],
                "ERROR", "", "", "", "", "", "", rec["error"][:60]]
    return [
        rec["op"], rec["params_label"], rec["dtype"], _DIR[rec["direction"]],
        _fmt(rec["ours_us"], ".1f"), _fmt(rec["torch_us"], ".1f"), _fmt(rec["ratio"], ".2f"),
        _fmt(rec["ours_GBps"], ".1f"), _fmt(rec["torch_GBps"], ".1f"),
        _fmt(rec["ours_frac_copy"], ".2f"), _fmt(rec["torch_frac_copy"], ".2f"),
        _fmt(rec["max_abs_err"], ".1e"),
    ]


_DIR = {"forward": "fwd", "backward": "bwd"}

WIDTHS = [7, 16, 8, 3, 10, 10, 10, 9, 10, 9, 10, 8]


def text_line(cells: List[str]) -> str:
    parts = []
    for (_, align), width, cell in zip(COLUMNS, WIDTHS, cells):
        parts.append(cell.ljust(width) if align == "<" else cell.rjust(width))
    return "  ".join(parts).rstrip()


def text_header() -> str:
    head = text_line([name for name, _ in COLUMNS])
    return head + "\n" + "-" * len(head)


def markdown_table(records: List[dict]) -> str:
    lines = ["| " + " | ".join(name for name, _ in COLUMNS) + " |"]
    lines.append("|" + "|".join(":---" if a == "<" else "---:" for _, a in COLUMNS) + "|")
    for rec in records:
        lines.append("| " + " | ".join(c if c else " " for c in row_cells(rec)) + " |")
    return "\n".join(lines)


def geomean(values: List[float]) -> float:
    values = [v for v in values if v and v > 0 and math.isfinite(v)]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def summary_lines(records: List[dict]) -> List[str]:
    lines = []
    for dtype in DTYPES:
        for direction in ("forward", "backward"):
            ratios = [r["ratio"] for r in records
                      if "error" not in r and r["dtype"] == dtype and r["direction"] == direction]
            if ratios:
                lines.append(f"geomean torch/ours, {dtype} {direction}: {geomean(ratios):.2f} "
                             f"({len(ratios)} rows)")
    return lines


def copy_summary(records: List[dict]) -> List[dict]:
    """Median x.clone() bandwidth per dtype and input size over the rows that measured it."""
    groups: Dict[tuple, List[float]] = {}
    for r in records:
        if "error" not in r:
            numel_in = 2 * r["numel_out"] if r["kind"] == "gated" else r["numel_out"]
            groups.setdefault((r["dtype"], numel_in), []).append(r["copy_GBps"])
    return [{"dtype": d, "numel": n, "GBps": statistics.median(v), "rows": len(v)}
            for (d, n), v in sorted(groups.items())]


# ----------------------------------------------------------------------------- run


def bench_device(device: torch.device, cfg: argparse.Namespace, command: str) -> dict:
    info = device_info(device)
    timer = Timer(device)
    numel = cfg.cuda_size if device.type == "cuda" else cfg.size
    # Unary and gated ops; prelu/learnable_swish (weighted) and rrelu (random) need their own
    # byte counts and baselines (the performance issue's benchmark).
    specs = [
        s for s in registry.OPS
        if s.kind in ("unary", "gated") and (not cfg.ops or s.name in cfg.ops)
    ]

    print(f"\n== {info['device']} ({device.type}), torch {torch.__version__}"
          + (f", {info['threads']} threads" if device.type == "cpu" else
             f", CUDA {info['torch_cuda']}, sm_{info['compute_capability'].replace('.', '')}")
          + f"; {numel} output elements, gated width d={cfg.width}; median of up to "
          f"{cfg.max_reps} reps (min {cfg.min_reps}, budget {cfg.budget:g} s per row)",
          flush=True)

    records: List[dict] = []
    print(text_header(), flush=True)
    for dtype_name in cfg.dtypes:
        dtype = DTYPES[dtype_name]
        for spec in specs:
            for params in spec.param_sets:
                label = ",".join(f"{k}={v}" for k, v in params.items()) or "-"
                torch.manual_seed(0)
                x = make_input(spec, numel, cfg.width, dtype, device)
                numel_out = x.numel() // 2 if spec.kind == "gated" else x.numel()
                ours_f, ref_f = _forward_fns(spec, params)
                base = {
                    "op": spec.name, "kind": spec.kind, "params": dict(params),
                    "params_label": label, "dtype": dtype_name,
                    "shape": list(x.shape), "numel_out": numel_out,
                }
                try:
                    ours_bwd, dy = _backward_fn(ours_f, x)
                    ref_bwd, _ = _backward_fn(ref_f, x)
                    y_ours, y_ref = ours_f(x), ref_f(x)
                    g_ours, g_ref = ours_bwd(), ref_bwd()
                    # torch in float64 as the truth: says which of the two is closer (JSON only).
                    x64 = x.double().requires_grad_(True)
                    y64 = ref_f(x64)
                    (g64,) = torch.autograd.grad(y64, x64, dy.double())
                    errors = {
                        "forward": (max_abs_err(y_ours, y_ref), max_abs_err(y_ours, y64),
                                    max_abs_err(y_ref, y64)),
                        "backward": (max_abs_err(g_ours, g_ref), max_abs_err(g_ours, g64),
                                     max_abs_err(g_ref, g64)),
                    }
                    del y_ours, y_ref, g_ours, g_ref, y64, g64, x64
                    # The copy runs interleaved with the two ops in every rep, so the bandwidth
                    # fractions compare runs made under the same machine state: x.clone()
                    # reads and writes the op's input once, 2 * x.nbytes.
                    contenders = {
                        "forward": {"ours": lambda: ours_f(x), "torch": lambda: ref_f(x), "clone": x.clone},
                        "backward": {"ours": ours_bwd, "torch": ref_bwd, "clone": x.clone},
                    }
                except Exception as exc:  # an op not built yet, or a failing kernel
                    msg = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                    for direction in ("forward", "backward"):
                        rec = dict(base, direction=direction, error=msg)
                        records.append(rec)
                        print(text_line(row_cells(rec)), flush=True)
                    continue

                for direction in ("forward", "backward"):
                    times = measure(timer, contenders[direction], cfg)
                    t_ours = statistics.median(times["ours"])
                    t_ref = statistics.median(times["torch"])
                    t_copy = statistics.median(times["clone"])
                    copy_GBps = 2 * x.numel() * x.element_size() / t_copy / 1e9
                    nbytes = BYTES_PER_ELEM[(spec.kind, direction)] * numel_out * x.element_size()
                    err, err64_ours, err64_ref = errors[direction]
                    rec = dict(
                        base,
                        direction=direction,
                        ours_us=t_ours * 1e6,
                        torch_us=t_ref * 1e6,
                        ours_us_iqr=[_quantile(times["ours"], 0.25) * 1e6, _quantile(times["ours"], 0.75) * 1e6],
                        torch_us_iqr=[_quantile(times["torch"], 0.25) * 1e6, _quantile(times["torch"], 0.75) * 1e6],
                        reps=len(times["ours"]),
                        ratio=t_ref / t_ours,
                        bytes=nbytes,
                        ours_GBps=nbytes / t_ours / 1e9,
                        torch_GBps=nbytes / t_ref / 1e9,
                        copy_us=t_copy * 1e6,
                        copy_GBps=copy_GBps,
                        ours_frac_copy=nbytes / t_ours / 1e9 / copy_GBps,
                        torch_frac_copy=nbytes / t_ref / 1e9 / copy_GBps,
                        max_abs_err=err,
                        max_abs_err_vs_fp64_ours=err64_ours,
                        max_abs_err_vs_fp64_torch=err64_ref,
                    )
                    records.append(rec)
                    print(text_line(row_cells(rec)), flush=True)
                del contenders, ours_bwd, ref_bwd, x
                if device.type == "cuda":
                    torch.cuda.empty_cache()

    copies = copy_summary(records)
    copy_line = "copy (x.clone(), median over rows): " + "; ".join(
        f"{c['dtype']} {c['numel']} elems {c['GBps']:.1f} GB/s" for c in copies)
    summary = summary_lines(records)
    print(copy_line)
    for line in summary:
        print(line)
    sys.stdout.flush()

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
        "method": {
            "timing": (f"cuda events per call, queued behind a {Timer.PREFILL_US:g} us spin kernel"
                       if device.type == "cuda" else "time.perf_counter per call"),
            "statistic": "median; ours, torch and x.clone() interleaved, order alternating per rep",
            "backward": "torch.autograd.grad on a retained graph (fused: X_backward node; "
                        "torch: eager backward of the composition)",
            "bytes_per_elem": {f"{k}_{d}": v for (k, d), v in BYTES_PER_ELEM.items()},
            "numel_out": numel, "width": cfg.width, "warmup": cfg.warmup,
            "cpu_reuse_memory": bool(cfg.cpu_reuse_memory) if device.type == "cpu" else None,
            "min_reps": cfg.min_reps, "max_reps": cfg.max_reps, "budget_s": cfg.budget,
            "times_unit": "us", "bandwidth_unit": "GB/s (1e9 bytes/s)",
        },
        "copy": copies,
        "summary": summary,
        "records": records,
    }
    if cfg.out:
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        stem = out / f"{info['slug']}-{today}"
        with open(f"{stem}.json", "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        md = [
            f"# fusedact vs torch: {info['device']}",
            "",
            f"- device: {info['device']} ({device.type})",
            f"- torch: {torch.__version__}" + (f" (CUDA {info['torch_cuda']})" if device.type == "cuda" else ""),
            f"- date: {today}",
            f"- command: `{command}`",
            f"- {numel} output elements per op (gated input (tokens, 2*{cfg.width})); "
            "median time in microseconds; torch/ours > 1 means fusedact is faster",
            "- GB/s from the fewest bytes each op must move (unary fwd 2s, bwd 3s per element; "
            "gated fwd 3s, bwd 5s per output element); x/copy = that bandwidth over an "
            "`x.clone()` of the same input, interleaved with the row's reps",
            "- backward: torch.autograd.grad on a retained graph; max err = max |ours - torch| "
            "(forward output or input gradient)",
            f"- {copy_line}",
            "",
            markdown_table(records),
            "",
        ] + [f"- {line}" for line in summary] + [""]
        with open(f"{stem}.md", "w") as f:
            f.write("\n".join(md))
        print(f"wrote {stem}.json and {stem}.md")
    return result


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default=str(_HERE / "results"),
                   help="folder for <device>-<date>.json/.md; '' writes nothing")
    p.add_argument("--size", type=int, default=None,
                   help="output elements per op on CPU (default 2^22; --quick: 2^12)")
    p.add_argument("--cuda-size", type=int, default=None,
                   help="output elements per op on CUDA (default 2^27; --quick: 2^16)")
    p.add_argument("--width", type=int, default=None,
                   help="gated hidden width d: input (tokens, 2*d) (default 4096; --quick: 64)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and few reps (a smoke test)")
    p.add_argument("--devices", default="auto", help="comma list of cpu,cuda; auto = cpu + cuda if present")
    p.add_argument("--dtypes", default=",".join(DTYPES), help="comma list of " + ",".join(DTYPES))
    p.add_argument("--ops", default="", help="comma list of op names (default all in the registry)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls per contender (default 3; --quick: 1)")
    p.add_argument("--min-reps", type=int, default=None, help="default 10; --quick: 3")
    p.add_argument("--max-reps", type=int, default=None, help="default 200 (CPU) / 500 (CUDA); --quick: 5")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds of timed reps per row before stopping (default 1.0 CPU, 0.5 CUDA)")
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
    cfg.size = cfg.size or (2**12 if q else 2**22)
    cfg.cuda_size = cfg.cuda_size or (2**16 if q else 2**27)
    cfg.width = cfg.width or (64 if q else 4096)
    cfg.warmup = cfg.warmup if cfg.warmup is not None else (1 if q else 3)
    cfg.min_reps = cfg.min_reps or (3 if q else 10)
    cfg._max_reps_arg = cfg.max_reps
    cfg._budget_arg = cfg.budget
    return cfg


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
    command = " ".join(shlex.quote(a) for a in [exe] + sys.argv)
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
        cfg.max_reps = cfg._max_reps_arg or (5 if cfg.quick else (500 if name == "cuda" else 200))
        cfg.budget = cfg._budget_arg if cfg._budget_arg is not None else (
            0.05 if cfg.quick else (0.5 if name == "cuda" else 1.0))
        bench_device(torch.device(name), cfg, command)
    print(f"\ntotal wall time {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
