// The row-wise shape class: softmax-like activations over one dimension, for every row of
// FUSEDACT_ROWWISE_OPS. Per op this registers
//   X(input, dim, dtype=None) -> Tensor              (input cast to dtype first, as torch)
//   X_backward(grad_output, output, dim) -> Tensor   (the gradient wrt the cast input)
// with one kernel for CPU, CUDA and Meta (the Meta run allocates only) and a C++ autograd
// node saving the output. The backward op's own derivatives are its formula written in
// differentiable ATen ops (double backward and above).
#include <algorithm>
#include <optional>

#include <fusedact/rowwise.h>

#include "autograd.h"
#include "common.h"
#include "cpu/rowwise.h"

namespace fusedact {
namespace {

// `dim` wrapped to [0, ndim); a 0-dim tensor is one row of one element (dim -1 or 0).
int64_t row_dim(const char* op, const Tensor& t, int64_t dim) {
  const int64_t ndim = std::max<int64_t>(t.dim(), 1);
  TORCH_CHECK_INDEX(dim >= -ndim && dim < ndim, "fusedact::", op, ": argument 'dim' must be in [",
                    -ndim, ", ", ndim - 1, "] for a ", t.dim(), "-dim input, got ", dim);
  return dim < 0 ? dim + ndim : dim;
}

// A contiguous tensor as [outer, n, inner] with n = size(dim).
struct RowGeometry {
  int64_t outer = 1, n = 1, inner = 1;
};
RowGeometry row_geometry(const Tensor& t, int64_t dim) {
  RowGeometry g;
  if (t.dim() == 0) return g;
  for (int64_t d = 0; d < dim; ++d) g.outer *= t.size(d);
  g.n = t.size(dim);
  for (int64_t d = dim + 1; d < t.dim(); ++d) g.inner *= t.size(d);
  return g;
}

#ifdef FUSEDACT_WITH_CUDA
void check_launch(const char* error) {
  TORCH_CHECK(error == nullptr, "fusedact: CUDA kernel launch failed: ", error);
}
void* current_stream(const Tensor& t) {
  return c10::cuda::getCurrentCUDAStream(t.device().index()).stream();
}
#endif

[[noreturn]] void no_kernel(const Tensor& t) {
  TORCH_CHECK(false, "fusedact: no kernel for device ", t.device(),
              " (this build supports " FUSEDACT_BACKENDS ")");
}

void run_forward(const RowActivation& act, const Tensor& input, const Tensor& output,
                 const RowGeometry& g) {
  if (input.device().is_cpu()) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "fusedact", [&] {
      cpu::rowwise_forward(act, input.const_data_ptr<scalar_t>(), output.mutable_data_ptr<scalar_t>(),
                           g.outer, g.n, g.inner);
    });
    return;
  }
#ifdef FUSEDACT_WITH_CUDA
  if (input.device().is_cuda()) {
    c10::DeviceGuard guard(input.device());
    return check_launch(cuda::launch_rowwise_forward(act, scalar_kind(input.scalar_type()),
                                                     input.const_data_ptr(), output.mutable_data_ptr(),
                                                     g.outer, g.n, g.inner, current_stream(input)));
  }
#endif
  no_kernel(input);
}

void run_backward(const RowActivation& act, const Tensor& grad_output, const Tensor& output,
                  const Tensor& grad_input, const RowGeometry& g) {
  if (output.device().is_cpu()) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, output.scalar_type(), "fusedact", [&] {
      cpu::rowwise_backward(act, grad_output.const_data_ptr<scalar_t>(), output.const_data_ptr<scalar_t>(),
                            grad_input.mutable_data_ptr<scalar_t>(), g.outer, g.n, g.inner);
    });
    return;
  }
#ifdef FUSEDACT_WITH_CUDA
  if (output.device().is_cuda()) {
    c10::DeviceGuard guard(output.device());
    return check_launch(cuda::launch_rowwise_backward(
        act, scalar_kind(output.scalar_type()), grad_output.const_data_ptr(), output.const_data_ptr(),
        grad_input.mutable_data_ptr(), g.outer, g.n, g.inner, current_stream(output)));
  }
