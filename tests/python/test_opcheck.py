"""torch.library.opcheck (all four default utilities) on every fusedact operator overload:
forward, backward and double backward, packed and split, and the in-place variants.

Arguments are built from each overload's schema by argument name, so the tests follow the
schemas the extension registers.
"""

import pytest
import torch

from conftest import DEVICES, OPS, expected_overloads, randn, schema_args


def _cases():
    cases = []
    for spec in OPS:
        for params in spec.param_sets:
            pid = "-".join(f"{k}={v}" for k, v in params.items())
            for name, overload in expected_overloads(spec):
                if "_result_" in name and any(v < 0 for v in params.values()):
                    continue  # raises by design (test_inplace_negative_slope_backward_...)
                cid = f"{name}.{overload}" + (f"-{pid}" if pid else "")
                cases.append(pytest.param(spec, dict(params), name, overload, id=cid))
    return cases


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec,params,name,overload", _cases())
def test_opcheck(spec, params, name, overload, device):
    packet = getattr(torch.ops.fusedact, name)
    assert overload in packet.overloads(), f"fusedact::{name} has no overload {overload!r}"
    op = getattr(packet, overload)
    mutates = any(a.alias_info is not None and a.alias_info.is_write for a in op._schema.arguments)
    # In-place ops run on a tensor that does not require grad (autograd forbids in-place
    # on a leaf that requires grad).
    args = schema_args(
        spec,
        params,
        op,
        lambda shape: randn(shape, torch.float32, device, scale=2.0).requires_grad_(not mutates),
    )
    torch.library.opcheck(op, args)


def test_every_registered_op_is_covered():
    """Every op in the fusedact namespace is one the registry describes, so it is tested."""
    expected = set()
    for spec in OPS:
        for name, overload in expected_overloads(spec):
            expected.add(f"fusedact::{name}" + ("" if overload == "default" else f".{overload}"))
    registered = {n for n in torch._C._dispatch_get_all_op_names() if n.startswith("fusedact::")}
    assert registered, "no fusedact ops are registered"
    missing = expected - registered
    assert not missing, f"ops the contract requires are not registered: {sorted(missing)}"
    unknown = registered - expected
    assert not unknown, f"registered ops with no registry row (so untested): {sorted(unknown)}"
