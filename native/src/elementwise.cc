// sid-ts native kernels: element-wise ops.
#include "elementwise.h"

#include "parallel.h"

namespace sid {
namespace {

struct Dim {
  int64_t n, sa, sb;
};

template <int OP>
inline float apply(float x, float y) {
  if constexpr (OP == 0) return x + y;
  if constexpr (OP == 1) return x - y;
  if constexpr (OP == 2) return x * y;
  if constexpr (OP == 3) return x / y;
  return (x - y) * (x - y);
}

template <int OP>
void binaryRow(const float* a, int64_t sa, const float* b, int64_t sb, float* o, int64_t n) {
  if (sa == 1 && sb == 1) {
    for (int64_t i = 0; i < n; ++i) o[i] = apply<OP>(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    const float y = b[0];
    for (int64_t i = 0; i < n; ++i) o[i] = apply<OP>(a[i], y);
  } else if (sa == 0 && sb == 1) {
    const float x = a[0];
    for (int64_t i = 0; i < n; ++i) o[i] = apply<OP>(x, b[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) o[i] = apply<OP>(a[i * sa], b[i * sb]);
  }
}

// Iterates the collapsed dims: the last (or, when it is short, the last two) form a block done as one row; an
// operand that is neither contiguous nor constant over the block is gathered into a buffer first (and reused while
// its offset stays the same, e.g. GroupNorm statistics broadcast over H·W). The dims before the block are walked with
// an incremental index, split into tasks of about kGrain elements.
template <int OP>
void binaryAll(const std::vector<Dim>& dims, const float* a, const float* b, float* o) {
  const bool two = dims.size() >= 2 && dims.back().n < 64 && dims.back().n * dims[dims.size() - 2].n <= 4096;
  const Dim inner = dims.back();
  const Dim next = two ? dims[dims.size() - 2] : Dim{1, 0, 0};
  const int64_t nd = static_cast<int64_t>(dims.size()) - (two ? 2 : 1);
  const int64_t block = inner.n * next.n;
  int64_t outer = 1;
  for (int64_t i = 0; i < nd; ++i) outer *= dims[i].n;
  const int64_t perTask = std::max<int64_t>(1, kGrain / std::max<int64_t>(1, block));
  const int64_t tasks = (outer + perTask - 1) / perTask;
  // 0: constant over the block, 1: contiguous, 2: gather.
  auto kind = [&](int64_t s1, int64_t s0) -> int {
    if (!two) return s0 == 0 ? 0 : (s0 == 1 ? 1 : 2);
    if (s0 == 0 && s1 == 0) return 0;
    if (s0 == 1 && s1 == inner.n) return 1;
    return 2;
  };
  const int kindA = kind(next.sa, inner.sa), kindB = kind(next.sb, inner.sb);
  auto task = [&](int64_t t, int) {
    const int64_t o0 = t * perTask, o1 = std::min(outer, o0 + perTask);
    std::vector<float> bufA(kindA == 2 ? block : 0), bufB(kindB == 2 ? block : 0);
    int64_t cachedA = -1, cachedB = -1;
    auto gather = [&](const float* src, int64_t s1, int64_t s0, float* dst) {
      if (!two) {
        for (int64_t i = 0; i < inner.n; ++i) dst[i] = src[i * s0];
        return;
      }
      for (int64_t i1 = 0; i1 < next.n; ++i1)
        for (int64_t i0 = 0; i0 < inner.n; ++i0) dst[i1 * inner.n + i0] = src[i1 * s1 + i0 * s0];
    };
    int64_t idx[16] = {0};
    int64_t rem = o0, offA = 0, offB = 0;
    for (int64_t d = nd - 1; d >= 0; --d) {
      idx[d] = rem % dims[d].n;
      rem /= dims[d].n;
      offA += idx[d] * dims[d].sa;
      offB += idx[d] * dims[d].sb;
    }
    for (int64_t r = o0; r < o1; ++r) {
      const float* pa = a + offA;
      const float* pb = b + offB;
      if (kindA == 2) {
        if (cachedA != offA) gather(pa, next.sa, inner.sa, bufA.data());
        cachedA = offA;
        pa = bufA.data();
      }
      if (kindB == 2) {
        if (cachedB != offB) gather(pb, next.sb, inner.sb, bufB.data());
        cachedB = offB;
        pb = bufB.data();
      }
      binaryRow<OP>(pa, kindA == 0 ? 0 : 1, pb, kindB == 0 ? 0 : 1, o + r * block, block);
      for (int64_t d = nd - 1; d >= 0; --d) {
        offA += dims[d].sa;
        offB += dims[d].sb;
        if (++idx[d] < dims[d].n) break;
        offA -= dims[d].sa * dims[d].n;
        offB -= dims[d].sb * dims[d].n;
        idx[d] = 0;
      }
    }
  };
  parallelFor(tasks, task);
}

}  // namespace

void binary(int op, const float* a, const std::vector<int64_t>& as, const float* b, const std::vector<int64_t>& bs,
            float* o, const std::vector<int64_t>& os) {
  const size_t r = os.size();
  std::vector<int64_t> sa(r, 0), sb(r, 0);
  auto strides = [&](const std::vector<int64_t>& shape, std::vector<int64_t>& st) {
    int64_t s = 1;
    for (size_t i = 0; i < shape.size(); ++i) {
      const size_t d = shape.size() - 1 - i, od = r - 1 - i;
      st[od] = shape[d] == 1 ? 0 : s;
      s *= shape[d];
    }
  };
  strides(as, sa);
  strides(bs, sb);
  std::vector<Dim> dims;
  for (size_t i = 0; i < r; ++i) {
    if (os[i] == 1) continue;
    if (!dims.empty() && dims.back().sa == sa[i] * os[i] && dims.back().sb == sb[i] * os[i]) {
      dims.back() = Dim{dims.back().n * os[i], sa[i], sb[i]};
    } else {
      dims.push_back(Dim{os[i], sa[i], sb[i]});
    }
  }
  if (dims.empty()) dims.push_back(Dim{1, 1, 1});
  switch (op) {
    case 0: binaryAll<0>(dims, a, b, o); break;
    case 1: binaryAll<1>(dims, a, b, o); break;
    case 2: binaryAll<2>(dims, a, b, o); break;
    case 3: binaryAll<3>(dims, a, b, o); break;
    default: binaryAll<4>(dims, a, b, o); break;
  }
}

void sigmoid(const float* x, float* y, int64_t n) {
  const int64_t tasks = std::max<int64_t>(1, n / kGrain);
  const int64_t per = (n + tasks - 1) / tasks;
  auto task = [&](int64_t t, int) {
    const int64_t i1 = std::min(n, (t + 1) * per);
    for (int64_t i = t * per; i < i1; ++i) y[i] = 1.f / (1.f + fastExp(-x[i]));
  };
  parallelFor(tasks, task);
}

}  // namespace sid
