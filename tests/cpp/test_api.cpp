// Tests of the public C++ API (fusedact/fusedact.h) on CPU against torch's built-ins:
// forward, autograd backward and double backward, in-place variants, layouts, empty and
// 0-dim tensors, and the errors bad input raises.
#include <torch/torch.h>

#include <fusedact/fusedact.h>

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace {

using torch::Tensor;

const std::vector<torch::Dtype> kDtypes = {torch::kFloat32, torch::kFloat64};

const char* DtypeName(torch::Dtype dtype) {
  return dtype == torch::kFloat32 ? "float32" : "float64";
}

// torch.testing.assert_close's defaults: the contract's tolerances (DESIGN.md section 5).
std::pair<double, double> DefaultTol(torch::Dtype dtype) {
  if (dtype == torch::kFloat64) return {1e-7, 1e-7};
  return {1.3e-6, 1e-5};
}

// assert_close with equal_nan=True: same shape and dtype, |got - want| <= atol + rtol*|want|
// elementwise (NaN where want has NaN, same-signed infinities where it has them). Reports
// the largest difference and where it is; with `truth` (the reference computed in float64),
// also how far each side is from it, to tell which one is off.
void ExpectClose(const Tensor& got, const Tensor& want, const std::string& what,
                 const Tensor& truth = Tensor()) {
  ASSERT_TRUE(got.defined()) << what << ": result is undefined";
  ASSERT_TRUE(want.defined()) << what << ": reference is undefined";
  ASSERT_EQ(got.sizes().vec(), want.sizes().vec()) << what << ": shape";
  ASSERT_EQ(got.scalar_type(), want.scalar_type()) << what << ": dtype";
  if (want.numel() == 0) return;
  const auto [rtol, atol] = DefaultTol(want.scalar_type());
  const Tensor g = got.detach().cpu(), w = want.detach().cpu();
  const Tensor ok = torch::isclose(g, w, rtol, atol, /*equal_nan=*/true);
  if (ok.all().item<bool>()) return;
  const Tensor bad = ok.logical_not();
  const Tensor diff = (g - w).abs().masked_fill(bad.logical_not(), 0).nan_to_num(
      std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity());
  const int64_t worst = diff.flatten().argmax().item<int64_t>();
  std::ostringstream os;
  os << what << " (" << c10::toString(want.scalar_type()) << "): " << bad.sum().item<int64_t>() << " of " << want.numel()
     << " elements differ (rtol " << rtol << ", atol " << atol << "); worst at flat index "
     << worst << ": got " << g.flatten()[worst].item<double>() << ", want "
     << w.flatten()[worst].item<double>() << ", |diff| " << diff.flatten()[worst].item<double>();
  if (truth.defined()) {
    const double t = truth.detach().cpu().flatten()[worst].item<double>();
    os << "; float64 reference " << t << " (|got - it| "
       << std::fabs(g.flatten()[worst].item<double>() - t) << ", |want - it| "
       << std::fabs(w.flatten()[worst].item<double>() - t) << ")";
  }
  ADD_FAILURE() << os.str();
}

// Runs `fn`, which must throw a c10::Error (or a subclass such as c10::ValueError) whose
// message contains every string of `parts`.
void ExpectErrorContaining(const std::function<void()>& fn,
                           std::initializer_list<std::string> parts, const std::string& what) {
  try {
    fn();
  } catch (const c10::Error& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts) {
      EXPECT_NE(msg.find(p), std::string::npos)
          << what << ": message lacks '" << p << "':\n" << e.what_without_backtrace();
    }
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << ": threw a non-c10::Error: " << e.what();
    return;
  }
  ADD_FAILURE() << what << ": did not throw";
}

Tensor Randn(std::vector<int64_t> sizes, torch::Dtype dtype, double scale = 1.0) {
  return torch::randn(sizes, torch::TensorOptions().dtype(dtype)) * scale;
}

// ---------------------------------------------------------------------------------------
// The ops and their torch references.
// ---------------------------------------------------------------------------------------

using UnaryFn = std::function<Tensor(const Tensor&)>;
using GatedFn = std::function<Tensor(const Tensor&, const Tensor&)>;  // (gate, up)

struct UnaryCase {
  std::string name;
  UnaryFn fused, reference;
};

std::vector<UnaryCase> UnaryCases() {
  return {
      {"gelu", [](const Tensor& x) { return fusedact::gelu(x); },
       [](const Tensor& x) { return torch::gelu(x); }},
      {"gelu(approximate='none')", [](const Tensor& x) { return fusedact::gelu(x, "none"); },
       [](const Tensor& x) { return torch::gelu(x, "none"); }},
      {"gelu(approximate='tanh')", [](const Tensor& x) { return fusedact::gelu(x, "tanh"); },
       [](const Tensor& x) { return torch::gelu(x, "tanh"); }},
      {"silu", [](const Tensor& x) { return fusedact::silu(x); },
       [](const Tensor& x) { return torch::silu(x); }},
      {"mish", [](const Tensor& x) { return fusedact::mish(x); },
       [](const Tensor& x) { return torch::mish(x); }},
  };
}

// A gated op: the packed form with `dim`, the two-tensor form, and the reference on the
// halves. `gate_first`: the gate is the first half (all but torch's glu).
struct GatedCase {
  std::string name;
  std::function<Tensor(const Tensor&, int64_t)> packed;
  GatedFn split;
  GatedFn reference;  // reference(gate, up)
  bool gate_first;
};

