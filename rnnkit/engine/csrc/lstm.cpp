// The LSTM family over a sequence: every switch of rnnkit.cells.lstm.LSTMMath and the depth
// gate of DepthGatedMath, forward and backward through time.
//
// Forward, per step t: gates[t][:, recurrent blocks] += h_{t-1} W_hh^T (one product into the
// buffer already holding W_ih x_t + b), (with full gate recurrence) W_gr a_{t-1}, then one
// pointwise pass; with a projection, h_t = m_t W_hr^T. Saved: the gate activations (which are
// also the traces), the cell states, the hidden states (the outputs), m_t with a projection and
// a_t with full gate recurrence. Backward walks the steps in reverse with one pointwise pass and
// one product per step (two with a projection or gate recurrence), filling dL/d(pre) for all
// steps, then computes every weight gradient as one product over all steps.
#include <optional>

#include "cells.h"
#include "pointwise.h"
#include "recurrence.h"

namespace rnnkit {
namespace {

// Column offset of each block of `blocks` (a subset of "ifgo", then "d" for the depth gate).
LstmLayout make_layout(const LstmOptions& options, int64_t hidden, bool gate_recurrence) {
  const std::string& blocks = options.blocks;
  auto block_col = [&](char name) -> int64_t {
    const auto found = blocks.find(name);
    return found == std::string::npos ? -1 : static_cast<int64_t>(found) * hidden;
  };
  LstmLayout layout{};
  layout.hidden = hidden;
  layout.gate_width = static_cast<int64_t>(blocks.size()) * hidden;
  layout.input_col = block_col('i');
  layout.forget_col = block_col('f');
  layout.candidate_col = block_col('g');
  layout.output_col = block_col('o');
  layout.depth_col = block_col('d');
  layout.input_state_col = layout.forget_state_col = layout.output_state_col = -1;
  if (gate_recurrence) {
    // a_t stacks the activations of the gates present in the order i, f, o.
    const auto place = [&](int64_t column) {
      if (column < 0) {
        return int64_t{-1};
      }
      layout.state_width += hidden;
      return layout.state_width - hidden;
    };
    layout.input_state_col = place(layout.input_col);
    layout.forget_state_col = place(layout.forget_col);
    layout.output_state_col = place(layout.output_col);
  }
  layout.coupled = options.coupled;
  layout.input_activation = options.input_activation;
  layout.output_activation = options.output_activation;
  return layout;
}

// The zoneout part of the layout: on where a mask is given or the rate is positive.
void set_zoneout(LstmLayout& layout, const LstmOptions& options, const TensorMap& tensors) {
  layout.cell_zoneout = options.cell_zoneout;
  layout.hidden_zoneout = options.hidden_zoneout;
  layout.zone_cell = tensors.count("cell_keep") > 0 || options.cell_zoneout > 0;
  layout.zone_hidden = tensors.count("hidden_keep") > 0 || options.hidden_zoneout > 0;
}

template <typename scalar_t>
LstmVectors<scalar_t> vectors_of(const TensorMap& tensors) {
  return {data_or_null<scalar_t>(get(tensors, "peep_input")),
          data_or_null<scalar_t>(get(tensors, "peep_forget")),
          data_or_null<scalar_t>(get(tensors, "peep_output")),
          data_or_null<scalar_t>(get(tensors, "depth_cell")),
          data_or_null<scalar_t>(get(tensors, "depth_lower"))};
}

void check_lstm_inputs(const TensorMap& tensors, const LstmLayout& layout) {
  const auto [steps, batch] = sequence_size(tensors);
  const int64_t hidden = layout.hidden, width = layout.gate_width;
  const int64_t recurrent_width = width - (layout.depth_col >= 0 ? hidden : 0);
  const int64_t output = tensors.at("hidden0").size(1);
  std::map<std::string, std::vector<int64_t>> shapes{
      {"weight_hh", {recurrent_width, output}},
      {"hidden0", {batch, output}},
      {"cell0", {batch, hidden}}};
  if (tensors.count("bias")) {
    shapes["bias"] = {width};
  }
  if (tensors.count("weight_hr") || output != hidden) {
    shapes["weight_hr"] = {output, hidden};
  }
  if (layout.state_width > 0) {
    shapes["weight_gr"] = {layout.state_width, layout.state_width};
    shapes["gate_state0"] = {batch, layout.state_width};
  }
  if (layout.depth_col >= 0) {
    shapes["lower"] = {steps, batch, hidden};
    shapes["depth_cell"] = shapes["depth_lower"] = {hidden};
  }
  for (const char* name : {"peep_input", "peep_forget", "peep_output"}) {
    if (tensors.count(name)) {
      shapes[name] = {hidden};
    }
  }
  for (const char* name : {"cell_keep", "hidden_keep"}) {
    if (tensors.count(name)) {
      shapes[name] = {steps, batch, hidden};
    }
  }
  TORCH_CHECK(!layout.zone_hidden || output == hidden,
              "hidden_zoneout: not with a projection (h_t has ", output, " features, c_t ", hidden,
              ")");
  TORCH_CHECK(layout.candidate_col >= 0, "blocks: the candidate block g is required");
  TORCH_CHECK(!tensors.count("peep_input") || layout.input_col >= 0,
              "peep_input: no input gate");
  TORCH_CHECK(!tensors.count("peep_forget") || layout.forget_col >= 0,
              "peep_forget: no forget gate");
  TORCH_CHECK(!tensors.count("peep_output") || layout.output_col >= 0,
              "peep_output: no output gate");
  TORCH_CHECK(!layout.coupled || (layout.forget_col >= 0 && layout.input_col < 0),
              "coupled: needs a forget gate and no input gate block");
  add_input_weight_shape(tensors, width, shapes);
  check_sequence_inputs(tensors, shapes);
}

}  // namespace

TensorMap lstm_forward(const TensorMap& tensors, const LstmOptions& options) {
  const bool tokens_given = token_input(tensors);
  const at::Tensor weight_hh = tensors.at("weight_hh");
  const at::Tensor weight_hr = get(tensors, "weight_hr");
  const at::Tensor weight_gr = get(tensors, "weight_gr");
  const at::Tensor lower = get(tensors, "lower");
  const at::Tensor last_step = tensors.at("last_step");
  const at::Tensor cell0 = tensors.at("cell0");
  const auto [steps, batch] = sequence_size(tensors);
  const int64_t hidden = cell0.size(1);
  LstmLayout layout = make_layout(options, hidden, weight_gr.defined());
  set_zoneout(layout, options, tensors);
  check_lstm_inputs(tensors, layout);
  const at::Tensor cell_keep = get(tensors, "cell_keep");
  const at::Tensor hidden_keep = get(tensors, "hidden_keep");

  // Token inputs: each step gathers its rows of the table as it starts (gather_token_rows).
  at::Tensor gates = tokens_given
                         ? pooled_empty({steps, batch, layout.gate_width}, cell0.options())
                         : project_inputs(tensors.at("inputs"), get(tensors, "weight_ih"),
                                          get(tensors, "bias"));
  at::Tensor cells = pooled_empty({steps + 1, batch, hidden}, cell0.options());
  at::Tensor hiddens = pooled_empty({steps + 1, batch, tensors.at("hidden0").size(1)},
                                    cell0.options());
  cells[0].copy_(cell0);
  hiddens[0].copy_(tensors.at("hidden0"));
  at::Tensor unprojected, gate_states, gate_recurrence;
  if (weight_hr.defined()) {
    unprojected = pooled_empty({steps, batch, hidden}, cell0.options());
  }
  if (weight_gr.defined()) {
    gate_states = pooled_empty({steps + 1, batch, layout.state_width}, cell0.options());
    gate_states[0].copy_(tensors.at("gate_state0"));
    gate_recurrence = at::empty({batch, layout.state_width}, cell0.options());
  }

  const StepProduct recurrent(weight_hh, true, batch);
  std::optional<StepProduct> from_gates, projection;
  if (weight_gr.defined()) {
    from_gates.emplace(weight_gr, true, batch);
  }
  if (weight_hr.defined()) {
    projection.emplace(weight_hr, true, batch);
  }
  const int64_t output_size = hiddens.size(2), state_width = layout.state_width;
  AT_DISPATCH_FLOATING_TYPES(cell0.scalar_type(), "lstm_forward", [&] {
    const LstmVectors<scalar_t> vectors = vectors_of<scalar_t>(tensors);
    const int64_t* tokens = tokens_given ? tensors.at("tokens").data_ptr<int64_t>() : nullptr;
    const scalar_t* table = tokens_given ? tensors.at("token_table").data_ptr<scalar_t>() : nullptr;
    const scalar_t* bias = tokens_given ? data_or_null<scalar_t>(get(tensors, "bias")) : nullptr;
    scalar_t* gate_recurrence_data = data_or_null<scalar_t>(gate_recurrence);
    LstmForwardStep<scalar_t> step{};
    step.gate_recurrence = gate_recurrence_data;
    step.last_step = last_step.data_ptr<int64_t>();
    step.batch = batch;
    for (int64_t t = 0; t < steps; ++t) {
      step.gates = step_or_null<scalar_t>(gates, t);
      if (tokens_given) {
        gather_token_rows(step.gates, tokens + t * batch, table, bias, batch, layout.gate_width);
      }
      recurrent(step.gates, layout.gate_width, step_or_null<scalar_t>(hiddens, t), output_size,
                true);
      if (from_gates) {
        (*from_gates)(gate_recurrence_data, state_width, step_or_null<scalar_t>(gate_states, t),
                      state_width, false);
      }
      step.cell_prev = step_or_null<scalar_t>(cells, t);
      step.lower = step_or_null<scalar_t>(lower, t);
      step.cell = step_or_null<scalar_t>(cells, t + 1);
      step.hidden = projection ? step_or_null<scalar_t>(unprojected, t)
                               : step_or_null<scalar_t>(hiddens, t + 1);
      step.gate_state = step_or_null<scalar_t>(gate_states, t + 1);
      step.hidden_prev = step_or_null<scalar_t>(hiddens, t);
      step.cell_keep = step_or_null<scalar_t>(cell_keep, t);
      step.hidden_keep = step_or_null<scalar_t>(hidden_keep, t);
      step.step = t;
      for_column_ranges(batch, hidden, [&](int64_t begin, int64_t end) {
        lstm_forward_step(layout, vectors, step, begin, end);
      });
      if (projection) {
        (*projection)(step_or_null<scalar_t>(hiddens, t + 1), output_size, step.hidden, hidden,
                      false);
      }
    }
  });

  TensorMap outputs{{"gates", gates}, {"cells", cells}, {"hiddens", hiddens}};
  if (unprojected.defined()) {
    outputs["unprojected"] = unprojected;
  }
  if (gate_states.defined()) {
    outputs["gate_states"] = gate_states;
  }
  return outputs;
}

TensorMap lstm_backward(const TensorMap& saved, const TensorMap& grads, bool input_grad,
                        const LstmOptions& options) {
  const bool tokens_given = token_input(saved);
  const at::Tensor weight_hh = saved.at("weight_hh");
  const at::Tensor weight_hr = get(saved, "weight_hr");
  const at::Tensor weight_gr = get(saved, "weight_gr");
  const at::Tensor gates = saved.at("gates");
  const at::Tensor cells = saved.at("cells");
  const at::Tensor hiddens = saved.at("hiddens");
  const at::Tensor unprojected = get(saved, "unprojected");
  const at::Tensor gate_states = get(saved, "gate_states");
  const at::Tensor lower = get(saved, "lower");
  const at::Tensor last_step = saved.at("last_step");
  const at::Tensor grad_hiddens = get(grads, "hiddens");
  const at::Tensor grad_cells = get(grads, "cells");
  const at::Tensor grad_gates = get(grads, "gates");
  const at::Tensor grad_gate_states = get(grads, "gate_states");
  const auto [steps, batch] = sequence_size(saved);
  const int64_t hidden = cells.size(2);
  const int64_t recurrent_width = weight_hh.size(0);
  LstmLayout layout = make_layout(options, hidden, weight_gr.defined());
  set_zoneout(layout, options, saved);
  const at::Tensor cell_keep = get(saved, "cell_keep");
  const at::Tensor hidden_keep = get(saved, "hidden_keep");
  const auto zeros = [&](at::IntArrayRef shape) { return at::zeros(shape, cells.options()); };

  at::Tensor grad_pre = pooled_empty(gates.sizes(), gates.options());
  at::Tensor grad_hidden = zeros({batch, hiddens.size(2)});  // dL/dh_t from steps > t
  at::Tensor grad_cell = zeros({batch, hidden});
  at::Tensor grad_projected, grad_unprojected, grad_pre_state, grad_gate_state, grad_lower;
  if (weight_hr.defined()) {
    grad_projected = pooled_empty({steps, batch, hiddens.size(2)}, cells.options());
    grad_unprojected = at::empty({batch, hidden}, cells.options());
  }
  if (weight_gr.defined()) {
    grad_pre_state = pooled_empty({steps, batch, layout.state_width}, cells.options());
    grad_gate_state = zeros({batch, layout.state_width});
  }
  if (lower.defined()) {
    grad_lower = pooled_empty(lower.sizes(), lower.options());
  }
  TensorMap result;
  for (const char* name : {"peep_input", "peep_forget", "peep_output", "depth_cell",
                           "depth_lower"}) {
    if (saved.count(name)) {
      result[name] = zeros({hidden});
    }
  }

  const StepProduct recurrent(weight_hh, false, batch);
  std::optional<StepProduct> from_gates, projection;
  if (weight_gr.defined()) {
    from_gates.emplace(weight_gr, false, batch);
  }
  if (weight_hr.defined()) {
    projection.emplace(weight_hr, false, batch);
  }
  const int64_t output_size = hiddens.size(2), state_width = layout.state_width;
  at::Tensor grad_table;  // token inputs: dL/d(token_table), summed step by step
  if (tokens_given) {
    grad_table = zeros(saved.at("token_table").sizes());
  }
  AT_DISPATCH_FLOATING_TYPES(cells.scalar_type(), "lstm_backward", [&] {
    const LstmVectors<scalar_t> vectors = vectors_of<scalar_t>(saved);
    const int64_t* tokens = tokens_given ? saved.at("tokens").data_ptr<int64_t>() : nullptr;
    scalar_t* grad_hidden_data = grad_hidden.data_ptr<scalar_t>();
    scalar_t* grad_unprojected_data = data_or_null<scalar_t>(grad_unprojected);
    scalar_t* grad_gate_state_data = data_or_null<scalar_t>(grad_gate_state);
    LstmBackwardStep<scalar_t> step{};
    step.grad_hidden = projection ? grad_unprojected_data : grad_hidden_data;
    step.grad_gate_state = grad_gate_state_data;
    step.grad_cell = grad_cell.data_ptr<scalar_t>();
    step.grad_peep_input = data_or_null<scalar_t>(get(result, "peep_input"));
    step.grad_peep_forget = data_or_null<scalar_t>(get(result, "peep_forget"));
    step.grad_peep_output = data_or_null<scalar_t>(get(result, "peep_output"));
    step.grad_depth_cell = data_or_null<scalar_t>(get(result, "depth_cell"));
    step.grad_depth_lower = data_or_null<scalar_t>(get(result, "depth_lower"));
    step.last_step = last_step.data_ptr<int64_t>();
    step.batch = batch;
    for (int64_t t = steps - 1; t >= 0; --t) {
      if (projection) {  // dL/dh_t, then through h_t = m_t W_hr^T to dL/dm_t
        scalar_t* grad_projected_t = step_or_null<scalar_t>(grad_projected, t);
        add_active_rows(grad_projected_t, grad_hidden_data,
                        step_or_null<scalar_t>(grad_hiddens, t + 1), step.last_step, t, batch,
                        output_size);
        (*projection)(grad_unprojected_data, hidden, grad_projected_t, output_size, false);
      } else {
        step.grad_hidden_extra = step_or_null<scalar_t>(grad_hiddens, t + 1);
      }
      if (from_gates && grad_gate_states.defined()) {
        grad_gate_state.add_(grad_gate_states[t + 1]);
      }
      step.gates = step_or_null<scalar_t>(gates, t);
      step.cell_prev = step_or_null<scalar_t>(cells, t);
      step.cell = step_or_null<scalar_t>(cells, t + 1);
      step.lower = step_or_null<scalar_t>(lower, t);
      step.grad_cell_extra = step_or_null<scalar_t>(grad_cells, t + 1);
      step.grad_gates_extra = step_or_null<scalar_t>(grad_gates, t);
      step.grad_pre = step_or_null<scalar_t>(grad_pre, t);
      step.grad_pre_state = step_or_null<scalar_t>(grad_pre_state, t);
      step.grad_lower = step_or_null<scalar_t>(grad_lower, t);
      step.cell_keep = step_or_null<scalar_t>(cell_keep, t);
      step.hidden_keep = step_or_null<scalar_t>(hidden_keep, t);
      step.step = t;
      for_column_ranges(batch, hidden, [&](int64_t begin, int64_t end) {
        lstm_backward_step(layout, vectors, step, begin, end);
      });
      if (tokens_given) {
        scatter_token_rows(grad_table.data_ptr<scalar_t>(), tokens + t * batch, step.grad_pre,
                           batch, layout.gate_width);
      }
      // With hidden zoneout the step left k' dL/dh_t there: the product adds to it.
      recurrent(grad_hidden_data, output_size, step.grad_pre, layout.gate_width,
                layout.zone_hidden);
      if (from_gates) {
        (*from_gates)(grad_gate_state_data, state_width, step.grad_pre_state, state_width, false);
      }
    }
  });

  const at::Tensor grad_operand = product_operand(grad_pre);
  if (tokens_given) {
    result["token_table"] = grad_table;
    if (saved.count("bias")) {
      result["bias"] = grad_table.sum(0);
    }
  } else {
    input_gradients(grad_pre, grad_operand, saved.at("inputs"), get(saved, "weight_ih"),
                    saved.count("bias") > 0, input_grad, result);
  }
  result["weight_hh"] = weight_gradient(grad_operand.narrow(2, 0, recurrent_width),
                                        hiddens.narrow(0, 0, steps));
  result["hidden0"] = initial_gradient(grad_hidden, grad_hiddens);
  result["cell0"] = initial_gradient(grad_cell, grad_cells);
  if (weight_hr.defined()) {
    result["weight_hr"] = weight_gradient(grad_projected, unprojected);
  }
  if (weight_gr.defined()) {
    result["weight_gr"] = weight_gradient(grad_pre_state, gate_states.narrow(0, 0, steps));
    result["gate_state0"] = initial_gradient(grad_gate_state, grad_gate_states);
  }
  if (lower.defined()) {
    result["lower"] = grad_lower;
  }
  return result;
}

}  // namespace rnnkit
