// sid-ts native kernels: sums over axes.
#pragma once

#include <cstdint>
#include <vector>

namespace sid {

// out = scale · Σ over the reduced axes of x (out is zeroed here).
void reduceSum(const float* x, const std::vector<int64_t>& shape, const std::vector<bool>& reduced, float* out,
               int64_t outSize, float scale);

}  // namespace sid
