// sid-ts native kernels: batched matrix products.
#include "matmul.h"

#include <cblas.h>

#include <algorithm>

#include "parallel.h"

namespace sid {

void batchMatMul(const float* a, const float* b, float* c, int64_t batch, int64_t batchA, int64_t batchB, int64_t m,
                 int64_t k, int64_t n, bool ta, bool tb) {
  const int64_t lda = ta ? m : k, ldb = tb ? k : n;
  const auto opA = ta ? CblasTrans : CblasNoTrans, opB = tb ? CblasTrans : CblasNoTrans;
  if (batch == 1) {
    // Split the rows of c across threads when the product is large enough to pay for it.
    const int64_t parts = (m * n * k > (1 << 20) && m >= 32) ? std::min<int64_t>(threadCount, m / 16) : 1;
    const int64_t rows = (m + parts - 1) / parts;
    auto task = [&](int64_t t, int) {
      const int64_t r0 = t * rows, r = std::min(rows, m - r0);
      if (r <= 0) return;
      cblas_sgemm(CblasRowMajor, opA, opB, r, n, k, 1.f, ta ? a + r0 : a + r0 * k, lda, b, ldb, 0.f, c + r0 * n, n);
    };
    parallelFor(parts, task);
    return;
  }
  auto task = [&](int64_t i, int) {
    cblas_sgemm(CblasRowMajor, opA, opB, m, n, k, 1.f, a + (i % batchA) * m * k, lda, b + (i % batchB) * k * n, ldb,
                0.f, c + i * m * n, n);
  };
  parallelFor(batch, task);
}

}  // namespace sid
