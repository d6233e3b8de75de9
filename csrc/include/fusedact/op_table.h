// The one list of fusedact ops. Schemas, CPU/CUDA/Meta/Autograd registrations, the CUDA
// kernel instantiations and the C++ API are all stamped out from these rows; adding an
// activation is a functor in functors.h, a row here and a spec row in registry.py.
//
// Columns shared by both lists:
//   name           op name in torch.ops.fusedact (and the C++ API function)
//   Functor        the activation functor of functors.h
//   make_functor   expression building the functor from the parameters (validates them;
//                  `op` is the name of the op being called, for error messages)
//   cpp_params     (, type name = default ...): C++ parameters after the tensor arguments
//   param_names    (, name ...): the same names, to forward them
//   schema_params  ", type name=default ...": the same in torch schema syntax
#pragma once

// Unary activations: y = f(x) elementwise. Last column: torch.nn has inplace= for the
// module, so `name_` is registered too.
// X(name, Functor, make_functor, cpp_params, param_names, schema_params, has_inplace)
#define FUSEDACT_UNARY_OPS(X)                                                              \
  X(gelu, Gelu, (Gelu{gelu_is_tanh(op, approximate)}),                                 \
    (, std::string_view approximate = "none"), (, approximate), ", str approximate='none'", \
    false)                                                                                 \
  X(silu, Silu, (Silu{}), (), (), "", true)                                                \
  X(mish, Mish, (Mish{}), (), (), "", true)                                                \
  X(relu, Relu, (Relu{}), (), (), "", true)                                                \
  X(relu6, Hardtanh, (Hardtanh{0.0, 6.0}), (), (), "", true)                               \
  X(leaky_relu, LeakyRelu, (LeakyRelu{negative_slope}), (, double negative_slope = 0.01),  \
    (, negative_slope), ", float negative_slope=0.01", true)                               \
  X(elu, Elu, (Elu{alpha, 1.0, 1.0}), (, double alpha = 1.0), (, alpha),                   \
    ", float alpha=1.0", true)                                                             \
  X(selu, Elu, (Elu{constants::kSeluAlpha, constants::kSeluScale, 1.0}), (), (), "", true) \
  X(celu, Elu, (Elu{check_nonzero(op, "alpha", alpha), 1.0, 1.0 / alpha}),                 \
    (, double alpha = 1.0), (, alpha), ", float alpha=1.0", true)                          \
  X(softplus, Softplus, (Softplus{beta, threshold}),                                       \
    (, double beta = 1.0, double threshold = 20.0), (, beta, threshold),                   \
    ", float beta=1.0, float threshold=20.0", false)                                       \
  X(sigmoid, Sigmoid, (Sigmoid{}), (), (), "", false)                                      \
  X(tanh, Tanh, (Tanh{}), (), (), "", false)                                               \
  X(hardsigmoid, Hardsigmoid, (Hardsigmoid{}), (), (), "", true)                           \
  X(hardswish, Hardswish, (Hardswish{}), (), (), "", true)                                 \
  X(hardtanh, Hardtanh, (Hardtanh{check_ordered(op, min_val, max_val), max_val}),          \
    (, double min_val = -1.0, double max_val = 1.0), (, min_val, max_val),                 \
    ", float min_val=-1.0, float max_val=1.0", true)                                       \
  X(softsign, Softsign, (Softsign{}), (), (), "", false)                                   \
  X(logsigmoid, Logsigmoid, (Logsigmoid{}), (), (), "", false)                             \
  X(tanhshrink, Tanhshrink, (Tanhshrink{}), (), (), "", false)                             \
  X(hardshrink, Hardshrink, (Hardshrink{lambd}), (, double lambd = 0.5), (, lambd),        \
    ", float lambd=0.5", false)                                                            \
  X(softshrink, Softshrink, (Softshrink{check_nonnegative(op, "lambd", lambd)}),           \
    (, double lambd = 0.5), (, lambd), ", float lambd=0.5", false)                         \
  X(threshold, Threshold, (Threshold{threshold, value}), (, double threshold, double value), \
    (, threshold, value), ", float threshold, float value", true)                          \
  X(swish, Swish, (Swish{beta}), (, double beta = 1.0), (, beta), ", float beta=1.0", false) \
  X(quick_gelu, Swish, (Swish{constants::kQuickGeluBeta}), (), (), "", false)              \
  X(relu_squared, ReluSquared, (ReluSquared{}), (), (), "", false)

// Gated activations: out = f(gate) * up, on the two halves of `dim` of one packed tensor
// (schema gets `int dim=-1` last) or on two tensors (the `.split` overload). Last column:
// the gate is the first half (Llama gate_up convention); torch's glu gates the second.
// X(name, Functor, make_functor, cpp_params, param_names, schema_params, gate_is_first)
#define FUSEDACT_GATED_OPS(X)                                                              \
  X(glu, Sigmoid, (Sigmoid{}), (), (), "", false)                                          \
  X(swiglu, Silu, (Silu{}), (), (), "", true)                                              \
  X(geglu, Gelu, (Gelu{gelu_is_tanh(op, approximate)}),                               \
    (, std::string_view approximate = "none"), (, approximate), ", str approximate='none'", \
    true)                                                                                  \
  X(reglu, Relu, (Relu{}), (), (), "", true)

// Activations with a learned weight tensor: out = f(input, weight), weight per channel
// (dimension 1) or a single one, as torch's prelu; the schema is (Tensor input, Tensor weight).
// X(name, Functor)
#define FUSEDACT_WEIGHTED_OPS(X) \
  X(prelu, Prelu)                \
  X(learnable_swish, LearnableSwish)

// Row-wise activations over one dimension `dim` (the math is RowActivation of rowwise.h):
// schema (Tensor input, int dim, ScalarType? dtype=None), input cast to dtype first as torch.
// X(name, make_functor)
#define FUSEDACT_ROWWISE_OPS(X)                                      \
  X(softmax, (RowActivation{/*log=*/false, /*negate=*/false}))      \
  X(log_softmax, (RowActivation{/*log=*/true, /*negate=*/false}))   \
  X(softmin, (RowActivation{/*log=*/false, /*negate=*/true}))

// Helpers for the columns above.
#define FUSEDACT_UNPAREN(...) __VA_ARGS__
#define FUSEDACT_IF_true(...) __VA_ARGS__
#define FUSEDACT_IF_false(...)
#define FUSEDACT_IF(cond, ...) FUSEDACT_IF_##cond(__VA_ARGS__)
