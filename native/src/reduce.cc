// sid-ts native kernels: sums over axes.
#include "reduce.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "parallel.h"

namespace sid {
namespace {

struct RDim {
  int64_t n;
  bool reduced;
  int64_t outStride;
};

}  // namespace

// out = scale · Σ over the reduced axes of x (out is zeroed here).
void reduceSum(const float* x, const std::vector<int64_t>& shape, const std::vector<bool>& reduced, float* out,
               int64_t outSize, float scale) {
  std::vector<RDim> dims;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 1) continue;
    if (!dims.empty() && dims.back().reduced == bool(reduced[i])) {
      dims.back().n *= shape[i];
    } else {
      dims.push_back(RDim{shape[i], bool(reduced[i]), 0});
    }
  }
  if (dims.empty()) dims.push_back(RDim{1, false, 0});
  int64_t s = 1;
  for (int64_t d = static_cast<int64_t>(dims.size()) - 1; d >= 0; --d) {
    if (!dims[d].reduced) {
      dims[d].outStride = s;
      s *= dims[d].n;
    }
  }
  if (dims.size() >= 3 && dims.back().reduced && dims.back().n < 16) {
    // Sum the short innermost reduced run last: accumulate with it kept (wide contiguous adds), then fold it.
    const int64_t n = dims.back().n;
    std::vector<bool> keptLast(reduced);
    for (int64_t i = static_cast<int64_t>(shape.size()) - 1; i >= 0 && (shape[i] == 1 || reduced[i]); --i)
      keptLast[i] = false;
    std::vector<float> wide(outSize * n);
    reduceSum(x, shape, keptLast, wide.data(), outSize * n, 1.f);
    for (int64_t i = 0; i < outSize; ++i) {
      float acc = 0.f;
      for (int64_t j = 0; j < n; ++j) acc += wide[i * n + j];
      out[i] = acc * scale;
    }
    return;
  }
  const RDim inner = dims.back();
  const RDim first = dims.front();
  const int64_t total = [&] {
    int64_t p = 1;
    for (auto& d : dims) p *= d.n;
    return p;
  }();
  const int64_t perFirst = total / first.n;
  // Accumulates the input under first-dim indices f0 .. f1 into dst (indexed like out); needs at least two collapsed
  // dims. The last two collapsed dims (one kept, one reduced: they alternate) form a block done by tight loops; the
  // dims before them are walked with an incremental index.
  auto span = [&](int64_t f0, int64_t f1, float* dst) {
    const RDim last = dims.back();
    const RDim prev = dims[dims.size() - 2];
    const int64_t block = last.n * prev.n;
    const int64_t nd = static_cast<int64_t>(dims.size()) - 2;
    const int64_t blocksPerFirst = nd == 0 ? 1 : perFirst / block;
    const int64_t b0 = nd == 0 ? f0 : f0 * blocksPerFirst, b1 = nd == 0 ? f1 : f1 * blocksPerFirst;
    const int64_t fb0 = nd == 0 ? 0 : b0;  // block index for the walk over dims[0 .. nd)
    int64_t idx[16] = {0};
    int64_t rem = fb0, off = 0;
    for (int64_t d = nd - 1; d >= 0; --d) {
      idx[d] = rem % dims[d].n;
      rem /= dims[d].n;
      off += idx[d] * dims[d].outStride;
    }
    for (int64_t blk = b0; blk < b1; ++blk) {
      // With nd == 0 the "block" is one index of prev (the first dim) times last.
      const float* src = nd == 0 ? x + blk * last.n : x + blk * block;
      const int64_t rows = nd == 0 ? 1 : prev.n;
      const int64_t base = nd == 0 ? off + blk * prev.outStride : off;
      if (last.reduced) {
        for (int64_t i1 = 0; i1 < rows; ++i1) {
          const float* s = src + i1 * last.n;
          float acc[8] = {0};
          int64_t i = 0;
          for (; i + 8 <= last.n; i += 8)
            for (int j = 0; j < 8; ++j) acc[j] += s[i + j];
          float sum = 0.f;
          for (int j = 0; j < 8; ++j) sum += acc[j];
          for (; i < last.n; ++i) sum += s[i];
          dst[base + i1 * prev.outStride] += sum;
        }
      } else {
        float* d = dst + base;
        for (int64_t i1 = 0; i1 < rows; ++i1) {
          const float* s = src + i1 * last.n;
          for (int64_t i = 0; i < last.n; ++i) d[i] += s[i];
        }
      }
      if (nd > 0) {
        for (int64_t d = nd - 1; d >= 0; --d) {
          off += dims[d].outStride;
          if (++idx[d] < dims[d].n) break;
          off -= dims[d].outStride * dims[d].n;
          idx[d] = 0;
        }
      }
    }
  };
  std::fill_n(out, outSize, 0.f);
  if (dims.size() == 1) {
    if (!inner.reduced) {
      std::memcpy(out, x, sizeof(float) * inner.n);
    } else {
      const int threads = threadCount;
      const int64_t tasks = std::min<int64_t>(threads, std::max<int64_t>(1, inner.n / kGrain));
      std::vector<double> partial(tasks, 0.0);
      const int64_t per = (inner.n + tasks - 1) / tasks;
      auto task = [&](int64_t t, int) {
        const int64_t i0 = t * per, i1 = std::min(inner.n, i0 + per);
        float acc[16] = {0};
        int64_t i = i0;
        for (; i + 16 <= i1; i += 16)
          for (int j = 0; j < 16; ++j) acc[j] += x[i + j];
        double sum = 0;
        for (int j = 0; j < 16; ++j) sum += acc[j];
        for (; i < i1; ++i) sum += x[i];
        partial[t] = sum;
      };
      parallelFor(tasks, task);
      double sum = 0;
      for (double p : partial) sum += p;
      out[0] = static_cast<float>(sum);
    }
  } else if (!first.reduced) {
    const int64_t perTask = std::max<int64_t>(1, kGrain / std::max<int64_t>(1, perFirst));
    const int64_t tasks = (first.n + perTask - 1) / perTask;
    auto task = [&](int64_t t, int) { span(t * perTask, std::min(first.n, (t + 1) * perTask), out); };
    parallelFor(tasks, task);
  } else {
    const int threads = threadCount;
    const int64_t tasks = std::min<int64_t>(threads, std::max<int64_t>(1, total / kGrain));
    const int64_t per = (first.n + tasks - 1) / tasks;
    for (int t = 0; t < tasks; ++t) std::fill_n(ensure(scratch[t].b, outSize), outSize, 0.f);
    auto task = [&](int64_t t, int) {
      const int64_t f0 = t * per, f1 = std::min(first.n, f0 + per);
      if (f0 < f1) span(f0, f1, scratch[t].b.data());
    };
    // Each task owns scratch[t]: run them with one task per index.
    parallelFor(tasks, task);
    for (int64_t t = 0; t < tasks; ++t) {
      const float* p = scratch[t].b.data();
      for (int64_t i = 0; i < outSize; ++i) out[i] += p[i];
    }
  }
  if (scale != 1.f)
    for (int64_t i = 0; i < outSize; ++i) out[i] *= scale;
}

void gradientStats(const std::vector<const float*>& xs, const std::vector<int64_t>& lengths, double* out) {
  double squares = 0;
  int64_t bad = 0;
  for (size_t a = 0; a < xs.size(); ++a) {
    const float* x = xs[a];
    const int64_t n = lengths[a];
    double acc[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
      for (int j = 0; j < 4; ++j) acc[j] += static_cast<double>(x[i + j]) * x[i + j];
    for (; i < n; ++i) acc[0] += static_cast<double>(x[i]) * x[i];
    squares += (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (int64_t j = 0; j < n; ++j) bad += std::isfinite(x[j]) ? 0 : 1;
  }
  out[0] = squares;
  out[1] = static_cast<double>(bad);
}

}  // namespace sid