std::vector<GatedCase> GatedCases() {
  return {
      {"swiglu", [](const Tensor& x, int64_t d) { return fusedact::swiglu(x, d); },
       [](const Tensor& g, const Tensor& u) { return fusedact::swiglu(g, u); },
       [](const Tensor& g, const Tensor& u) { return torch::silu(g) * u; }, true},
      {"geglu", [](const Tensor& x, int64_t d) { return fusedact::geglu(x, "none", d); },
       [](const Tensor& g, const Tensor& u) { return fusedact::geglu(g, u); },
       [](const Tensor& g, const Tensor& u) { return torch::gelu(g) * u; }, true},
      {"geglu(approximate='tanh')",
       [](const Tensor& x, int64_t d) { return fusedact::geglu(x, "tanh", d); },
       [](const Tensor& g, const Tensor& u) { return fusedact::geglu(g, u, "tanh"); },
       [](const Tensor& g, const Tensor& u) { return torch::gelu(g, "tanh") * u; }, true},
      {"reglu", [](const Tensor& x, int64_t d) { return fusedact::reglu(x, d); },
       [](const Tensor& g, const Tensor& u) { return fusedact::reglu(g, u); },
       [](const Tensor& g, const Tensor& u) { return torch::relu(g) * u; }, true},
      // torch's convention: glu(x) = first half * sigmoid(second half), so the gate is the
      // second half; the split overload takes (gate, up) by name.
      {"glu", [](const Tensor& x, int64_t d) { return fusedact::glu(x, d); },
       [](const Tensor& g, const Tensor& u) { return fusedact::glu(g, u); },
       [](const Tensor& g, const Tensor& u) { return torch::sigmoid(g) * u; }, false},
  };
}

// The torch composition on a packed tensor.
Tensor GatedReference(const GatedCase& c, const Tensor& x, int64_t dim) {
  const auto halves = x.chunk(2, dim);
  return c.gate_first ? c.reference(halves[0], halves[1]) : c.reference(halves[1], halves[0]);
}

// ---------------------------------------------------------------------------------------
// Forward.
// ---------------------------------------------------------------------------------------

TEST(ApiForward, UnaryMatchesTorch) {
  torch::manual_seed(0);
  for (torch::Dtype dtype : kDtypes) {
    // Odd sizes (not multiples of any vector width) and a range reaching the tails.
    for (const std::vector<int64_t>& shape :
         std::vector<std::vector<int64_t>>{{4, 7, 33}, {855}, {13824}, {1}}) {
      const Tensor x = Randn(shape, dtype, 4.0);
      for (const UnaryCase& c : UnaryCases()) {
        ExpectClose(c.fused(x), c.reference(x), c.name + " shape " + std::to_string(x.numel()));
      }
    }
  }
}

TEST(ApiForward, UnarySpecialValuesMatchTorch) {
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (torch::Dtype dtype : kDtypes) {
    const Tensor x = torch::tensor({nan, -inf, inf, -0.0, 0.0, -100.0, -30.0, -8.0, 8.0, 30.0,
                                    100.0, 1e30, -1e30},
                                   torch::TensorOptions().dtype(dtype));
    for (const UnaryCase& c : UnaryCases()) {
      const Tensor y = c.fused(x);
      // The reference runs in float64 and is rounded to the dtype: torch's CPU float32
      // exact GELU (vectorized) returns NaN for +inf, while its float64 path and its CUDA
      // kernel (the contract's reference) return +inf, as the formula gives. +inf is also
      // checked on its own below.
      const Tensor keep = x.ne(inf);
      const Tensor want = c.reference(x.to(torch::kFloat64)).to(dtype);
      ExpectClose(y.masked_select(keep), want.masked_select(keep), c.name + " special values");
      EXPECT_EQ(y[2].item<double>(), inf) << c.name << "(+inf)";
      // -0.0 keeps its sign (x * g(x)), as in torch.
      EXPECT_TRUE(std::signbit(y[3].item<double>())) << c.name << "(-0.0)";
    }
  }
}

TEST(ApiForward, GatedPackedMatchesTorch) {
  torch::manual_seed(1);
  for (torch::Dtype dtype : kDtypes) {
    const Tensor x = Randn({4, 6, 10}, dtype, 3.0);
    for (const GatedCase& c : GatedCases()) {
      for (int64_t dim : {-1, 0, 1, 2, -3}) {
        ExpectClose(c.packed(x, dim), GatedReference(c, x, dim),
                    c.name + " dim " + std::to_string(dim));
      }
    }
    // The default dim is -1.
    ExpectClose(fusedact::swiglu(x), GatedReference(GatedCases()[0], x, -1), "swiglu default dim");
    ExpectClose(fusedact::geglu(x), torch::gelu(x.chunk(2, -1)[0]) * x.chunk(2, -1)[1],
                "geglu defaults");
    ExpectClose(fusedact::geglu(x, "tanh"),
                torch::gelu(x.chunk(2, -1)[0], "tanh") * x.chunk(2, -1)[1], "geglu tanh");
    ExpectClose(fusedact::reglu(x), torch::relu(x.chunk(2, -1)[0]) * x.chunk(2, -1)[1],
                "reglu default dim");
    ExpectClose(fusedact::glu(x), torch::glu(x, -1), "glu default dim");
    for (int64_t dim : {-1, 0, 1, 2}) {
      ExpectClose(fusedact::glu(x, dim), torch::glu(x, dim), "glu vs torch::glu dim " + std::to_string(dim));
    }
    // Odd row lengths (not multiples of a vector width) in the packed layout.
    const Tensor y = Randn({3, 1710}, dtype, 3.0);
    for (const GatedCase& c : GatedCases()) {
      ExpectClose(c.packed(y, -1), GatedReference(c, y, -1), c.name + " [3, 1710]");
    }
  }
}

