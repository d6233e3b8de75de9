"""Overhead of fusedact.diagnostics.ActivationMonitor on a small MLP training step.

    PYTHONPATH=python .venv/bin/python benchmarks/bench_diagnostics.py [--device cpu] \\
        [--out-dir benchmarks/results]

The model: Linear(784, 512) -> ReLU -> Linear(512, 512) -> GELU -> Linear(512, 512) -> Tanh ->
Linear(512, 10), fusedact.nn activations (`--act torch` for torch.nn's), batch 128; a step is
forward, cross-entropy, backward and an SGD update. The three activations exercise the
three kinds of statistics (dead units, none beyond the common ones, saturation).

Modes, on the same model and data:
- off:       no monitor attached;
- disabled:  a monitor attached but disabled (the hooks return at once);
- on:        a monitor recording every call (every=1, the default 200-bin histogram);
- on, bins=None: the same without the histogram;
- every=10:  a monitor recording one call in ten.

Timing: one process; per rep, each mode runs `--steps` steps timed as one block (the CUDA
device synchronized at both ends), the order of the modes rotated from rep to rep; warm-up
reps first. The monitor is attached before and removed after each timed block. Reported:
the median over reps of the time per step; the overhead, the median over reps of
time(mode) / time(off) within the same rep, minus 1 (paired, so that the drifting load of a
shared machine cancels), also in microseconds per step (times the median "off" step) and
per recorded hook call.

`--threads 1` keeps CPU timings stable where other processes share the cores (torch's
OpenMP threads otherwise wait on each other for a core). `--out-dir DIR` writes
DIR/<device>-<date>-diagnostics.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from bench import device_info, git_commit, markdown_table  # the main benchmark's helpers

import fusedact
import fusedact.nn as fnn
from fusedact.diagnostics import ActivationMonitor

MODES = ("off", "disabled", "on", "on, bins=None", "every=10")


def make_model(act_ns, width: int):
    return torch.nn.Sequential(
        torch.nn.Linear(784, width), act_ns.ReLU(),
        torch.nn.Linear(width, width), act_ns.GELU(),
        torch.nn.Linear(width, width), act_ns.Tanh(),
        torch.nn.Linear(width, 10),
    )


def attach(mode: str, model):
    if mode == "off":
        return None
    monitor = ActivationMonitor(model, every=10 if mode == "every=10" else 1,
                                bins=None if mode == "on, bins=None" else 200)
    return monitor.disable() if mode == "disabled" else monitor


def timed_block(model, opt, x, y, steps: int, device) -> float:
    """Seconds per step over `steps` training steps."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / steps


def run(cfg) -> dict:
    device = torch.device(cfg.device)
    torch.manual_seed(0)
    model = make_model(fnn if cfg.act == "fusedact" else torch.nn, cfg.width).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(cfg.batch, 784, device=device)
    y = torch.randint(10, (cfg.batch,), device=device)
    hooks = 3  # activation layers watched
    times = {m: [] for m in MODES}
    calls = {m: 0 for m in MODES}
    for rep in range(cfg.warmup + cfg.reps):
        shift = rep % len(MODES)
        for mode in MODES[shift:] + MODES[:shift]:
            monitor = attach(mode, model)
            t = timed_block(model, opt, x, y, cfg.steps, device)
            if monitor is not None:
                if rep >= cfg.warmup:
                    calls[mode] += sum(r["calls"] for r in monitor.report())
                monitor.close()
            if rep >= cfg.warmup:
                times[mode].append(t)
    base = statistics.median(times["off"])
    rows = []
    for mode in MODES:
        med = statistics.median(times[mode])
        # Paired with the "off" block of the same rep (run next to it), so that the load of a
        # shared machine, which drifts over seconds, cancels in the ratio.
        ratio = statistics.median(t / off for t, off in zip(times[mode], times["off"]))
        per_step_calls = calls[mode] / (cfg.reps * cfg.steps)
        rows.append({
            "mode": mode,
            "median_ms_per_step": 1e3 * med,
            "overhead_pct": 100 * (ratio - 1),
            "overhead_us_per_step": 1e6 * (ratio - 1) * base,
            "recorded_calls_per_step": per_step_calls,
            "overhead_us_per_recorded_call": 1e6 * (ratio - 1) * base / per_step_calls if per_step_calls else None,
            "reps_ms": [1e3 * t for t in times[mode]],
        })
    return {"rows": rows, "hooks": hooks}


