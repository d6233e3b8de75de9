// The gated shape class: out = f(gate) * up, for every row of FUSEDACT_GATED_OPS.
//
// Packed form: `input` is split in two halves along `dim`; viewed contiguously as
// [outer, 2, inner] (outer = prod(sizes before dim), inner = sizes[dim]/2 * prod(sizes
// after dim)) the halves are two operands of row stride 2*inner, so one [outer, inner]
// launch of the generic kernel covers any dim. Split form (`.split` overload): gate and
// up are separate tensors of one shape, run as a single row.
//
// Per op this registers X, X.split, X_backward, X_backward.split, X_double_backward and
// X_double_backward.split, with one kernel for CPU, CUDA and Meta and C++ autograd.
#include <c10/core/SymBool.h>
#include <c10/util/TypeList.h>
#include <c10/util/TypeTraits.h>

#include "autograd.h"
#include "common.h"
#include "tensor_math.h"

namespace fusedact {
namespace {

using TensorPair = std::tuple<Tensor, Tensor>;
using TensorTriple = std::tuple<Tensor, Tensor, Tensor>;

// Checks `dim` of the packed input and returns it wrapped to [0, input.dim()).
int64_t gated_dim(const std::string& op, const Tensor& input, int64_t dim) {
  const int64_t ndim = input.dim();
  TORCH_CHECK(ndim > 0, "fusedact::", op,
              ": argument 'input' must have at least one dimension to split in two halves, "
              "got a 0-dim tensor");
  TORCH_CHECK(dim >= -ndim && dim < ndim, "fusedact::", op, ": argument 'dim' must be in [",
              -ndim, ", ", ndim - 1, "] for a ", ndim, "-dim input, got ", dim);
  const int64_t wrapped = dim < 0 ? dim + ndim : dim;
  TORCH_SYM_CHECK((input.sym_size(wrapped) % 2).sym_eq(0), "fusedact::", op,
                  ": the size of dimension ", dim,
                  " of argument 'input' must be even to split it in two halves, got ",
                  input.sym_size(wrapped));
  return wrapped;
}

// Shape of the packed input with dimension `dim` halved.
std::vector<c10::SymInt> halved(const Tensor& input, int64_t dim) {
  auto sizes = input.sym_sizes().vec();
  sizes[dim] = sizes[dim] / 2;
  return sizes;
}

// Rows and row length of the [outer, 2, inner] view of a contiguous packed tensor.
struct PackedGeometry {
  int64_t rows, cols;
  bool gate_first;

  PackedGeometry(const Tensor& packed, int64_t dim, bool gate_first) : gate_first(gate_first) {
    rows = 1;
    for (int64_t d = 0; d < dim; ++d) rows *= packed.size(d);
    cols = packed.size(dim) / 2;
    for (int64_t d = dim + 1; d < packed.dim(); ++d) cols *= packed.size(d);
  }
  // The halves of a contiguous packed tensor as operands.
  Operand gate(const Tensor& packed) const { return operand(packed, 2 * cols, gate_first ? 0 : cols); }
  Operand up(const Tensor& packed) const { return operand(packed, 2 * cols, gate_first ? cols : 0); }
  // A contiguous tensor of the halved shape.
  Operand half(const Tensor& t) const { return operand(t, cols); }
};

// The parameter types P... of an op: those of its make_functor after the op name.
template <class Op, class Params = c10::guts::typelist::drop_t<
                        typename c10::guts::infer_function_traits_t<
                            decltype(Op::make_functor)>::parameter_types,
                        1>>
struct Gated;

template <class Op, class... P>
struct Gated<Op, c10::guts::typelist::typelist<P...>> {
  using Act = decltype(Op::make_functor("", std::declval<P>()...));

  static std::string name(const char* suffix) { return std::string(Op::name) + suffix; }