TEST(ApiForward, GatedSplitOverloadsMatchTorch) {
  torch::manual_seed(2);
  for (torch::Dtype dtype : kDtypes) {
    const Tensor gate = Randn({5, 3, 17}, dtype, 3.0), up = Randn({5, 3, 17}, dtype);
    for (const GatedCase& c : GatedCases()) {
      ExpectClose(c.split(gate, up), c.reference(gate, up), c.name + " (gate, up)");
    }
  }
}

TEST(ApiForward, StridedInputs) {
  torch::manual_seed(3);
  for (torch::Dtype dtype : kDtypes) {
    const Tensor base = Randn({12, 10}, dtype, 3.0);
    const std::vector<std::pair<std::string, Tensor>> views = {
        {"transposed", base.t()},
        {"sliced", base.slice(1, 0, 10, 3)},
        {"expanded", base[0].unsqueeze(0).expand({5, 10})},
    };
    for (const auto& [kind, v] : views) {
      for (const UnaryCase& c : UnaryCases()) {
        const Tensor y = c.fused(v);
        ExpectClose(y, c.reference(v), c.name + " " + kind);
      }
      // gate/up halves along a non-contiguous last dim.
      for (const GatedCase& c : GatedCases()) {
        for (int64_t dim : {-1, 0}) {
          if (v.size(dim) % 2 != 0) continue;
          ExpectClose(c.packed(v, dim), GatedReference(c, v, dim),
                      c.name + " dim " + std::to_string(dim) + " " + kind);
        }
      }
    }
    // Two-tensor form on transposed operands.
    const Tensor g = Randn({6, 8}, dtype, 3.0).t(), u = Randn({6, 8}, dtype).t();
    for (const GatedCase& c : GatedCases()) {
      ExpectClose(c.split(g, u), c.reference(g, u), c.name + " (gate, up) transposed");
    }
  }
}

TEST(ApiForward, ChannelsLastKeepsMemoryFormat) {
  torch::manual_seed(4);
  for (torch::Dtype dtype : kDtypes) {
    const Tensor x = Randn({2, 3, 4, 5}, dtype, 3.0).contiguous(at::MemoryFormat::ChannelsLast);
    for (const UnaryCase& c : UnaryCases()) {
      const Tensor y = c.fused(x);
      ExpectClose(y, c.reference(x), c.name + " channels_last");
      EXPECT_TRUE(y.is_contiguous(at::MemoryFormat::ChannelsLast))
          << c.name << ": output strides " << y.strides() << " lost channels_last";
    }
  }
}

// ---------------------------------------------------------------------------------------
// Backward through autograd.
// ---------------------------------------------------------------------------------------

// x.grad of (f(x) * w).sum() for the fused op and for the reference.
TEST(ApiBackward, UnaryMatchesTorch) {
  torch::manual_seed(5);
  for (torch::Dtype dtype : kDtypes) {
    const Tensor x0 = Randn({6, 35}, dtype, 3.0);
    const Tensor w = Randn({6, 35}, dtype);
    for (const UnaryCase& c : UnaryCases()) {
      const Tensor x = x0.clone().requires_grad_(true);
      (c.fused(x) * w).sum().backward();
      const Tensor xr = x0.clone().requires_grad_(true);
      (c.reference(xr) * w).sum().backward();
      ExpectClose(x.grad(), xr.grad(), c.name + " grad");
    }
  }
}

TEST(ApiBackward, GatedPackedMatchesTorch) {
  torch::manual_seed(6);
  for (torch::Dtype dtype : kDtypes) {
    const Tensor x0 = Randn({4, 6, 10}, dtype, 3.0);
    for (const GatedCase& c : GatedCases()) {
      for (int64_t dim : {-1, 1, 0}) {
        const Tensor x = x0.clone().requires_grad_(true);
        const Tensor y = c.packed(x, dim);
        const Tensor w = torch::randn_like(y.detach());
        (y * w).sum().backward();
        const Tensor xr = x0.clone().requires_grad_(true);
        (GatedReference(c, xr, dim) * w).sum().backward();
        ExpectClose(x.grad(), xr.grad(), c.name + " grad, dim " + std::to_string(dim));
      }
    }
  }
}

