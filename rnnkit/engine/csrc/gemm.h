// rnnkit's own float32 matrix products (gemm.cpp), for CPUs with AVX-512F.
//
// torch's MKL runs its AVX2 code on AMD processors, which leaves half of an AVX-512 core's
// multiply-add width unused; these kernels use all of it (benchmarks/RESULTS.md has the measured
// rates against torch.mm). The design is the classic one (as in BLIS and GotoBLAS): the right
// operand packed into column panels of kPanel columns, each stored k-major, and an 8 x kPanel
// block of the result accumulated in registers while the left operand is broadcast element by
// element from wherever it lies (any strides).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace rnnkit {

// Whether the float32 products of the fused kernels use these kernels: the CPU has AVX-512F, the
// compiler could build them, and RNNKIT_PRODUCTS (read once per process) is not "library", the
// one switch that keeps every product on torch's library calls (for comparisons and the test
// that checks the two paths against each other).
bool own_gemm();

// Whether products of tensors of `type` use these kernels: float32 and own_gemm().
inline bool own_gemm_for(at::ScalarType type) { return type == at::kFloat && own_gemm(); }

// op(B), a (k, n) float32 matrix whose element (kk, j) is data[kk * row_stride + j * col_stride],
// copied into column panels (the last one padded with zeros), for products by it.
class PackedMatrix {
 public:
  PackedMatrix(const float* data, int64_t row_stride, int64_t col_stride, int64_t k, int64_t n);

  int64_t k() const { return k_; }
  int64_t n() const { return n_; }
  const float* panels() const { return panels_.data_ptr<float>(); }

 private:
  int64_t k_, n_;
  at::Tensor panels_;
};

// c (m, n) = a (m, k) b, or c += a b for `accumulate`, where a's element (i, kk) is
// a[i * a_row + kk * a_col] and c's rows are ldc apart. Runs on at::get_num_threads() threads
// unless called inside a parallel region. Requires own_gemm().
void packed_product(int64_t m, const float* a, int64_t a_row, int64_t a_col, const PackedMatrix& b,
                    float* c, int64_t ldc, bool accumulate);

// out = a b, or out += a b, for 2-D float32 CPU tensors of any strides (out with unit column
// stride): packs b, then packed_product. Requires own_gemm().
void own_matmul(at::Tensor& out, const at::Tensor& a, const at::Tensor& b, bool accumulate);

}  // namespace rnnkit
