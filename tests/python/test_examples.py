"""examples/transformer_block.py: the torch.nn and fusedact models train to the same losses."""

import importlib.util
import math
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "transformer_block.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("transformer_block_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("variant", ["gelu", "swiglu"])
def test_losses_match(example, variant):
    args = example.parse_args(["--steps", "4", "--batch", "2", "--seq", "8", "--d-model", "32", "--layers", "1",
                               "--device", "cpu"])
    result = example.run_variant(variant, args)
    torch_losses, fused_losses = result["losses"]["torch"], result["losses"]["fusedact"]
    assert len(torch_losses) == len(fused_losses) == 4
    # Float32 training from the same weights on the same data: the activations differ from
    # torch's by about a rounding, which four AdamW steps do not amplify past 1e-5.
    assert result["max_abs_diff"] < 1e-5, (torch_losses, fused_losses)
    assert all(math.isfinite(v) for v in fused_losses)
    assert set(result["step_ms"]) == {"torch", "fusedact"}


def test_main_prints_curves_and_exit_status(example, capsys):
    argv = ["--variant", "swiglu", "--steps", "3", "--batch", "2", "--seq", "8", "--d-model", "16", "--layers", "1",
            "--device", "cpu", "--print-every", "1", "--threads", "0"]  # 0: leave torch's thread count
    assert example.main(argv) == 0
    out = capsys.readouterr().out
    assert "max |loss diff| over 3 steps" in out and "median step time: torch" in out
    assert example.main(argv + ["--tol", "-1"]) == 1  # a tolerance no run can meet
