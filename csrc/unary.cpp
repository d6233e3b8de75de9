// The unary shape class: y = f(x) elementwise, for every row of FUSEDACT_UNARY_OPS.
//
// Per op this registers
//   X(input, params)                                   -> Tensor
//   X_backward(grad_output, input, params)             -> Tensor              (= dy*f'(x))
//   X_double_backward(grad_grad_input, grad_output, input, params) -> (Tensor, Tensor)
//   X_(input, params) -> ()  when torch.nn has inplace= for the module
// (tanh and sigmoid's backward ops take the forward output in place of the input, as torch's)
// with one kernel for CPU, CUDA and Meta (the Meta run allocates outputs only) and a C++
// autograd Function under the Autograd key whose backward calls the next op down.
#include <c10/util/TypeList.h>
#include <c10/util/TypeTraits.h>

#include "autograd.h"
#include "common.h"
#include "tensor_math.h"

namespace fusedact {
namespace {

// The parameter types P... of an op: those of its make_functor after the op name.
template <class Op, class Params = c10::guts::typelist::drop_t<
                        typename c10::guts::infer_function_traits_t<
                            decltype(Op::make_functor)>::parameter_types,
                        1>>
struct Unary;

template <class Op, class... P>
struct Unary<Op, c10::guts::typelist::typelist<P...>> {
  using Act = decltype(Op::make_functor("", std::declval<P>()...));
  using TensorPair = std::tuple<Tensor, Tensor>;
  // Backward from the output (tanh, sigmoid: as torch) or from the input.
  static constexpr bool kFromOutput = HasOutputDerivatives<Act>::value;
  static constexpr const char* kSaved = kFromOutput ? "output" : "input";

  // ---- kernels (CPU, CUDA, Meta) ----

  static std::string name(const char* suffix) { return std::string(Op::name) + suffix; }

  // Forward and in-place take integer inputs too where the activation does (as torch).
  static void check_input(const char* op, const Tensor& input, const Act& act) {
    if constexpr (AcceptsIntegers<Act>::value) {
      check_real(op, "input", input, act.negative_limits());
    } else {
      check_floating(op, "input", input);
    }
  }

  static Tensor forward(const Tensor& input, P... params) {
    const Act act = Op::make_functor(Op::name, params...);
    check_input(Op::name, input, act);
    Tensor out = new_output(input);
    if (!is_meta(out)) run_same_layout(UnaryForward<Act>{act}, {out}, {input});
    return out;
  }

  static void forward_(Tensor& input, P... params) {
    static const std::string op = name("_");  // built once per op
    const Act act = Op::make_functor(op.c_str(), params...);
    check_input(op.c_str(), input, act);
    if (is_meta(input) || input.numel() == 0) return;
    if (input.is_non_overlapping_and_dense()) {
      run_same_layout(UnaryForward<Act>{act}, {input}, {input});
    } else {
      // Overlapping or gapped memory: compute densely, then write back through the view.
      input.copy_(forward(input, params...));
    }
  }

  // `saved` is the input, or the output where kFromOutput.
  static Tensor backward(const Tensor& grad_output, const Tensor& saved, P... params) {
    static const std::string op = name("_backward");  // built once per op
    const Act act = Op::make_functor(op.c_str(), params...);
    check_floating(op.c_str(), kSaved, saved);
    check_like(op.c_str(), kSaved, saved, "grad_output", grad_output);
    Tensor grad_input = new_output(saved);
    if (!is_meta(grad_input))
      run_same_layout(UnaryBackward<UnaryDerivatives<Act>>{unary_derivatives(act)},
                      {grad_input}, {grad_output, saved});
    return grad_input;
  }

  static TensorPair double_backward(const Tensor& grad_grad_input, const Tensor& grad_output,
                                    const Tensor& saved, P... params) {
    static const std::string op = name("_double_backward");  // built once per op
    const Act act = Op::make_functor(op.c_str(), params...);
    check_floating(op.c_str(), kSaved, saved);
    check_like(op.c_str(), kSaved, saved, "grad_output", grad_output);
    check_like(op.c_str(), kSaved, saved, "grad_grad_input", grad_grad_input);
    Tensor grad_grad_output = new_output(saved), grad_saved = new_output(saved);
    if (!is_meta(grad_saved))
      run_same_layout(UnaryDoubleBackward<UnaryDerivatives<Act>>{unary_derivatives(act)},
                      {grad_grad_output, grad_saved}, {grad_grad_input, grad_output, saved});
    return {grad_grad_output, grad_saved};
  }

  // ---- dispatcher handles ----

  static const auto& forward_op() {
    static const auto op = lookup_op<Tensor(const Tensor&, P...)>(Op::name, "");
    return op;
  }
  static const auto& inplace_op() {
    static const auto op = lookup_op<void(Tensor&, P...)>(Op::name, "_");
    return op;
  }
  static const auto& backward_op() {
    static const auto op = lookup_op<Tensor(const Tensor&, const Tensor&, P...)>(Op::name, "_backward");
    return op;
  }
  static const auto& double_backward_op() {
    static const auto op = lookup_op<TensorPair(const Tensor&, const Tensor&, const Tensor&, P...)>(
        Op::name, "_double_backward");
    return op;
  }

  // ---- autograd ----

  // Saves the input, or the output where the backward is a function of it.
  struct ForwardFunction : torch::autograd::Function<ForwardFunction> {
    static Tensor forward(AutogradContext* ctx, const Tensor& input, P... params) {
      save_params(ctx, params...);
      at::AutoDispatchBelowADInplaceOrView guard;
      Tensor output = forward_op().call(input, params...);
      ctx->save_for_backward({kFromOutput ? output : input});
      return output;
    }
    static variable_list backward(AutogradContext* ctx, variable_list grads) {
      const Tensor saved = ctx->get_saved_variables()[0];
      variable_list result{Tensor()};
      if (grads[0].defined()) {
        result[0] = std::apply(
            [&](const P&... p) { return backward_op().call(grads[0], saved, p...); },
            load_params<P...>(ctx));
      }
      append_no_grads<P...>(result);
      return result;
    }
  };

