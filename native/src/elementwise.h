// sid-ts native kernels: element-wise ops (broadcasting binary ops, sigmoid). Memory-bound: parallel over large
// ranges only.
#pragma once

#include <cstdint>
#include <cstring>
#include <algorithm>
#include <cmath>
#include <vector>

namespace sid {

// out = a op b; op: 0 add, 1 sub, 2 mul, 3 div, 4 squared difference. Shapes are right-aligned to the output's rank
// (missing leading dims are 1) and broadcast to it.
void binary(int op, const float* a, const std::vector<int64_t>& as, const float* b, const std::vector<int64_t>& bs,
            float* o, const std::vector<int64_t>& os);

// e^x for x in [-87, 88]: x = n·ln2 + r with |r| <= ln2/2, e^r by a degree-6 polynomial, 2^n through the exponent
// bits. Branch-free so the loop vectorises; relative error about 2e-7.
inline float fastExp(float x) {
  x = std::min(88.f, std::max(-87.f, x));
  const float n = std::nearbyint(x * 1.44269504088896341f);
  const float r = std::fma(n, -1.428606765330187045e-6f, std::fma(n, -0.693145751953125f, x));
  float p = 1.f / 720;
  p = std::fma(p, r, 1.f / 120);
  p = std::fma(p, r, 1.f / 24);
  p = std::fma(p, r, 1.f / 6);
  p = std::fma(p, r, 0.5f);
  p = std::fma(p, r, 1.f);
  p = std::fma(p, r, 1.f);
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// y = 1 / (1 + e^-x)
void sigmoid(const float* x, float* y, int64_t n);

}  // namespace sid
