// sid-ts native kernels: fused Adam and GroupNorm (+ SiLU) with its gradient.
#include "fused.h"

#include <cmath>
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

}  // namespace

// One Adam update (spec §5.1, §11), every operation rounded to float32 in the order the composed ops run them
// (src/domain/Adam.ts), so both give the same bits: m' = m·b1 + g·g1, v' = v·b2 + (g·g)·g2,
// p' = p − ((m'/c1) / (√(v'/c2) + eps))·lr. h = [lr, b1, b2, eps, g1, g2, c1, c2] as float32.
void adam(const float* p, const float* g, const float* m, const float* v, float* po, float* mo, float* vo, int64_t n,
          const float* h) {
  const float lr = h[0], b1 = h[1], b2 = h[2], eps = h[3], g1 = h[4], g2 = h[5], c1 = h[6], c2 = h[7];
  const int64_t tasks = std::max<int64_t>(1, n / kGrain);
  const int64_t per = (n + tasks - 1) / tasks;
  auto task = [&](int64_t t, int) {
    const int64_t i1 = std::min(n, (t + 1) * per);
    for (int64_t i = t * per; i < i1; ++i) {
      const float gi = g[i];
      const float m1 = m[i] * b1 + gi * g1;
      const float v1 = v[i] * b2 + (gi * gi) * g2;
      const float u = (m1 / c1) / (std::sqrt(v1 / c2) + eps);
      po[i] = p[i] - u * lr;
      mo[i] = m1;
      vo[i] = v1;
    }
  };
  parallelFor(tasks, task);
}

// GroupNorm over NHWC x (statistics per sample and group of C/G channels over H·W·C/G, accumulated in double), then
// the per-channel affine map and, when silu, z·sigmoid(z). Writes y, and mean and 1/√(var + eps) per [n, g].
void groupNorm(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd,
               const NormDims& d, float eps, bool silu) {
  const int64_t chunks = d.chunks(), cpg = d.perGroup();
  std::vector<double> part(static_cast<size_t>(d.n * chunks * d.groups * 2), 0.0);
  forChunks(d, [&](int64_t n, int64_t p0, int64_t p1, int64_t t) {
    double* s = part.data() + t * d.groups * 2;
    for (int64_t p = p0; p < p1; ++p) {
      const float* row = x + (n * d.hw + p) * d.c;
      for (int64_t g = 0; g < d.groups; ++g) {
        double a = 0, b = 0;
        for (int64_t j = 0; j < cpg; ++j) {
          const double v = row[g * cpg + j];
          a += v;
          b += v * v;
        }
        s[2 * g] += a;
        s[2 * g + 1] += b;
      }
    }
  });
  const double count = static_cast<double>(d.hw * cpg);
  std::vector<float> scale(static_cast<size_t>(d.n * d.c)), shift(static_cast<size_t>(d.n * d.c));
  for (int64_t n = 0; n < d.n; ++n) {
    for (int64_t g = 0; g < d.groups; ++g) {
      double a = 0, b = 0;
      for (int64_t t = 0; t < chunks; ++t) {
        a += part[((n * chunks + t) * d.groups + g) * 2];
        b += part[((n * chunks + t) * d.groups + g) * 2 + 1];
      }
      const double mu = a / count, var = std::max(0.0, b / count - mu * mu);
      const double r = 1.0 / std::sqrt(var + eps);
      mean[n * d.groups + g] = static_cast<float>(mu);
      rstd[n * d.groups + g] = static_cast<float>(r);
      for (int64_t j = 0; j < cpg; ++j) {
        const int64_t ch = g * cpg + j;
        scale[n * d.c + ch] = static_cast<float>(r * gamma[ch]);
        shift[n * d.c + ch] = static_cast<float>(beta[ch] - mu * r * gamma[ch]);
      }
    }
  }
  forChunks(d, [&](int64_t n, int64_t p0, int64_t p1, int64_t) {
    const float* sc = scale.data() + n * d.c;
    const float* sh = shift.data() + n * d.c;
    for (int64_t p = p0; p < p1; ++p) {
      const float* xr = x + (n * d.hw + p) * d.c;
      float* yr = y + (n * d.hw + p) * d.c;
      if (silu) {
        for (int64_t ch = 0; ch < d.c; ++ch) yr[ch] = siluOf(xr[ch] * sc[ch] + sh[ch]);
      } else {
        for (int64_t ch = 0; ch < d.c; ++ch) yr[ch] = xr[ch] * sc[ch] + sh[ch];
      }
    }
  });
}

