"""fusedact.diagnostics.ActivationMonitor: its statistics against the same statistics computed
directly in torch (float64) from the activations captured by independent hooks."""

import math
import struct

import pytest
import torch

import fusedact.nn as fnn
from fusedact.diagnostics import ActivationMonitor, activation_op

from conftest import DEVICES

NAMESPACES = [pytest.param(torch.nn, id="torch.nn"), pytest.param(fnn, id="fusedact.nn")]


def mlp(nn, width=24):
    """Linear layers between activations of each statistics class: dead units (ReLU,
    LeakyReLU), bounded outputs (Tanh, Hardtanh, Sigmoid), neither (GELU)."""
    return torch.nn.Sequential(
        torch.nn.Linear(12, width), nn.ReLU(),
        torch.nn.Linear(width, width), nn.Tanh(),
        torch.nn.Linear(width, width), nn.LeakyReLU(0.1),
        torch.nn.Linear(width, width), nn.Hardtanh(-0.25, 0.25),
        torch.nn.Linear(width, width), nn.GELU(),
        torch.nn.Linear(width, 6), nn.Sigmoid(),
    )


class Capture:
    """Detached copies of every output of the given modules, by name."""

    def __init__(self, model, names):
        self.outputs = {n: [] for n in names}
        modules = dict(model.named_modules())
        self.handles = [modules[n].register_forward_hook(self._hook(n)) for n in names]

    def _hook(self, name):
        def hook(module, inputs, output):
            self.outputs[name].append(output.detach().clone())
        return hook

    def close(self):
        for h in self.handles:
            h.remove()


def expected(ys, monitor):
    """The monitor's statistics computed from the captured outputs `ys` in one go."""
    flat = torch.cat([y.flatten() for y in ys])
    x64 = flat.double()
    lo, hi = monitor.range
    hist = torch.histc(flat, monitor.bins, lo, hi)  # the outputs' dtype: the same bin edges
    out = {
        "calls": len(ys),
        "numel": flat.numel(),
        "mean": x64.mean().item(),
        "std": x64.std(correction=0).item(),
        "min": x64.min().item(),
        "max": x64.max().item(),
        "counts": [int(c) for c in hist.tolist()],
        "outside_range": int(((x64 < lo) | (x64 > hi) | ~torch.isfinite(x64)).sum()),
    }
    return out


def dead_units(ys, unit_dim=-1):
    per_unit = torch.stack([y.movedim(unit_dim, 0).flatten(1).amax(1) for y in ys]).amax(0)
    return int((per_unit <= 0).sum()), per_unit.numel()


def saturation(ys, low, high, eps):
    flat = torch.cat([y.flatten() for y in ys])
    n_low = int((flat <= low + eps).sum()) if low is not None else 0
    n_high = int((flat >= high - eps).sum()) if high is not None else 0
    return n_low / flat.numel(), n_high / flat.numel()


def check_row(row, ys, monitor):
    want = expected(ys, monitor)
    assert row["calls"] == want["calls"] and row["numel"] == want["numel"]
    # Per-call sums run in the outputs' precision (float32 here), accumulated in float64: the
    # mean is exact to ~1e-7 of the spread, the std to ~1e-7 relative.
    assert abs(row["mean"] - want["mean"]) <= 1e-6 * want["std"], (row["name"], row["mean"], want["mean"])
    assert math.isclose(row["std"], want["std"], rel_tol=1e-6), (row["name"], row["std"], want["std"])
    assert (row["min"], row["max"]) == (want["min"], want["max"]), row["name"]
    assert row["histogram"]["counts"] == want["counts"], row["name"]
    assert row["outside_range"] == want["outside_range"], row["name"]


@pytest.mark.parametrize("nn", NAMESPACES)
@pytest.mark.parametrize("device", DEVICES)
def test_statistics_match_torch(nn, device):
    model = mlp(nn).to(device)
    with ActivationMonitor(model, bins=64, range=(-2.0, 3.0), saturation_eps=0.05) as monitor:
        assert monitor.layers == ["1", "3", "5", "7", "9", "11"]
        capture = Capture(model, monitor.layers)
        for batch in (17, 64, 5):  # different batch sizes: the accumulation must weigh them
            model(torch.randn(batch, 12, device=device) * 4 + 0.5)
        capture.close()
        rows = {r["name"]: r for r in monitor.report()}
    assert [rows[n]["op"] for n in monitor.layers] == ["relu", "tanh", "leaky_relu", "hardtanh", "gelu", "sigmoid"]
    for name, ys in capture.outputs.items():
        row = rows[name]
        check_row(row, ys, monitor)
        if row["op"] in ("relu", "leaky_relu"):
            assert (row["dead_units"], row["units"]) == dead_units(ys)
            assert row["dead_fraction"] == row["dead_units"] / row["units"]
        else:
            assert row["dead_units"] is None and row["units"] is None
        bounds = {"tanh": (-1.0, 1.0), "hardtanh": (-0.25, 0.25), "sigmoid": (0.0, 1.0)}.get(row["op"])
        if bounds is None:
            assert row["saturation_fraction"] is None
            continue
        assert row["saturation_bounds"] == list(bounds)
        low, high = saturation(ys, *bounds, 0.05)
        assert row["saturation_low"] == pytest.approx(low, abs=1e-12)
        assert row["saturation_high"] == pytest.approx(high, abs=1e-12)
        assert row["saturation_fraction"] == pytest.approx(low + high, abs=1e-12)
    # The scaled inputs drive the hardtanh layer into both bounds: the test would see a
    # saturation count that is always 0.
    assert rows["7"]["saturation_low"] > 0 and rows["7"]["saturation_high"] > 0


