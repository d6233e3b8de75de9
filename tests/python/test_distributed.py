"""fusedact ops on DTensor inputs (fusedact.distributed's sharding rules) and under DDP.

Each spawning test starts 2 CPU processes (torch.multiprocessing.spawn) joined by a gloo
process group on 127.0.0.1. Per process, a 1-D DeviceMesh("cpu", [0, 1]); every case runs an
op forward and backward on DTensors and compares `full_tensor()` of the output and of the
gradients with the same op on the plain tensors. It also checks the output placement, and
where that is the input's own placement, that forward and backward ran without any
collective (CommDebugMode): no rank gathered the tensor. A rank collects every mismatch and
raises them together, so a failure shows each failing case with its message.

The DDP test compares a DistributedDataParallel model built from fusedact.nn modules with the
same model in one process on the whole batch. Two tests run in this process: every fusedact
op has a rule of its kind, and `import fusedact` stays free of torch.distributed.tensor.
"""

import datetime
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.testing import assert_close

import fusedact
import fusedact.functional as FA
import fusedact.nn as FN
from fusedact.registry import OPS

WORLD_SIZE = 2
ops = torch.ops.fusedact


def _dtensor_unavailable_reason():
    if not dist.is_available():
        return "torch.distributed is not available in this torch build"
    if not dist.is_gloo_available():
        return "torch.distributed has no gloo backend in this build"
    try:
        from torch.distributed.tensor.experimental import register_sharding  # noqa: F401
    except ImportError as e:
        return f"torch {torch.__version__} has no register_sharding: {e}"
    return None


_SKIP = _dtensor_unavailable_reason()
pytestmark = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")


# --------------------------------------------------------------------------------------
# Spawning


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank, port, body_name):
    # Keep gloo on the loopback interface whatever the host name resolves to.
    if "GLOO_SOCKET_IFNAME" not in os.environ:
        names = [name for _, name in socket.if_nameindex()]
        loopback = next((n for n in ("lo", "lo0") if n in names), None)
        if loopback is not None:
            os.environ["GLOO_SOCKET_IFNAME"] = loopback
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        failures = globals()[body_name](rank)
        # No rank tears gloo down while the other may still talk to it (that aborts it).
        dist.barrier()
        if failures:
            raise AssertionError(
                f"rank {rank}: {len(failures)} failing case(s):\n" + "\n".join(failures)
            )
    finally:
        dist.destroy_process_group()
    # A gloo worker thread drops its reference to a finished collective after waking us, and
    # destroy_process_group does not join it. When that reference is the last one to a
    # Python-made tensor, its release waits for the GIL; if Python is finalizing by then, the
    # thread exits inside a noexcept destructor and the process aborts ("terminate called
    # without an active exception", about 1 run in 15). Leaving without finalizing avoids it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _spawn(body):
    """Runs body(rank) -> [failure messages] on WORLD_SIZE processes; any error there
    (an exception, a failed case) fails the calling test with that process's traceback."""
    mp.spawn(_rank_main, args=(_free_port(), body.__name__), nprocs=WORLD_SIZE, join=True)


def _mesh():
    from torch.distributed.device_mesh import DeviceMesh

    return DeviceMesh("cpu", list(range(WORLD_SIZE)))


# --------------------------------------------------------------------------------------
# One DTensor case: forward + backward (+ double backward) against the plain tensors.


def _randn(shape, seed, scale=3.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype) * scale


def _plain_run(fn, inputs, grad_output, double):
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    g = grad_output.detach().clone().requires_grad_(double)
    y = fn(*leaves)
    grads = torch.autograd.grad(y, leaves, g, create_graph=double)
    result = {"out": y.detach(), "grads": [t.detach() for t in grads]}
    if double:
        vs = [_randn(t.shape, 100 + i) for i, t in enumerate(grads)]
        gg = torch.autograd.grad(grads, leaves + [g], vs)
        result["double"] = [t.detach() for t in gg]
    return result


