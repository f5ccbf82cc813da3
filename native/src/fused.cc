// sid-ts native kernels: fused Adam and GroupNorm (+ SiLU) with its gradient.
#include "fused.h"

#include <cblas.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "elementwise.h"
#include "parallel.h"

namespace sid {
namespace {

inline float siluOf(float z) { return z / (1.f + fastExp(-z)); }

// Runs task(n, p0, p1, slot) over every sample's pixel chunks; slot indexes per-task partial sums.
template <typename F>
void forChunks(const NormDims& d, F&& f) {
  const int64_t chunks = d.chunks(), rows = d.rowsPerTask();
  auto task = [&](int64_t t, int) {
    const int64_t n = t / chunks, p0 = (t % chunks) * rows;
    f(n, p0, std::min(d.hw, p0 + rows), t);
  };
  parallelFor(d.n * chunks, task);
}

// The element loop of adam over [i0, i1), on restrict pointers so that it vectorises (sqrt and division stay
// correctly rounded in the vector units; with -fno-math-errno sqrt needs no errno branch).
void adamRange(const float* __restrict p, const float* __restrict g, const float* __restrict m,
               const float* __restrict v, float* __restrict po, float* __restrict mo, float* __restrict vo, int64_t i0,
               int64_t i1, const float* __restrict h) {
  const float lr = h[0], b1 = h[1], b2 = h[2], eps = h[3], g1 = h[4], g2 = h[5], c1 = h[6], c2 = h[7];
  for (int64_t i = i0; i < i1; ++i) {
    const float gi = g[i];
    const float m1 = m[i] * b1 + gi * g1;
    const float v1 = v[i] * b2 + (gi * gi) * g2;
    const float u = (m1 / c1) / (std::sqrt(v1 / c2) + eps);
    po[i] = p[i] - u * lr;
    mo[i] = m1;
    vo[i] = v1;
  }
}

}  // namespace

// One Adam update (docs/algorithm.md §9.1, §14), every operation rounded to float32 in the order the composed ops run them
// (src/domain/Adam.ts), so both give the same bits: m' = m·b1 + g·g1, v' = v·b2 + (g·g)·g2,
// p' = p − ((m'/c1) / (√(v'/c2) + eps))·lr. h = [lr, b1, b2, eps, g1, g2, c1, c2] as float32.
void adam(const float* p, const float* g, const float* m, const float* v, float* po, float* mo, float* vo, int64_t n,
          const float* h) {
  const int64_t tasks = std::max<int64_t>(1, n / kGrain);
  const int64_t per = (n + tasks - 1) / tasks;
  auto task = [&](int64_t t, int) { adamRange(p, g, m, v, po, mo, vo, t * per, std::min(n, (t + 1) * per), h); };
  parallelFor(tasks, task);
}

// GroupNorm over NHWC x (statistics per sample and group of C/G channels over H·W·C/G, accumulated in double), then
// the per-channel affine map and, when silu, z·sigmoid(z). Writes y, and mean and 1/√(var + eps) per [n, g].
// Every inner loop runs over the channels of one pixel with per-channel coefficients, so it vectorises.
void groupNorm(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd,
               const NormDims& d, float eps, bool silu) {
  const int64_t chunks = d.chunks(), cpg = d.perGroup(), c = d.c;
  // Per task: Σx and Σx² per channel (folded into groups below).
  std::vector<double> part(static_cast<size_t>(d.n * chunks * c * 2), 0.0);
  forChunks(d, [&](int64_t n, int64_t p0, int64_t p1, int64_t t) {
    double* sa = part.data() + t * c * 2;
    double* sb = sa + c;
    for (int64_t p = p0; p < p1; ++p) {
      const float* row = x + (n * d.hw + p) * c;
      for (int64_t ch = 0; ch < c; ++ch) {
        const double v = row[ch];
        sa[ch] += v;
        sb[ch] += v * v;
      }
    }
  });
  const double count = static_cast<double>(d.hw * cpg);
  std::vector<float> scale(static_cast<size_t>(d.n * c)), shift(static_cast<size_t>(d.n * c));
  for (int64_t n = 0; n < d.n; ++n) {
    for (int64_t g = 0; g < d.groups; ++g) {
      double a = 0, b = 0;
      for (int64_t t = 0; t < chunks; ++t) {
        const double* sa = part.data() + (n * chunks + t) * c * 2;
        for (int64_t j = 0; j < cpg; ++j) {
          a += sa[g * cpg + j];
          b += sa[c + g * cpg + j];
        }
      }
      const double mu = a / count, var = std::max(0.0, b / count - mu * mu);
      const double r = 1.0 / std::sqrt(var + eps);
      mean[n * d.groups + g] = static_cast<float>(mu);
      rstd[n * d.groups + g] = static_cast<float>(r);
      for (int64_t j = 0; j < cpg; ++j) {
        const int64_t ch = g * cpg + j;
        scale[n * c + ch] = static_cast<float>(r * gamma[ch]);
        shift[n * c + ch] = static_cast<float>(beta[ch] - mu * r * gamma[ch]);
      }
    }
  }
  forChunks(d, [&](int64_t n, int64_t p0, int64_t p1, int64_t) {
    const float* sc = scale.data() + n * c;
    const float* sh = shift.data() + n * c;
    for (int64_t p = p0; p < p1; ++p) {
      const float* xr = x + (n * d.hw + p) * c;
      float* yr = y + (n * d.hw + p) * c;
      if (silu) {
        for (int64_t ch = 0; ch < c; ++ch) yr[ch] = siluOf(xr[ch] * sc[ch] + sh[ch]);
      } else {
        for (int64_t ch = 0; ch < c; ++ch) yr[ch] = xr[ch] * sc[ch] + sh[ch];
      }
    }
  });
}

namespace {

// Pass 1 of groupNormGrad over pixels p0 .. p1 of sample n: dz (dy, or dy·σ(z)(1 + z(1 − σ(z))) with z = x̂·γ + β
// after SiLU) into dx, and Σ dz, Σ dz·x̂ per channel into sa, sb. x̂ = x·ra + rb with per-channel ra = r, rb = −μ·r.
template <bool SILU>
void normGradPass(const float* dy, const float* x, const float* gamma, const float* beta, const float* ra,
                  const float* rb, float* dx, double* sa, double* sb, int64_t c, int64_t p0, int64_t p1) {
  for (int64_t p = p0; p < p1; ++p) {
    const float* dyr = dy + p * c;
    const float* xr = x + p * c;
    float* dxr = dx + p * c;
    for (int64_t ch = 0; ch < c; ++ch) {
      const float xh = xr[ch] * ra[ch] + rb[ch];
      float dz = dyr[ch];
      if constexpr (SILU) {
        const float z = xh * gamma[ch] + beta[ch];
        const float sg = 1.f / (1.f + fastExp(-z));
        dz *= sg * (1.f + z * (1.f - sg));
      }
      dxr[ch] = dz;
      sa[ch] += dz;
      sb[ch] += static_cast<double>(dz) * xh;
    }
  }
}

}  // namespace

// The gradient of groupNorm: with z = x̂·γ + β (x̂ = (x − μ)·r) and dz = dy (or dy·σ(z)(1 + z(1 − σ(z))) after SiLU),
// dβ = Σ dz, dγ = Σ dz·x̂, and per sample and group dx = r·(γ·dz − mean(γ·dz) − x̂·mean(γ·dz·x̂)). Sums in double;
// every inner loop runs over the channels of one pixel with per-channel coefficients, so it vectorises.
void groupNormGrad(const float* dy, const float* x, const float* gamma, const float* beta, const float* mean,
                   const float* rstd, float* dx, float* dgamma, float* dbeta, const NormDims& d, bool silu) {
  const int64_t chunks = d.chunks(), cpg = d.perGroup(), c = d.c;
  std::vector<float> ra(static_cast<size_t>(d.n * c)), rb(static_cast<size_t>(d.n * c));
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t ch = 0; ch < c; ++ch) {
      const int64_t g = n * d.groups + ch / cpg;
      ra[n * c + ch] = rstd[g];
      rb[n * c + ch] = -mean[g] * rstd[g];
    }
  std::vector<double> part(static_cast<size_t>(d.n * chunks * c * 2), 0.0);
  forChunks(d, [&](int64_t n, int64_t p0, int64_t p1, int64_t t) {
    double* sa = part.data() + t * c * 2;
    const int64_t off = n * d.hw * c;
    if (silu) {
      normGradPass<true>(dy + off, x + off, gamma, beta, ra.data() + n * c, rb.data() + n * c, dx + off, sa, sa + c, c,
                         p0, p1);
    } else {
      normGradPass<false>(dy + off, x + off, gamma, beta, ra.data() + n * c, rb.data() + n * c, dx + off, sa, sa + c,
                          c, p0, p1);
    }
  });
  const double count = static_cast<double>(d.hw * cpg);
  // dx = dz·ka + x·kb + kd, per sample and channel.
  std::vector<float> ka(static_cast<size_t>(d.n * c)), kb(static_cast<size_t>(d.n * c)), kd(static_cast<size_t>(d.n * c));
  std::vector<double> dg(static_cast<size_t>(c), 0.0), db(static_cast<size_t>(c), 0.0);
  for (int64_t n = 0; n < d.n; ++n) {
    for (int64_t g = 0; g < d.groups; ++g) {
      const double mu = mean[n * d.groups + g], r = rstd[n * d.groups + g];
      double s1 = 0, s2 = 0;
      for (int64_t j = 0; j < cpg; ++j) {
        const int64_t ch = g * cpg + j;
        double a = 0, b = 0;
        for (int64_t t = 0; t < chunks; ++t) {
          const double* sa = part.data() + (n * chunks + t) * c * 2;
          a += sa[ch];
          b += sa[c + ch];
        }
        db[ch] += a;
        dg[ch] += b;
        s1 += gamma[ch] * a;
        s2 += gamma[ch] * b;
      }
      const float kbg = static_cast<float>(-r * r * s2 / count);
      const float kdg = static_cast<float>(-r * s1 / count + mu * r * r * s2 / count);
      for (int64_t j = 0; j < cpg; ++j) {
        const int64_t ch = g * cpg + j;
        ka[n * c + ch] = static_cast<float>(r * gamma[ch]);
        kb[n * c + ch] = kbg;
        kd[n * c + ch] = kdg;
      }
    }
  }
  for (int64_t ch = 0; ch < c; ++ch) {
    dgamma[ch] = static_cast<float>(dg[ch]);
    dbeta[ch] = static_cast<float>(db[ch]);
  }
  forChunks(d, [&](int64_t n, int64_t p0, int64_t p1, int64_t) {
    const float* pa = ka.data() + n * c;
    const float* pb = kb.data() + n * c;
    const float* pd = kd.data() + n * c;
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t off = (n * d.hw + p) * c;
      float* dxr = dx + off;
      const float* xr = x + off;
      for (int64_t ch = 0; ch < c; ++ch) dxr[ch] = dxr[ch] * pa[ch] + xr[ch] * pb[ch] + pd[ch];
    }
  });
}

