// StepProduct (recurrence.h): the per-step matrix products of every fused cell.
#include <ATen/Context.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/from_blob.h>
#include <c10/util/accumulate.h>

#include <cstdlib>
#include <optional>
#include <string_view>
#include <vector>

#include "recurrence.h"

#ifdef RNNKIT_MKL_BLAS
// MKL as exported by torch's own library in MKL builds (LP64: 32-bit integers); the Fortran
// routines are column-major, so row-major C = A op(W) is computed as C^T = op(W)^T A^T.
extern "C" {
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc);
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const double* alpha, const double* a, const int* lda, const double* b,
            const int* ldb, const double* beta, double* c, const int* ldc);
size_t cblas_sgemm_pack_get_size(int identifier, int m, int n, int k);
void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k, float alpha,
                      const float* source, int ld, float* dest);
void cblas_sgemm_compute(int layout, int transa, int transb, int m, int n, int k, const float* a,
                         int lda, const float* b, int ldb, float beta, float* c, int ldc);
}
#endif

namespace rnnkit {
namespace {

#ifdef RNNKIT_MKL_BLAS
// CBLAS enumerations.
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112, kBMatrix = 162, kPacked = 151;

// Row-major out (batch, N) = state (batch, K) op(weight) (+ out) through MKL's column-major
// GEMM; weight is the original, untransposed matrix.
template <typename scalar_t, typename Gemm>
void column_major_gemm(Gemm gemm, const at::Tensor& weight, bool transpose, int64_t batch,
                       scalar_t* out, int64_t out_stride, const scalar_t* state,
                       int64_t state_stride, bool accumulate) {
  const int m = static_cast<int>(transpose ? weight.size(0) : weight.size(1));
  const int n = static_cast<int>(batch);
  const int k = static_cast<int>(transpose ? weight.size(1) : weight.size(0));
  const int lda = static_cast<int>(weight.stride(0));
  const int ldb = static_cast<int>(state_stride), ldc = static_cast<int>(out_stride);
  const scalar_t one = 1, beta = accumulate ? 1 : 0;
  gemm(transpose ? "T" : "N", "N", &m, &n, &k, &one, weight.data_ptr<scalar_t>(), &lda, state,
       &ldb, &beta, out, &ldc);
}
#endif

// Below this many rows the per-step products are too small for packing to pay for itself.
constexpr int64_t kMinPackedBatch = 4;

// oneDNN's matrix product with a weight packed once for a given number of rows: the operators
// torch registers for its own compiled CPU code (mkldnn::_reorder_linear_weight and
// mkldnn::_linear_pointwise). Found through the dispatcher, so a torch built without oneDNN
// simply does not have it. Used for weights of at least kMinOneDnnWeight elements (4 MB in
// float32, more than a core's L2 cache), where it is faster than MKL: measured on an AMD Zen 4
// machine at B = 32, H = 512 (weights 2048 x 512), 1.6x per step and 1.2x for the input
// projection of all steps, which takes a peephole LSTM's inference from 1.42x torch's LSTM to
// 0.99x; at H = 256 it was slower than MKL's packed product within the sequence loop.
constexpr int64_t kMinOneDnnWeight = int64_t{1} << 20;

struct OneDnn {
  using Reorder = at::Tensor(const at::Tensor&, std::optional<int64_t>);
  using Linear = at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                            std::string_view, c10::List<std::optional<at::Scalar>>,
                            std::optional<std::string_view>);
  c10::TypedOperatorHandle<Reorder> reorder;
  c10::TypedOperatorHandle<Linear> linear;
};

// The oneDNN operators, or nothing when torch lacks them (or RNNKIT_ONEDNN=0).
const std::optional<OneDnn>& onednn() {
  static const std::optional<OneDnn> found = []() -> std::optional<OneDnn> {
    const char* setting = std::getenv("RNNKIT_ONEDNN");
    if (!at::hasMKLDNN() || (setting != nullptr && std::string_view(setting) == "0")) {
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

thread_local bool bf16_products_on = false;

}  // namespace

bool bf16_products() { return bf16_products_on; }

bool set_bf16_products(bool on) {
  bf16_products_on = on && onednn().has_value();
  return bf16_products_on == on;
}

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
  if (rows.scalar_type() != at::kFloat || weight.numel() < kMinOneDnnWeight ||
      own_gemm_for(at::kFloat) || bf16_products() || !onednn()) {
    return at::Tensor();
  }
  const at::Tensor packed = onednn()->reorder.call(weight.contiguous(), rows.size(0));
  const std::optional<at::Tensor> maybe_bias =
      bias.defined() ? std::optional<at::Tensor>(bias) : std::nullopt;
  return onednn()->linear.call(rows, packed, maybe_bias, "none",
                               c10::List<std::optional<at::Scalar>>(), std::nullopt);
}

StepProduct::StepProduct(const at::Tensor& weight, bool transpose, int64_t batch)
    : weight_(weight), transpose_(transpose), batch_(batch) {
  TORCH_CHECK(weight.dim() == 2 && weight.stride(1) == 1, "weight: expected unit column stride");
  if (in_bf16(weight.scalar_type()) && bf16_kernels_available()) {
    const int64_t k = transpose ? weight.size(1) : weight.size(0);
    const int64_t n = transpose ? weight.size(0) : weight.size(1);
    amx_.emplace(weight.data_ptr<float>(), transpose ? 1 : weight.stride(0),
                 transpose ? weight.stride(0) : 1, k, n);
    return;
  }
  if (in_bf16(weight.scalar_type())) {  // bf16_products() implies onednn()
    packed_ = onednn()->reorder.call(
        (transpose ? weight : weight.t()).to(at::kBFloat16).contiguous(), batch);
    bf16_ = true;
    return;
  }
  if (own_gemm_for(weight.scalar_type())) {
    // op(weight) (K, N): weight^T of a (N, K) weight, or the (K, N) weight itself.
    const int64_t k = transpose ? weight.size(1) : weight.size(0);
    const int64_t n = transpose ? weight.size(0) : weight.size(1);
    own_.emplace(weight.data_ptr<float>(), transpose ? 1 : weight.stride(0),
                 transpose ? weight.stride(0) : 1, k, n);
    return;
  }
  if (weight.scalar_type() == at::kFloat && batch >= kMinPackedBatch &&
      weight.numel() >= kMinOneDnnWeight && onednn()) {
    // oneDNN multiplies by the transpose of a (N, K) weight, like a linear layer.
    packed_ = onednn()->reorder.call(transpose ? weight.contiguous() : weight.t().contiguous(),
                                     batch);
    onednn_ = true;
    return;
  }
#ifdef RNNKIT_MKL_BLAS
  if (weight.scalar_type() != at::kFloat || batch < kMinPackedBatch) {
    return;
  }
  const int m = static_cast<int>(batch);
  const int n = static_cast<int>(transpose ? weight.size(0) : weight.size(1));
  const int k = static_cast<int>(transpose ? weight.size(1) : weight.size(0));
  packed_ = at::empty({static_cast<int64_t>(cblas_sgemm_pack_get_size(kBMatrix, m, n, k))},
                      weight.options().dtype(at::kByte));
  cblas_sgemm_pack(kRowMajor, kBMatrix, transpose ? kTrans : kNoTrans, m, n, k, 1.0f,
                   weight.data_ptr<float>(), static_cast<int>(weight.stride(0)),
                   reinterpret_cast<float*>(packed_.data_ptr()));
#endif
}

void StepProduct::operator()(float* out, int64_t out_stride, const float* state,
                             int64_t state_stride, bool accumulate) const {
  if (own_) {
    packed_product(batch_, state, state_stride, 1, *own_, out, out_stride, accumulate);
    return;
  }
  if (amx_) {
    bf16_product(batch_, state, state_stride, *amx_, out, out_stride, accumulate);
    return;
  }
  if (onednn_ || bf16_) {
    const int64_t n = transpose_ ? weight_.size(0) : weight_.size(1);
    const int64_t k = transpose_ ? weight_.size(1) : weight_.size(0);
    const auto options = weight_.options();
    at::Tensor rows = at::from_blob(const_cast<float*>(state), {batch_, k}, {state_stride, 1},
                                    options);
    if (bf16_) {
      rows = rows.to(at::kBFloat16);
    }
    at::Tensor result = at::from_blob(out, {batch_, n}, {out_stride, 1}, options);
    const at::Tensor product = onednn()->linear.call(rows, packed_, std::nullopt, "none",
                                                     c10::List<std::optional<at::Scalar>>(),
                                                     std::nullopt);
    if (accumulate) {
      result.add_(product);
    } else {
      result.copy_(product);
    }
    return;
  }
#ifdef RNNKIT_MKL_BLAS
  if (packed_.defined()) {
    const int n = static_cast<int>(transpose_ ? weight_.size(0) : weight_.size(1));
    const int k = static_cast<int>(transpose_ ? weight_.size(1) : weight_.size(0));
    cblas_sgemm_compute(kRowMajor, kNoTrans, kPacked, static_cast<int>(batch_), n, k, state,
                        static_cast<int>(state_stride),
                        reinterpret_cast<const float*>(packed_.data_ptr()), n,
                        accumulate ? 1.0f : 0.0f, out, static_cast<int>(out_stride));
  } else {
    column_major_gemm(sgemm_, weight_, transpose_, batch_, out, out_stride, state, state_stride,
                      accumulate);
  }
#else
  with_aten(out, out_stride, state, state_stride, accumulate);
#endif
}

void StepProduct::operator()(double* out, int64_t out_stride, const double* state,
                             int64_t state_stride, bool accumulate) const {
#ifdef RNNKIT_MKL_BLAS
  column_major_gemm(dgemm_, weight_, transpose_, batch_, out, out_stride, state, state_stride,
                    accumulate);
#else
  with_aten(out, out_stride, state, state_stride, accumulate);
#endif
}

template <typename scalar_t>
void StepProduct::with_aten(scalar_t* out, int64_t out_stride, const scalar_t* state,
                            int64_t state_stride, bool accumulate) const {
  const at::Tensor operand = transpose_ ? weight_.t() : weight_;
  const auto options = weight_.options();
  at::Tensor result = at::from_blob(out, {batch_, operand.size(1)}, {out_stride, 1}, options);
  const at::Tensor rows =
      at::from_blob(const_cast<scalar_t*>(state), {batch_, operand.size(0)}, {state_stride, 1},
                    options);
  if (accumulate) {
    result.addmm_(rows, operand);
  } else {
    at::mm_out(result, rows, operand);
  }
}

}  // namespace rnnkit