def _run_case(failures, mesh, label, fn, inputs, placements, expect_out=None,
              expect_grads=None, double=False, gathers=False):
    """fn(*inputs) on DTensors distributed with `placements` vs on the plain tensors.

    expect_out: the output's placement, checked where given. Where it is one of the input
    placements, forward and backward must also run without any collective (no gather).
    expect_grads: per input, the placement (or Placement type) of its grad, None to skip.
    gathers: the forward must communicate (a documented gather)."""
    from torch.distributed.tensor import DTensor, distribute_tensor
    from torch.distributed.tensor.debug import CommDebugMode

    try:
        plain_out = fn(*inputs)
        grad_output = _randn(plain_out.shape, 7)
        ref = _plain_run(fn, inputs, grad_output, double)

        dts = [distribute_tensor(t.detach().clone(), mesh, [p]).requires_grad_()
               for t, p in zip(inputs, placements)]
        comm = CommDebugMode()
        with comm:
            y = fn(*dts)
        forward_comms = comm.get_total_counts()
        assert isinstance(y, DTensor), f"output is a {type(y).__name__}, not a DTensor"
        assert_close(y.full_tensor(), ref["out"], msg=lambda m: f"forward: {m}")
        if expect_out is not None:
            assert y.placements == (expect_out,), (
                f"output placement {y.placements}, expected ({expect_out},)")
        pass_through = expect_out is not None and expect_out in placements
        if pass_through:
            assert forward_comms == 0, f"forward communicated: {comm.get_comm_counts()}"
        if gathers:
            assert forward_comms > 0, "forward did not communicate"
        gd = distribute_tensor(grad_output, mesh, y.placements).requires_grad_(double)
        with comm:
            grads = torch.autograd.grad(y, dts, gd, create_graph=double)
        if pass_through:
            assert comm.get_total_counts() == 0, f"backward communicated: {comm.get_comm_counts()}"
        for i, (got, want) in enumerate(zip(grads, ref["grads"])):
            assert_close(got.full_tensor(), want, msg=lambda m: f"grad of input {i}: {m}")
            expected = None if expect_grads is None else expect_grads[i]
            if isinstance(expected, type):
                assert isinstance(got.placements[0], expected), (
                    f"grad of input {i}: placement {got.placements}, "
                    f"expected a {expected.__name__}")
            elif expected is not None:
                assert got.placements == (expected,), (
                    f"grad of input {i}: placement {got.placements}, expected ({expected},)")
        if double:
            vs = [distribute_tensor(_randn(g.shape, 100 + i), mesh, g.placements)
                  for i, g in enumerate(grads)]
            with comm:
                gg = torch.autograd.grad(grads, dts + [gd], vs)
            if pass_through:
                assert comm.get_total_counts() == 0, (
                    f"double backward communicated: {comm.get_comm_counts()}")
            for i, (got, want) in enumerate(zip(gg, ref["double"])):
                assert_close(got.full_tensor(), want, msg=lambda m: f"double backward {i}: {m}")
    except Exception as e:  # noqa: BLE001  (collected, raised together at the end)
        failures.append(f"[{label} {list(placements)}] {type(e).__name__}: {e}")


# --------------------------------------------------------------------------------------
# Bodies (run on every rank)

UNARY = [
    ("gelu", lambda x: ops.gelu(x)),
    ("gelu-tanh", lambda x: ops.gelu(x, "tanh")),
    ("silu", lambda x: ops.silu(x)),
    ("relu", lambda x: ops.relu(x)),
    ("leaky_relu-0.2", lambda x: ops.leaky_relu(x, negative_slope=0.2)),
    ("elu", lambda x: ops.elu(x)),
    ("softplus", lambda x: ops.softplus(x, beta=2.0, threshold=5.0)),
    ("tanh", lambda x: ops.tanh(x)),
]


