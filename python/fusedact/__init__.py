"""fusedact: fused CPU and CUDA activation kernels registered as torch operators.

Importing the package loads the compiled extension, which registers `torch.ops.fusedact.*`.
"""

import torch  # noqa: F401  (the extension links against torch's libraries)

from . import _C  # noqa: F401  (registers torch.ops.fusedact.*)
from . import functional, nn, registry
from . import _functorch  # noqa: F401  (torch.func.vmap rules)
from .replace import ReplaceReport, replace_activations

__all__ = ["functional", "nn", "registry", "ops", "replace_activations", "ReplaceReport", "cpu_kernels"]
__version__ = "0.1.0"

ops = torch.ops.fusedact


def cpu_kernels() -> str:
    """The CPU kernels fusedact's ops run: "avx512", "avx2" or "default" (scalar). They follow
    torch's CPU capability (ATEN_CPU_CAPABILITY lowers it); FUSEDACT_CPU_CAPABILITY=avx2 or
    =default lowers fusedact's alone, e.g. to compare kernels against an unchanged torch."""
    return _C.cpu_kernels()

# DTensor sharding rules (fusedact.distributed). Cheap here: the rules are registered when
# torch.distributed.tensor is imported, which fusedact itself never does.
if torch.distributed.is_available():
    from . import distributed as _distributed

    _distributed.install()
