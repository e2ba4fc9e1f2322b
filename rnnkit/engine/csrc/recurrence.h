// What the sequence loops of every fused cell family share (lstm.cpp, gru.cpp, elman.cpp,
// minimal.cpp; their entry points are in cells.h).
//
// Shapes: T steps, B sequences, I input features, H hidden units. Per step, the loops call matrix
// products on rows of preallocated buffers (StepProduct) and pointwise kernels (pointwise.h);
// they allocate nothing inside the time loop.
#pragma once

// Only the operators used, not ATen/ATen.h: a third of the compile time.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/add.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gemm.h"

namespace rnnkit {

using TensorMap = std::map<std::string, at::Tensor>;

// The tensor called `name`, or an undefined tensor when absent.
inline at::Tensor get(const TensorMap& tensors, const std::string& name) {
  auto found = tensors.find(name);
  return found == tensors.end() ? at::Tensor() : found->second;
}

// Pointer to the data of an optional tensor (null when undefined).
template <typename scalar_t>
scalar_t* data_or_null(const at::Tensor& tensor) {
  return tensor.defined() ? tensor.data_ptr<scalar_t>() : nullptr;
}

// Pointer to step `step` of an optional (T', B, width) tensor (null when undefined).
template <typename scalar_t>
scalar_t* step_or_null(const at::Tensor& tensor, int64_t step) {
  return tensor.defined() ? tensor.data_ptr<scalar_t>() + step * tensor.stride(0) : nullptr;
}

// The sequence a family reads: "inputs" (T, B, I), or for token inputs "tokens" (T, B) int64
// with "token_table" (V, rows), whose row v is the input projection W_ih x + b_ih of token v
// (see gather_token_rows). Token inputs take no weight_ih.
inline bool token_input(const TensorMap& tensors) { return tensors.count("tokens") > 0; }

// Steps and batch size of the sequence (see token_input).
inline std::pair<int64_t, int64_t> sequence_size(const TensorMap& tensors) {
  const at::Tensor sequence = tensors.at(token_input(tensors) ? "tokens" : "inputs");
  return {sequence.size(0), sequence.size(1)};
}

// Raises unless the tensors every family takes are consistent: inputs (T, B, I) of a floating
// dtype (or token inputs: tokens (T, B) int64 within [0, V) and token_table (V, I)), last_step
// (B) int64 within [0, T), and each named tensor of the given shape and the inputs' dtype.
inline void check_sequence_inputs(const TensorMap& tensors,
                                  const std::map<std::string, std::vector<int64_t>>& shapes) {
  const bool tokens_given = token_input(tensors);
  const at::Tensor inputs = tensors.at(tokens_given ? "token_table" : "inputs");
  if (tokens_given) {
    const at::Tensor tokens = tensors.at("tokens");
    TORCH_CHECK(tokens.dim() == 2 && tokens.is_contiguous() && tokens.dtype() == at::kLong &&
                    inputs.dim() == 2 && inputs.is_contiguous() && inputs.device().is_cpu(),
                "tokens, token_table: expected contiguous (T, B) int64 and (V, I) CPU tensors");
    TORCH_CHECK(tokens.numel() == 0 || (tokens.min().item<int64_t>() >= 0 &&
                                        tokens.max().item<int64_t>() < inputs.size(0)),
                "tokens: expected values in [0, ", inputs.size(0), ")");
  } else {
    TORCH_CHECK(inputs.dim() == 3 && inputs.is_contiguous() && inputs.device().is_cpu(),
                "inputs: expected a contiguous (T, B, I) CPU tensor");
  }
  const auto [steps, batch] = sequence_size(tensors);
  const at::Tensor last_step = tensors.at("last_step");
  TORCH_CHECK(last_step.dtype() == at::kLong && last_step.is_contiguous() &&
                  last_step.numel() == batch,
              "last_step: expected B int64 values");
  TORCH_CHECK(last_step.numel() == 0 ||
                  (last_step.min().item<int64_t>() >= 0 &&
                   last_step.max().item<int64_t>() < steps),
              "last_step: expected values in [0, T)");
  for (const auto& [name, shape] : shapes) {
    const at::Tensor tensor = get(tensors, name);
    TORCH_CHECK(tensor.defined(), name, ": missing");
    TORCH_CHECK(tensor.sizes() == at::IntArrayRef(shape) && tensor.is_contiguous() &&
                    tensor.scalar_type() == inputs.scalar_type() && tensor.device().is_cpu(),
                name, ": expected a contiguous CPU tensor of shape ", at::IntArrayRef(shape),
                " and dtype ", inputs.scalar_type(), ", got ", tensor.sizes(), " ",
                tensor.scalar_type());
  }
}

// Columns per task of gather_token_rows and scatter_token_rows across threads.
constexpr int64_t kTokenColumns = 512;

// out (B, rows) = the rows tokens (B) of table (V, rows), plus bias (rows) when given: one
// step's projected inputs for token inputs (token_input), gathered as the step starts, while
// the rows stay in cache for the step's product.
template <typename scalar_t>
void gather_token_rows(scalar_t* out, const int64_t* tokens, const scalar_t* table,
                       const scalar_t* bias, int64_t batch, int64_t rows) {
  at::parallel_for(0, rows, kTokenColumns, [&](int64_t begin, int64_t end) {
    for (int64_t b = 0; b < batch; ++b) {
      const scalar_t* row = table + tokens[b] * rows;
      scalar_t* target = out + b * rows;
      for (int64_t j = begin; j < end; ++j) {
        target[j] = bias != nullptr ? row[j] + bias[j] : row[j];
      }
    }
  });
}

// grad_table (V, rows) += the rows of grad (B, rows), each into the row of its token: one
// step's share of the table's gradient, taken while the step's gradients are in cache. Threads
// split the columns, so tokens that repeat within the batch add up in order, on one thread.
template <typename scalar_t>
void scatter_token_rows(scalar_t* grad_table, const int64_t* tokens, const scalar_t* grad,
                        int64_t batch, int64_t rows) {
  at::parallel_for(0, rows, kTokenColumns, [&](int64_t begin, int64_t end) {
    for (int64_t b = 0; b < batch; ++b) {
      scalar_t* target = grad_table + tokens[b] * rows;
      const scalar_t* row = grad + b * rows;
      for (int64_t j = begin; j < end; ++j) {
        target[j] += row[j];
      }
    }
  });
}

// bfloat16 products: while on for the calling thread, every float32 matrix product of the fused
// kernels multiplies bfloat16 roundings of its operands (through ATen, which calls oneDNN) and
// rounds the product to bfloat16, as torch's CPU autocast does for matrix products; the
// pointwise steps (gates, cell states) and every saved tensor stay float32. fused.py turns it on
// under bfloat16 autocast, only where oneDNN multiplies bfloat16 (fused.bf16_products_wanted).
bool bf16_products();
void set_bf16_products(bool on);

// Whether a product of float tensors of `type` runs in bfloat16 (see bf16_products).
inline bool in_bf16(at::ScalarType type) { return type == at::kFloat && bf16_products(); }

// out = a b, or out += a b for `accumulate` (2-D tensors, out contiguous): in bfloat16 when
// bf16_products() is on, else rnnkit's own kernels for float32 where they run (gemm.h), else
// ATen's.
inline void matmul_into(at::Tensor& out, const at::Tensor& a, const at::Tensor& b,
                        bool accumulate) {
  if (in_bf16(out.scalar_type())) {
    const at::Tensor product = at::mm(a.to(at::kBFloat16), b.to(at::kBFloat16));
    if (accumulate) {
      out.add_(product);
    } else {
      out.copy_(product);
    }
  } else if (own_gemm_for(out.scalar_type())) {
    own_matmul(out, a, b, accumulate);
  } else if (accumulate) {
    out.addmm_(a, b);
  } else {
    at::mm_out(out, a, b);
  }
}

// `tensor` as an operand of products: with bf16_products() on, converted to bfloat16 once (for
// several products to share), else itself.
inline at::Tensor product_operand(const at::Tensor& tensor) {
  return in_bf16(tensor.scalar_type()) ? tensor.to(at::kBFloat16) : tensor;
}

// a b as a new tensor (see matmul_into), float32 for bfloat16 operands.
inline at::Tensor matmul(const at::Tensor& a, const at::Tensor& b) {
  const bool bf16 = a.scalar_type() == at::kBFloat16;
  at::Tensor out = at::empty({a.size(0), b.size(1)}, a.options().dtype(bf16 ? at::kFloat
                                                                           : a.scalar_type()));
  matmul_into(out, a, b, false);
  return out;
}

// rows (M, K) weight^T + bias (weight (N, K), bias (N) or undefined) as a new (M, N) tensor,
// through oneDNN with the weight packed for M rows, for float32 weights large enough for that
// to pay (see step_product.cpp); an undefined tensor otherwise (and where rnnkit's own products
// run, under bf16_products(), or in a torch without oneDNN).
at::Tensor onednn_linear(const at::Tensor& rows, const at::Tensor& weight, const at::Tensor& bias);

// An uninitialised tensor of `shape` for a sequence-sized result. Fresh blocks of tens of
// megabytes are mapped by the C allocator on every call and faulted in page by page, which can
// cost more than the kernels take to fill them; so results of at least 16 MB come from a small
// per-thread pool of buffers (at most 512 MB in all), and a buffer is handed out again only once
// nothing else holds its storage: not the autograd graph that saved it, not a caller's output,
// not a view. Smaller ones are at::empty. Scratch results that nobody keeps (the input
// projection of inference calls, and of the Elman kernels, whose backward does not read it)
// are thus reused from call to call as well.
at::Tensor pooled_empty(at::IntArrayRef shape, const at::TensorOptions& options);

// The shape check of weight_ih for check_sequence_inputs: (rows, I) where the inputs are read
// through it; without weight_ih the inputs are already projected (see project_inputs) and must
// have `rows` features.
inline void add_input_weight_shape(const TensorMap& tensors, int64_t rows,
                                   std::map<std::string, std::vector<int64_t>>& shapes) {
  if (token_input(tensors)) {
    TORCH_CHECK(tensors.at("token_table").size(1) == rows, "token_table: expected ", rows,
                " columns, got ", tensors.at("token_table").sizes());
    return;
  }
  const at::Tensor inputs = tensors.at("inputs");
  if (tensors.count("weight_ih")) {
    shapes["weight_ih"] = {rows, inputs.size(2)};
  } else {
    TORCH_CHECK(inputs.dim() == 3 && inputs.size(2) == rows, "inputs: without weight_ih the "
                "inputs are the projected inputs and need ", rows, " features, got ",
                inputs.sizes());
  }
}

// W_ih x_t + bias for all steps in one product: (T, B, I) -> (T, B, rows of weight_ih), a new
// tensor (from onednn_linear for large weights, else from pooled_empty). With weight_ih
// undefined the inputs are already projected (T, B, rows): the result is a copy of them plus the
// bias, in one pass.
inline at::Tensor project_inputs(const at::Tensor& inputs, const at::Tensor& weight_ih,
                                 const at::Tensor& bias) {
  if (!weight_ih.defined()) {
    at::Tensor projected = pooled_empty(inputs.sizes(), inputs.options());
    if (bias.defined()) {
      at::add_out(projected, inputs, bias);
    } else {
      projected.copy_(inputs);
    }
    return projected;
  }
  const int64_t steps = inputs.size(0), batch = inputs.size(1), rows = weight_ih.size(0);
  const at::Tensor flat = inputs.reshape({steps * batch, inputs.size(2)});
  at::Tensor projected = onednn_linear(flat, weight_ih, bias);
  if (projected.defined()) {
    return projected.view({steps, batch, rows});
  }
  projected = pooled_empty({steps * batch, rows}, inputs.options());
  if (in_bf16(inputs.scalar_type())) {  // one pass from the bfloat16 product (bias included)
    const at::Tensor weight = weight_ih.t().to(at::kBFloat16);
    projected.copy_(bias.defined()
                        ? at::addmm(bias.to(at::kBFloat16), flat.to(at::kBFloat16), weight)
                        : at::mm(flat.to(at::kBFloat16), weight));
  } else if (own_gemm_for(inputs.scalar_type())) {
    if (bias.defined()) {
      projected.copy_(bias.expand_as(projected));
    }
    own_matmul(projected, flat, weight_ih.t(), bias.defined());
  } else if (bias.defined()) {
    at::addmm_out(projected, bias, flat, weight_ih.t());
  } else {
    at::mm_out(projected, flat, weight_ih.t());
  }
  return projected.view({steps, batch, rows});
}

// Gradients of the input projection from dL/d(pre-activations) of all steps (T, B, rows), each
// one matrix product: grad_weight_ih, grad_bias when there is one, and grad_inputs (T, B, I)
// when the inputs need it (not for a first layer's data: a third of the products saved).
// Without weight_ih (projected inputs), grad_inputs is grad_pre itself.
// `grad_operand` is product_operand(grad_pre), which the caller may use for more products.
inline void input_gradients(const at::Tensor& grad_pre, const at::Tensor& grad_operand,
                            const at::Tensor& inputs, const at::Tensor& weight_ih, bool has_bias,
                            bool input_grad, TensorMap& grads) {
  const int64_t steps = inputs.size(0), batch = inputs.size(1);
  if (!weight_ih.defined()) {  // projected inputs: their gradient is dL/d(pre-activations)
    if (input_grad) {
      grads["inputs"] = grad_pre;
    }
    if (has_bias) {
      grads["bias"] = grad_pre.view({steps * batch, grad_pre.size(2)}).sum(0);
    }
    return;
  }
  const at::Tensor flat = grad_operand.view({steps * batch, grad_pre.size(2)});
  if (input_grad) {
    at::Tensor grad_inputs = pooled_empty({steps * batch, inputs.size(2)}, inputs.options());
    matmul_into(grad_inputs, flat, weight_ih, false);
    grads["inputs"] = grad_inputs.view({steps, batch, inputs.size(2)});
  }
  grads["weight_ih"] = matmul(flat.t(), inputs.reshape({steps * batch, inputs.size(2)}));
  if (has_bias) {
    grads["bias"] = grad_pre.view({steps * batch, grad_pre.size(2)}).sum(0);
  }
}

// sum over steps t of grad_pre[t]^T states[t]: the gradient of a recurrent weight from its
// per-step pre-activation gradients (T, B, rows) and the states it multiplied (T, B, cols).
inline at::Tensor weight_gradient(const at::Tensor& grad_pre, const at::Tensor& states) {
  const int64_t rows = grad_pre.size(0) * grad_pre.size(1);
  return matmul(grad_pre.reshape({rows, grad_pre.size(2)}).t(),
                states.reshape({rows, states.size(2)}));
}

// The gradient of a state's initial value: what reached it through the recurrence plus what
// came from outside for step 0 of the saved states (zero unless the caller used it).
inline at::Tensor initial_gradient(const at::Tensor& carried, const at::Tensor& grad_states) {
  return grad_states.defined() ? carried.add(grad_states[0]) : carried;
}

// out (B, N) = state (B, K) @ op(weight), or out += ..., once per step of a sequence, where
// op(weight) is weight^T for `transpose` (weight (N, K)), else weight (K, N), and out and state
// are rows of larger buffers given by pointer and row stride. Float weights are packed once per
// sequence: for rnnkit's own kernels where they run (gemm.h), else for oneDNN where they are
// large (see onednn_linear); with bf16_products() on they are rounded to bfloat16 once per
// sequence instead. Otherwise each step is one ATen product.
class StepProduct {
 public:
  StepProduct(const at::Tensor& weight, bool transpose, int64_t batch);
  void operator()(float* out, int64_t out_stride, const float* state, int64_t state_stride,
                  bool accumulate) const;
  void operator()(double* out, int64_t out_stride, const double* state, int64_t state_stride,
                  bool accumulate) const;