void ema(const float* e, const float* p, float* out, int64_t n, const float* h) {
  const float b = h[0], c = h[1];
  const int64_t tasks = std::max<int64_t>(1, n / kGrain);
  const int64_t per = (n + tasks - 1) / tasks;
  auto task = [&](int64_t t, int) {
    const int64_t i1 = std::min(n, (t + 1) * per);
    for (int64_t i = t * per; i < i1; ++i) out[i] = e[i] * b + p[i] * c;
  };
  parallelFor(tasks, task);
}

// Rows per task of the dense kernels: enough for sgemm to run well, few enough to split a batch of 512 over the cores.
constexpr int64_t kDenseRows = 64;

void dense(const float* x, const float* w, const float* b, float* y, float* z, int64_t m, int64_t k, int64_t n, bool silu) {
  const int64_t tasks = (m + kDenseRows - 1) / kDenseRows;
  float* pre = z != nullptr ? z : y;
  auto task = [&](int64_t t, int) {
    const int64_t r0 = t * kDenseRows, rows = std::min(kDenseRows, m - r0);
    float* out = pre + r0 * n;
    for (int64_t r = 0; r < rows; ++r) std::memcpy(out + r * n, b, sizeof(float) * n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, n, k, 1.f, x + r0 * k, k, w, n, 1.f, out, n);
    if (silu) {
      float* yr = y + r0 * n;
      for (int64_t i = 0; i < rows * n; ++i) yr[i] = siluOf(out[i]);
    } else if (pre != y) {
      std::memcpy(y + r0 * n, out, sizeof(float) * rows * n);
    }
  };
  parallelFor(tasks, task);
}