  // Checks grad_output against the op's output shape for `input`.
  static void check_grad_output(const std::string& op, const Tensor& grad_output,
                                const Tensor& input, int64_t dim) {
    check_like(op.c_str(), "input", input, "grad_output", grad_output, /*same_shape=*/false);
    const auto expected = halved(input, dim);
    TORCH_CHECK(grad_output.sym_sizes() == c10::SymIntArrayRef(expected), "fusedact::", op,
                ": argument 'grad_output' must have the output's shape ", expected, ", got ",
                grad_output.sym_sizes());
  }

  // ---- packed kernels (CPU, CUDA, Meta) ----

  static Tensor forward(const Tensor& input, P... params, int64_t dim) {
    const Act act = Op::make_functor(Op::name, params...);
    check_floating(Op::name, "input", input);
    const int64_t d = gated_dim(Op::name, input, dim);
    Tensor out = new_output(input, halved(input, d));
    if (is_meta(out)) return out;
    const Tensor x = input.contiguous();
    const PackedGeometry geo(x, d, Op::gate_is_first);
    run_elementwise(GatedForward<Act>{act}, out, geo.rows, geo.cols, {geo.gate(x), geo.up(x)},
                    {geo.half(out)});
    return out;
  }

  static Tensor backward(const Tensor& grad_output, const Tensor& input, P... params,
                         int64_t dim) {
    static const std::string op = name("_backward");  // built once per op
    const Act act = Op::make_functor(op.c_str(), params...);
    check_floating(op.c_str(), "input", input);
    const int64_t d = gated_dim(op, input, dim);
    check_grad_output(op, grad_output, input, d);
    Tensor grad_input = new_output(input, input.sym_sizes());
    if (is_meta(grad_input)) return grad_input;
    const Tensor x = input.contiguous(), dy = grad_output.contiguous();
    const PackedGeometry geo(x, d, Op::gate_is_first);
    run_elementwise(GatedBackward<Act>{act}, x, geo.rows, geo.cols,
                    {geo.half(dy), geo.gate(x), geo.up(x)},
                    {geo.gate(grad_input), geo.up(grad_input)});
    return grad_input;
  }

  static TensorPair double_backward(const Tensor& grad_grad_input, const Tensor& grad_output,
                                    const Tensor& input, P... params, int64_t dim) {
    static const std::string op = name("_double_backward");  // built once per op
    const Act act = Op::make_functor(op.c_str(), params...);
    check_floating(op.c_str(), "input", input);
    const int64_t d = gated_dim(op, input, dim);
    check_grad_output(op, grad_output, input, d);
    check_like(op.c_str(), "input", input, "grad_grad_input", grad_grad_input);
    Tensor grad_grad_output = new_output(input, halved(input, d));
    Tensor grad_input = new_output(input, input.sym_sizes());
    if (is_meta(grad_input)) return {grad_grad_output, grad_input};
    const Tensor x = input.contiguous(), dy = grad_output.contiguous(),
                 ggx = grad_grad_input.contiguous();
    const PackedGeometry geo(x, d, Op::gate_is_first);
    run_elementwise(GatedDoubleBackward<Act>{act}, x, geo.rows, geo.cols,
                    {geo.gate(ggx), geo.up(ggx), geo.half(dy), geo.gate(x), geo.up(x)},
                    {geo.half(grad_grad_output), geo.gate(grad_input), geo.up(grad_input)});
    return {grad_grad_output, grad_input};
  }

  // ---- split kernels: every operand has gate's shape ----

  static void check_split(const std::string& op, const Tensor& gate, const Tensor& up) {
    check_floating(op.c_str(), "gate", gate);
    check_like(op.c_str(), "gate", gate, "up", up);
  }

  static Tensor forward_split(const Tensor& gate, const Tensor& up, P... params) {
    static const std::string op = name(".split");  // built once per op
    const Act act = Op::make_functor(op.c_str(), params...);
    check_split(op, gate, up);
    Tensor out = new_output(gate);
    if (!is_meta(out)) run_same_layout(GatedForward<Act>{act}, {out}, {gate, up});
    return out;
  }