TEST(ApiBackward, GatedSplitMatchesTorch) {
  torch::manual_seed(7);
  for (torch::Dtype dtype : kDtypes) {
    const Tensor g0 = Randn({5, 19}, dtype, 3.0), u0 = Randn({5, 19}, dtype);
    const Tensor w = Randn({5, 19}, dtype);
    for (const GatedCase& c : GatedCases()) {
      const Tensor g = g0.clone().requires_grad_(true), u = u0.clone().requires_grad_(true);
      (c.split(g, u) * w).sum().backward();
      const Tensor gr = g0.clone().requires_grad_(true), ur = u0.clone().requires_grad_(true);
      (c.reference(gr, ur) * w).sum().backward();
      ExpectClose(g.grad(), gr.grad(), c.name + " (gate, up): gate grad");
      ExpectClose(u.grad(), ur.grad(), c.name + " (gate, up): up grad");
    }
    // Only one of the two requires grad.
    const Tensor g = g0.clone().requires_grad_(true);
    (fusedact::swiglu(g, u0) * w).sum().backward();
    const Tensor gr = g0.clone().requires_grad_(true);
    (torch::silu(gr) * u0 * w).sum().backward();
    ExpectClose(g.grad(), gr.grad(), "swiglu(gate, up) with up not requiring grad");
  }
}

// The backward ops called directly, against ATen's own backward functions.
TEST(ApiBackward, ExplicitBackwardOps) {
  torch::manual_seed(8);
  for (torch::Dtype dtype : kDtypes) {
    const Tensor x = Randn({7, 13}, dtype, 3.0), dy = Randn({7, 13}, dtype);
    ExpectClose(fusedact::gelu_backward(dy, x), at::gelu_backward(dy, x), "gelu_backward");
    ExpectClose(fusedact::gelu_backward(dy, x, "tanh"), at::gelu_backward(dy, x, "tanh"),
                "gelu_backward tanh");
    ExpectClose(fusedact::silu_backward(dy, x), at::silu_backward(dy, x), "silu_backward");
    ExpectClose(fusedact::mish_backward(dy, x), at::mish_backward(dy, x), "mish_backward");

    const Tensor packed = Randn({7, 26}, dtype, 3.0);
    ExpectClose(fusedact::glu_backward(dy, packed), at::glu_backward(dy, packed, -1),
                "glu_backward");
    const Tensor p = packed.clone().requires_grad_(true);
    const Tensor ref =
        torch::autograd::grad({torch::silu(p.chunk(2, -1)[0]) * p.chunk(2, -1)[1]}, {p}, {dy})[0];
    ExpectClose(fusedact::swiglu_backward(dy, packed), ref, "swiglu_backward");

    const Tensor gate = Randn({7, 13}, dtype, 3.0), up = Randn({7, 13}, dtype);
    const auto [d_gate, d_up] = fusedact::swiglu_backward(dy, gate, up);
    ExpectClose(d_gate, dy * up * at::silu_backward(torch::ones_like(gate), gate),
                "swiglu_backward(dy, gate, up): gate");
    ExpectClose(d_up, dy * torch::silu(gate), "swiglu_backward(dy, gate, up): up");
  }
}

// ---------------------------------------------------------------------------------------
// Double backward: torch::autograd::grad with create_graph=true, then grad of a weighted
// sum of that gradient with respect to the input and to the first grad's weight (which
// reaches grad_grad_output).
// ---------------------------------------------------------------------------------------

struct DoubleBackwardResult {
  Tensor first, wrt_input, wrt_weight;
};

// f maps input -> output. Returns d(sum(f(x)*w))/dx and the gradients of
// sum(that * v) with respect to x and w.
DoubleBackwardResult DoubleBackward(const UnaryFn& f, const Tensor& x0, const Tensor& w0,
                                    const Tensor& v) {
  const Tensor x = x0.clone().requires_grad_(true);
  const Tensor w = w0.clone().requires_grad_(true);
  const Tensor g = torch::autograd::grad({(f(x) * w).sum()}, {x}, /*grad_outputs=*/{},
                                         /*retain_graph=*/true, /*create_graph=*/true)[0];
  EXPECT_TRUE(g.requires_grad()) << "first gradient is not differentiable";
  const auto gg = torch::autograd::grad({(g * v).sum()}, {x, w}, /*grad_outputs=*/{},
                                        /*retain_graph=*/false, /*create_graph=*/false);
  return {g.detach(), gg[0].detach(), gg[1].detach()};
}

void CheckDoubleBackward(const std::string& name, const UnaryFn& fused, const UnaryFn& reference,
                         const Tensor& x0, const Tensor& w0) {
  const Tensor v = torch::randn_like(x0);
  const DoubleBackwardResult a = DoubleBackward(fused, x0, w0, v);
  const DoubleBackwardResult b = DoubleBackward(reference, x0, w0, v);
  // Diagnostics only: the reference in float64 on the same (rounded) inputs.
  const DoubleBackwardResult t = DoubleBackward(reference, x0.to(torch::kFloat64),
                                                w0.to(torch::kFloat64), v.to(torch::kFloat64));
  ExpectClose(a.first, b.first, name + ": first gradient", t.first);
  ExpectClose(a.wrt_input, b.wrt_input, name + ": second gradient w.r.t. input", t.wrt_input);
  ExpectClose(a.wrt_weight, b.wrt_weight, name + ": second gradient w.r.t. grad_output",
              t.wrt_weight);
}

TEST(ApiDoubleBackward, UnaryMatchesTorch) {
  torch::manual_seed(9);
  for (torch::Dtype dtype : kDtypes) {
    const Tensor x0 = Randn({5, 21}, dtype, 2.0), w0 = Randn({5, 21}, dtype);
    for (const UnaryCase& c : UnaryCases()) {
      CheckDoubleBackward(c.name + " " + DtypeName(dtype), c.fused, c.reference, x0, w0);
    }
  }
}

