// The float32 matrix products of gemm.h.
#include "gemm.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "recurrence.h"

// GCC on x86-64 (its target pragma below); elsewhere own_gemm() is false and the libraries run.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define RNNKIT_OWN_GEMM 1
#include <immintrin.h>
#endif

namespace rnnkit {
namespace {

constexpr int64_t kPanel = 32;  // columns per panel: two 16-lane vectors
constexpr int64_t kRows = 8;    // rows of the result held in registers at once (16 vectors)
// Rows of a panel used per pass over a register block; a block of the result is read and
// written once per pass. Longer passes would push the left operand's rows out of L1.
constexpr int64_t kDepth = 512;
// Panels swept by one block of rows before the next block: about a quarter of a core's L2, so
// they are read from L2 by every block of rows after the first.
constexpr int64_t kGroupBytes = int64_t{256} << 10;
// Below this many flops a product runs on one thread.
constexpr int64_t kParallelFlops = int64_t{1} << 21;

#ifdef RNNKIT_OWN_GEMM
// Only this section is compiled for AVX-512F, and it calls nothing but intrinsics: functions
// from headers instantiated here could be merged by the linker with their generic copies.
#pragma GCC push_options
#pragma GCC target("avx512f")

// c[0:R, 0:32] = a[0:R, 0:depth] panel[0:depth, 0:32] (+ c for `accumulate`), storing only the
// columns set in the two masks (a partial last panel).
// Blocks of fewer than four rows accumulate even and odd kk separately: otherwise they would
// wait on the latency of their few chains of dependent multiply-adds.
template <int R>
void register_block(int64_t depth, const float* a, int64_t a_row, int64_t a_col,
                    const float* panel, float* c, int64_t ldc, __mmask16 low, __mmask16 high,
                    bool accumulate) {
  constexpr int kChains = R < 4 ? 2 : 1;
  __m512 left[kChains][R], right[kChains][R];
  for (int chain = 0; chain < kChains; ++chain) {
    for (int r = 0; r < R; ++r) {
      left[chain][r] = _mm512_setzero_ps();
      right[chain][r] = _mm512_setzero_ps();
    }
  }
  if (accumulate) {  // the block of c is read at the end: start fetching it now
    for (int r = 0; r < R; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 16), _MM_HINT_T0);
    }
  }
  int64_t kk = 0;
  for (; kk + kChains <= depth; kk += kChains) {
    for (int chain = 0; chain < kChains; ++chain) {
      const __m512 b0 = _mm512_loadu_ps(panel + (kk + chain) * kPanel);
      const __m512 b1 = _mm512_loadu_ps(panel + (kk + chain) * kPanel + 16);
      const float* column = a + (kk + chain) * a_col;
      for (int r = 0; r < R; ++r) {
        const __m512 x = _mm512_set1_ps(column[r * a_row]);
        left[chain][r] = _mm512_fmadd_ps(x, b0, left[chain][r]);
        right[chain][r] = _mm512_fmadd_ps(x, b1, right[chain][r]);
      }
    }
  }
  if (kk < depth) {  // an odd last kk
    const __m512 b0 = _mm512_loadu_ps(panel + kk * kPanel);
    const __m512 b1 = _mm512_loadu_ps(panel + kk * kPanel + 16);
    for (int r = 0; r < R; ++r) {
      const __m512 x = _mm512_set1_ps(a[kk * a_col + r * a_row]);
      left[0][r] = _mm512_fmadd_ps(x, b0, left[0][r]);
      right[0][r] = _mm512_fmadd_ps(x, b1, right[0][r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    __m512 left_sum = left[0][r], right_sum = right[0][r];
    if constexpr (kChains == 2) {
      left_sum = _mm512_add_ps(left_sum, left[1][r]);
      right_sum = _mm512_add_ps(right_sum, right[1][r]);
    }
    float* row = c + r * ldc;
    if (accumulate) {
      left_sum = _mm512_add_ps(left_sum, _mm512_maskz_loadu_ps(low, row));
      right_sum = _mm512_add_ps(right_sum, _mm512_maskz_loadu_ps(high, row + 16));
    }
    _mm512_mask_storeu_ps(row, low, left_sum);
    _mm512_mask_storeu_ps(row + 16, high, right_sum);
  }
}

using RegisterBlock = void (*)(int64_t, const float*, int64_t, int64_t, const float*, float*,
                               int64_t, __mmask16, __mmask16, bool);
constexpr RegisterBlock kRegisterBlocks[kRows + 1] = {
    nullptr,           register_block<1>, register_block<2>, register_block<3>, register_block<4>,
    register_block<5>, register_block<6>, register_block<7>, register_block<8>};

// c[:, columns of panels [first, last)] (+)= a b over all m rows.
void sweep(int64_t m, const float* a, int64_t a_row, int64_t a_col, const float* panels,
           int64_t k, int64_t n, int64_t first, int64_t last, float* c, int64_t ldc,
           bool accumulate) {
  const int64_t depth_max = k < kDepth ? k : kDepth;
  const int64_t group_panels = kGroupBytes / (depth_max * kPanel * 4);
  const int64_t group = group_panels > 1 ? group_panels : 1;
  for (int64_t begin = first; begin < last; begin += group) {
    const int64_t end = begin + group < last ? begin + group : last;
    for (int64_t k0 = 0; k0 < k; k0 += kDepth) {
      const int64_t depth = k - k0 < kDepth ? k - k0 : kDepth;
      const bool add = accumulate || k0 > 0;
      for (int64_t i = 0; i < m; i += kRows) {
        const RegisterBlock block = kRegisterBlocks[m - i < kRows ? m - i : kRows];
        const float* a_rows = a + i * a_row + k0 * a_col;
        for (int64_t p = begin; p < end; ++p) {
          const int64_t columns = n - p * kPanel;
          const __mmask16 low = columns >= 16 ? 0xFFFF : (1u << columns) - 1;
          const __mmask16 high =
              columns >= 32 ? 0xFFFF : (columns > 16 ? (1u << (columns - 16)) - 1 : 0);
          block(depth, a_rows, a_row, a_col, panels + (p * k + k0) * kPanel,
                c + i * ldc + p * kPanel, ldc, low, high, add);
        }
      }
    }
  }
}

#pragma GCC pop_options
#endif

}  // namespace

bool own_gemm() {
#ifdef RNNKIT_OWN_GEMM
  static const bool chosen = [] {
    const char* setting = std::getenv("RNNKIT_PRODUCTS");
    return __builtin_cpu_supports("avx512f") &&
           !(setting != nullptr && std::string_view(setting) == "library");
  }();
  return chosen;
#else
  return false;
#endif
}

PackedMatrix::PackedMatrix(const float* data, int64_t row_stride, int64_t col_stride, int64_t k,
                           int64_t n)
    : k_(k), n_(n) {
  const int64_t panels = (n + kPanel - 1) / kPanel;
  panels_ = pooled_empty({panels * k * kPanel}, at::TensorOptions().dtype(at::kFloat));
  float* out = panels_.data_ptr<float>();
  at::parallel_for(0, panels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      float* panel = out + p * k * kPanel;
      const int64_t columns = std::min(kPanel, n - p * kPanel);
      const float* source = data + p * kPanel * col_stride;
      if (col_stride == 1) {
        for (int64_t kk = 0; kk < k; ++kk) {
          std::memcpy(panel + kk * kPanel, source + kk * row_stride, columns * sizeof(float));
          std::fill(panel + kk * kPanel + columns, panel + (kk + 1) * kPanel, 0.0f);
        }
        continue;
      }
      for (int64_t j = 0; j < kPanel; ++j) {
        for (int64_t kk = 0; kk < k; ++kk) {
          panel[kk * kPanel + j] = j < columns ? source[j * col_stride + kk * row_stride] : 0.0f;
        }
      }
    }
  });
}