 private:
  template <typename scalar_t>
  void with_aten(scalar_t* out, int64_t out_stride, const scalar_t* state, int64_t state_stride,
                 bool accumulate) const;

  at::Tensor operand_;               // op(weight) (K, N): a view, or its bfloat16 rounding
  int64_t batch_;
  std::optional<PackedMatrix> own_;  // for rnnkit's own kernels, when used
  at::Tensor onednn_weight_;         // oneDNN's packed weight, when used
};

// Units per thread are multiples of this, so each thread's columns start on a vector boundary.
constexpr int64_t kColumnAlign = 16;
// Below this many elements a step's pointwise work is not worth waking a second thread.
constexpr int64_t kParallelElements = 16384;

// Runs kernel(col_begin, col_end) over the hidden units [0, columns), split across threads.
template <typename Kernel>
void for_column_ranges(int64_t rows, int64_t columns, const Kernel& kernel) {
  const int64_t threads = at::get_num_threads();
  if (threads <= 1 || rows * columns < kParallelElements || at::in_parallel_region()) {
    kernel(0, columns);
    return;
  }
  const int64_t per_thread =
      (columns + threads * kColumnAlign - 1) / (threads * kColumnAlign) * kColumnAlign;
  const int64_t parts = (columns + per_thread - 1) / per_thread;
  at::parallel_for(0, parts, 1, [&](int64_t begin, int64_t end) {
    for (int64_t part = begin; part < end; ++part) {
      kernel(part * per_thread, std::min(columns, (part + 1) * per_thread));
    }
  });
}

}  // namespace rnnkit