TEST(ApiDoubleBackward, GatedPackedMatchesTorch) {
  torch::manual_seed(10);
  for (torch::Dtype dtype : kDtypes) {
    const Tensor x0 = Randn({5, 4, 6}, dtype, 2.0);
    for (const GatedCase& c : GatedCases()) {
      for (int64_t dim : {-1, 1}) {
        const UnaryFn fused = [&](const Tensor& x) { return c.packed(x, dim); };
        const UnaryFn ref = [&](const Tensor& x) { return GatedReference(c, x, dim); };
        const Tensor w0 = torch::randn_like(ref(x0));
        CheckDoubleBackward(c.name + " dim " + std::to_string(dim) + " " + DtypeName(dtype),
                            fused, ref, x0, w0);
      }
    }
  }
}

TEST(ApiDoubleBackward, GatedSplitMatchesTorch) {
  torch::manual_seed(11);
  for (torch::Dtype dtype : kDtypes) {
    const Tensor g0 = Randn({6, 9}, dtype, 2.0), u0 = Randn({6, 9}, dtype);
    const Tensor w0 = Randn({6, 9}, dtype), vg = Randn({6, 9}, dtype), vu = Randn({6, 9}, dtype);
    for (const GatedCase& c : GatedCases()) {
      const auto run = [&](const GatedFn& f, torch::Dtype dt) {
        const Tensor g = g0.to(dt).clone().requires_grad_(true);
        const Tensor u = u0.to(dt).clone().requires_grad_(true);
        const Tensor w = w0.to(dt).clone().requires_grad_(true);
        const auto first = torch::autograd::grad({(f(g, u) * w).sum()}, {g, u}, {},
                                                 /*retain_graph=*/true, /*create_graph=*/true);
        auto second = torch::autograd::grad({(first[0] * vg.to(dt) + first[1] * vu.to(dt)).sum()},
                                            {g, u, w},
                                            {}, /*retain_graph=*/false, /*create_graph=*/false,
                                            /*allow_unused=*/true);
        // An input the second gradient does not depend on comes back undefined.
        for (size_t i = 0; i < second.size(); ++i) {
          if (!second[i].defined()) second[i] = torch::zeros_like(g);
        }
        return std::vector<Tensor>{first[0].detach(), first[1].detach(), second[0], second[1],
                                   second[2]};
      };
      const auto a = run(c.split, dtype), b = run(c.reference, dtype);
      const auto t = run(c.reference, torch::kFloat64);  // diagnostics only
      const char* parts[] = {"d gate", "d up", "dd gate", "dd up", "dd grad_output"};
      for (size_t i = 0; i < a.size(); ++i) {
        ExpectClose(a[i], b[i], c.name + " (gate, up) " + DtypeName(dtype) + ": " + parts[i],
                    t[i]);
      }
    }
  }
}

// The double-backward op called directly: gelu_double_backward(ggx, dy, x) is the
// gradient of dx = gelu_backward(dy, x) (weighted by ggx) with respect to (dy, x), which
// torch computes by differentiating its own at::gelu_backward.
TEST(ApiDoubleBackward, ExplicitDoubleBackwardOp) {
  torch::manual_seed(12);
  const Tensor x = Randn({4, 9}, torch::kFloat64, 2.0);
  const Tensor dy = Randn({4, 9}, torch::kFloat64), ggx = Randn({4, 9}, torch::kFloat64);
  for (const char* approximate : {"none", "tanh"}) {
    const auto [ggo, gi] = fusedact::gelu_double_backward(ggx, dy, x, approximate);
    const Tensor xr = x.clone().requires_grad_(true), dyr = dy.clone().requires_grad_(true);
    const Tensor dx = at::gelu_backward(dyr, xr, approximate);
    const auto ref = torch::autograd::grad({dx}, {dyr, xr}, {ggx});
    ExpectClose(ggo, ref[0], std::string("gelu_double_backward grad_grad_output ") + approximate);
    ExpectClose(gi, ref[1], std::string("gelu_double_backward grad_input ") + approximate);
  }
}

// ---------------------------------------------------------------------------------------
// In-place variants.
// ---------------------------------------------------------------------------------------

TEST(ApiInplace, SiluAndMishMatchTorch) {
  torch::manual_seed(13);
  const std::vector<std::pair<std::string, std::pair<std::function<Tensor&(Tensor&)>, UnaryFn>>>
      ops = {
          {"silu_", {[](Tensor& t) -> Tensor& { return fusedact::silu_(t); },
                     [](const Tensor& t) { return torch::silu(t); }}},
          {"mish_", {[](Tensor& t) -> Tensor& { return fusedact::mish_(t); },
                     [](const Tensor& t) { return torch::mish(t); }}},
      };
  for (torch::Dtype dtype : kDtypes) {
    for (const auto& [name, fns] : ops) {
      const auto& [inplace, reference] = fns;
      Tensor x = Randn({9, 31}, dtype, 3.0);
      const Tensor original = x.clone();
      const void* ptr = x.data_ptr();
      const Tensor& r = inplace(x);
      EXPECT_TRUE(r.is_same(x)) << name << " must return its argument";
      EXPECT_EQ(x.data_ptr(), ptr) << name << " reallocated its argument";
      ExpectClose(x, reference(original), name);

      // Through a non-contiguous view: the base sees the result, nothing else changes.
      Tensor base = Randn({8, 6}, dtype, 3.0);
      const Tensor base0 = base.clone();
      Tensor view = base.t().slice(0, 0, 6, 2);  // rows 0, 2, 4 of base.t()
      inplace(view);
      Tensor expected = base0.clone();
      expected.t().slice(0, 0, 6, 2).copy_(reference(base0.t().slice(0, 0, 6, 2)));
      ExpectClose(base, expected, name + " on a strided view");
    }
  }
}

