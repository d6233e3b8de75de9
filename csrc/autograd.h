// The autograd of every shape class: each op's Autograd kernel runs the op below autograd
// and records a backward node the way torch's generated autograd does (collect the input
// edges, set the outputs' history, save tensors as SavedVariables). Unlike
// torch::autograd::Function, which torch.func refuses, these nodes work under torch.func
// transforms (grad, vjp, jacrev) as well as eager autograd and torch.compile.
#pragma once

#include <torch/csrc/autograd/VariableTypeUtils.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/saved_variable.h>

#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "common.h"

namespace fusedact {

using torch::autograd::variable_list;

// An op's non-tensor parameters as the backward node keeps them: owned (a string_view
// argument dies with the call).
template <class T>
struct OwnedParam {
  using type = T;
};
template <>
struct OwnedParam<std::string_view> {
  using type = std::string;
};
template <class... P>
using OwnedParams = std::tuple<typename OwnedParam<P>::type...>;

// The backward node: its saved tensors, unpacked for `backward`, which returns one
// gradient per differentiable input (undefined where there is none).
struct SavedTensorsNode : torch::autograd::Node {
  using Backward =
      std::function<variable_list(const variable_list& grads, const variable_list& saved)>;
  std::string op_name;
  std::vector<torch::autograd::SavedVariable> saved;
  Backward backward;

  variable_list apply(variable_list&& grads) override {
    std::lock_guard<std::mutex> lock(mutex_);
    variable_list tensors;
    tensors.reserve(saved.size());
    for (auto& s : saved) tensors.push_back(s.unpack(shared_from_this()));
    return backward(grads, tensors);
  }
  std::string name() const override { return op_name; }
  void release_variables() override {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& s : saved) s.reset_data();
  }
};

// The node's name as grad_fn shows it: "fusedact::geluBackward" for op gelu.
inline std::string node_name(const std::string& op_name) {
  return "fusedact::" + op_name + "Backward";
}

// Which tensor a node saves: input i or output i of the op.
struct Saved {
  bool is_output;
  size_t index;
};
inline Saved saved_input(size_t i) { return {false, i}; }
inline Saved saved_output(size_t i) { return {true, i}; }

// Runs `forward()` (returning the outputs) below autograd; when an input requires grad,
// records a node for op `op_name` (no namespace) over `inputs` that saves `saves` and runs `backward`.
// `backward` stays a plain callable until a node needs it (no std::function without grad).
template <class Forward, class Backward>
variable_list differentiable(const std::string& op_name, const variable_list& inputs,
                             std::initializer_list<Saved> saves, Forward&& forward,
                             Backward&& backward) {
  const bool requires_grad = torch::autograd::compute_requires_grad(inputs);
  variable_list outputs;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    outputs = forward();
  }
  if (!requires_grad) return outputs;
  auto node = std::shared_ptr<SavedTensorsNode>(new SavedTensorsNode(),
                                                torch::autograd::deleteNode);
  node->op_name = node_name(op_name);
  node->set_next_edges(torch::autograd::collect_next_edges(inputs));
  torch::autograd::set_history(outputs, node);
  for (const Saved& s : saves) {
    node->saved.emplace_back(s.is_output ? outputs[s.index] : inputs[s.index], s.is_output);
  }
  node->backward = std::forward<Backward>(backward);
  return outputs;
}

// In-place under autograd: torch's checks (a leaf, or a view of one, that requires grad
// raises), `modify()` below autograd, the version bump, and with grad a new history for
// `self` through a node that saves the result (a view's too, without a reference cycle)
// or, when !save_result, a copy of `self` taken before it was overwritten.
template <class Modify, class Backward>
void differentiable_inplace(const std::string& op_name, at::Tensor& self, bool save_result,
                            Modify&& modify, Backward&& backward) {
  const bool requires_grad = torch::autograd::compute_requires_grad(self);
  torch::autograd::check_inplace(self, requires_grad);
  std::shared_ptr<SavedTensorsNode> node;
  at::Tensor original;
  if (requires_grad) {
    if (!save_result) original = self.clone();
    node = std::shared_ptr<SavedTensorsNode>(new SavedTensorsNode(),
                                             torch::autograd::deleteNode);
    node->op_name = node_name(op_name);
    node->set_next_edges(torch::autograd::collect_next_edges(self));
    node->backward = std::forward<Backward>(backward);
  }
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    modify();
  }
  torch::autograd::increment_version(self);
  if (node) {
    torch::autograd::rebase_history(self, node);
    if (save_result) {
      node->saved.emplace_back(self, true, self.is_view());
    } else {
      node->saved.emplace_back(original, false);
    }
  }
}

// The typed dispatcher handle of op `fusedact::<name><suffix>.<overload>`.
template <class Signature>
c10::TypedOperatorHandle<Signature> lookup_op(const char* name, const char* suffix,
                                              const char* overload = "") {
  return c10::Dispatcher::singleton()
      .findSchemaOrThrow(qualified(name, suffix).c_str(), overload)
      .template typed<Signature>();
}

// autograd hands undefined gradients for outputs that did not reach the loss.
inline at::Tensor or_zeros(const at::Tensor& grad, const at::Tensor& like) {
  return grad.defined() ? grad : at::zeros_like(like);
}

}  // namespace fusedact
