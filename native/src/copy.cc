// sid-ts native kernels: data movement.
#include "copy.h"

#include <algorithm>
#include <cstring>

#include "parallel.h"

namespace sid {

// dst[r * dstStride + dstOffset + i] = src[r * srcStride + srcOffset + i] for r < rows, i < rowLength.
void copyRows(const float* src, int64_t srcStride, int64_t srcOffset, float* dst, int64_t dstStride, int64_t dstOffset,
              int64_t rows, int64_t rowLength) {
  const int64_t perTask = std::max<int64_t>(1, kGrain / std::max<int64_t>(1, rowLength));
  const int64_t tasks = (rows + perTask - 1) / perTask;
  auto task = [&](int64_t t, int) {
    const int64_t r1 = std::min(rows, (t + 1) * perTask);
    for (int64_t r = t * perTask; r < r1; ++r)
      std::memcpy(dst + r * dstStride + dstOffset, src + r * srcStride + srcOffset, sizeof(float) * rowLength);
  };
  parallelFor(tasks, task);
}

// dx[b, rows[y], cols[x], c] += dy[b, y, x, c]; dx is zeroed here.
void resizeNearestGrad(const float* dy, float* dx, int64_t batch, int64_t inH, int64_t inW, int64_t outH, int64_t outW,
                       int64_t depth, const int32_t* rows, const int32_t* cols) {
  auto task = [&](int64_t b, int) {
    float* img = dx + b * inH * inW * depth;
    std::fill_n(img, inH * inW * depth, 0.f);
    const float* src = dy + b * outH * outW * depth;
    for (int64_t y = 0; y < outH; ++y) {
      float* row = img + int64_t(rows[y]) * inW * depth;
      for (int64_t x = 0; x < outW; ++x) {
        float* d = row + int64_t(cols[x]) * depth;
        const float* s = src + (y * outW + x) * depth;
        for (int64_t c = 0; c < depth; ++c) d[c] += s[c];
      }
    }
  };
  parallelFor(batch, task);
}

}  // namespace sid
