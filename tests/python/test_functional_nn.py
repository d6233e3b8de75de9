"""fusedact.functional and fusedact.nn vs torch.nn.functional / torch.nn and the gated
compositions, including inplace=True."""

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import fusedact
import fusedact.functional as FA
import fusedact.nn as FN
from conftest import DEVICES, ROWWISE_CASES, TORCH_HAS_NO_DOUBLE_BACKWARD, randn
from fusedact.registry import OPS

import functools
import inspect
import pickle
import warnings

device_param = pytest.mark.parametrize("device", DEVICES)


def _fwd_bwd(fn, x):
    x = x.detach().requires_grad_()
    y = fn(x)
    (gx,) = torch.autograd.grad(y, x, torch.linspace(-2, 2, y.numel(), device=y.device).view_as(y))
    return y.detach(), gx


def _swiglu_ref(x, dim=-1):
    a, b = x.chunk(2, dim)
    return F.silu(a) * b


def _geglu_ref(x, approximate="none", dim=-1):
    a, b = x.chunk(2, dim)
    return F.gelu(a, approximate=approximate) * b


def _reglu_ref(x, dim=-1):
    a, b = x.chunk(2, dim)
    return F.relu(a) * b


# (fusedact callable, torch callable) pairs on the same input.
FUNCTIONAL_PAIRS = {
    "gelu": (FA.gelu, F.gelu),
    "gelu-tanh": (lambda x: FA.gelu(x, approximate="tanh"), lambda x: F.gelu(x, approximate="tanh")),
    "gelu-tanh-positional": (lambda x: FA.gelu(x, "tanh"), lambda x: F.gelu(x, approximate="tanh")),
    "silu": (FA.silu, F.silu),
    "mish": (FA.mish, F.mish),
    "glu": (FA.glu, F.glu),
    "glu-dim0": (lambda x: FA.glu(x, dim=0), lambda x: F.glu(x, dim=0)),
    "glu-dim0-positional": (lambda x: FA.glu(x, 0), lambda x: F.glu(x, 0)),
    "swiglu": (FA.swiglu, _swiglu_ref),
    "swiglu-dim0": (lambda x: FA.swiglu(x, dim=0), lambda x: _swiglu_ref(x, dim=0)),
    "geglu": (FA.geglu, _geglu_ref),
    "geglu-tanh": (lambda x: FA.geglu(x, approximate="tanh"), lambda x: _geglu_ref(x, "tanh")),
    "geglu-tanh-dim0": (
        lambda x: FA.geglu(x, "tanh", 0),
        lambda x: _geglu_ref(x, "tanh", 0),
    ),
    "reglu": (FA.reglu, _reglu_ref),
    "reglu-dim0": (lambda x: FA.reglu(x, dim=0), lambda x: _reglu_ref(x, dim=0)),
    "silu-inplace-false": (lambda x: FA.silu(x, inplace=False), lambda x: F.silu(x, inplace=False)),
    "mish-inplace-false": (lambda x: FA.mish(x, inplace=False), lambda x: F.mish(x, inplace=False)),
}


@device_param
@pytest.mark.parametrize("name", list(FUNCTIONAL_PAIRS))
def test_functional_matches_torch(name, device):
    ours, theirs = FUNCTIONAL_PAIRS[name]
    x = randn((6, 10), torch.float32, device)
    assert_close(_fwd_bwd(ours, x), _fwd_bwd(theirs, x), equal_nan=True)


SPLIT_PAIRS = {
    "glu_split": (FA.glu_split, lambda g, u: u * torch.sigmoid(g)),
    "swiglu_split": (FA.swiglu_split, lambda g, u: F.silu(g) * u),
    "geglu_split": (FA.geglu_split, lambda g, u: F.gelu(g) * u),
    "geglu_split-tanh": (
        lambda g, u: FA.geglu_split(g, u, approximate="tanh"),
        lambda g, u: F.gelu(g, approximate="tanh") * u,
    ),
    "reglu_split": (FA.reglu_split, lambda g, u: F.relu(g) * u),
}


@device_param
@pytest.mark.parametrize("name", list(SPLIT_PAIRS))
def test_functional_split_matches_composition(name, device):
    ours, theirs = SPLIT_PAIRS[name]
    gate, up = randn((5, 7), torch.float32, device), randn((5, 7), torch.float32, device)

    def run(fn):
        a, b = gate.detach().requires_grad_(), up.detach().requires_grad_()
        y = fn(a, b)
        return (y.detach(), *torch.autograd.grad(y, (a, b), torch.ones_like(y)))

    assert_close(run(ours), run(theirs), equal_nan=True)


