// sid-ts native kernels: data movement (strided row copies for split / concat, the nearest-neighbour resize
// gradient).
#pragma once

#include <cstdint>

namespace sid {

// dst[r * dstStride + dstOffset + i] = src[r * srcStride + srcOffset + i] for r < rows, i < rowLength.
void copyRows(const float* src, int64_t srcStride, int64_t srcOffset, float* dst, int64_t dstStride, int64_t dstOffset,
              int64_t rows, int64_t rowLength);

// dx[b, rows[y], cols[x], c] += dy[b, y, x, c]; dx is zeroed here.
void resizeNearestGrad(const float* dy, float* dx, int64_t batch, int64_t inH, int64_t inW, int64_t outH, int64_t outW,
                       int64_t depth, const int32_t* rows, const int32_t* cols);

}  // namespace sid
