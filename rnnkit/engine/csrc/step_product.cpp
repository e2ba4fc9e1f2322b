// StepProduct (recurrence.h): the per-step matrix products of every fused cell.
#include <ATen/ops/from_blob.h>

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

}  // namespace

StepProduct::StepProduct(const at::Tensor& weight, bool transpose, int64_t batch)
    : weight_(weight), transpose_(transpose), batch_(batch) {
  TORCH_CHECK(weight.dim() == 2 && weight.stride(1) == 1, "weight: expected unit column stride");
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
