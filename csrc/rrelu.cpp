// rrelu: leaky_relu with a random slope per element in training (torch.nn.RReLU).
//
//   rrelu(input, lower=1/8, upper=1/3, training=False) -> Tensor      (composite)
//   rrelu_(input, lower, upper, training) -> ()                       (composite, in place)
//   rrelu_with_noise(input, noise) -> Tensor        x > 0 ? x : noise * x
//   rrelu_with_noise_backward(grad_output, input, noise) -> Tensor
//
// In evaluation rrelu is leaky_relu with slope (lower + upper) / 2. In training the slopes
// are drawn from torch's generator (uniform on [lower, upper], so reproducible under
// torch.manual_seed) and rrelu_with_noise applies them; its autograd saves the noise and
// the backward uses it. rrelu_with_noise is the prelu functor with an elementwise weight,
// run by the generic elementwise kernels.
#include <cmath>

#include "autograd.h"
#include "common.h"

namespace fusedact {
namespace {

void check_bounds(const char* op, double lower, double upper) {
  TORCH_CHECK(std::isfinite(lower) && std::isfinite(upper), "fusedact::", op,
              ": arguments 'lower' and 'upper' must be finite, got ", lower, " and ", upper);
  TORCH_CHECK(lower <= upper, "fusedact::", op, ": argument 'lower' (", lower,
              ") must not be greater than argument 'upper' (", upper, ")");
}

// ---- kernels (CPU, CUDA, Meta) ----

Tensor with_noise(const Tensor& input, const Tensor& noise) {
  check_floating("rrelu_with_noise", "input", input);
  check_like("rrelu_with_noise", "input", input, "noise", noise);
  Tensor out = new_output(input);
  if (!is_meta(out)) run_same_layout(WeightedForward<Prelu>{}, {out}, {input, noise});
  return out;
}

Tensor with_noise_backward(const Tensor& grad_output, const Tensor& input, const Tensor& noise) {
  const char* op = "rrelu_with_noise_backward";
  check_floating(op, "input", input);
  check_like(op, "input", input, "noise", noise);
  check_like(op, "input", input, "grad_output", grad_output);
  Tensor grad_input = new_output(input);
  if (is_meta(grad_input)) return grad_input;
  // The input gradient only: the noise is not learned.
  run_same_layout(WeightedInputBackward<Prelu>{}, {grad_input}, {grad_output, input, noise});
  return grad_input;
}

// ---- autograd ----

const auto& with_noise_backward_op() {
  static const auto op =
      lookup_op<Tensor(const Tensor&, const Tensor&, const Tensor&)>("rrelu_with_noise", "_backward");
  return op;
}
const auto& with_noise_op() {
  static const auto op = lookup_op<Tensor(const Tensor&, const Tensor&)>("rrelu_with_noise", "");
  return op;
}

// The noise is a constant of the graph: no gradient flows to it.
Tensor autograd_with_noise(const Tensor& input, const Tensor& noise) {
  return differentiable(
      "rrelu_with_noise", {input, noise}, {saved_input(0), saved_input(1)},
      [&]() -> variable_list { return {with_noise_op().call(input, noise)}; },
      [](const variable_list& grads, const variable_list& saved) {
        if (!grads[0].defined()) return variable_list{Tensor(), Tensor()};
        return variable_list{with_noise_backward_op().call(grads[0], saved[0], saved[1]),
                             Tensor()};
      })[0];
}

// d(grad_input)/d(grad_output) is the same map again; d/d(input) is 0 (piecewise linear).
Tensor autograd_with_noise_backward(const Tensor& grad_output, const Tensor& input,
                                    const Tensor& noise) {
  return differentiable(
      "rrelu_with_noise_backward", {grad_output, input, noise}, {saved_input(1), saved_input(2)},
      [&]() -> variable_list {
        return {with_noise_backward_op().call(grad_output, input, noise)};
      },
      [](const variable_list& grads, const variable_list& saved) {
        if (!grads[0].defined()) return variable_list{Tensor(), Tensor(), Tensor()};
        return variable_list{with_noise_backward_op().call(grads[0], saved[0], saved[1]),
                             at::zeros_like(saved[0]), Tensor()};
      })[0];
}

// ---- composites ----

Tensor rrelu_composite(const Tensor& input, double lower, double upper, bool training) {
  check_floating("rrelu", "input", input);
  check_bounds("rrelu", lower, upper);
  if (!training) return fusedact::leaky_relu(input, (lower + upper) / 2);
  Tensor noise = at::empty_like(input).uniform_(lower, upper);
  return fusedact::rrelu_with_noise(input, noise);
}

void rrelu_inplace_composite(Tensor& input, double lower, double upper, bool training) {
  check_floating("rrelu_", "input", input);
  check_bounds("rrelu_", lower, upper);
  if (!training) {
    fusedact::leaky_relu_(input, (lower + upper) / 2);
    return;
  }
  // Each element times its slope, 1 where positive: the backward is grad * slope, which
  // needs neither the lost input nor the result (torch's in-place rrelu saves the same).
  const Tensor noise = at::empty_like(input).uniform_(lower, upper);
  input.mul_(at::where(input > 0, at::ones_like(noise), noise));
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(fusedact, m) {
  m.def("rrelu(Tensor input, float lower=0.125, float upper=0.3333333333333333, "
        "bool training=False) -> Tensor");
  m.def("rrelu_(Tensor(a!) input, float lower=0.125, float upper=0.3333333333333333, "
        "bool training=False) -> ()");
  m.def("rrelu_with_noise(Tensor input, Tensor noise) -> Tensor");
  m.def("rrelu_with_noise_backward(Tensor grad_output, Tensor input, Tensor noise) -> Tensor");
}

// rrelu and rrelu_ decompose into other fusedact ops (and uniform_), which carry autograd.
TORCH_LIBRARY_IMPL(fusedact, CompositeImplicitAutograd, m) {
  m.impl("rrelu", TORCH_FN(rrelu_composite));
  m.impl("rrelu_", TORCH_FN(rrelu_inplace_composite));
}

#define FUSEDACT_RRELU_KERNELS(key)                                          \
  TORCH_LIBRARY_IMPL(fusedact, key, m) {                                     \
    m.impl("rrelu_with_noise", TORCH_FN(with_noise));                        \
    m.impl("rrelu_with_noise_backward", TORCH_FN(with_noise_backward));      \
  }
FUSEDACT_RRELU_KERNELS(CPU)
FUSEDACT_RRELU_KERNELS(Meta)
#ifdef FUSEDACT_WITH_CUDA
FUSEDACT_RRELU_KERNELS(CUDA)
#endif

TORCH_LIBRARY_IMPL(fusedact, Autograd, m) {
  m.impl("rrelu_with_noise", TORCH_FN(autograd_with_noise));
  m.impl("rrelu_with_noise_backward", TORCH_FN(autograd_with_noise_backward));
}

}  // namespace fusedact
