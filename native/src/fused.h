// sid-ts native kernels: fused optimiser and normalisation kernels, one call where the composed TF.js ops take a
// dozen (each op costs microseconds of bookkeeping in a small network's step).
#pragma once

#include <algorithm>
#include <cstdint>

#include "parallel.h"

namespace sid {

// One Adam update (docs/algorithm.md §9.1, §14), every operation rounded to float32 in the order the composed ops run them
// (src/domain/Adam.ts), so both give the same bits: m' = m·b1 + g·g1, v' = v·b2 + (g·g)·g2,
// p' = p − ((m'/c1) / (√(v'/c2) + eps))·lr. h = [lr, b1, b2, eps, g1, g2, c1, c2] as float32.
void adam(const float* p, const float* g, const float* m, const float* v, float* po, float* mo, float* vo, int64_t n,
          const float* h);

struct NormDims {
  int64_t n, hw, c, groups;
  int64_t perGroup() const { return c / groups; }
  int64_t rowsPerTask() const { return std::max<int64_t>(1, kGrain / std::max<int64_t>(1, c)); }
  int64_t chunks() const { return (hw + rowsPerTask() - 1) / rowsPerTask(); }
};

// GroupNorm over NHWC x (statistics per sample and group of C/G channels over H·W·C/G, accumulated in double), then
// the per-channel affine map and, when silu, z·sigmoid(z). Writes y, and mean and 1/√(var + eps) per [n, g].
void groupNorm(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd,
               const NormDims& d, float eps, bool silu);

// The gradient of groupNorm: with z = x̂·γ + β (x̂ = (x − μ)·r) and dz = dy (or dy·σ(z)(1 + z(1 − σ(z))) after SiLU),
// dβ = Σ dz, dγ = Σ dz·x̂, and per sample and group dx = r·(γ·dz − mean(γ·dz) − x̂·mean(γ·dz·x̂)).
void groupNormGrad(const float* dy, const float* x, const float* gamma, const float* beta, const float* mean,
                   const float* rstd, float* dx, float* dgamma, float* dbeta, const NormDims& d, bool silu);

// One EMA step: out = e·h[0] + p·h[1] (h = [β, 1 − β] as float32; each product rounded, then the sum, as the
// composed ops round them).
void ema(const float* e, const float* p, float* out, int64_t n, const float* h);

// A dense layer over rows: z = x·w + b (x [M,K], w [K,N], b [N]), y = z or, when silu, z·σ(z). z is written when not
// null (the gradient needs it after SiLU).
void dense(const float* x, const float* w, const float* b, float* y, float* z, int64_t m, int64_t k, int64_t n, bool silu);

// The gradient of dense: dz = dy (or dy·σ(z)(1 + z(1 − σ(z))) after SiLU), dx = dz·wᵀ, dw = xᵀ·dz, db = Σ_rows dz.
void denseGrad(const float* dy, const float* x, const float* w, const float* z, float* dx, float* dw, float* db,
               int64_t m, int64_t k, int64_t n, bool silu);

}  // namespace sid
