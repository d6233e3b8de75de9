// Trains a small MLP whose activations are fusedact ops (GELU, a packed SwiGLU, SiLU) on a
// synthetic regression task, through LibTorch autograd and torch::optim::Adam.
// Exits 1 unless the final loss is below half the initial one.
#include <fusedact/fusedact.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>

namespace {

constexpr int64_t kInputs = 16;
constexpr int64_t kHidden = 64;
constexpr int64_t kSamples = 1024;
constexpr int kSteps = 200;
constexpr int kPrintEvery = 20;

struct MlpImpl : torch::nn::Module {
  MlpImpl()
      : in(register_module("in", torch::nn::Linear(kInputs, kHidden))),
        gate_up(register_module("gate_up", torch::nn::Linear(kHidden, 2 * kHidden))),
        mid(register_module("mid", torch::nn::Linear(kHidden, kHidden))),
        out(register_module("out", torch::nn::Linear(kHidden, 1))) {}

  torch::Tensor forward(const torch::Tensor& x) {
    auto h = fusedact::gelu(in(x), "tanh");   // [n, hidden]
    h = fusedact::swiglu(gate_up(h));         // [n, 2*hidden] -> silu(first half) * second half
    h = fusedact::silu(mid(h));               // [n, hidden]
    return out(h);                            // [n, 1]
  }

  torch::nn::Linear in, gate_up, mid, out;
};
TORCH_MODULE(Mlp);

}  // namespace

int main() {
  torch::manual_seed(0);
  const torch::Device device = torch::cuda::is_available() ? torch::kCUDA : torch::kCPU;
  std::printf("device: %s\n", device.str().c_str());

  // Targets from a fixed smooth function of the inputs, plus a little noise.
  const auto x = torch::randn({kSamples, kInputs}, device);
  const auto w = torch::randn({kInputs, 2}, device) / std::sqrt(static_cast<double>(kInputs));
  const auto p = x.matmul(w);  // [n, 2]
  const auto y = (torch::sin(2 * p.select(1, 0)) + p.select(1, 0) * p.select(1, 1) +
                  0.05 * torch::randn({kSamples}, device))
                     .unsqueeze(1);  // [n, 1]

  Mlp model;
  model->to(device);
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(1e-2));

  double first_loss = 0, loss_value = 0;
  for (int step = 0; step <= kSteps; ++step) {
    const auto loss = torch::mse_loss(model->forward(x), y);
    loss_value = loss.item<double>();
    if (step == 0) first_loss = loss_value;
    if (step % kPrintEvery == 0) std::printf("step %3d  loss %.5f\n", step, loss_value);
    if (step == kSteps) break;
    optimizer.zero_grad();
    loss.backward();  // through fusedact's backward ops
    optimizer.step();
  }

  const bool learned = loss_value < 0.5 * first_loss;
  std::printf("loss %.5f -> %.5f (%.3gx the initial loss): %s\n", first_loss, loss_value,
              loss_value / first_loss, learned ? "ok" : "FAILED, expected below 0.5x");
  return learned ? 0 : 1;
}
