// StepProduct (recurrence.h): the per-step matrix products of every fused cell, oneDNN's
// products for large weights, and the sequence-sized buffers of pooled_empty.
#include <ATen/Context.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/from_blob.h>
#include <c10/util/accumulate.h>

#include <optional>
#include <string_view>
#include <vector>

#include "recurrence.h"

namespace rnnkit {
namespace {

// Float32 weights of at least this many elements (the LSTM family's W_hh from H = 512) are
// multiplied through oneDNN with the weight packed once per sequence, where rnnkit's own
// products do not run: at H = 1024 the LSTM family then trained 12-33% and inferred 15% faster
// than with one at::mm per step (at H = 512 the two were within noise; the section "Product
// backends" of benchmarks/RESULTS.md).
constexpr int64_t kMinOneDnnWeight = int64_t{1} << 20;
// Below this many rows a step's product is too small for a packed weight to pay for itself.
constexpr int64_t kMinPackedBatch = 4;

// oneDNN's matrix product with a weight packed for a given number of rows: the operators torch
// registers for its own compiled CPU code (mkldnn::_reorder_linear_weight and
// mkldnn::_linear_pointwise), found through the dispatcher, so that a torch built without
// oneDNN, or with these operators under another signature, falls back to at::mm.
struct OneDnn {
  using Reorder = at::Tensor(const at::Tensor&, std::optional<int64_t>);
  using Linear = at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                            std::string_view, c10::List<std::optional<at::Scalar>>,
                            std::optional<std::string_view>);
  c10::TypedOperatorHandle<Reorder> reorder;
  c10::TypedOperatorHandle<Linear> linear;
};

// The oneDNN operators, or nothing when torch lacks them.
const std::optional<OneDnn>& onednn() {
  static const std::optional<OneDnn> found = []() -> std::optional<OneDnn> {
    if (!at::hasMKLDNN()) {
      return std::nullopt;
    }
    auto& dispatcher = c10::Dispatcher::singleton();
    auto reorder = dispatcher.findOp({"mkldnn::_reorder_linear_weight", ""});
    auto linear = dispatcher.findOp({"mkldnn::_linear_pointwise", ""});
    if (!reorder || !linear) {
      return std::nullopt;
    }
    try {
      return OneDnn{reorder->typed<OneDnn::Reorder>(), linear->typed<OneDnn::Linear>()};
    } catch (const c10::Error&) {  // registered with another signature
      return std::nullopt;
    }
  }();
  return found;
}

// Whether float32 products by `weight` go through oneDNN (see kMinOneDnnWeight).
bool onednn_for(const at::Tensor& weight) {
  return weight.scalar_type() == at::kFloat && weight.numel() >= kMinOneDnnWeight &&
         !own_gemm_for(at::kFloat) && !bf16_products() && onednn().has_value();
}

// rows (M, K) by weight^T (weight (N, K)) through oneDNN, the weight packed for M rows.
at::Tensor onednn_product(const at::Tensor& rows, const at::Tensor& packed,
                          const std::optional<at::Tensor>& bias) {
  return onednn()->linear.call(rows, packed, bias, "none",
                               c10::List<std::optional<at::Scalar>>(), std::nullopt);
}

thread_local bool bf16_products_on = false;

}  // namespace

bool bf16_products() { return bf16_products_on; }

void set_bf16_products(bool on) { bf16_products_on = on; }

at::Tensor pooled_empty(at::IntArrayRef shape, const at::TensorOptions& options) {
  constexpr int64_t kPooledFrom = int64_t{16} << 20, kPoolBytes = int64_t{512} << 20;
  const int64_t numel = c10::multiply_integers(shape);
  const int64_t bytes = numel * static_cast<int64_t>(options.dtype().itemsize());
  if (bytes < kPooledFrom || bytes > kPoolBytes) {
    return at::empty(shape, options);
  }
  thread_local std::vector<at::Tensor> pool;  // 1-D buffers, oldest first
  at::Tensor* chosen = nullptr;
  for (at::Tensor& buffer : pool) {
    const bool free = buffer.use_count() == 1 && buffer.storage().use_count() == 1;
    if (free && buffer.dtype() == options.dtype() && buffer.numel() >= numel &&
        (chosen == nullptr || buffer.numel() < chosen->numel())) {
      chosen = &buffer;
    }
  }
  if (chosen != nullptr) {
    return chosen->narrow(0, 0, numel).view(shape);
  }
  at::Tensor buffer = at::empty({numel}, options);
  pool.push_back(buffer);
  // Keep the newest buffers within kPoolBytes; a dropped one lives on while it is in use.
  int64_t total = 0;
  for (auto it = pool.rbegin(); it != pool.rend(); ++it) {
    total += it->numel() * static_cast<int64_t>(it->dtype().itemsize());
    if (total > kPoolBytes) {
      pool.erase(pool.begin(), it.base());
      break;
    }
  }
  return buffer.view(shape);
}

