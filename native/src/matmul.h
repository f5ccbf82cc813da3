// sid-ts native kernels: batched matrix products over OpenBLAS sgemm.
#pragma once

#include <cstdint>

namespace sid {

// Batched matrix product: c[i] = op(a[i % batchA]) · op(b[i % batchB]), a: [M,K] (or [K,M] transposed), b: [K,N]
// (or [N,K]), c: [M,N].
void batchMatMul(const float* a, const float* b, float* c, int64_t batch, int64_t batchA, int64_t batchB, int64_t m,
                 int64_t k, int64_t n, bool ta, bool tb);

}  // namespace sid
