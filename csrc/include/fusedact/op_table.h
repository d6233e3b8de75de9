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
  X(mish, Mish, (Mish{}), (), (), "", true)

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

// Helpers for the columns above.
#define FUSEDACT_UNPAREN(...) __VA_ARGS__
#define FUSEDACT_IF_true(...) __VA_ARGS__
#define FUSEDACT_IF_false(...)
#define FUSEDACT_IF(cond, ...) FUSEDACT_IF_##cond(__VA_ARGS__)
