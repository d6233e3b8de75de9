// fusedact C++ API: one function per registered op, calling through the torch dispatcher
// (so autograd, every backend and torch's dispatch extensions apply).
//
//   #include <fusedact/fusedact.h>
//   at::Tensor y = fusedact::gelu(x, "tanh");
//   at::Tensor h = fusedact::swiglu(gate_up);       // silu(first half) * second half
//   at::Tensor g = fusedact::swiglu(gate, up);      // the two-tensor (.split) overload
//   at::Tensor p = fusedact::softmax(logits, -1, at::kFloat);  // dtype= as torch's
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cstdint>
#include <optional>
#include <string_view>
#include <tuple>
#include <type_traits>

#include <fusedact/op_table.h>

namespace fusedact {
namespace detail {

// Defined in the fusedact library. Calling it keeps the library (and with it the static
// op registrations) linked into programs that use only this header's inline functions.
void ensure_registered();

using TensorPair = std::tuple<at::Tensor, at::Tensor>;
using TensorTriple = std::tuple<at::Tensor, at::Tensor, at::Tensor>;

// Dispatcher signature of an argument: tensors are `const Tensor&`, except in in-place ops
// (which return nothing and take their one tensor as `Tensor&`); the rest decay.
template <class Ret, class A>
using dispatch_arg_t = std::conditional_t<
    std::is_same_v<std::decay_t<A>, at::Tensor>,
    std::conditional_t<std::is_void_v<Ret>, at::Tensor&, const at::Tensor&>, std::decay_t<A>>;

template <class Ret, class... A>
c10::TypedOperatorHandle<Ret(dispatch_arg_t<Ret, A>...)> find_op(const char* name,
                                                                  const char* overload,
                                                                  const A&...) {
  ensure_registered();
  return c10::Dispatcher::singleton()
      .findSchemaOrThrow(name, overload)
      .template typed<Ret(dispatch_arg_t<Ret, A>...)>();
}

}  // namespace detail
}  // namespace fusedact

// Calls op `name.overload` with the given (named) arguments; the lookup is done once.
#define FUSEDACT_CALL(Ret, name, overload, ...)                                          \
  ([&]() -> Ret {                                                                       \
    static const auto op = ::fusedact::detail::find_op<Ret>(name, overload, __VA_ARGS__); \
    return op.call(__VA_ARGS__);                                                        \
  }())

#define FUSEDACT_DECLARE_UNARY(name, Functor, make, params, names, schema, has_inplace)    \
  inline at::Tensor name(const at::Tensor& input FUSEDACT_UNPAREN params) {              \
    return FUSEDACT_CALL(at::Tensor, "fusedact::" #name, "", input FUSEDACT_UNPAREN names); \
  }                                                                                      \
  inline at::Tensor name##_backward(const at::Tensor& grad_output,                       \
                                    const at::Tensor& input FUSEDACT_UNPAREN params) {   \
    return FUSEDACT_CALL(at::Tensor, "fusedact::" #name "_backward", "", grad_output,    \
                         input FUSEDACT_UNPAREN names);                                  \
  }                                                                                      \
  inline std::tuple<at::Tensor, at::Tensor> name##_double_backward(                      \
      const at::Tensor& grad_grad_input, const at::Tensor& grad_output,                  \
      const at::Tensor& input FUSEDACT_UNPAREN params) {                                 \
    return FUSEDACT_CALL(::fusedact::detail::TensorPair,                           \
                         "fusedact::" #name "_double_backward", "", grad_grad_input,     \
                         grad_output, input FUSEDACT_UNPAREN names);                     \
  }                                                                                      \
  FUSEDACT_IF(has_inplace, inline at::Tensor& name##_(at::Tensor& input FUSEDACT_UNPAREN params) { \
    FUSEDACT_CALL(void, "fusedact::" #name "_", "", input FUSEDACT_UNPAREN names);         \
    return input;                                                                          \
  })