def test_mean_std_exact_when_mean_dominates():
    """A saturated sigmoid: mean ~ 1, std ~ 1e-4. Naive float64 sums of x and x^2 (x^2 rounded
    to float32) would lose most digits of the variance; the shifted sums keep them."""
    act = torch.nn.Sigmoid()
    ys = []
    with ActivationMonitor(act) as monitor:
        for _ in range(4):
            ys.append(act(9.0 + 0.01 * torch.randn(4096)))
        row = monitor.report()[0]
    x64 = torch.cat(ys).double()
    assert row["name"] == "" and row["op"] == "sigmoid"
    assert row["std"] == pytest.approx(x64.std(correction=0).item(), rel=1e-4)
    assert row["mean"] == pytest.approx(x64.mean().item(), rel=1e-12)


@pytest.mark.parametrize("nn", NAMESPACES)
@pytest.mark.parametrize("op", ["ReLU", "LeakyReLU"])
def test_dead_units_of_a_constructed_model(nn, op):
    """Units 0, 2 and 5 of the first layer get zero weights and a negative bias: their
    pre-activation is -1 for every input, so they are dead; the others get a positive bias."""
    lin = torch.nn.Linear(4, 6)
    with torch.no_grad():
        lin.bias.fill_(2.0)
        for u in (0, 2, 5):
            lin.weight[u].zero_()
            lin.bias[u] = -1.0
        lin.weight.clamp_(-0.1, 0.1)  # |w . x| < 2 for the inputs below: live units stay live
    model = torch.nn.Sequential(lin, getattr(nn, op)(), torch.nn.Linear(6, 1))
    with ActivationMonitor(model) as monitor:
        for _ in range(3):
            model(torch.rand(8, 4) * 4 - 2)
        row = monitor.report()[0]
    assert (row["dead_units"], row["units"]) == (3, 6)
    assert row["dead_fraction"] == 0.5


def test_dead_units_along_channels():
    """unit_dim=1: channels of an NCHW output. Channel 1 is never positive; along the last
    dim (the default) no unit is dead, as every width position sees positive channels."""
    x = torch.randn(2, 3, 4, 5).abs() + 0.1
    x[:, 1] = -x[:, 1]
    act = fnn.ReLU()
    with ActivationMonitor(act, unit_dim=1) as by_channel, ActivationMonitor(act) as by_last:
        act(x)
    assert (by_channel.report()[0]["dead_units"], by_channel.report()[0]["units"]) == (1, 3)
    assert (by_last.report()[0]["dead_units"], by_last.report()[0]["units"]) == (0, 5)


def test_saturation_on_known_values():
    values = torch.tensor([-5.0, -0.995, -0.98, 0.0, 0.5, 0.98, 0.995, 1.0, 3.0])
    act = fnn.Hardtanh()
    with ActivationMonitor(act, saturation_eps=0.01) as monitor:
        act(values)
        row = monitor.report()[0]
    # outputs -1, -0.995 | -0.98, 0, 0.5, 0.98 | 0.995, 1, 1
    assert row["saturation_low"] == pytest.approx(2 / 9)
    assert row["saturation_high"] == pytest.approx(3 / 9)
    assert row["saturation_fraction"] == pytest.approx(5 / 9)


def test_one_sided_bounds_and_half_dtype():
    """logsigmoid saturates only at its upper bound 0; bfloat16 outputs are counted in float32
    (a bfloat16 histogram would stop counting exactly at 256)."""
    act = torch.nn.LogSigmoid()
    x = torch.linspace(-8, 12, 1001).to(torch.bfloat16)
    with ActivationMonitor(act, saturation_eps=1e-3, range=(-8.0, 1.0), bins=9) as monitor:
        y = act(x)
        row = monitor.report()[0]
    assert row["saturation_bounds"] == [None, 0.0] and row["saturation_low"] is None
    assert row["saturation_high"] == pytest.approx(float((y.float() >= -1e-3).double().mean()))
    assert sum(row["histogram"]["counts"]) == 1001
    assert row["histogram"]["counts"] == [int(c) for c in torch.histc(y.float(), 9, -8.0, 1.0).tolist()]
    assert row["mean"] == pytest.approx(y.double().mean().item(), rel=1e-6)