def test_functional_glu_of_packed_matches_torch_glu_convention():
    # torch's glu: first half * sigmoid(second half); split: up * sigmoid(gate).
    x = randn((4, 10))
    a, b = x.chunk(2, -1)
    assert_close(FA.glu(x), a * torch.sigmoid(b))
    assert_close(FA.glu_split(b, a), F.glu(x))


# --------------------------------------------------------------------------------------
# Modules

MODULE_PAIRS = {
    "GELU": (lambda: FN.GELU(), lambda: torch.nn.GELU()),
    "GELU-tanh": (lambda: FN.GELU(approximate="tanh"), lambda: torch.nn.GELU(approximate="tanh")),
    "SiLU": (lambda: FN.SiLU(), lambda: torch.nn.SiLU()),
    "Mish": (lambda: FN.Mish(), lambda: torch.nn.Mish()),
    "GLU": (lambda: FN.GLU(), lambda: torch.nn.GLU()),
    "GLU-dim0": (lambda: FN.GLU(dim=0), lambda: torch.nn.GLU(dim=0)),
    "GLU-dim0-positional": (lambda: FN.GLU(0), lambda: torch.nn.GLU(0)),
}

COMPOSITION_MODULES = {
    "SwiGLU": (lambda: FN.SwiGLU(), _swiglu_ref),
    "SwiGLU-dim0": (lambda: FN.SwiGLU(dim=0), lambda x: _swiglu_ref(x, 0)),
    "GeGLU": (lambda: FN.GeGLU(), _geglu_ref),
    "GeGLU-tanh": (lambda: FN.GeGLU(approximate="tanh"), lambda x: _geglu_ref(x, "tanh")),
    "GeGLU-tanh-dim0": (lambda: FN.GeGLU("tanh", 0), lambda x: _geglu_ref(x, "tanh", 0)),
    "ReGLU": (lambda: FN.ReGLU(), _reglu_ref),
    "ReGLU-dim0": (lambda: FN.ReGLU(dim=0), lambda x: _reglu_ref(x, 0)),
}


@device_param
@pytest.mark.parametrize("name", list(MODULE_PAIRS))
def test_module_matches_torch_module(name, device):
    make_ours, make_theirs = MODULE_PAIRS[name]
    ours, theirs = make_ours(), make_theirs()
    assert repr(ours) == repr(theirs)
    assert list(ours.parameters()) == []
    x = randn((6, 10), torch.float32, device)
    assert_close(_fwd_bwd(ours, x), _fwd_bwd(theirs, x), equal_nan=True)


@device_param
@pytest.mark.parametrize("name", list(COMPOSITION_MODULES))
def test_gated_module_matches_composition(name, device):
    make_ours, ref = COMPOSITION_MODULES[name]
    x = randn((6, 10), torch.float32, device)
    assert_close(_fwd_bwd(make_ours(), x), _fwd_bwd(ref, x), equal_nan=True)


@pytest.mark.parametrize("name", ["SiLU", "Mish"])
def test_inplace_module_repr_matches_torch(name):
    assert repr(getattr(FN, name)(inplace=True)) == repr(getattr(torch.nn, name)(inplace=True))


def _module_args(spec):
    """The constructor arguments of torch.nn.<module> (the row-wise modules take `dim` only,
    not the functional's `dtype`)."""
    return set(inspect.signature(getattr(torch.nn, spec.module)).parameters)


# Every registry module that torch.nn also has, with each parameter set of the op that its
# constructor takes: same constructor kwargs, same repr, no parameters, same outputs and
# input gradients.
TORCH_MODULE_CASES = [
    pytest.param(spec, params, id=f"{spec.module}-" + "-".join(f"{k}={v}" for k, v in params.items()))
    for spec in OPS
    # PReLU and RReLU (parameters, randomness) have test_prelu.py and test_rrelu.py.
    if hasattr(torch.nn, spec.module) and spec.kind not in ("weighted", "random")
    for params in spec.param_sets
    if set(params) <= _module_args(spec)  # Softmax(dim=-1, dtype=...) is no torch.nn constructor
]


