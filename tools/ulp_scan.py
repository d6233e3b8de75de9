"""Max and mean float32 ULP error of fusedact and of the torch built-in over a dense set of
points, against float64 (accurate to ~1e-16 relative, far below a float32 ULP): torch's own
float64 result, except for gelu, whose float64 forms in torch cancel in the left tail (there
0.5*erfc(-x/sqrt2) is used, and for the tanh form's derivative its sigmoid form). Points
where the exact value is a normal float32 number, of 200,001 evenly spaced in [-30, 30] and
200,000 normal(0, 3) draws (seed 0).
Run: PYTHONPATH=python .venv/bin/python tools/ulp_scan.py"""
import torch
import torch.nn.functional as F

import fusedact  # noqa: F401


def ulp_errors(got, exact):
    scale = torch.pow(2.0, torch.floor(torch.log2(exact.abs().clamp_min(2.0**-126))) - 23)
    return (got.double() - exact).abs() / scale


def cdf(t):
    return 0.5 * torch.special.erfc(-t / 2**0.5)


def pdf(t):
    return torch.exp(-0.5 * t * t) / (2 * torch.pi) ** 0.5


def tanh_gelu_slope(t):  # s*(1 + 2t(1-s)u'), s = sigmoid(2u): no 1 + tanh(u) to cancel
    k, c = (2 / torch.pi) ** 0.5, 0.044715
    u, du = k * (t + c * t**3), k * (1 + 3 * c * t * t)
    return torch.sigmoid(2 * u) * (1 + 2 * t * torch.sigmoid(-2 * u) * du)


# name -> (fusedact, torch's built-in, float64 reference)
OPS = {
    "tanh": (torch.ops.fusedact.tanh, torch.tanh, torch.tanh),
    "sigmoid": (torch.ops.fusedact.sigmoid, torch.sigmoid, torch.sigmoid),
    "softplus": (lambda t: torch.ops.fusedact.softplus(t, 1.0, 20.0), F.softplus, F.softplus),
    "logsigmoid": (torch.ops.fusedact.logsigmoid, F.logsigmoid, F.logsigmoid),
    "mish": (torch.ops.fusedact.mish, F.mish, F.mish),
    "elu": (torch.ops.fusedact.elu, F.elu, F.elu),
    "celu(-2)": (lambda t: torch.ops.fusedact.celu(t, -2.0), lambda t: F.celu(t, -2.0),
                 lambda t: F.celu(t, -2.0)),  # a negative alpha: expm1 of positive arguments
    "gelu": (lambda t: torch.ops.fusedact.gelu(t, "none"), F.gelu, lambda t: t * cdf(t)),
    "gelu'": (lambda t: torch.ops.fusedact.gelu_backward(torch.ones_like(t), t, "none"),
              lambda t: torch.ops.aten.gelu_backward(torch.ones_like(t), t),
              lambda t: cdf(t) + t * pdf(t)),
    "gelu_tanh'": (lambda t: torch.ops.fusedact.gelu_backward(torch.ones_like(t), t, "tanh"),
                   lambda t: torch.ops.aten.gelu_backward(torch.ones_like(t), t,
                                                          approximate="tanh"),
                   tanh_gelu_slope),
}

torch.manual_seed(0)
x = torch.cat([torch.linspace(-30, 30, 200001), torch.randn(200000) * 3]).float()
for name, (ours, theirs, reference) in OPS.items():
    exact = reference(x.double())
    keep = exact.abs() >= 2.0**-126  # a normal float32 number (both get the subnormals wrong)
    e_ours, e_torch = ulp_errors(ours(x), exact)[keep], ulp_errors(theirs(x), exact)[keep]
    print(f"{name:10s} fusedact max {e_ours.max():8.3f} mean {e_ours.mean():.3f} | "
          f"torch max {e_torch.max():8.3f} mean {e_torch.mean():.3f}")
