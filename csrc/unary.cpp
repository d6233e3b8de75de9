// The unary shape class: y = f(x) elementwise, for every row of FUSEDACT_UNARY_OPS.
//
// Per op this registers
//   X(input, params)                                   -> Tensor
//   X_backward(grad_output, input, params)             -> Tensor              (= dy*f'(x))
//   X_double_backward(grad_grad_input, grad_output, input, params) -> (Tensor, Tensor)
//   X_(input, params) -> ()  when torch.nn has inplace= for the module
//   X_result_backward(grad_output, result, params), X_result_double_backward(...)
//       the in-place op's backward from its result, where torch's uses the result
//       (leaky_relu_, elu_, selu_, celu_)
// (tanh, sigmoid and relu's backward ops take the forward output in place of the input, as
// torch's)
// with one kernel for CPU, CUDA and Meta (the Meta run allocates outputs only) and a C++
// autograd node (autograd.h) under the Autograd key whose backward calls the next op down.
#include <c10/core/InferenceMode.h>
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

  // The backward ops come in up to two variants, each a pair X<suffix> / X<double suffix>:
  // Primary, X_backward from the input, or from the output where torch saves the output
  // (tanh, sigmoid, relu); FromResult, X_result_backward from the output, for the in-place
  // op of an activation whose torch in-place backward uses the result (leaky_relu_, elu_,
  // selu_, celu_) while its out-of-place backward uses the input.
  struct Primary {
    using Derivs = UnaryDerivatives<Act>;
    static constexpr const char* kSuffix = "_backward";
    static constexpr const char* kDoubleSuffix = "_double_backward";
    static constexpr const char* kSaved = SavesOutput<Act>::value ? "output" : "input";
    static Derivs derivatives(const char*, const Act& act) { return unary_derivatives(act); }
  };
  struct FromResult {
    using Derivs = OutputDerivatives<Act>;
    static constexpr const char* kSuffix = "_result_backward";
    static constexpr const char* kDoubleSuffix = "_result_double_backward";
    static constexpr const char* kSaved = "result";
    // As torch's elu_backward / leaky_relu_backward on the result: with a negative
    // slope the sign of the result no longer tells the branch.
    static Derivs derivatives(const char* op, const Act& act) {
      TORCH_CHECK(act.output_determines_derivative(), "fusedact::", op,
                  ": the backward of the in-place ", Op::name,
                  "_ is not supported with a negative slope parameter ('negative_slope' of "
                  "leaky_relu_, 'alpha' of elu_ and celu_; its result no longer "
                  "tells which branch the input took; torch raises here too): call the "
                  "out-of-place ", Op::name, " instead");
      return {act};
    }
  };
  // The in-place op saves the result where the activation can differentiate from it (as
  // torch's relu_, leaky_relu_ and elu family), else a copy of the input.
  static constexpr bool kInplaceSavesResult = Op::has_inplace && HasOutputDerivatives<Act>::value;
  static constexpr bool kHasResultOps = kInplaceSavesResult && !SavesOutput<Act>::value;
  using InplaceVariant = std::conditional_t<kHasResultOps, FromResult, Primary>;

  // ---- kernels (CPU, CUDA, Meta) ----

  static std::string name(const char* suffix) { return std::string(Op::name) + suffix; }

  // Forward and in-place take integer inputs too where the activation does (as torch).
  static void check_input(const char* op, const Tensor& input, const Act& act) {
    if constexpr (AcceptsIntegers<Act>::value) {
      check_real(op, "input", input, act.negative_limits());
    } else {
      check_floating(op, "input", input);
    }
    if constexpr (ChecksParameters<Act>::value) {
      act.check_parameters([&](const char* arg, double value, ParameterRange range) {
        check_parameter_fits(op, arg, value, input.scalar_type(), range);
      });
    }
  }

  // Complex input, where torch takes it: the formula on tensors, differentiable by autograd.
  static bool is_complex_input(const Tensor& input) {
    return input.defined() && input.is_complex();
  }
  static Tensor complex_forward(const Tensor& input, P... params) {
    TORCH_CHECK(!(ComplexNoGrad<Act>::value && at::GradMode::is_enabled() && input.requires_grad()),
                "fusedact::", Op::name, ": argument 'input' is complex and requires grad: ",
                Op::name, " does not support automatic differentiation for outputs with "
                "complex dtype (as torch's)");
    return Op::make_functor(Op::name, params...).forward(input);
  }

  static Tensor forward(const Tensor& input, P... params) {
    if constexpr (AcceptsComplex<Act>::value) {
      if (is_complex_input(input)) return complex_forward(input, params...);
    }
    if constexpr (PromotesIntegers<Act>::value) {
      if (at::isIntegralType(input.scalar_type(), /*includeBool=*/Act::kPromotesBool))
        return forward(input.to(c10::typeMetaToScalarType(at::get_default_dtype())), params...);
    }
    const Act act = Op::make_functor(Op::name, params...);
    check_input(Op::name, input, act);
    Tensor out = new_output(input);
    if (!is_meta(out)) run_same_layout(UnaryForward<Act>{act}, {out}, {input});
    return out;
  }

  static void forward_(Tensor& input, P... params) {
    static const std::string op = name("_");  // built once per op
    const Act act = Op::make_functor(op.c_str(), params...);
    if constexpr (AcceptsComplex<Act>::value) {
      if (is_complex_input(input))
        return void(input.copy_(complex_forward(input.clone(), params...)));
    }
    check_input(op.c_str(), input, act);
    // Inference tensors skip the autograd keys, so torch's own check lives in the kernel.
    TORCH_CHECK(!input.is_inference() || c10::InferenceMode::is_enabled(), "fusedact::", op,
                ": argument 'input': Inplace update to inference tensor outside InferenceMode "
                "is not allowed (clone it first to get a normal tensor)");
    if (is_meta(input) || input.numel() == 0) return;
    if (input.is_non_overlapping_and_dense()) {
      run_same_layout(UnaryForward<Act>{act}, {input}, {input});
    } else {
      // Overlapping or gapped memory: compute densely, then write back through the view.
      input.copy_(forward(input, params...));
    }
  }

  // `saved` is what the variant's backward is given: input, output or result.
  template <class V>
  static Tensor backward(const Tensor& grad_output, const Tensor& saved, P... params) {
    static const std::string op = name(V::kSuffix);  // built once per op
    const auto derivs = V::derivatives(op.c_str(), Op::make_functor(op.c_str(), params...));
    check_floating(op.c_str(), V::kSaved, saved);
    check_like(op.c_str(), V::kSaved, saved, "grad_output", grad_output);
    Tensor grad_input = new_output(saved);
    if (!is_meta(grad_input))
      run_same_layout(UnaryBackward<typename V::Derivs>{derivs}, {grad_input},
                      {grad_output, saved});
    return grad_input;
  }

  template <class V>
  static TensorPair double_backward(const Tensor& grad_grad_input, const Tensor& grad_output,
                                    const Tensor& saved, P... params) {
    static const std::string op = name(V::kDoubleSuffix);  // built once per op
    const auto derivs = V::derivatives(op.c_str(), Op::make_functor(op.c_str(), params...));
    check_floating(op.c_str(), V::kSaved, saved);
    check_like(op.c_str(), V::kSaved, saved, "grad_output", grad_output);
    check_like(op.c_str(), V::kSaved, saved, "grad_grad_input", grad_grad_input);
    Tensor grad_grad_output = new_output(saved), grad_saved = new_output(saved);
    if (!is_meta(grad_saved))
      run_same_layout(UnaryDoubleBackward<typename V::Derivs>{derivs},
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
  template <class V>
  static const auto& backward_op() {
    static const auto op =
        lookup_op<Tensor(const Tensor&, const Tensor&, P...)>(Op::name, V::kSuffix);
    return op;
  }
  template <class V>
  static const auto& double_backward_op() {
    static const auto op = lookup_op<TensorPair(const Tensor&, const Tensor&, const Tensor&, P...)>(
        Op::name, V::kDoubleSuffix);
    return op;
  }

  // ---- autograd ----

  static Tensor autograd_forward(const Tensor& input, P... params) {
    if constexpr (AcceptsComplex<Act>::value) {  // ATen's autograd differentiates it
      if (is_complex_input(input)) return complex_forward(input, params...);
    }
    constexpr bool from_output = SavesOutput<Act>::value;
    return differentiable(
        name(""), {input}, {from_output ? saved_output(0) : saved_input(0)},
        [&]() -> variable_list { return {forward_op().call(input, params...)}; },
        [p = OwnedParams<P...>(params...)](const variable_list& grads, const variable_list& saved) {
          if (!grads[0].defined()) return variable_list{Tensor()};
          return std::apply(
              [&](const auto&... q) {
                return variable_list{backward_op<Primary>().call(grads[0], saved[0], q...)};
              },
              p);
        })[0];
  }

  // The backward op's own backward: its double-backward op.
  template <class V>
  static Tensor autograd_backward(const Tensor& grad_output, const Tensor& saved, P... params) {
    return differentiable(
        name(V::kSuffix), {grad_output, saved}, {saved_input(0), saved_input(1)},
        [&]() -> variable_list { return {backward_op<V>().call(grad_output, saved, params...)}; },
        [p = OwnedParams<P...>(params...)](const variable_list& grads, const variable_list& saved) {
          if (!grads[0].defined()) return variable_list{Tensor(), Tensor()};
          return std::apply(
              [&](const auto&... q) {
                auto [grad_grad_output, grad_saved] =
                    double_backward_op<V>().call(grads[0], saved[0], saved[1], q...);
                return variable_list{grad_grad_output, grad_saved};
              },
              p);
        })[0];
  }

  // Derivatives above the second: the same formulas evaluated on tensors, which autograd
  // differentiates; otherwise the fused kernel.
  template <class V>
  static TensorPair autograd_double_backward(const Tensor& grad_grad_input,
                                             const Tensor& grad_output, const Tensor& saved,
                                             P... params) {
    if (torch::autograd::compute_requires_grad(grad_grad_input, grad_output, saved)) {
      const std::string op = name(V::kDoubleSuffix);
      const auto derivs = V::derivatives(op.c_str(), Op::make_functor(op.c_str(), params...));
      const auto out = evaluate_on_tensors(UnaryDoubleBackward<typename V::Derivs>{derivs},
                                           {grad_grad_input, grad_output, saved});
      return {out[0], out[1]};
    }
    at::AutoDispatchBelowADInplaceOrView guard;
    return double_backward_op<V>().call(grad_grad_input, grad_output, saved, params...);
  }

  // In-place under autograd, saving what torch's in-place op saves: the result where the
  // activation differentiates from it (relu_, leaky_relu_, the elu family), else a copy of
  // the input.
  static void autograd_forward_(Tensor& input, P... params) {
    if constexpr (AcceptsComplex<Act>::value) {  // the clone keeps saved tensors unmodified
      if (is_complex_input(input))
        return void(input.copy_(complex_forward(input.clone(), params...)));
    }
    differentiable_inplace(
        name("_"), input, kInplaceSavesResult, [&] { inplace_op().call(input, params...); },
        [p = OwnedParams<P...>(params...)](const variable_list& grads, const variable_list& saved) {
          if (!grads[0].defined()) return variable_list{Tensor()};
          return std::apply(
              [&](const auto&... q) {
                return variable_list{
                    backward_op<InplaceVariant>().call(grads[0], saved[0], q...)};
              },
              p);
        });
  }

  // ---- registration ----

  template <class V>
  static void define_backward(torch::Library& m) {
    const std::string n = Op::name, p = Op::schema_params, saved = V::kSaved;
    m.def((n + V::kSuffix + "(Tensor grad_output, Tensor " + saved + p + ") -> Tensor").c_str());
    m.def((n + V::kDoubleSuffix + "(Tensor grad_grad_input, Tensor grad_output, Tensor " +
           saved + p + ") -> (Tensor, Tensor)")
              .c_str());
  }

  static void define(torch::Library& m) {
    const std::string n = Op::name, p = Op::schema_params;
    m.def((n + "(Tensor input" + p + ") -> Tensor").c_str());
    define_backward<Primary>(m);
    if constexpr (kHasResultOps) define_backward<FromResult>(m);
    // Mutating ops return nothing: functionalization (torch.compile) rejects custom ops
    // whose outputs alias their inputs.
    if (Op::has_inplace) m.def((n + "_(Tensor(a!) input" + p + ") -> ()").c_str());
  }

  template <class V>
  static void impl_backward_kernels(torch::Library& m) {
    const std::string n = Op::name;
    m.impl((n + V::kSuffix).c_str(), TORCH_FN(backward<V>));
    m.impl((n + V::kDoubleSuffix).c_str(), TORCH_FN(double_backward<V>));
  }

  static void impl_kernels(torch::Library& m) {
    const std::string n = Op::name;
    m.impl(n.c_str(), TORCH_FN(forward));
    impl_backward_kernels<Primary>(m);
    if constexpr (kHasResultOps) impl_backward_kernels<FromResult>(m);
    if (Op::has_inplace) m.impl((n + "_").c_str(), TORCH_FN(forward_));
  }

  template <class V>
  static void impl_backward_autograd(torch::Library& m) {
    const std::string n = Op::name;
    m.impl((n + V::kSuffix).c_str(), TORCH_FN(autograd_backward<V>));
    m.impl((n + V::kDoubleSuffix).c_str(), TORCH_FN(autograd_double_backward<V>));
  }

  static void impl_autograd(torch::Library& m) {
    const std::string n = Op::name;
    m.impl(n.c_str(), TORCH_FN(autograd_forward));
    impl_backward_autograd<Primary>(m);
    if constexpr (kHasResultOps) impl_backward_autograd<FromResult>(m);
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
