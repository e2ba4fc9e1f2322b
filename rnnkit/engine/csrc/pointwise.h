// The pointwise part of one time step of each cell, forward and backward, on raw memory.
//
// A step's matrix products are done by the caller (see lstm.cpp, gru.cpp, elman.cpp); these
// kernels do everything elementwise in between, for rows 0..batch-1 and the hidden units
// [col_begin, col_end) so that threads can split a step by columns. All row-major (B, width)
// buffers hold one row per sequence. A row b is inside its sequence at step t while
// t <= last_step[b]; after that the forward kernels write zeros (outputs, traces, states: the
// caller reads the final state at each row's own last step) and the backward kernels write zero
// gradients, so padding never reaches a matrix product's result.
#pragma once

#include <cstdint>

namespace rnnkit {

// Column offsets inside the LSTM's rows; -1 where a switch removes the block.
struct LstmLayout {
  int64_t hidden;          // H
  int64_t gate_width;      // row length of the gate buffer: (number of input blocks) * H
  int64_t input_col;       // blocks in torch's order i, f, g, o, then the depth gate d
  int64_t forget_col;
  int64_t candidate_col;
  int64_t output_col;
  int64_t depth_col;
  int64_t state_width;     // full gate recurrence: row length of a = (gates present) * H, else 0
  int64_t input_state_col;  // offsets of i, f, o inside a (-1 if absent or no recurrence)
  int64_t forget_state_col;
  int64_t output_state_col;
  bool coupled;            // i = 1 - f
  bool input_activation;   // g = tanh(pre_g), else g = pre_g
  bool output_activation;  // h = o * tanh(c), else h = o * c
  // Zoneout (Krueger et al. 2017): c_t = k c_{t-1} + (1 - k) c~_t with c~_t the cell the gates
  // make, and h_t = k' h_{t-1} + (1 - k') o_t act(c~_t); k, k' are the steps' keep masks
  // (cell_keep, hidden_keep) where given, else the rates below (their expectation).
  bool zone_cell;
  bool zone_hidden;        // only without a projection
  double cell_zoneout;
  double hidden_zoneout;
};

// Per-unit weights of the LSTM's pointwise part, (H) each; null where absent.
template <typename scalar_t>
struct LstmVectors {
  const scalar_t* peep_input;
  const scalar_t* peep_forget;
  const scalar_t* peep_output;
  const scalar_t* depth_cell;   // w_cd of the depth gate
  const scalar_t* depth_lower;  // w_ld of the depth gate
};

template <typename scalar_t>
struct LstmForwardStep {
  scalar_t* gates;                  // (B, gate_width) pre-activations in, activations out
  const scalar_t* gate_recurrence;  // (B, state_width) W_gr a_{t-1}, or null
  const scalar_t* cell_prev;        // (B, H) c_{t-1}
  const scalar_t* lower;            // (B, H) cell of the layer below at t, or null
  scalar_t* cell;                   // (B, H) out: c_t
  scalar_t* hidden;                 // (B, H) out: o_t * act(c_t), before any projection
  scalar_t* gate_state;             // (B, state_width) out: a_t, or null
  const scalar_t* hidden_prev;      // (B, H) h_{t-1}, read with zone_hidden
  const scalar_t* cell_keep;        // (B, H) zoneout masks of step t, or null (see LstmLayout)
  const scalar_t* hidden_keep;
  const int64_t* last_step;         // (B)
  int64_t step;
  int64_t batch;
};

template <typename scalar_t>
struct LstmBackwardStep {
  const scalar_t* gates;              // (B, gate_width) activations of step t
  const scalar_t* cell_prev;          // (B, H)
  const scalar_t* cell;               // (B, H)
  const scalar_t* lower;              // (B, H) or null
  scalar_t* grad_hidden;              // (B, H) dL/d(o * act(c)) from the later steps
  const scalar_t* grad_hidden_extra;  // (B, H) added to it (dL/dh_t from outside), or null
  const scalar_t* grad_cell_extra;    // (B, H) dL/dc_t from outside, or null
  const scalar_t* grad_gates_extra;   // (B, gate_width) dL/d(activations) from outside, or null
  const scalar_t* grad_gate_state;    // (B, state_width) dL/da_t, or null
  scalar_t* grad_cell;                // (B, H) in: dL/dc_t from step t+1; out: dL/dc_{t-1}
  // With zone_hidden, grad_hidden is written too: the part k' dL/dh_t that reaches h_{t-1}
  // directly (the caller's product then adds the rest).
  const scalar_t* cell_keep;          // (B, H) zoneout masks of step t, or null (see LstmLayout)
  const scalar_t* hidden_keep;
  scalar_t* grad_pre;                 // (B, gate_width) out: dL/d(pre-activations)
  scalar_t* grad_pre_state;           // (B, state_width) out: the gate part of grad_pre, or null
  scalar_t* grad_lower;               // (B, H) out, or null
  // (H) sums over steps and rows, added to; null where the weight is absent.
  scalar_t* grad_peep_input;
  scalar_t* grad_peep_forget;
  scalar_t* grad_peep_output;
  scalar_t* grad_depth_cell;
  scalar_t* grad_depth_lower;
  const int64_t* last_step;
  int64_t step;
  int64_t batch;
};

void lstm_forward_step(const LstmLayout& layout, const LstmVectors<float>& vectors,
                       const LstmForwardStep<float>& step, int64_t col_begin, int64_t col_end);
void lstm_forward_step(const LstmLayout& layout, const LstmVectors<double>& vectors,
                       const LstmForwardStep<double>& step, int64_t col_begin, int64_t col_end);
void lstm_backward_step(const LstmLayout& layout, const LstmVectors<float>& vectors,
                        const LstmBackwardStep<float>& step, int64_t col_begin, int64_t col_end);
void lstm_backward_step(const LstmLayout& layout, const LstmVectors<double>& vectors,
                        const LstmBackwardStep<double>& step, int64_t col_begin,
                        int64_t col_end);

// GRU in Cho et al.'s form, blocks r, z, n; gate rows are (B, 3H). Forward runs in two halves
// around the product W_hn (r * h_{t-1}); backward in two halves around the product with W_hn.
template <typename scalar_t>
struct GruStep {
  scalar_t* gates;                   // (B, 3H) pre-activations in, activations out
  const scalar_t* hidden_prev;       // (B, H)
  scalar_t* reset_hidden;            // (B, H) forward: out r * h_{t-1}
  scalar_t* hidden;                  // (B, H) forward: out h_t
  const scalar_t* grad_hidden_extra;  // backward: (B, H) dL/dh_t from outside, or null
  const scalar_t* grad_gates_extra;  // backward: (B, 3H) dL/d(activations) from outside, or null
  const scalar_t* grad_reset_hidden;  // backward: (B, H) dL/d(r * h_{t-1})
  scalar_t* grad_pre;                // backward: (B, 3H) out
  scalar_t* grad_hidden;             // backward: (B, H) dL/dh_t in, (part of) dL/dh_{t-1} out
  const int64_t* last_step;
  int64_t step;
  int64_t batch;
  int64_t hidden_size;
};

void gru_forward_gates(const GruStep<float>& step, int64_t col_begin, int64_t col_end);
void gru_forward_gates(const GruStep<double>& step, int64_t col_begin, int64_t col_end);
void gru_forward_output(const GruStep<float>& step, int64_t col_begin, int64_t col_end);
void gru_forward_output(const GruStep<double>& step, int64_t col_begin, int64_t col_end);
void gru_backward_output(const GruStep<float>& step, int64_t col_begin, int64_t col_end);
void gru_backward_output(const GruStep<double>& step, int64_t col_begin, int64_t col_end);
void gru_backward_reset(const GruStep<float>& step, int64_t col_begin, int64_t col_end);
void gru_backward_reset(const GruStep<double>& step, int64_t col_begin, int64_t col_end);

// GRU in torch's form (reset_after=True), blocks r, z, n: the reset gate scales the recurrent
// part of n, n = tanh(W_in x + b_in + r * (W_hn h_{t-1} + b_hn)), so one product per step
// (h_{t-1} W_hh^T into `recurrent`) feeds one pointwise pass, forward and backward.
template <typename scalar_t>
struct GruAfterStep {
  scalar_t* gates;                    // (B, 3H) input pre-activations in, activations out
  const scalar_t* recurrent;          // forward: (B, 3H) h_{t-1} W_hh^T
  const scalar_t* candidate_bias;     // (H) b_hn, or null
  scalar_t* candidate_hidden;         // (B, H) W_hn h_{t-1} + b_hn: out forward, in backward
  const scalar_t* hidden_prev;        // (B, H)
  scalar_t* hidden;                   // forward: (B, H) out h_t
  const scalar_t* grad_hidden_extra;  // backward: (B, H) dL/dh_t from outside, or null
  const scalar_t* grad_gates_extra;   // backward: (B, 3H) dL/d(activations) from outside, or null
  scalar_t* grad_pre;                 // backward: (B, 3H) out, dL/d(input pre-activations)
  scalar_t* grad_recurrent;           // backward: (B, 3H) out, dL/d(h_{t-1} W_hh^T + b_hh)
  scalar_t* grad_hidden;              // backward: (B, H) dL/dh_t in, z * dL/dh_t out
  const int64_t* last_step;
  int64_t step;
  int64_t batch;
  int64_t hidden_size;
};

void gru_after_forward_step(const GruAfterStep<float>& step, int64_t col_begin, int64_t col_end);
void gru_after_forward_step(const GruAfterStep<double>& step, int64_t col_begin,
                            int64_t col_end);
void gru_after_backward_step(const GruAfterStep<float>& step, int64_t col_begin,
                             int64_t col_end);
void gru_after_backward_step(const GruAfterStep<double>& step, int64_t col_begin,
                             int64_t col_end);

// Elman RNN, and the Clockwork RNN whose units form modules [module_begin[k],
// module_begin[k+1]) that update only at steps where clock % module_period[k] == 0 (one module of
// period 1 is Elman); a resting unit keeps its value.
template <typename scalar_t>
struct ElmanStep {
  const scalar_t* pre;                // forward: (B, H) pre-activations
  const scalar_t* hidden_prev;        // forward: (B, H)
  scalar_t* hidden;                   // forward: out; backward: (B, H) h_t
  const scalar_t* grad_hidden_extra;  // backward: (B, H) dL/dh_t from outside, or null
  scalar_t* grad_hidden;              // backward: dL/dh_t from step t+1 in, resting units' out
  scalar_t* grad_pre;                 // backward: (B, H) out
  const int64_t* module_begin;        // (modules + 1)
  const int64_t* module_period;       // (modules)
  int64_t modules;
  int64_t clock;                      // the cell's step index (start_step + t)
  bool relu;                          // else tanh
  const int64_t* last_step;
  int64_t step;
  int64_t batch;
  int64_t hidden_size;
};

void elman_forward_step(const ElmanStep<float>& step, int64_t col_begin, int64_t col_end);
void elman_forward_step(const ElmanStep<double>& step, int64_t col_begin, int64_t col_end);
void elman_backward_step(const ElmanStep<float>& step, int64_t col_begin, int64_t col_end);
void elman_backward_step(const ElmanStep<double>& step, int64_t col_begin, int64_t col_end);

// minGRU, blocks z and h of the input projection (no recurrent product). The gate rows keep
// z_t and the pre-activation of h~_t (not h~_t itself: its derivative depends on the sign of the
// pre-activation, which a rounded h~_t = 0.5 no longer tells).
template <typename scalar_t>
struct MinGruStep {
  scalar_t* gates;                    // (B, 2H) forward: pre-activations in, [z, pre h~] out
  const scalar_t* hidden_prev;        // (B, H)
  scalar_t* hidden;                   // forward: (B, H) out
  const scalar_t* grad_hidden_extra;  // backward: (B, H) dL/dh_t from outside, or null
  const scalar_t* grad_gates_extra;   // backward: (B, 2H) dL/d[z, pre h~] from outside, or null
  scalar_t* grad_hidden;              // backward: dL/dh_t from step t+1 in, dL/dh_{t-1} out
  scalar_t* grad_pre;                 // backward: (B, 2H) out
  const int64_t* last_step;
  int64_t step;
  int64_t batch;
  int64_t hidden_size;
};

void mingru_forward_step(const MinGruStep<float>& step, int64_t col_begin, int64_t col_end);
void mingru_forward_step(const MinGruStep<double>& step, int64_t col_begin, int64_t col_end);
void mingru_backward_step(const MinGruStep<float>& step, int64_t col_begin, int64_t col_end);
void mingru_backward_step(const MinGruStep<double>& step, int64_t col_begin, int64_t col_end);

// minLSTM, blocks f, i, h of the input projection (no recurrent product). The gate rows keep the
// pre-activations; the normalised gates f' = f / (f + i), i' = i / (f + i) and h~ are recomputed
// backward, which costs less than storing them.
template <typename scalar_t>
struct MinLstmStep {
  const scalar_t* gates;              // (B, 3H) pre-activations
  const scalar_t* hidden_prev;        // (B, H)
  scalar_t* hidden;                   // forward: (B, H) out
  const scalar_t* grad_hidden_extra;  // backward: (B, H) dL/dh_t from outside, or null
  const scalar_t* grad_gates_extra;   // backward: (B, 3H) dL/d(pre-activations), or null
  scalar_t* grad_hidden;              // backward: dL/dh_t from step t+1 in, dL/dh_{t-1} out
  scalar_t* grad_pre;                 // backward: (B, 3H) out
  const int64_t* last_step;
  int64_t step;
  int64_t batch;
  int64_t hidden_size;
};

void minlstm_forward_step(const MinLstmStep<float>& step, int64_t col_begin, int64_t col_end);
void minlstm_forward_step(const MinLstmStep<double>& step, int64_t col_begin, int64_t col_end);
void minlstm_backward_step(const MinLstmStep<float>& step, int64_t col_begin, int64_t col_end);
void minlstm_backward_step(const MinLstmStep<double>& step, int64_t col_begin, int64_t col_end);

// dst = a + b on rows inside their sequence, 0 on the others; b may be null. (B, width) each.
void add_active_rows(float* dst, const float* a, const float* b, const int64_t* last_step,
                     int64_t step, int64_t batch, int64_t width);
void add_active_rows(double* dst, const double* a, const double* b, const int64_t* last_step,
                     int64_t step, int64_t batch, int64_t width);

}  // namespace rnnkit
