// minGRU and minLSTM (Feng et al. 2024) over a sequence, forward and backward.
//
// Their gates read x_t only, so the only matrix products are the input projection of all steps
// and, backward, its gradients; each step is one pointwise pass h_t = a_t h_{t-1} + b_t, exact
// like the reference loop and much cheaper than a parallel scan in log space.
#include "cells.h"
#include "pointwise.h"
#include "recurrence.h"

namespace rnnkit {
namespace {

// The loop both cells share; Step is MinGruStep or MinLstmStep, `blocks` the number of H-wide
// blocks of the input projection, kernel(step, col_begin, col_end) the cell's pointwise pass.
template <template <typename> class Step, typename Kernel>
TensorMap forward(const TensorMap& tensors, int64_t blocks, const Kernel& kernel) {
  const at::Tensor inputs = tensors.at("inputs");
  const at::Tensor hidden0 = tensors.at("hidden0");
  const int64_t steps = inputs.size(0), batch = inputs.size(1), hidden = hidden0.size(1);
  std::map<std::string, std::vector<int64_t>> shapes{
      {"weight_ih", {blocks * hidden, inputs.size(2)}}, {"hidden0", {batch, hidden}}};
  if (tensors.count("bias")) {
    shapes["bias"] = {blocks * hidden};
  }
  check_sequence_inputs(tensors, shapes);

  at::Tensor gates = project_inputs(inputs, tensors.at("weight_ih"), get(tensors, "bias"));
  at::Tensor hiddens = at::empty({steps + 1, batch, hidden}, hidden0.options());
  hiddens[0].copy_(hidden0);

  AT_DISPATCH_FLOATING_TYPES(inputs.scalar_type(), "minimal_forward", [&] {
    Step<scalar_t> step{};
    step.last_step = tensors.at("last_step").data_ptr<int64_t>();
    step.batch = batch;
    step.hidden_size = hidden;
    for (int64_t t = 0; t < steps; ++t) {
      step.gates = step_or_null<scalar_t>(gates, t);
      step.hidden_prev = step_or_null<scalar_t>(hiddens, t);
      step.hidden = step_or_null<scalar_t>(hiddens, t + 1);
      step.step = t;
      for_column_ranges(batch, hidden, [&](int64_t begin, int64_t end) {
        kernel(step, begin, end);
      });
    }
  });
  return {{"gates", gates}, {"hiddens", hiddens}};
}

template <template <typename> class Step, typename Kernel>
TensorMap backward(const TensorMap& saved, const TensorMap& grads, bool input_grad,
                   const Kernel& kernel) {
  const at::Tensor inputs = saved.at("inputs");
  const at::Tensor gates = saved.at("gates");
  const at::Tensor hiddens = saved.at("hiddens");
  const at::Tensor grad_hiddens = get(grads, "hiddens");
  const at::Tensor grad_gates = get(grads, "gates");
  const int64_t steps = inputs.size(0), batch = inputs.size(1), hidden = hiddens.size(2);

  at::Tensor grad_pre = at::empty_like(gates);
  at::Tensor grad_hidden = at::zeros({batch, hidden}, hiddens.options());

  AT_DISPATCH_FLOATING_TYPES(inputs.scalar_type(), "minimal_backward", [&] {
    Step<scalar_t> step{};
    step.grad_hidden = grad_hidden.data_ptr<scalar_t>();
    step.last_step = saved.at("last_step").data_ptr<int64_t>();
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
        kernel(step, begin, end);
      });
    }
  });

  TensorMap result;
  input_gradients(grad_pre, inputs, saved.at("weight_ih"), saved.count("bias") > 0, input_grad,
                  result);
  result["hidden0"] = initial_gradient(grad_hidden, grad_hiddens);
  return result;
}

}  // namespace

TensorMap mingru_forward(const TensorMap& tensors) {
  return forward<MinGruStep>(tensors, 2, [](const auto& step, int64_t begin, int64_t end) {
    mingru_forward_step(step, begin, end);
  });
}

TensorMap mingru_backward(const TensorMap& saved, const TensorMap& grads, bool input_grad) {
  return backward<MinGruStep>(saved, grads, input_grad,
                              [](const auto& step, int64_t begin, int64_t end) {
                                mingru_backward_step(step, begin, end);
                              });
}

TensorMap minlstm_forward(const TensorMap& tensors) {
  return forward<MinLstmStep>(tensors, 3, [](const auto& step, int64_t begin, int64_t end) {
    minlstm_forward_step(step, begin, end);
  });
}

TensorMap minlstm_backward(const TensorMap& saved, const TensorMap& grads, bool input_grad) {
  return backward<MinLstmStep>(saved, grads, input_grad,
                               [](const auto& step, int64_t begin, int64_t end) {
                                 minlstm_backward_step(step, begin, end);
                               });
}

}  // namespace rnnkit