def _body_unary(rank):
    from torch.distributed.tensor import DTensor, Partial, Replicate, Shard, distribute_tensor

    mesh = _mesh()
    failures = []
    x = _randn((5, 6), 1)  # 5 rows: uneven shards (3 + 2) on dim 0
    for label, fn in UNARY:
        for p in (Shard(0), Shard(1), Replicate()):
            _run_case(failures, mesh, label, fn, [x], [p], expect_out=p, expect_grads=[p])
    # Double backward (X_double_backward ops) on sharded inputs.
    for label, fn in UNARY[:5]:
        _run_case(failures, mesh, label + "-double", fn, [x], [Shard(1)], expect_out=Shard(1),
                  double=True)

    # In-place (X_ ops and the X_result_backward path of leaky_relu_ / elu_).
    def inplace(name, **kw):
        return lambda t: getattr(FA, name)(t * 1.0, inplace=True, **kw)

    for label, fn in [("silu_", inplace("silu")),
                      ("leaky_relu_", inplace("leaky_relu", negative_slope=0.2)),
                      ("elu_", inplace("elu", alpha=0.8)),
                      ("relu_", inplace("relu"))]:
        for p in (Shard(0), Replicate()):
            _run_case(failures, mesh, label, fn, [x], [p], expect_out=p, expect_grads=[p])

    # A Partial input is reduced before a nonlinear op, never passed through.
    try:
        partial = DTensor.from_local(x * 0.5, mesh, [Partial()], run_check=False)
        y = ops.gelu(partial)
        assert not any(isinstance(p, Partial) for p in y.placements), y.placements
        assert_close(y.full_tensor(), ops.gelu(x))
    except Exception as e:  # noqa: BLE001
        failures.append(f"[gelu Partial] {type(e).__name__}: {e}")

    # rrelu: evaluation is leaky_relu; training draws slopes (uniform_) and runs
    # rrelu_with_noise, whose backward is the slope per element.
    _run_case(failures, mesh, "rrelu-eval", lambda t: FA.rrelu(t, 0.1, 0.3, training=False),
              [x], [Shard(0)], expect_out=Shard(0), expect_grads=[Shard(0)])
    try:
        xd = distribute_tensor(x, mesh, [Shard(0)]).requires_grad_()
        y = FA.rrelu(xd, 0.1, 0.3, training=True)
        assert y.placements == (Shard(0),), y.placements
        (gx,) = torch.autograd.grad(y, xd, torch.ones_like(y))
        assert gx.placements == (Shard(0),), gx.placements
        xf, yf, gf = x, y.full_tensor(), gx.full_tensor()
        pos = xf > 0
        assert torch.equal(yf[pos], xf[pos]) and torch.all(gf[pos] == 1)
        slope = gf[~pos]
        assert torch.all((slope >= 0.1) & (slope <= 0.3)), slope
        assert_close(yf[~pos], xf[~pos] * slope)
    except Exception as e:  # noqa: BLE001
        failures.append(f"[rrelu training Shard(0)] {type(e).__name__}: {e}")
    # Replicated input: every rank draws the same slopes, given the same seed (as for
    # torch's random ops on DTensors of a CPU mesh).
    try:
        torch.manual_seed(1234)
        y = FA.rrelu(distribute_tensor(x, mesh, [Replicate()]), 0.1, 0.3, training=True)
        assert y.placements == (Replicate(),), y.placements
        mine = y.to_local()
        everyone = [torch.empty_like(mine) for _ in range(WORLD_SIZE)]
        dist.all_gather(everyone, mine)
        assert all(torch.equal(t, mine) for t in everyone), "ranks drew different slopes"
    except Exception as e:  # noqa: BLE001
        failures.append(f"[rrelu training Replicate] {type(e).__name__}: {e}")
    return failures


