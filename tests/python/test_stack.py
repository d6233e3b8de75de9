"""fusedact across the PyTorch stack: torch.compile, torch.export and TorchScript.

1. torch.compile: one model with a branch per registry op (every kind, the `.split` overload of
   the gated ops, the row-wise ops over the last dim, prelu/learnable_swish with their weights, rrelu in eval mode,
   rrelu_with_noise, in-place ops through fusedact.functional on non-leaves), compiled once with
   fullgraph=True, dynamic=True, then run at several batch sizes with no recompile; forward and
   the gradients of the input and of the weights match eager.
2. torch.export: a module with a representative set of ops exports (static and with a dynamic
   batch dim), keeps the fusedact ops in its graph, survives torch.export.save/load.
3. TorchScript: torch.ops.fusedact.* called directly (keyword parameters) under torch.jit.script
   and torch.jit.trace, with gradients and torch.jit.save/load; which fusedact.nn modules script.

The eager fusedact models are themselves checked against the torch compositions of the registry,
so every comparison is anchored to torch.
"""

from typing import List

import pytest
import torch
import torch._dynamo
import torch.nn.functional as F
from torch._dynamo.eval_frame import _debug_get_cache_entry_list
from torch._dynamo.backends.debugging import aot_eager, boxed_nop
from torch._dynamo.utils import counters
from torch.testing import assert_close

import fusedact.functional as FA
import fusedact.nn as FN
from conftest import randn
from fusedact.registry import OPS

CHANNELS = 4  # dim 1: prelu/learnable_swish weights have one element per channel
WIDTH = 8  # last dim: gated ops split it into halves of 4
BATCH_SIZES = (3, 5, 8, 13)


def _channel_view(w, x):
    """A per-channel weight (C,) shaped to broadcast against x (N, C, ...)."""
    return w.view(-1, *([1] * (x.dim() - 2)))


# --------------------------------------------------------------------------------------
# 1. torch.compile: every op in one model


def _branches():
    """(label, fusedact branch, torch branch) per op call; a branch is fn(module, x) with x of
    shape (N, CHANNELS, WIDTH)."""
    out = []
    for spec in OPS:
        params = dict(spec.params)  # the defaults (and threshold's sample values)
        if spec.kind == "unary":
            out.append((
                spec.name,
                lambda m, x, op=spec.op, p=params: op(x, **p),
                lambda m, x, ref=spec.reference, p=params: ref(x, **p),
            ))
        elif spec.kind == "gated":
            half = WIDTH // 2

            def packed_ref(m, x, spec=spec, p=params):
                first, second = x[..., :half], x[..., half:]
                gate, up = (first, second) if spec.gated_half == "first" else (second, first)
                return spec.reference(gate, up, **p)

            out.append((spec.name, lambda m, x, op=spec.op, p=params: op(x, **p, dim=-1), packed_ref))
            out.append((
                spec.name + ".split",
                lambda m, x, op=spec.op, p=params: op.split(x[..., :half], x[..., half:], **p),
                lambda m, x, ref=spec.reference, p=params: ref(x[..., :half], x[..., half:], **p),
            ))
        elif spec.kind == "rowwise":  # over the last dim (the registry's sample dim=-1)
            out.append((
                spec.name,
                lambda m, x, op=spec.op, p=params: op(x, **p),
                lambda m, x, ref=spec.reference, p=params: ref(x, **p),
            ))
        elif spec.name == "prelu":
            out.append(("prelu", lambda m, x: torch.ops.fusedact.prelu(x, m.prelu_weight),
                        lambda m, x: F.prelu(x, m.prelu_weight)))
        elif spec.name == "learnable_swish":
            out.append((
                "learnable_swish",
                lambda m, x: torch.ops.fusedact.learnable_swish(x, m.swish_weight),
                lambda m, x: x * torch.sigmoid(_channel_view(m.swish_weight, x) * x),
            ))
        elif spec.name == "rrelu":
            out.append(("rrelu(eval)", lambda m, x: torch.ops.fusedact.rrelu(x),
                        lambda m, x: F.rrelu(x, training=False)))
            out.append((
                "rrelu_with_noise",
                lambda m, x: torch.ops.fusedact.rrelu_with_noise(x, m.noise.expand_as(x)),
                lambda m, x: torch.where(x > 0, x, m.noise.expand_as(x) * x),
            ))
        else:
            raise AssertionError(f"test_stack.py does not know how to call {spec.name} ({spec.kind})")

    # In-place ops through fusedact.functional on a non-leaf (x * 1.5 of the input slice).
    def inplace(name, fa, ref):
        out.append((name + "(inplace)", lambda m, x: fa(x * 1.5), lambda m, x: ref(x * 1.5)))

    inplace("silu", lambda h: FA.silu(h, inplace=True), lambda h: F.silu(h, inplace=True))
    inplace("leaky_relu", lambda h: FA.leaky_relu(h, 0.2, inplace=True),
            lambda h: F.leaky_relu(h, 0.2, inplace=True))
    inplace("elu", lambda h: FA.elu(h, inplace=True), lambda h: F.elu(h, inplace=True))
    inplace("rrelu", lambda h: FA.rrelu(h, inplace=True), lambda h: F.rrelu(h, inplace=True))
    return out