// ---------------------------------------------------------------------------------------
// Shapes: zero elements and 0-dim.
// ---------------------------------------------------------------------------------------

TEST(ApiShapes, ZeroElementTensors) {
  for (torch::Dtype dtype : kDtypes) {
    const auto opts = torch::TensorOptions().dtype(dtype);
    for (const std::vector<int64_t>& shape :
         std::vector<std::vector<int64_t>>{{0}, {1, 0, 5}, {3, 0}}) {
      const Tensor x = torch::empty(shape, opts);
      for (const UnaryCase& c : UnaryCases()) {
        const Tensor y = c.fused(x);
        EXPECT_EQ(y.sizes().vec(), x.sizes().vec()) << c.name;
        EXPECT_EQ(y.scalar_type(), dtype) << c.name;
      }
    }
    // Gated: empty along a dimension other than the split one.
    const Tensor p = torch::empty({0, 6}, opts);
    for (const GatedCase& c : GatedCases()) {
      EXPECT_EQ(c.packed(p, -1).sizes().vec(), (std::vector<int64_t>{0, 3})) << c.name;
      EXPECT_EQ(c.split(torch::empty({2, 0}, opts), torch::empty({2, 0}, opts)).sizes().vec(),
                (std::vector<int64_t>{2, 0}))
          << c.name;
    }
    // Backward through an empty tensor.
    const Tensor x = torch::empty({1, 0, 5}, opts).requires_grad_(true);
    fusedact::gelu(x).sum().backward();
    ASSERT_TRUE(x.grad().defined());
    EXPECT_EQ(x.grad().sizes().vec(), x.sizes().vec());
  }
}

TEST(ApiShapes, ZeroDimTensors) {
  for (torch::Dtype dtype : kDtypes) {
    const auto opts = torch::TensorOptions().dtype(dtype);
    const Tensor x0 = torch::scalar_tensor(-0.7, opts);
    for (const UnaryCase& c : UnaryCases()) {
      const Tensor y = c.fused(x0);
      EXPECT_EQ(y.dim(), 0) << c.name;
      ExpectClose(y, c.reference(x0), c.name + " 0-dim");
    }
    const Tensor x = x0.clone().requires_grad_(true);
    fusedact::gelu(x, "tanh").backward();
    const Tensor xr = x0.clone().requires_grad_(true);
    torch::gelu(xr, "tanh").backward();
    ASSERT_TRUE(x.grad().defined());
    EXPECT_EQ(x.grad().dim(), 0);
    ExpectClose(x.grad(), xr.grad(), "gelu tanh 0-dim grad");
    // The two-tensor gated form accepts 0-dim operands (nothing to split).
    const Tensor g = torch::scalar_tensor(1.3, opts), u = torch::scalar_tensor(-2.0, opts);
    ExpectClose(fusedact::swiglu(g, u), torch::silu(g) * u, "swiglu(gate, up) 0-dim");
  }
}

TEST(ApiShapes, OutputDtypeAndDeviceFollowInput) {
  for (torch::Dtype dtype : kDtypes) {
    const Tensor x = Randn({3, 4}, dtype);
    for (const UnaryCase& c : UnaryCases()) {
      const Tensor y = c.fused(x);
      EXPECT_EQ(y.scalar_type(), dtype) << c.name;
      EXPECT_TRUE(y.device().is_cpu()) << c.name;
      EXPECT_NE(y.data_ptr(), x.data_ptr()) << c.name << " must not alias its input";
    }
  }
}

// ---------------------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------------------

TEST(ApiErrors, BadApproximate) {
  const Tensor x = torch::randn({4});
  ExpectErrorContaining([&] { fusedact::gelu(x, "foo"); }, {"fusedact::gelu", "approximate", "foo"},
                        "gelu(x, 'foo')");
  ExpectErrorContaining([&] { fusedact::gelu(x, ""); }, {"fusedact::gelu", "approximate"},
                        "gelu(x, '')");
  ExpectErrorContaining([&] { fusedact::geglu(torch::randn({2, 4}), "Tanh"); },
                        {"geglu", "approximate"}, "geglu(x, 'Tanh')");
  ExpectErrorContaining(
      [&] { fusedact::geglu(torch::randn({2, 4}), torch::randn({2, 4}), "exact"); },
      {"geglu", "approximate"}, "geglu(gate, up, 'exact')");
}

