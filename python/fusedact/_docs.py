"""Generator of the op reference in docs/: `python -m fusedact docs --out docs`.

One markdown page per kind of op in the registry (unary, gated, rowwise, weighted, random)
and an index. Everything an op page says comes from the registry, the registered schemas, the
Python signatures, a probe of the built ops (integer inputs), and `OP_DOCS` below, which
holds what the registry does not: the formula and the derivative of each op, written out.
tests/python/test_docs.py fails when an op of the registry has no OP_DOCS entry, and when
the committed docs/ differ from a regeneration, so the pages cannot drift from the code.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

from . import functional as _FA
from . import nn as _fnn
from . import registry
from .registry import OPS, OpSpec

# s(x) = sigmoid(x) = 1 / (1 + exp(-x)); Phi, phi = the standard normal CDF and density.
# Keys: formula, derivative (required); torch (the counterpart as code, where
# torch.nn.functional has no function of the op's name) and torch_note; module (where the
# registry row names no module); notes.
OP_DOCS: Dict[str, Dict[str, str]] = {
    "gelu": {
        "formula": "x * Phi(x); approximate='tanh': 0.5 * x * (1 + tanh(u)), "
                   "u = sqrt(2/pi) * (x + 0.044715 * x^3)",
        "derivative": "Phi(x) + x * phi(x); approximate='tanh': 0.5 * (1 + tanh(u)) "
                      "+ 0.5 * x * (1 - tanh(u)^2) * sqrt(2/pi) * (1 + 3 * 0.044715 * x^2)",
    },
    "silu": {
        "formula": "x * s(x)",
        "derivative": "s(x) * (1 + x * (1 - s(x)))",
    },
    "mish": {
        "formula": "x * tanh(softplus(x)), softplus(x) = log(1 + exp(x))",
        "derivative": "tanh(softplus(x)) + x * s(x) * (1 - tanh(softplus(x))^2)",
        "notes": "tanh(softplus(x)) is evaluated with one exponential: n / (n + 2), n = e^x * (e^x + 2).",
    },
    "relu": {
        "formula": "max(x, 0)",
        "derivative": "1 for x > 0, 0 for x <= 0 (0 at x = 0, as torch)",
    },
    "relu6": {
        "formula": "min(max(x, 0), 6)",
        "derivative": "1 for 0 < x < 6, 0 elsewhere (0 at both edges, as torch)",
    },
    "leaky_relu": {
        "formula": "x for x > 0, negative_slope * x for x <= 0",
        "derivative": "1 for x > 0, negative_slope for x <= 0 (negative_slope at x = 0)",
    },
    "elu": {
        "formula": "x for x > 0, alpha * (exp(x) - 1) for x <= 0",
        "derivative": "1 for x > 0, alpha * exp(x) for x <= 0 (alpha at x = 0)",
    },
    "selu": {
        "formula": "scale * x for x > 0, scale * alpha * (exp(x) - 1) for x <= 0; "
                   "alpha = 1.6732632423543772, scale = 1.0507009873554805",
        "derivative": "scale for x > 0, scale * alpha * exp(x) for x <= 0",
    },
    "celu": {
        "formula": "x for x > 0, alpha * (exp(x / alpha) - 1) for x <= 0",
        "derivative": "1 for x > 0, exp(x / alpha) for x <= 0",
    },
    "softplus": {
        "formula": "log(1 + exp(beta * x)) / beta; x where beta * x > threshold",
        "derivative": "s(beta * x); 1 where beta * x > threshold",
    },
    "sigmoid": {
        "formula": "s(x) = 1 / (1 + exp(-x))",
        "derivative": "s(x) * (1 - s(x)), computed from the output y as y * (1 - y)",
        "torch": "torch.sigmoid",
    },
    "tanh": {
        "formula": "tanh(x)",
        "derivative": "1 - tanh(x)^2, computed from the output y as 1 - y^2",
        "torch": "torch.tanh",
    },
    "hardsigmoid": {
        "formula": "min(max(x + 3, 0), 6) / 6",
        "derivative": "1/6 for -3 < x < 3, 0 elsewhere (0 at x = -3 and x = 3, as torch)",
    },
    "hardswish": {
        "formula": "x * min(max(x + 3, 0), 6) / 6",
        "derivative": "0 for x < -3, (2x + 3) / 6 for -3 <= x <= 3, 1 for x > 3 "
                      "(-0.5 at x = -3 and 1.5 at x = 3, as torch)",
    },
    "hardtanh": {
        "formula": "min(max(x, min_val), max_val)",
        "derivative": "1 for min_val < x < max_val, 0 elsewhere (0 at both edges)",
    },
    "softsign": {
        "formula": "x / (1 + |x|)",
        "derivative": "1 / (1 + |x|)^2",
    },
    "logsigmoid": {
        "formula": "log(s(x)) = -softplus(-x)",
        "derivative": "1 - s(x) = s(-x)",
    },
    "tanhshrink": {
        "formula": "x - tanh(x)",
        "derivative": "tanh(x)^2",
    },
    "hardshrink": {
        "formula": "x for |x| > lambd, 0 for |x| <= lambd",
        "derivative": "1 for |x| > lambd, 0 for |x| <= lambd",
    },
    "softshrink": {
        "formula": "x - lambd for x > lambd, x + lambd for x < -lambd, 0 between",
        "derivative": "1 for |x| > lambd, 0 for |x| <= lambd",
    },
    "threshold": {
        "formula": "x for x > threshold, value for x <= threshold",
        "derivative": "1 for x > threshold, 0 for x <= threshold",
    },
    "swish": {
        "formula": "x * s(beta * x)",
        "derivative": "s(beta * x) * (1 + beta * x * (1 - s(beta * x)))",
        "torch": "x * torch.sigmoid(beta * x)",
        "torch_note": "no torch built-in; beta = 1 is F.silu",
    },
    "quick_gelu": {
        "formula": "x * s(1.702 * x)",
        "derivative": "s(1.702 * x) * (1 + 1.702 * x * (1 - s(1.702 * x)))",
        "torch": "x * torch.sigmoid(1.702 * x)",
    },
    "relu_squared": {
        "formula": "max(x, 0)^2",
        "derivative": "2 * max(x, 0)",
        "torch": "torch.square(F.relu(x))",
    },
    "softmax": {
        "formula": "y_i = exp(x_i - m) / sum_j exp(x_j - m) over each row along dim, m = max_j x_j",
        "derivative": "dy_i/dx_j = y_i * (delta_ij - y_j); backward from the output y: "
                      "dx_i = y_i * (g_i - sum_j g_j * y_j)",
    },
    "log_softmax": {
        "formula": "y_i = x_i - m - log(sum_j exp(x_j - m)) over each row along dim, m = max_j x_j",
        "derivative": "dy_i/dx_j = delta_ij - softmax(x)_j; backward from the output y: "
                      "dx_i = g_i - exp(y_i) * sum_j g_j",
    },
    "softmin": {
        "formula": "softmax(-x): y_i = exp(m - x_i) / sum_j exp(m - x_j) over each row along dim, m = min_j x_j",
        "derivative": "dy_i/dx_j = -y_i * (delta_ij - y_j); backward from the output y: "
                      "dx_i = -y_i * (g_i - sum_j g_j * y_j)",
    },
    "prelu": {
        "formula": "x for x > 0, w * x for x <= 0; w = weight[c] for channel c (dim 1), or weight[0] for all",
        "derivative": "d/dx: 1 for x > 0, w for x <= 0; d/dw: x for x <= 0, 0 for x > 0, "
                      "summed over every element of the channel",
    },
    "learnable_swish": {
        "formula": "x * s(w * x); w = weight[c] for channel c (dim 1), or weight[0] for all",
        "derivative": "d/dx: s(w * x) * (1 + w * x * (1 - s(w * x))); d/dw: x^2 * s(w * x) * (1 - s(w * x)), "
                      "summed over every element of the channel",
        "torch": "x * torch.sigmoid(weight * x)",
        "module": "fusedact.nn.Swish(beta=1.0, learnable=True)",
    },
    "rrelu": {
        "formula": "x for x > 0, a * x for x <= 0; a = (lower + upper) / 2 in evaluation, "
                   "a ~ U(lower, upper) per element in training",
        "derivative": "1 for x > 0, a for x <= 0 (a at x = 0; the training slopes are kept for the backward)",
        "notes": "Training mode draws its slopes from torch's default generator, as torch.nn.functional.rrelu.",
    },
    "glu": {
        "formula": "a * s(b), (a, b) = the first and second halves of x along dim",
        "derivative": "d/da: s(b); d/db: a * s(b) * (1 - s(b))",
    },
    "swiglu": {
        "formula": "silu(a) * b = a * s(a) * b, (a, b) = the first and second halves of x along dim",
        "derivative": "d/da: b * s(a) * (1 + a * (1 - s(a))); d/db: silu(a)",
        "torch": "a, b = x.chunk(2, dim); F.silu(a) * b",
    },
    "geglu": {
        "formula": "gelu(a, approximate) * b, (a, b) = the first and second halves of x along dim",
        "derivative": "d/da: b * gelu'(a) (the gelu derivative above); d/db: gelu(a, approximate)",
        "torch": "a, b = x.chunk(2, dim); F.gelu(a, approximate=approximate) * b",
    },
    "reglu": {
        "formula": "relu(a) * b, (a, b) = the first and second halves of x along dim",
        "derivative": "d/da: b for a > 0, 0 for a <= 0; d/db: relu(a)",
        "torch": "a, b = x.chunk(2, dim); F.relu(a) * b",
    },
}

PAGES = {  # kind -> (file, title, introduction), in page order
    "unary": ("unary.md", "Unary pointwise activations",
              "y = f(x) for each element of the input, any shape and strides; the output has the "
              "input's shape, dtype and memory format."),
    "gated": ("gated.md", "Gated activations",
              "One packed input split in two halves along `dim` (default -1, size 2d): "
              "out = act(gate) * up, of size d along `dim`. The `.split` overload (Python: "
              "`<op>_split(gate, up)`) takes the two halves as separate tensors of one shape, for "
              "models that keep gate_proj and up_proj apart."),
    "rowwise": ("rowwise.md", "Row-wise activations",
                "y = f(x) normalized over each row along `dim`: every output element depends on its "
                "whole row (the elements of the input that differ only in their index along `dim`). "
                "`X(input, dim, dtype=None)`, torch's `input.softmax(dim, dtype)`: `dtype`, if given, "
                "casts the input first (recorded by autograd) and the op runs in that dtype. The output "
                "has the input's shape and is contiguous. `fusedact.functional` and `fusedact.nn` take "
                "`dim=None` as torch.nn.functional and torch.nn do: torch's deprecated implicit dim "
                "(0 for 0-, 1- and 3-dim inputs, else 1) with torch's UserWarning. The plots show the first "
                "component of op([x, 0]) over a row of two (softmax: sigmoid(x)) and its derivative in x."),
    "weighted": ("weighted.md", "Activations with a learned weight",
                 "y = f(x, weight) with `weight` of one element (shared) or of size(1) elements (one "
                 "per channel, dim 1 of the input); the weight's gradient is reduced per channel."),
    "random": ("random.md", "Randomized activations",
               "Deterministic in evaluation; in training they draw from torch's default generator."),
}

DTYPES = "float32, float64, float16, bfloat16 (float16/bfloat16 computed in float32, rounded once)"
DEVICES = "CPU; CUDA when the extension is built with CUDA"
HEADER = "<!-- Generated by `python -m fusedact docs --out docs` from python/fusedact/_docs.py; do not edit. -->"
IMAGE_DIR = "images"


def _torch_counterpart(spec: OpSpec) -> str:
    entry = OP_DOCS[spec.name]
    if "torch" in entry:
        text = f"`{entry['torch']}`"
        # A composition names no torch function or module of the op's own: say so.
        builtin = hasattr(F, spec.name) or isinstance(getattr(torch.nn, spec.module, None), type)
        note = entry.get("torch_note", "" if builtin else "no torch built-in")
        text += f" ({note})" if note else ""
    elif hasattr(F, spec.name):
        text = f"`torch.nn.functional.{spec.name}`"
    else:
        raise KeyError(f"fusedact._docs: OP_DOCS[{spec.name!r}] needs a 'torch' entry: "
                       f"torch.nn.functional has no {spec.name!r}")
    module = getattr(torch.nn, spec.module, None) if spec.module else None
    if isinstance(module, type):
        text += f", module `torch.nn.{spec.module}`"
    return text


def _signature(obj) -> str:
    """inspect.signature(obj) without annotations: `(input, lower=0.125, ...)`."""
    sig = inspect.signature(obj)
    params = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
    return str(sig.replace(parameters=params, return_annotation=inspect.Signature.empty))


def _python_api(spec: OpSpec) -> str:
    calls = [f"`fusedact.functional.{spec.name}{_signature(getattr(_FA, spec.name))}`"]
    if spec.kind == "gated":
        calls.append(f"`fusedact.functional.{spec.name}_split{_signature(getattr(_FA, spec.name + '_split'))}`")
    if spec.module:
        calls.append(f"module `fusedact.nn.{spec.module}{_signature(getattr(_fnn, spec.module))}`")
    elif "module" in OP_DOCS[spec.name]:
        calls.append(f"module `{OP_DOCS[spec.name]['module']}`")
    return "; ".join(calls)


def _parameters(spec: OpSpec) -> str:
    if spec.kind == "rowwise":
        return ("`dim` (required by the op; `dim=None` in fusedact.functional / fusedact.nn: torch's "
                "deprecated implicit dim), `dtype=None` (a floating dtype to cast the input to first; "
                "the output has that dtype)")
    if spec.kind == "weighted":
        return "`weight`, a tensor of 1 element (shared) or size(1) elements (one per channel)"
    if not spec.params:
        return "`dim=-1`" if spec.kind == "gated" else "none"
    parts = []
    for name, value in spec.params.items():
        text = f"`{name}` (required; e.g. {value!r})" if name in spec.required_params else f"`{name}={value!r}`"
        others = []
        for ps in spec.param_sets:
            if name in ps and ps[name] != value and ps[name] not in others:
                others.append(ps[name])
        if others:
            text += f" (also tested: {', '.join(repr(v) for v in others)})"
        parts.append(text)
    return ", ".join(parts) + (", `dim=-1`" if spec.kind == "gated" else "")


def _integer_output(spec: OpSpec) -> Optional[torch.dtype]:
    """The output dtype of the built op on int64 input (int64: relu, relu6, hardtanh,
    threshold; the default float dtype: sigmoid, tanh, softsign, tanhshrink), None if it
    rejects integers, as torch."""
    if spec.kind not in ("unary", "random"):
        return None
    try:
        return registry.call(spec, torch.tensor([-2, 0, 3]), **spec.params).dtype
    except (RuntimeError, TypeError, ValueError):
        return None


def _accepts_integers(spec: OpSpec) -> bool:
    """Whether the built op keeps integer input integer (as torch's relu, relu6, hardtanh, threshold)."""
    return _integer_output(spec) == torch.int64


def _promotes_integers(spec: OpSpec) -> bool:
    """Whether the built op computes integer input in the default float dtype (as torch's sigmoid, ...)."""
    out = _integer_output(spec)
    return out is not None and out.is_floating_point


def _accepts_complex(spec: OpSpec) -> bool:
    """Whether the built op takes complex input (as torch's sigmoid, tanh, silu, softsign, tanhshrink)."""
    if spec.kind != "unary":
        return False
    try:
        return registry.call(spec, torch.tensor([1 + 1j]), **spec.params).is_complex()
    except (RuntimeError, TypeError, ValueError):
        return False


def _inplace(spec: OpSpec) -> str:
    if not spec.inplace:
        return "none (torch.nn has no inplace= for this op)"
    text = f"`torch.ops.fusedact.{spec.name}_`, `fusedact.functional.{spec.name}(..., inplace=True)`"
    if spec.module:
        text += f", `fusedact.nn.{spec.module}(..., inplace=True)`"
    if spec.inplace_grad_from_result:
        text += f"; its backward reads the result (`{spec.name}_result_backward`), as torch's does"
    return text


def _backward(spec: OpSpec) -> str:
    if hasattr(torch.ops.fusedact, spec.name + "_backward"):
        name = spec.name + "_backward"
        source = "the forward output, as torch's" if spec.grad_from_output else "the forward input"
    else:  # rrelu: the slopes drawn in the forward are the backward's "noise" input
        name = spec.name + "_with_noise_backward"
        source = "the forward input and the slopes the forward drew"
    return f"`fusedact::{name}`, from {source}; a registered differentiable op, so double backward works"


def _notes(spec: OpSpec) -> List[str]:
    notes = []
    if spec.kind == "gated":
        if spec.gated_half == "first":
            notes.append("The activation is on the FIRST half (Llama packed gate_up / vLLM silu_and_mul "
                         "convention): gate = x[..., :d], up = x[..., d:].")
        else:
            notes.append("torch's convention: the activation (sigmoid) is on the SECOND half: "
                         "out = x[..., :d] * sigmoid(x[..., d:]), as torch.nn.functional.glu.")
    kinks = ", ".join(f"{k:g}" for k in spec.kinks_at({}))
    if kinks and callable(spec.kinks):  # kinks that move with the parameters
        shown = ", ".join(f"{k}={v!r}" for k, v in spec.params.items())
        notes.append(f"Not differentiable where the formula switches branch (x = {kinks} for {shown}); "
                     "the derivative there takes torch's value, given above.")
    elif kinks:
        notes.append(f"Not differentiable at x = {kinks}; the derivative there takes torch's value, given above.")
    if spec.kind == "rowwise":
        notes += [
            "Each row is shifted by its maximum before exp (float16/bfloat16 computed in float32): "
            "a row of all -inf gives NaN, and +inf and NaN propagate, as torch's.",
            "A 0-dim input is a row of one element (dim 0 or -1): "
            + ("softmax and softmin give 1, log_softmax 0." if spec.name != "log_softmax" else "log_softmax gives 0."),
            "Integer and bool inputs run with a floating `dtype=` only, as in torch; without one the "
            "error names the op and `input`.",
            "Under CUDA autocast without `dtype=`, runs in float32 (torch's policy for "
            "softmax, log_softmax and softmin).",
        ]
    if spec.composite:
        notes.append("The tests compare with a composition of torch ops, which rounds each "
                     "intermediate in float16/bfloat16; fusedact rounds once, so results in those types "
                     "can differ from the composition's by about one rounding.")
    if "notes" in OP_DOCS[spec.name]:
        notes.append(OP_DOCS[spec.name]["notes"])
    return notes


def _schemas(spec: OpSpec) -> List[str]:
    return [str(op._schema) for op in registry.overloads(spec)]


def op_section(spec: OpSpec) -> List[str]:
    entry = OP_DOCS[spec.name]
    dtypes = DTYPES + ("; integer types too, as torch" if _accepts_integers(spec) else "")
    if _promotes_integers(spec):
        dtypes += "; integer input is computed in the default float dtype, as torch"
    if _accepts_complex(spec):
        dtypes += "; complex input too, as torch (computed with ATen's complex ops)"
    if spec.kind == "rowwise":
        dtypes += "; with `dtype=`, any input dtype (integers and bool included) cast to that floating dtype"
    lines = [
        f"## {spec.name}",
        "",
        spec.doc,
        "",
        f"![{spec.name} and its derivative: fusedact solid, torch dashed]({IMAGE_DIR}/{spec.name}.png)",
        "",
        f"- **Formula:** `{entry['formula']}`",
        f"- **Derivative:** `{entry['derivative']}`",
        f"- **torch counterpart:** {_torch_counterpart(spec)}",
        f"- **Python:** {_python_api(spec)}",
        f"- **Parameters:** {_parameters(spec)}",
        f"- **In-place:** {_inplace(spec)}",
        f"- **Backward:** {_backward(spec)}",
        f"- **dtypes:** {dtypes}",
        f"- **Devices:** {DEVICES}",
    ]
    notes = _notes(spec)
    if notes:
        lines += ["- **Notes:**"] + [f"  - {n}" for n in notes]
    lines += ["", "Registered operators:", "", "```text"] + _schemas(spec) + ["```", ""]
    return lines


def _check_tables() -> None:
    names = {spec.name for spec in OPS}
    missing = sorted(names - set(OP_DOCS))
    extra = sorted(set(OP_DOCS) - names)
    if missing or extra:
        raise KeyError(f"fusedact._docs: OP_DOCS is out of step with the registry: missing {missing}, "
                       f"not in the registry {extra}")
    for name, entry in OP_DOCS.items():
        for key in ("formula", "derivative"):
            if not entry.get(key):
                raise KeyError(f"fusedact._docs: OP_DOCS[{name!r}] has no {key!r}")
    kinds = sorted({spec.kind for spec in OPS} - set(PAGES))
    if kinds:
        raise KeyError(f"fusedact._docs: no page for the op kinds {kinds}; add them to PAGES")


def pages() -> Dict[str, str]:
    """{file name: markdown text} of every page, index.md included."""
    _check_tables()
    out: Dict[str, str] = {}
    index_rows = []
    for kind, (file, title, intro) in PAGES.items():
        specs = [spec for spec in OPS if spec.kind == kind]
        if not specs:
            continue
        lines = [HEADER, "", f"# {title}", "", intro, "", "Conventions shared by every op: [index](index.md).", ""]
        lines += [", ".join(f"[{s.name}](#{s.name})" for s in specs), ""]
        for spec in specs:
            lines += op_section(spec)
        out[file] = "\n".join(lines).rstrip("\n") + "\n"
        index_rows.append(f"| [{title}]({file}) | {', '.join(f'[{s.name}]({file}#{s.name})' for s in specs)} |")
    out["index.md"] = "\n".join(_index_lines(index_rows)) + "\n"
    return out


def _index_lines(rows: List[str]) -> List[str]:
    return [
        HEADER,
        "",
        "# fusedact op reference",
        "",
        "Every op is a torch operator `torch.ops.fusedact.<op>` with a hand-written backward, "
        "wrapped by `fusedact.functional.<op>` (torch.nn.functional's signature) and a "
        "`fusedact.nn` module (torch.nn's), and checked against the torch counterpart named on "
        "its page. Each page gives the formula, the derivative, the parameters with their "
        "defaults, the in-place form, the registered schemas and a plot of the op and its "
        "derivative as computed by fusedact's kernels (solid) over torch's (dashed).",
        "",
        "| family | ops |",
        "|:---|:---|",
        *rows,
        "",
        "## Conventions shared by every op",
        "",
        f"- dtypes: {DTYPES}. Integer input gets torch's error, except for the ops torch "
        f"itself runs on integers ({', '.join(s.name for s in OPS if _accepts_integers(s))}) "
        f"and those it computes in the default float dtype "
        f"({', '.join(s.name for s in OPS if _promotes_integers(s))}). Complex input runs where "
        f"torch takes it ({', '.join(s.name for s in OPS if _accepts_complex(s))}), with ATen's "
        f"complex ops; the other ops reject it, as torch.",
        f"- Devices: {DEVICES}.",
        "- Results match torch.nn.functional on the same device within torch.testing.assert_close's "
        "default tolerances, NaN, ±inf and -0.0 included; where torch's CPU and CUDA kernels "
        "disagree, its CUDA kernel is the reference. Derivatives at kinks take torch's values.",
        "- Any strides; contiguous and channels_last inputs run without a copy and the output "
        "keeps the input's memory format (the row-wise ops return a contiguous output); "
        "0-element tensors return at once; 64-bit indexing.",
        "- Every op `X` has a backward op `X_backward` that is itself a registered differentiable "
        "op (double backward); `torch.compile(..., fullgraph=True)` traces them through their "
        "Meta kernels.",
        "- Bad input raises RuntimeError / ValueError / TypeError naming the op and the argument.",
        "",
        "## Regenerating",
        "",
        "```sh",
        "PYTHONPATH=python python -m fusedact docs --out docs          # these pages and docs/images/",
        "PYTHONPATH=python python -m fusedact plot --ops gelu,silu,mish --out plots --range=-6,6",
        "```",
        "",
        "tests/python/test_docs.py fails when these pages differ from a regeneration.",
    ]


def generate(out, images: bool = True, image_ops: Optional[List[str]] = None) -> List[Path]:
    """Write the pages into `out` and, with images=True, the plots of `image_ops` (default:
    every op, as the pages link them all) into `out`/images. Returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in pages().items():
        path = out / name
        path.write_text(text)
        written.append(path)
    if images:
        from .plots import plot_op

        (out / IMAGE_DIR).mkdir(exist_ok=True)
        for name in image_ops if image_ops is not None else [spec.name for spec in OPS]:
            written.append(plot_op(name, out / IMAGE_DIR / f"{name}.png"))
    return written
