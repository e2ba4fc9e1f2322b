// The bfloat16 products of amx.h.
#include "amx.h"

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

// GCC 11 or later on x86-64 (its target pragma below); elsewhere amx_available() is false.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && __GNUC__ >= 11
#define RNNKIT_AMX 1
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace rnnkit {
namespace {

constexpr int64_t kTileRows = 16;                          // rows of every tile
constexpr int64_t kTileDepth = 32;                         // bfloat16 values per row of a tile
constexpr int64_t kTileValues = kTileRows * kTileDepth;    // 1 KB of bfloat16
constexpr int64_t kTileColumns = 16;                       // float32 columns of a result tile
// Below this many multiply-adds a product runs on one thread.
constexpr int64_t kParallelWork = int64_t{1} << 18;
// The AVX512-BF16 kernel's blocks: rows of the left operand by tiles of 16 columns, 24 sums in
// registers (of 32) beside the right operand's 3 vectors and one broadcast.
constexpr int64_t kDotRows = 8;
constexpr int64_t kDotTiles = 3;

#ifdef RNNKIT_AMX
// Only this section is compiled for AMX, and it calls nothing but intrinsics (see gemm.cpp).
#pragma GCC push_options
#pragma GCC target("amx-tile,amx-bf16,avx512f,avx512bf16")

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
};

// out (m_pad, k_pad) = a (m, k) rounded to bfloat16 (a's rows a_row floats apart), zero beyond
// m and k.
void round_rows(int64_t m, int64_t k, const float* a, int64_t a_row, int64_t m_pad,
                int64_t k_pad, uint16_t* out) {
  for (int64_t r = 0; r < m_pad; ++r) {
    for (int64_t kk = 0; kk < k_pad; kk += 16) {
      const int64_t left = r < m ? k - kk : 0;
      const __mmask16 mask = left >= 16  ? __mmask16(0xFFFF)
                             : left <= 0 ? __mmask16(0)
                                         : __mmask16((1u << left) - 1);
      const __m512 x = _mm512_maskz_loadu_ps(mask, a + r * a_row + kk);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + r * k_pad + kk),
                          reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(x)));
    }
  }
}

// Where a result goes: c's rows ldc apart, accumulated into or overwritten.
struct Result {
  float* c;
  int64_t ldc;
  bool accumulate;
};

// The result tile in `tile` into rows row0.. and columns column0.. of the result, keeping
// rows < m and columns < n.
void write_tile(const float* tile, int64_t row0, int64_t column0, int64_t m, int64_t n,
                const Result& result) {
  const int64_t left = n - column0;
  const __mmask16 mask = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
  for (int64_t r = 0; r < kTileRows && row0 + r < m; ++r) {
    float* row = result.c + (row0 + r) * result.ldc + column0;
    __m512 value = _mm512_load_ps(tile + r * kTileColumns);
    if (result.accumulate) {
      value = _mm512_add_ps(value, _mm512_maskz_loadu_ps(mask, row));
    }
    _mm512_mask_storeu_ps(row, mask, value);
  }
}

// One block of the result: one or two tiles of rows by one or two tiles of columns, held in
// tiles 0-3 while the depth is swept (left operand in tiles 4-5, right in 6-7).
template <bool kTwoRows, bool kTwoColumns>
void result_block(const uint16_t* a, int64_t k_pad, const uint16_t* b0, const uint16_t* b1,
                  int64_t depth_blocks, int64_t row0, int64_t column0, int64_t m, int64_t n,
                  const Result& result) {
  const int64_t a_bytes = k_pad * 2;
  _tile_zero(0);
  if constexpr (kTwoColumns) _tile_zero(1);
  if constexpr (kTwoRows) _tile_zero(2);
  if constexpr (kTwoRows && kTwoColumns) _tile_zero(3);
  for (int64_t block = 0; block < depth_blocks; ++block) {
    _tile_loadd(4, a + block * kTileDepth, a_bytes);
    if constexpr (kTwoRows) _tile_loadd(5, a + kTileRows * k_pad + block * kTileDepth, a_bytes);
    _tile_loadd(6, b0 + block * kTileValues, 64);
    if constexpr (kTwoColumns) _tile_loadd(7, b1 + block * kTileValues, 64);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (kTwoColumns) _tile_dpbf16ps(1, 4, 7);
    if constexpr (kTwoRows) _tile_dpbf16ps(2, 5, 6);
    if constexpr (kTwoRows && kTwoColumns) _tile_dpbf16ps(3, 5, 7);
  }
  alignas(64) float tile[kTileRows * kTileColumns];
  _tile_stored(0, tile, 64);
  write_tile(tile, row0, column0, m, n, result);
  if constexpr (kTwoColumns) {
    _tile_stored(1, tile, 64);
    write_tile(tile, row0, column0 + kTileColumns, m, n, result);
  }
  if constexpr (kTwoRows) {
    _tile_stored(2, tile, 64);
    write_tile(tile, row0 + kTileRows, column0, m, n, result);
  }
  if constexpr (kTwoRows && kTwoColumns) {
    _tile_stored(3, tile, 64);
    write_tile(tile, row0 + kTileRows, column0 + kTileColumns, m, n, result);
  }
}

