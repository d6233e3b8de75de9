// Helpers shared by the generic autograd Functions of each shape class.
#pragma once

#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/VariableTypeUtils.h>

#include <tuple>

#include "common.h"

namespace fusedact {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Non-tensor op parameters travel to backward as one IValue tuple.
template <class... P>
void save_params(AutogradContext* ctx, const P&... params) {
  ctx->saved_data["params"] = std::make_tuple(params...);
}

template <class... P>
std::tuple<P...> load_params(AutogradContext* ctx) {
  return ctx->saved_data["params"].to<std::tuple<P...>>();
}

// The typed dispatcher handle of op `fusedact::<name><suffix>.<overload>`.
template <class Signature>
c10::TypedOperatorHandle<Signature> lookup_op(const char* name, const char* suffix,
                                              const char* overload = "") {
  return c10::Dispatcher::singleton()
      .findSchemaOrThrow(qualified(name, suffix).c_str(), overload)
      .template typed<Signature>();
}

// One undefined gradient per non-tensor parameter, for the tail of a backward's result.
template <class... P>
void append_no_grads(variable_list& grads) {
  (grads.emplace_back(((void)sizeof(P), Tensor())), ...);
}

// autograd hands undefined gradients for outputs that did not reach the loss.
inline Tensor or_zeros(const Tensor& grad, const Tensor& like) {
  return grad.defined() ? grad : at::zeros_like(like);
}


}  // namespace fusedact
