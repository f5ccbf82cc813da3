// sid-ts native kernels: sums over axes.
#pragma once

#include <cstdint>
#include <vector>

namespace sid {

// out = scale · Σ over the reduced axes of x (out is zeroed here).
void reduceSum(const float* x, const std::vector<int64_t>& shape, const std::vector<bool>& reduced, float* out,
               int64_t outSize, float scale);

// Over several arrays: out[0] = Σ x² (in double; NaN or Inf when an entry is), out[1] = the number of NaN or ±Inf
// entries.
void gradientStats(const std::vector<const float*>& xs, const std::vector<int64_t>& lengths, double* out);

}  // namespace sid
