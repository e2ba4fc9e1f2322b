// Pointwise kernels of every fused cell (declared in pointwise.h).
//
// Each entry point is compiled three times, for x86-64-v4 (AVX-512), x86-64-v3 (AVX2 + FMA) and
// the baseline, and the loader picks the best one the processor runs: the build needs no
// -march flag and its result runs on any x86-64 machine. Other architectures get one build.
#include "pointwise.h"

#include <algorithm>
#include <type_traits>

#include "vector_math.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RNNKIT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RNNKIT_CLONES
#endif

namespace rnnkit {
namespace {

// Calls body(row, col, count) over rows [0, batch) and columns [col_begin, col_end) in chunks of
// one vector; only the last chunk of a row may be shorter, so the full chunks compile to plain
// vector loads and stores.
template <typename scalar_t, typename Body>
RNNKIT_INLINE void for_each_chunk(int64_t batch, int64_t col_begin, int64_t col_end, Body body) {
  constexpr int64_t lanes = Vec<scalar_t>::lanes;
  for (int64_t row = 0; row < batch; ++row) {
    int64_t col = col_begin;
    for (; col + lanes <= col_end; col += lanes) {
      body(row, col, lanes);
    }
    if (col < col_end) {
      body(row, col, col_end - col);
    }
  }
}

// Loads `count` values at source + offset when both the buffer and the block exist, else zeros.
template <typename scalar_t>
RNNKIT_INLINE vec_t<scalar_t> load_block(const scalar_t* source, int64_t offset, int64_t count) {
  return source == nullptr || offset < 0 ? vec_t<scalar_t>{} : load(source + offset, count);
}

template <typename scalar_t>
RNNKIT_INLINE void store_block(scalar_t* target, int64_t offset, vec_t<scalar_t> value,
                               int64_t count) {
  if (target != nullptr && offset >= 0) {
    store(target + offset, value, count);
  }
}

template <typename scalar_t>
RNNKIT_INLINE void accumulate(scalar_t* sums, vec_t<scalar_t> value, int64_t count) {
  if (sums != nullptr) {
    store(sums, load(sums, count) + value, count);
  }
}

// Derivatives of the activations, from their outputs y.
template <typename V>
RNNKIT_INLINE V sigmoid_slope(V y) {
  return y * (1 - y);
}

template <typename V>
RNNKIT_INLINE V tanh_slope(V y) {
  return 1 - y * y;
}

// -- LSTM family ------------------------------------------------------------------------------

// A step's zoneout keep weights at `unit`: the mask's where given, else the rate (LstmLayout).
template <typename scalar_t>
RNNKIT_INLINE vec_t<scalar_t> zoneout_keep(const scalar_t* mask, int64_t unit, double rate,
                                           int64_t n) {
  return mask != nullptr ? load(mask + unit, n) : broadcast(static_cast<scalar_t>(rate));
}

template <typename scalar_t>
RNNKIT_INLINE void lstm_forward(const LstmLayout& layout, const LstmVectors<scalar_t>& vectors,
                                const LstmForwardStep<scalar_t>& s, int64_t col_begin,
                                int64_t col_end) {
  using V = vec_t<scalar_t>;
  const int64_t hidden = layout.hidden;
  const int64_t blocks[] = {layout.input_col, layout.forget_col, layout.candidate_col,
                            layout.output_col, layout.depth_col};
  for_each_chunk<scalar_t>(s.batch, col_begin, col_end, [&](int64_t row, int64_t col,
                                                            int64_t n) RNNKIT_INLINE_LAMBDA {
    scalar_t* gates = s.gates + row * layout.gate_width + col;
    scalar_t* gate_state =
        s.gate_state == nullptr ? nullptr : s.gate_state + row * layout.state_width + col;
    const int64_t unit = row * hidden + col;
    if (s.step > s.last_step[row]) {
      for (int64_t block : blocks) {
        store_block(gates, block, V{}, n);
      }
      store_block(gate_state, layout.input_state_col, V{}, n);
      store_block(gate_state, layout.forget_state_col, V{}, n);
      store_block(gate_state, layout.output_state_col, V{}, n);
      store(s.cell + unit, V{}, n);
      store(s.hidden + unit, V{}, n);
      return;
    }
    const scalar_t* recurrence = s.gate_recurrence == nullptr
                                     ? nullptr
                                     : s.gate_recurrence + row * layout.state_width + col;
    const V cell_prev = load(s.cell_prev + unit, n);
    const V one = broadcast<scalar_t>(1);
    V forget = one;
    V input = one;
    if (layout.forget_col >= 0) {
      V pre = load(gates + layout.forget_col, n)
              + load_block(recurrence, layout.forget_state_col, n);
      if (vectors.peep_forget != nullptr) {
        pre += load(vectors.peep_forget + col, n) * cell_prev;
      }
      forget = sigmoid(pre);
      store(gates + layout.forget_col, forget, n);
    }
    if (layout.coupled) {
      input = one - forget;
    } else if (layout.input_col >= 0) {
      V pre = load(gates + layout.input_col, n)
              + load_block(recurrence, layout.input_state_col, n);
      if (vectors.peep_input != nullptr) {
        pre += load(vectors.peep_input + col, n) * cell_prev;
      }
      input = sigmoid(pre);
      store(gates + layout.input_col, input, n);
    }
    V candidate = load(gates + layout.candidate_col, n);
    if (layout.input_activation) {
      candidate = tanh(candidate);
      store(gates + layout.candidate_col, candidate, n);
    }
    V cell = forget * cell_prev + input * candidate;
    if (layout.depth_col >= 0) {
      const V lower = load(s.lower + unit, n);
      const V depth = sigmoid(load(gates + layout.depth_col, n)
                              + load(vectors.depth_cell + col, n) * cell_prev
                              + load(vectors.depth_lower + col, n) * lower);
      store(gates + layout.depth_col, depth, n);
      cell += depth * lower;
    }
    V output = one;
    if (layout.output_col >= 0) {
      V pre = load(gates + layout.output_col, n)
              + load_block(recurrence, layout.output_state_col, n);
      if (vectors.peep_output != nullptr) {
        pre += load(vectors.peep_output + col, n) * cell;
      }
      output = sigmoid(pre);
      store(gates + layout.output_col, output, n);
    }
    V hidden_value = output * (layout.output_activation ? tanh(cell) : cell);
    // k s_{t-1} + (1 - k) s~_t: exactly s_{t-1} or s~_t where a mask says 1 or 0.
    if (layout.zone_cell) {
      const V keep = zoneout_keep(s.cell_keep, unit, layout.cell_zoneout, n);
      cell = keep * cell_prev + (one - keep) * cell;
    }
    if (layout.zone_hidden) {
      const V keep = zoneout_keep(s.hidden_keep, unit, layout.hidden_zoneout, n);
      hidden_value = keep * load(s.hidden_prev + unit, n) + (one - keep) * hidden_value;
    }
    store(s.cell + unit, cell, n);
    store(s.hidden + unit, hidden_value, n);
    store_block(gate_state, layout.input_state_col, input, n);
    store_block(gate_state, layout.forget_state_col, forget, n);
    store_block(gate_state, layout.output_state_col, output, n);
  });
}

template <typename scalar_t>
RNNKIT_INLINE void lstm_backward(const LstmLayout& layout, const LstmVectors<scalar_t>& vectors,
                                 const LstmBackwardStep<scalar_t>& s, int64_t col_begin,
                                 int64_t col_end) {
  using V = vec_t<scalar_t>;
  const int64_t hidden = layout.hidden;
  const int64_t blocks[] = {layout.input_col, layout.forget_col, layout.candidate_col,
                            layout.output_col, layout.depth_col};
  for_each_chunk<scalar_t>(s.batch, col_begin, col_end, [&](int64_t row, int64_t col,
                                                            int64_t n) RNNKIT_INLINE_LAMBDA {
    scalar_t* grad_pre = s.grad_pre + row * layout.gate_width + col;
    scalar_t* grad_pre_state =
        s.grad_pre_state == nullptr ? nullptr : s.grad_pre_state + row * layout.state_width + col;
    const int64_t unit = row * hidden + col;
    if (s.step > s.last_step[row]) {
      for (int64_t block : blocks) {
        store_block(grad_pre, block, V{}, n);
      }
      store_block(grad_pre_state, layout.input_state_col, V{}, n);
      store_block(grad_pre_state, layout.forget_state_col, V{}, n);
      store_block(grad_pre_state, layout.output_state_col, V{}, n);
      store(s.grad_cell + unit, V{}, n);
      if (s.grad_lower != nullptr) {
        store(s.grad_lower + unit, V{}, n);
      }
      if (layout.zone_hidden) {
        store(s.grad_hidden + unit, V{}, n);
      }
      return;
    }
    const scalar_t* gates = s.gates + row * layout.gate_width + col;
    const scalar_t* grad_gates_extra = s.grad_gates_extra == nullptr
                                           ? nullptr
                                           : s.grad_gates_extra + row * layout.gate_width + col;
    const scalar_t* grad_gate_state = s.grad_gate_state == nullptr
                                          ? nullptr
                                          : s.grad_gate_state + row * layout.state_width + col;
    // dL/d(activation of a gate) reaching it from outside the step: traces and a_t.
    auto outside = [&](int64_t block_col, int64_t state_col) RNNKIT_INLINE_LAMBDA {
      return load_block(grad_gates_extra, block_col, n)
             + load_block(grad_gate_state, state_col, n);
    };
    const V one = broadcast<scalar_t>(1);
    const V cell_prev = load(s.cell_prev + unit, n);
    const V forget = layout.forget_col >= 0 ? load(gates + layout.forget_col, n) : one;
    const V input = layout.coupled ? one - forget
                    : layout.input_col >= 0 ? load(gates + layout.input_col, n)
                                            : one;
    const V candidate = load(gates + layout.candidate_col, n);
    // The cell the gates made, c~_t: the saved c_t unless zoneout mixed c_{t-1} into it.
    V cell = load(s.cell + unit, n);
    if (layout.zone_cell) {
      cell = forget * cell_prev + input * candidate;
      if (layout.depth_col >= 0) {
        cell += load(gates + layout.depth_col, n) * load(s.lower + unit, n);
      }
    }
    const V shown = layout.output_activation ? tanh(cell) : cell;

    V grad_m = load(s.grad_hidden + unit, n) + load_block(s.grad_hidden_extra, unit, n);
    if (layout.zone_hidden) {  // h_t = k' h_{t-1} + (1 - k') o act(c~): k' dL/dh_t to h_{t-1}
      const V kept = zoneout_keep(s.hidden_keep, unit, layout.hidden_zoneout, n) * grad_m;
      store(s.grad_hidden + unit, kept, n);
      grad_m -= kept;
    }
    V grad_cell = load(s.grad_cell + unit, n) + load_block(s.grad_cell_extra, unit, n);
    V grad_cell_kept{};  // zoneout: k dL/dc_t, straight to c_{t-1}
    if (layout.zone_cell) {
      grad_cell_kept = zoneout_keep(s.cell_keep, unit, layout.cell_zoneout, n) * grad_cell;
      grad_cell -= grad_cell_kept;
    }
    if (layout.output_col >= 0) {
      const V output = load(gates + layout.output_col, n);
      const V grad_pre_output =
          (grad_m * shown + outside(layout.output_col, layout.output_state_col))
          * sigmoid_slope(output);
      store(grad_pre + layout.output_col, grad_pre_output, n);
      store_block(grad_pre_state, layout.output_state_col, grad_pre_output, n);
      grad_m = grad_m * output;
      if (vectors.peep_output != nullptr) {
        grad_cell += grad_pre_output * load(vectors.peep_output + col, n);
        accumulate(s.grad_peep_output + col, grad_pre_output * cell, n);
      }
    }
    grad_cell += layout.output_activation ? grad_m * tanh_slope(shown) : grad_m;

    V grad_cell_prev = layout.forget_col >= 0 ? grad_cell * forget : grad_cell;
    if (layout.depth_col >= 0) {
      const V lower = load(s.lower + unit, n);
      const V depth = load(gates + layout.depth_col, n);
      const V grad_pre_depth =
          (grad_cell * lower + outside(layout.depth_col, -1)) * sigmoid_slope(depth);
      store(grad_pre + layout.depth_col, grad_pre_depth, n);
      store(s.grad_lower + unit,
            grad_cell * depth + grad_pre_depth * load(vectors.depth_lower + col, n), n);
      grad_cell_prev += grad_pre_depth * load(vectors.depth_cell + col, n);
      accumulate(s.grad_depth_cell + col, grad_pre_depth * cell_prev, n);
      accumulate(s.grad_depth_lower + col, grad_pre_depth * lower, n);
    }
    const V grad_input = grad_cell * candidate + outside(layout.input_col, layout.input_state_col);
    V grad_candidate = grad_cell * input + outside(layout.candidate_col, -1);
    if (layout.input_activation) {
      grad_candidate = grad_candidate * tanh_slope(candidate);
    }
    store(grad_pre + layout.candidate_col, grad_candidate, n);
    if (layout.forget_col >= 0) {
      V grad_forget = grad_cell * cell_prev + outside(layout.forget_col, layout.forget_state_col);
      if (layout.coupled) {
        grad_forget -= grad_input;
      }
      const V grad_pre_forget = grad_forget * sigmoid_slope(forget);
      store(grad_pre + layout.forget_col, grad_pre_forget, n);
      store_block(grad_pre_state, layout.forget_state_col, grad_pre_forget, n);
      if (vectors.peep_forget != nullptr) {
        grad_cell_prev += grad_pre_forget * load(vectors.peep_forget + col, n);
        accumulate(s.grad_peep_forget + col, grad_pre_forget * cell_prev, n);
      }
    }
    if (layout.input_col >= 0) {
      const V grad_pre_input = grad_input * sigmoid_slope(input);
      store(grad_pre + layout.input_col, grad_pre_input, n);
      store_block(grad_pre_state, layout.input_state_col, grad_pre_input, n);
      if (vectors.peep_input != nullptr) {
        grad_cell_prev += grad_pre_input * load(vectors.peep_input + col, n);
        accumulate(s.grad_peep_input + col, grad_pre_input * cell_prev, n);
      }
    }
    if (layout.zone_cell) {
      grad_cell_prev += grad_cell_kept;
    }
    store(s.grad_cell + unit, grad_cell_prev, n);
  });
}

// -- GRU (Cho et al.) -------------------------------------------------------------------------

template <typename scalar_t>
RNNKIT_INLINE void gru_gates(const GruStep<scalar_t>& s, int64_t col_begin, int64_t col_end) {
  using V = vec_t<scalar_t>;
  const int64_t hidden = s.hidden_size;
  for_each_chunk<scalar_t>(s.batch, col_begin, col_end, [&](int64_t row, int64_t col,
                                                            int64_t n) RNNKIT_INLINE_LAMBDA {
    scalar_t* reset = s.gates + row * 3 * hidden + col;
    scalar_t* update = reset + hidden;
    const int64_t unit = row * hidden + col;
    if (s.step > s.last_step[row]) {
      store(reset, V{}, n);
      store(update, V{}, n);
      store(s.reset_hidden + unit, V{}, n);
      return;
    }
    const V reset_value = sigmoid(load(reset, n));
    store(reset, reset_value, n);
    store(update, sigmoid(load(update, n)), n);
    store(s.reset_hidden + unit, reset_value * load(s.hidden_prev + unit, n), n);
  });
}

template <typename scalar_t>
RNNKIT_INLINE void gru_output(const GruStep<scalar_t>& s, int64_t col_begin, int64_t col_end) {
  using V = vec_t<scalar_t>;
  const int64_t hidden = s.hidden_size;
  for_each_chunk<scalar_t>(s.batch, col_begin, col_end, [&](int64_t row, int64_t col,
                                                            int64_t n) RNNKIT_INLINE_LAMBDA {
    scalar_t* update = s.gates + row * 3 * hidden + hidden + col;
    scalar_t* candidate = update + hidden;
    const int64_t unit = row * hidden + col;
    if (s.step > s.last_step[row]) {
      store(candidate, V{}, n);
      store(s.hidden + unit, V{}, n);
      return;
    }
    const V candidate_value = tanh(load(candidate, n));
    const V update_value = load(update, n);
    store(candidate, candidate_value, n);
    store(s.hidden + unit,
          (1 - update_value) * candidate_value + update_value * load(s.hidden_prev + unit, n), n);
  });
}

// dL/dh_t -> dL/d(pre z), dL/d(pre n), and the direct part z * dL/dh_t of dL/dh_{t-1}.
template <typename scalar_t>
RNNKIT_INLINE void gru_backward_out(const GruStep<scalar_t>& s, int64_t col_begin,
                                    int64_t col_end) {
  using V = vec_t<scalar_t>;
  const int64_t hidden = s.hidden_size;
  for_each_chunk<scalar_t>(s.batch, col_begin, col_end, [&](int64_t row, int64_t col,
                                                            int64_t n) RNNKIT_INLINE_LAMBDA {
    const int64_t gate_row = row * 3 * hidden + col;
    const int64_t unit = row * hidden + col;
    if (s.step > s.last_step[row]) {
      store(s.grad_pre + gate_row, V{}, n);
      store(s.grad_pre + gate_row + hidden, V{}, n);
      store(s.grad_pre + gate_row + 2 * hidden, V{}, n);
      store(s.grad_hidden + unit, V{}, n);
      return;
    }
    const scalar_t* extra =
        s.grad_gates_extra == nullptr ? nullptr : s.grad_gates_extra + gate_row;
    const V update = load(s.gates + gate_row + hidden, n);
    const V candidate = load(s.gates + gate_row + 2 * hidden, n);
    const V hidden_prev = load(s.hidden_prev + unit, n);
    const V grad = load(s.grad_hidden + unit, n) + load_block(s.grad_hidden_extra, unit, n);
    const V grad_update = grad * (hidden_prev - candidate) + load_block(extra, hidden, n);
    const V grad_candidate = grad * (1 - update) + load_block(extra, 2 * hidden, n);
    store(s.grad_pre + gate_row + hidden, grad_update * sigmoid_slope(update), n);
    store(s.grad_pre + gate_row + 2 * hidden, grad_candidate * tanh_slope(candidate), n);
    store(s.grad_hidden + unit, grad * update, n);
  });
}

// dL/d(r * h_{t-1}) -> dL/d(pre r), and adds r * dL/d(r h_{t-1}) to dL/dh_{t-1}.
template <typename scalar_t>
RNNKIT_INLINE void gru_backward_reset_gate(const GruStep<scalar_t>& s, int64_t col_begin,
                                           int64_t col_end) {
  using V = vec_t<scalar_t>;
  const int64_t hidden = s.hidden_size;
  for_each_chunk<scalar_t>(s.batch, col_begin, col_end, [&](int64_t row, int64_t col,
                                                            int64_t n) RNNKIT_INLINE_LAMBDA {
    const int64_t gate_row = row * 3 * hidden + col;
    const int64_t unit = row * hidden + col;
    if (s.step > s.last_step[row]) {
      return;  // gru_backward_out already zeroed this row's gradients
    }
    const V reset = load(s.gates + gate_row, n);
    const V grad_reset_hidden = load(s.grad_reset_hidden + unit, n);
    const V grad_reset = grad_reset_hidden * load(s.hidden_prev + unit, n)
                         + load_block(s.grad_gates_extra, gate_row, n);
    store(s.grad_pre + gate_row, grad_reset * sigmoid_slope(reset), n);
    store(s.grad_hidden + unit, load(s.grad_hidden + unit, n) + grad_reset_hidden * reset, n);
  });
}

// -- GRU (torch's form, reset_after) --------------------------------------------------------

template <typename scalar_t>
RNNKIT_INLINE void gru_after_forward(const GruAfterStep<scalar_t>& s, int64_t col_begin,
                                     int64_t col_end) {
  using V = vec_t<scalar_t>;
  const int64_t hidden = s.hidden_size;
  for_each_chunk<scalar_t>(s.batch, col_begin, col_end, [&](int64_t row, int64_t col,
                                                            int64_t n) RNNKIT_INLINE_LAMBDA {
    scalar_t* gate = s.gates + row * 3 * hidden + col;
    const scalar_t* recurrent = s.recurrent + row * 3 * hidden + col;
    const int64_t unit = row * hidden + col;
    if (s.step > s.last_step[row]) {
      store(gate, V{}, n);
      store(gate + hidden, V{}, n);
      store(gate + 2 * hidden, V{}, n);
      store(s.candidate_hidden + unit, V{}, n);
      store(s.hidden + unit, V{}, n);
      return;
    }
    const V reset = sigmoid(load(gate, n) + load(recurrent, n));
    const V update = sigmoid(load(gate + hidden, n) + load(recurrent + hidden, n));
    const V candidate_hidden =
        load(recurrent + 2 * hidden, n) + load_block(s.candidate_bias, col, n);
    const V candidate = tanh(load(gate + 2 * hidden, n) + reset * candidate_hidden);
    store(gate, reset, n);
    store(gate + hidden, update, n);
    store(gate + 2 * hidden, candidate, n);
    store(s.candidate_hidden + unit, candidate_hidden, n);
    store(s.hidden + unit,
          (1 - update) * candidate + update * load(s.hidden_prev + unit, n), n);
  });
}

template <typename scalar_t>
RNNKIT_INLINE void gru_after_backward(const GruAfterStep<scalar_t>& s, int64_t col_begin,
                                      int64_t col_end) {
  using V = vec_t<scalar_t>;
  const int64_t hidden = s.hidden_size;
  for_each_chunk<scalar_t>(s.batch, col_begin, col_end, [&](int64_t row, int64_t col,
                                                            int64_t n) RNNKIT_INLINE_LAMBDA {
    const int64_t gate_row = row * 3 * hidden + col;
    const int64_t unit = row * hidden + col;
    if (s.step > s.last_step[row]) {
      for (int64_t block = 0; block < 3; ++block) {
        store(s.grad_pre + gate_row + block * hidden, V{}, n);
        store(s.grad_recurrent + gate_row + block * hidden, V{}, n);
      }
      store(s.grad_hidden + unit, V{}, n);
      return;
    }
    const scalar_t* extra =
        s.grad_gates_extra == nullptr ? nullptr : s.grad_gates_extra + gate_row;
    const V reset = load(s.gates + gate_row, n);
    const V update = load(s.gates + gate_row + hidden, n);
    const V candidate = load(s.gates + gate_row + 2 * hidden, n);
    const V grad = load(s.grad_hidden + unit, n) + load_block(s.grad_hidden_extra, unit, n);
    const V grad_update_pre = (grad * (load(s.hidden_prev + unit, n) - candidate)
                               + load_block(extra, hidden, n)) * sigmoid_slope(update);
    const V grad_candidate_pre =
        (grad * (1 - update) + load_block(extra, 2 * hidden, n)) * tanh_slope(candidate);
    const V grad_reset_pre = (grad_candidate_pre * load(s.candidate_hidden + unit, n)
                              + load_block(extra, 0, n)) * sigmoid_slope(reset);
    store(s.grad_pre + gate_row, grad_reset_pre, n);
    store(s.grad_pre + gate_row + hidden, grad_update_pre, n);
    store(s.grad_pre + gate_row + 2 * hidden, grad_candidate_pre, n);
    store(s.grad_recurrent + gate_row, grad_reset_pre, n);
    store(s.grad_recurrent + gate_row + hidden, grad_update_pre, n);
    store(s.grad_recurrent + gate_row + 2 * hidden, grad_candidate_pre * reset, n);
    store(s.grad_hidden + unit, grad * update, n);
  });
}

// -- Elman and Clockwork RNN ------------------------------------------------------------------

// Calls body(row, col, n, ticking) over the column range split at module boundaries; ticking
// says whether the chunk's module updates at this step.
template <typename scalar_t, typename Body>
RNNKIT_INLINE void for_each_module_chunk(const ElmanStep<scalar_t>& s, int64_t col_begin,
                                         int64_t col_end, Body body) {
  for (int64_t module = 0; module < s.modules; ++module) {
    const int64_t begin = std::max(col_begin, s.module_begin[module]);
    const int64_t end = std::min(col_end, s.module_begin[module + 1]);
    if (begin >= end) {
      continue;
    }
    const bool ticking = s.clock % s.module_period[module] == 0;
    for_each_chunk<scalar_t>(s.batch, begin, end, [&](int64_t row, int64_t col, int64_t n) RNNKIT_INLINE_LAMBDA {
      body(row, col, n, ticking);
    });
  }
}

template <typename scalar_t>
RNNKIT_INLINE void elman_forward(const ElmanStep<scalar_t>& s, int64_t col_begin,
                                 int64_t col_end) {
  using V = vec_t<scalar_t>;
  for_each_module_chunk(s, col_begin, col_end, [&](int64_t row, int64_t col, int64_t n,
                                                   bool ticking) RNNKIT_INLINE_LAMBDA {
    const int64_t unit = row * s.hidden_size + col;
    V value{};
    if (s.step <= s.last_step[row]) {
      if (!ticking) {
        value = load(s.hidden_prev + unit, n);
      } else if (s.relu) {
        value = relu(load(s.pre + unit, n));
      } else {
        value = tanh(load(s.pre + unit, n));
      }
    }
    store(s.hidden + unit, value, n);
  });
}

template <typename scalar_t>
RNNKIT_INLINE void elman_backward(const ElmanStep<scalar_t>& s, int64_t col_begin,
                                  int64_t col_end) {
  using V = vec_t<scalar_t>;
  for_each_module_chunk(s, col_begin, col_end, [&](int64_t row, int64_t col, int64_t n,
                                                   bool ticking) RNNKIT_INLINE_LAMBDA {
    const int64_t unit = row * s.hidden_size + col;
    if (s.step > s.last_step[row]) {
      store(s.grad_pre + unit, V{}, n);
      store(s.grad_hidden + unit, V{}, n);
      return;
    }
    const V grad = load(s.grad_hidden + unit, n) + load_block(s.grad_hidden_extra, unit, n);
    if (!ticking) {  // h_t = h_{t-1}: the gradient passes through unchanged
      store(s.grad_pre + unit, V{}, n);
      store(s.grad_hidden + unit, grad, n);
      return;
    }
    const V hidden = load(s.hidden + unit, n);
    store(s.grad_pre + unit, grad * (s.relu ? relu_slope(hidden) : tanh_slope(hidden)), n);
    store(s.grad_hidden + unit, V{}, n);
  });
}

// -- minGRU ----------------------------------------------------------------------------------

// The paper's g(x) = x + 1/2 for x >= 0, sigmoid(x) below, and its derivative.
template <typename V>
RNNKIT_INLINE V positive(V x) {
  using scalar_t = std::remove_reference_t<decltype(x[0])>;
  return x >= 0 ? x + scalar_t(0.5) : sigmoid(x);
}

template <typename V>
RNNKIT_INLINE V positive_slope(V x, V g) {
  return x >= 0 ? V{} + 1 : sigmoid_slope(g);
}

template <typename scalar_t>
RNNKIT_INLINE void mingru_forward(const MinGruStep<scalar_t>& s, int64_t col_begin,
                                  int64_t col_end) {
  using V = vec_t<scalar_t>;
  const int64_t hidden = s.hidden_size;
  for_each_chunk<scalar_t>(s.batch, col_begin, col_end, [&](int64_t row, int64_t col,
                                                            int64_t n) RNNKIT_INLINE_LAMBDA {
    scalar_t* update = s.gates + row * 2 * hidden + col;
    scalar_t* candidate_pre = update + hidden;
    const int64_t unit = row * hidden + col;
    if (s.step > s.last_step[row]) {
      store(update, V{}, n);
      store(candidate_pre, V{}, n);
      store(s.hidden + unit, V{}, n);
      return;
    }
    const V update_value = sigmoid(load(update, n));
    const V candidate = positive(load(candidate_pre, n));
    store(update, update_value, n);
    store(s.hidden + unit,
          (1 - update_value) * load(s.hidden_prev + unit, n) + update_value * candidate, n);
  });
}

template <typename scalar_t>
RNNKIT_INLINE void mingru_backward(const MinGruStep<scalar_t>& s, int64_t col_begin,
                                   int64_t col_end) {
  using V = vec_t<scalar_t>;
  const int64_t hidden = s.hidden_size;
  for_each_chunk<scalar_t>(s.batch, col_begin, col_end, [&](int64_t row, int64_t col,
                                                            int64_t n) RNNKIT_INLINE_LAMBDA {
    const int64_t gate_row = row * 2 * hidden + col;
    const int64_t unit = row * hidden + col;
    if (s.step > s.last_step[row]) {
      store(s.grad_pre + gate_row, V{}, n);
      store(s.grad_pre + gate_row + hidden, V{}, n);
      store(s.grad_hidden + unit, V{}, n);
      return;
    }
    const scalar_t* extra =
        s.grad_gates_extra == nullptr ? nullptr : s.grad_gates_extra + gate_row;
    const V update = load(s.gates + gate_row, n);
    const V candidate_pre = load(s.gates + gate_row + hidden, n);
    const V candidate = positive(candidate_pre);
    const V grad = load(s.grad_hidden + unit, n) + load_block(s.grad_hidden_extra, unit, n);
    const V grad_update = grad * (candidate - load(s.hidden_prev + unit, n))
                          + load_block(extra, 0, n);
    store(s.grad_pre + gate_row, grad_update * sigmoid_slope(update), n);
    store(s.grad_pre + gate_row + hidden,
          grad * update * positive_slope(candidate_pre, candidate) + load_block(extra, hidden, n),
          n);
    store(s.grad_hidden + unit, grad * (1 - update), n);
  });
}

// -- minLSTM ---------------------------------------------------------------------------------

// diff = log i - log f = softplus(-pre f) - softplus(-pre i), so that f' = sigmoid(-diff) and
// i' = sigmoid(diff), as MinLSTMMath computes them in log space.
template <typename V>
RNNKIT_INLINE V log_gate_ratio(V forget_pre, V input_pre) {
  return softplus(-forget_pre) - softplus(-input_pre);
}

template <typename scalar_t>
RNNKIT_INLINE void minlstm_forward(const MinLstmStep<scalar_t>& s, int64_t col_begin,
                                   int64_t col_end) {
  using V = vec_t<scalar_t>;
  const int64_t hidden = s.hidden_size;
  for_each_chunk<scalar_t>(s.batch, col_begin, col_end, [&](int64_t row, int64_t col,
                                                            int64_t n) RNNKIT_INLINE_LAMBDA {
    const scalar_t* gates = s.gates + row * 3 * hidden + col;
    const int64_t unit = row * hidden + col;
    if (s.step > s.last_step[row]) {
      store(s.hidden + unit, V{}, n);
      return;
    }
    const V diff = log_gate_ratio(load(gates, n), load(gates + hidden, n));
    const V candidate = positive(load(gates + 2 * hidden, n));
    store(s.hidden + unit,
          sigmoid(-diff) * load(s.hidden_prev + unit, n) + sigmoid(diff) * candidate, n);
  });
}

template <typename scalar_t>
RNNKIT_INLINE void minlstm_backward(const MinLstmStep<scalar_t>& s, int64_t col_begin,
                                    int64_t col_end) {
  using V = vec_t<scalar_t>;
  const int64_t hidden = s.hidden_size;
  for_each_chunk<scalar_t>(s.batch, col_begin, col_end, [&](int64_t row, int64_t col,
                                                            int64_t n) RNNKIT_INLINE_LAMBDA {
    const int64_t gate_row = row * 3 * hidden + col;
    const int64_t unit = row * hidden + col;
    scalar_t* grad_pre = s.grad_pre + gate_row;
    if (s.step > s.last_step[row]) {
      store(grad_pre, V{}, n);
      store(grad_pre + hidden, V{}, n);
      store(grad_pre + 2 * hidden, V{}, n);
      store(s.grad_hidden + unit, V{}, n);
      return;
    }
    const scalar_t* extra =
        s.grad_gates_extra == nullptr ? nullptr : s.grad_gates_extra + gate_row;
    const V forget_pre = load(s.gates + gate_row, n);
    const V input_pre = load(s.gates + gate_row + hidden, n);
    const V candidate_pre = load(s.gates + gate_row + 2 * hidden, n);
    const V diff = log_gate_ratio(forget_pre, input_pre);
    const V forget = sigmoid(-diff), input = sigmoid(diff);
    const V candidate = positive(candidate_pre);
    const V grad = load(s.grad_hidden + unit, n) + load_block(s.grad_hidden_extra, unit, n);
    // d(diff) from f' = sigmoid(-diff), i' = sigmoid(diff): both slopes equal f' i'.
    const V grad_diff = grad * (candidate - load(s.hidden_prev + unit, n)) * forget * input;
    store(grad_pre, load_block(extra, 0, n) - grad_diff * sigmoid(-forget_pre), n);
    store(grad_pre + hidden, load_block(extra, hidden, n) + grad_diff * sigmoid(-input_pre), n);
    store(grad_pre + 2 * hidden,
          load_block(extra, 2 * hidden, n)
              + grad * input * positive_slope(candidate_pre, candidate), n);
    store(s.grad_hidden + unit, grad * forget, n);
  });
}

template <typename scalar_t>
RNNKIT_INLINE void add_rows(scalar_t* dst, const scalar_t* a, const scalar_t* b,
                            const int64_t* last_step, int64_t step, int64_t batch,
                            int64_t width) {
  using V = vec_t<scalar_t>;
  for_each_chunk<scalar_t>(batch, 0, width, [&](int64_t row, int64_t col, int64_t n) RNNKIT_INLINE_LAMBDA {
    const int64_t at = row * width + col;
    V value{};
    if (step <= last_step[row]) {
      value = load(a + at, n) + load_block(b, at, n);
    }
    store(dst + at, value, n);
  });
}

}  // namespace

// One cloned entry point per kernel and type; the templates above are inlined into each clone.
#define RNNKIT_DEFINE_FOR(scalar_t)                                                              \
  RNNKIT_CLONES void lstm_forward_step(const LstmLayout& layout,                                 \
                                       const LstmVectors<scalar_t>& vectors,                     \
                                       const LstmForwardStep<scalar_t>& step, int64_t col_begin, \
                                       int64_t col_end) {                                        \
    lstm_forward(layout, vectors, step, col_begin, col_end);                                     \
  }                                                                                              \
  RNNKIT_CLONES void lstm_backward_step(const LstmLayout& layout,                                \
                                        const LstmVectors<scalar_t>& vectors,                    \
                                        const LstmBackwardStep<scalar_t>& step,                  \
                                        int64_t col_begin, int64_t col_end) {                    \
    lstm_backward(layout, vectors, step, col_begin, col_end);                                    \
  }                                                                                              \
  RNNKIT_CLONES void gru_forward_gates(const GruStep<scalar_t>& step, int64_t col_begin,         \
                                       int64_t col_end) {                                        \
    gru_gates(step, col_begin, col_end);                                                         \
  }                                                                                              \
  RNNKIT_CLONES void gru_forward_output(const GruStep<scalar_t>& step, int64_t col_begin,        \
                                        int64_t col_end) {                                       \
    gru_output(step, col_begin, col_end);                                                        \
  }                                                                                              \
  RNNKIT_CLONES void gru_backward_output(const GruStep<scalar_t>& step, int64_t col_begin,       \
                                         int64_t col_end) {                                      \
    gru_backward_out(step, col_begin, col_end);                                                  \
  }                                                                                              \
  RNNKIT_CLONES void gru_backward_reset(const GruStep<scalar_t>& step, int64_t col_begin,        \
                                        int64_t col_end) {                                       \
    gru_backward_reset_gate(step, col_begin, col_end);                                           \
  }                                                                                              \
  RNNKIT_CLONES void gru_after_forward_step(const GruAfterStep<scalar_t>& step,                  \
                                            int64_t col_begin, int64_t col_end) {                \
    gru_after_forward(step, col_begin, col_end);                                                 \
  }                                                                                              \
  RNNKIT_CLONES void gru_after_backward_step(const GruAfterStep<scalar_t>& step,                 \
                                             int64_t col_begin, int64_t col_end) {               \
    gru_after_backward(step, col_begin, col_end);                                                \
  }                                                                                              \
  RNNKIT_CLONES void elman_forward_step(const ElmanStep<scalar_t>& step, int64_t col_begin,      \
                                        int64_t col_end) {                                       \
    elman_forward(step, col_begin, col_end);                                                     \
  }                                                                                              \
  RNNKIT_CLONES void elman_backward_step(const ElmanStep<scalar_t>& step, int64_t col_begin,     \
                                         int64_t col_end) {                                      \
    elman_backward(step, col_begin, col_end);                                                    \
  }                                                                                              \
  RNNKIT_CLONES void mingru_forward_step(const MinGruStep<scalar_t>& step, int64_t col_begin,    \
                                         int64_t col_end) {                                      \
    mingru_forward(step, col_begin, col_end);                                                    \
  }                                                                                              \
  RNNKIT_CLONES void mingru_backward_step(const MinGruStep<scalar_t>& step, int64_t col_begin,   \
                                          int64_t col_end) {                                     \
    mingru_backward(step, col_begin, col_end);                                                   \
  }                                                                                              \
  RNNKIT_CLONES void minlstm_forward_step(const MinLstmStep<scalar_t>& step, int64_t col_begin,  \
                                          int64_t col_end) {                                     \
    minlstm_forward(step, col_begin, col_end);                                                   \
  }                                                                                              \
  RNNKIT_CLONES void minlstm_backward_step(const MinLstmStep<scalar_t>& step,                    \
                                           int64_t col_begin, int64_t col_end) {                 \
    minlstm_backward(step, col_begin, col_end);                                                  \
  }                                                                                              \
  RNNKIT_CLONES void add_active_rows(scalar_t* dst, const scalar_t* a, const scalar_t* b,        \
                                     const int64_t* last_step, int64_t step, int64_t batch,      \
                                     int64_t width) {                                            \
    add_rows(dst, a, b, last_step, step, batch, width);                                          \
  }

RNNKIT_DEFINE_FOR(float)
RNNKIT_DEFINE_FOR(double)

}  // namespace rnnkit
