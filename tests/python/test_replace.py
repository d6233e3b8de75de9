"""fusedact.replace_activations: what it swaps, what it keeps, what it reports.

Numerics are compared against the unswapped torch model (a deep copy run on the same
input), with the default assert_close tolerances (DESIGN.md section 5); nothing here is
compared with hard-coded outputs. The transformers activation classes are tested in
test_transformers_integration.py; classes of the same names defined here check the
name-then-formula matching without transformers installed.
"""

import copy
import inspect
import math

import pytest
import torch
from torch import nn
from torch.testing import assert_close

import fusedact
import fusedact.nn as fnn
from fusedact.replace import PROBE_ATOL, PROBE_RTOL, ReplaceReport, Skipped, Swapped

FN = "fusedact.replace_activations"


def torch_activations():
    """Every torch.nn class fusedact.nn has a module of the same name for, built with
    non-default arguments where it has any (name -> module, width factor of its input)."""
    acts = {
        "GELU": nn.GELU(approximate="tanh"),
        "SiLU": nn.SiLU(inplace=True),
        "Mish": nn.Mish(inplace=True),
        "ReLU": nn.ReLU(inplace=True),
        "ReLU6": nn.ReLU6(inplace=True),
        "LeakyReLU": nn.LeakyReLU(0.2, inplace=True),
        "ELU": nn.ELU(alpha=0.8),
        "SELU": nn.SELU(),
        "CELU": nn.CELU(2.5, inplace=True),
        "Softplus": nn.Softplus(beta=2.0, threshold=5.0),
        "Sigmoid": nn.Sigmoid(),
        "Tanh": nn.Tanh(),
        "Hardsigmoid": nn.Hardsigmoid(),
        "Hardswish": nn.Hardswish(inplace=True),
        "Hardtanh": nn.Hardtanh(-2.5, 0.5),
        "Softsign": nn.Softsign(),
        "LogSigmoid": nn.LogSigmoid(),
        "Tanhshrink": nn.Tanhshrink(),
        "Hardshrink": nn.Hardshrink(1.5),
        "Softshrink": nn.Softshrink(lambd=0.7),
        "Threshold": nn.Threshold(0.5, -2.0, inplace=True),
        "RReLU": nn.RReLU(0.1, 0.6),
        "GLU": nn.GLU(dim=-1),
        "PReLU": nn.PReLU(num_parameters=8, init=0.1),
        # Row-wise: over the features, and over the batch (dim 0) for Softmin.
        "Softmax": nn.Softmax(dim=1),
        "LogSoftmax": nn.LogSoftmax(dim=-1),
        "Softmin": nn.Softmin(dim=0),
    }
    with torch.no_grad():  # per-channel weights that differ
        acts["PReLU"].weight.add_(torch.linspace(-0.3, 0.3, 8))
    return acts


def counterpart_names():
    return {n for n in fnn.__all__ if isinstance(getattr(nn, n, None), type) and issubclass(getattr(nn, n), nn.Module)}


def attributes(module):
    """The constructor arguments fusedact.nn reads, by torch's attribute names."""
    cls = getattr(fnn, type(module).__name__)
    names = [p for p in inspect.signature(cls).parameters if p not in ("device", "dtype")]
    return {n: getattr(module, n) for n in names}


class Branches(nn.Module):
    """Linear(8 -> 8 * factor) -> activation -> Linear(8 -> 8) per activation, summed."""

    def __init__(self, acts):
        super().__init__()
        torch.manual_seed(0)
        self.names = list(acts)
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Linear(8, 16 if n == "GLU" else 8), act, nn.Linear(8, 8)) for n, act in acts.items()
        )
        with torch.no_grad():  # pre-activations of std about 3 for x ~ N(0, 1): both sides of every kink
            for b in self.branches:
                b[0].weight.mul_(5.0)

    def forward(self, x):
        return sum(b(x) for b in self.branches)