// Column tiles [2 * begin, 2 * end) of the result, every row, on the calling thread.
void column_pairs(int64_t begin, int64_t end, const uint16_t* a, int64_t m, int64_t k_pad,
                  const uint16_t* b, int64_t depth_blocks, int64_t column_tiles, int64_t n,
                  const Result& result) {
  TileConfig config;
  for (int tile = 0; tile < 8; ++tile) {
    config.rows[tile] = kTileRows;
    config.bytes_per_row[tile] = 64;
  }
  _tile_loadconfig(&config);
  const int64_t row_tiles = (m + kTileRows - 1) / kTileRows;
  for (int64_t pair = begin; pair < end; ++pair) {
    const int64_t tile0 = 2 * pair;
    const bool two_columns = tile0 + 1 < column_tiles;
    const uint16_t* b0 = b + tile0 * depth_blocks * kTileValues;
    const uint16_t* b1 = b0 + depth_blocks * kTileValues;
    for (int64_t row_tile = 0; row_tile < row_tiles; row_tile += 2) {
      const bool two_rows = row_tile + 1 < row_tiles;
      const uint16_t* rows = a + row_tile * kTileRows * k_pad;
      const int64_t row0 = row_tile * kTileRows, column0 = tile0 * kTileColumns;
      if (two_rows && two_columns) {
        result_block<true, true>(rows, k_pad, b0, b1, depth_blocks, row0, column0, m, n, result);
      } else if (two_rows) {
        result_block<true, false>(rows, k_pad, b0, b1, depth_blocks, row0, column0, m, n,
                                  result);
      } else if (two_columns) {
        result_block<false, true>(rows, k_pad, b0, b1, depth_blocks, row0, column0, m, n,
                                  result);
      } else {
        result_block<false, false>(rows, k_pad, b0, b1, depth_blocks, row0, column0, m, n,
                                   result);
      }
    }
  }
  _tile_release();
}

// Rows [row0, row0 + kDotRows) of the left operand `a` (bfloat16, rows k_pad apart, zero-padded
// to kDotRows) by the kColumnTiles column tiles from tile0 of `b`: for each depth pair p of each
// block, row p of a tile holds the pairs (2p, 2p + 1) of its 16 columns, so one vdpbf16ps with
// the row's pair broadcast adds both products to 16 sums. Rows >= m and columns >= n are not
// written.
template <int kColumnTiles>
void dot_block(const uint16_t* a, int64_t k_pad, const uint16_t* b, int64_t depth_blocks,
               int64_t row0, int64_t tile0, int64_t m, int64_t n, const Result& result) {
  __m512 sums[kDotRows][kColumnTiles];
#pragma GCC unroll 8
  for (int r = 0; r < kDotRows; ++r) {
#pragma GCC unroll 3
    for (int t = 0; t < kColumnTiles; ++t) {
      sums[r][t] = _mm512_setzero_ps();
    }
  }
  const uint16_t* rows = a + row0 * k_pad;
  const int64_t tile_stride = depth_blocks * kTileValues;
  for (int64_t block = 0; block < depth_blocks; ++block) {
    const uint16_t* tiles = b + (tile0 * depth_blocks + block) * kTileValues;
    for (int64_t p = 0; p < kTileRows; ++p) {
      __m512bh right[kColumnTiles];
#pragma GCC unroll 3
      for (int t = 0; t < kColumnTiles; ++t) {
        right[t] = reinterpret_cast<__m512bh>(
            _mm512_loadu_si512(tiles + t * tile_stride + p * kTileDepth));
      }
      const int64_t depth = block * kTileDepth + 2 * p;
#pragma GCC unroll 8
      for (int r = 0; r < kDotRows; ++r) {
        int32_t pair;
        std::memcpy(&pair, rows + r * k_pad + depth, sizeof(pair));
        const __m512bh left = reinterpret_cast<__m512bh>(_mm512_set1_epi32(pair));
#pragma GCC unroll 3
        for (int t = 0; t < kColumnTiles; ++t) {
          sums[r][t] = _mm512_dpbf16_ps(sums[r][t], left, right[t]);
        }
      }
    }
  }
  for (int r = 0; r < kDotRows && row0 + r < m; ++r) {
    float* row = result.c + (row0 + r) * result.ldc;
    for (int t = 0; t < kColumnTiles; ++t) {
      const int64_t column0 = (tile0 + t) * kTileColumns, left = n - column0;
      const __mmask16 mask = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
      __m512 value = sums[r][t];
      if (result.accumulate) {
        value = _mm512_add_ps(value, _mm512_maskz_loadu_ps(mask, row + column0));
      }
      _mm512_mask_storeu_ps(row + column0, mask, value);
    }
  }
}

