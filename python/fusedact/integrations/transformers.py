"""Hugging Face transformers: one fused gated call per Llama-style MLP.

    from fusedact.integrations.transformers import patch_model, patched, unpatch

    report = patch_model(model)   # in place; print(report) says what and why not
    ...
    unpatch(model)                # or: with patched(model): ...

The MLPs of Llama, Mistral, Qwen2/Qwen3, Gemma, OLMo and their relatives compute

    down_proj(act_fn(gate_proj(x)) * up_proj(x))

and Phi-3 packs gate and up into one projection,

    gate, up = gate_up_proj(x).chunk(2, dim=-1);  down_proj(up * activation_fn(gate)).

patch_model gives each such module an instance-level `forward` that calls one fused op on
the same projections: swiglu for silu, geglu(approximate='none') for exact gelu,
geglu(approximate='tanh') for gelu_pytorch_tanh / gelu_new / gelu_fast, reglu for relu,
e.g. down_proj(fusedact.functional.swiglu_split(gate_proj(x), up_proj(x))). The
activation's output is never materialised, and backward keeps gate and up only (eager
also keeps act(gate)). The projections are still called as modules, so LoRA adapters,
quantized linears and hooks on them keep working; parameters, state_dict, the module's
class and its repr do not change. The patch is not saved with the model (pickling a
patched model gives an unpatched one); copy.deepcopy keeps it.

Matched by formula, not by name: a module qualifies by its attribute names, then
1. its activation, run on fusedact.replace's float64 probe, must equal the fused op's
   activation (PROBE_RTOL / PROBE_ATOL), and
2. its class' own forward, run in float64 on a shadow of the module whose projections are
   tiny random Linear layers (its activation and other attributes as they are), must equal
   the fused forward on the same shadow.
No weight is copied and nothing runs on the model's device. transformers itself is not
imported: any module that follows these names and formulas is patched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple

import torch
from torch import nn

from .. import functional as FA
from ..registry import OPS, OpSpec
from ..replace import Filter, Skipped, class_name, compare, filter_reason, format_report, probe_input, selector

__all__ = ["patch_model", "unpatch", "patched", "PatchReport", "Patched"]

# Gated ops that apply their activation to the gate (the first half when packed), each with
# every parameter set (geglu's approximate='none' and 'tanh'); torch's glu gates the other way.
_CANDIDATES: Tuple[Tuple[OpSpec, Dict[str, object]], ...] = tuple(
    (spec, dict(params))
    for spec in OPS
    if spec.kind == "gated" and spec.gated_half == "first"
    for params in spec.param_sets
)

# Probe sizes of the shadow MLP: hidden 4, intermediate 6 (any small sizes would do).
_H, _I = 4, 6
_MARK = "_fusedact_gated_op"  # attribute of our forward functions: the op's description


def _describe(spec: OpSpec, params: Dict[str, object]) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in params.items())
    return f"{spec.name}({args})" if args else spec.name


@dataclasses.dataclass(frozen=True)
class _Layout:
    formula: str
    projections: Dict[str, Tuple[int, int]]  # submodule name -> (in, out) in the probe
    act: str  # attribute holding the activation
    # (spec, params) -> forward(self, x) calling the fused op
    make_forward: Callable[[OpSpec, Dict[str, object]], Callable]

    def matches(self, module: nn.Module) -> bool:
        return all(isinstance(module._modules.get(p), nn.Module) for p in self.projections) and callable(
            getattr(module, self.act, None)
        )


def _split_forward(spec: OpSpec, params: Dict[str, object]) -> Callable:
    op = getattr(FA, spec.name + "_split")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(op(self.gate_proj(x), self.up_proj(x), **params))

    return forward


def _packed_forward(spec: OpSpec, params: Dict[str, object]) -> Callable:
    op = getattr(FA, spec.name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The first half is the gate, as Phi-3's chunk(2, dim=-1).
        return self.down_proj(op(self.gate_up_proj(x), **params, dim=-1))

    return forward


_LAYOUTS = (
    _Layout(
        formula="down_proj(act_fn(gate_proj(x)) * up_proj(x))",
        projections={"gate_proj": (_H, _I), "up_proj": (_H, _I), "down_proj": (_I, _H)},
        act="act_fn",
        make_forward=_split_forward,
    ),
    _Layout(
        formula="down_proj(up * activation_fn(gate)) with gate, up = gate_up_proj(x).chunk(2, -1)",
        projections={"gate_up_proj": (_H, 2 * _I), "down_proj": (_I, _H)},
        act="activation_fn",
        make_forward=_packed_forward,
    ),
)


class Patched(NamedTuple):
    name: str  # qualified name, as in model.named_modules()
    cls: type
    op: str  # e.g. "swiglu", "geglu(approximate='tanh')"


@dataclasses.dataclass
class PatchReport:
    """What patch_model did: `patched` (qualified name, class, fused op) and `skipped`
    (qualified name, class, reason) for every MLP-shaped module left alone."""

    patched: List[Patched] = dataclasses.field(default_factory=list)
    skipped: List[Skipped] = dataclasses.field(default_factory=list)
    modules: List[nn.Module] = dataclasses.field(default_factory=list, repr=False)  # the patched ones

    def summary(self) -> str:
        done = [(p.name, f"{class_name(p.cls)} -> {p.op}") for p in self.patched]
        return format_report("patch_model", "patched", done, self.skipped)

    __str__ = summary


def _our_op(module: nn.Module) -> Optional[str]:
    """The fused op of our instance-level forward, or None when the module has none."""
    forward = vars(module).get("forward")
    return getattr(getattr(forward, "__func__", None), _MARK, None)


def _probe_linear(n_in: int, n_out: int, generator: torch.Generator) -> nn.Linear:
    # skip_init and a private generator: the caller's global RNG stream is left untouched.
    linear = nn.utils.skip_init(nn.Linear, n_in, n_out, dtype=torch.float64)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(n_out, n_in, dtype=torch.float64, generator=generator) / math.sqrt(n_in))
        linear.bias.copy_(torch.randn(n_out, dtype=torch.float64, generator=generator) * 0.1)
    return linear


def _shadow(module: nn.Module, layout: _Layout, generator: torch.Generator) -> nn.Module:
    """An object of module's class sharing its attributes, with its own submodule dicts in
    which the projections are small float64 Linear layers."""
    shadow = object.__new__(type(module))
    shadow.__dict__.update(vars(module))
    shadow.__dict__.update(_modules=dict(module._modules), _parameters=dict(module._parameters),
                           _buffers=dict(module._buffers))
    shadow.__dict__.pop("forward", None)
    for name, (n_in, n_out) in layout.projections.items():
        shadow._modules[name] = _probe_linear(n_in, n_out, generator)
    return shadow


def _fused_forward(module: nn.Module, layout: _Layout) -> Tuple[Callable, str]:
    """(fused forward function, op description) for a module of this layout; raises
    ValueError(reason) when it does not qualify."""
    mine = _our_op(module)
    if mine is not None:
        raise ValueError(f"already patched ({mine})")
    if "forward" in vars(module):
        raise ValueError("its forward is overridden on the instance (e.g. by accelerate hooks)")
    act = getattr(module, layout.act)
    if isinstance(act, nn.Module) and (any(True for _ in act.parameters()) or any(True for _ in act.buffers())):
        raise ValueError(f"its {layout.act} ({class_name(type(act))}) holds parameters or buffers")
    x = probe_input()
    try:
        with torch.no_grad():
            y = act(x.clone())
    except Exception as exc:
        raise ValueError(f"running its {layout.act} on the float64 probe failed: {type(exc).__name__}: {exc}") from None
    ones = torch.ones_like(x)
    # The gated reference with up = 1 is the activation alone (multiplying by 1 is exact).
    found = [(s, p) for s, p in _CANDIDATES if compare(y, s.reference(x, ones, **p))[0]]
    if not found:
        names = ", ".join(_describe(s, p) for s, p in _CANDIDATES)
        raise ValueError(f"its {layout.act} ({class_name(type(act))}) is the activation of none of the "
                         f"fused gated ops ({names})")
    spec, params = found[0]
    forward = layout.make_forward(spec, params)
    generator = torch.Generator().manual_seed(0)
    shadow = _shadow(module, layout, generator)
    h = torch.randn(2, 3, _H, dtype=torch.float64, generator=generator) * 3.0
    try:
        with torch.no_grad():
            expected = type(module).forward(shadow, h)
            same, diff = compare(forward(shadow, h), expected)
    except Exception as exc:
        raise ValueError(f"running its forward on a float64 probe failed: {type(exc).__name__}: {exc}") from None
    if not same:
        raise ValueError(f"its forward is not {layout.formula} (float64 probe with "
                         f"{_describe(spec, params)}: max |diff| {diff:.2g})")
    description = _describe(spec, params)
    setattr(forward, _MARK, description)
    return forward, description


def patch_model(model: nn.Module, include: Filter = None, exclude: Filter = None) -> PatchReport:
    """Give every Llama-style MLP of `model` (see the module docstring) a forward that calls
    one fused fusedact gated op; in place. Returns a PatchReport (`print(report)`).

    include / exclude select modules as in fusedact.replace_activations: a glob on the
    qualified name (also selecting everything below), a torch.nn.Module subclass, or an
    iterable of them; exclude wins. Modules that have the attribute names of an MLP but do
    not qualify (an activation with no fused gated op, another formula, a forward already
    overridden on the instance, filtered out) are listed in `skipped` with the reason.
    """
    fn = "fusedact.integrations.transformers.patch_model"
    if not isinstance(model, nn.Module):
        raise TypeError(f"{fn}: `model` must be a torch.nn.Module; got {type(model).__name__}")
    include_fn, exclude_fn = selector(include, fn, "include"), selector(exclude, fn, "exclude")
    report = PatchReport()
    for name, module in model.named_modules():
        layout = next((lay for lay in _LAYOUTS if lay.matches(module)), None)
        if layout is None:
            continue
        reason = filter_reason(name, module, include_fn, exclude_fn)
        if reason is None:
            try:
                forward, description = _fused_forward(module, layout)
            except ValueError as exc:
                reason = str(exc)
        if reason is not None:
            report.skipped.append(Skipped(name, type(module), reason))
            continue
        module.forward = types.MethodType(forward, module)
        report.patched.append(Patched(name, type(module), description))
        report.modules.append(module)
    return report


def _unpatch_module(module: nn.Module) -> bool:
    if _our_op(module) is None:
        return False
    del module.forward  # the instance attribute: the class' forward applies again
    return True


def unpatch(model: nn.Module) -> List[str]:
    """Undo patch_model on every module of `model`; returns the qualified names restored."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"fusedact.integrations.transformers.unpatch: `model` must be a torch.nn.Module; "
                        f"got {type(model).__name__}")
    return [name for name, module in model.named_modules() if _unpatch_module(module)]


@contextlib.contextmanager
def patched(model: nn.Module, include: Filter = None, exclude: Filter = None) -> Iterator[PatchReport]:
    """patch_model for the duration of a with block, yielding its report; on exit the
    modules this call patched are restored (others patched before stay patched)."""
    report = patch_model(model, include=include, exclude=exclude)
    try:
        yield report
    finally:
        for module in report.modules:
            _unpatch_module(module)