  static TensorPair backward_split(const Tensor& grad_output, const Tensor& gate, const Tensor& up,
                                   P... params) {
    static const std::string op = name("_backward.split");  // built once per op
    const Act act = Op::make_functor(op.c_str(), params...);
    check_split(op, gate, up);
    check_like(op.c_str(), "gate", gate, "grad_output", grad_output);
    Tensor grad_gate = new_output(gate), grad_up = new_output(gate);
    if (!is_meta(grad_gate))
      run_same_layout(GatedBackward<Act>{act}, {grad_gate, grad_up}, {grad_output, gate, up});
    return {grad_gate, grad_up};
  }

  static TensorTriple double_backward_split(const Tensor& grad_grad_gate,
                                            const Tensor& grad_grad_up,
                                            const Tensor& grad_output, const Tensor& gate,
                                            const Tensor& up, P... params) {
    static const std::string op = name("_double_backward.split");  // built once per op
    const Act act = Op::make_functor(op.c_str(), params...);
    check_split(op, gate, up);
    check_like(op.c_str(), "gate", gate, "grad_output", grad_output);
    check_like(op.c_str(), "gate", gate, "grad_grad_gate", grad_grad_gate);
    check_like(op.c_str(), "gate", gate, "grad_grad_up", grad_grad_up);
    Tensor grad_grad_output = new_output(gate), grad_gate = new_output(gate),
           grad_up = new_output(gate);
    if (!is_meta(grad_gate))
      run_same_layout(GatedDoubleBackward<Act>{act}, {grad_grad_output, grad_gate, grad_up},
                {grad_grad_gate, grad_grad_up, grad_output, gate, up});
    return {grad_grad_output, grad_gate, grad_up};
  }

  // ---- dispatcher handles ----

  static const auto& forward_op() {
    static const auto op = lookup_op<Tensor(const Tensor&, P..., int64_t)>(Op::name, "");
    return op;
  }
  static const auto& backward_op() {
    static const auto op =
        lookup_op<Tensor(const Tensor&, const Tensor&, P..., int64_t)>(Op::name, "_backward");
    return op;
  }
  static const auto& double_backward_op() {
    static const auto op =
        lookup_op<TensorPair(const Tensor&, const Tensor&, const Tensor&, P..., int64_t)>(
            Op::name, "_double_backward");
    return op;
  }
  static const auto& forward_split_op() {
    static const auto op =
        lookup_op<Tensor(const Tensor&, const Tensor&, P...)>(Op::name, "", "split");
    return op;
  }
  static const auto& backward_split_op() {
    static const auto op = lookup_op<TensorPair(const Tensor&, const Tensor&, const Tensor&, P...)>(
        Op::name, "_backward", "split");
    return op;
  }
  static const auto& double_backward_split_op() {
    static const auto op =
        lookup_op<TensorTriple(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                               const Tensor&, P...)>(Op::name, "_double_backward", "split");
    return op;
  }

  // ---- autograd: save the inputs only (never f(gate)), recompute in backward ----

  static Tensor autograd_forward(const Tensor& input, P... params, int64_t dim) {
    return differentiable(
        name(""), {input}, {saved_input(0)},
        [&]() -> variable_list { return {forward_op().call(input, params..., dim)}; },
        [p = OwnedParams<P..., int64_t>(params..., dim)](const variable_list& grads,
                                                         const variable_list& saved) {
          if (!grads[0].defined()) return variable_list{Tensor()};
          return std::apply(
              [&](const auto&... q) {
                return variable_list{backward_op().call(grads[0], saved[0], q...)};
              },
              p);
        })[0];
  }