@device_param
@pytest.mark.parametrize("spec,params", TORCH_MODULE_CASES)
def test_every_module_is_a_drop_in_for_torch(spec, params, device):
    kwargs = {**(spec.params if spec.required_params else {}), **params}
    kwargs = {k: v for k, v in kwargs.items() if k in _module_args(spec)}
    ours, theirs = getattr(FN, spec.module)(**kwargs), getattr(torch.nn, spec.module)(**kwargs)
    assert repr(ours) == repr(theirs)
    assert list(ours.parameters()) == []
    x = randn((6, 10), torch.float32, device)
    assert_close(_fwd_bwd(ours, x), _fwd_bwd(theirs, x), equal_nan=True)


def test_ops_alias():
    assert fusedact.ops is torch.ops.fusedact


# --------------------------------------------------------------------------------------
# Row-wise ops: fusedact.functional.softmax / log_softmax / softmin and fusedact.nn.Softmax /
# LogSoftmax / Softmin against torch's, including dim=None (torch's deprecated implicit dim).

ROWWISE = [pytest.param(s, id=s.name) for s in OPS if s.kind == "rowwise"]


@device_param
@pytest.mark.parametrize("spec,params", ROWWISE_CASES)
def test_rowwise_functional_matches_torch(spec, params, device):
    ours, theirs = getattr(FA, spec.name), getattr(F, spec.name)
    x = randn((6, 10), torch.float32, device)
    assert_close(_fwd_bwd(lambda t: ours(t, **params), x), _fwd_bwd(lambda t: theirs(t, **params), x),
                 equal_nan=True)
    # Positionally, as torch's (input, dim, _stacklevel, dtype).
    args = (params["dim"], 3, params.get("dtype"))
    y = ours(x, *args)
    assert y.dtype == (params.get("dtype") or x.dtype)
    assert_close(y, theirs(x, *args), equal_nan=True)


@pytest.mark.parametrize("spec", ROWWISE)
def test_rowwise_functional_signature_is_torchs(spec):
    def shape(fn):
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]

    assert shape(getattr(FA, spec.name)) == shape(getattr(F, spec.name))
    assert shape(getattr(FN, spec.module)) == shape(getattr(torch.nn, spec.module))


def _with_warnings(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = fn()
    return y, [(w.category, str(w.message), w.filename, w.lineno) for w in caught]


@pytest.mark.parametrize("ndim", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("spec", ROWWISE)
def test_rowwise_implicit_dim_matches_torch(spec, ndim):
    """dim=None: torch's legacy choice (dim 0 for 0-, 1- and 3-dim inputs, else 1) and its
    deprecation UserWarning, attributed to the same frame as torch's (the caller for the
    functional, the same line of torch's Module.__call__ machinery for the module)."""
    x = randn((2, 3, 4, 5)[:ndim], torch.float32)
    implicit = 0 if ndim in (0, 1, 3) else 1
    for ours_fn, theirs_fn in [
        (lambda: getattr(FA, spec.name)(x), lambda: getattr(F, spec.name)(x)),
        (lambda: getattr(FA, spec.name)(x, None), lambda: getattr(F, spec.name)(x, None)),
        (lambda: getattr(FN, spec.module)()(x), lambda: getattr(torch.nn, spec.module)()(x)),
    ]:
        ours, ours_warnings = _with_warnings(ours_fn)
        theirs, theirs_warnings = _with_warnings(theirs_fn)
        assert_close(ours, theirs)
        assert_close(ours, getattr(F, spec.name)(x, implicit))
        assert len(theirs_warnings) == 1 and theirs_warnings[0][0] is UserWarning
        assert f"Implicit dimension choice for {spec.name} has been deprecated" in theirs_warnings[0][1]
        # Same category, message, file and line.
        assert ours_warnings == theirs_warnings


@pytest.mark.parametrize("spec", ROWWISE)
def test_rowwise_explicit_dim_does_not_warn(spec):
    x = randn((2, 3), torch.float32)
    for fn in (lambda: getattr(FA, spec.name)(x, 1), lambda: getattr(FN, spec.module)(dim=0)(x)):
        _, caught = _with_warnings(fn)
        assert caught == []


@pytest.mark.parametrize("dim", [None, 0, 1, -1])
@pytest.mark.parametrize("spec", ROWWISE)
def test_rowwise_module_attributes_repr_and_pickle(spec, dim):
    ours, theirs = getattr(FN, spec.module)(dim), getattr(torch.nn, spec.module)(dim)
    assert ours.dim == theirs.dim == dim
    assert repr(ours) == repr(theirs) == f"{spec.module}(dim={dim})"
    assert list(ours.parameters()) == [] and ours.state_dict() == {}
    again = pickle.loads(pickle.dumps(ours))
    assert type(again) is type(ours) and again.dim == dim
    # A module pickled before `dim` existed (torch's __setstate__ gives it dim=None).
    state = ours.__getstate__() if hasattr(ours, "__getstate__") else dict(ours.__dict__)
    state = {k: v for k, v in state.items() if k != "dim"}
    old = type(ours).__new__(type(ours))
    old.__setstate__(state)
    assert old.dim is None


@device_param
@pytest.mark.parametrize("dim", [0, 1, -1, -3])
@pytest.mark.parametrize("spec", ROWWISE)
def test_rowwise_module_matches_torch_module(spec, dim, device):
    x = randn((3, 4, 5), torch.float32, device)
    ours, theirs = getattr(FN, spec.module)(dim=dim), getattr(torch.nn, spec.module)(dim=dim)
    assert_close(_fwd_bwd(ours, x), _fwd_bwd(theirs, x), equal_nan=True)


@device_param
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16], ids=["f64", "f16", "bf16"])
@pytest.mark.parametrize("spec", ROWWISE)
def test_rowwise_functional_dtype_casts_first_as_torch(spec, dtype, device):
    """dtype= casts the input first (autograd records the cast: the input's gradient comes back
    in the input's dtype), for floating and integer inputs."""
    x = randn((4, 7), torch.float32, device)
    ours, theirs = getattr(FA, spec.name), getattr(F, spec.name)
    y_ours, g_ours = _fwd_bwd(lambda t: ours(t, -1, dtype=dtype), x)
    y_theirs, g_theirs = _fwd_bwd(lambda t: theirs(t, -1, dtype=dtype), x)
    assert y_ours.dtype == y_theirs.dtype == dtype and g_ours.dtype == g_theirs.dtype == torch.float32
    if dtype == torch.float64:
        assert_close((y_ours, g_ours), (y_theirs, g_theirs))
    else:
        # float16/bfloat16: fusedact computes in float32 and rounds once (DESIGN.md); torch's
        # half log_softmax rounds x - max to the half type first (-0.0298 for -0.0302 at
        # x = 2.9985 in float16), so the reference is torch in float32 on the cast values,
        # rounded. The half-type backward numerics are test_softmax.py's.
        assert_close(y_ours, theirs(x.to(dtype).float(), -1).to(dtype), equal_nan=True)
    n = torch.arange(-6, 6, device=device).reshape(3, 4)
    assert_close(ours(n, 0, dtype=dtype), theirs(n, 0, dtype=dtype))


