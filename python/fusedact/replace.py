"""Swap a model's activation modules for their fusedact.nn counterparts, in place.

    report = fusedact.replace_activations(model)
    print(report)            # what was swapped, what was left alone and why
    model = report.model     # the same object, unless `model` itself was an activation

Which modules are swapped:

- torch.nn classes that fusedact.nn has a module of the same name for (GELU, SiLU, ...,
  PReLU, RReLU, GLU, Softmax, LogSoftmax, Softmin), the exact class only: the new module is
  built from the old one's
  attributes (negative_slope, alpha, inplace, dim, ...), takes over its parameters (PReLU's
  `weight` stays the very same Parameter object, so optimizers and tied references keep
  working) and its train/eval mode.
- Everything else that looks like an activation is matched by its formula, not its name:
  Hugging Face transformers' activation classes (GELUActivation, NewGELUActivation,
  FastGELUActivation, GELUTanh, QuickGELUActivation, SiLUActivation, ...), subclasses of
  the classes above, and classes of the same names defined elsewhere (a model's own `SiLU`
  or `QuickGELU`). Such a module must be parameter-free; it is swapped only when its output
  on a float64 probe (both signs, kinks, far tails) equals the fusedact module's within
  PROBE_RTOL / PROBE_ATOL. transformers itself is never imported: classes are recognised
  by name along their MRO and the probe decides. The row-wise ones (Softmax, LogSoftmax,
  Softmin) are probed at ranks 2, 3 and 4, so that their `dim` (or torch's implicit dim for
  dim=None, which depends on the input's rank) is pinned down.
- Modules with hooks are left alone (the hooks would be lost), and so are activations
  fusedact has no op for (Softmax2d, ClippedGELUActivation, ...): both are reported in
  `skipped` with the reason. Modules that are no activation are not reported.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import inspect
import warnings
from collections import Counter
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from . import nn as fnn
from .registry import OPS

__all__ = ["replace_activations", "ReplaceReport", "Swapped", "Skipped"]

# ------------------------------------------------------------------------------ the probe

# Two formulas are "the same" when they agree this closely in float64. Rounding differences
# of one formula written two ways are ~1e-15; truncated constants (FastGELU's 0.7978845608
# for sqrt(2/pi)) move the output by ~1e-12. The closest distinct formulas we know differ
# far more: erf- vs tanh-GELU by 4.7e-4, silu vs x*sigmoid(1.0001x) by 4.4e-5.
PROBE_RTOL = 1e-8
PROBE_ATOL = 1e-10


def probe_input() -> torch.Tensor:
    """(2, 262) float64 CPU tensor: -12..12 in steps of 0.1 (the kinks 0, +-0.5, +-1, +-3, 6
    included), +-1e-3, and the tails +-19.5 .. +-40 (softplus' threshold, saturated sigmoids).
    The second row is the first reversed, so a gated module halving dim 0 or -1 sees both
    signs in each half."""
    row = torch.cat([
        torch.linspace(-12.0, 12.0, 241, dtype=torch.float64),
        torch.tensor([-40.0, -25.0, -20.5, -19.5, -15.0, -1e-3, 1e-3, 15.0, 19.5, 20.5, 25.0, 40.0],
                     dtype=torch.float64),
        torch.tensor([0.25, -0.25, 2.9, -2.9, 5.9, -5.9, 7.0, -7.0, 1.7], dtype=torch.float64),
    ])
    return torch.stack([row, row.flip(0)])


def compare(out: object, ref: object) -> Tuple[bool, float]:
    """(out equals ref within PROBE_RTOL / PROBE_ATOL, max |out - ref|). NaN in the same
    places counts as equal; out that is no tensor of ref's shape differs by inf."""
    if not (isinstance(out, torch.Tensor) and isinstance(ref, torch.Tensor)) or out.shape != ref.shape:
        return False, float("inf")
    out, ref = out.detach().double(), ref.detach().double()
    same = torch.isclose(out, ref, rtol=PROBE_RTOL, atol=PROBE_ATOL, equal_nan=True)
    diff = torch.where(out.isnan() & ref.isnan(), 0.0, (out - ref).abs()).nan_to_num(nan=float("inf"))
    return bool(same.all()), float(diff.max()) if diff.numel() else 0.0


def _run_probe(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> object:
    # The warnings of a probe run are ours, not the user's (e.g. the implicit-dim deprecation
    # of a Softmax(dim=None) run on the probe).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(x.clone())  # a clone: in-place modules overwrite their input


def _probes(matched: str) -> List[torch.Tensor]:
    """The probe inputs for a class matched by the name `matched`: probe_input(), and for the
    row-wise activations the same values at ranks 2, 3 and 4: (2, 262), (2, 2, 131) and
    (2, 2, 2, 131) (the second half flipped), so that a module's `dim` is pinned down (on
    the 2-dim probe alone dim=1 and dim=-1 agree, and torch's implicit dim of dim=None is 1
    for 2 dims, 0 for 3) and a module whose dim needs more than 2 dims still runs on some."""
    x = probe_input()
    if matched not in _ROWWISE:
        return [x]
    x3 = x.reshape(2, 2, 131)
    return [x, x3, torch.stack([x3, x3.flip(-1)])]


# --------------------------------------------------------------------------------- report


class Swapped(NamedTuple):
    name: str  # qualified name, as in model.named_modules() ("" is the model itself)
    old: type
    new: type


class Skipped(NamedTuple):
    name: str
    cls: type
    reason: str


def class_name(cls: type) -> str:
    """'torch.nn.GELU' rather than 'torch.nn.modules.activation.GELU' where torch.nn
    exports the class; 'module.QualName' otherwise."""
    if getattr(nn, cls.__name__, None) is cls:
        return f"torch.nn.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def _display(name: str) -> str:
    return name if name else "<root>"


def _examples(names: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(_display(n) for n in names[:limit])
    return shown + (f", ... (+{len(names) - limit})" if len(names) > limit else "")


def format_report(title: str, done_label: str, done: Sequence[Tuple[str, str]],
                  skipped: Sequence[Skipped]) -> str:
    """Grouped summary: one line per (what was done) with a count and example names, one
    line per (class, reason) left alone. `done` holds (qualified name, description)."""
    lines = [f"{title}: {len(done)} {done_label}, {len(skipped)} skipped"]
    groups: Dict[str, List[str]] = {}
    for name, what in done:
        groups.setdefault(what, []).append(name)
    for what, names in groups.items():
        lines.append(f"  {done_label} {len(names)} x {what} [{_examples(names)}]")
    reasons: Dict[Tuple[str, str], List[str]] = {}
    for entry in skipped:
        reasons.setdefault((class_name(entry.cls), entry.reason), []).append(entry.name)
    for (cls, reason), names in reasons.items():
        lines.append(f"  skipped {len(names)} x {cls}: {reason} [{_examples(names)}]")
    return "\n".join(lines)


@dataclasses.dataclass
class ReplaceReport:
    """What replace_activations did. `model` is the model to use from now on: the object
    passed in (changed in place), or the new module when that object was itself an
    activation (which cannot be replaced in place)."""

    swapped: List[Swapped] = dataclasses.field(default_factory=list)
    skipped: List[Skipped] = dataclasses.field(default_factory=list)
    model: Optional[nn.Module] = dataclasses.field(default=None, repr=False)

    def counts(self) -> Counter:
        """{(old class, new class): number of modules swapped}."""
        return Counter((s.old, s.new) for s in self.swapped)

    def summary(self) -> str:
        done = [(s.name, f"{class_name(s.old)} -> {class_name(s.new)}") for s in self.swapped]
        return format_report("replace_activations", "swapped", done, self.skipped)

    __str__ = summary


# ------------------------------------------------------------------------------ the rules

# torch's factory kwargs (PReLU's device, dtype) are no attributes of the module; the new
# module takes the old one's parameters themselves instead.
_FACTORY_KWARGS = ("device", "dtype")


def _from_attributes(cls: type) -> Callable[[nn.Module], nn.Module]:
    """Builder of a `cls` from a module's attributes, read by the names of cls' constructor
    parameters (fusedact.nn uses torch's attribute names); a missing attribute takes cls'
    default."""
    names = [p for p in inspect.signature(cls).parameters if p not in _FACTORY_KWARGS]

    def build(module: nn.Module) -> nn.Module:
        return cls(**{n: getattr(module, n) for n in names if hasattr(module, n)})

    build.__qualname__ = f"fusedact.nn.{cls.__name__}"
    return build


def _fixed(cls: type, **kwargs) -> Callable[[nn.Module], nn.Module]:
    """Builder of cls(**kwargs) whatever the module's attributes (for classes whose
    attributes are not fusedact's parameters, e.g. transformers' NewGELUActivation)."""
    def build(module: nn.Module) -> nn.Module:
        return cls(**kwargs)

    build.__qualname__ = f"fusedact.nn.{cls.__name__}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    return build


# Every fusedact.nn module, by name: the torch.nn class of that name is swapped as it is; a
# class of that name elsewhere (or a subclass) is probed first.
_FUSEDACT_CLASSES: Dict[str, type] = {name: getattr(fnn, name) for name in fnn.__all__}
_FUSEDACT_TYPES = tuple(_FUSEDACT_CLASSES.values())
_TORCH_EXACT = frozenset(
    getattr(nn, name)
    for name in _FUSEDACT_CLASSES
    if isinstance(getattr(nn, name, None), type) and issubclass(getattr(nn, name), nn.Module)
)

# fusedact.nn's row-wise modules (torch.nn's names), probed at several ranks by _probes().
_ROWWISE = frozenset(spec.module for spec in OPS if spec.kind == "rowwise")

_GELU = _fixed(fnn.GELU, approximate="none")
_GELU_TANH = _fixed(fnn.GELU, approximate="tanh")

# Builders to try, in order, per class name (first probe match wins).
_BUILDERS: Dict[str, Tuple[Callable[[nn.Module], nn.Module], ...]] = {
    name: (_from_attributes(cls),) for name, cls in _FUSEDACT_CLASSES.items()
}
_BUILDERS.update({
    # transformers.activations (names across versions; PytorchGELUTanh became GELUTanh).
    "GELUActivation": (_GELU,),  # F.gelu, or its erf formula with use_gelu_python=True
    "NewGELUActivation": (_GELU_TANH,),
    "FastGELUActivation": (_GELU_TANH,),
    "AccurateGELUActivation": (_GELU_TANH,),
    "GELUTanh": (_GELU_TANH,),
    "PytorchGELUTanh": (_GELU_TANH,),
    "QuickGELUActivation": (_fixed(fnn.QuickGELU),),
    "SiLUActivation": (_fixed(fnn.SiLU),),
    "MishActivation": (_fixed(fnn.Mish),),
    "ReLUSquaredActivation": (_fixed(fnn.ReLUSquared),),
})

# Activations we recognise but have no op for: reported, never probed.
_NO_COUNTERPART = "fusedact has no op for this activation"
_UNSUPPORTED: Dict[str, str] = {
    "Softmax2d": _NO_COUNTERPART + " (softmax over the channels of a 3- or 4-dim input)",
    "ClippedGELUActivation": _NO_COUNTERPART + " (gelu clipped to [min, max])",
    "LaplaceActivation": _NO_COUNTERPART + " (0.5 * (1 + erf((x - mu) / (sigma * sqrt 2))))",
    "SqrtSoftplusActivation": _NO_COUNTERPART + " (sqrt(softplus(x)))",
    "XIELUActivation": _NO_COUNTERPART + " (xIELU, with learned alpha_p/alpha_n)",
    "LinearActivation": "the identity: nothing to fuse",
}

_HOOK_DICTS = (
    "_forward_pre_hooks", "_forward_hooks", "_backward_pre_hooks", "_backward_hooks",
    "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)


class _Skip(Exception):
    """A module cannot be swapped; the message is the report's reason."""


def _rule(cls: type) -> Optional[Tuple[str, object]]:
    """(class name matched along cls' MRO, builders or an unsupported reason), or None for a
    module that is no activation we know."""
    for klass in cls.__mro__:
        if klass is nn.Module:
            break
        if klass.__name__ in _BUILDERS:
            return klass.__name__, _BUILDERS[klass.__name__]
        if klass.__name__ in _UNSUPPORTED:
            return klass.__name__, _UNSUPPORTED[klass.__name__]
    return None


def _adopt_state(old: nn.Module, new: nn.Module) -> None:
    """Give `new` the very Parameter and buffer objects of `old` (same names)."""
    for kind in ("_parameters", "_buffers"):
        theirs, ours = getattr(old, kind), getattr(new, kind)
        if set(theirs) != set(ours):
            raise _Skip(f"its {kind[1:]} {sorted(theirs)} differ from {type(new).__name__}'s {sorted(ours)}")
        for key, value in theirs.items():
            if value is not None and ours[key] is not None and value.shape != ours[key].shape:
                raise _Skip(f"{kind[1:-1]} {key!r} has shape {tuple(value.shape)}, "
                            f"{type(new).__name__} expects {tuple(ours[key].shape)}")
            ours[key] = value


def _recognised(module: nn.Module) -> Optional[Tuple[str, object]]:
    """_rule() of the module's class; None for fusedact's own modules and non-activations."""
    return None if isinstance(module, _FUSEDACT_TYPES) else _rule(type(module))


def _convert(module: nn.Module, rule: Tuple[str, object]) -> nn.Module:
    """The fusedact module to put in place of `module`, a recognised activation; raises
    _Skip(reason) when it cannot be swapped."""
    matched, builders = rule
    if isinstance(builders, str):
        raise _Skip(builders)
    hooks = [h.strip("_") for h in _HOOK_DICTS if getattr(module, h, None)]
    if hooks:
        raise _Skip(f"it has hooks ({', '.join(hooks)}), which a new module would not keep")
    if type(module) in _TORCH_EXACT:  # torch's own class: its formula is known
        try:
            new = builders[0](module)
        except Exception as exc:
            raise _Skip(f"building the fusedact module failed: {type(exc).__name__}: {exc}") from None
        _adopt_state(module, new)
        return new.train(module.training)
    # Matched by name only: the formula decides.
    own = [kind for kind in ("_parameters", "_buffers", "_modules") if getattr(module, kind)]
    if own:
        raise _Skip(f"matched by name ({matched}) but holds {' and '.join(k[1:] for k in own)}; "
                    "only parameter-free activations are matched by formula")
    probes = _probes(matched)
    # Several probes (row-wise classes): one the module cannot run (a dim beyond its rank)
    # must fail for the fusedact module too; at least one must run.
    expected: List[object] = []
    for x in probes:
        try:
            expected.append(_run_probe(module, x))
        except Exception as exc:
            expected.append(exc)
    if all(isinstance(e, Exception) for e in expected):
        exc = expected[0]
        raise _Skip(f"running it on the float64 probe failed: {type(exc).__name__}: {exc}")
    tried = []
    for build in builders:
        try:
            new = build(module).train(module.training)
            same, diff = True, 0.0
            for x, ref in zip(probes, expected):
                if isinstance(ref, Exception):
                    try:
                        _run_probe(new, x)
                    except Exception:
                        continue  # fails where the module fails
                    same, diff = False, float("inf")
                    break
                same_x, diff_x = compare(_run_probe(new, x), ref)
                same, diff = same and same_x, max(diff, diff_x)
        except Exception as exc:
            tried.append(f"{build.__qualname__}: {type(exc).__name__}: {exc}")
            continue
        if same:
            return new
        tried.append(f"{build.__qualname__}: max |diff| {diff:.2g}")
    raise _Skip(f"matched by name ({matched}) but its formula is not fusedact's on the float64 probe "
                f"(rtol {PROBE_RTOL:g}, atol {PROBE_ATOL:g}; {'; '.join(tried)})")


# ------------------------------------------------------------------------------- filters

Filter = Union[None, str, type, Iterable[Union[str, type]]]


def selector(value: Filter, function: str, argument: str) -> Optional[Callable[[str, nn.Module], bool]]:
    """A predicate (qualified name, module) -> bool for an include/exclude argument, or None
    for None. Accepted: a str (an fnmatch glob on the qualified name; it also selects
    everything below a module it matches), a torch.nn.Module subclass (isinstance), or an
    iterable of those (any of them)."""
    if value is None:
        return None
    items = [value] if isinstance(value, (str, type)) else value
    try:
        items = list(items)
    except TypeError:
        items = [value]  # not iterable: reported below
    patterns, classes = [], []
    for item in items:
        if isinstance(item, str):
            patterns.append(item)
        elif isinstance(item, type) and issubclass(item, nn.Module):
            classes.append(item)
        else:
            hint = (f" (a module instance; pass its class {class_name(type(item))} or its qualified name)"
                    if isinstance(item, nn.Module) else "")
            raise TypeError(
                f"{function}: `{argument}` must be None, a str (glob pattern on qualified module "
                f"names), a torch.nn.Module subclass, or an iterable of them; got {item!r} of type "
                f"{type(item).__name__}{hint}"
            )
    classes_t = tuple(classes)

    def matches(name: str, module: nn.Module) -> bool:
        if classes_t and isinstance(module, classes_t):
            return True
        parts = name.split(".")
        # The module itself or any of its ancestors ("encoder" selects "encoder.0.act").
        prefixes = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
        return any(fnmatch.fnmatchcase(p, pat) for pat in patterns for p in prefixes)

    return matches


def filter_reason(name: str, module: nn.Module, include, exclude) -> Optional[str]:
    """Why the filters leave this module alone, or None when they select it."""
    if include is not None and not include(name, module):
        return "not selected by include"
    if exclude is not None and exclude(name, module):
        return "excluded by exclude"
    return None


def walk(module: nn.Module, prefix: str = ""):
    """(parent, key, qualified name, child) for every submodule, depth first, and every
    occurrence of a shared module (named_modules() lists a shared module once only). The
    consumer may replace parent._modules[key] meanwhile; the new module is not entered."""
    for key, child in list(module._modules.items()):
        if child is None:
            continue
        name = prefix + key
        yield module, key, name, child
        if module._modules.get(key) is child:
            yield from walk(child, name + ".")


# ---------------------------------------------------------------------------------- entry


def replace_activations(model: nn.Module, include: Filter = None, exclude: Filter = None) -> ReplaceReport:
    """Swap, in place, every activation module of `model` that fusedact.nn has a counterpart
    for; returns a ReplaceReport (`print(report)` for a summary).

    Args:
        model: any torch.nn.Module. Children of ModuleList, Sequential and ModuleDict are
            swapped like any attribute. A module shared by several parents is replaced by
            one new module everywhere it is selected, so sharing is kept.
        include: None (everything), or a str / torch.nn.Module subclass / iterable of them.
            A str is an fnmatch glob matched against the qualified name as listed by
            model.named_modules() (`*` also matches dots; the model itself is ""), and also
            selects everything below a module it matches: "encoder" or "layers.1*" select a
            subtree, "*.act" every module named act. A class selects its instances
            (isinstance), e.g. include=[torch.nn.GELU].
        exclude: the same forms; wins over include.

    Returns:
        ReplaceReport: `swapped` (qualified name, old class, new class), `skipped`
        (qualified name, class, reason) for every recognised activation left alone
        (filtered out, no fusedact op, hooks, formula mismatch, ...), and `model`.

    When `model` is itself a supported activation it cannot be swapped in place: it is left
    unchanged and the new module is returned as `report.model` (so
    `model = replace_activations(model).model` works in every case).

    Raises:
        TypeError: `model` is no torch.nn.Module, or include/exclude has another type.
    """
    fn = "fusedact.replace_activations"
    if not isinstance(model, nn.Module):
        raise TypeError(f"{fn}: `model` must be a torch.nn.Module; got {type(model).__name__}")
    include_fn = selector(include, fn, "include")
    exclude_fn = selector(exclude, fn, "exclude")
    report = ReplaceReport(model=model)
    # id(old module) -> its fusedact module, or the reason it stays; the old module is kept
    # alive by the entry so ids are not reused while we walk.
    decided: Dict[int, Tuple[nn.Module, object]] = {}

    def decide(name: str, module: nn.Module) -> Optional[nn.Module]:
        rule = _recognised(module)
        if rule is None:
            return None  # no activation, or already fusedact: not reported
        reason = filter_reason(name, module, include_fn, exclude_fn)  # before any probe runs
        if reason is None:
            if id(module) not in decided:
                try:
                    decided[id(module)] = (module, _convert(module, rule))
                except _Skip as skip:
                    decided[id(module)] = (module, str(skip))
            outcome = decided[id(module)][1]
            if not isinstance(outcome, str):
                report.swapped.append(Swapped(name, type(module), type(outcome)))
                return outcome
            reason = outcome
        report.skipped.append(Skipped(name, type(module), reason))
        return None

    root = decide("", model)
    if root is not None:
        report.model = root
        return report
    for parent, key, name, child in walk(model):
        new = decide(name, child)
        if new is not None:
            # _modules directly: the key of a Sequential/ModuleList/ModuleDict child is no
            # identifier, and a class' own __setattr__ (properties) should not interfere.
            parent._modules[key] = new
    return report