def _body_gated(rank):
    from torch.distributed.tensor import Replicate, Shard

    mesh = _mesh()
    failures = []
    R = Replicate()
    x = _randn((4, 10), 2)  # packed on dim 1 (= -1): halves of 5
    for label, fn in [("swiglu", lambda t: ops.swiglu(t)),
                      ("geglu-tanh", lambda t: ops.geglu(t, "tanh", dim=-1)),
                      ("glu", lambda t: ops.glu(t))]:
        _run_case(failures, mesh, label, fn, [x], [Shard(0)], Shard(0), [Shard(0)])
        # Sharded on the gated dim: each rank would hold parts of both halves, so the
        # input is gathered first and the result is replicated.
        _run_case(failures, mesh, label + "-gated-dim", fn, [x], [Shard(1)], R, gathers=True)
        _run_case(failures, mesh, label, fn, [x], [R], R, [R])
    # The gated dim given positively / negatively, on 2-D and 3-D inputs.
    x0 = _randn((8, 5), 3)
    swiglu0 = lambda t: ops.swiglu(t, dim=0)  # noqa: E731
    _run_case(failures, mesh, "swiglu-dim0", swiglu0, [x0], [Shard(1)], Shard(1), [Shard(1)])
    _run_case(failures, mesh, "swiglu-dim0-gated-dim", swiglu0, [x0], [Shard(0)], R,
              gathers=True)
    x3 = _randn((3, 8, 4), 4)
    swiglu_m2 = lambda t: ops.swiglu(t, dim=-2)  # noqa: E731
    for d in (0, 2):
        _run_case(failures, mesh, "swiglu-3d-dim-2", swiglu_m2, [x3], [Shard(d)], Shard(d),
                  [Shard(d)])
    _run_case(failures, mesh, "swiglu-3d-dim-2-gated-dim", swiglu_m2, [x3], [Shard(1)], R,
              gathers=True)
    # Double backward of the packed op (X_double_backward default overload).
    _run_case(failures, mesh, "swiglu-double", lambda t: ops.swiglu(t), [x], [Shard(0)],
              Shard(0), double=True)

    # .split(gate, up): elementwise, any dim passes through.
    gate, up = _randn((4, 5), 5), _randn((4, 5), 6)
    for label, fn in [("swiglu.split", ops.swiglu.split),
                      ("geglu.split", lambda a, b: ops.geglu.split(a, b, "none")),
                      ("glu.split", ops.glu.split)]:
        for p in (Shard(0), Shard(1), R):
            _run_case(failures, mesh, label, fn, [gate, up], [p, p], p, [p, p])
    # gate and up placed differently: redistributed to a common placement, still right.
    _run_case(failures, mesh, "swiglu.split-mixed", ops.swiglu.split, [gate, up], [Shard(0), R])
    _run_case(failures, mesh, "swiglu.split-double", ops.swiglu.split, [gate, up],
              [Shard(1), Shard(1)], Shard(1), double=True)
    return failures


def _body_weighted(rank):
    from torch.distributed.tensor import Partial, Replicate, Shard

    mesh = _mesh()
    failures = []
    R = Replicate()
    x = _randn((4, 3, 5), 8)
    w = _randn((3,), 9, scale=0.5)  # one weight per channel (dim 1)
    w1 = _randn((1,), 10, scale=0.5)  # one weight for all
    for name in ("prelu", "learnable_swish"):
        fn = getattr(ops, name)
        # Non-channel dims: weight replicated, grad_weight a pending sum over the ranks.
        for d in (0, 2):
            _run_case(failures, mesh, name, fn, [x, w], [Shard(d), R], Shard(d),
                      [Shard(d), Partial])
        # Channel dim: the weight is sharded like the channels, grad_weight too.
        _run_case(failures, mesh, name + "-channel", fn, [x, w], [Shard(1), R], Shard(1),
                  [Shard(1), Shard(0)])
        _run_case(failures, mesh, name, fn, [x, w], [R, R], R, [R, R])
        # A single weight: any dim passes through.
        _run_case(failures, mesh, name + "-single-weight", fn, [x, w1], [Shard(1), R], Shard(1),
                  [Shard(1), Partial])
    # The module, whose weight is a Parameter: grads reach it through the DTensor path.
    try:
        from torch.distributed.tensor import distribute_module, distribute_tensor

        module = FN.PReLU(3, init=0.3).double()
        with torch.no_grad():
            module.weight.copy_(w)
        ref_module = FN.PReLU(3).double()
        ref_module.load_state_dict(module.state_dict())
        distribute_module(module, mesh)  # parameters become replicated DTensors
        xd = distribute_tensor(x, mesh, [Shard(0)])
        y = module(xd)
        assert y.placements == (Shard(0),), y.placements
        y.backward(distribute_tensor(_randn(x.shape, 11), mesh, [Shard(0)]))
        ref_module(x).backward(_randn(x.shape, 11))
        assert_close(y.full_tensor(), ref_module(x).detach())
        assert_close(module.weight.grad.full_tensor(), ref_module.weight.grad)
    except Exception as e:  # noqa: BLE001
        failures.append(f"[nn.PReLU distribute_module] {type(e).__name__}: {e}")
    return failures