def text_table(rows) -> str:
    header = f"{'mode':<14} {'ms/step':>9} {'overhead':>9} {'us/step':>9} {'calls/step':>10} {'us/call':>8}"
    lines = [header, "-" * len(header)]
    for r in rows:
        per_call = "-" if r["overhead_us_per_recorded_call"] is None else f"{r['overhead_us_per_recorded_call']:.1f}"
        lines.append(f"{r['mode']:<14} {r['median_ms_per_step']:>9.3f} {r['overhead_pct']:>8.1f}% "
                     f"{r['overhead_us_per_step']:>9.1f} {r['recorded_calls_per_step']:>10.1f} {per_call:>8}")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--act", choices=["fusedact", "torch"], default="fusedact", help="activation modules")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--steps", type=int, default=10, help="training steps per timed block")
    p.add_argument("--reps", type=int, default=30, help="timed blocks per mode")
    p.add_argument("--warmup", type=int, default=3, help="untimed reps first")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's); 1 keeps timings stable on a shared machine")
    p.add_argument("--out-dir", default=None, help="write <device>-<date>-diagnostics.json/.md there")
    cfg = p.parse_args(argv)
    for name in ("batch", "width", "steps", "reps") + (("threads",) if cfg.threads is not None else ()):
        if getattr(cfg, name) < 1:
            p.error(f"argument --{name}: expected >= 1, got {getattr(cfg, name)}")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("argument --device: CUDA is not available on this machine")
    return cfg


def main(argv=None) -> int:
    cfg = parse_args(argv)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    info = device_info(device)
    command = " ".join(shlex.quote(a) for a in [os.path.relpath(sys.executable) if sys.executable.startswith(
        os.getcwd() + os.sep) else sys.executable] + (sys.argv if argv is None else ["bench_diagnostics.py"] + argv))
    if os.environ.get("PYTHONPATH"):
        command = f"PYTHONPATH={shlex.quote(os.environ['PYTHONPATH'])} {command}"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result = run(cfg)
    today = datetime.date.today().isoformat()
    model = (f"MLP 784-{cfg.width}-{cfg.width}-{cfg.width}-10, {cfg.act} ReLU/GELU/Tanh, batch {cfg.batch}, "
             f"SGD step; {cfg.reps} reps x {cfg.steps} steps per mode, modes interleaved, median")
    print(f"ActivationMonitor overhead: {info['device']} ({device.type}), torch {torch.__version__}, {today}")
    print(model)
    print(text_table(result["rows"]))
    if cfg.out_dir:
        out = Path(cfg.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = out / f"{info['slug']}-{today}-diagnostics"
        record = {
            "device": info["device"], "device_info": {k: v for k, v in info.items() if k != "slug"},
            "torch_version": torch.__version__, "python_version": platform.python_version(),
            "fusedact_version": fusedact.__version__, "git_commit": git_commit(), "date": today,
            "command": command, "model": model, "config": vars(cfg), "load_average_start": load,
            "load_average_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "rows": result["rows"],
        }
        Path(f"{stem}.json").write_text(json.dumps(record, indent=1) + "\n")
        table = markdown_table(
            ["mode", "ms / step", "overhead", "us / step", "recorded calls / step", "us / recorded call"], "<>>>>>",
            [[r["mode"], f"{r['median_ms_per_step']:.3f}", f"{r['overhead_pct']:.1f}%", f"{r['overhead_us_per_step']:.1f}",
              f"{r['recorded_calls_per_step']:.1f}",
              "-" if r["overhead_us_per_recorded_call"] is None else f"{r['overhead_us_per_recorded_call']:.1f}"]
             for r in result["rows"]])
        md = [
            f"# ActivationMonitor overhead: {info['device']}",
            "",
            f"- device: {info['device']} ({device.type}"
            + (f", {info['threads']} threads)" if device.type == "cpu" else ")"),
            f"- torch {torch.__version__}; fusedact commit {record['git_commit']}; date {today}",
            f"- command: `{command}`",
            f"- {model}",
            f"- load average (1 min) at start / end: {load} / {record['load_average_end']}",
            "- overhead = median over reps of time(mode) / time(off) in the same rep, minus 1; us / step = "
            "that times the median off step; CPU timings on a shared machine are noisy",
            "",
            table,
            "",
        ]
        Path(f"{stem}.md").write_text("\n".join(md))
        print(f"wrote {stem}.json, {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