TEST(ApiErrors, OddGatedDimension) {
  const Tensor x = torch::randn({3, 5});
  ExpectErrorContaining([&] { fusedact::swiglu(x); }, {"fusedact::swiglu"}, "swiglu odd last dim");
  ExpectErrorContaining([&] { fusedact::geglu(x); }, {"fusedact::geglu"}, "geglu odd last dim");
  ExpectErrorContaining([&] { fusedact::reglu(x); }, {"fusedact::reglu"}, "reglu odd last dim");
  ExpectErrorContaining([&] { fusedact::glu(x); }, {"glu"}, "glu odd last dim");
  ExpectErrorContaining([&] { fusedact::swiglu(x, 0); }, {"fusedact::swiglu"}, "swiglu odd dim 0");
  // Even last dim, odd along the requested one.
  ExpectErrorContaining([&] { fusedact::swiglu(torch::randn({3, 4}), 0); }, {"fusedact::swiglu"},
                        "swiglu odd dim 0 of [3, 4]");
}

TEST(ApiErrors, BadGatedDimAndZeroDimPacked) {
  ExpectErrorContaining([&] { fusedact::swiglu(torch::randn({2, 4}), 2); }, {"swiglu", "dim"},
                        "swiglu dim out of range");
  ExpectErrorContaining([&] { fusedact::swiglu(torch::randn({2, 4}), -3); }, {"swiglu", "dim"},
                        "swiglu dim out of range (negative)");
  ExpectErrorContaining([&] { fusedact::glu(torch::scalar_tensor(1.0)); }, {"glu"}, "glu on 0-dim");
  ExpectErrorContaining([&] { fusedact::swiglu(torch::scalar_tensor(1.0)); }, {"swiglu"},
                        "swiglu on 0-dim");
}

TEST(ApiErrors, IntegerInput) {
  const Tensor i = torch::arange(8, torch::kInt64);
  EXPECT_THROW(fusedact::gelu(i), c10::Error);
  EXPECT_THROW(fusedact::gelu(i, "tanh"), c10::Error);
  EXPECT_THROW(fusedact::silu(i), c10::Error);
  EXPECT_THROW(fusedact::mish(i), c10::Error);
  EXPECT_THROW(fusedact::swiglu(i.view({2, 4})), c10::Error);
  EXPECT_THROW(fusedact::swiglu(i, i), c10::Error);
  Tensor j = torch::arange(8, torch::kInt32);
  EXPECT_THROW(fusedact::silu_(j), c10::Error);
  EXPECT_TRUE(j.equal(torch::arange(8, torch::kInt32))) << "failed silu_ modified its input";
  EXPECT_THROW(fusedact::gelu(torch::ones({3}, torch::kBool)), c10::Error);
}

TEST(ApiErrors, SplitOperandsMustMatch) {
  const Tensor gate = torch::randn({3, 4});
  ExpectErrorContaining([&] { fusedact::swiglu(gate, torch::randn({3, 5})); },
                        {"gate", "up"}, "swiglu(gate, up) shape mismatch");
  ExpectErrorContaining([&] { fusedact::reglu(gate, torch::randn({4, 3})); }, {"gate", "up"},
                        "reglu(gate, up) shape mismatch");
  ExpectErrorContaining([&] { fusedact::swiglu(gate, torch::randn({3, 4}, torch::kFloat64)); },
                        {"gate", "up"}, "swiglu(gate, up) dtype mismatch");
}

// An undefined tensor (None in Python) and a sparse tensor: errors naming op and argument,
// from the kernel fusedact registers for the dispatch keys it has no kernel for.
TEST(ApiErrors, UndefinedAndSparseTensors) {
  ExpectErrorContaining([&] { fusedact::gelu(Tensor()); }, {"fusedact::gelu", "'input'", "None"},
                        "gelu(undefined)");
  ExpectErrorContaining([&] { fusedact::swiglu(torch::randn({3, 4}), Tensor()); },
                        {"fusedact::swiglu", "'up'", "None"}, "swiglu(gate, undefined)");
  ExpectErrorContaining([&] { fusedact::softmax(Tensor(), -1); },
                        {"fusedact::softmax", "'input'", "None"}, "softmax(undefined)");
  ExpectErrorContaining([&] { fusedact::relu(torch::eye(3).to_sparse()); },
                        {"fusedact::relu", "'input'", "Sparse"}, "relu(sparse)");
}

TEST(ApiErrors, BackwardShapeMismatch) {
  const Tensor x = torch::randn({3, 4});
  EXPECT_THROW(fusedact::gelu_backward(torch::randn({3, 5}), x), c10::Error);
  EXPECT_THROW(fusedact::swiglu_backward(torch::randn({3, 4}), x), c10::Error);  // wants [3, 2]
}

// A failed call leaves the process usable and the input untouched.
TEST(ApiErrors, NoCorruptionAfterError) {
  torch::manual_seed(14);
  Tensor x = torch::randn({3, 5});
  const Tensor before = x.clone();
  EXPECT_THROW(fusedact::swiglu(x), c10::Error);
  EXPECT_THROW(fusedact::gelu(x, "bad"), c10::Error);
  EXPECT_TRUE(x.equal(before));
  ExpectClose(fusedact::gelu(x), torch::gelu(x), "gelu after errors");
}

// ---- row-wise ops: softmax, log_softmax, softmin ----

