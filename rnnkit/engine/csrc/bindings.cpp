// The fused cell families (cells.h) as torch operators torch.ops.rnnkit_fused.<name>, taking
// and returning dicts of tensors. Registered through TORCH_LIBRARY rather than pybind11: the
// extension then compiles in a fraction of the time.
#include <torch/library.h>

#include <cstdint>
#include <optional>
#include <string>

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

// Turn bfloat16 products (recurrence.h) on or off for the calling thread.
void set_bf16_products(bool on) { rnnkit::set_bf16_products(on); }

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
  library.def("set_bf16_products(bool on) -> ()", &set_bf16_products);
}