#define FUSEDACT_DECLARE_GATED(name, Functor, make, params, names, schema, gate_is_first)   \
  inline at::Tensor name(const at::Tensor& input FUSEDACT_UNPAREN params, int64_t dim = -1) { \
    return FUSEDACT_CALL(at::Tensor, "fusedact::" #name, "", input FUSEDACT_UNPAREN names, dim); \
  }                                                                                        \
  inline at::Tensor name(const at::Tensor& gate, const at::Tensor& up FUSEDACT_UNPAREN params) { \
    return FUSEDACT_CALL(at::Tensor, "fusedact::" #name, "split", gate,                    \
                         up FUSEDACT_UNPAREN names);                                       \
  }                                                                                        \
  inline at::Tensor name##_backward(const at::Tensor& grad_output,                         \
                                    const at::Tensor& input FUSEDACT_UNPAREN params,       \
                                    int64_t dim = -1) {                                    \
    return FUSEDACT_CALL(at::Tensor, "fusedact::" #name "_backward", "", grad_output,      \
                         input FUSEDACT_UNPAREN names, dim);                               \
  }                                                                                        \
  inline std::tuple<at::Tensor, at::Tensor> name##_backward(                               \
      const at::Tensor& grad_output, const at::Tensor& gate,                               \
      const at::Tensor& up FUSEDACT_UNPAREN params) {                                      \
    return FUSEDACT_CALL(::fusedact::detail::TensorPair,                             \
                         "fusedact::" #name "_backward", "split", grad_output, gate,       \
                         up FUSEDACT_UNPAREN names);                                       \
  }                                                                                        \
  inline std::tuple<at::Tensor, at::Tensor> name##_double_backward(                        \
      const at::Tensor& grad_grad_input, const at::Tensor& grad_output,                    \
      const at::Tensor& input FUSEDACT_UNPAREN params, int64_t dim = -1) {                 \
    return FUSEDACT_CALL(::fusedact::detail::TensorPair,                             \
                         "fusedact::" #name "_double_backward", "", grad_grad_input,       \
                         grad_output, input FUSEDACT_UNPAREN names, dim);                  \
  }                                                                                        \
  inline std::tuple<at::Tensor, at::Tensor, at::Tensor> name##_double_backward(            \
      const at::Tensor& grad_grad_gate, const at::Tensor& grad_grad_up,                    \
      const at::Tensor& grad_output, const at::Tensor& gate,                               \
      const at::Tensor& up FUSEDACT_UNPAREN params) {                                      \
    return FUSEDACT_CALL(::fusedact::detail::TensorTriple,                 \
                         "fusedact::" #name "_double_backward", "split", grad_grad_gate,   \
                         grad_grad_up, grad_output, gate, up FUSEDACT_UNPAREN names);      \
  }

#define FUSEDACT_DECLARE_WEIGHTED(name, Functor)                                           \
  inline at::Tensor name(const at::Tensor& input, const at::Tensor& weight) {              \
    return FUSEDACT_CALL(at::Tensor, "fusedact::" #name, "", input, weight);                \
  }                                                                                        \
  inline std::tuple<at::Tensor, at::Tensor> name##_backward(                               \
      const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight) {  \
    return FUSEDACT_CALL(::fusedact::detail::TensorPair, "fusedact::" #name "_backward", "", \
                         grad_output, input, weight);                                      \
  }

#define FUSEDACT_DECLARE_ROWWISE(name, make)                                                \
  inline at::Tensor name(const at::Tensor& input, int64_t dim,                              \
                         std::optional<at::ScalarType> dtype = std::nullopt) {              \
    return FUSEDACT_CALL(at::Tensor, "fusedact::" #name, "", input, dim, dtype);            \
  }                                                                                         \
  inline at::Tensor name##_backward(const at::Tensor& grad_output, const at::Tensor& output, \
                                    int64_t dim) {                                          \
    return FUSEDACT_CALL(at::Tensor, "fusedact::" #name "_backward", "", grad_output, output, \
                         dim);                                                              \
  }

namespace fusedact {
// rrelu: leaky_relu with slope (lower + upper)/2 in evaluation, random slopes in training.
inline at::Tensor rrelu(const at::Tensor& input, double lower = 1.0 / 8, double upper = 1.0 / 3,
                        bool training = false) {
  return FUSEDACT_CALL(at::Tensor, "fusedact::rrelu", "", input, lower, upper, training);
}
inline at::Tensor& rrelu_(at::Tensor& input, double lower = 1.0 / 8, double upper = 1.0 / 3,
                          bool training = false) {
  FUSEDACT_CALL(void, "fusedact::rrelu_", "", input, lower, upper, training);
  return input;
}
inline at::Tensor rrelu_with_noise(const at::Tensor& input, const at::Tensor& noise) {
  return FUSEDACT_CALL(at::Tensor, "fusedact::rrelu_with_noise", "", input, noise);
}
FUSEDACT_UNARY_OPS(FUSEDACT_DECLARE_UNARY)
FUSEDACT_GATED_OPS(FUSEDACT_DECLARE_GATED)
FUSEDACT_WEIGHTED_OPS(FUSEDACT_DECLARE_WEIGHTED)
FUSEDACT_ROWWISE_OPS(FUSEDACT_DECLARE_ROWWISE)
}  // namespace fusedact
