"""Swap every torch.nn activation of a model for its fusedact.nn counterpart.

A small model (Linear layers of width 16, one Linear -> activation -> Linear branch per
activation, see Branches) uses each torch.nn activation module fusedact has a counterpart
for, built with non-default constructor arguments where the module has any. A deep copy
has every activation replaced by the fusedact.nn module of the same name, built from the
torch module's attributes (read by the names of the fusedact class's constructor
parameters). Both models then run forward and backward on the same input and must agree
(default assert_close tolerances): output, input gradient and every parameter gradient.

The swap is written here on purpose, independent of fusedact.replace_activations: it
checks that fusedact.nn's constructors take torch's attribute names, which is what makes a
module-for-module swap possible at all.
"""

import copy
import inspect

import pytest
import torch
from torch import nn
from torch.testing import assert_close

import fusedact.nn as fnn  # also registers torch.ops.fusedact.*
from conftest import DEVICES

WIDTH = 16
BATCH = 8
# The first Linear of each branch is rescaled (see _calibrate) so that the activation after
# it sees inputs of about this standard deviation: each activation is exercised on both
# sides of its kinks and saturation points, and none (Hardshrink(1.5), Threshold) zeroes
# everything.
PRE_ACTIVATION_STD = 3.0

HAS_PRELU = hasattr(fnn, "PReLU")
FACTORY_KWARGS = ("device", "dtype")


def _activations():
    """(torch.nn class name, module, width factor of the Linear before it)."""
    acts = [
        ("GELU", nn.GELU(approximate="tanh"), 1),
        ("SiLU", nn.SiLU(inplace=True), 1),
        ("Mish", nn.Mish(inplace=True), 1),
        ("ReLU", nn.ReLU(inplace=True), 1),
        ("ReLU6", nn.ReLU6(inplace=True), 1),
        ("LeakyReLU", nn.LeakyReLU(0.2), 1),
        ("ELU", nn.ELU(alpha=0.8, inplace=True), 1),
        ("SELU", nn.SELU(inplace=True), 1),
        ("CELU", nn.CELU(2.5), 1),
        ("Softplus", nn.Softplus(beta=2.0, threshold=5.0), 1),
        ("Sigmoid", nn.Sigmoid(), 1),
        ("Tanh", nn.Tanh(), 1),
        ("Hardsigmoid", nn.Hardsigmoid(inplace=True), 1),
        ("Hardswish", nn.Hardswish(inplace=True), 1),
        ("Hardtanh", nn.Hardtanh(-2.5, 0.5), 1),
        ("Softsign", nn.Softsign(), 1),
        ("LogSigmoid", nn.LogSigmoid(), 1),
        ("Tanhshrink", nn.Tanhshrink(), 1),
        ("Hardshrink", nn.Hardshrink(1.5), 1),
        ("RReLU", nn.RReLU(0.1, 0.6, inplace=True), 1),  # compared in eval mode, see below
        ("Softshrink", nn.Softshrink(lambd=1.5), 1),
        ("Threshold", nn.Threshold(0.5, -2.0, inplace=True), 1),
        # GLU halves its input: the Linear before it doubles the width.
        ("GLU", nn.GLU(dim=-1), 2),
        # Row-wise: over the features, and over the batch (dim 0) for Softmin.
        ("Softmax", nn.Softmax(dim=1), 1),
        ("LogSoftmax", nn.LogSoftmax(dim=-1), 1),
        ("Softmin", nn.Softmin(dim=0), 1),
    ]
    # ---- PReLU ------------------------------------------------------------------------
    # The learned-weight activation joins the model once fusedact.nn has it (checked at
    # import time): one weight per channel, a non-default init, and the weights perturbed
    # so that they differ per channel; its weight gradient is then compared with the rest.
    if HAS_PRELU:
        prelu = nn.PReLU(num_parameters=WIDTH, init=0.1)
        with torch.no_grad():
            prelu.weight.add_(torch.linspace(-0.3, 0.3, WIDTH))
        acts.append(("PReLU", prelu, 1))
    # -------------------------------------------------------------------------------------
    return acts


class Branches(nn.Module):
    """One branch per activation, Linear -> activation -> Linear, summed.

    Parallel rather than one deep chain on purpose: through 22+ activations in series a
    float32 model amplifies rounding (float32 torch itself is 2e-6..5e-6 away from the
    float64 result at the first layer's gradients, beyond assert_close's default rtol of
    1.3e-6), so the comparison would measure the chain's conditioning, not the swap.
    """

    def __init__(self):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Linear(WIDTH, WIDTH * factor), act, nn.Linear(WIDTH, WIDTH))
            for _, act, factor in _activations()
        )

    def forward(self, x):
        return sum(branch(x) for branch in self.branches)


def _build_model():
    torch.manual_seed(1234)
    return Branches()


def _calibrate(model, x):
    """Scale the first Linear of each branch so that its output over x has
    PRE_ACTIVATION_STD (data-dependent initialisation; deterministic for a fixed seed and
    input)."""
    with torch.no_grad():
        for branch in model.branches:
            first = branch[0]
            scale = PRE_ACTIVATION_STD / first(x).std()
            first.weight.mul_(scale)
            first.bias.mul_(scale)
    return model