// The gradient of groupNorm: with z = x̂·γ + β (x̂ = (x − μ)·r) and dz = dy (or dy·σ(z)(1 + z(1 − σ(z))) after SiLU),
// dβ = Σ dz, dγ = Σ dz·x̂, and per sample and group dx = r·(γ·dz − mean(γ·dz) − x̂·mean(γ·dz·x̂)).
void groupNormGrad(const float* dy, const float* x, const float* gamma, const float* beta, const float* mean,
                   const float* rstd, float* dx, float* dgamma, float* dbeta, const NormDims& d, bool silu) {
  const int64_t chunks = d.chunks(), cpg = d.perGroup();
  std::vector<double> part(static_cast<size_t>(d.n * chunks * d.c * 2), 0.0);
  forChunks(d, [&](int64_t n, int64_t p0, int64_t p1, int64_t t) {
    double* s = part.data() + t * d.c * 2;
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t off = (n * d.hw + p) * d.c;
      for (int64_t ch = 0; ch < d.c; ++ch) {
        const int64_t g = ch / cpg;
        const float xv = x[off + ch];
        float dz = dy[off + ch];
        if (silu) {
          const float z = (xv - mean[n * d.groups + g]) * rstd[n * d.groups + g] * gamma[ch] + beta[ch];
          const float sg = 1.f / (1.f + fastExp(-z));
          dz *= sg * (1.f + z * (1.f - sg));
        }
        dx[off + ch] = dz;
        s[2 * ch] += dz;
        s[2 * ch + 1] += static_cast<double>(dz) * xv;
      }
    }
  });
  const double count = static_cast<double>(d.hw * cpg);
  std::vector<float> ka(static_cast<size_t>(d.n * d.c)), kb(static_cast<size_t>(d.n * d.groups)),
      kd(static_cast<size_t>(d.n * d.groups));
  std::vector<double> dg(static_cast<size_t>(d.c), 0.0), db(static_cast<size_t>(d.c), 0.0);
  for (int64_t n = 0; n < d.n; ++n) {
    for (int64_t g = 0; g < d.groups; ++g) {
      const double mu = mean[n * d.groups + g], r = rstd[n * d.groups + g];
      double s1 = 0, s2 = 0;
      for (int64_t j = 0; j < cpg; ++j) {
        const int64_t ch = g * cpg + j;
        double a = 0, b = 0;
        for (int64_t t = 0; t < chunks; ++t) {
          a += part[((n * chunks + t) * d.c + ch) * 2];
          b += part[((n * chunks + t) * d.c + ch) * 2 + 1];
        }
        const double dzx = r * (b - mu * a);  // Σ dz·x̂ over this sample's channel
        db[ch] += a;
        dg[ch] += dzx;
        s1 += gamma[ch] * a;
        s2 += gamma[ch] * dzx;
        ka[n * d.c + ch] = static_cast<float>(r * gamma[ch]);
      }
      kb[n * d.groups + g] = static_cast<float>(-r * r * s2 / count);
      kd[n * d.groups + g] = static_cast<float>(-r * s1 / count + mu * r * r * s2 / count);
    }
  }
  for (int64_t ch = 0; ch < d.c; ++ch) {
    dgamma[ch] = static_cast<float>(dg[ch]);
    dbeta[ch] = static_cast<float>(db[ch]);
  }
  forChunks(d, [&](int64_t n, int64_t p0, int64_t p1, int64_t) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t off = (n * d.hw + p) * d.c;
      for (int64_t ch = 0; ch < d.c; ++ch) {
        const int64_t g = n * d.groups + ch / cpg;
        dx[off + ch] = dx[off + ch] * ka[n * d.c + ch] + x[off + ch] * kb[g] + kd[g];
      }
    }
  });
}

}  // namespace sid
