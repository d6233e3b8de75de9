// The weighted shape class: out = f(input, weight) for every row of FUSEDACT_WEIGHTED_OPS,
// with one weight per channel (dimension 1 of an input of 2+ dims) or one for all, as
// torch's prelu.
//
// Per op this registers
//   X(input, weight)                           -> Tensor
//   X_backward(grad_output, input, weight)     -> (grad_input, grad_weight)
// The kernels are the generic elementwise ones: the weight is broadcast to the output's
// layout, the backward writes grad_input and a per-element term that torch's sum reduces
// to grad_weight. Double backward differentiates the same formulas evaluated on tensors.
#include "autograd.h"
#include "common.h"
#include "tensor_math.h"

namespace fusedact {
namespace {

using TensorPair = std::tuple<Tensor, Tensor>;

template <class Op>
struct Weighted {
  using Act = typename Op::Functor;

  static std::string name(const char* suffix) { return std::string(Op::name) + suffix; }

  // Checks `weight` against `input` as torch's prelu does; returns the shape that makes the
  // weight broadcast against the input ([1, C, 1, ...]), or {} for a single weight.
  static std::vector<c10::SymInt> weight_view(const std::string& op, const Tensor& input,
                                              const Tensor& weight) {
    check_floating(op.c_str(), "input", input);
    check_like(op.c_str(), "input", input, "weight", weight, /*same_shape=*/false);
    TORCH_CHECK(weight.dim() <= 1, "fusedact::", op,
                ": argument 'weight' must be a scalar or a 1-D tensor, got ", weight.dim(),
                " dimensions");
    const c10::SymInt channels = input.dim() >= 2 ? input.sym_size(1) : c10::SymInt(1);
    const c10::SymInt count = weight.sym_numel();
    TORCH_CHECK(count == 1 || count == channels, "fusedact::", op,
                ": argument 'weight' must have 1 element or one per channel (size ", channels,
                " of dimension 1 of 'input'), got ", count);
    if (count == 1 || input.dim() < 2) return {};
    std::vector<c10::SymInt> shape(input.dim(), c10::SymInt(1));
    shape[1] = count;
    return shape;
  }

  static Tensor weight_as_broadcast(const Tensor& weight, const std::vector<c10::SymInt>& shape) {
    return shape.empty() ? weight.reshape({}) : weight.view_symint(shape);
  }

  // grad_weight from the per-element term: summed over every dim but the channel one,
  // accumulated in double (the sum of many mixed-sign terms cancels; a float32 sum was
  // ~10x further from the float64 value than this).
  static Tensor reduce_to_weight(const Tensor& term, const Tensor& weight,
                                 const std::vector<c10::SymInt>& shape) {
    const auto opmath = at::kDouble;
    Tensor total;
    if (shape.empty()) {
      total = term.sum(opmath);
    } else {
      std::vector<int64_t> dims;
      for (int64_t d = 0; d < term.dim(); ++d)
        if (d != 1) dims.push_back(d);
      total = term.sum(dims, /*keepdim=*/false, opmath);
    }
    return total.reshape_symint(weight.sym_sizes()).to(weight.scalar_type());
  }

  // Runs `kernel` (its last input: the weight) with the weight broadcast against `like`.
  // Contiguous operands with long rows run as rows of dimension 0 with the weight expanded
  // over one row only, which every row reads (row stride 0); others get it expanded in full.
  template <class Kernel>
  static void run_with_weight(const Kernel& kernel,
                              const std::array<Tensor, Kernel::kOutputs>& outputs,
                              const std::array<Tensor, Kernel::kInputs - 1>& others,
                              const Tensor& weight, const std::vector<c10::SymInt>& shape) {
    const Tensor& like = outputs[0];
    const Tensor broadcast = weight_as_broadcast(weight, shape).expand_as(like);
    // Rows shorter than this would cut the SIMD loops into short runs: expand fully instead.
    constexpr int64_t kMinRowLength = 512;
    bool by_rows =
        like.dim() >= 1 && like.numel() / std::max<int64_t>(like.size(0), 1) >= kMinRowLength;
    for (const Tensor& t : outputs) by_rows &= t.is_contiguous();
    for (const Tensor& t : others) by_rows &= t.is_contiguous();
    if (!by_rows) {
      std::array<Tensor, Kernel::kInputs> inputs;
      std::copy(others.begin(), others.end(), inputs.begin());
      inputs.back() = at::empty_like(like);
      inputs.back().copy_(broadcast);
      return run_same_layout(kernel, outputs, inputs);
    }
    const int64_t rows = like.size(0), cols = like.numel() / rows;
    const Tensor row_weight = broadcast.select(0, 0).contiguous();
    std::array<Operand, Kernel::kInputs> in;
    std::array<Operand, Kernel::kOutputs> out;
    for (size_t i = 0; i < others.size(); ++i) in[i] = operand(others[i], cols);
    in.back() = operand(row_weight, 0);
    for (size_t o = 0; o < outputs.size(); ++o) out[o] = operand(outputs[o], cols);
    run_elementwise(kernel, like, rows, cols, in, out);
  }

