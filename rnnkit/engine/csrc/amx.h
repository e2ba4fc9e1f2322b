// rnnkit's own bfloat16 matrix products (amx.cpp), for the per-step products of the fused
// kernels under bf16_products() (recurrence.h): on Intel AMX tiles where the CPU has AMX, else
// with AVX512-BF16 dot products (vdpbf16ps) where it has those, both from one packed layout of
// the weight (AmxMatrix).
//
// oneDNN, which torch calls, takes about 0.4 ms (0.24 ms inside oneDNN) for one step's product
// of the default language model's LSTM, (32, 640) by (640, 2560), on the project's 2-core Xeon
// with AMX: the call's overheads and its weight layout dominate so small a product; here it
// takes about 0.2 ms. The right operand is packed once per sequence into AMX tiles (16 pairs of
// rows by 16 columns), the left operand is rounded to bfloat16 once per step, and each thread
// works on the same columns of the weight at every step. A weight that fits in the threads' L2
// caches stays there from step to step; the default model's 3.3 MB does not (a core kept about
// 1.2 MB of it), so it streams from L3, which bounds that product at about 0.2 ms with 1 or 2
// threads. For the products over all steps (thousands of rows) oneDNN is faster, and keeps them.
//
// Without AMX (the project's AMD Zen 4 machine), the same product through oneDNN takes about
// 0.27 ms plus the rounding of its operand and result and a fresh result per call; the
// AVX512-BF16 kernel sums in registers straight into the float32 output (8 rows by 48
// columns per block, each pair of the depth one vdpbf16ps per row and tile of columns).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace rnnkit {

// Whether these kernels run: the CPU has AMX-TILE, AMX-BF16 and AVX512-BF16, the compiler could
// build them, Linux lets the process use the tile registers, and RNNKIT_AMX (read once per
// process) is not "0".
bool amx_available();

// Whether the AVX512-BF16 kernel runs: the CPU has AVX512-F and AVX512-BF16, the compiler could
// build it, and RNNKIT_AMX is not "0" (the switch covers both of rnnkit's bfloat16 kernels).
bool avx512_bf16_available();

// Whether bf16_product runs here (either kernel).
inline bool bf16_kernels_available() { return amx_available() || avx512_bf16_available(); }

// op(B), a (k, n) float32 matrix whose element (kk, j) is data[kk * row_stride + j * col_stride],
// rounded to bfloat16 and laid out as AMX tiles: for each block of 16 columns, for each block of
// 32 rows, a 16 x 32 tile whose row p holds the pairs (2p, 2p + 1) of each column (zero-padded).
class AmxMatrix {
 public:
  AmxMatrix(const float* data, int64_t row_stride, int64_t col_stride, int64_t k, int64_t n);

  int64_t k() const { return k_; }
  int64_t n() const { return n_; }
  int64_t depth_blocks() const { return depth_blocks_; }
  int64_t column_tiles() const { return column_tiles_; }
  const uint16_t* tiles() const { return reinterpret_cast<const uint16_t*>(tiles_.data_ptr()); }

 private:
  int64_t k_, n_, depth_blocks_, column_tiles_;
  at::Tensor tiles_;
};

// c (m, n) = a (m, k) b, or c += a b for `accumulate`, where a's rows are a_row floats apart
// (unit column stride) and c's ldc apart: a and b rounded to bfloat16, the products summed in
// float32. Runs on at::get_num_threads() threads unless the product is small or this is called
// inside a parallel region. Requires amx_available().
void amx_product(int64_t m, const float* a, int64_t a_row, const AmxMatrix& b, float* c,
                 int64_t ldc, bool accumulate);

// The same product with AVX512-BF16 dot products; requires avx512_bf16_available().
void avx512_bf16_product(int64_t m, const float* a, int64_t a_row, const AmxMatrix& b, float* c,
                         int64_t ldc, bool accumulate);

// The same product on AMX where it runs, else with AVX512-BF16; requires
// bf16_kernels_available().
inline void bf16_product(int64_t m, const float* a, int64_t a_row, const AmxMatrix& b, float* c,
                         int64_t ldc, bool accumulate) {
  if (amx_available()) {
    amx_product(m, a, a_row, b, c, ldc, accumulate);
  } else {
    avx512_bf16_product(m, a, a_row, b, c, ldc, accumulate);
  }
}

}  // namespace rnnkit