  struct BackwardFunction : torch::autograd::Function<BackwardFunction> {
    static Tensor forward(AutogradContext* ctx, const Tensor& grad_output, const Tensor& input,
                          P... params) {
      ctx->save_for_backward({grad_output, input});
      save_params(ctx, params...);
      at::AutoDispatchBelowADInplaceOrView guard;
      return backward_op().call(grad_output, input, params...);
    }
    static variable_list backward(AutogradContext* ctx, variable_list grads) {
      const auto saved = ctx->get_saved_variables();
      variable_list result{Tensor(), Tensor()};
      if (grads[0].defined()) {
        auto [grad_grad_output, grad_input] = std::apply(
            [&](const P&... p) {
              return double_backward_op().call(grads[0], saved[0], saved[1], p...);
            },
            load_params<P...>(ctx));
        result = {grad_grad_output, grad_input};
      }
      append_no_grads<P...>(result);
      return result;
    }
  };

  static Tensor autograd_forward(const Tensor& input, P... params) {
    return ForwardFunction::apply(input, params...);
  }
  static Tensor autograd_backward(const Tensor& grad_output, const Tensor& input, P... params) {
    return BackwardFunction::apply(grad_output, input, params...);
  }
  // Derivatives above the second: the same formulas evaluated on tensors, which autograd
  // differentiates; otherwise the fused kernel.
  static TensorPair autograd_double_backward(const Tensor& grad_grad_input,
                                             const Tensor& grad_output, const Tensor& input,
                                             P... params) {
    if (torch::autograd::compute_requires_grad(grad_grad_input, grad_output, input)) {
      const Act act = Op::make_functor(name("_double_backward").c_str(), params...);
      const auto out = evaluate_on_tensors(UnaryDoubleBackward<UnaryDerivatives<Act>>{unary_derivatives(act)},
                                           {grad_grad_input, grad_output, input});
      return {out[0], out[1]};
    }
    at::AutoDispatchBelowADInplaceOrView guard;
    return double_backward_op().call(grad_grad_input, grad_output, input, params...);
  }

  // In-place under autograd, as torch does for its in-place activations: with grad, the
  // result is computed out of place from a saved copy of the input and written back with
  // copy_ (which raises torch's error for leaves and tracks the version counter); without
  // grad, the kernel runs in place and bumps the version counter itself.
  static void autograd_forward_(Tensor& input, P... params) {
    if (torch::autograd::compute_requires_grad(input)) {
      input.copy_(forward_op().call(input.clone(), params...));
      return;
    }
    {
      at::AutoDispatchBelowADInplaceOrView guard;
      inplace_op().call(input, params...);
    }
    torch::autograd::increment_version(input);
  }

  // ---- registration ----

  static void define(torch::Library& m) {
    const std::string n = Op::name, p = Op::schema_params;
    m.def((n + "(Tensor input" + p + ") -> Tensor").c_str());
    const std::string saved = kSaved;
    m.def((n + "_backward(Tensor grad_output, Tensor " + saved + p + ") -> Tensor").c_str());
    m.def((n + "_double_backward(Tensor grad_grad_input, Tensor grad_output, Tensor " + saved +
           p + ") -> (Tensor, Tensor)")
              .c_str());
    // Mutating ops return nothing: functionalization (torch.compile) rejects custom ops
    // whose outputs alias their inputs.
    if (Op::has_inplace) m.def((n + "_(Tensor(a!) input" + p + ") -> ()").c_str());
  }

  static void impl_kernels(torch::Library& m) {
    const std::string n = Op::name;
    m.impl(n.c_str(), TORCH_FN(forward));
    m.impl((n + "_backward").c_str(), TORCH_FN(backward));
    m.impl((n + "_double_backward").c_str(), TORCH_FN(double_backward));
    if (Op::has_inplace) m.impl((n + "_").c_str(), TORCH_FN(forward_));
  }

  static void impl_autograd(torch::Library& m) {
    const std::string n = Op::name;
    m.impl(n.c_str(), TORCH_FN(autograd_forward));
    m.impl((n + "_backward").c_str(), TORCH_FN(autograd_backward));
    m.impl((n + "_double_backward").c_str(), TORCH_FN(autograd_double_backward));
    if (Op::has_inplace) m.impl((n + "_").c_str(), TORCH_FN(autograd_forward_));
  }
};

// One traits struct per table row: name, schema text and how to build the functor.
#define FUSEDACT_UNARY_TRAITS(name_, Functor, make, params, names, schema, inplace)   \
  struct name_##_unary {                                                           \
    static constexpr const char* name = #name_;                                    \
    static constexpr const char* schema_params = schema;                           \
    static constexpr bool has_inplace = inplace;                                   \
    static Functor make_functor(const char* op FUSEDACT_UNPAREN params) { return FUSEDACT_UNPAREN make; } \
  };
FUSEDACT_UNARY_OPS(FUSEDACT_UNARY_TRAITS)
#undef FUSEDACT_UNARY_TRAITS

template <class F>
void for_each_unary_op(F&& f) {
#define FUSEDACT_VISIT(name, ...) f(Unary<name##_unary>{});
  FUSEDACT_UNARY_OPS(FUSEDACT_VISIT)
#undef FUSEDACT_VISIT
}

}  // namespace

FUSEDACT_REGISTER_SHAPE_CLASS(for_each_unary_op)

}  // namespace fusedact