  static Tensor autograd_backward(const Tensor& grad_output, const Tensor& input, P... params,
                                  int64_t dim) {
    return differentiable(
        name("_backward"), {grad_output, input}, {saved_input(0), saved_input(1)},
        [&]() -> variable_list {
          return {backward_op().call(grad_output, input, params..., dim)};
        },
        [p = OwnedParams<P..., int64_t>(params..., dim)](const variable_list& grads,
                                                         const variable_list& saved) {
          if (!grads[0].defined()) return variable_list{Tensor(), Tensor()};
          return std::apply(
              [&](const auto&... q) {
                auto [grad_grad_output, grad_input] =
                    double_backward_op().call(grads[0], saved[0], saved[1], q...);
                return variable_list{grad_grad_output, grad_input};
              },
              p);
        })[0];
  }

  // Derivatives above the second: the same formulas evaluated on tensors, which autograd
  // differentiates; otherwise the fused kernel.
  static TensorPair autograd_double_backward(const Tensor& grad_grad_input,
                                             const Tensor& grad_output, const Tensor& input,
                                             P... params, int64_t dim) {
    if (torch::autograd::compute_requires_grad(grad_grad_input, grad_output, input)) {
      static const std::string op = name("_double_backward");  // built once per op
      const Act act = Op::make_functor(op.c_str(), params...);
      const int64_t d = gated_dim(op, input, dim);
      const auto x = input.chunk(2, d), ggx = grad_grad_input.chunk(2, d);
      const int gate = Op::gate_is_first ? 0 : 1, up = 1 - gate;
      const auto out = evaluate_on_tensors(GatedDoubleBackward<Act>{act},
                                           {ggx[gate], ggx[up], grad_output, x[gate], x[up]});
      const Tensor grad_input = Op::gate_is_first ? at::cat({out[1], out[2]}, d)
                                                  : at::cat({out[2], out[1]}, d);
      return {out[0], grad_input};
    }
    at::AutoDispatchBelowADInplaceOrView guard;
    return double_backward_op().call(grad_grad_input, grad_output, input, params..., dim);
  }
  static Tensor autograd_forward_split(const Tensor& gate, const Tensor& up, P... params) {
    return differentiable(
        name(".split"), {gate, up}, {saved_input(0), saved_input(1)},
        [&]() -> variable_list { return {forward_split_op().call(gate, up, params...)}; },
        [p = OwnedParams<P...>(params...)](const variable_list& grads,
                                           const variable_list& saved) {
          if (!grads[0].defined()) return variable_list{Tensor(), Tensor()};
          return std::apply(
              [&](const auto&... q) {
                auto [grad_gate, grad_up] =
                    backward_split_op().call(grads[0], saved[0], saved[1], q...);
                return variable_list{grad_gate, grad_up};
              },
              p);
        })[0];
  }

  static TensorPair autograd_backward_split(const Tensor& grad_output, const Tensor& gate,
                                            const Tensor& up, P... params) {
    auto out = differentiable(
        name("_backward.split"), {grad_output, gate, up},
        {saved_input(0), saved_input(1), saved_input(2)},
        [&]() -> variable_list {
          auto [grad_gate, grad_up] = backward_split_op().call(grad_output, gate, up, params...);
          return {grad_gate, grad_up};
        },
        [p = OwnedParams<P...>(params...)](const variable_list& grads,
                                           const variable_list& saved) {
          if (!grads[0].defined() && !grads[1].defined())
            return variable_list{Tensor(), Tensor(), Tensor()};
          const Tensor& gate = saved[1];
          return std::apply(
              [&](const auto&... q) {
                auto [grad_grad_output, grad_gate, grad_up] = double_backward_split_op().call(
                    or_zeros(grads[0], gate), or_zeros(grads[1], gate), saved[0], gate,
                    saved[2], q...);
                return variable_list{grad_grad_output, grad_gate, grad_up};
              },
              p);
        });
    return {out[0], out[1]};
  }
  static TensorTriple autograd_double_backward_split(const Tensor& grad_grad_gate,
                                                     const Tensor& grad_grad_up,
                                                     const Tensor& grad_output,
                                                     const Tensor& gate, const Tensor& up,
                                                     P... params) {
    if (torch::autograd::compute_requires_grad(grad_grad_gate, grad_grad_up, grad_output, gate,
                                               up)) {
      const Act act = Op::make_functor(name("_double_backward.split").c_str(), params...);
      const auto out = evaluate_on_tensors(GatedDoubleBackward<Act>{act},
                                           {grad_grad_gate, grad_grad_up, grad_output, gate, up});
      return {out[0], out[1], out[2]};
    }
    at::AutoDispatchBelowADInplaceOrView guard;
    return double_backward_split_op().call(grad_grad_gate, grad_grad_up, grad_output, gate, up,
                                           params...);
  }