def _is_fusedact_module(cls):
    return (
        isinstance(cls, type) and issubclass(cls, nn.Module) and cls.__module__ == fnn.__name__
    )


def _torch_activation_names():
    """Names of the fusedact.nn modules that torch.nn also has (fusedact's counterparts)."""
    names = set()
    for name in dir(fnn):
        torch_cls = getattr(nn, name, None)
        if (
            _is_fusedact_module(getattr(fnn, name))
            and isinstance(torch_cls, type)
            and issubclass(torch_cls, nn.Module)
        ):
            names.add(name)
    return names


def swap_activations(model):
    """Replace, in place, every torch.nn module that fusedact.nn has a module of the same
    name for; returns the dotted names of the swapped modules."""
    swapped = []
    for name, module in list(model.named_modules()):
        cls_name = type(module).__name__
        if getattr(nn, cls_name, None) is not type(module):
            continue  # not a torch.nn class itself (e.g. a subclass, or a fusedact module)
        fa_cls = getattr(fnn, cls_name, None)
        if not _is_fusedact_module(fa_cls):
            continue  # Linear, Sequential, ...: no fusedact counterpart
        # torch's factory kwargs (PReLU's device, dtype) are no attributes; the new module
        # gets the old one's device and dtype from its parameters below.
        kwargs = {
            p: getattr(module, p)
            for p in inspect.signature(fa_cls).parameters
            if p not in FACTORY_KWARGS
        }
        new = fa_cls(**kwargs).train(module.training)  # keep train/eval state
        ref = next(module.parameters(), None)
        if ref is not None:
            new = new.to(device=ref.device, dtype=ref.dtype)
        # PReLU's weight; an empty state dict for the parameter-free activations.
        new.load_state_dict(module.state_dict())
        parent_name, _, child_name = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child_name, new)
        swapped.append(name)
    return swapped


def test_model_covers_every_counterpart():
    """The model uses every torch.nn activation fusedact.nn has a counterpart for (a new
    counterpart must be added to _activations above)."""
    used = {name for name, _, _ in _activations()}
    assert len(used) == len(_activations()), "an activation appears twice"
    assert used == _torch_activation_names(), (
        f"missing from the model: {sorted(_torch_activation_names() - used)}; "
        f"not in fusedact.nn: {sorted(used - _torch_activation_names())}"
    )
    assert ("PReLU" in used) == HAS_PRELU


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_swapped_model_matches_torch(device, dtype):
    torch.manual_seed(0)
    x = torch.randn(BATCH, WIDTH, dtype=torch.float64).to(dtype=dtype, device=device)
    # eval(): RReLU's training slopes come from each library's own draws of the generator;
    # its eval slope, (lower + upper) / 2, is what two models can agree on. (Its training
    # mode is tested in test_rrelu.py.) No other module of the model depends on the mode.
    model = _build_model().to(device=device, dtype=dtype).eval()
    _calibrate(model, x)
    original_reprs = {name: repr(m) for name, m in model.named_modules() if name}

    swapped_model = copy.deepcopy(model)
    swapped = swap_activations(swapped_model)

    # Every activation was swapped, and nothing else.
    acts = _activations()
    assert len(swapped) == len(acts), swapped
    torch_classes = tuple(getattr(nn, name) for name, _, _ in acts)
    left = [n for n, m in swapped_model.named_modules() if type(m) in torch_classes]
    assert not left, f"torch activations left in the swapped model: {left}"
    for name in swapped:
        module = swapped_model.get_submodule(name)
        assert type(module) is getattr(fnn, type(model.get_submodule(name)).__name__)
        # Same attributes, hence the same repr (fusedact.nn reuses torch's extra_repr).
        assert repr(module) == original_reprs[name], (repr(module), original_reprs[name])

    # The state dict is interchangeable.
    ref_state, our_state = model.state_dict(), swapped_model.state_dict()
    assert list(our_state) == list(ref_state)
    for key in ref_state:
        assert torch.equal(our_state[key], ref_state[key]), key

    # Forward and backward on the same input and output gradient.
    grad_out = torch.randn(BATCH, WIDTH, dtype=torch.float64).to(dtype=dtype, device=device)
    x_ref = x.clone().requires_grad_()
    x_ours = x.clone().requires_grad_()
    y_ref = model(x_ref)
    y_ours = swapped_model(x_ours)
    assert_close(y_ours, y_ref)
    y_ref.backward(grad_out)
    y_ours.backward(grad_out)
    assert_close(x_ours.grad, x_ref.grad)

    ref_params = list(model.named_parameters())
    our_params = list(swapped_model.named_parameters())
    assert [n for n, _ in our_params] == [n for n, _ in ref_params]
    for (name, ours), (_, ref) in zip(our_params, ref_params):
        assert ours is not ref, name  # the copy's own parameters
        assert ours.grad is not None and ref.grad is not None, name
        assert_close(ours.grad, ref.grad, msg=lambda m, name=name: f"grad of {name}: {m}")
    # Every branch passes gradient (no activation zeroed its whole input), so every
    # activation's backward took part in the comparison.
    for name, branch in zip(swapped, model.branches):
        assert branch[0].weight.grad.abs().max() > 0, f"no gradient through {name}"