def _body_rowwise(rank):
    from torch.distributed.tensor import Replicate, Shard

    mesh = _mesh()
    failures = []
    R = Replicate()
    x = _randn((5, 6), 13)  # 5 rows: uneven shards (3 + 2) on dim 0
    for label, fn, row_dim in [("softmax", lambda t: ops.softmax(t, -1), 1),
                               ("log_softmax-dim0", lambda t: ops.log_softmax(t, 0), 0),
                               ("softmin", lambda t: ops.softmin(t, dim=1), 1)]:
        other = Shard(1 - row_dim)
        # Sharded across rows: every row is whole on one rank, no communication.
        _run_case(failures, mesh, label, fn, [x], [other], other, [other])
        # Sharded along the row: the rows are gathered first and the result is replicated.
        _run_case(failures, mesh, label + "-row-dim", fn, [x], [Shard(row_dim)], R, gathers=True)
        _run_case(failures, mesh, label, fn, [x], [R], R, [R])
    # The row dim given negatively on a 3-D input.
    x3 = _randn((3, 4, 5), 14)
    softmax_m2 = lambda t: ops.softmax(t, dim=-2)  # noqa: E731
    for d in (0, 2):
        _run_case(failures, mesh, "softmax-3d-dim-2", softmax_m2, [x3], [Shard(d)], Shard(d),
                  [Shard(d)])
    _run_case(failures, mesh, "softmax-3d-dim-2-row-dim", softmax_m2, [x3], [Shard(1)], R,
              gathers=True)
    # dtype=: a float32 input cast to float64 first; the placement passes through.
    _run_case(failures, mesh, "log_softmax-dtype", lambda t: ops.log_softmax(t, -1, torch.float64),
              [x.float()], [Shard(0)], Shard(0), [Shard(0)])
    # Double backward (X_backward is differentiable).
    for name in ("softmax", "log_softmax", "softmin"):
        _run_case(failures, mesh, name + "-double", lambda t, name=name: getattr(ops, name)(t, -1),
                  [x], [Shard(0)], Shard(0), double=True)
    # fusedact.functional and fusedact.nn reach the same rules. The module's forward is called
    # directly: CommDebugMode tracks modules called through Module.__call__ with hooks that
    # torch.autograd.grad() refuses ("A leaf node was passed to _will_engine_execute_node"),
    # for torch.nn.LogSoftmax just the same.
    _run_case(failures, mesh, "FA.softmin", lambda t: FA.softmin(t, dim=1), [x], [Shard(0)],
              Shard(0), [Shard(0)])
    _run_case(failures, mesh, "FN.LogSoftmax", FN.LogSoftmax(dim=0).forward, [x], [Shard(1)],
              Shard(1), [Shard(1)])
    return failures


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(6, 16), FN.GELU(),
            torch.nn.Linear(16, 16), FN.SiLU(),
            torch.nn.Linear(16, 8), FN.PReLU(8, init=0.2),
        )

    def forward(self, x):
        return self.body(x)