# --------------------------------------------------------------------------------------
# inplace=True

# Every op with an in-place form: (fusedact functional, torch functional, fusedact module),
# with the op's parameters bound (threshold has no defaults).
INPLACE = {
    spec.name: (
        functools.partial(getattr(FA, spec.name), **spec.params),
        functools.partial(getattr(F, spec.name), **spec.params),
        functools.partial(getattr(FN, spec.module), **spec.params),
    )
    for spec in OPS
    if spec.inplace and spec.kind != "random"  # rrelu_: test_rrelu.py
}


@device_param
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", list(INPLACE))
def test_inplace_modifies_and_returns_input(name, dtype, device):
    ours, theirs, _ = INPLACE[name]
    x = randn((5, 13), dtype, device)
    expected = theirs(x.clone())
    ptr, version = x.data_ptr(), x._version
    y = ours(x, inplace=True)
    assert y is x
    assert y.data_ptr() == ptr
    assert x._version > version
    assert_close(x, expected, equal_nan=True)


@device_param
@pytest.mark.parametrize("layout", ["transposed", "channels_last", "strided"])
@pytest.mark.parametrize("name", list(INPLACE))
def test_inplace_non_contiguous(name, layout, device):
    ours, theirs, _ = INPLACE[name]
    if layout == "transposed":
        x = randn((13, 5), torch.float32, device).t()
    elif layout == "channels_last":
        x = randn((2, 3, 4, 5), torch.float32, device).contiguous(memory_format=torch.channels_last)
    else:
        base = randn((5, 26), torch.float32, device)
        x = base[:, ::2]
        untouched = base[:, 1::2].clone()
    stride = x.stride()
    expected = theirs(x.clone())
    y = ours(x, inplace=True)
    assert y is x and x.stride() == stride
    assert_close(x, expected)
    if layout == "strided":
        # Elements between the strided ones are not written.
        assert torch.equal(base[:, 1::2], untouched)