def test_covers_every_counterpart():
    assert set(torch_activations()) == counterpart_names()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_swaps_every_torch_activation_and_matches_torch(dtype):
    # eval(): RReLU's training slopes are random draws; its eval slope is what both agree on.
    model = Branches(torch_activations()).to(dtype).eval()
    ref = copy.deepcopy(model)
    before = {name: (repr(m), attributes(m)) for name, m in ref.named_modules() if type(m).__name__ in model.names}
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]

    report = fusedact.replace_activations(model)

    assert isinstance(report, ReplaceReport) and report.model is model
    assert report.skipped == []
    assert sorted(s.name for s in report.swapped) == sorted(before)
    for entry in report.swapped:
        new = model.get_submodule(entry.name)
        assert entry == Swapped(entry.name, getattr(nn, entry.old.__name__), type(new))
        assert type(new) is getattr(fnn, entry.old.__name__)
        assert (repr(new), attributes(new)) == before[entry.name]  # inplace, slopes, dim, ...
        assert not new.training
    # Modules that are no activations are the same objects as before.
    assert [m for m in model.modules() if isinstance(m, nn.Linear)] == linears

    x = torch.randn(16, 8, dtype=torch.float64).to(dtype)
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ref, y_ours = ref(x_ref), model(x_ours)
    assert_close(y_ours, y_ref)
    g = torch.randn_like(y_ref)
    y_ref.backward(g)
    y_ours.backward(g)
    assert_close(x_ours.grad, x_ref.grad)
    for (name, p_ref), (_, p_ours) in zip(ref.named_parameters(), model.named_parameters()):
        assert_close(p_ours.grad, p_ref.grad, msg=lambda m, name=name: f"grad of {name}: {m}")


def test_prelu_keeps_its_parameter_object():
    prelu = nn.PReLU(num_parameters=3, init=0.3, dtype=torch.float64).requires_grad_(False)
    weight = prelu.weight
    model = nn.Sequential(nn.Conv1d(3, 3, 1, dtype=torch.float64), prelu)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    fusedact.replace_activations(model)

    new = model[1]
    assert type(new) is fnn.PReLU
    assert new.weight is weight  # optimizers and tied references keep working
    assert new.num_parameters == 3 and new.init == 0.3
    assert new.weight.dtype == torch.float64 and not new.weight.requires_grad
    assert [k for k in model.state_dict()] == ["0.weight", "0.bias", "1.weight"]
    assert any(p is weight for group in opt.param_groups for p in group["params"])


def test_train_eval_state_is_kept():
    model = nn.Sequential(nn.RReLU(0.1, 0.6), nn.GELU(), nn.ReLU())
    model.train()
    model[1].eval()
    fusedact.replace_activations(model)
    assert [m.training for m in model] == [True, False, True]
    assert type(model[0]) is fnn.RReLU


def test_containers_and_shared_modules():
    shared = nn.SiLU()
    model = nn.Module()
    model.seq = nn.Sequential(nn.Linear(4, 4), shared, nn.Sequential(nn.Tanh()))
    model.blocks = nn.ModuleList([nn.ModuleDict({"act": nn.GELU(), "proj": nn.Linear(4, 4)}), shared])

    report = fusedact.replace_activations(model)

    assert sorted(s.name for s in report.swapped) == ["blocks.0.act", "blocks.1", "seq.1", "seq.2.0"]
    assert type(model.blocks[0]["act"]) is fnn.GELU and type(model.seq[2][0]) is fnn.Tanh
    # The shared module became one shared fusedact module.
    assert model.seq[1] is model.blocks[1] and type(model.seq[1]) is fnn.SiLU


def test_root_activation_is_returned_not_changed():
    root = nn.LeakyReLU(0.3)
    report = fusedact.replace_activations(root)
    assert type(root) is nn.LeakyReLU  # the passed object cannot change its class
    assert type(report.model) is fnn.LeakyReLU and report.model.negative_slope == 0.3
    assert report.swapped == [Swapped("", nn.LeakyReLU, fnn.LeakyReLU)]
    x = torch.randn(10)
    assert_close(report.model(x), root(x))


def test_non_activations_untouched_and_idempotent():
    model = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3), nn.Dropout(0.1), nn.Identity())
    children = list(model)
    report = fusedact.replace_activations(model)
    assert report.swapped == [] and report.skipped == [] and list(model) == children

    model = nn.Sequential(nn.GELU(), fnn.Mish())
    assert len(fusedact.replace_activations(model).swapped) == 1
    again = fusedact.replace_activations(model)
    assert again.swapped == [] and again.skipped == []


def _filter_model():
    model = nn.Module()
    model.encoder = nn.Sequential(nn.GELU(), nn.ReLU())
    model.decoder = nn.Sequential(nn.GELU(), nn.ReLU())
    model.head_act = nn.Tanh()
    return model