void denseGrad(const float* dy, const float* x, const float* w, const float* z, float* dx, float* dw, float* db,
               int64_t m, int64_t k, int64_t n, bool silu) {
  const int threads = threadCount;
  const int64_t tasks = std::min<int64_t>(threads, (m + kDenseRows - 1) / kDenseRows);
  const int64_t per = (m + tasks - 1) / tasks;
  // Per task: its rows' dz (when silu), and partial dw [K,N] and db [N] summed below.
  std::vector<std::vector<float>> dzs(silu ? tasks : 0), dws(tasks), dbs(tasks);
  auto task = [&](int64_t t, int) {
    const int64_t r0 = t * per, rows = std::min(per, m - r0);
    if (rows <= 0) return;
    const float* g = dy + r0 * n;
    if (silu) {
      dzs[t].resize(rows * n);
      const float* zr = z + r0 * n;
      float* d = dzs[t].data();
      for (int64_t i = 0; i < rows * n; ++i) {
        const float sg = 1.f / (1.f + fastExp(-zr[i]));
        d[i] = g[i] * (sg * (1.f + zr[i] * (1.f - sg)));
      }
      g = d;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, k, n, 1.f, g, n, w, n, 0.f, dx + r0 * k, k);
    dws[t].assign(k * n, 0.f);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, n, rows, 1.f, x + r0 * k, k, g, n, 0.f, dws[t].data(), n);
    dbs[t].assign(n, 0.f);
    float* acc = dbs[t].data();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < n; ++j) acc[j] += g[r * n + j];
  };
  parallelFor(tasks, task);
  std::memcpy(dw, dws[0].data(), sizeof(float) * k * n);
  std::memcpy(db, dbs[0].data(), sizeof(float) * n);
  for (int64_t t = 1; t < tasks; ++t) {
    if (dws[t].empty()) continue;
    for (int64_t i = 0; i < k * n; ++i) dw[i] += dws[t][i];
    for (int64_t j = 0; j < n; ++j) db[j] += dbs[t][j];
  }
}

}  // namespace sid