// Groups [begin, end) of kDotTiles column tiles of the result, every row, on the calling thread.
void dot_columns(int64_t begin, int64_t end, const uint16_t* a, int64_t m, int64_t k_pad,
                 const uint16_t* b, int64_t depth_blocks, int64_t column_tiles, int64_t n,
                 const Result& result) {
  for (int64_t group = begin; group < end; ++group) {
    const int64_t tile0 = group * kDotTiles;
    const int64_t tiles = std::min(kDotTiles, column_tiles - tile0);
    for (int64_t row0 = 0; row0 < m; row0 += kDotRows) {
      if (tiles == 3) {
        dot_block<3>(a, k_pad, b, depth_blocks, row0, tile0, m, n, result);
      } else if (tiles == 2) {
        dot_block<2>(a, k_pad, b, depth_blocks, row0, tile0, m, n, result);
      } else {
        dot_block<1>(a, k_pad, b, depth_blocks, row0, tile0, m, n, result);
      }
    }
  }
}

// Column tiles [tile_begin, tile_end) of op(B) (see AmxMatrix) into `out`: each row of a tile,
// the pairs (2p, 2p + 1) of 16 columns, is two gathers of 16 floats and one rounding to
// bfloat16. Masked lanes (past k or n) read nothing and give zeros.
void pack_tiles(const float* data, int64_t row_stride, int64_t col_stride, int64_t k, int64_t n,
                int64_t depth_blocks, int64_t tile_begin, int64_t tile_end, uint16_t* out) {
  alignas(64) int32_t low_index[16], high_index[16];
  for (int v = 0; v < 16; ++v) {  // value v of a half-row: column v / 2, row parity v % 2
    low_index[v] = static_cast<int32_t>((v % 2) * row_stride + (v / 2) * col_stride);
    high_index[v] = static_cast<int32_t>((v % 2) * row_stride + (v / 2 + 8) * col_stride);
  }
  const __m512i low = _mm512_load_si512(low_index), high = _mm512_load_si512(high_index);
  for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
    const int64_t column0 = tile * kTileColumns;
    __mmask16 low_columns = 0, high_columns = 0;  // lanes whose column is < n
    for (int v = 0; v < 16; ++v) {
      low_columns |= column0 + v / 2 < n ? __mmask16(1u << v) : __mmask16(0);
      high_columns |= column0 + v / 2 + 8 < n ? __mmask16(1u << v) : __mmask16(0);
    }
    for (int64_t block = 0; block < depth_blocks; ++block) {
      uint16_t* tile_out = out + (tile * depth_blocks + block) * kTileValues;
      for (int64_t p = 0; p < kTileRows; ++p) {
        const int64_t row = block * kTileDepth + 2 * p;
        const __mmask16 rows = row + 1 < k ? __mmask16(0xFFFF)
                               : row < k   ? __mmask16(0x5555)  // the even row only
                                           : __mmask16(0);
        const float* base = data + (row < k ? row : k - 1) * row_stride + column0 * col_stride;
        const __m512 first = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), rows & low_columns,
                                                      low, base, 4);
        const __m512 second = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), rows & high_columns,
                                                       high, base, 4);
        _mm512_storeu_si512(tile_out + p * kTileDepth,
                            reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(second, first)));
      }
    }
  }
}

#pragma GCC pop_options
#endif  // RNNKIT_AMX

}  // namespace

bool avx512_bf16_available() {
  static const bool available = [] {
    const char* setting = std::getenv("RNNKIT_AMX");  // "0" turns both kernels off
    if (setting != nullptr && std::string_view(setting) == "0") {
      return false;
    }
#ifdef RNNKIT_AMX
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) || !((ebx >> 16) & 1)) {  // AVX512-F
      return false;
    }
    return __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && ((eax >> 5) & 1);  // AVX512-BF16