at::Tensor onednn_linear(const at::Tensor& rows, const at::Tensor& weight,
                         const at::Tensor& bias) {
  if (!onednn_for(weight)) {
    return at::Tensor();
  }
  const at::Tensor packed = onednn()->reorder.call(weight.contiguous(), rows.size(0));
  return onednn_product(rows, packed,
                        bias.defined() ? std::optional<at::Tensor>(bias) : std::nullopt);
}

StepProduct::StepProduct(const at::Tensor& weight, bool transpose, int64_t batch)
    : operand_(transpose ? weight.t() : weight), batch_(batch) {
  TORCH_CHECK(weight.dim() == 2 && weight.stride(1) == 1, "weight: expected unit column stride");
  if (in_bf16(weight.scalar_type())) {  // rounded once per sequence, not at every step
    operand_ = operand_.to(at::kBFloat16);
  } else if (own_gemm_for(weight.scalar_type())) {
    // op(weight) (K, N): weight^T of a (N, K) weight, or the (K, N) weight itself.
    own_.emplace(weight.data_ptr<float>(), transpose ? 1 : weight.stride(0),
                 transpose ? weight.stride(0) : 1, operand_.size(0), operand_.size(1));
  } else if (batch >= kMinPackedBatch && onednn_for(weight)) {
    // oneDNN multiplies by the transpose of a (N, K) weight, like a linear layer.
    onednn_weight_ = onednn()->reorder.call(
        transpose ? weight.contiguous() : weight.t().contiguous(), batch);
  }
}

void StepProduct::operator()(float* out, int64_t out_stride, const float* state,
                             int64_t state_stride, bool accumulate) const {
  if (own_) {
    packed_product(batch_, state, state_stride, 1, *own_, out, out_stride, accumulate);
    return;
  }
  if (operand_.scalar_type() == at::kBFloat16 || onednn_weight_.defined()) {
    const auto options = at::TensorOptions().dtype(at::kFloat);
    const at::Tensor rows = at::from_blob(const_cast<float*>(state), {batch_, operand_.size(0)},
                                          {state_stride, 1}, options);
    at::Tensor result = at::from_blob(out, {batch_, operand_.size(1)}, {out_stride, 1}, options);
    const at::Tensor product = onednn_weight_.defined()
                                   ? onednn_product(rows, onednn_weight_, std::nullopt)
                                   : at::mm(rows.to(at::kBFloat16), operand_);
    if (accumulate) {
      result.add_(product);
    } else {
      result.copy_(product);
    }
    return;
  }
  with_aten(out, out_stride, state, state_stride, accumulate);
}

void StepProduct::operator()(double* out, int64_t out_stride, const double* state,
                             int64_t state_stride, bool accumulate) const {
  with_aten(out, out_stride, state, state_stride, accumulate);
}

template <typename scalar_t>
void StepProduct::with_aten(scalar_t* out, int64_t out_stride, const scalar_t* state,
                            int64_t state_stride, bool accumulate) const {
  const auto options = operand_.options();
  at::Tensor result = at::from_blob(out, {batch_, operand_.size(1)}, {out_stride, 1}, options);
  const at::Tensor rows = at::from_blob(const_cast<scalar_t*>(state),
                                        {batch_, operand_.size(0)}, {state_stride, 1}, options);
  if (accumulate) {
    result.addmm_(rows, operand_);
  } else {
    at::mm_out(result, rows, operand_);
  }
}

}  // namespace rnnkit