@device_param
@pytest.mark.parametrize("name", list(INPLACE))
def test_inplace_module(name, device):
    _, theirs, module = INPLACE[name]
    x = randn((4, 9), torch.float32, device)
    expected = theirs(x.clone())
    y = module(inplace=True)(x)
    assert y is x
    assert_close(x, expected)


@device_param
@pytest.mark.parametrize("name", list(INPLACE))
def test_inplace_grad_on_non_leaf_matches_torch(name, device):
    ours, theirs, _ = INPLACE[name]
    x0 = randn((6, 11), torch.float64, device)
    w = randn((6, 11), torch.float64, device)

    def run(fn):
        leaf = x0.clone().requires_grad_()
        h = leaf * 1.5  # a non-leaf
        y = fn(h, inplace=True)
        assert y is h
        (y * w).sum().backward()
        return y.detach(), leaf.grad

    assert_close(run(ours), run(theirs))


@device_param
@pytest.mark.parametrize("name", list(INPLACE))
def test_inplace_double_backward_on_non_leaf_matches_torch(name, device):
    if name in TORCH_HAS_NO_DOUBLE_BACKWARD:
        pytest.skip(TORCH_HAS_NO_DOUBLE_BACKWARD[name])
    ours, theirs, _ = INPLACE[name]
    x0 = randn((4, 7), torch.float64, device)

    def run(fn):
        leaf = x0.clone().requires_grad_()
        y = fn(leaf * 1.0, inplace=True)
        (g,) = torch.autograd.grad(y.sum(), leaf, create_graph=True)
        (gg,) = torch.autograd.grad((g * g).sum(), leaf)
        return g.detach(), gg

    assert_close(run(ours), run(theirs))