// Each row-wise op of the C++ API with torch's counterpart.
struct RowwiseCase {
  const char* name;
  std::function<Tensor(const Tensor&, int64_t)> ours, theirs;
};
std::vector<RowwiseCase> RowwiseCases() {
  return {
      {"softmax", [](const Tensor& x, int64_t d) { return fusedact::softmax(x, d); },
       [](const Tensor& x, int64_t d) { return torch::softmax(x, d); }},
      {"log_softmax", [](const Tensor& x, int64_t d) { return fusedact::log_softmax(x, d); },
       [](const Tensor& x, int64_t d) { return torch::log_softmax(x, d); }},
      {"softmin", [](const Tensor& x, int64_t d) { return fusedact::softmin(x, d); },
       [](const Tensor& x, int64_t d) { return torch::softmax(-x, d); }},
  };
}

TEST(ApiRowwise, ForwardBackwardDoubleBackwardMatchTorch) {
  torch::manual_seed(21);
  for (const RowwiseCase& c : RowwiseCases()) {
    for (torch::Dtype dtype : kDtypes) {
      for (auto [sizes, dim] : std::vector<std::pair<std::vector<int64_t>, int64_t>>{
               {{6, 37}, -1}, {{4, 5, 9}, 1}, {{5, 3, 4}, 0}, {{3, 1500}, 1}}) {
        const std::string what = std::string(c.name) + " " + DtypeName(dtype) + " dim " + std::to_string(dim);
        const Tensor x = Randn(sizes, dtype, 4.0), dy = Randn(sizes, dtype);
        ExpectClose(c.ours(x, dim), c.theirs(x, dim), what);
        // gradients and second derivatives in float64 (float32's long-row sums round
        // differently in torch's kernel; the rounding is compared by the Python suite)
        const Tensor a = x.to(torch::kFloat64).requires_grad_(true);
        const Tensor b = x.to(torch::kFloat64).requires_grad_(true);
        const Tensor g = dy.to(torch::kFloat64);
        const Tensor ga = torch::autograd::grad({c.ours(a, dim)}, {a}, {g}, true, true)[0];
        const Tensor gb = torch::autograd::grad({c.theirs(b, dim)}, {b}, {g}, true, true)[0];
        ExpectClose(ga, gb, what + " backward");
        const Tensor v = Randn(sizes, torch::kFloat64);
        ExpectClose(torch::autograd::grad({ga}, {a}, {v})[0], torch::autograd::grad({gb}, {b}, {v})[0],
                    what + " double backward");
      }
    }
  }
}

TEST(ApiRowwise, DtypeArgumentCastsFirst) {
  torch::manual_seed(22);
  const Tensor x = Randn({4, 7}, torch::kFloat32, 3.0).to(torch::kBFloat16).requires_grad_(true);
  const Tensor y = fusedact::softmax(x, -1, torch::kFloat32);
  EXPECT_EQ(y.scalar_type(), torch::kFloat32);
  ExpectClose(y, torch::softmax(x, -1, torch::kFloat32), "softmax bfloat16 -> float32");
  const Tensor gx = torch::autograd::grad({y}, {x}, {torch::ones_like(y)})[0];
  EXPECT_EQ(gx.scalar_type(), torch::kBFloat16);
  const Tensor i = torch::arange(6, torch::kInt64).view({2, 3});
  ExpectClose(fusedact::log_softmax(i, 1, torch::kFloat64), torch::log_softmax(i, 1, torch::kFloat64),
              "log_softmax int64 -> float64");
}

TEST(ApiRowwise, SpecialValuesAndShapes) {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::nan("");
  const Tensor x = torch::tensor({-inf, -inf, -inf, inf, 1.0, 2.0, nan, 1.0, 2.0, 1e4, -1e4, 0.0,
                                  -inf, 0.0, 1.0},
                                 torch::kFloat64)
                       .view({5, 3});
  for (const RowwiseCase& c : RowwiseCases()) {
    for (torch::Dtype dtype : kDtypes) {
      const Tensor xd = x.to(dtype);
      ExpectClose(c.ours(xd, 1), c.theirs(xd, 1), std::string(c.name) + " special values");
      ExpectClose(c.ours(xd.t(), 0), c.theirs(xd.t(), 0), std::string(c.name) + " special values, dim 0");
    }
    ExpectClose(c.ours(torch::randn({}), 0), c.theirs(torch::randn({}), 0), std::string(c.name) + " 0-dim");
    ExpectClose(c.ours(torch::randn({3, 0}), 1), c.theirs(torch::randn({3, 0}), 1), std::string(c.name) + " empty");
    ExpectClose(c.ours(torch::randn({0, 3}), 1), c.theirs(torch::randn({0, 3}), 1), std::string(c.name) + " empty rows");
  }
}

TEST(ApiRowwise, Errors) {
  const Tensor x = torch::randn({3, 4});
  ExpectErrorContaining([&] { fusedact::softmax(x, 2); }, {"softmax", "dim"}, "softmax dim out of range");
  ExpectErrorContaining([&] { fusedact::log_softmax(torch::arange(4), 0); }, {"log_softmax", "input"},
                        "log_softmax of an integer tensor");
  ExpectErrorContaining([&] { fusedact::softmin(x, 0, torch::kInt32); }, {"softmin", "dtype"},
                        "softmin to an integer dtype");
  ExpectErrorContaining([&] { fusedact::softmax_backward(torch::randn({3, 5}), x, 1); },
                        {"softmax_backward", "grad_output"}, "softmax_backward shape mismatch");
}

}  // namespace