@pytest.mark.parametrize(
    "include, exclude, expected",
    [
        (nn.GELU, None, {"encoder.0", "decoder.0"}),
        ([nn.GELU, nn.Tanh], None, {"encoder.0", "decoder.0", "head_act"}),
        ("encoder", None, {"encoder.0", "encoder.1"}),  # a name selects its subtree
        ("*.0", None, {"encoder.0", "decoder.0"}),
        (("encoder.*", "head_*"), None, {"encoder.0", "encoder.1", "head_act"}),
        (None, "decoder", {"encoder.0", "encoder.1", "head_act"}),
        (None, [nn.ReLU, "head_act"], {"encoder.0", "decoder.0"}),
        ("encoder", nn.ReLU, {"encoder.0"}),  # exclude wins
        ([], None, set()),
    ],
)
def test_include_exclude(include, exclude, expected):
    model = _filter_model()
    report = fusedact.replace_activations(model, include=include, exclude=exclude)
    assert {s.name for s in report.swapped} == expected
    everything = {"encoder.0", "encoder.1", "decoder.0", "decoder.1", "head_act"}
    assert {s.name for s in report.skipped} == everything - expected
    for entry in report.skipped:
        assert entry.reason in ("not selected by include", "excluded by exclude")
        assert type(model.get_submodule(entry.name)) is getattr(nn, entry.cls.__name__)


@pytest.mark.parametrize("argument", ["include", "exclude"])
@pytest.mark.parametrize("value", [3, nn.GELU(), [nn.GELU, 1.5], int], ids=["int", "instance", "list", "class"])
def test_bad_filter_raises_naming_function_and_argument(argument, value):
    with pytest.raises(TypeError, match=rf"{FN}: `{argument}` must be"):
        fusedact.replace_activations(_filter_model(), **{argument: value})


def test_bad_model_raises():
    with pytest.raises(TypeError, match=rf"{FN}: `model` must be a torch.nn.Module; got str"):
        fusedact.replace_activations("model")


# ----------------------------------------------------------------------- matched by formula


class SubclassSameFormula(nn.GELU):
    pass


class SubclassOtherFormula(nn.ReLU):
    def forward(self, x):
        return super().forward(x) * 2


class SiLU(nn.Module):  # a model's own class, named like torch's
    def forward(self, x):
        return x * torch.sigmoid(x)


class QuickGELU(nn.Module):  # open_clip style
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Swish(nn.Module):  # EfficientNet style; fusedact.nn.Swish(beta) takes `beta`
    def __init__(self, beta):
        super().__init__()
        self.beta = beta

    def forward(self, x):
        return x * torch.sigmoid(self.beta * x)


class FastGELUActivation(nn.Module):  # transformers' formula: sqrt(2/pi) truncated to 10 digits
    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


class GELUActivation(nn.Module):  # named like transformers' exact GELU, but the tanh form
    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


class NearlySiLU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.0001 * x)


NearlySiLU.__name__ = NearlySiLU.__qualname__ = "SiLU"