  // ---- kernels (CPU, CUDA, Meta) ----

  static Tensor forward(const Tensor& input, const Tensor& weight) {
    const auto shape = weight_view(Op::name, input, weight);
    Tensor out = new_output(input);
    if (is_meta(out) || out.numel() == 0) return out;
    run_with_weight(WeightedForward<Act>{}, {out}, {input}, weight, shape);
    return out;
  }

  static TensorPair backward(const Tensor& grad_output, const Tensor& input,
                             const Tensor& weight) {
    static const std::string op = name("_backward");  // built once per op
    const auto shape = weight_view(op, input, weight);
    check_like(op.c_str(), "input", input, "grad_output", grad_output);
    Tensor grad_input = new_output(input), grad_weight = new_output(weight);
    if (is_meta(grad_input)) return {grad_input, grad_weight};
    if (input.numel() == 0) return {grad_input, grad_weight.zero_()};
    Tensor term = at::empty_like(grad_input);
    run_with_weight(WeightedBackward<Act>{}, {grad_input, term}, {grad_output, input}, weight,
                    shape);
    grad_weight.copy_(reduce_to_weight(term, weight, shape));
    return {grad_input, grad_weight};
  }

  // ---- autograd ----

  static const auto& forward_op() {
    static const auto op = lookup_op<Tensor(const Tensor&, const Tensor&)>(Op::name, "");
    return op;
  }
  static const auto& backward_op() {
    static const auto op =
        lookup_op<TensorPair(const Tensor&, const Tensor&, const Tensor&)>(Op::name, "_backward");
    return op;
  }

  static Tensor autograd_forward(const Tensor& input, const Tensor& weight) {
    return differentiable(
        std::string(Op::name), {input, weight}, {saved_input(0), saved_input(1)},
        [&]() -> variable_list { return {forward_op().call(input, weight)}; },
        [](const variable_list& grads, const variable_list& saved) {
          if (!grads[0].defined()) return variable_list{Tensor(), Tensor()};
          auto [grad_input, grad_weight] = backward_op().call(grads[0], saved[0], saved[1]);
          return variable_list{grad_input, grad_weight};
        })[0];
  }

  // With grad (double backward): the same formulas on tensors, which autograd
  // differentiates; otherwise the fused kernel.
  static TensorPair autograd_backward(const Tensor& grad_output, const Tensor& input,
                                      const Tensor& weight) {
    if (torch::autograd::compute_requires_grad(grad_output, input, weight)) {
      static const std::string op = name("_backward");  // built once per op
      const auto shape = weight_view(op, input, weight);
      Tensor grad_input, term;
      Act{}.backward(grad_output, input, weight_as_broadcast(weight, shape), grad_input, term);
      return {grad_input, reduce_to_weight(term, weight, shape)};
    }
    at::AutoDispatchBelowADInplaceOrView guard;
    return backward_op().call(grad_output, input, weight);
  }

  // ---- registration ----

  static void define(torch::Library& m) {
    const std::string n = Op::name;
    m.def((n + "(Tensor input, Tensor weight) -> Tensor").c_str());
    m.def((n + "_backward(Tensor grad_output, Tensor input, Tensor weight) -> (Tensor, Tensor)")
              .c_str());
  }
  static void impl_kernels(torch::Library& m) {
    impl_with_backward(m, Op::name, TORCH_FN(forward), TORCH_FN(backward));
  }
  static void impl_autograd(torch::Library& m) {
    impl_with_backward(m, Op::name, TORCH_FN(autograd_forward), TORCH_FN(autograd_backward));
  }
};

#define FUSEDACT_WEIGHTED_TRAITS(name_, Functor_)    \
  struct name_##_weighted {                         \
    static constexpr const char* name = #name_;     \
    using Functor = Functor_;                       \
  };
FUSEDACT_WEIGHTED_OPS(FUSEDACT_WEIGHTED_TRAITS)
#undef FUSEDACT_WEIGHTED_TRAITS

template <class F>
void for_each_weighted_op(F&& f) {
#define FUSEDACT_VISIT(name, ...) f(Weighted<name##_weighted>{});
  FUSEDACT_WEIGHTED_OPS(FUSEDACT_VISIT)
#undef FUSEDACT_VISIT
}

}  // namespace

FUSEDACT_REGISTER_SHAPE_CLASS(for_each_weighted_op)

}  // namespace fusedact