#endif
  no_kernel(output);
}

// `dtype`, when given, must be floating: the input is converted to it before the op.
void check_dtype(const char* op, std::optional<at::ScalarType> dtype) {
  TORCH_CHECK(!dtype || at::isFloatingType(*dtype), "fusedact::", op,
              ": argument 'dtype' must be a floating-point type, got ", *dtype);
}

template <class Op>
struct Rowwise {
  using OptionalDtype = std::optional<at::ScalarType>;

  static std::string name(const char* suffix) { return std::string(Op::name) + suffix; }

  // The input converted to `dtype` as torch does. softmin of integer input negates before
  // converting, as torch's (-input).softmax(dim, dtype) (integers wrap, bool raises), and
  // negates back after it, since the kernel negates by itself.
  static Tensor converted(const Tensor& input, OptionalDtype dtype) {
    check_dtype(Op::name, dtype);
    if (!dtype || *dtype == input.scalar_type()) return input;
    if (Op::make_functor().negate && !at::isFloatingType(input.scalar_type())) {
      TORCH_CHECK(input.scalar_type() != at::kBool, "fusedact::", Op::name,
                  ": argument 'input' is bool, which cannot be negated before the 'dtype' "
                  "conversion (softmin is softmax of -input; torch raises here too)");
      return input.neg().to(*dtype).neg();
    }
    return input.to(*dtype);
  }

  // ---- kernels (CPU, CUDA, Meta) ----

  static Tensor forward(const Tensor& input, int64_t dim, OptionalDtype dtype) {
    Tensor x = converted(input, dtype);
    TORCH_CHECK(at::isFloatingType(x.scalar_type()), "fusedact::", Op::name,
                ": argument 'input' must be a floating-point tensor (or pass a floating "
                "'dtype' to convert it), got ",
                x.scalar_type());
    check_floating(Op::name, "input", x);
    const int64_t d = row_dim(Op::name, x, dim);
    x = x.contiguous();
    Tensor output = new_output(x);
    if (is_meta(output) || output.numel() == 0) return output;
    run_forward(Op::make_functor(), x, output, row_geometry(x, d));
    return output;
  }

  static Tensor backward(const Tensor& grad_output, const Tensor& output, int64_t dim) {
    static const std::string op = name("_backward");  // built once per op
    check_floating(op.c_str(), "output", output);
    check_like(op.c_str(), "output", output, "grad_output", grad_output);
    const int64_t d = row_dim(op.c_str(), output, dim);
    const Tensor y = output.contiguous(), g = grad_output.contiguous();
    Tensor grad_input = new_output(y);
    if (is_meta(grad_input) || grad_input.numel() == 0) return grad_input;
    run_backward(Op::make_functor(), g, y, grad_input, row_geometry(y, d));
    return grad_input;
  }

  // ---- dispatcher handles ----

  static const auto& forward_op() {
    static const auto op =
        lookup_op<Tensor(const Tensor&, int64_t, OptionalDtype)>(Op::name, "");
    return op;
  }
  static const auto& backward_op() {
    static const auto op =
        lookup_op<Tensor(const Tensor&, const Tensor&, int64_t)>(Op::name, "_backward");
    return op;
  }

  // ---- autograd ----

  static Tensor autograd_forward(const Tensor& input, int64_t dim, OptionalDtype dtype) {
    // The dtype cast is torch's own op, recorded by autograd ahead of ours (as torch's
    // softmax.int): the gradient returns to the input's dtype through it.
    const Tensor x = converted(input, dtype);
    return differentiable(
        Op::name, {x}, {saved_output(0)},
        [&]() -> variable_list { return {forward_op().call(x, dim, std::nullopt)}; },
        [dim](const variable_list& grads, const variable_list& saved) {
          if (!grads[0].defined()) return variable_list{Tensor()};
          return variable_list{backward_op().call(grads[0], saved[0], dim)};
        })[0];
  }

