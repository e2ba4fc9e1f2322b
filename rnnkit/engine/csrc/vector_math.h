// Fixed-width SIMD vectors and the activation functions of the recurrent cells.
//
// The vectors are GCC/Clang vector extensions 64 bytes wide (16 floats, 8 doubles): the compiler
// maps them onto whatever the target has (one AVX-512 register, two AVX2 or four SSE registers),
// so the same source serves every instruction set the kernels are cloned for (see pointwise.cpp).
// float uses branch-free polynomials for exp and log and a rational tanh, vectorised and accurate
// to a few units in the last place; double (used for gradient checks) calls the C library per
// lane.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#define RNNKIT_INLINE inline __attribute__((always_inline))
// Lambdas that must be inlined into their caller, so that constant chunk sizes propagate.
#define RNNKIT_INLINE_LAMBDA __attribute__((always_inline))

namespace rnnkit {

template <typename scalar_t>
struct Vec;

template <>
struct Vec<float> {
  using type = float __attribute__((vector_size(64)));
  using bits = int32_t __attribute__((vector_size(64)));
  static constexpr int64_t lanes = 16;
};

template <>
struct Vec<double> {
  using type = double __attribute__((vector_size(64)));
  static constexpr int64_t lanes = 8;
};

template <typename scalar_t>
using vec_t = typename Vec<scalar_t>::type;

// Loads and stores of `count` lanes (count < lanes only at the end of a row; the rest reads 0).
template <typename scalar_t>
RNNKIT_INLINE vec_t<scalar_t> load(const scalar_t* source, int64_t count) {
  vec_t<scalar_t> value = {};
  std::memcpy(&value, source, count * sizeof(scalar_t));
  return value;
}

template <typename scalar_t>
RNNKIT_INLINE void store(scalar_t* target, vec_t<scalar_t> value, int64_t count) {
  std::memcpy(target, &value, count * sizeof(scalar_t));
}

template <typename scalar_t>
RNNKIT_INLINE vec_t<scalar_t> broadcast(scalar_t value) {
  return vec_t<scalar_t>{} + value;
}

RNNKIT_INLINE vec_t<float> clamp(vec_t<float> x, float low, float high) {
  x = x < low ? broadcast(low) : x;
  return x > high ? broadcast(high) : x;
}

// exp(x): Cody-Waite range reduction x = n ln2 + r, a degree-6 polynomial for e^r (Cephes
// constants), 2^n built in the exponent bits. Relative error below 1e-7 on [-87, 88].
RNNKIT_INLINE vec_t<float> exp(vec_t<float> x) {
  x = clamp(x, -87.3f, 88.0f);
  // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer without a rounding call.
  const float round_magic = 12582912.0f;
  vec_t<float> n = (x * 1.44269504088896341f + round_magic) - round_magic;
  vec_t<float> r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  vec_t<float> p = broadcast(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  Vec<float>::bits exponent = (__builtin_convertvector(n, Vec<float>::bits) + 127) << 23;
  return p * (vec_t<float>)exponent;  // a same-size vector cast reinterprets the bits
}

// log(x) for normal x > 0 (Cephes): x = m 2^e with m in [sqrt(1/2), sqrt(2)), a degree-9
// polynomial for log(m). Relative error below 2e-7.
RNNKIT_INLINE vec_t<float> log(vec_t<float> x) {
  using bits_t = Vec<float>::bits;
  const bits_t bits = (bits_t)x;
  bits_t exponent = ((bits >> 23) & 0xff) - 126;
  // The mantissa with the exponent of 0.5: m in [0.5, 1).
  vec_t<float> m = (vec_t<float>)((bits & static_cast<int32_t>(0x807fffff)) | 0x3f000000);
  const auto small = m < 0.707106781186547524f;
  exponent = small ? exponent - 1 : exponent;
  m = small ? m + m - 1.0f : m - 1.0f;
  const vec_t<float> e = __builtin_convertvector(exponent, vec_t<float>);
  const vec_t<float> z = m * m;
  vec_t<float> p = broadcast(7.0376836292e-2f);
  p = p * m - 1.1514610310e-1f;
  p = p * m + 1.1676998740e-1f;
  p = p * m - 1.2420140846e-1f;
  p = p * m + 1.4249322787e-1f;
  p = p * m - 1.6668057665e-1f;
  p = p * m + 2.0000714765e-1f;
  p = p * m - 2.4999993993e-1f;
  p = p * m + 3.3333331174e-1f;
  p = p * m * z + e * -2.12194440e-4f - 0.5f * z;
  return m + p + e * 0.693359375f;
}

// log(1 + u) for u >= 0, exact to rounding also for tiny u: the factor u / ((1 + u) - 1) undoes
// the rounding of 1 + u.
RNNKIT_INLINE vec_t<float> log1p(vec_t<float> u) {
  const vec_t<float> w = 1.0f + u;
  return w == 1.0f ? u : log(w) * (u / (w - 1.0f));
}

// log(1 + exp(x)) without overflow.
RNNKIT_INLINE vec_t<float> softplus(vec_t<float> x) {
  const vec_t<float> magnitude = x < 0 ? -x : x;
  return (x > 0 ? x : vec_t<float>{}) + log1p(exp(-magnitude));
}

RNNKIT_INLINE vec_t<float> sigmoid(vec_t<float> x) {
  return 1.0f / (1.0f + exp(-x));
}

// tanh(x) as a rational function of x (Eigen's fast tanh), accurate to 4e-7 absolute; unlike
// 2 sigmoid(2x) - 1 it keeps its relative precision near 0.
RNNKIT_INLINE vec_t<float> tanh(vec_t<float> x) {
  x = clamp(x, -7.90531110763549805f, 7.90531110763549805f);
  const vec_t<float> x2 = x * x;
  vec_t<float> p = broadcast(-2.76076847742355e-16f);
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  vec_t<float> q = broadcast(1.19825839466702e-06f);
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return x * p / q;
}

template <typename Function>
RNNKIT_INLINE vec_t<double> per_lane(vec_t<double> x, Function function) {
  for (int64_t lane = 0; lane < Vec<double>::lanes; ++lane) {
    x[lane] = function(x[lane]);
  }
  return x;
}

RNNKIT_INLINE vec_t<double> sigmoid(vec_t<double> x) {
  return per_lane(x, [](double v) RNNKIT_INLINE_LAMBDA { return 1.0 / (1.0 + std::exp(-v)); });
}

RNNKIT_INLINE vec_t<double> tanh(vec_t<double> x) {
  return per_lane(x, [](double v) RNNKIT_INLINE_LAMBDA { return std::tanh(v); });
}

RNNKIT_INLINE vec_t<double> softplus(vec_t<double> x) {
  return per_lane(x, [](double v) RNNKIT_INLINE_LAMBDA {
    return std::max(v, 0.0) + std::log1p(std::exp(-std::fabs(v)));
  });
}

// max(x, 0) and its derivative expressed through the output y = max(x, 0): 1 where y > 0.
template <typename V>
RNNKIT_INLINE V relu(V x) {
  return x > 0 ? x : V{};
}

template <typename V>
RNNKIT_INLINE V relu_slope(V y) {
  return y > 0 ? V{} + 1 : V{};
}

}  // namespace rnnkit