  // ---- registration ----

  static void define(torch::Library& m) {
    const std::string n = Op::name, p = Op::schema_params;
    m.def((n + "(Tensor input" + p + ", int dim=-1) -> Tensor").c_str());
    m.def((n + ".split(Tensor gate, Tensor up" + p + ") -> Tensor").c_str());
    m.def((n + "_backward(Tensor grad_output, Tensor input" + p + ", int dim=-1) -> Tensor").c_str());
    m.def((n + "_backward.split(Tensor grad_output, Tensor gate, Tensor up" + p +
           ") -> (Tensor, Tensor)")
              .c_str());
    m.def((n + "_double_backward(Tensor grad_grad_input, Tensor grad_output, Tensor input" + p +
           ", int dim=-1) -> (Tensor, Tensor)")
              .c_str());
    m.def((n + "_double_backward.split(Tensor grad_grad_gate, Tensor grad_grad_up, "
               "Tensor grad_output, Tensor gate, Tensor up" +
           p + ") -> (Tensor, Tensor, Tensor)")
              .c_str());
  }

  static void impl_kernels(torch::Library& m) {
    const std::string n = Op::name;
    m.impl(n.c_str(), TORCH_FN(forward));
    m.impl((n + ".split").c_str(), TORCH_FN(forward_split));
    m.impl((n + "_backward").c_str(), TORCH_FN(backward));
    m.impl((n + "_backward.split").c_str(), TORCH_FN(backward_split));
    m.impl((n + "_double_backward").c_str(), TORCH_FN(double_backward));
    m.impl((n + "_double_backward.split").c_str(), TORCH_FN(double_backward_split));
  }

  static void impl_autograd(torch::Library& m) {
    const std::string n = Op::name;
    m.impl(n.c_str(), TORCH_FN(autograd_forward));
    m.impl((n + ".split").c_str(), TORCH_FN(autograd_forward_split));
    m.impl((n + "_backward").c_str(), TORCH_FN(autograd_backward));
    m.impl((n + "_backward.split").c_str(), TORCH_FN(autograd_backward_split));
    m.impl((n + "_double_backward").c_str(), TORCH_FN(autograd_double_backward));
    m.impl((n + "_double_backward.split").c_str(), TORCH_FN(autograd_double_backward_split));
  }
};

#define FUSEDACT_GATED_TRAITS(name_, Functor, make, params, names, schema, first)    \
  struct name_##_gated {                                                          \
    static constexpr const char* name = #name_;                                   \
    static constexpr const char* schema_params = schema;                          \
    static constexpr bool gate_is_first = first;                                  \
    static Functor make_functor(const char* op FUSEDACT_UNPAREN params) { return FUSEDACT_UNPAREN make; } \
  };
FUSEDACT_GATED_OPS(FUSEDACT_GATED_TRAITS)
#undef FUSEDACT_GATED_TRAITS

template <class F>
void for_each_gated_op(F&& f) {
#define FUSEDACT_VISIT(name, ...) f(Gated<name##_gated>{});
  FUSEDACT_GATED_OPS(FUSEDACT_VISIT)
#undef FUSEDACT_VISIT
}

}  // namespace

FUSEDACT_REGISTER_SHAPE_CLASS(for_each_gated_op)

}  // namespace fusedact
