// Shared pieces of the op layer: argument checks, output allocation, operand layout and
// the backend switch that hands one elementwise map to the CPU or the CUDA kernel.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include <fusedact/elementwise.h>
#include <fusedact/fusedact.h>
#include <fusedact/functors.h>
#include <fusedact/op_table.h>

#include "cpu/elementwise.h"

#ifdef FUSEDACT_WITH_CUDA
#include <c10/cuda/CUDAStream.h>
#define FUSEDACT_BACKENDS "CPU and CUDA"
#else
#define FUSEDACT_BACKENDS "CPU only"
#endif

namespace fusedact {

using at::Tensor;

// approximate='none' -> false, 'tanh' -> true; anything else is an error naming `op`.
bool gelu_is_tanh(const char* op, std::string_view approximate);

// Parameter checks used by op-table rows; each returns its (first) argument.
double check_nonzero(const char* op, const char* arg, double value);
double check_nonnegative(const char* op, const char* arg, double value);
double check_ordered(const char* op, double min_val, double max_val);  // returns min_val

// `t` must be a tensor: Python's None reaches a kernel as an undefined tensor. The checks
// below start with it.
void check_defined(const char* op, const char* arg, const Tensor& t);

// `t` must be float32, float64, float16 or bfloat16 (the dtypes every kernel supports).
void check_floating(const char* op, const char* arg, const Tensor& t);
// `t` must be floating or integral (not bool or complex): ops that torch runs on integers.
// `negative_limits`: the op has a negative bound, which torch rejects for uint8.
void check_real(const char* op, const char* arg, const Tensor& t, bool negative_limits);

// Parameter `arg` = `value` must convert to the input's `dtype` as `range` says without
// overflow, as torch's checked conversion of the scalar (NaN overflows integer types only).
void check_parameter_fits(const char* op, const char* arg, double value, at::ScalarType dtype,
                          ParameterRange range);

// `b` must match `a` in dtype and device (and shape when `same_shape`).
void check_like(const char* op, const char* arg_a, const Tensor& a, const char* arg_b,
                const Tensor& b, bool same_shape = true);

// empty_like(like), filled with NaN (integers: 85) when FUSEDACT_FILL_OUTPUTS_WITH_NAN=1 so
// tests see any element a kernel forgot to write.
Tensor new_output(const Tensor& like);
Tensor new_output(const Tensor& like, c10::SymIntArrayRef sizes);

// `t` with exactly the strides of `layout` (same shape): itself when it has them, else a
// copy. Kernels index operands linearly, so all operands of a launch share one layout.
Tensor in_layout_of(const Tensor& t, const Tensor& layout);

// Outputs on the meta device carry shapes only (torch.compile / export tracing).
inline bool is_meta(const Tensor& t) { return t.device().is_meta(); }

ScalarKind scalar_kind(at::ScalarType dtype);

// Runs the elementwise map `kernel` over [rows, cols] on the device of `like`.
template <class Kernel>
void run_elementwise(const Kernel& kernel, const Tensor& like, int64_t rows, int64_t cols,
                     const std::array<Operand, Kernel::kInputs>& inputs,
                     const std::array<Operand, Kernel::kOutputs>& outputs) {
  if (rows == 0 || cols == 0) return;
  if (like.device().is_cpu()) {
    auto run = [&](auto scalar) {
      using scalar_t = decltype(scalar);
      cpu::elementwise<scalar_t>(kernel, rows, cols, inputs.data(), outputs.data());
    };
    if constexpr (KernelTakesIntegers<Kernel>::value) {
      AT_DISPATCH_ALL_TYPES_AND2(at::kHalf, at::kBFloat16, like.scalar_type(), "fusedact",
                                 [&] { run(scalar_t{}); });
    } else {
      AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, like.scalar_type(), "fusedact",
                                      [&] { run(scalar_t{}); });
    }
    return;
  }
#ifdef FUSEDACT_WITH_CUDA
  if (like.device().is_cuda()) {
    c10::DeviceGuard guard(like.device());
    const char* error = cuda::launch_elementwise(
        kernel, scalar_kind(like.scalar_type()), rows, cols, inputs.data(), outputs.data(),
        c10::cuda::getCurrentCUDAStream(like.device().index()).stream());
    TORCH_CHECK(error == nullptr, "fusedact: CUDA kernel launch failed: ", error);
    return;
  }
#endif
  TORCH_CHECK(false, "fusedact: no kernel for device ", like.device(),
              " (this build supports " FUSEDACT_BACKENDS ")");
}

inline Operand operand(const Tensor& t, int64_t row_stride = 0, int64_t offset = 0) {
  return Operand{static_cast<char*>(t.data_ptr()) + offset * t.element_size(), row_stride};
}

// Runs `kernel` with every operand in the layout of outputs[0] (all outputs share it),
// as one row of numel elements.
template <class Kernel>
void run_same_layout(const Kernel& kernel, const std::array<Tensor, Kernel::kOutputs>& outputs,
                     const std::array<Tensor, Kernel::kInputs>& inputs) {
  std::array<Tensor, Kernel::kInputs> kept;
  std::array<Operand, Kernel::kInputs> in;
  std::array<Operand, Kernel::kOutputs> out;
  for (int i = 0; i < Kernel::kInputs; ++i) {
    kept[i] = in_layout_of(inputs[i], outputs[0]);
    in[i] = operand(kept[i]);
  }
  for (int o = 0; o < Kernel::kOutputs; ++o) out[o] = operand(outputs[o]);
  run_elementwise(kernel, outputs[0], 1, outputs[0].numel(), in, out);
}

// Registers one shape class. `for_each(f)` calls f(Class<op>{}) for every op of the class;
// each Class<op> provides define (schemas), impl_kernels and impl_autograd. One kernel
// serves CPU, CUDA and Meta: it validates, allocates and, off the meta device, launches
// the backend's generic elementwise kernel.
#ifdef FUSEDACT_WITH_CUDA
#define FUSEDACT_IMPL_CUDA(for_each)                                             \
  TORCH_LIBRARY_IMPL(fusedact, CUDA, m) {                                        \
    for_each([&](auto op) { decltype(op)::impl_kernels(m); });                   \
  }
#else
#define FUSEDACT_IMPL_CUDA(for_each)
#endif
#define FUSEDACT_REGISTER_SHAPE_CLASS(for_each)                                  \
  TORCH_LIBRARY_FRAGMENT(fusedact, m) {                                          \
    for_each([&](auto op) { decltype(op)::define(m); });                         \
  }                                                                              \
  TORCH_LIBRARY_IMPL(fusedact, CPU, m) {                                         \
    for_each([&](auto op) { decltype(op)::impl_kernels(m); });                   \
  }                                                                              \
  TORCH_LIBRARY_IMPL(fusedact, Meta, m) {                                        \
    for_each([&](auto op) { decltype(op)::impl_kernels(m); });                   \
  }                                                                              \
  FUSEDACT_IMPL_CUDA(for_each)                                                   \
  TORCH_LIBRARY_IMPL(fusedact, Autograd, m) {                                    \
    for_each([&](auto op) { decltype(op)::impl_autograd(m); });                  \
  }

// Registers op `name` and `name`_backward with their kernels (the shape classes with one
// forward and one backward op: weighted, rowwise).
template <class Forward, class Backward>
void impl_with_backward(torch::Library& m, const char* name, Forward forward, Backward backward) {
  m.impl(name, forward);
  m.impl((std::string(name) + "_backward").c_str(), backward);
}

// "fusedact::" + name + suffix, kept alive for the dispatcher lookup.
std::string qualified(const char* name, const char* suffix);

}  // namespace fusedact
