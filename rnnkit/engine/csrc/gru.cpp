// The GRU over a sequence, forward and backward: Cho et al. 2014 (reset_after=False) first,
// then torch's form (reset_after=True).
//
// Forward, per step t: [r z] pre-activations += h_{t-1} W_hz,r^T; r, z and r * h_{t-1} in one
// pass; n pre-activation += (r * h_{t-1}) W_hn^T; n and h_t in a second pass. Saved: the
// activations r, z, n (the traces), the hidden states and r * h_{t-1}. Backward mirrors it with
// two passes and two products per step, then every weight gradient as one product over all
// steps.
#include "cells.h"
#include "pointwise.h"
#include "recurrence.h"

namespace rnnkit {
namespace {

// Raises unless the tensors of either GRU form have consistent shapes (candidate_bias: torch's
// form only).
void check_gru_inputs(const TensorMap& tensors) {
  const int64_t batch = tensors.at("inputs").size(1), hidden = tensors.at("hidden0").size(1);
  std::map<std::string, std::vector<int64_t>> shapes{
      {"weight_hh", {3 * hidden, hidden}},
      {"hidden0", {batch, hidden}}};
  if (tensors.count("bias")) {
    shapes["bias"] = {3 * hidden};
  }
  if (tensors.count("candidate_bias")) {
    shapes["candidate_bias"] = {hidden};
  }
  add_input_weight_shape(tensors, 3 * hidden, shapes);
  check_sequence_inputs(tensors, shapes);
}

}  // namespace

TensorMap gru_forward(const TensorMap& tensors) {
  const at::Tensor inputs = tensors.at("inputs");
  const at::Tensor weight_hh = tensors.at("weight_hh");
  const at::Tensor hidden0 = tensors.at("hidden0");
  const at::Tensor last_step = tensors.at("last_step");
  const int64_t steps = inputs.size(0), batch = inputs.size(1), hidden = hidden0.size(1);
  check_gru_inputs(tensors);
  const at::Tensor weight_gates = weight_hh.narrow(0, 0, 2 * hidden);
  const at::Tensor weight_candidate = weight_hh.narrow(0, 2 * hidden, hidden);

  at::Tensor gates = project_inputs(inputs, get(tensors, "weight_ih"), get(tensors, "bias"));
  at::Tensor hiddens = pooled_empty({steps + 1, batch, hidden}, hidden0.options());
  at::Tensor reset_hiddens = pooled_empty({steps, batch, hidden}, hidden0.options());
  hiddens[0].copy_(hidden0);

  const StepProduct gates_product(weight_gates, true, batch);
  const StepProduct candidate_product(weight_candidate, true, batch);
  AT_DISPATCH_FLOATING_TYPES(inputs.scalar_type(), "gru_forward", [&] {
    GruStep<scalar_t> step{};
    step.last_step = last_step.data_ptr<int64_t>();
    step.batch = batch;
    step.hidden_size = hidden;
    for (int64_t t = 0; t < steps; ++t) {
      step.gates = step_or_null<scalar_t>(gates, t);
      step.hidden_prev = step_or_null<scalar_t>(hiddens, t);
      step.reset_hidden = step_or_null<scalar_t>(reset_hiddens, t);
      step.hidden = step_or_null<scalar_t>(hiddens, t + 1);
      step.step = t;
      gates_product(step.gates, 3 * hidden, step.hidden_prev, hidden, true);
      for_column_ranges(batch, hidden, [&](int64_t begin, int64_t end) {
        gru_forward_gates(step, begin, end);
      });
      candidate_product(step.gates + 2 * hidden, 3 * hidden, step.reset_hidden, hidden, true);
      for_column_ranges(batch, hidden, [&](int64_t begin, int64_t end) {
        gru_forward_output(step, begin, end);
      });
    }
  });
  return {{"gates", gates}, {"hiddens", hiddens}, {"reset_hiddens", reset_hiddens}};
}

TensorMap gru_backward(const TensorMap& saved, const TensorMap& grads, bool input_grad) {
  const at::Tensor inputs = saved.at("inputs");
  const at::Tensor weight_hh = saved.at("weight_hh");
  const at::Tensor gates = saved.at("gates");
  const at::Tensor hiddens = saved.at("hiddens");
  const at::Tensor reset_hiddens = saved.at("reset_hiddens");
  const at::Tensor last_step = saved.at("last_step");
  const at::Tensor grad_hiddens = get(grads, "hiddens");
  const at::Tensor grad_gates = get(grads, "gates");
  const int64_t steps = inputs.size(0), batch = inputs.size(1), hidden = hiddens.size(2);
  const at::Tensor weight_gates = weight_hh.narrow(0, 0, 2 * hidden);
  const at::Tensor weight_candidate = weight_hh.narrow(0, 2 * hidden, hidden);

  at::Tensor grad_pre = pooled_empty(gates.sizes(), gates.options());
  at::Tensor grad_hidden = at::zeros({batch, hidden}, hiddens.options());
  at::Tensor grad_reset_hidden = at::empty({batch, hidden}, hiddens.options());

  const StepProduct gates_product(weight_gates, false, batch);
  const StepProduct candidate_product(weight_candidate, false, batch);
  AT_DISPATCH_FLOATING_TYPES(inputs.scalar_type(), "gru_backward", [&] {
    scalar_t* grad_reset_hidden_data = grad_reset_hidden.data_ptr<scalar_t>();
    GruStep<scalar_t> step{};
    step.grad_reset_hidden = grad_reset_hidden_data;
    step.grad_hidden = grad_hidden.data_ptr<scalar_t>();
    step.last_step = last_step.data_ptr<int64_t>();
    step.batch = batch;
    step.hidden_size = hidden;
    for (int64_t t = steps - 1; t >= 0; --t) {
      step.gates = step_or_null<scalar_t>(gates, t);
      step.hidden_prev = step_or_null<scalar_t>(hiddens, t);
      step.grad_hidden_extra = step_or_null<scalar_t>(grad_hiddens, t + 1);
      step.grad_gates_extra = step_or_null<scalar_t>(grad_gates, t);
      step.grad_pre = step_or_null<scalar_t>(grad_pre, t);
      step.step = t;
      for_column_ranges(batch, hidden, [&](int64_t begin, int64_t end) {
        gru_backward_output(step, begin, end);
      });
      candidate_product(grad_reset_hidden_data, hidden, step.grad_pre + 2 * hidden, 3 * hidden,
                        false);
      for_column_ranges(batch, hidden, [&](int64_t begin, int64_t end) {
        gru_backward_reset(step, begin, end);
      });
      gates_product(step.grad_hidden, hidden, step.grad_pre, 3 * hidden, true);
    }
  });

  TensorMap result;
  const at::Tensor grad_operand = product_operand(grad_pre);
  input_gradients(grad_pre, grad_operand, inputs, get(saved, "weight_ih"),
                  saved.count("bias") > 0, input_grad, result);
  result["weight_hh"] = at::cat(
      {weight_gradient(grad_operand.narrow(2, 0, 2 * hidden), hiddens.narrow(0, 0, steps)),
       weight_gradient(grad_operand.narrow(2, 2 * hidden, hidden), reset_hiddens)});
  result["hidden0"] = initial_gradient(grad_hidden, grad_hiddens);
  return result;
}

// The GRU in torch's form (reset_after=True): per step one product h_{t-1} W_hh^T (all three
// blocks) into a scratch row and one pointwise pass, which also keeps W_hn h_{t-1} + b_hn for
// the backward pass. `bias` holds b_ih + b_hh for r and z and b_in for n; `candidate_bias` is b_hn
// (it is scaled by r, so it cannot join b_in). Backward: one pass and one product per step;
// dL/d(recurrent pre-activations) differs from dL/d(input pre-activations) only in the n block
// (times r), which is kept apart for the gradients of W_hn and b_hn.
TensorMap gru_after_forward(const TensorMap& tensors) {
  const at::Tensor inputs = tensors.at("inputs");
  const at::Tensor weight_hh = tensors.at("weight_hh");
  const at::Tensor hidden0 = tensors.at("hidden0");
  const at::Tensor candidate_bias = get(tensors, "candidate_bias");
  const int64_t steps = inputs.size(0), batch = inputs.size(1), hidden = hidden0.size(1);
  check_gru_inputs(tensors);

  at::Tensor gates = project_inputs(inputs, get(tensors, "weight_ih"), get(tensors, "bias"));
  at::Tensor hiddens = pooled_empty({steps + 1, batch, hidden}, hidden0.options());
  at::Tensor candidate_hiddens = pooled_empty({steps, batch, hidden}, hidden0.options());
  at::Tensor recurrent = at::empty({batch, 3 * hidden}, hidden0.options());
  hiddens[0].copy_(hidden0);

  const StepProduct product(weight_hh, true, batch);
  AT_DISPATCH_FLOATING_TYPES(inputs.scalar_type(), "gru_after_forward", [&] {
    GruAfterStep<scalar_t> step{};
    step.recurrent = recurrent.data_ptr<scalar_t>();
    step.candidate_bias = data_or_null<scalar_t>(candidate_bias);
    step.last_step = tensors.at("last_step").data_ptr<int64_t>();
    step.batch = batch;
    step.hidden_size = hidden;
    for (int64_t t = 0; t < steps; ++t) {
      step.gates = step_or_null<scalar_t>(gates, t);
      step.hidden_prev = step_or_null<scalar_t>(hiddens, t);
      step.hidden = step_or_null<scalar_t>(hiddens, t + 1);
      step.candidate_hidden = step_or_null<scalar_t>(candidate_hiddens, t);
      step.step = t;
      product(recurrent.data_ptr<scalar_t>(), 3 * hidden, step.hidden_prev, hidden, false);
      for_column_ranges(batch, hidden, [&](int64_t begin, int64_t end) {
        gru_after_forward_step(step, begin, end);
      });
    }
  });
  return {{"gates", gates}, {"hiddens", hiddens}, {"candidate_hiddens", candidate_hiddens}};
}

TensorMap gru_after_backward(const TensorMap& saved, const TensorMap& grads, bool input_grad) {
  const at::Tensor inputs = saved.at("inputs");
  const at::Tensor weight_hh = saved.at("weight_hh");
  const at::Tensor gates = saved.at("gates");
  const at::Tensor hiddens = saved.at("hiddens");
  const at::Tensor candidate_hiddens = saved.at("candidate_hiddens");
  const at::Tensor grad_hiddens = get(grads, "hiddens");
  const at::Tensor grad_gates = get(grads, "gates");
  const int64_t steps = inputs.size(0), batch = inputs.size(1), hidden = hiddens.size(2);

  at::Tensor grad_pre = pooled_empty(gates.sizes(), gates.options());
  at::Tensor grad_recurrent = pooled_empty(gates.sizes(), gates.options());
  at::Tensor grad_hidden = at::zeros({batch, hidden}, hiddens.options());

  const StepProduct product(weight_hh, false, batch);
  AT_DISPATCH_FLOATING_TYPES(inputs.scalar_type(), "gru_after_backward", [&] {
    GruAfterStep<scalar_t> step{};
    step.grad_hidden = grad_hidden.data_ptr<scalar_t>();
    step.last_step = saved.at("last_step").data_ptr<int64_t>();
    step.batch = batch;
    step.hidden_size = hidden;
    for (int64_t t = steps - 1; t >= 0; --t) {
      step.gates = step_or_null<scalar_t>(gates, t);
      step.candidate_hidden = step_or_null<scalar_t>(candidate_hiddens, t);
      step.hidden_prev = step_or_null<scalar_t>(hiddens, t);
      step.grad_hidden_extra = step_or_null<scalar_t>(grad_hiddens, t + 1);
      step.grad_gates_extra = step_or_null<scalar_t>(grad_gates, t);
      step.grad_pre = step_or_null<scalar_t>(grad_pre, t);
      step.grad_recurrent = step_or_null<scalar_t>(grad_recurrent, t);
      step.step = t;
      for_column_ranges(batch, hidden, [&](int64_t begin, int64_t end) {
        gru_after_backward_step(step, begin, end);
      });
      product(step.grad_hidden, hidden, step.grad_recurrent, 3 * hidden, true);
    }
  });

  TensorMap result;
  input_gradients(grad_pre, product_operand(grad_pre), inputs, get(saved, "weight_ih"),
                  saved.count("bias") > 0, input_grad, result);
  result["weight_hh"] = weight_gradient(grad_recurrent, hiddens.narrow(0, 0, steps));
  if (saved.count("candidate_bias")) {
    result["candidate_bias"] =
        grad_recurrent.narrow(2, 2 * hidden, hidden).sum(at::IntArrayRef{0, 1});
  }
  result["hidden0"] = initial_gradient(grad_hidden, grad_hiddens);
  return result;
}

}  // namespace rnnkit
