"""Activation statistics recorded by forward hooks: dead units, saturation, mean/std, histograms.

    from fusedact.diagnostics import ActivationMonitor

    with ActivationMonitor(model) as monitor:      # hooks on every activation module
        for batch in loader:
            train_step(model, batch)
        print(monitor)                             # text table, one row per layer
        rows = monitor.report()                    # the same as a list of plain dicts
        monitor.plot("activations.png")            # one histogram per layer
    # leaving the block removed the hooks; the statistics stay readable

Which modules: every torch.nn and fusedact.nn module of an op in `fusedact.registry` (found by
type, subclasses included), or the modules named in `modules=`. Per layer (its qualified
name in `model.named_modules()`), over all the forward calls recorded since the last reset():

- mean, std (population, correction=0), min, max of the output elements. Each call adds
  sums of x - c and (x - c)^2 (c: the first call's mean, so |mean| >> std loses nothing),
  reduced in the output's precision by torch (cascade sums on CPU, trees on CUDA), to
  float64 accumulators: in float32 the mean is exact to ~1e-7 of the std, the std to ~1e-7
  relative, however many calls;
- a histogram over the fixed `range` with `bins` bins, and the number of elements outside it
  (non-finite ones included); bins=None records none (the histogram is the largest part of
  the cost on CPU, where torch.histc runs at a few ns per element);
- dead units, for the ReLU family (`DEAD_UNIT_OPS`): a *unit* is one index along `unit_dim`
  of the output (default -1, the features of a Linear layer; pass unit_dim=1 for the channels
  of an NCHW convolution), and it is *dead* when none of its outputs was positive in any call
  recorded. For leaky_relu, prelu, rrelu and the ELU family a "dead" unit still passes a
  gradient through its negative slope, but never leaves the negative regime;
- saturation, for ops with bounded outputs (`SATURATION_BOUNDS`): the fraction of outputs
  within `saturation_eps` of the lower bound, of the upper bound, and of either.

Cost: the statistics are accumulated on the output's device by a few reductions per call
(shifted sums, aminmax, histc, and an amax per unit or two counts where they apply), with
no host synchronization: nothing is read back until report(). `every=k` records one call in
k. `benchmarks/bench_diagnostics.py` measures the overhead on a training step.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Iterable, List, Optional, Tuple, Union

import torch

from . import nn as _fnn
from .registry import OPS

__all__ = ["ActivationMonitor", "activation_op", "DEAD_UNIT_OPS", "SATURATION_BOUNDS"]


def _activation_classes() -> Dict[type, str]:
    """torch.nn and fusedact.nn module class -> the registry op it computes."""
    classes: Dict[type, str] = {}
    for spec in OPS:
        for namespace in (torch.nn, _fnn):
            cls = getattr(namespace, spec.module, None) if spec.module else None
            if isinstance(cls, type) and issubclass(cls, torch.nn.Module):
                classes[cls] = spec.name
    return classes


_ACTIVATION_CLASSES = _activation_classes()


def activation_op(module: torch.nn.Module) -> Optional[str]:
    """The registry op name of an activation module (torch.nn or fusedact.nn, or a subclass
    of one), or None for any other module."""
    # The nearest class in the MRO decides: torch.nn.ReLU6 subclasses torch.nn.Hardtanh.
    for cls in type(module).__mro__:
        if cls in _ACTIVATION_CLASSES:
            return _ACTIVATION_CLASSES[cls]
    return None


# Ops whose units can die: zero or negative output for every input below a point.
DEAD_UNIT_OPS = frozenset(
    {"relu", "relu6", "relu_squared", "leaky_relu", "prelu", "rrelu", "elu", "selu", "celu"}
)

_SELU_SCALE = 1.0507009873554804934193349852946
_SELU_ALPHA = 1.6732632423543772848170429916717


def _negative_alpha_bound(module) -> Tuple[Optional[float], Optional[float]]:
    # alpha * (exp(x) - 1) tends to -alpha from above only for alpha > 0.
    alpha = float(module.alpha)
    return (-alpha, None) if alpha > 0 else (None, None)


# op -> function(module) -> (lower bound, upper bound) of its output; None: unbounded side.
SATURATION_BOUNDS: Dict[str, Callable[[torch.nn.Module], Tuple[Optional[float], Optional[float]]]] = {
    "sigmoid": lambda m: (0.0, 1.0),
    "tanh": lambda m: (-1.0, 1.0),
    "softsign": lambda m: (-1.0, 1.0),
    "hardsigmoid": lambda m: (0.0, 1.0),
    "relu6": lambda m: (0.0, 6.0),
    "hardtanh": lambda m: (float(m.min_val), float(m.max_val)),
    "logsigmoid": lambda m: (None, 0.0),
    "elu": _negative_alpha_bound,
    "celu": _negative_alpha_bound,
    "selu": lambda m: (-_SELU_SCALE * _SELU_ALPHA, None),
    "softmax": lambda m: (0.0, 1.0),  # probabilities: 0 or 1 is a saturated (one-hot) row
    "softmin": lambda m: (0.0, 1.0),
    "log_softmax": lambda m: (None, 0.0),
}

_HALF_TYPES = (torch.float16, torch.bfloat16)


class _LayerStats:
    """Running statistics of one module's outputs, held on the outputs' device."""

    def __init__(self, monitor: "ActivationMonitor", name: str, module: torch.nn.Module, op: Optional[str]):
        self.monitor = monitor
        self.name = name
        self.module_type = f"{type(module).__module__}.{type(module).__qualname__}"
        self.op = op
        self.dead_units = op in DEAD_UNIT_OPS
        bounds = SATURATION_BOUNDS[op](module) if op in SATURATION_BOUNDS else (None, None)
        self.bounds = None if bounds == (None, None) else bounds
        self.reset()

    def reset(self) -> None:
        self.seen = 0  # hook calls, including those `every` skips
        self.calls = 0  # hook calls recorded
        self.numel = 0  # elements recorded (a host int: numel needs no synchronization)
        self.units: Optional[int] = None
        self.shift: Optional[torch.Tensor] = None  # the first call's mean, see update()
        self.sums: Optional[torch.Tensor] = None  # float64 [sum(x - shift), sum((x - shift)^2)]
        self.saturated: Optional[torch.Tensor] = None  # int64 [n_low, n_high]
        self.extrema: Optional[torch.Tensor] = None  # float64 [-min, max]
        self.hist: Optional[torch.Tensor] = None  # float64 [bins]
        self.unit_max: Optional[torch.Tensor] = None  # float64 [units]: the largest output of each unit

    def hook(self, module, inputs, output) -> None:
        monitor = self.monitor
        if not monitor._enabled or not isinstance(output, torch.Tensor) or not output.is_floating_point():
            return
        self.seen += 1
        if (self.seen - 1) % monitor.every:
            return
        with torch.no_grad():
            self.update(output.detach())

    def _allocate(self, x: torch.Tensor) -> None:
        f64 = dict(dtype=torch.float64, device=x.device)
        # Shifted sums (sums of x - c, c near the mean) keep the variance exact when
        # |mean| >> std, e.g. a saturated sigmoid; c stays a device tensor (no sync).
        self.shift = torch.nan_to_num(x.mean(), nan=0.0, posinf=0.0, neginf=0.0)
        self.sums = torch.zeros(2, **f64)
        self.saturated = torch.zeros(2, dtype=torch.int64, device=x.device)
        self.extrema = torch.full((2,), -math.inf, **f64)
        self.hist = torch.zeros(self.monitor.bins, **f64) if self.monitor.bins else None

    def _to(self, device: torch.device) -> None:
        for attr in ("shift", "sums", "saturated", "extrema", "hist", "unit_max"):
            value = getattr(self, attr)
            if value is not None:
                setattr(self, attr, value.to(device))

    def update(self, x: torch.Tensor) -> None:
        if x.numel() == 0:
            return
        if x.dtype in _HALF_TYPES:
            # One float32 copy: histc would count in the half type, exact only up to 256 (bf16).
            x = x.float()
        monitor = self.monitor
        if self.dead_units and x.dim() > 0:
            units = x.shape[monitor.unit_dim % x.dim()]
            if self.units is None:
                self.units = units
            elif units != self.units:
                raise ValueError(
                    f"ActivationMonitor: layer {self.name!r} output has {units} units along "
                    f"unit_dim={monitor.unit_dim} (shape {tuple(x.shape)}), earlier calls had {self.units}; "
                    "call reset() between models of different widths or pick another unit_dim"
                )
        if self.sums is None:
            self._allocate(x)
        elif self.sums.device != x.device:
            self._to(x.device)
        if self.units is not None and self.unit_max is None:
            self.unit_max = torch.full((self.units,), -math.inf, dtype=torch.float64, device=x.device)

        d = x - self.shift.to(x.dtype)
        # Per call, sums in x's precision by torch's cascade (CPU) or tree (CUDA) reduction,
        # error ~ eps * log2(n) * sum|d|; across calls in float64, so no error builds up with
        # the number of calls. (sum(dtype=float64) would copy x to float64 first on CPU.)
        self.sums += torch.stack([d.sum(), (d * d).sum()])
        if self.bounds is not None:
            low, high = self.bounds
            eps = monitor.saturation_eps
            if low is not None:
                self.saturated[0] += torch.count_nonzero(x <= low + eps)
            if high is not None:
                self.saturated[1] += torch.count_nonzero(x >= high - eps)
        lo, hi = torch.aminmax(x)
        torch.maximum(self.extrema, torch.stack([-lo, hi]), out=self.extrema)
        # histc leaves out values outside the range and non-finite ones; report() counts them
        # as numel - sum(hist).
        if self.hist is not None:
            self.hist += torch.histc(x, monitor.bins, *monitor.range)
        if self.unit_max is not None:
            unit_dim = monitor.unit_dim % x.dim()
            others = [i for i in range(x.dim()) if i != unit_dim]
            per_unit = x.amax(dim=others) if others else x
            torch.maximum(self.unit_max, per_unit, out=self.unit_max)
        self.calls += 1
        self.numel += x.numel()

    def report(self) -> dict:
        monitor = self.monitor
        low, high = self.bounds if self.bounds is not None else (None, None)
        row = {
            "name": self.name,
            "module": self.module_type,
            "op": self.op,
            "calls": self.calls,
            "numel": self.numel,
            "mean": None,
            "std": None,
            "min": None,
            "max": None,
            "outside_range": None,
            "units": self.units if self.dead_units else None,
            "dead_units": None,
            "dead_fraction": None,
            "saturation_bounds": None if self.bounds is None else [low, high],
            "saturation_low": None,
            "saturation_high": None,
            "saturation_fraction": None,
            "histogram": None if monitor.bins is None else {
                "range": list(monitor.range), "bins": monitor.bins, "counts": [0] * monitor.bins},
        }
        if self.calls == 0:
            return row
        n = self.numel
        s1, s2 = self.sums.cpu().tolist()
        n_low, n_high = self.saturated.cpu().tolist()
        m1 = s1 / n
        row["mean"] = float(self.shift.double().cpu()) + m1
        row["std"] = math.sqrt(max(s2 / n - m1 * m1, 0.0))  # max(): a rounding below 0
        neg_min, row["max"] = self.extrema.cpu().tolist()
        row["min"] = -neg_min
        if self.hist is not None:
            counts = self.hist.cpu().tolist()
            row["histogram"]["counts"] = [int(c) for c in counts]
            row["outside_range"] = n - int(sum(counts))
        if self.unit_max is not None:
            dead = int((self.unit_max <= 0).sum())
            row["dead_units"] = dead
            row["dead_fraction"] = dead / self.units
        if self.bounds is not None:
            row["saturation_low"] = n_low / n if low is not None else None
            row["saturation_high"] = n_high / n if high is not None else None
            row["saturation_fraction"] = (n_low + n_high) / n
        return row


ModuleRef = Union[str, torch.nn.Module]


class ActivationMonitor:
    """Records statistics of activation outputs through forward hooks (see the module doc).

    Args:
        model: the model whose submodules are watched (the model itself may be one).
        modules: None for every activation module of the model (torch.nn or fusedact.nn, by
            type), or an iterable of qualified names (as in `model.named_modules()`) and/or
            module instances of the model; modules that are not activations get mean, std,
            min, max and the histogram only.
        bins, range: the histogram: `bins` equal bins over [range[0], range[1]]; bins=None
            for no histogram.
        saturation_eps: an output within this distance of a bound of its op is saturated.
        unit_dim: the dim of the output whose indices are the units for dead-unit counts.
        every: record one forward call in `every` (per layer) to cut the cost further.

    The hooks are registered at construction; disable()/enable() pause and resume recording,
    close() (or leaving a `with` block) removes them, reset() clears the statistics. Reading
    the results (report(), report_table(), str(), plot()) synchronizes with the device.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        modules: Optional[Iterable[ModuleRef]] = None,
        bins: Optional[int] = 200,
        range: Tuple[float, float] = (-10.0, 10.0),  # noqa: A002  (the torch.histc name)
        saturation_eps: float = 1e-2,
        unit_dim: int = -1,
        every: int = 1,
    ) -> None:
        where = "ActivationMonitor"
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"{where}: model must be a torch.nn.Module, got {type(model).__name__}")
        if bins is not None and (isinstance(bins, bool) or not isinstance(bins, int) or bins < 1):
            raise ValueError(f"{where}: bins must be a positive int or None, got {bins!r}")
        try:
            lo, hi = (float(v) for v in range)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: range must be a pair of numbers (min, max), got {range!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"{where}: range must be finite with min < max, got {range!r}")
        if not (isinstance(saturation_eps, (int, float)) and math.isfinite(saturation_eps) and saturation_eps >= 0):
            raise ValueError(f"{where}: saturation_eps must be a finite number >= 0, got {saturation_eps!r}")
        if isinstance(unit_dim, bool) or not isinstance(unit_dim, int):
            raise TypeError(f"{where}: unit_dim must be an int, got {unit_dim!r}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"{where}: every must be an int >= 1, got {every!r}")
        self.bins = bins
        self.range = (lo, hi)
        self.saturation_eps = float(saturation_eps)
        self.unit_dim = unit_dim
        self.every = every
        self._enabled = True
        selected = self._select(model, modules)
        self._layers = [_LayerStats(self, name, module, activation_op(module)) for name, module in selected]
        self._handles = [module.register_forward_hook(layer.hook)
                         for layer, (_, module) in zip(self._layers, selected)]

    @staticmethod
    def _select(model: torch.nn.Module, modules) -> List[Tuple[str, torch.nn.Module]]:
        named = list(model.named_modules())
        if modules is None:
            chosen = [(name, m) for name, m in named if activation_op(m) is not None]
            if not chosen:
                raise ValueError(
                    "ActivationMonitor: the model has no activation modules (torch.nn or fusedact.nn "
                    "classes of the ops in fusedact.registry); pass modules=[names] to watch others"
                )
            return chosen
        if isinstance(modules, (str, torch.nn.Module)):
            raise TypeError("ActivationMonitor: modules must be an iterable of names or modules, "
                            f"got a single {type(modules).__name__}; wrap it in a list")
        by_name = dict(named)
        name_of = {id(m): name for name, m in named}
        chosen, seen = [], set()
        for i, ref in enumerate(modules):
            if isinstance(ref, str):
                if ref not in by_name:
                    raise ValueError(f"ActivationMonitor: modules[{i}] = {ref!r} names no submodule of the model")
                name = ref
            elif isinstance(ref, torch.nn.Module):
                if id(ref) not in name_of:
                    raise ValueError(f"ActivationMonitor: modules[{i}] ({type(ref).__name__}) is not a submodule "
                                     "of the model")
                name = name_of[id(ref)]
            else:
                raise TypeError(f"ActivationMonitor: modules[{i}] must be a name or a module, "
                                f"got {type(ref).__name__}")
            if name not in seen:
                seen.add(name)
                chosen.append((name, by_name[name]))
        if not chosen:
            raise ValueError("ActivationMonitor: modules is empty")
        return chosen

    # ------------------------------------------------------------------ state

    @property
    def layers(self) -> List[str]:
        """The qualified names of the watched modules, in model order."""
        return [layer.name for layer in self._layers]

    @property
    def enabled(self) -> bool:
        return self._enabled and not self.closed

    @property
    def closed(self) -> bool:
        return not self._handles

    def enable(self) -> "ActivationMonitor":
        """Resume recording (after disable())."""
        if self.closed:
            raise RuntimeError("ActivationMonitor.enable: the monitor is closed (its hooks are removed)")
        self._enabled = True
        return self

    def disable(self) -> "ActivationMonitor":
        """Pause recording; the hooks stay registered but return at once."""
        self._enabled = False
        return self

    def reset(self) -> None:
        """Forget every statistic recorded so far."""
        for layer in self._layers:
            layer.reset()

    def close(self) -> None:
        """Remove the hooks (idempotent). The statistics recorded stay readable."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._enabled = False

    def __enter__(self) -> "ActivationMonitor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ results

    def report(self) -> List[dict]:
        """One dict per watched layer, in model order, of plain Python values: name, module,
        op, calls, numel, mean, std, min, max, outside_range, units, dead_units, dead_fraction,
        saturation_bounds, saturation_low, saturation_high, saturation_fraction and histogram
        ({"range", "bins", "counts"}). Statistics that do not apply to the op (or to bins=None),
        or of a layer with no call recorded, are None."""
        return [layer.report() for layer in self._layers]

    def report_table(self) -> str:
        """The report as a fixed-width text table."""
        header = ["layer", "op", "calls", "mean", "std", "min", "max", "dead", "saturated", "outside"]
        rows = [header]
        for r in self.report():
            dead = "-" if r["dead_units"] is None else f"{r['dead_units']}/{r['units']} ({r['dead_fraction']:.1%})"
            sat = "-" if r["saturation_fraction"] is None else f"{r['saturation_fraction']:.1%}"
            outside = "-" if r["outside_range"] is None else f"{r['outside_range'] / r['numel']:.1%}"
            rows.append([r["name"] or "(model)", r["op"] or "-", str(r["calls"])]
                        + [_num(r[k]) for k in ("mean", "std", "min", "max")] + [dead, sat, outside])
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                 for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report_table()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("enabled" if self._enabled else "disabled")
        return f"ActivationMonitor({len(self._layers)} layers, {state}, bins={self.bins}, range={self.range})"

    def plot(self, path, columns: int = 3):
        """Write one PNG with a histogram per watched layer that recorded a call: the fraction
        of its outputs per bin, zoomed on the occupied bins; the title gives mean, std and the
        share outside the range. Needs matplotlib (rendered with Agg, no display). Returns the
        path."""
        from pathlib import Path

        from .plots import new_figure

        if self.bins is None:
            raise ValueError("ActivationMonitor.plot: no histograms to plot (the monitor has bins=None)")
        rows = [r for r in self.report() if r["calls"]]
        if not rows:
            raise ValueError("ActivationMonitor.plot: nothing recorded yet (no forward call since the "
                             "monitor was created or reset)")
        columns = max(1, min(columns, len(rows)))
        nrows = -(-len(rows) // columns)
        fig = new_figure("ActivationMonitor.plot", figsize=(3.6 * columns, 2.6 * nrows))
        lo, hi = self.range
        width = (hi - lo) / self.bins
        centers = [lo + (i + 0.5) * width for i in range(self.bins)]
        for i, r in enumerate(rows):
            ax = fig.add_subplot(nrows, columns, i + 1)
            counts = r["histogram"]["counts"]
            ax.bar(centers, [c / r["numel"] for c in counts], width=width, color="tab:blue")
            # Zoom on the occupied bins (a tanh output fills 1/10 of the default range).
            used = [j for j, c in enumerate(counts) if c] or [0, self.bins - 1]
            ax.set_xlim(lo + max(used[0] - 2, 0) * width, lo + min(used[-1] + 3, self.bins) * width)
            title = f"{r['name'] or '(model)'} ({r['op'] or '-'})"
            ax.set_title(f"{title}: mean {r['mean']:.3g}, std {r['std']:.3g}\n"
                         f"outside [{lo:g}, {hi:g}]: {r['outside_range'] / r['numel']:.1%}", fontsize=8)
            ax.tick_params(labelsize=7)
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, format="png", dpi=80)
        return path


def _num(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.4g}"