void packed_product(int64_t m, const float* a, int64_t a_row, int64_t a_col, const PackedMatrix& b,
                    float* c, int64_t ldc, bool accumulate) {
  TORCH_CHECK(own_gemm(), "packed_product: rnnkit's own matrix products are not available");
#ifdef RNNKIT_OWN_GEMM
  const int64_t k = b.k(), n = b.n();
  if (m == 0 || n == 0) {
    return;
  }
  if (k == 0) {
    if (!accumulate) {
      for (int64_t i = 0; i < m; ++i) {
        std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
      }
    }
    return;
  }
  const int64_t panels = (n + kPanel - 1) / kPanel;
  const int64_t threads = at::get_num_threads();
  if (threads <= 1 || panels < 2 || at::in_parallel_region() || 2 * m * n * k < kParallelFlops) {
    sweep(m, a, a_row, a_col, b.panels(), k, n, 0, panels, c, ldc, accumulate);
    return;
  }
  const int64_t per_thread = (panels + threads - 1) / threads;
  at::parallel_for(0, panels, per_thread, [&](int64_t first, int64_t last) {
    sweep(m, a, a_row, a_col, b.panels(), k, n, first, last, c, ldc, accumulate);
  });
#endif
}

void own_matmul(at::Tensor& out, const at::Tensor& a, const at::Tensor& b, bool accumulate) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && out.dim() == 2 && a.size(1) == b.size(0) &&
                  out.size(0) == a.size(0) && out.size(1) == b.size(1),
              "own_matmul: expected out (m, n), a (m, k), b (k, n); got ", out.sizes(), ", ",
              a.sizes(), ", ", b.sizes());
  TORCH_CHECK(a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat &&
                  out.scalar_type() == at::kFloat && out.stride(1) == 1,
              "own_matmul: expected float32 tensors, out with unit column stride");
  const PackedMatrix packed(b.data_ptr<float>(), b.stride(0), b.stride(1), b.size(0), b.size(1));
  packed_product(a.size(0), a.data_ptr<float>(), a.stride(0), a.stride(1), packed,
                 out.data_ptr<float>(), out.stride(0), accumulate);
}

}  // namespace rnnkit
