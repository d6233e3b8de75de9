#include "common.h"

#include <ATen/Version.h>

#include <cmath>
#include <cstdlib>
#include <limits>

namespace fusedact {

namespace {

// The kernel of every fusedact op for the dispatch keys it has no kernel for: calls whose
// tensor arguments are all None (the dispatcher finds no backend) and tensors of layouts
// or devices fusedact does not run (sparse, quantized, mps, ...). It names the argument.
void reject_unsupported_arguments(const c10::OperatorHandle& handle, torch::jit::Stack* stack) {
  const auto& schema = handle.schema();
  const auto& args = schema.arguments();
  const auto values = torch::jit::last(*stack, args.size());
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i].type()->kind() != c10::TypeKind::TensorType) continue;  // Tensor? may be None
    TORCH_CHECK(values[i].isTensor() && values[i].toTensor().defined(), schema.name(),
                ": argument '", args[i].name(), "' must be a tensor, got None");
  }
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i].type()->kind() != c10::TypeKind::TensorType) continue;
    const Tensor& t = values[i].toTensor();
    TORCH_CHECK(false, schema.name(), ": argument '", args[i].name(), "' is a ", t.layout(),
                " tensor on ", t.device(), " (dispatch key ", t.key_set().highestPriorityTypeId(),
                "), which has no fusedact kernel: this build supports strided (dense) tensors on "
                FUSEDACT_BACKENDS);
  }
  TORCH_CHECK(false, schema.name(), ": no tensor arguments");
}

// Registers reject_unsupported_arguments under CompositeExplicitAutograd (the key the
// dispatcher falls back to for backends without a kernel, and for calls with no tensor)
// for every fusedact op but the composites. It runs once, after the library's static
// initializers have defined every op: from ensure_registered (the C++ API's op lookup) and
// from the Python module's import.
void register_unsupported_argument_kernels() {
  static torch::Library* library = [] {
    auto* lib = new torch::Library(torch::Library::IMPL, "fusedact",
                                   c10::DispatchKey::CompositeExplicitAutograd, __FILE__, __LINE__);
    auto& dispatcher = c10::Dispatcher::singleton();
    for (const auto& name : dispatcher.getAllOpNames()) {
      if (name.name.rfind("fusedact::", 0) != 0) continue;
      const auto handle = dispatcher.findOp(name);
      if (!handle || handle->hasKernelForDispatchKey(c10::DispatchKey::CompositeImplicitAutograd))
        continue;
      std::string qualified_name = name.name.substr(std::string("fusedact::").size());
      if (!name.overload_name.empty()) qualified_name += "." + name.overload_name;
      lib->impl(qualified_name.c_str(),
                torch::CppFunction::makeFromBoxedFunction<&reject_unsupported_arguments>());
    }
    return lib;
  }();
  (void)library;
}

}  // namespace

namespace detail {
void ensure_registered() { register_unsupported_argument_kernels(); }
}  // namespace detail

namespace cpu {
SimdLevel simd_level() {
  // torch's own choice for its CPU kernels: the hardware's, or ATEN_CPU_CAPABILITY's.
  static const SimdLevel level = [] {
    std::string capability = at::get_cpu_capability();
    // FUSEDACT_CPU_CAPABILITY=avx2 or =default lowers ours alone (never raises it), e.g. to
    // compare our kernels of each instruction set against an unchanged torch.
    if (const char* ours = std::getenv("FUSEDACT_CPU_CAPABILITY")) {
      const std::string requested = ours;
      if (requested == "default") capability = "DEFAULT";
      if (requested == "avx2" && capability == "AVX512") capability = "AVX2";
    }
    if (FUSEDACT_CPU_SIMD && capability == "AVX512") return SimdLevel::kAvx512;
    if (FUSEDACT_CPU_SIMD && capability == "AVX2") return SimdLevel::kAvx2;
    return SimdLevel::kNone;
  }();
  return level;
}
}  // namespace cpu

bool gelu_is_tanh(const char* op, std::string_view approximate) {
  if (approximate == "none") return false;
  if (approximate == "tanh") return true;
  TORCH_CHECK(false, "fusedact::", op, ": argument 'approximate' must be 'none' or 'tanh', got '",
              approximate, "'");
}

double check_nonzero(const char* op, const char* arg, double value) {
  TORCH_CHECK(value != 0, "fusedact::", op, ": argument '", arg, "' must not be 0");
  return value;
}

double check_nonnegative(const char* op, const char* arg, double value) {
  TORCH_CHECK(value >= 0, "fusedact::", op, ": argument '", arg,
              "' must be greater than or equal to 0, got ", value);
  return value;
}

double check_ordered(const char* op, double min_val, double max_val) {
  TORCH_CHECK(!(min_val > max_val), "fusedact::", op,  // a NaN bound passes (torch: NaN out)
              ": argument 'min_val' must not be greater than 'max_val', got ", min_val, " > ",
              max_val);
  return min_val;
}

