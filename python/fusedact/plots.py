"""Curves of the activations and their first derivatives, computed by the fusedact kernels
(autograd through torch.ops.fusedact), beside the torch counterpart of the registry.

`python -m fusedact plot --ops gelu,silu,mish --out DIR` writes one PNG per op; `curve()`
gives the numbers. Conventions per kind of op:

- unary: f(x) with the op's default parameters (threshold, which has none, with the
  registry's sample values);
- gated: the activation applied to the gate with up = 1, i.e. act(gate) (the two-tensor
  `.split` overload), and its derivative with respect to the gate;
- rowwise: the first component of op([x, 0]) over a row of two elements (softmax: s(x),
  log_softmax: logsigmoid(x), softmin: s(-x)), and its derivative with respect to x;
- weighted: the weight of `PLOT_WEIGHT` (prelu: torch.nn.PReLU's initial 0.25);
- random (rrelu): evaluation mode, slope (lower + upper) / 2.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Dict, Tuple

import torch

from . import registry
from .registry import OpSpec

__all__ = ["curve", "plot_op", "new_figure", "rowwise_pair", "DEFAULT_RANGE", "DEFAULT_POINTS", "PLOT_WEIGHT"]

DEFAULT_RANGE = (-6.0, 6.0)
DEFAULT_POINTS = 601
# The single learned weight used for the weighted ops: torch.nn.PReLU's init; beta = 1.
PLOT_WEIGHT = {"prelu": 0.25, "learnable_swish": 1.0}


def new_figure(who: str, **kwargs):
    """A matplotlib Figure that renders without a display (no pyplot, so no global backend
    or figure registry is touched); `who` names the caller in the error without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(f"{who} needs matplotlib: pip install matplotlib") from None
    return Figure(**kwargs)


def _functions(spec: OpSpec, params: Dict, dtype: torch.dtype) -> Tuple[Callable, Callable, str]:
    """(ours, torch's, label): the two functions of one tensor the plot compares."""
    shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
    if spec.kind == "unary":
        return (lambda t: spec.op(t, **params), lambda t: spec.reference(t, **params),
                f"{spec.name}({shown})" if shown else spec.name)
    if spec.kind == "gated":
        args = f"gate, up=1{', ' + shown if shown else ''}"
        return (lambda t: spec.op.split(t, torch.ones_like(t), **params),
                lambda t: spec.reference(t, torch.ones_like(t), **params), f"{spec.name}({args})")
    if spec.kind == "rowwise":
        # dtype=None only: the curve is of the op, in the plot's dtype.
        row_params = {k: v for k, v in params.items() if k not in ("dim", "dtype")}
        return (lambda t: spec.op(rowwise_pair(t), -1, **row_params)[..., 0],
                lambda t: spec.reference(rowwise_pair(t), dim=-1, **row_params)[..., 0],
                f"{spec.name}([x, 0], dim=-1)[0]")
    if spec.kind == "weighted":
        if spec.name not in PLOT_WEIGHT:
            raise KeyError(f"fusedact.plots: no plotting weight for the weighted op {spec.name!r}; "
                           "add it to fusedact.plots.PLOT_WEIGHT")
        weight = torch.tensor([PLOT_WEIGHT[spec.name]], dtype=dtype)
        return (lambda t: spec.op(t, weight), lambda t: spec.reference(t, weight),
                f"{spec.name}(weight={PLOT_WEIGHT[spec.name]})")
    if spec.kind == "random":
        return (lambda t: spec.op(t, **params, training=False), lambda t: spec.reference(t, **params),
                f"{spec.name}({shown + ', ' if shown else ''}training=False)")
    raise ValueError(f"fusedact.plots: op {spec.name!r} has kind {spec.kind!r}, which has no plotting rule")


def rowwise_pair(t: torch.Tensor) -> torch.Tensor:
    """[..., 2] rows [t, 0]: the row-wise ops' plotting input (the first component of
    softmax([x, 0]) is sigmoid(x))."""
    return torch.stack([t, torch.zeros_like(t)], dim=-1)


def _value_and_derivative(fn: Callable, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    t = x.clone().requires_grad_(True)
    y = fn(t)
    # Each output element depends on its own point of t only (the rowwise ops: on its own
    # row [t_i, 0]), so the gradient of the sum is the derivative at each point.
    (dy,) = torch.autograd.grad(y.sum(), t)
    return y.detach(), dy


def curve(name: str, range: Tuple[float, float] = DEFAULT_RANGE,  # noqa: A002
          points: int = DEFAULT_POINTS, dtype: torch.dtype = torch.float64) -> dict:
    """The op `name` and its derivative on `points` evenly spaced x in `range`, from the
    fusedact kernels (y, dy) and from the registry's torch reference (ref_y, ref_dy), as a
    dict of tensors plus `op`, `params` and a `label`."""
    spec = registry.get(name)
    lo, hi = (float(v) for v in range)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"fusedact.plots.curve: range must be finite with min < max, got {range!r}")
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise ValueError(f"fusedact.plots.curve: points must be an int >= 2, got {points!r}")
    params = dict(spec.params)
    ours, theirs, label = _functions(spec, params, dtype)
    x = torch.linspace(lo, hi, points, dtype=dtype)
    y, dy = _value_and_derivative(ours, x)
    ref_y, ref_dy = _value_and_derivative(theirs, x)
    return {"op": name, "params": params, "label": label, "x": x, "y": y, "dy": dy,
            "ref_y": ref_y, "ref_dy": ref_dy}


def plot_op(name: str, path, range: Tuple[float, float] = DEFAULT_RANGE,  # noqa: A002
            points: int = DEFAULT_POINTS, dpi: int = 72) -> Path:
    """Write a PNG of `name` (left) and its derivative (right): fusedact solid, torch dashed."""
    c = curve(name, range, points)
    fig = new_figure("fusedact.plots.plot_op", figsize=(7.0, 2.6))
    x = c["x"].numpy()
    wrt = " (d / d gate)" if registry.get(name).kind == "gated" else ""
    for i, (key, title) in enumerate((("y", c["label"]), ("dy", f"derivative{wrt}"))):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.plot(x, c[key].numpy(), color="tab:blue", linewidth=2.2, label="fusedact")
        ax.plot(x, c["ref_" + key].numpy(), color="tab:orange", linestyle="--", linewidth=1.4, label="torch")
        ax.axhline(0.0, color="0.75", linewidth=0.6, zorder=0)
        ax.axvline(0.0, color="0.75", linewidth=0.6, zorder=0)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(True, linewidth=0.3, alpha=0.5)
        if i == 0:
            ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path = Path(path)
    # No "Software" entry: the file then does not change with the matplotlib version.
    fig.savefig(path, format="png", dpi=dpi, metadata={"Software": None})
    return path
