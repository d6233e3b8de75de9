"""fusedact.plots and `python -m fusedact plot`: the curves against torch, the CLI's PNGs
and its errors."""

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fusedact import plots, registry
from fusedact.__main__ import main

REPO = Path(__file__).resolve().parents[2]
ALL_OPS = [pytest.param(spec, id=spec.name) for spec in registry.OPS]


def assert_png(path: Path, min_width=200, min_height=100):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR" and data[-8:-4] == b"IEND", f"{path} is truncated"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= min_width and height >= min_height, (path, width, height)


def torch_curve(spec, x):
    """The op and its derivative from torch alone (the registry's reference composition),
    with the plotting conventions: gated ops with up = 1, row-wise ops on rows [x, 0],
    weighted ops with PLOT_WEIGHT, rrelu in evaluation."""
    t = x.clone().requires_grad_(True)
    if spec.kind == "gated":
        y = spec.reference(t, torch.ones_like(t), **spec.params)
    elif spec.kind == "rowwise":  # the first component of op([x, 0]) over dim -1
        y = spec.reference(torch.stack([t, torch.zeros_like(t)], dim=-1), dim=-1)[..., 0]
    elif spec.kind == "weighted":
        y = spec.reference(t, torch.tensor([plots.PLOT_WEIGHT[spec.name]], dtype=x.dtype))
    else:
        y = spec.reference(t, **spec.params)
    (dy,) = torch.autograd.grad(y.sum(), t)
    return y.detach(), dy


@pytest.mark.parametrize("spec", ALL_OPS)
def test_curve_matches_torch(spec):
    # 241 points on [-6, 6] include the kinks 0, +-3, 6, 0.5 of the ops that have them: the
    # derivative there must be torch's too.
    c = plots.curve(spec.name, (-6.0, 6.0), 241)
    assert c["x"].dtype == torch.float64 and c["x"].shape == (241,)
    y, dy = torch_curve(spec, c["x"])
    torch.testing.assert_close(c["y"], y, equal_nan=True)
    torch.testing.assert_close(c["dy"], dy, equal_nan=True)
    torch.testing.assert_close(c["ref_y"], y, rtol=0, atol=0)
    torch.testing.assert_close(c["ref_dy"], dy, rtol=0, atol=0)


def test_curve_values_are_fusedacts():
    """y is what the fusedact op returns (not a second torch evaluation)."""
    c = plots.curve("mish", (-3.0, 3.0), 61)
    torch.testing.assert_close(c["y"], torch.ops.fusedact.mish(c["x"]), rtol=0, atol=0)
    c = plots.curve("swiglu", (-3.0, 3.0), 61)
    torch.testing.assert_close(c["y"], torch.ops.fusedact.swiglu.split(c["x"], torch.ones_like(c["x"])), rtol=0, atol=0)


def test_cli_writes_pngs(tmp_path):
    out = tmp_path / "plots"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "python"), os.environ.get("PYTHONPATH", "")])}
    ops = ["gelu", "swiglu", "prelu", "rrelu"]
    proc = subprocess.run(
        [sys.executable, "-m", "fusedact", "plot", "--ops", ",".join(ops), "--out", str(out),
         "--range", "-4,4", "--points", "101"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{op}.png" for op in ops)
    assert proc.stdout.split() == [str(out / f"{op}.png") for op in ops]
    for op in ops:
        assert_png(out / f"{op}.png")


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--ops", "gelu,nope"], ["argument --ops", "unknown op 'nope'"]),
        (["--ops", ""], ["argument --ops", "comma-separated"]),
        (["--ops", "gelu", "--range", "3,-3"], ["argument --range", "MIN < MAX"]),
        (["--ops", "gelu", "--range", "-6,x"], ["argument --range", "MIN,MAX"]),
        (["--ops", "gelu", "--points", "1"], ["argument --points", ">= 2"]),
    ],
)
def test_cli_errors_name_the_argument(tmp_path, capsys, argv, words):
    with pytest.raises(SystemExit) as info:
        main(["plot", "--out", str(tmp_path)] + argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err, err
    assert not any(tmp_path.iterdir())


def test_cli_all_ops_expands_to_the_registry(monkeypatch, tmp_path, capsys):
    written = []
    monkeypatch.setattr(plots, "plot_op", lambda name, path, *a, **k: written.append(name) or path)
    assert main(["plot", "--ops", "all", "--out", str(tmp_path)]) == 0
    assert written == [spec.name for spec in registry.OPS]