def _body_ddp(rank):
    failures = []
    torch.manual_seed(0)  # the same initial model on every rank
    model = _Net().double()
    with torch.no_grad():  # a distinct slope per channel, some x < 0 mapped by each
        model.body[5].weight.copy_(torch.linspace(0.05, 0.4, 8))
    single = _Net().double()
    single.load_state_dict(model.state_dict())
    ddp = torch.nn.parallel.DistributedDataParallel(model)

    batch = _randn((2 * WORLD_SIZE + 2, 6), 12, scale=1.5)  # 6 rows, 3 per rank
    mine = batch.chunk(WORLD_SIZE, 0)[rank]
    ddp(mine).pow(2).mean().backward()  # DDP averages the ranks' grads
    single(batch).pow(2).mean().backward()

    for (name, p), q in zip(model.named_parameters(), single.parameters()):
        try:
            assert_close(p.grad, q.grad, msg=lambda m: f"vs single process: {m}")
            everyone = [torch.empty_like(p.grad) for _ in range(WORLD_SIZE)]
            dist.all_gather(everyone, p.grad)
            for r, g in enumerate(everyone):
                assert torch.equal(g, p.grad), f"rank {r} has a different grad"
        except Exception as e:  # noqa: BLE001
            failures.append(f"[DDP {name}] {type(e).__name__}: {e}")
    return failures


# --------------------------------------------------------------------------------------
# Tests


def _body_dtensor(rank):
    return _body_unary(rank) + _body_gated(rank) + _body_weighted(rank) + _body_rowwise(rank)


def test_dtensor_ops():
    """Unary, gated, weighted and row-wise ops on DTensors (one spawn: process start-up
    dominates)."""
    _spawn(_body_dtensor)


def test_ddp_matches_single_process():
    _spawn(_body_ddp)


def _all_fusedact_overloads():
    """Every "fusedact::name[.overload]" the extension registered with the dispatcher."""
    return {n for n in torch._C._dispatch_get_all_op_names() if n.startswith("fusedact::")}


def test_every_op_has_a_rule():
    """Every op the extension registers has a sharding rule of the kind its registry row
    implies, except the CompositeImplicitAutograd ones, which DTensor never sees."""
    import torch.distributed.tensor  # noqa: F401  (fires the lazy registration)

    rules = fusedact.distributed.registered_rules()
    composite = set()
    for qualified in _all_fusedact_overloads():
        name, _, overload = qualified.partition("::")[2].partition(".")
        op = getattr(getattr(ops, name), overload or "default")
        if op.has_kernel_for_dispatch_key(torch._C.DispatchKey.CompositeImplicitAutograd):
            composite.add(qualified)
    assert composite == {"fusedact::rrelu", "fusedact::rrelu_"}
    assert set(rules) == _all_fusedact_overloads() - composite

    kinds = {spec.name: spec.kind for spec in OPS}
    for qualified, rule in rules.items():
        name, _, overload = qualified.partition("::")[2].partition(".")
        base = max((n for n in kinds if name == n or name.startswith(n + "_")), key=len,
                   default=None)
        assert base is not None, f"{qualified} belongs to no registry row"
        kind = kinds[base]
        if kind == "gated":
            want = "elementwise" if overload == "split" else "gated_packed"
        elif kind == "weighted":
            want = "weighted_backward" if name.endswith("_backward") else "weighted"
        elif kind == "rowwise":  # X and X_backward: any sharding but on `dim`
            want = "rowwise"
        else:
            want = "elementwise"
        assert rule == want, (qualified, rule, want)


def test_registration_is_lazy():
    """`import fusedact` does not import torch.distributed.tensor; importing it later
    registers the rules."""
    code = textwrap.dedent(
        """
        import sys
        import fusedact
        assert "torch.distributed.tensor" not in sys.modules, "fusedact imported DTensor"
        assert fusedact.distributed.registered_rules() == {}
        import torch.distributed.tensor
        n = len(fusedact.distributed.registered_rules())
        assert n > 100, n
        assert not any(getattr(f, "module_name", None) == "torch.distributed.tensor" for f in sys.meta_path)
        print("ok", n)
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), proc.stdout + proc.stderr
