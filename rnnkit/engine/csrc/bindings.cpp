// The fused cell families (cells.h) as torch operators torch.ops.rnnkit_fused.<name>, taking
// and returning dicts of tensors. Registered through TORCH_LIBRARY rather than pybind11: the
// extension then compiles in a fraction of the time.
#include <torch/library.h>

#include <algorithm>
#include <cstdint>

#include "amx.h"
#include "cells.h"
#include "gemm.h"
#include "pointwise.h"

namespace {

using TensorDict = c10::Dict<std::string, at::Tensor>;

rnnkit::TensorMap to_map(const TensorDict& dict) {
  rnnkit::TensorMap map;
  for (const auto& entry : dict) {
    map.emplace(entry.key(), entry.value());
  }
  return map;
}

TensorDict to_dict(const rnnkit::TensorMap& map) {
  TensorDict dict;
  for (const auto& [name, tensor] : map) {
    dict.insert(name, tensor);
  }
  return dict;
}

TensorDict lstm_forward(TensorDict tensors, std::string blocks, bool coupled,
                        bool input_activation, bool output_activation, double cell_zoneout,
                        double hidden_zoneout) {
  return to_dict(rnnkit::lstm_forward(to_map(tensors),
                                      {blocks, coupled, input_activation, output_activation,
                                       cell_zoneout, hidden_zoneout}));
}

TensorDict lstm_backward(TensorDict saved, TensorDict grads, bool input_grad, std::string blocks,
                         bool coupled, bool input_activation, bool output_activation,
                         double cell_zoneout, double hidden_zoneout) {
  return to_dict(rnnkit::lstm_backward(to_map(saved), to_map(grads), input_grad,
                                       {blocks, coupled, input_activation, output_activation,
                                        cell_zoneout, hidden_zoneout}));
}

TensorDict gru_forward(TensorDict tensors) {
  return to_dict(rnnkit::gru_forward(to_map(tensors)));
}

TensorDict gru_backward(TensorDict saved, TensorDict grads, bool input_grad) {
  return to_dict(rnnkit::gru_backward(to_map(saved), to_map(grads), input_grad));
}

TensorDict gru_after_forward(TensorDict tensors) {
  return to_dict(rnnkit::gru_after_forward(to_map(tensors)));
}

TensorDict gru_after_backward(TensorDict saved, TensorDict grads, bool input_grad) {
  return to_dict(rnnkit::gru_after_backward(to_map(saved), to_map(grads), input_grad));
}

TensorDict elman_forward(TensorDict tensors, bool relu, int64_t start_step) {
  return to_dict(rnnkit::elman_forward(to_map(tensors), {relu, start_step}));
}

TensorDict elman_backward(TensorDict saved, TensorDict grads, bool input_grad, bool relu,
                          int64_t start_step) {
  return to_dict(
      rnnkit::elman_backward(to_map(saved), to_map(grads), input_grad, {relu, start_step}));
}

TensorDict mingru_forward(TensorDict tensors) {
  return to_dict(rnnkit::mingru_forward(to_map(tensors)));
}

TensorDict mingru_backward(TensorDict saved, TensorDict grads, bool input_grad) {
  return to_dict(rnnkit::mingru_backward(to_map(saved), to_map(grads), input_grad));
}

TensorDict minlstm_forward(TensorDict tensors) {
  return to_dict(rnnkit::minlstm_forward(to_map(tensors)));
}

TensorDict minlstm_backward(TensorDict saved, TensorDict grads, bool input_grad) {
  return to_dict(rnnkit::minlstm_backward(to_map(saved), to_map(grads), input_grad));
}

// The product a b through rnnkit's own kernels (for tests), or None when they are not used on
// this machine.
std::optional<at::Tensor> own_matmul(at::Tensor a, at::Tensor b) {
  if (!rnnkit::own_gemm()) {
    return std::nullopt;
  }
  at::Tensor out = at::empty({a.size(0), b.size(1)}, a.options());
  rnnkit::own_matmul(out, a, b, false);
  return out;
}

// The product a b (2-D float32 tensors) through one of rnnkit's bfloat16 kernels (for tests):
// `kernel` "amx" or "avx512_bf16"; None when that kernel does not run on this machine.
std::optional<at::Tensor> bf16_matmul(at::Tensor a, at::Tensor b, std::string kernel) {
  TORCH_CHECK(kernel == "amx" || kernel == "avx512_bf16",
              "bf16_matmul: kernel is \"amx\" or \"avx512_bf16\", got ", kernel);
  const bool amx = kernel == "amx";
  if (!(amx ? rnnkit::amx_available() : rnnkit::avx512_bf16_available())) {
    return std::nullopt;
  }
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0) &&
                  a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat,
              "bf16_matmul: expected float32 matrices (m, k) and (k, n)");
  // The packing gathers with 32-bit offsets: other strides are copied first.
  const auto gatherable = [](int64_t stride) { return stride > 0 && 16 * stride <= INT32_MAX; };
  a = a.stride(1) == 1 ? a : a.contiguous();
  b = gatherable(b.stride(0)) && gatherable(b.stride(1)) ? b : b.contiguous();
  const rnnkit::AmxMatrix packed(b.data_ptr<float>(), b.stride(0), b.stride(1), b.size(0),
                                 b.size(1));
  at::Tensor out = at::empty({a.size(0), b.size(1)}, a.options());
  (amx ? rnnkit::amx_product : rnnkit::avx512_bf16_product)(
      a.size(0), a.data_ptr<float>(), a.stride(0), packed, out.data_ptr<float>(), out.stride(0),
      false);
  return out;
}

