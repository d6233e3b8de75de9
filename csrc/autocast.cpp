// torch.autocast for the fusedact ops, following torch's casting policy for the built-in
// of the same op: prelu (and the other weighted ops, whose weight is a parameter like
// prelu's) run in the autocast dtype on CPU and CUDA; softplus runs in float32 on CUDA, and
// the row-wise ops in float32 on CUDA unless given a dtype.
// Every other op has no policy in torch and runs in its input's dtype, as the built-ins do.
#include <ATen/autocast_mode.h>
#include <torch/library.h>

#include <fusedact/op_table.h>

namespace fusedact {
namespace {

// Casts the op's tensor arguments as torch's autocast does (floating tensors on `device`,
// doubles excepted) to the autocast dtype, or to float32, then calls the op below autocast.
template <c10::DeviceType device, bool to_float32>
void autocast_kernel(const c10::OperatorHandle& op, c10::DispatchKeySet, torch::jit::Stack* stack) {
  const at::ScalarType dtype = to_float32 ? at::kFloat : at::autocast::get_autocast_dtype(device);
  const size_t arguments = op.schema().arguments().size();
  for (size_t i = stack->size() - arguments; i < stack->size(); ++i) {
    c10::IValue& value = (*stack)[i];
    if (value.isTensor()) value = at::autocast::cached_cast(dtype, value.toTensor(), device);
  }
  c10::impl::ExcludeDispatchKeyGuard no_autocast(
      at::autocast::get_autocast_dispatch_key_from_device_type(device));
  op.callBoxed(stack);
}

// torch's fp32_set_opt_dtype policy (softmax, log_softmax): without dtype=, an eligible
// input (floating, not double, on `device`) runs with dtype=float32; with dtype= as called.
template <c10::DeviceType device>
void float32_unless_dtype(const c10::OperatorHandle& op, c10::DispatchKeySet,
                          torch::jit::Stack* stack) {
  const size_t arguments = op.schema().arguments().size();
  const c10::IValue& input = (*stack)[stack->size() - arguments];
  c10::IValue& dtype = (*stack)[stack->size() - 1];  // the schema's last argument
  if (dtype.isNone() && at::autocast::is_eligible(input.toTensor(), device))
    dtype = c10::IValue(static_cast<int64_t>(at::kFloat));
  c10::impl::ExcludeDispatchKeyGuard no_autocast(
      at::autocast::get_autocast_dispatch_key_from_device_type(device));
  op.callBoxed(stack);
}

template <c10::DeviceType device>
void register_lower_precision(torch::Library& m) {
#define FUSEDACT_AUTOCAST_WEIGHTED(name, ...) \
  m.impl(#name, torch::CppFunction::makeFromBoxedFunction<&autocast_kernel<device, false>>());
  FUSEDACT_WEIGHTED_OPS(FUSEDACT_AUTOCAST_WEIGHTED)
#undef FUSEDACT_AUTOCAST_WEIGHTED
}

}  // namespace

TORCH_LIBRARY_IMPL(fusedact, AutocastCPU, m) { register_lower_precision<c10::DeviceType::CPU>(m); }

TORCH_LIBRARY_IMPL(fusedact, AutocastCUDA, m) {
  register_lower_precision<c10::DeviceType::CUDA>(m);
  // torch's CUDA autocast float32 list holds softplus (and no other activation).
  m.impl("softplus",
         torch::CppFunction::makeFromBoxedFunction<&autocast_kernel<c10::DeviceType::CUDA, true>>());
  // softmax and log_softmax (softmin is softmax of -x in torch) have torch's fp32_set_opt_dtype.
#define FUSEDACT_AUTOCAST_ROWWISE(name, ...)                                                 \
  m.impl(#name, torch::CppFunction::makeFromBoxedFunction<                                  \
                    &float32_unless_dtype<c10::DeviceType::CUDA>>());
  FUSEDACT_ROWWISE_OPS(FUSEDACT_AUTOCAST_ROWWISE)
#undef FUSEDACT_AUTOCAST_ROWWISE
}

}  // namespace fusedact