@device_param
@pytest.mark.parametrize("name", list(INPLACE))
def test_inplace_on_leaf_requiring_grad_raises_like_torch(name, device):
    ours, theirs, _ = INPLACE[name]
    leaf = randn((3, 4), torch.float32, device).requires_grad_()
    before = leaf.detach().clone()
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        theirs(leaf, inplace=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        ours(leaf, inplace=True)
    # The failed call did not modify the leaf.
    assert torch.equal(leaf.detach(), before)


@device_param
@pytest.mark.parametrize("name", list(INPLACE))
def test_inplace_on_leaf_under_no_grad(name, device):
    ours, theirs, _ = INPLACE[name]
    leaf = randn((3, 4), torch.float32, device).requires_grad_()
    expected = theirs(leaf.detach().clone())
    with torch.no_grad():
        y = ours(leaf, inplace=True)
    assert y is leaf
    assert_close(leaf.detach(), expected)


@device_param
@pytest.mark.parametrize("name", list(INPLACE))
def test_inplace_on_view_of_leaf_requiring_grad_raises_like_torch(name, device):
    ours, theirs, _ = INPLACE[name]
    leaf = randn((3, 4), torch.float32, device).requires_grad_()
    # torch forbids in-place on a view of a leaf that requires grad.
    with pytest.raises(RuntimeError) as torch_err:
        theirs(leaf[0], inplace=True)
    with pytest.raises(RuntimeError) as our_err:
        ours(leaf[0], inplace=True)
    assert "leaf" in str(torch_err.value) and "leaf" in str(our_err.value), str(our_err.value)


@device_param
@pytest.mark.parametrize("grad_mode", [True, False], ids=["grad", "no_grad"])
@pytest.mark.parametrize("name", list(INPLACE))
def test_inplace_on_a_saved_tensor_raises_like_torch(name, grad_mode, device):
    """An in-place op on a tensor another op saved for backward makes that backward raise
    torch's version-counter error, with and without grad mode, as torch's in-place ops do."""
    ours_fn, torch_fn, _ = INPLACE[name]
    for inplace_fn, silu in ((ours_fn, FA.silu), (torch_fn, F.silu)):
        x = randn((4, 5), torch.float32, device).requires_grad_()
        a = x * 1
        b = silu(a)  # saves a
        with torch.set_grad_enabled(grad_mode):
            inplace_fn(a, inplace=True)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            b.sum().backward()


# --------------------------------------------------------------------------------------
# What the in-place ops save for backward, as torch: the result for relu_, leaky_relu_ and
# the elu family (no copy of the input), a copy of the input for the others.

def _saved_by_inplace(fn, device):
    """Which saved tensors of fn(h, inplace=True) are the result itself."""
    leaf = randn((3, 5), torch.float64, device).requires_grad_()
    h = leaf * 1
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = fn(h, inplace=True)
    return [t.data_ptr() == y.data_ptr() for t in saved]


@device_param
@pytest.mark.parametrize("name", list(INPLACE))
def test_inplace_saves_what_torch_saves(name, device):
    ours, theirs, _ = INPLACE[name]
    assert _saved_by_inplace(ours, device) == _saved_by_inplace(theirs, device)


@device_param
@pytest.mark.parametrize("name", list(INPLACE))
def test_inplace_result_modified_again_raises_like_torch(name, device):
    """Where the in-place op saved its result, modifying the result afterwards makes the
    backward raise torch's version-counter error; where it saved a copy it does not."""
    ours, theirs, _ = INPLACE[name]

    def backward_after_modifying_result(fn):
        h = randn((4, 6), torch.float32, device).requires_grad_() * 1
        y = fn(h, inplace=True)
        later = y * 1
        y.mul_(2)
        try:
            later.sum().backward()
        except RuntimeError as error:
            assert "modified by an inplace operation" in str(error)
            return "raised"
        return "ok"

    assert backward_after_modifying_result(ours) == backward_after_modifying_result(theirs)


@device_param
@pytest.mark.parametrize("name", list(INPLACE))
def test_inplace_on_view_of_non_leaf_matches_torch(name, device):
    """In-place on a strided view of a non-leaf: values, grads and double backward of the
    base as torch's, and the base's untouched elements pass their gradient through."""
    if name in TORCH_HAS_NO_DOUBLE_BACKWARD:
        pytest.skip(TORCH_HAS_NO_DOUBLE_BACKWARD[name])
    ours, theirs, _ = INPLACE[name]
    x0 = randn((4, 6), torch.float64, device)
    w = randn((4, 6), torch.float64, device)

    def run(fn):
        leaf = x0.clone().requires_grad_()
        h = leaf * 1.5
        fn(h[1:, ::2], inplace=True)
        (g,) = torch.autograd.grad((h * h * w).sum(), leaf, create_graph=True)
        (gg,) = torch.autograd.grad((g * w).sum(), leaf)
        return h.detach(), g.detach(), gg

    assert_close(run(ours), run(theirs))


def test_inplace_on_view_does_not_leak_the_graph():
    """The result saved by an in-place op on a view does not keep itself alive."""
    import gc
    import weakref

    leaf = randn((4, 5), torch.float32, "cpu").requires_grad_()
    h = leaf * 1
    view = h[1:]
    FA.elu(view, inplace=True)
    alive = weakref.ref(view)
    del h, view
    gc.collect()
    assert alive() is None


NEGATIVE_SLOPE_INPLACE = {
    "leaky_relu": {"negative_slope": -0.5},
    "elu": {"alpha": -0.5},
    "celu": {"alpha": -0.5},
}


@device_param
@pytest.mark.parametrize("name", list(NEGATIVE_SLOPE_INPLACE))
def test_inplace_negative_slope_backward_raises_like_torch(name, device):
    """torch's in-place leaky_relu_/elu_/celu_ with a negative slope run forward (grad or
    not) but refuse the backward, whose result no longer tells the branch."""
    params = NEGATIVE_SLOPE_INPLACE[name]
    ours, theirs = getattr(FA, name), getattr(F, name)
    x = randn((4, 6), torch.float32, device)
    for fn in (theirs, ours):
        h = x.clone().requires_grad_() * 1
        y = fn(h, inplace=True, **params)
        assert_close(y.detach(), theirs(x, **params))
        with pytest.raises(RuntimeError, match="negative slope") as error:
            y.sum().backward()
        if fn is ours:
            assert f"fusedact::{name}_result_backward" in str(error.value)
            assert f"out-of-place {name}" in str(error.value)
        with torch.no_grad():
            z = x.clone()
            fn(z, inplace=True, **params)
        assert_close(z, theirs(x, **params))


@pytest.mark.parametrize("name", list(INPLACE))
def test_inplace_compiles_fullgraph_with_backward(name):
    import torch._dynamo

    ours, theirs, _ = INPLACE[name]

    def loss(fn, x):
        h = x * 1.5
        fn(h[:, 1:], inplace=True)
        return (h * h).sum()

    x = randn((4, 9), torch.float64, "cpu")

    def value_and_grad(fn):
        leaf = x.clone().requires_grad_()
        value = fn(leaf)
        return value.detach(), torch.autograd.grad(value, leaf)[0]

    torch._dynamo.reset()
    compiled = torch.compile(functools.partial(loss, ours), fullgraph=True, dynamic=False)
    assert_close(value_and_grad(compiled), value_and_grad(functools.partial(loss, theirs)))
