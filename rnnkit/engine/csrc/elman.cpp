// The Elman RNN and the Clockwork RNN over a sequence, forward and backward.
//
// Forward, per step t: pre-activations += h_{t-1} W_hh^T, then one pass computing h_t for the
// modules whose clock ticks (the others keep h_{t-1}). Only the hidden states are saved: the
// derivative of tanh or ReLU follows from h_t itself.
#include "cells.h"
#include "pointwise.h"
#include "recurrence.h"

namespace rnnkit {
namespace {

// The fields of every step: the modules, the nonlinearity, the sequences' ends.
template <typename scalar_t>
ElmanStep<scalar_t> make_step(const TensorMap& tensors, const ElmanOptions& options,
                              int64_t batch, int64_t hidden) {
  ElmanStep<scalar_t> result{};
  result.module_begin = tensors.at("module_begin").data_ptr<int64_t>();
  result.module_period = tensors.at("module_period").data_ptr<int64_t>();
  result.modules = tensors.at("module_period").size(0);
  result.relu = options.relu;
  result.last_step = tensors.at("last_step").data_ptr<int64_t>();
  result.batch = batch;
  result.hidden_size = hidden;
  return result;
}

// Raises unless the modules are consecutive ranges covering [0, hidden) with positive periods.
void check_modules(const at::Tensor& module_begin, const at::Tensor& module_period,
                   int64_t hidden) {
  const int64_t modules = module_period.numel();
  TORCH_CHECK(module_begin.dtype() == at::kLong && module_period.dtype() == at::kLong &&
                  module_begin.is_contiguous() && module_period.is_contiguous() &&
                  module_begin.numel() == modules + 1 && modules > 0,
              "module_begin, module_period: expected modules + 1 and modules int64 values");
  const int64_t* begin = module_begin.data_ptr<int64_t>();
  const int64_t* period = module_period.data_ptr<int64_t>();
  TORCH_CHECK(begin[0] == 0 && begin[modules] == hidden, "module_begin: must span [0, H]");
  for (int64_t module = 0; module < modules; ++module) {
    TORCH_CHECK(begin[module] <= begin[module + 1] && period[module] > 0,
                "module_begin, module_period: expected increasing bounds, positive periods");
  }
}

}  // namespace

TensorMap elman_forward(const TensorMap& tensors, const ElmanOptions& options) {
  const at::Tensor inputs = tensors.at("inputs");
  const at::Tensor weight_hh = tensors.at("weight_hh");
  const at::Tensor hidden0 = tensors.at("hidden0");
  const int64_t steps = inputs.size(0), batch = inputs.size(1), hidden = hidden0.size(1);
  std::map<std::string, std::vector<int64_t>> shapes{{"weight_hh", {hidden, hidden}},
                                                     {"hidden0", {batch, hidden}}};
  if (tensors.count("bias")) {
    shapes["bias"] = {hidden};
  }
  add_input_weight_shape(tensors, hidden, shapes);
  check_sequence_inputs(tensors, shapes);
  check_modules(tensors.at("module_begin"), tensors.at("module_period"), hidden);

  at::Tensor pre = project_inputs(inputs, get(tensors, "weight_ih"), get(tensors, "bias"));
  at::Tensor hiddens = pooled_empty({steps + 1, batch, hidden}, hidden0.options());
  hiddens[0].copy_(hidden0);

  const StepProduct recurrent(weight_hh, true, batch);
  AT_DISPATCH_FLOATING_TYPES(inputs.scalar_type(), "elman_forward", [&] {
    ElmanStep<scalar_t> step = make_step<scalar_t>(tensors, options, batch, hidden);
    for (int64_t t = 0; t < steps; ++t) {
      scalar_t* pre_t = step_or_null<scalar_t>(pre, t);
      step.hidden_prev = step_or_null<scalar_t>(hiddens, t);
      recurrent(pre_t, hidden, step.hidden_prev, hidden, true);
      step.pre = pre_t;
      step.hidden = step_or_null<scalar_t>(hiddens, t + 1);
      step.step = t;
      step.clock = options.start_step + t;
      for_column_ranges(batch, hidden, [&](int64_t begin, int64_t end) {
        elman_forward_step(step, begin, end);
      });
    }
  });
  return {{"hiddens", hiddens}};
}

TensorMap elman_backward(const TensorMap& saved, const TensorMap& grads, bool input_grad,
                         const ElmanOptions& options) {
  const at::Tensor inputs = saved.at("inputs");
  const at::Tensor weight_hh = saved.at("weight_hh");
  const at::Tensor hiddens = saved.at("hiddens");
  const at::Tensor grad_hiddens = get(grads, "hiddens");
  const int64_t steps = inputs.size(0), batch = inputs.size(1), hidden = hiddens.size(2);

  at::Tensor grad_pre = pooled_empty({steps, batch, hidden}, hiddens.options());
  at::Tensor grad_hidden = at::zeros({batch, hidden}, hiddens.options());

  const StepProduct recurrent(weight_hh, false, batch);
  AT_DISPATCH_FLOATING_TYPES(inputs.scalar_type(), "elman_backward", [&] {
    ElmanStep<scalar_t> step = make_step<scalar_t>(saved, options, batch, hidden);
    step.grad_hidden = grad_hidden.data_ptr<scalar_t>();
    for (int64_t t = steps - 1; t >= 0; --t) {
      step.hidden = step_or_null<scalar_t>(hiddens, t + 1);
      step.grad_hidden_extra = step_or_null<scalar_t>(grad_hiddens, t + 1);
      step.grad_pre = step_or_null<scalar_t>(grad_pre, t);
      step.step = t;
      step.clock = options.start_step + t;
      for_column_ranges(batch, hidden, [&](int64_t begin, int64_t end) {
        elman_backward_step(step, begin, end);
      });
      recurrent(step.grad_hidden, hidden, step.grad_pre, hidden, true);
    }
  });

  TensorMap result;
  const at::Tensor grad_operand = product_operand(grad_pre);
  input_gradients(grad_pre, grad_operand, inputs, get(saved, "weight_ih"),
                  saved.count("bias") > 0, input_grad, result);
  result["weight_hh"] = weight_gradient(grad_operand, hiddens.narrow(0, 0, steps));
  result["hidden0"] = initial_gradient(grad_hidden, grad_hiddens);
  return result;
}

}  // namespace rnnkit