BRANCHES = _branches()


class AllOps(torch.nn.Module):
    """Branch i applies op i to x[:, i] (x: (N, len(BRANCHES), CHANNELS, WIDTH)), so the
    gradient of x[:, i] is op i's alone. reference=True runs the torch compositions instead."""

    def __init__(self, reference=False):
        super().__init__()
        self.fns = [ref if reference else ours for _, ours, ref in BRANCHES]
        self.prelu_weight = torch.nn.Parameter(torch.tensor([0.25, -0.5, 0.1, 1.5]))
        self.swish_weight = torch.nn.Parameter(torch.tensor([1.0, 0.5, 2.0, -0.75]))
        self.register_buffer("noise", torch.linspace(0.1, 0.35, CHANNELS * WIDTH).view(CHANNELS, WIDTH))

    def forward(self, x):
        return tuple(fn(self, x[:, i]) for i, fn in enumerate(self.fns))


GATED_NAMES = {spec.name for spec in OPS if spec.kind == "gated"}


def _inputs(batch):
    """The input and one upstream gradient per branch (gated outputs are half as wide)."""
    g = torch.Generator().manual_seed(batch)
    x = torch.randn((batch, len(BRANCHES), CHANNELS, WIDTH), generator=g) * 3
    widths = [WIDTH // 2 if label.split(".")[0] in GATED_NAMES else WIDTH for label, _, _ in BRANCHES]
    grads = [torch.randn((batch, CHANNELS, w), generator=g) for w in widths]
    return x, grads


def _forward_backward(module, x, grads):
    x = x.detach().requires_grad_()
    outs = module(x)
    weights = [module.prelu_weight, module.swish_weight]
    gx, gprelu, gswish = torch.autograd.grad(outs, [x, *weights], grads)
    return [o.detach() for o in outs], gx, gprelu, gswish


def _assert_same(got, expected):
    outs, gx, gprelu, gswish = got
    e_outs, e_gx, e_gprelu, e_gswish = expected
    assert len(outs) == len(e_outs) == len(BRANCHES)
    for i, (label, _, _) in enumerate(BRANCHES):
        assert_close(outs[i], e_outs[i], equal_nan=True, msg=lambda m, label=label: f"{label} forward: {m}")
        assert_close(gx[:, i], e_gx[:, i], equal_nan=True,
                     msg=lambda m, label=label: f"{label} input grad: {m}")
    assert_close(gprelu, e_gprelu, msg=lambda m: f"prelu weight grad: {m}")
    assert_close(gswish, e_gswish, msg=lambda m: f"learnable_swish weight grad: {m}")


@pytest.fixture
def all_ops():
    model = AllOps()
    reference = AllOps(reference=True)
    reference.load_state_dict(model.state_dict())
    return model, reference


def test_eager_all_ops_matches_torch(all_ops):
    labels = [label for label, _, _ in BRANCHES]
    for spec in OPS:
        assert (spec.name if spec.kind != "random" else "rrelu(eval)") in labels, spec.name
        if spec.kind == "gated":
            assert spec.name + ".split" in labels
    assert "rrelu_with_noise" in labels and "rrelu(inplace)" in labels
    model, reference = all_ops
    for batch in (3, 13):
        x, grads = _inputs(batch)
        _assert_same(_forward_backward(model, x, grads), _forward_backward(reference, x, grads))


class AotEagerRecorder:
    """The aot_eager backend, keeping Dynamo's graph and AOT autograd's forward and backward."""

    def __init__(self):
        self.calls = 0
        self.graphs = {"dynamo": [], "forward": [], "backward": []}

    def _keep(self, kind):
        def compiler(gm, example_inputs):
            self.graphs[kind].append(gm)
            return boxed_nop(gm, example_inputs)

        return compiler

    def __call__(self, gm, example_inputs):
        self.calls += 1
        self.graphs["dynamo"].append(gm)
        return aot_eager(
            gm, example_inputs, fw_compiler=self._keep("forward"), bw_compiler=self._keep("backward")
        )


def _fusedact_calls(gm):
    """Names of the fusedact ops a graph calls: 'gelu', 'geglu.split', 'silu_' (also inside
    auto_functionalized, how AOT autograd carries an in-place op)."""
    names = set()
    for node in gm.graph.nodes:
        if node.op != "call_function":
            continue
        target = node.target
        if "auto_functionalized" in str(target):
            target = node.args[0]
        if isinstance(target, torch._ops.OpOverload) and target.namespace == "fusedact":
            overload = target._overloadname
            names.add(target._opname + ("" if overload == "default" else "." + overload))
        elif isinstance(target, torch._ops.OpOverloadPacket):
            namespace, _, name = target._qualified_op_name.partition("::")
            if namespace == "fusedact":
                names.add(name)
    return names


def _expected_calls(suffix=""):
    names = {spec.name + suffix for spec in OPS if spec.kind != "random"}
    names |= {spec.name + suffix + ".split" for spec in OPS if spec.kind == "gated"}
    return names


def test_compile_all_ops_dynamic_one_graph_no_recompile(all_ops):
    model, _ = all_ops
    torch._dynamo.reset()
    counters.clear()
    backend = AotEagerRecorder()
    compiled = torch.compile(model, backend=backend, fullgraph=True, dynamic=True)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for batch in BATCH_SIZES:
            x, grads = _inputs(batch)
            _assert_same(_forward_backward(compiled, x, grads), _forward_backward(model, x, grads))
    # One compiled entry for forward, one graph, through AOT autograd once, no graph break, no
    # recompile. (The backend is called twice: under dynamic=True Dynamo first traces the float
    # parameters as SymFloats, AOT's tensorify_python_scalars pass restarts the analysis to
    # specialize them, and the aborted first attempt reaches the backend with an emptied graph.
    # A model of torch's own activations does the same.)
    assert len(_debug_get_cache_entry_list(model.forward.__code__)) == 1
    assert counters["stats"]["unique_graphs"] == 1
    assert counters["aot_autograd"]["ok"] == 1
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert not counters["recompiles"], dict(counters["recompiles"])
    assert len(backend.graphs["forward"]) == len(backend.graphs["backward"]) == 1
    dynamo_graph = backend.graphs["dynamo"][-1]
    # The batch dim is symbolic, not specialized to the first size.
    (x_val,) = [n.meta["example_value"] for n in dynamo_graph.graph.nodes
                if n.op == "placeholder" and isinstance(n.meta["example_value"], torch.Tensor)
                and n.meta["example_value"].dim() == 4]
    assert isinstance(x_val.shape[0], torch.SymInt)
    # Every op stays one opaque fusedact call: in Dynamo's graph, in AOT's forward (in-place ops
    # functionalized; rrelu/rrelu_ are CompositeImplicitAutograd and become leaky_relu/_ in
    # eval) and in AOT's backward (the X_backward ops, the result-saving ones for in-place).
    inplace = {"silu_", "leaky_relu_", "elu_"}
    missing = _expected_calls() | inplace | {"rrelu", "rrelu_", "rrelu_with_noise"}
    missing -= _fusedact_calls(dynamo_graph)
    assert not missing, f"not in Dynamo's graph: {sorted(missing)}"
    missing = _expected_calls() | inplace | {"rrelu_with_noise"}
    missing -= _fusedact_calls(backend.graphs["forward"][0])
    assert not missing, f"not in AOT's forward graph: {sorted(missing)}"
    expected_backward = _expected_calls("_backward") | {
        "rrelu_with_noise_backward", "leaky_relu_result_backward", "elu_result_backward"}
    missing = expected_backward - _fusedact_calls(backend.graphs["backward"][0])
    assert not missing, f"not in AOT's backward graph: {sorted(missing)}"


def test_compile_all_ops_inductor_dynamic(all_ops):
    model, _ = all_ops
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, dynamic=True)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for batch in (5, 13):
            x, grads = _inputs(batch)
            _assert_same(_forward_backward(compiled, x, grads), _forward_backward(model, x, grads))


