// Math<at::Tensor>: the functors' primitives on tensors. A mode functor evaluated on
// tensors is the kernels' own formula built from differentiable ATen ops; the
// double-backward ops use it when autograd asks for derivatives above the second.
#pragma once

#include <ATen/ATen.h>

#include <array>

#include <fusedact/functors.h>

namespace fusedact {

template <>
struct Math<at::Tensor> : CompoundMembers<at::Tensor, at::Tensor> {
  static double c(double v) { return v; }
  static at::Tensor exp(const at::Tensor& x) { return at::exp(x); }
  static at::Tensor exp_nonpositive(const at::Tensor& x) { return at::exp(x); }
  static at::Tensor erfc(const at::Tensor& x) { return at::erfc(x); }
  static at::Tensor tanh(const at::Tensor& x) { return at::tanh(x); }
  static at::Tensor abs(const at::Tensor& x) { return at::abs(x); }
  static at::Tensor fma(const at::Tensor& a, const at::Tensor& b, const at::Tensor& c) {
    return a * b + c;  // autograd's graph; the one-rounding property is not needed on tensors
  }
  static at::Tensor divide(const at::Tensor& a, double b) { return a / b; }
  static at::Tensor zero_like(const at::Tensor& x) { return at::zeros_like(x); }
  static at::Tensor full_like(const at::Tensor& x, double v) { return at::full_like(x, v); }
  template <class A, class B>
  static at::Tensor select(const at::Tensor& condition, const A& if_true, const B& if_false) {
    return at::where(condition, if_true, if_false);
  }
};

// Evaluates `kernel` on tensors in its op-math dtype (float for the half types) and
// returns the outputs in the inputs' dtype.
template <class Kernel>
std::array<at::Tensor, Kernel::kOutputs> evaluate_on_tensors(
    const Kernel& kernel, const std::array<at::Tensor, Kernel::kInputs>& inputs) {
  const auto dtype = inputs[0].scalar_type();
  const auto opmath = dtype == at::kDouble ? at::kDouble : at::kFloat;
  std::array<at::Tensor, Kernel::kInputs> in;
  std::array<at::Tensor, Kernel::kOutputs> out;
  for (int i = 0; i < Kernel::kInputs; ++i) in[i] = inputs[i].to(opmath);
  kernel(in.data(), out.data());
  for (auto& o : out) o = o.to(dtype);
  return out;
}

}  // namespace fusedact
