#include "common.h"

#include <ATen/Version.h>

#include <cstdlib>
#include <limits>

namespace fusedact {

namespace detail {
void ensure_registered() {}
}  // namespace detail

namespace cpu {
SimdLevel simd_level() {
  // torch's own choice for its CPU kernels: the hardware's, or ATEN_CPU_CAPABILITY's.
  static const SimdLevel level = [] {
    const std::string capability = at::get_cpu_capability();
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

void check_floating(const char* op, const char* arg, const Tensor& t) {
  const auto dtype = t.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf ||
                  dtype == at::kBFloat16,
              "fusedact::", op, ": argument '", arg,
              "' must be a floating-point tensor (float32, float64, float16 or bfloat16), got ",
              dtype);
}

void check_real(const char* op, const char* arg, const Tensor& t, bool negative_limits) {
  const auto dtype = t.scalar_type();
  if (!at::isIntegralType(dtype, /*includeBool=*/false)) return check_floating(op, arg, t);
  TORCH_CHECK(!(dtype == at::kByte && negative_limits), "fusedact::", op,
              ": argument '", arg, "' is unsigned (uint8) and the op's limits are negative");
}

void check_like(const char* op, const char* arg_a, const Tensor& a, const char* arg_b,
                const Tensor& b, bool same_shape) {
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