def test_every_records_one_call_in_k():
    act = torch.nn.Tanh()
    ys = []
    with ActivationMonitor(act, every=2) as monitor:
        for _ in range(5):
            ys.append(act(torch.randn(10, 3)))
        row = monitor.report()[0]
    recorded = ys[::2]
    assert row["calls"] == 3
    assert row["mean"] == pytest.approx(torch.cat(recorded).double().mean().item(), rel=1e-6)


def test_close_removes_hooks_and_keeps_results():
    model = mlp(torch.nn)
    acts = [m for m in model if activation_op(m) is not None]
    monitor = ActivationMonitor(model)
    assert all(len(m._forward_hooks) == 1 for m in acts)
    model(torch.randn(4, 12))
    monitor.close()
    assert monitor.closed and not monitor.enabled
    assert all(len(m._forward_hooks) == 0 for m in acts)
    model(torch.randn(4, 12))
    assert all(r["calls"] == 1 for r in monitor.report())
    monitor.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        monitor.enable()

    with ActivationMonitor(model) as monitor:
        assert all(len(m._forward_hooks) == 1 for m in acts)
    assert all(len(m._forward_hooks) == 0 for m in acts)


def test_disable_enable_reset():
    act = fnn.ReLU()
    with ActivationMonitor(act) as monitor:
        act(torch.randn(3, 4))
        monitor.disable()
        act(torch.randn(3, 4))
        assert monitor.report()[0]["calls"] == 1
        monitor.enable()
        act(torch.randn(3, 4))
        assert monitor.report()[0]["calls"] == 2
        monitor.reset()
        row = monitor.report()[0]
        assert row["calls"] == 0 and row["mean"] is None and row["dead_units"] is None
        y = act(torch.full((2, 4), -1.0))
        row = monitor.report()[0]
    assert row["calls"] == 1 and row["dead_units"] == 4 and row["mean"] == 0.0 and y.sum() == 0


def test_training_unchanged_by_the_monitor():
    """Same gradients with and without the hooks (they read the outputs, under no_grad)."""
    torch.manual_seed(1)
    model = mlp(fnn)
    x = torch.randn(16, 12)
    grads = []
    for watch in (False, True):
        model.zero_grad()
        monitor = ActivationMonitor(model) if watch else None
        model(x).square().sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
        if monitor:
            monitor.close()
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_explicit_modules_and_report_table():
    model = mlp(torch.nn)
    with ActivationMonitor(model, modules=["0", model[1]]) as monitor:
        model(torch.randn(5, 12))
        rows = monitor.report()
        table = str(monitor)
    assert [(r["name"], r["op"]) for r in rows] == [("0", None), ("1", "relu")]
    assert rows[0]["dead_units"] is None and rows[0]["mean"] is not None
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["layer", "op", "calls"] and len(lines) == 4
    assert lines[3].split()[:3] == ["1", "relu", "1"]


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(bins=0), ValueError, "bins"),
        (dict(range=(1.0, -1.0)), ValueError, "range"),
        (dict(range=5), ValueError, "range"),
        (dict(saturation_eps=-1.0), ValueError, "saturation_eps"),
        (dict(every=0), ValueError, "every"),
        (dict(unit_dim=1.5), TypeError, "unit_dim"),
        (dict(modules=["nope"]), ValueError, "modules[0] = 'nope'"),
        (dict(modules=[torch.nn.ReLU()]), ValueError, "modules[0]"),
        (dict(modules="1"), TypeError, "modules"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, words):
    with pytest.raises(error) as info:
        ActivationMonitor(mlp(torch.nn), **kwargs)
    assert "ActivationMonitor" in str(info.value) and words in str(info.value)


def test_model_without_activations_and_plot_before_data():
    with pytest.raises(ValueError, match="no activation modules"):
        ActivationMonitor(torch.nn.Linear(2, 2))
    with ActivationMonitor(fnn.GELU()) as monitor, pytest.raises(ValueError, match="nothing recorded"):
        monitor.plot("unused.png")


def test_plot_writes_a_png(tmp_path):
    model = mlp(fnn)
    with ActivationMonitor(model) as monitor:
        model(torch.randn(32, 12))
        path = monitor.plot(tmp_path / "acts.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 400 and height >= 300 and len(data) > 5000
    assert data[-8:-4] == b"IEND"


def test_without_histogram():
    act = torch.nn.Sigmoid()
    with ActivationMonitor(act, bins=None) as monitor:
        y = act(torch.randn(50, 3))
        row = monitor.report()[0]
        with pytest.raises(ValueError, match="bins=None"):
            monitor.plot("unused.png")
    assert row["histogram"] is None and row["outside_range"] is None
    assert row["mean"] == pytest.approx(y.double().mean().item(), rel=1e-6)
    assert "-" in str(monitor).splitlines()[2].split()[-1]
