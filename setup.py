"""Builds the Python extension fusedact._C with torch.utils.cpp_extension.

CUDA kernels are compiled and linked whenever nvcc is found (CUDA_HOME), even on a machine
with no GPU; FUSEDACT_WITH_CUDA=0 forces a CPU-only build. The target architectures come
from TORCH_CUDA_ARCH_LIST (the Makefile sets it from CUDA_ARCHS).
"""

import glob
import os

from setuptools import setup
from torch.utils import cpp_extension

ROOT = os.path.dirname(os.path.abspath(__file__))


def build_with_cuda() -> bool:
    if os.environ.get("FUSEDACT_WITH_CUDA", "1") == "0":
        return False
    return cpp_extension.CUDA_HOME is not None


def extension():
    sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/cpu/*.cpp"))
    include_dirs = [os.path.join(ROOT, "csrc", "include")]
    # OpenMP: at::parallel_for is inline and runs serially in code built without it.
    cxx_flags = ["-O3", "-std=c++17", "-fopenmp"]
    link_flags = ["-fopenmp"]
    # Extra compile and link flags, e.g. the sanitizers of `make test-asan`.
    sanitize = os.environ.get("FUSEDACT_SANITIZE_FLAGS", "").split()
    cxx_flags += sanitize
    link_flags += sanitize
    if build_with_cuda():
        return cpp_extension.CUDAExtension(
            "fusedact._C",
            sources + sorted(glob.glob("cuda/*.cu")),
            include_dirs=include_dirs,
            define_macros=[("FUSEDACT_WITH_CUDA", None)],
            extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "-std=c++17"]},
            extra_link_args=link_flags,
        )
    return cpp_extension.CppExtension(
        "fusedact._C",
        sources,
        include_dirs=include_dirs,
        extra_compile_args={"cxx": cxx_flags},
        extra_link_args=link_flags,
    )


setup(
    name="fusedact",
    version="0.1.0",
    description="Fused CPU and CUDA activation kernels as torch operators",
    package_dir={"": "python"},
    packages=["fusedact"],
    ext_modules=[extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension},
    python_requires=">=3.9",
    install_requires=["torch>=2.4"],
)
