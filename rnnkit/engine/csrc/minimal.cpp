// minGRU and minLSTM (Feng et al. 2024) over a sequence, forward and backward.
//
// Their gates read x_t only, so the only matrix products are the input projection of all steps
// and, backward, its gradients; each step is one pointwise pass h_t = a_t h_{t-1} + b_t, exact
// like the reference loop and much cheaper than a parallel scan in log space. Unlike the other
// families they return outputs (T, B, H) = [h_1, ..., h_T] rather than [h_0, ..., h_T]: the
// layer's output is then the kernel's own tensor, not a slice, whose gradient autograd would
// build by zero-filling and copying a whole (T + 1, B, H) buffer (a long sequence's largest
// cost after the matrix products).
#include <algorithm>

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
  at::Tensor outputs = pooled_empty({steps, batch, hidden}, hidden0.options());

  AT_DISPATCH_FLOATING_TYPES(inputs.scalar_type(), "minimal_forward", [&] {
    Step<scalar_t> step{};
    step.last_step = tensors.at("last_step").data_ptr<int64_t>();
    step.batch = batch;
    step.hidden_size = hidden;
    for (int64_t t = 0; t < steps; ++t) {
      step.gates = step_or_null<scalar_t>(gates, t);
      step.hidden_prev =
          t == 0 ? hidden0.data_ptr<scalar_t>() : step_or_null<scalar_t>(outputs, t - 1);
      step.hidden = step_or_null<scalar_t>(outputs, t);
      step.step = t;
      for_column_ranges(batch, hidden, [&](int64_t begin, int64_t end) {
        kernel(step, begin, end);
      });
    }
  });
  return {{"gates", gates}, {"outputs", outputs}};
}

// Backward walks the steps in blocks of about kBlockRows rows (steps x batch), latest first:
// the pointwise pass fills dL/d(pre-activations) of a block into one small buffer, reused for
// every block, and the block's share of the input-projection gradients is taken from it at once,
// while it is still in cache. A long sequence so never holds dL/d(pre) of all its steps.
constexpr int64_t kBlockRows = 2048;

template <template <typename> class Step, typename Kernel>
TensorMap backward(const TensorMap& saved, const TensorMap& grads, bool input_grad,
                   const Kernel& kernel) {
  const at::Tensor inputs = saved.at("inputs");
  const at::Tensor weight_ih = saved.at("weight_ih");
  const at::Tensor gates = saved.at("gates");
  const at::Tensor hidden0 = saved.at("hidden0");
  const at::Tensor outputs = saved.at("outputs");
  const at::Tensor grad_outputs = get(grads, "outputs");
  const at::Tensor grad_gates = get(grads, "gates");
  const int64_t steps = inputs.size(0), batch = inputs.size(1), hidden = outputs.size(2);
  const int64_t features = inputs.size(2), width = gates.size(2);
  const bool has_bias = saved.count("bias") > 0;

  const int64_t block = std::max<int64_t>(1, std::min<int64_t>(steps, kBlockRows / batch));
  at::Tensor grad_pre = at::empty({block, batch, width}, gates.options());
  at::Tensor grad_hidden = at::zeros({batch, hidden}, outputs.options());
  at::Tensor grad_inputs =
      input_grad ? pooled_empty(inputs.sizes(), inputs.options()) : at::Tensor();
  at::Tensor grad_weight = at::zeros_like(weight_ih);
  at::Tensor grad_bias = has_bias ? at::zeros({width}, gates.options()) : at::Tensor();
  const at::Tensor flat_inputs = inputs.view({steps * batch, features});

  for (int64_t end = steps; end > 0; end -= block) {
    const int64_t begin = std::max<int64_t>(0, end - block), count = end - begin;
    AT_DISPATCH_FLOATING_TYPES(inputs.scalar_type(), "minimal_backward", [&] {
      Step<scalar_t> step{};
      step.grad_hidden = grad_hidden.data_ptr<scalar_t>();
      step.last_step = saved.at("last_step").data_ptr<int64_t>();
      step.batch = batch;
      step.hidden_size = hidden;
      for (int64_t t = end - 1; t >= begin; --t) {
        step.gates = step_or_null<scalar_t>(gates, t);
        step.hidden_prev =
            t == 0 ? hidden0.data_ptr<scalar_t>() : step_or_null<scalar_t>(outputs, t - 1);
        step.grad_hidden_extra = step_or_null<scalar_t>(grad_outputs, t);
        step.grad_gates_extra = step_or_null<scalar_t>(grad_gates, t);
        step.grad_pre = step_or_null<scalar_t>(grad_pre, t - begin);
        step.step = t;
        for_column_ranges(batch, hidden, [&](int64_t col_begin, int64_t col_end) {
          kernel(step, col_begin, col_end);
        });
      }
    });
    const at::Tensor part = grad_pre.narrow(0, 0, count).view({count * batch, width});
    if (input_grad) {
      at::Tensor rows = grad_inputs.view({steps * batch, features})
                            .narrow(0, begin * batch, count * batch);
      matmul_into(rows, part, weight_ih, false);
    }
    matmul_into(grad_weight, part.t(), flat_inputs.narrow(0, begin * batch, count * batch), true);
    if (has_bias) {
      grad_bias.add_(part.sum(0));
    }
  }

  TensorMap result{{"weight_ih", grad_weight}};
  if (input_grad) {
    result["inputs"] = grad_inputs;
  }
  if (has_bias) {
    result["bias"] = grad_bias;
  }
  result["hidden0"] = grad_hidden;
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