  // Derivatives of dx = backward(g, y) given grad_dx (rowwise.h's formulas, with
  // S = sum(g*y), T = sum(grad_dx*y) over the row, s = -1 for softmin):
  //   softmax      d/dg = s*y*(grad_dx - T)                d/dy = s*(grad_dx*(g - S) - g*T)
  //   log_softmax  d/dg = s*(grad_dx - sum(grad_dx*e^y))   d/dy = -s*grad_dx*e^y*sum(g)
  // in op math (float for the half types), from differentiable ATen ops.
  static variable_list double_backward(const Tensor& grad_dx, const Tensor& grad_output,
                                       const Tensor& output, int64_t dim) {
    const RowActivation act = Op::make_functor();
    const auto dtype = output.scalar_type();
    const auto opmath = dtype == at::kDouble ? at::kDouble : at::kFloat;
    const Tensor gg = grad_dx.to(opmath), g = grad_output.to(opmath), y = output.to(opmath);
    const int64_t d = row_dim(Op::name, output, dim);
    const double s = act.negate ? -1.0 : 1.0;
    // sum over the row, kept as a dimension (a 0-dim tensor's row is the tensor itself)
    auto row_sum = [&](const Tensor& t) { return t.dim() == 0 ? t : t.sum(d, /*keepdim=*/true); };
    Tensor grad_g, grad_y;
    if (act.log) {
      const Tensor e = y.exp();
      grad_g = (gg - row_sum(gg * e)) * s;
      grad_y = gg * e * row_sum(g) * (-s);
    } else {
      const Tensor total_g = row_sum(g * y), total_gg = row_sum(gg * y);
      grad_g = y * (gg - total_gg) * s;
      grad_y = (gg * (g - total_g) - g * total_gg) * s;
    }
    return {grad_g.to(dtype), grad_y.to(dtype)};
  }

  static Tensor autograd_backward(const Tensor& grad_output, const Tensor& output, int64_t dim) {
    return differentiable(
        name("_backward"), {grad_output, output}, {saved_input(0), saved_input(1)},
        [&]() -> variable_list { return {backward_op().call(grad_output, output, dim)}; },
        [dim](const variable_list& grads, const variable_list& saved) {
          if (!grads[0].defined()) return variable_list{Tensor(), Tensor()};
          return double_backward(grads[0], saved[0], saved[1], dim);
        })[0];
  }

  // ---- registration ----

  static void define(torch::Library& m) {
    const std::string n = Op::name;
    m.def((n + "(Tensor input, int dim, ScalarType? dtype=None) -> Tensor").c_str());
    m.def((n + "_backward(Tensor grad_output, Tensor output, int dim) -> Tensor").c_str());
  }
  static void impl_kernels(torch::Library& m) {
    impl_with_backward(m, Op::name, TORCH_FN(forward), TORCH_FN(backward));
  }
  static void impl_autograd(torch::Library& m) {
    impl_with_backward(m, Op::name, TORCH_FN(autograd_forward), TORCH_FN(autograd_backward));
  }
};

#define FUSEDACT_ROWWISE_TRAITS(name_, make)                                  \
  struct name_##_rowwise {                                                    \
    static constexpr const char* name = #name_;                               \
    static RowActivation make_functor() { return FUSEDACT_UNPAREN make; }     \
  };
FUSEDACT_ROWWISE_OPS(FUSEDACT_ROWWISE_TRAITS)
#undef FUSEDACT_ROWWISE_TRAITS

template <class F>
void for_each_rowwise_op(F&& f) {
#define FUSEDACT_VISIT(name, ...) f(Rowwise<name##_rowwise>{});
  FUSEDACT_ROWWISE_OPS(FUSEDACT_VISIT)
#undef FUSEDACT_VISIT
}

}  // namespace

FUSEDACT_REGISTER_SHAPE_CLASS(for_each_rowwise_op)

}  // namespace fusedact
