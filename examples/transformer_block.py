"""A small Transformer language model trained twice, with torch.nn activations and with
fusedact's, from the same initial weights on the same synthetic batches.

    PYTHONPATH=python python examples/transformer_block.py [--steps 40] [--device cpu]

Each block is pre-norm causal self-attention plus an MLP, in two variants:
- gelu:   Linear(d, 4d) -> GELU -> Linear(4d, d)            torch.nn.GELU vs fusedact.nn.GELU
- swiglu: Linear(d, 2h) packed [gate | up] -> SwiGLU -> Linear(h, d)
          the eager composition F.silu(gate) * up vs fusedact.nn.SwiGLU (one fused op)
The data are sequences of a random sparse Markov chain, so the loss falls well below
log(vocab). The two runs of a variant are stepped alternately (order swapped every step) so
that both see the same machine load; the script prints both loss curves, their largest
difference, and the median time of a training step (forward, backward, AdamW) of each, and
exits with status 1 if the losses differ by more than --tol.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.append(str(Path(__file__).resolve().parents[1] / "python"))  # PYTHONPATH, when set, wins
import fusedact.nn as fnn  # noqa: E402


class TorchSwiGLU(nn.Module):
    """torch has no SwiGLU module: the eager composition on a packed [gate | up] input."""

    def forward(self, x):
        gate, up = x.chunk(2, dim=-1)
        return F.silu(gate) * up


class Attention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, d: int, heads: int, variant: str, act: nn.Module):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = Attention(d, heads)
        self.ln2 = nn.LayerNorm(d)
        if variant == "gelu":
            hidden = 4 * d
            self.mlp = nn.Sequential(nn.Linear(d, hidden), act, nn.Linear(hidden, d))
        else:  # swiglu: about the parameter count of the 4d GELU MLP (Llama's 2/3 * 4d)
            hidden = 8 * ((8 * d // 3 + 7) // 8)
            self.mlp = nn.Sequential(nn.Linear(d, 2 * hidden, bias=False), act, nn.Linear(hidden, d, bias=False))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyLM(nn.Module):
    def __init__(self, vocab: int, seq: int, d: int, heads: int, layers: int, variant: str, make_act):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.zeros(seq, d))
        self.blocks = nn.Sequential(*[Block(d, heads, variant, make_act()) for _ in range(layers)])
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def forward(self, tokens):
        return self.head(self.ln(self.blocks(self.tok(tokens) + self.pos[: tokens.shape[1]])))


ACTIVATIONS = {  # variant -> (torch module, fusedact module)
    "gelu": (nn.GELU, fnn.GELU),
    "swiglu": (TorchSwiGLU, fnn.SwiGLU),
}


def synthetic_batches(steps: int, batch: int, seq: int, vocab: int, seed: int, device) -> list:
    """Token sequences of a Markov chain where each token has 3 likely successors."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.full((vocab, vocab), -4.0)
    logits.scatter_(1, torch.randint(vocab, (vocab, 3), generator=g), 2.0)
    probs = logits.softmax(-1)
    batches = []
    for _ in range(steps):
        tokens = torch.empty(batch, seq + 1, dtype=torch.long)
        tokens[:, 0] = torch.randint(vocab, (batch,), generator=g)
        for t in range(seq):
            tokens[:, t + 1] = torch.multinomial(probs[tokens[:, t]], 1, generator=g).squeeze(1)
        batches.append(tokens.to(device))
    return batches


def train_step(model, opt, tokens) -> float:
    logits = model(tokens[:, :-1])
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()  # the sync also ends the step's device work before the clock stops


def run_variant(variant: str, args) -> dict:
    """Train the torch and the fusedact model of one variant; their losses and step times."""
    device = torch.device(args.device)
    torch_act, fused_act = ACTIVATIONS[variant]
    torch.manual_seed(args.seed)
    dims = (args.vocab, args.seq, args.d_model, args.heads, args.layers, variant)
    models = {"torch": TinyLM(*dims, torch_act).to(device), "fusedact": TinyLM(*dims, fused_act).to(device)}
    # Same initial weights: the activations hold no parameters, so the state dicts match.
    models["fusedact"].load_state_dict(models["torch"].state_dict())
    opts = {k: torch.optim.AdamW(m.parameters(), lr=args.lr) for k, m in models.items()}
    batches = synthetic_batches(args.steps, args.batch, args.seq, args.vocab, args.seed, device)
    losses = {k: [] for k in models}
    times = {k: [] for k in models}
    for step, tokens in enumerate(batches):
        order = ("torch", "fusedact") if step % 2 == 0 else ("fusedact", "torch")
        for name in order:
            start = time.perf_counter()
            losses[name].append(train_step(models[name], opts[name], tokens))
            times[name].append(time.perf_counter() - start)
    diffs = [abs(a - b) for a, b in zip(losses["torch"], losses["fusedact"])]
    # The first steps include one-time set-up (allocations, lazy init): not in the median.
    skip = min(2, args.steps - 1)
    return {
        "variant": variant,
        "losses": losses,
        "max_abs_diff": max(diffs),
        "step_ms": {k: 1e3 * statistics.median(v[skip:]) for k, v in times.items()},
    }


def print_result(result: dict, every: int) -> None:
    losses = result["losses"]
    n = len(losses["torch"])
    print(f"\n== MLP variant: {result['variant']} ==")
    print(f"{'step':>5}  {'loss torch':>11}  {'loss fusedact':>13}  {'|diff|':>9}")
    for i in range(n):
        if i % every == 0 or i == n - 1:
            a, b = losses["torch"][i], losses["fusedact"][i]
            print(f"{i + 1:>5}  {a:>11.6f}  {b:>13.6f}  {abs(a - b):>9.2e}")
    t, f = result["step_ms"]["torch"], result["step_ms"]["fusedact"]
    print(f"max |loss diff| over {n} steps: {result['max_abs_diff']:.2e}")
    print(f"median step time: torch {t:.2f} ms, fusedact {f:.2f} ms (torch/fusedact = {t / f:.2f})")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", choices=["gelu", "swiglu", "both"], default="both")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=32)
    p.add_argument("--vocab", type=int, default=64)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tol", type=float, default=1e-3, help="largest loss difference accepted (exit status 1 above)")
    p.add_argument("--print-every", type=int, default=10)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1, which keeps the timings steady where other "
                        "processes share the cores; 0 = torch's default)")
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error(f"argument --steps: expected >= 1, got {args.steps}")
    if args.d_model % args.heads:
        p.error(f"argument --d-model: {args.d_model} is not divisible by --heads {args.heads}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"device {args.device}, torch {torch.__version__}, {args.steps} steps, batch {args.batch} x "
          f"{args.seq} tokens, d_model {args.d_model}, {args.layers} layers, {torch.get_num_threads()} CPU threads; "
          f"log(vocab) = {math.log(args.vocab):.3f}")
    variants = ["gelu", "swiglu"] if args.variant == "both" else [args.variant]
    results = [run_variant(v, args) for v in variants]
    for result in results:
        print_result(result, max(1, args.print_every))
    worst = max(r["max_abs_diff"] for r in results)
    if worst > args.tol:
        print(f"FAIL: losses differ by {worst:.2e} > --tol {args.tol:g}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