# --------------------------------------------------------------------------------------
# 2. torch.export


class ExportNet(torch.nn.Module):
    """Unary ops with parameters, a gated op packed and one split, prelu with its Parameter, a
    row-wise op."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor([0.25, -0.5, 0.1, 1.5]))

    def forward(self, x):
        half = x.shape[-1] // 2
        return (
            torch.ops.fusedact.gelu(x, approximate="tanh"),
            torch.ops.fusedact.leaky_relu(x, negative_slope=0.2),
            torch.ops.fusedact.softplus(x, beta=2.0, threshold=5.0),
            torch.ops.fusedact.swiglu(x, dim=-1),
            torch.ops.fusedact.geglu.split(x[..., :half], x[..., half:], approximate="tanh"),
            torch.ops.fusedact.prelu(x, self.weight),
            torch.ops.fusedact.log_softmax(x, dim=1),
        )


def export_net_reference(net, x):
    gate, up = x[..., :4], x[..., 4:]
    return (
        F.gelu(x, approximate="tanh"),
        F.leaky_relu(x, 0.2),
        F.softplus(x, 2.0, 5.0),
        F.silu(gate) * up,
        F.gelu(gate, approximate="tanh") * up,
        F.prelu(x, net.weight),
        F.log_softmax(x, dim=1),
    )


EXPORTED_OPS = {
    torch.ops.fusedact.gelu.default,
    torch.ops.fusedact.leaky_relu.default,
    torch.ops.fusedact.softplus.default,
    torch.ops.fusedact.swiglu.default,
    torch.ops.fusedact.geglu.split,
    torch.ops.fusedact.prelu.default,
    torch.ops.fusedact.log_softmax.default,
}
# What these ops would turn into had they been decomposed or replaced by torch's.
TORCH_ACTIVATIONS = {
    "gelu", "leaky_relu", "softplus", "silu", "sigmoid", "tanh", "erf", "prelu", "_prelu_kernel",
    "log_softmax", "_log_softmax", "softmax", "_softmax", "logsumexp", "amax", "exp",
}


def _assert_graph_keeps_fusedact_ops(ep):
    targets = [n.target for n in ep.graph.nodes if n.op == "call_function"]
    fused = [t for t in targets if isinstance(t, torch._ops.OpOverload) and t.namespace == "fusedact"]
    assert set(fused) == EXPORTED_OPS and len(fused) == len(EXPORTED_OPS), fused
    aten = {t._opname for t in targets if isinstance(t, torch._ops.OpOverload) and t.namespace == "aten"}
    assert not aten & TORCH_ACTIVATIONS, f"activation decomposed into aten ops: {aten & TORCH_ACTIVATIONS}"


def _run_with_grads(module, weight, x):
    x = x.detach().requires_grad_()
    outs = module(x)
    loss = sum((o * (k + 1)).sum() for k, o in enumerate(outs))
    gx, gw = torch.autograd.grad(loss, [x, weight])
    return [o.detach() for o in outs], gx, gw


@pytest.fixture
def export_net():
    net = ExportNet()
    x = randn((3, CHANNELS, WIDTH))
    assert_close(net(x), export_net_reference(net, x))  # eager fusedact == torch
    return net


def test_export_static(export_net):
    x = randn((3, CHANNELS, WIDTH))
    ep = torch.export.export(export_net, (x,))
    _assert_graph_keeps_fusedact_ops(ep)
    _assert_graph_keeps_fusedact_ops(ep.run_decompositions())
    assert_close(ep.module()(x), export_net(x))
    assert_close(ep.run_decompositions().module()(x), export_net(x))


def test_export_dynamic_batch_save_load(export_net, tmp_path):
    batch = torch.export.Dim("batch", min=2, max=1024)
    ep = torch.export.export(export_net, (randn((3, CHANNELS, WIDTH)),), dynamic_shapes={"x": {0: batch}})
    _assert_graph_keeps_fusedact_ops(ep)
    x_node = next(n for n in ep.graph.nodes if n.op == "placeholder" and n.name == "x")
    assert isinstance(x_node.meta["val"].shape[0], torch.SymInt)

    exported = ep.module()
    for n in (2, 5, 13):
        x = randn((n, CHANNELS, WIDTH))
        assert_close(exported(x), export_net(x))
    # Gradients flow through the exported module (the fusedact autograd kernels run).
    x = randn((5, CHANNELS, WIDTH))
    expected = _run_with_grads(export_net, export_net.weight, x)
    assert_close(_run_with_grads(exported, exported.weight, x), expected)

    path = tmp_path / "export_net.pt2"
    torch.export.save(ep, path)
    loaded = torch.export.load(path)
    _assert_graph_keeps_fusedact_ops(loaded)
    for n in (2, 7):
        x = randn((n, CHANNELS, WIDTH))
        assert_close(loaded.module()(x), export_net(x))


# --------------------------------------------------------------------------------------
# 3. TorchScript


class ScriptNet(torch.nn.Module):
    """torch.ops.fusedact.* called directly with keyword parameters, one of each kind (the
    row-wise softmax too).

    TorchScript cannot name an overload: `torch.ops.fusedact.geglu.split(...)` fails to script
    with "attribute lookup is not defined on builtin". There the packet is called with
    (gate, up) and the compiler picks the `.split` overload by its schema. Python (eager,
    torch.jit.trace) names `.split`: the packet's overload resolution tries the packed schema
    first and converts `up` to its str/int argument on the way (a tensor repr: slow, and
    TracerWarnings under torch.jit.trace)."""

    def __init__(self):
        super().__init__()
        self.prelu_weight = torch.nn.Parameter(torch.tensor([0.25, -0.5, 0.1, 1.5]))
        self.swish_weight = torch.nn.Parameter(torch.tensor([1.0, 0.5, 2.0, -0.75]))

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> List[torch.Tensor]:
        gate = x[..., :4]
        up = x[..., 4:]
        if torch.jit.is_scripting():
            geglu_split = torch.ops.fusedact.geglu(gate, up, approximate="tanh")
            reglu_split = torch.ops.fusedact.reglu(gate, up)
        else:
            geglu_split = torch.ops.fusedact.geglu.split(gate, up, approximate="tanh")
            reglu_split = torch.ops.fusedact.reglu.split(gate, up)
        h = x * 1.5
        torch.ops.fusedact.silu_(h)
        k = x - 0.25
        torch.ops.fusedact.leaky_relu_(k, negative_slope=0.2)
        return [
            torch.ops.fusedact.gelu(x, approximate="tanh"),
            torch.ops.fusedact.leaky_relu(x, negative_slope=0.2),
            torch.ops.fusedact.softplus(x, beta=2.0, threshold=5.0),
            torch.ops.fusedact.hardtanh(x, min_val=-2.0, max_val=0.5),
            torch.ops.fusedact.threshold(x, threshold=0.5, value=-2.0),
            torch.ops.fusedact.mish(x),
            torch.ops.fusedact.swiglu(x, dim=-1),
            torch.ops.fusedact.glu(x, dim=-1),
            torch.ops.fusedact.geglu(x, approximate="tanh", dim=-1),
            geglu_split,
            reglu_split,
            torch.ops.fusedact.prelu(x, weight=self.prelu_weight),
            torch.ops.fusedact.learnable_swish(x, weight=self.swish_weight),
            torch.ops.fusedact.rrelu(x, lower=0.1, upper=0.3, training=False),
            torch.ops.fusedact.rrelu_with_noise(x, noise=noise),
            torch.ops.fusedact.softmax(x, dim=1),
            h,
            k,
        ]


def _tanh_gelu(x):
    """torch's tanh-GELU in float64, rounded to x's dtype (conftest.reference_input: torch's
    float32 tanh-GELU cancels for x < -4, fusedact's does not)."""
    return F.gelu(x.double(), approximate="tanh").to(x.dtype)


def script_net_reference(net, x, noise):
    gate, up = x[..., :4], x[..., 4:]
    return [
        _tanh_gelu(x),
        F.leaky_relu(x, 0.2),
        F.softplus(x, 2.0, 5.0),
        F.hardtanh(x, -2.0, 0.5),
        F.threshold(x, 0.5, -2.0),
        F.mish(x),
        F.silu(gate) * up,
        F.glu(x, dim=-1),
        _tanh_gelu(gate) * up,
        _tanh_gelu(gate) * up,
        F.relu(gate) * up,
        F.prelu(x, net.prelu_weight),
        x * torch.sigmoid(_channel_view(net.swish_weight, x) * x),
        F.rrelu(x, 0.1, 0.3, training=False),
        torch.where(x > 0, x, noise * x),
        F.softmax(x, dim=1),
        F.silu(x * 1.5),
        F.leaky_relu(x - 0.25, 0.2),
    ]


# torch 2.11 deprecates TorchScript (torch.jit.script/trace/save/load warn); it still works.
jit_deprecated = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")


def _script_inputs(batch):
    g = torch.Generator().manual_seed(100 + batch)
    x = torch.randn((batch, CHANNELS, WIDTH), generator=g) * 3
    noise = torch.rand((batch, CHANNELS, WIDTH), generator=g) * 0.5
    return x, noise


def _script_run(fn, net, x, noise):
    """Outputs and gradients of x and both weights of sum_k (k + 1) * out_k."""
    x = x.detach().requires_grad_()
    outs = fn(x, noise)
    loss = sum((o * (k + 1)).sum() for k, o in enumerate(outs))
    grads = torch.autograd.grad(loss, [x, net.prelu_weight, net.swish_weight])
    return [o.detach() for o in outs], list(grads)


def _check_script_module(module, net):
    for batch in (3, 5, 8):  # the profiling executor optimizes the graph after the first runs
        x, noise = _script_inputs(batch)
        got = _script_run(module, module, x, noise)
        assert_close(got, _script_run(net, net, x, noise))


@pytest.fixture
def script_net():
    net = ScriptNet()
    x, noise = _script_inputs(4)
    expected = _script_run(lambda t, n: script_net_reference(net, t, n), net, x, noise)
    assert_close(_script_run(net, net, x, noise), expected)  # eager fusedact == torch
    return net


@jit_deprecated
def test_torchscript_script(script_net, tmp_path):
    scripted = torch.jit.script(script_net)
    nodes = {n.kind() for n in scripted.graph.nodes()}
    for name in ("gelu", "silu_", "geglu", "reglu", "prelu", "learnable_swish", "rrelu", "rrelu_with_noise",
                 "softmax"):
        assert f"fusedact::{name}" in nodes, f"fusedact::{name} not in the scripted graph"
    _check_script_module(scripted, script_net)

    path = tmp_path / "script_net.pt"
    torch.jit.save(scripted, str(path))
    _check_script_module(torch.jit.load(str(path)), script_net)


@jit_deprecated
def test_torchscript_trace(script_net, tmp_path):
    traced = torch.jit.trace(script_net, _script_inputs(4), strict=False)
    nodes = {n.kind() for n in traced.graph.nodes()}
    for name in ("gelu", "silu_", "leaky_relu_", "geglu", "prelu", "learnable_swish", "rrelu_with_noise",
                 "softmax"):
        assert f"fusedact::{name}" in nodes, f"fusedact::{name} not in the traced graph"
    _check_script_module(traced, script_net)

    path = tmp_path / "traced_net.pt"
    torch.jit.save(traced, str(path))
    _check_script_module(torch.jit.load(str(path)), script_net)


# fusedact.nn modules under torch.jit.script. PReLU and RReLU (written out by hand, typed
# forward, fusedact.functional.prelu/rrelu with plain signatures) script, and so do Softmax,
# LogSoftmax and Softmin. The modules nn.py
# generates from the registry do not: their forward is
#     return fn(input, **{name: getattr(self, name) for name in names})
# and TorchScript rejects the `**` expansion ("keyword-arg expansion is not supported",
# nn.py forward); behind it, the generated fusedact.functional function they call is
# `def fn(*args, **kwargs)` bound with inspect.Signature, which TorchScript rejects too
# ("Compiled functions can't take variable number of arguments", functional.py). Swish scripts
# in neither mode: TorchScript compiles both branches of its forward, so with learnable=False
# `self.beta` is a float ("'float' object has no attribute or method 'to'") and with
# learnable=True the other branch calls the generated FA.swish (*args/**kwargs).
NotSupportedError = torch.jit.frontend.NotSupportedError
GENERATED_REASON = (
    "fusedact.nn's generated modules call fn(input, **{name: getattr(self, name) ...}): TorchScript "
    "rejects keyword-arg expansion, and the generated fusedact.functional fn(*args, **kwargs) it calls "
    "is not scriptable either"
)


def _unscriptable(reason, raises=NotSupportedError):
    return pytest.mark.xfail(strict=True, raises=raises, reason=reason)


SCRIPT_MODULES = [
    pytest.param(lambda: FN.GELU(approximate="tanh"), lambda x: F.gelu(x, approximate="tanh"),
                 marks=_unscriptable(GENERATED_REASON), id="GELU"),
    pytest.param(lambda: FN.LeakyReLU(0.2), lambda x: F.leaky_relu(x, 0.2),
                 marks=_unscriptable(GENERATED_REASON), id="LeakyReLU"),
    pytest.param(lambda: FN.SwiGLU(), lambda x: F.silu(x[..., :4]) * x[..., 4:],
                 marks=_unscriptable(GENERATED_REASON), id="SwiGLU"),
    pytest.param(lambda: FN.Swish(0.5), lambda x: x * torch.sigmoid(0.5 * x),
                 marks=_unscriptable("TorchScript compiles both branches of Swish.forward; with "
                                     "learnable=False self.beta is a float: \"'float' object has no "
                                     "attribute or method 'to'\"", raises=RuntimeError),
                 id="Swish"),
    pytest.param(lambda: FN.Swish(0.5, learnable=True), lambda x: x * torch.sigmoid(0.5 * x),
                 marks=_unscriptable("the other branch of Swish.forward calls "
                                     "fusedact.functional.swish, generated at import with no "
                                     "source file: TorchScript raises 'could not get source code'",
                                     raises=OSError),
                 id="Swish-learnable"),
    pytest.param(lambda: FN.PReLU(CHANNELS, init=0.3), lambda x: F.prelu(x, torch.full((CHANNELS,), 0.3)),
                 id="PReLU"),
    pytest.param(lambda: FN.RReLU(0.1, 0.3).eval(), lambda x: F.rrelu(x, 0.1, 0.3, training=False),
                 id="RReLU-eval"),
    # The row-wise modules and functions are written out (typed, no **kwargs): they script,
    # as torch.nn.Softmax & co do (replace_activations swaps those in models one may script).
    pytest.param(lambda: FN.Softmax(dim=1), lambda x: F.softmax(x, 1), id="Softmax"),
    pytest.param(lambda: FN.LogSoftmax(dim=-1), lambda x: F.log_softmax(x, -1), id="LogSoftmax"),
    pytest.param(lambda: FN.Softmin(dim=0), lambda x: F.softmin(x, 0), id="Softmin"),
]


@jit_deprecated
@pytest.mark.parametrize("make,reference", SCRIPT_MODULES)
def test_torchscript_fusedact_nn_module(make, reference):
    module = make()
    scripted = torch.jit.script(module)
    x = randn((3, CHANNELS, WIDTH))
    for _ in range(3):
        leaf = x.clone().requires_grad_()
        y = scripted(leaf)
        (gx,) = torch.autograd.grad(y, leaf, torch.ones_like(y))
        ref_leaf = x.clone().requires_grad_()
        expected = reference(ref_leaf)
        (ref_gx,) = torch.autograd.grad(expected, ref_leaf, torch.ones_like(expected))
        assert_close((y.detach(), gx), (expected.detach(), ref_gx))