void check_defined(const char* op, const char* arg, const Tensor& t) {
  TORCH_CHECK(t.defined(), "fusedact::", op, ": argument '", arg, "' must be a tensor, got None");
}

void check_floating(const char* op, const char* arg, const Tensor& t) {
  check_defined(op, arg, t);
  const auto dtype = t.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf ||
                  dtype == at::kBFloat16,
              "fusedact::", op, ": argument '", arg,
              "' must be a floating-point tensor (float32, float64, float16 or bfloat16), got ",
              dtype);
}

void check_real(const char* op, const char* arg, const Tensor& t, bool negative_limits) {
  check_defined(op, arg, t);
  const auto dtype = t.scalar_type();
  if (!at::isIntegralType(dtype, /*includeBool=*/false)) return check_floating(op, arg, t);
  TORCH_CHECK(!(dtype == at::kByte && negative_limits), "fusedact::", op,
              ": argument '", arg, "' is unsigned (uint8) and the op's limits are negative");
}

void check_parameter_fits(const char* op, const char* arg, double value, at::ScalarType dtype,
                          ParameterRange range) {
  const auto target = range == ParameterRange::kOpMath ? at::toOpMathType(dtype) : dtype;
  double lowest = 0, highest = 0;
  AT_DISPATCH_ALL_TYPES_AND3(at::kHalf, at::kBFloat16, at::kBool, target, "fusedact", [&] {
    lowest = static_cast<double>(std::numeric_limits<scalar_t>::lowest());
    highest = static_cast<double>(std::numeric_limits<scalar_t>::max());
  });
  const bool integral = at::isIntegralType(target, /*includeBool=*/true);
  const bool fits = integral ? value >= lowest && value <= highest  // false for NaN
                    : range == ParameterRange::kDtypeFinite
                        ? std::abs(value) <= highest  // false for NaN and infinity
                        : std::isnan(value) || std::isinf(value) ||
                              (value >= lowest && value <= highest);
  if (fits) return;
  std::string type = c10::toString(target);
  if (target != dtype) type += std::string(", the op math of ") + c10::toString(dtype);
  TORCH_CHECK(false, "fusedact::", op, ": argument '", arg, "' = ", value, " overflows ", type,
              " (range [", range == ParameterRange::kDtypeFinite ? 0.0 : lowest, ", ", highest,
              "]); torch raises here too");
}

void check_like(const char* op, const char* arg_a, const Tensor& a, const char* arg_b,
                const Tensor& b, bool same_shape) {
  check_defined(op, arg_a, a);
  check_defined(op, arg_b, b);
  TORCH_CHECK(a.device() == b.device(), "fusedact::", op, ": arguments '", arg_a, "' and '",
              arg_b, "' must be on the same device, got ", a.device(), " and ", b.device());
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "fusedact::", op, ": arguments '", arg_a,
              "' and '", arg_b, "' must have the same dtype, got ", a.scalar_type(), " and ",
              b.scalar_type());
  TORCH_CHECK(!same_shape || a.sym_sizes() == b.sym_sizes(), "fusedact::", op, ": arguments '",
              arg_a, "' and '", arg_b, "' must have the same shape, got ", a.sym_sizes(),
              " and ", b.sym_sizes());
}

static bool fill_outputs_with_nan() {
  static const bool enabled = [] {
    const char* value = std::getenv("FUSEDACT_FILL_OUTPUTS_WITH_NAN");
    return value != nullptr && std::string(value) == "1";
  }();
  return enabled;
}

static Tensor maybe_fill(Tensor out) {
  if (!fill_outputs_with_nan() || is_meta(out)) return out;
  // Integer outputs (relu & co. on integer input) cannot hold NaN: a sentinel every integer
  // type can hold stands in for it.
  if (at::isIntegralType(out.scalar_type(), /*includeBool=*/false)) return out.fill_(85);
  return out.fill_(std::numeric_limits<double>::quiet_NaN());
}

Tensor new_output(const Tensor& like) { return maybe_fill(at::empty_like(like)); }

Tensor new_output(const Tensor& like, c10::SymIntArrayRef sizes) {
  return maybe_fill(at::empty_symint(sizes, like.options()));
}

Tensor in_layout_of(const Tensor& t, const Tensor& layout) {
  if (t.strides() == layout.strides()) return t;
  Tensor copy = at::empty_like(layout);
  copy.copy_(t);
  return copy;
}

ScalarKind scalar_kind(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return ScalarKind::Float;
    case at::kDouble: return ScalarKind::Double;
    case at::kHalf: return ScalarKind::Half;
    case at::kBFloat16: return ScalarKind::BFloat16;
    case at::kByte: return ScalarKind::Byte;
    case at::kChar: return ScalarKind::Char;
    case at::kShort: return ScalarKind::Short;
    case at::kInt: return ScalarKind::Int;
    case at::kLong: return ScalarKind::Long;
    default: TORCH_CHECK(false, "fusedact: unsupported dtype ", dtype);
  }
}

std::string qualified(const char* name, const char* suffix) {
  return std::string("fusedact::") + name + suffix;
}

}  // namespace fusedact