#else
    return false;
#endif
  }();
  return available;
}

bool amx_available() {
  static const bool available = [] {
#ifdef RNNKIT_AMX
    // The AMX kernel also uses AVX512-F and AVX512-BF16 (and obeys RNNKIT_AMX the same way).
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!avx512_bf16_available() || !__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) ||
        !((edx >> 22) & 1) || !((edx >> 24) & 1)) {  // AMX-BF16, AMX-TILE
      return false;
    }
    // Linux hands out the tile registers' state only on request (ARCH_REQ_XCOMP_PERM for
    // XFEATURE_XTILEDATA); the permission holds for every thread of the process.
    constexpr long kRequestPermission = 0x1023, kTileData = 18;
    return syscall(SYS_arch_prctl, kRequestPermission, kTileData) == 0;
#else
    return false;
#endif
  }();
  return available;
}

AmxMatrix::AmxMatrix(const float* data, int64_t row_stride, int64_t col_stride, int64_t k,
                     int64_t n)
    : k_(k),
      n_(n),
      depth_blocks_((k + kTileDepth - 1) / kTileDepth),
      column_tiles_((n + kTileColumns - 1) / kTileColumns) {
  tiles_ = at::empty({column_tiles_ * depth_blocks_ * kTileValues}, at::kShort);
#ifdef RNNKIT_AMX
  auto* out = reinterpret_cast<uint16_t*>(tiles_.data_ptr());
  at::parallel_for(0, column_tiles_, 1, [&](int64_t begin, int64_t end) {
    pack_tiles(data, row_stride, col_stride, k, n, depth_blocks_, begin, end, out);
  });
#endif
}

void amx_product(int64_t m, const float* a, int64_t a_row, const AmxMatrix& b, float* c,
                 int64_t ldc, bool accumulate) {
  TORCH_CHECK(amx_available(), "amx_product: AMX is not available");
#ifdef RNNKIT_AMX
  const int64_t k_pad = b.depth_blocks() * kTileDepth;
  const int64_t row_tiles = (m + kTileRows - 1) / kTileRows;
  thread_local std::vector<uint16_t> rounded;
  if (static_cast<int64_t>(rounded.size()) < row_tiles * kTileRows * k_pad) {
    rounded.resize(row_tiles * kTileRows * k_pad);
  }
  round_rows(m, b.k(), a, a_row, row_tiles * kTileRows, k_pad, rounded.data());
  const uint16_t* left = rounded.data();
  const Result result{c, ldc, accumulate};
  const int64_t pairs = (b.column_tiles() + 1) / 2;
  const auto run = [&](int64_t begin, int64_t end) {
    column_pairs(begin, end, left, m, k_pad, b.tiles(), b.depth_blocks(), b.column_tiles(),
                 b.n(), result);
  };
  if (m * b.k() * b.n() < kParallelWork || at::get_num_threads() <= 1) {
    run(0, pairs);
  } else {
    at::parallel_for(0, pairs, 1, run);
  }
#endif
}

void avx512_bf16_product(int64_t m, const float* a, int64_t a_row, const AmxMatrix& b, float* c,
                         int64_t ldc, bool accumulate) {
  TORCH_CHECK(avx512_bf16_available(), "avx512_bf16_product: AVX512-BF16 is not available");
#ifdef RNNKIT_AMX
  const int64_t k_pad = b.depth_blocks() * kTileDepth;
  const int64_t m_pad = (m + kDotRows - 1) / kDotRows * kDotRows;
  thread_local std::vector<uint16_t> rounded;
  if (static_cast<int64_t>(rounded.size()) < m_pad * k_pad) {
    rounded.resize(m_pad * k_pad);
  }
  round_rows(m, b.k(), a, a_row, m_pad, k_pad, rounded.data());
  const uint16_t* left = rounded.data();
  const Result result{c, ldc, accumulate};
  const int64_t groups = (b.column_tiles() + kDotTiles - 1) / kDotTiles;
  const auto run = [&](int64_t begin, int64_t end) {
    dot_columns(begin, end, left, m, k_pad, b.tiles(), b.depth_blocks(), b.column_tiles(), b.n(),
                result);
  };
  if (m * b.k() * b.n() < kParallelWork || at::get_num_threads() <= 1) {
    run(0, groups);
  } else {
    at::parallel_for(0, groups, 1, run);
  }
#endif
}

}  // namespace rnnkit
