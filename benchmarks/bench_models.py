"""A whole model with fusedact vs without: training-step time and memory of a small Llama.

Run from the repository root:

    PYTHONPATH=python .venv/bin/python benchmarks/bench_models.py --out-dir benchmarks/results
    PYTHONPATH=python .venv/bin/python benchmarks/bench_models.py --device cuda --dtype bfloat16

Needs transformers. The model is a randomly initialised LlamaForCausalLM built from a config
(no download; default hidden 512, intermediate 1408, 2 layers, 8 heads, 4 KV heads,
vocabulary 1024), run on batch 4 x sequence 128 of random token ids with labels = ids.
Three copies of the same weights:

- torch:         transformers' own modules (SiLUActivation, act(gate) * up in eager);
- fusedact.nn:   fusedact.replace_activations(model): the SiLU modules swapped;
- fused MLP:     fusedact.integrations.transformers.patch_model(model): each MLP calls
                 swiglu.split(gate_proj(x), up_proj(x)) (the activation output is never
                 materialised or saved).

What it measures:

- time of one training step, forward + loss + backward (gradients set to None before each,
  outside the timing): after --warmup untimed steps each, --reps reps per variant,
  interleaved rep by rep with the order rotating; the median and quartiles. CPU: wall clock
  (noisy on small shared machines: read the ratios); CUDA: wall clock around a synchronized
  step;
- autograd-saved bytes: the distinct storages the forward saves for backward
  (torch.autograd.graph.saved_tensors_hooks), parameters excluded. This is the memory the
  fusion saves and is exact on every device;
- peak memory of forward + backward over what was allocated before: CUDA
  torch.cuda.max_memory_allocated; CPU the running sum of the allocations the torch profiler
  records (benchmarks/bench.py's method, with its self-check; left out when that fails);
- the largest difference of loss, logits and gradients from the torch variant.

Prints a table; with --out-dir writes <device>-<date>-models.json and .md there.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import shlex
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Dict, List, Optional

import torch

import bench  # benchmarks/bench.py (this script's folder is on sys.path): device info, CPU peak memory
import fusedact
from fusedact.integrations.transformers import patch_model

VARIANTS = ("torch", "fusedact.nn", "fused MLP")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--intermediate", type=int, default=1408)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=1024)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per variant (default 3)")
    p.add_argument("--reps", type=int, default=None, help="timed steps per variant (default 21 CPU, 51 CUDA)")
    p.add_argument("--out-dir", default=None, help="write <device>-<date>-models.json/.md here")
    return p.parse_args(argv)


def build_models(cfg: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> Dict[str, torch.nn.Module]:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=cfg.vocab, hidden_size=cfg.hidden, intermediate_size=cfg.intermediate,
        num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, num_key_value_heads=cfg.kv_heads,
        max_position_embeddings=max(cfg.seq, 128),
    )
    torch.manual_seed(0)
    base = LlamaForCausalLM(config).to(device=device, dtype=dtype).train()
    models = {"torch": base}
    models["fusedact.nn"] = copy.deepcopy(base)
    swapped = fusedact.replace_activations(models["fusedact.nn"])
    models["fused MLP"] = copy.deepcopy(base)
    report = patch_model(models["fused MLP"])
    if len(report.patched) != cfg.layers or len(swapped.swapped) != cfg.layers:
        raise SystemExit(f"bench_models: expected {cfg.layers} swaps and patches, got\n{swapped}\n{report}")
    return models


def step(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    return out.logits


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(models: Dict[str, torch.nn.Module], ids: torch.Tensor, device: torch.device,
               warmup: int, reps: int) -> Dict[str, List[float]]:
    """Seconds per training step, interleaved rep by rep, the order rotating each rep."""
    names = list(models)
    for name in names:
        for _ in range(warmup):
            models[name].zero_grad(set_to_none=True)
            step(models[name], ids)
    times: Dict[str, List[float]] = {n: [] for n in names}
    for rep in range(reps):
        order = names[rep % len(names):] + names[: rep % len(names)]
        for name in order:
            models[name].zero_grad(set_to_none=True)
            synchronize(device)
            t0 = time.perf_counter()
            step(models[name], ids)
            synchronize(device)
            times[name].append(time.perf_counter() - t0)
    return times


def saved_bytes(model: torch.nn.Module, ids: torch.Tensor) -> int:
    """Bytes of the distinct storages the forward saves for backward, parameters excluded."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: Dict[int, int] = {}

    def pack(t: torch.Tensor):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params and ptr:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(input_ids=ids, labels=ids).loss
    del loss
    return sum(seen.values())


def peak_bytes(model: torch.nn.Module, ids: torch.Tensor, device: torch.device) -> Optional[int]:
    """Peak allocation of one training step over what was allocated before (None: not
    measurable here)."""
    model.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step(model, ids)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    if not bench.cpu_memory_reliable():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peak, _ = bench._cpu_profile_peak(lambda: step(model, ids))
    return int(peak)


def differences(models: Dict[str, torch.nn.Module], ids: torch.Tensor) -> Dict[str, Dict[str, float]]:
    """Max |difference| from the torch variant: loss, logits, parameter gradients."""
    results = {}
    for name, model in models.items():
        model.zero_grad(set_to_none=True)
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        results[name] = (out.loss.detach(), out.logits.detach(), [p.grad for p in model.parameters()])
    ref_loss, ref_logits, ref_grads = results["torch"]
    return {
        name: {
            "loss": float((loss - ref_loss).abs()),
            "logits": float((logits - ref_logits).abs().max()),
            "grads": max(float((g - r).abs().max()) for g, r in zip(grads, ref_grads) if r is not None),
        }
        for name, (loss, logits, grads) in results.items()
    }


