// The sequence functions of each fused cell family, called from Python (see bindings.cpp).
//
// forward(tensors, options) takes the named inputs of one layer and direction and returns the
// named buffers that are both the results and what backward needs; backward(saved, grads,
// input_grad, options) takes those (inputs and results together) and the gradients of the
// results that reached them (absent when unused) and returns the gradient of every
// differentiable input (of `inputs` only if input_grad).
//
// Inputs (T steps, B sequences, I features, H hidden units, P = H or the projection size):
//   inputs (T, B, I); last_step (B) int64: the last step inside each sequence;
//   weight_ih (rows, I), weight_hh, bias (rows) = b_ih + b_hh (absent without bias);
//   hidden0 (B, P) and, per family, the other initial states.
// Results: hiddens (T + 1, B, P) = [h_0, h_1, ..., h_T] with h_t zero after its sequence's end
// (so hiddens[1:] is the output and hiddens[last_step + 1] the final state), and per family the
// traces and the other states, laid out the same way.
#pragma once

#include <string>

#include "recurrence.h"

namespace rnnkit {

struct LstmOptions {
  std::string blocks;  // the gate rows present, a subset of "ifgo" in order, then "d" if depth
  bool coupled;
  bool input_activation;
  bool output_activation;
  double cell_zoneout;    // zoneout rates where no masks are given (see LstmLayout)
  double hidden_zoneout;
};

// Extra inputs: cell0 (B, H); weight_hr (P, H); weight_gr and gate_state0 (B, n H) with full
// gate recurrence; peep_input, peep_forget, peep_output (H); with the depth gate depth_cell,
// depth_lower (H) and lower (T, B, H). Results: gates (T, B, blocks * H) activations, cells
// (T + 1, B, H), unprojected (T, B, H) (o * act(c), with a projection), gate_states
// (T + 1, B, n H) (with full gate recurrence). Zoneout: masks cell_keep and hidden_keep
// (T, B, H) of 0s and 1s where given (training), else the options' rates (0: none).
TensorMap lstm_forward(const TensorMap& tensors, const LstmOptions& options);
TensorMap lstm_backward(const TensorMap& saved, const TensorMap& grads, bool input_grad,
                        const LstmOptions& options);

// GRU with reset_after=False (Cho et al.). Results: gates (T, B, 3H) activations r, z, n;
// reset_hiddens (T, B, H) = r_t * h_{t-1}.
TensorMap gru_forward(const TensorMap& tensors);
TensorMap gru_backward(const TensorMap& saved, const TensorMap& grads, bool input_grad);

// GRU with reset_after=True (torch's). Extra input: candidate_bias (H) = b_hn (absent without
// bias); `bias` then holds b_ih + b_hh for r, z and b_in for n. Results: gates (T, B, 3H)
// activations r, z, n; candidate_hiddens (T, B, H) = W_hn h_{t-1} + b_hn.
TensorMap gru_after_forward(const TensorMap& tensors);
TensorMap gru_after_backward(const TensorMap& saved, const TensorMap& grads, bool input_grad);

struct ElmanOptions {
  bool relu;           // else tanh
  int64_t start_step;  // the clock's value at step 0
};

// Elman and Clockwork RNN. Extra inputs: module_begin (modules + 1) and module_period (modules)
// int64, the Clockwork modules (one module of period 1 for Elman); weight_hh already masked.
TensorMap elman_forward(const TensorMap& tensors, const ElmanOptions& options);
TensorMap elman_backward(const TensorMap& saved, const TensorMap& grads, bool input_grad,
                         const ElmanOptions& options);

// minGRU and minLSTM (no recurrent weight). Results: outputs (T, B, H) = [h_1, ..., h_T] in place
// of hiddens (see minimal.cpp), and gates (T, B, 2H) = [z, pre-activation of h~] for minGRU,
// (T, B, 3H) = the pre-activations of f, i, h~ for minLSTM.
TensorMap mingru_forward(const TensorMap& tensors);
TensorMap mingru_backward(const TensorMap& saved, const TensorMap& grads, bool input_grad);
TensorMap minlstm_forward(const TensorMap& tensors);
TensorMap minlstm_backward(const TensorMap& saved, const TensorMap& grads, bool input_grad);

}  // namespace rnnkit