// Fills `out` (contiguous float32 or float64 on the CPU) with 0 and `value`: element i is
// `value` where 16-bit draw i of the stream `seed` is at least `threshold` (pointwise.h).
void bernoulli_fill(at::Tensor out, int64_t seed, int64_t threshold, double value) {
  TORCH_CHECK(out.device().is_cpu() && out.is_contiguous() &&
                  (out.scalar_type() == at::kFloat || out.scalar_type() == at::kDouble),
              "bernoulli_fill: out must be a contiguous float32 or float64 CPU tensor");
  TORCH_CHECK(threshold >= 0 && threshold <= 65536,
              "bernoulli_fill: threshold must be in [0, 65536], got ", threshold);
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "bernoulli_fill", [&] {
    scalar_t* data = out.data_ptr<scalar_t>();
    at::parallel_for(0, (out.numel() + 3) / 4, 8192, [&](int64_t begin, int64_t end) {
      rnnkit::bernoulli_fill(data, 4 * begin, std::min(4 * end, out.numel()),
                             static_cast<uint64_t>(seed), static_cast<uint32_t>(threshold),
                             static_cast<scalar_t>(value));
    });
  });
}

// Whether rnnkit's AMX kernels run on this machine (amx.h).
bool amx_available() { return rnnkit::amx_available(); }

// Whether rnnkit's AVX512-BF16 kernel runs on this machine (amx.h).
bool avx512_bf16_available() { return rnnkit::avx512_bf16_available(); }

// Turn bfloat16 products (recurrence.h) on or off for the calling thread; false when they
// cannot be turned on (torch without oneDNN).
bool set_bf16_products(bool on) { return rnnkit::set_bf16_products(on); }

}  // namespace

TORCH_LIBRARY(rnnkit_fused, library) {
  library.def("lstm_forward(Dict(str, Tensor) tensors, str blocks, bool coupled, "
              "bool input_activation, bool output_activation, float cell_zoneout, "
              "float hidden_zoneout) -> Dict(str, Tensor)",
              &lstm_forward);
  library.def("lstm_backward(Dict(str, Tensor) saved, Dict(str, Tensor) grads, "
              "bool input_grad, str blocks, bool coupled, bool input_activation, "
              "bool output_activation, float cell_zoneout, float hidden_zoneout) "
              "-> Dict(str, Tensor)",
              &lstm_backward);
  library.def("gru_forward(Dict(str, Tensor) tensors) -> Dict(str, Tensor)", &gru_forward);
  library.def("gru_backward(Dict(str, Tensor) saved, Dict(str, Tensor) grads, "
              "bool input_grad) -> Dict(str, Tensor)",
              &gru_backward);
  library.def("gru_after_forward(Dict(str, Tensor) tensors) -> Dict(str, Tensor)",
              &gru_after_forward);
  library.def("gru_after_backward(Dict(str, Tensor) saved, Dict(str, Tensor) grads, "
              "bool input_grad) -> Dict(str, Tensor)",
              &gru_after_backward);
  library.def("elman_forward(Dict(str, Tensor) tensors, bool relu, int start_step) "
              "-> Dict(str, Tensor)",
              &elman_forward);
  library.def("elman_backward(Dict(str, Tensor) saved, Dict(str, Tensor) grads, "
              "bool input_grad, bool relu, int start_step) -> Dict(str, Tensor)",
              &elman_backward);
  library.def("mingru_forward(Dict(str, Tensor) tensors) -> Dict(str, Tensor)",
              &mingru_forward);
  library.def("mingru_backward(Dict(str, Tensor) saved, Dict(str, Tensor) grads, "
              "bool input_grad) -> Dict(str, Tensor)",
              &mingru_backward);
  library.def("minlstm_forward(Dict(str, Tensor) tensors) -> Dict(str, Tensor)",
              &minlstm_forward);
  library.def("minlstm_backward(Dict(str, Tensor) saved, Dict(str, Tensor) grads, "
              "bool input_grad) -> Dict(str, Tensor)",
              &minlstm_backward);
  library.def("own_matmul(Tensor a, Tensor b) -> Tensor?", &own_matmul);
  library.def("set_bf16_products(bool on) -> bool", &set_bf16_products);
  library.def("bf16_matmul(Tensor a, Tensor b, str kernel) -> Tensor?", &bf16_matmul);
  library.def("bernoulli_fill(Tensor(a!) out, int seed, int threshold, float value) -> ()",
              &bernoulli_fill);
  library.def("amx_available() -> bool", &amx_available);
  library.def("avx512_bf16_available() -> bool", &avx512_bf16_available);
}