class ParametrizedSiLU(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return x * torch.sigmoid(self.scale * x)


ParametrizedSiLU.__name__ = ParametrizedSiLU.__qualname__ = "SiLU"


def test_lookalikes_are_matched_by_formula():
    model = nn.ModuleDict({
        "sub_same": SubclassSameFormula(approximate="tanh"),
        "sub_other": SubclassOtherFormula(),
        "own_silu": SiLU(),
        "quick": QuickGELU(),
        "swish": Swish(1.5),
        "fast_gelu": FastGELUActivation(),
        "gelu_tanh_named_exact": GELUActivation(),
        "nearly_silu": NearlySiLU(),
        "with_param": ParametrizedSiLU(),
    })
    ref = copy.deepcopy(model)

    report = fusedact.replace_activations(model)

    swapped = {s.name: s.new for s in report.swapped}
    assert swapped == {
        "sub_same": fnn.GELU, "own_silu": fnn.SiLU, "quick": fnn.QuickGELU, "swish": fnn.Swish,
        "fast_gelu": fnn.GELU,
    }
    assert model["sub_same"].approximate == "tanh" and model["swish"].beta == 1.5
    assert model["fast_gelu"].approximate == "tanh"
    reasons = {s.name: s.reason for s in report.skipped}
    assert set(reasons) == {"sub_other", "gelu_tanh_named_exact", "nearly_silu", "with_param"}
    for name in ("sub_other", "gelu_tanh_named_exact", "nearly_silu"):
        assert "formula is not fusedact's" in reasons[name] and "max |diff|" in reasons[name], reasons[name]
        assert model[name] is not None and type(model[name]) is type(ref[name])
    assert "holds parameters" in reasons["with_param"]
    x = torch.randn(64) * 4
    for name in swapped:
        assert_close(model[name](x), ref[name](x))


class Softmax(nn.Module):  # a model's own softmax over the last dim, with no `dim` attribute
    def forward(self, x):
        return x.softmax(-1)


class LastDimSoftmax(nn.Module):  # keeps `dim` but ignores it
    def __init__(self):
        super().__init__()
        self.dim = 1

    def forward(self, x):
        return torch.softmax(x, -1)


LastDimSoftmax.__name__ = LastDimSoftmax.__qualname__ = "Softmax"


class LogSoftmax(nn.Module):  # keeps and uses `dim`
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return torch.log_softmax(x, self.dim)


class SubclassSoftmin(nn.Softmin):
    pass


class SubclassSoftmax(nn.Softmax):
    pass


def test_rowwise_lookalikes_are_matched_by_formula_at_several_ranks():
    """A row-wise class matched by name is probed on inputs of 2, 3 and 4 dims: on 2 dims alone
    dim 1, dim -1 and torch's implicit dim (dim=None: 1 for 2 dims, 0 for 3) all agree, and a
    dim of 2 or 3 needs more than 2 dims."""
    model = nn.ModuleDict({
        "own_softmax": Softmax(),  # no `dim`: Softmax(dim=None) would be right on 2 dims only
        "ignores_dim": LastDimSoftmax(),  # dim=1 would be right on 2 dims only
        "log_softmax": LogSoftmax(-2),
        "sub_softmin": SubclassSoftmin(dim=2),
        "softmax_dim3": SubclassSoftmax(dim=3),  # runs on the 4-dim probe only
    })
    ref = copy.deepcopy(model)
    report = fusedact.replace_activations(model)

    assert {s.name: s.new for s in report.swapped} == {
        "log_softmax": fnn.LogSoftmax, "sub_softmin": fnn.Softmin, "softmax_dim3": fnn.Softmax}
    assert model["log_softmax"].dim == -2 and model["sub_softmin"].dim == 2 and model["softmax_dim3"].dim == 3
    reasons = {s.name: s.reason for s in report.skipped}
    assert set(reasons) == {"own_softmax", "ignores_dim"}
    for reason in reasons.values():
        assert "formula is not fusedact's" in reason and "max |diff|" in reason, reason
    x = torch.randn(3, 4, 5, 2)
    for name in ("log_softmax", "sub_softmin", "softmax_dim3"):
        assert_close(model[name](x), ref[name](x))


def test_rowwise_implicit_dim_is_kept():
    """torch.nn.Softmax() (dim=None) becomes fusedact.nn.Softmax(dim=None): the same implicit
    dim per rank and the same deprecation warning."""
    model = nn.Sequential(nn.Linear(5, 5), nn.Softmax(), nn.LogSoftmax(dim=None))
    ref = copy.deepcopy(model)
    report = fusedact.replace_activations(model)
    assert [type(m) for m in model] == [nn.Linear, fnn.Softmax, fnn.LogSoftmax]
    assert model[1].dim is None and model[2].dim is None and len(report.swapped) == 2
    for shape in ((5,), (2, 5), (2, 3, 5)):
        x = torch.randn(shape)
        with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
            y = model(x)
        with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
            assert_close(y, ref(x))


def test_probe_tolerance_separates_close_formulas():
    # The closest distinct formulas must be far outside the probe tolerance, and a
    # truncated constant well inside it (see PROBE_RTOL in fusedact/replace.py).
    x = fusedact.replace.probe_input()
    tanh_vs_erf = (torch.nn.functional.gelu(x) - torch.nn.functional.gelu(x, approximate="tanh")).abs().max()
    assert tanh_vs_erf > 1e3 * (PROBE_ATOL + PROBE_RTOL)
    fast = FastGELUActivation()(x)
    assert fusedact.replace.compare(fast, torch.nn.functional.gelu(x, approximate="tanh"))[0]


def test_hooks_unsupported_and_report_text():
    hooked = nn.GELU()
    hooked.register_forward_hook(lambda m, i, o: None)
    model = nn.Sequential(hooked, nn.Softmax2d(), nn.Softmax(dim=-1), nn.ReLU(), nn.ReLU())
    report = fusedact.replace_activations(model)
    assert model[0] is hooked
    assert [(s.name, s.cls) for s in report.skipped] == [("0", nn.GELU), ("1", nn.Softmax2d)]
    assert "hooks (forward_hooks)" in report.skipped[0].reason
    assert "fusedact has no op" in report.skipped[1].reason
    text = str(report)
    assert text == report.summary()
    assert text.splitlines()[0] == "replace_activations: 3 swapped, 2 skipped"
    assert "swapped 2 x torch.nn.ReLU -> fusedact.nn.ReLU [3, 4]" in text
    assert "swapped 1 x torch.nn.Softmax -> fusedact.nn.Softmax [2]" in text
    assert "skipped 1 x torch.nn.Softmax2d:" in text
    assert isinstance(report.skipped[0], Skipped) and report.skipped[0].cls is nn.GELU