def quartiles(values: List[float]) -> Dict[str, float]:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {"median": statistics.median(values), "q1": q[0], "q3": q[2], "min": min(values)}


def _mb(n: Optional[int]) -> str:
    return "-" if n is None else f"{n / 2**20:.1f}"


def table_rows(result: dict) -> List[List[str]]:
    ref = result["variants"]["torch"]
    rows = []
    for name, v in result["variants"].items():
        t = v["time_s"]
        rows.append([
            name,
            f"{t['median'] * 1e3:.1f}",
            f"{t['q1'] * 1e3:.1f} - {t['q3'] * 1e3:.1f}",
            f"{t['min'] * 1e3:.1f}",
            f"{ref['time_s']['median'] / t['median']:.3f}",
            _mb(v["saved_bytes"]),
            f"{ref['saved_bytes'] / v['saved_bytes']:.3f}" if v["saved_bytes"] else "-",
            _mb(v["peak_bytes"]),
            f"{v['max_diff']['logits']:.1e}",
            f"{v['max_diff']['grads']:.1e}",
        ])
    return rows


HEADER = ["variant", "step ms (median)", "IQR ms", "min ms", "speed-up", "saved MiB", "saved torch/ours",
          "peak MiB", "max abs diff logits", "max abs diff grads"]


def main(argv: Optional[List[str]] = None) -> int:
    cfg = parse_args(argv)
    try:
        import transformers
    except ImportError:
        print("bench_models: needs transformers (pip install transformers)", file=sys.stderr)
        return 2
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_models: --device cuda, but CUDA is not available", file=sys.stderr)
        return 2
    dtype = getattr(torch, cfg.dtype)
    reps = cfg.reps or (51 if device.type == "cuda" else 21)
    exe = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd() + os.sep) else sys.executable
    command = " ".join(shlex.quote(a) for a in [exe] + (sys.argv if argv is None else ["bench_models.py"] + argv))
    if os.environ.get("PYTHONPATH"):
        command = f"PYTHONPATH={shlex.quote(os.environ['PYTHONPATH'])} {command}"

    models = build_models(cfg, device, dtype)
    ids = torch.randint(0, cfg.vocab, (cfg.batch, cfg.seq), device=device,
                        generator=torch.Generator(device=device).manual_seed(0))
    diffs = differences(models, ids)
    saved = {n: saved_bytes(m, ids) for n, m in models.items()}
    peaks = {n: peak_bytes(m, ids, device) for n, m in models.items()}
    t0 = time.perf_counter()
    times = time_steps(models, ids, device, cfg.warmup, reps)
    info = bench.device_info(device)
    result = {
        "benchmark": "bench_models",
        "date": datetime.date.today().isoformat(),
        "command": command,
        "git_commit": bench.git_commit(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": info,
        "dtype": cfg.dtype,
        "model": {"class": "LlamaForCausalLM", "hidden": cfg.hidden, "intermediate": cfg.intermediate,
                  "layers": cfg.layers, "heads": cfg.heads, "kv_heads": cfg.kv_heads, "vocab": cfg.vocab},
        "input": {"batch": cfg.batch, "seq": cfg.seq},
        "warmup": cfg.warmup,
        "reps": reps,
        "timing_wall_s": round(time.perf_counter() - t0, 1),
        "memory_note": ("saved: distinct storages saved for backward (saved_tensors_hooks), parameters "
                        "excluded; peak: " + ("torch.cuda.max_memory_allocated over the step"
                                              if device.type == "cuda" else bench._CPU_MEMORY_NOTE)),
        "variants": {
            n: {"time_s": quartiles(times[n]), "times_s": times[n], "saved_bytes": saved[n],
                "peak_bytes": peaks[n], "max_diff": diffs[n]}
            for n in models
        },
    }

    title = (f"Llama {cfg.hidden}/{cfg.intermediate} x {cfg.layers} layers, batch {cfg.batch} x seq {cfg.seq}, "
             f"{cfg.dtype}, {info['device']} ({device.type}), training step (fwd + loss + bwd)")
    rows = table_rows(result)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADER)]
    print(title)
    print("  ".join(h.rjust(w) for h, w in zip(HEADER, widths)))
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    print(f"{reps} reps per variant after {cfg.warmup} warm-up, interleaved; {result['memory_note']}")

    if cfg.out_dir:
        out = Path(cfg.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = out / f"{info['slug']}-{result['date']}-models"
        stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        md = [
            f"# fusedact in a model: {title}",
            "",
            f"- device: {info['device']} ({device.type}); torch {torch.__version__}; transformers "
            f"{transformers.__version__}; date {result['date']}; commit {result['git_commit']}",
            f"- command: `{command}`",
            f"- variants: torch = transformers' modules; fusedact.nn = replace_activations (SiLU swapped); "
            f"fused MLP = integrations.transformers.patch_model (swiglu.split per MLP)",
            f"- time: one training step, {reps} reps per variant after {cfg.warmup} warm-up, interleaved, "
            f"median, quartiles and minimum; speed-up = torch median / variant median",
            f"- memory: {result['memory_note']}",
            "",
            bench.markdown_table(HEADER, "<" + ">" * (len(HEADER) - 1), rows),
            "",
        ]
        stem.with_suffix(".md").write_text("\n".join(md))
        print(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
