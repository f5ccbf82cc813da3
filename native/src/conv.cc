// sid-ts native kernels: convolution (NHWC input [B,H,W,Cin], filter [KH,KW,Cin,Cout], output [B,OH,OW,Cout]).
#include "conv.h"

#include <cblas.h>

#ifdef SID_HAVE_DNNL
#include <map>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#endif

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <limits>
#include <map>
#include <cstring>
#include <string>
#include <vector>

#include "parallel.h"

namespace sid {
namespace {

// Rows of the im2col matrix processed per GEMM (keeps the column block near L2).
int64_t chunkFloats = 1 << 16;
int64_t chunkRows(const Conv& c) {
  int64_t rows = std::max<int64_t>(64, chunkFloats / std::max<int64_t>(1, c.k()));
  return std::min(rows, c.pixels());
}

// cols[r, (i*KW + j)*Cin + ch] = x[img, oy*sh - pt + i*dh, ox*sw - pl + j*dw, ch] (zero outside), for output pixels
// p0 .. p0+rows of one image.
void im2col(const Conv& c, const float* img, int64_t p0, int64_t rows, float* cols) {
  const int64_t k = c.k();
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t p = p0 + r;
    const int64_t oy = p / c.ow, ox = p % c.ow;
    float* dst = cols + r * k;
    for (int64_t i = 0; i < c.kh; ++i) {
      const int64_t y = oy * c.sh - c.pt + i * c.dh;
      for (int64_t j = 0; j < c.kw; ++j) {
        const int64_t xx = ox * c.sw - c.pl + j * c.dw;
        float* d = dst + (i * c.kw + j) * c.cin;
        if (y < 0 || y >= c.h || xx < 0 || xx >= c.w) {
          std::memset(d, 0, sizeof(float) * c.cin);
        } else {
          std::memcpy(d, img + (y * c.w + xx) * c.cin, sizeof(float) * c.cin);
        }
      }
    }
  }
}

// The adjoint of im2col: scatter-adds cols into one image.
void col2im(const Conv& c, const float* cols, int64_t p0, int64_t rows, float* img) {
  const int64_t k = c.k();
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t p = p0 + r;
    const int64_t oy = p / c.ow, ox = p % c.ow;
    const float* src = cols + r * k;
    for (int64_t i = 0; i < c.kh; ++i) {
      const int64_t y = oy * c.sh - c.pt + i * c.dh;
      if (y < 0 || y >= c.h) continue;
      for (int64_t j = 0; j < c.kw; ++j) {
        const int64_t xx = ox * c.sw - c.pl + j * c.dw;
        if (xx < 0 || xx >= c.w) continue;
        const float* s = src + (i * c.kw + j) * c.cin;
        float* d = img + (y * c.w + xx) * c.cin;
        for (int64_t ch = 0; ch < c.cin; ++ch) d[ch] += s[ch];
      }
    }
  }
}

struct Work {
  int64_t image, p0, rows;
};

std::vector<Work> plan(const Conv& c) {
  std::vector<Work> out;
  const int64_t rows = chunkRows(c);
  for (int64_t b = 0; b < c.b; ++b)
    for (int64_t p = 0; p < c.pixels(); p += rows) out.push_back({b, p, std::min(rows, c.pixels() - p)});
  return out;
}

#ifdef SID_HAVE_DNNL
// ---------------------------------------------------------------------------------------------------------------
// oneDNN (Debian libdnnl, the library PyTorch's CPU convolutions use) for the three convolution kernels when it is
// compiled in: activations stay NHWC in place, the [KH,KW,Cin,Cout] filter (oneDNN "hwio") is reordered to and from
// the layout the primitive prefers. Primitives are cached per shape; a shape oneDNN rejects, or would only run with
// its reference implementation, is remembered and handled by the OpenBLAS path instead.


struct DnnlConv {
  dnnl::convolution_forward fwd, fwdBias;
  dnnl::convolution_backward_data bwdData;
  dnnl::convolution_backward_weights bwdWeights;
  dnnl::memory::desc wUser, wFwd, wBwdData, dwPrim;
  std::unique_ptr<dnnl::memory> wFwdMem, wBwdMem, dwMem;
  dnnl::memory::desc x, y, bias;
};

struct Dnnl {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::map<std::vector<int64_t>, std::unique_ptr<DnnlConv>> cache;
};
Dnnl* dnnlState = nullptr;

bool isReference(const dnnl::primitive_desc_base& pd) {
  const std::string impl = pd.impl_info_str();
  return impl.rfind("ref", 0) == 0;
}

DnnlConv* dnnlConv(const Conv& c) {
  if (dnnlState == nullptr) dnnlState = new Dnnl();
  const std::vector<int64_t> key{c.b, c.h, c.w, c.cin, c.oh, c.ow, c.cout, c.kh, c.kw, c.sh, c.sw, c.pt, c.pl, c.dh, c.dw};
  auto hit = dnnlState->cache.find(key);
  if (hit != dnnlState->cache.end()) return hit->second.get();
  std::unique_ptr<DnnlConv> made;
  try {
    using dnnl::memory;
    using tag = memory::format_tag;
    const auto f32 = memory::data_type::f32;
    const int64_t pb = (c.oh - 1) * c.sh + (c.kh - 1) * c.dh + 1 - c.h - c.pt;
    const int64_t pr = (c.ow - 1) * c.sw + (c.kw - 1) * c.dw + 1 - c.w - c.pl;
    const memory::dims strides{c.sh, c.sw}, dil{c.dh - 1, c.dw - 1}, padL{c.pt, c.pl}, padR{pb, pr};
    auto d = std::make_unique<DnnlConv>();
    d->x = memory::desc({c.b, c.cin, c.h, c.w}, f32, tag::nhwc);
    d->y = memory::desc({c.b, c.cout, c.oh, c.ow}, f32, tag::nhwc);
    d->bias = memory::desc({c.cout}, f32, tag::x);
    d->wUser = memory::desc({c.cout, c.cin, c.kh, c.kw}, f32, tag::hwio);
    const memory::desc wAny({c.cout, c.cin, c.kh, c.kw}, f32, tag::any);
    auto& eng = dnnlState->engine;
    const auto algo = dnnl::algorithm::convolution_direct;
    const auto prop = dnnl::prop_kind::forward_training;
    dnnl::convolution_forward::primitive_desc fwdPd(
        dnnl::convolution_forward::desc(prop, algo, d->x, wAny, d->y, strides, dil, padL, padR), eng);
    dnnl::convolution_forward::primitive_desc fwdBiasPd(
        dnnl::convolution_forward::desc(prop, algo, d->x, wAny, d->bias, d->y, strides, dil, padL, padR), eng);
    dnnl::convolution_backward_data::primitive_desc bwdDataPd(
        dnnl::convolution_backward_data::desc(algo, d->x, wAny, d->y, strides, dil, padL, padR), eng, fwdPd);
    dnnl::convolution_backward_weights::primitive_desc bwdWeightsPd(
        dnnl::convolution_backward_weights::desc(algo, d->x, wAny, d->y, strides, dil, padL, padR), eng, fwdPd);
    if (isReference(fwdPd) || isReference(fwdBiasPd) || isReference(bwdDataPd) || isReference(bwdWeightsPd)) {
      dnnlState->cache[key] = nullptr;
      return nullptr;
    }
    if (fwdBiasPd.weights_desc() != fwdPd.weights_desc()) {
      dnnlState->cache[key] = nullptr;
      return nullptr;
    }
    d->fwd = dnnl::convolution_forward(fwdPd);
    d->fwdBias = dnnl::convolution_forward(fwdBiasPd);
    d->bwdData = dnnl::convolution_backward_data(bwdDataPd);
    d->bwdWeights = dnnl::convolution_backward_weights(bwdWeightsPd);
    d->wFwd = fwdPd.weights_desc();
    d->wBwdData = bwdDataPd.weights_desc();
    d->dwPrim = bwdWeightsPd.diff_weights_desc();
    d->wFwdMem = std::make_unique<memory>(d->wFwd, eng);
    d->wBwdMem = std::make_unique<memory>(d->wBwdData, eng);
    d->dwMem = std::make_unique<memory>(d->dwPrim, eng);
    made = std::move(d);
  } catch (const dnnl::error&) {
    made.reset();
  }
  DnnlConv* out = made.get();
  dnnlState->cache[key] = std::move(made);
  return out;
}

// The filter in the primitive's layout: a reorder from hwio, or the user's memory when the layouts agree.
dnnl::memory weightsFor(const dnnl::memory::desc& want, dnnl::memory& scratch, const DnnlConv& d, const float* f) {
  auto& eng = dnnlState->engine;
  dnnl::memory user(d.wUser, eng, const_cast<float*>(f));
  if (want == d.wUser) return user;
  dnnl::reorder(user, scratch).execute(dnnlState->stream, user, scratch);
  return scratch;
}

bool dnnlForward(const Conv& c, const float* x, const float* f, const float* bias, float* y) {
  DnnlConv* d = dnnlConv(c);
  if (d == nullptr) return false;
  try {
    auto& eng = dnnlState->engine;
    dnnl::memory xm(d->x, eng, const_cast<float*>(x)), ym(d->y, eng, y);
    dnnl::memory wm = weightsFor(d->wFwd, *d->wFwdMem, *d, f);
    if (bias != nullptr) {
      dnnl::memory bm(d->bias, eng, const_cast<float*>(bias));
      d->fwdBias.execute(dnnlState->stream,
                         {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_BIAS, bm}, {DNNL_ARG_DST, ym}});
    } else {
      d->fwd.execute(dnnlState->stream, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, ym}});
    }
    dnnlState->stream.wait();
    return true;
  } catch (const dnnl::error&) {
    return false;
  }
}

bool dnnlBackpropInput(const Conv& c, const float* dy, const float* f, float* dx) {
  DnnlConv* d = dnnlConv(c);
  if (d == nullptr) return false;
  try {
    auto& eng = dnnlState->engine;
    dnnl::memory dym(d->y, eng, const_cast<float*>(dy)), dxm(d->x, eng, dx);
    dnnl::memory wm = weightsFor(d->wBwdData, *d->wBwdMem, *d, f);
    d->bwdData.execute(dnnlState->stream, {{DNNL_ARG_DIFF_DST, dym}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DIFF_SRC, dxm}});
    dnnlState->stream.wait();
    return true;
  } catch (const dnnl::error&) {
    return false;
  }
}

bool dnnlBackpropFilter(const Conv& c, const float* x, const float* dy, float* df) {
  DnnlConv* d = dnnlConv(c);
  if (d == nullptr) return false;
  try {
    auto& eng = dnnlState->engine;
    dnnl::memory xm(d->x, eng, const_cast<float*>(x)), dym(d->y, eng, const_cast<float*>(dy));
    dnnl::memory user(d->wUser, eng, df);
    const bool direct = d->dwPrim == d->wUser;
    dnnl::memory& target = direct ? user : *d->dwMem;
    d->bwdWeights.execute(dnnlState->stream, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_DIFF_DST, dym}, {DNNL_ARG_DIFF_WEIGHTS, target}});
    if (!direct) dnnl::reorder(*d->dwMem, user).execute(dnnlState->stream, *d->dwMem, user);
    dnnlState->stream.wait();
    return true;
  } catch (const dnnl::error&) {
    return false;
  }
}
#else
bool dnnlForward(const Conv&, const float*, const float*, const float*, float*) { return false; }
bool dnnlBackpropInput(const Conv&, const float*, const float*, float*) { return false; }
bool dnnlBackpropFilter(const Conv&, const float*, const float*, float*) { return false; }
#endif

void blasForward(const Conv& c, const float* x, const float* f, const float* bias, float* y) {
  const int64_t k = c.k();
  const int64_t inImage = c.h * c.w * c.cin, outImage = c.pixels() * c.cout;
  if (c.pointwise()) {
    const int64_t m = c.b * c.pixels();
    const int64_t block = 256;
    auto task = [&](int64_t t, int) {
      const int64_t r0 = t * block, rows = std::min(block, m - r0);
      float* out = y + r0 * c.cout;
      if (bias != nullptr)
        for (int64_t r = 0; r < rows; ++r) std::memcpy(out + r * c.cout, bias, sizeof(float) * c.cout);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, c.cout, c.cin, 1.f, x + r0 * c.cin, c.cin, f,
                  c.cout, bias != nullptr ? 1.f : 0.f, out, c.cout);
    };
    parallelFor((m + block - 1) / block, task);
    return;
  }
  const auto works = plan(c);
  const int64_t rowsMax = chunkRows(c);
  auto task = [&](int64_t t, int worker) {
    const Work& wk = works[t];
    float* cols = ensure(scratch[worker].a, rowsMax * k);
    im2col(c, x + wk.image * inImage, wk.p0, wk.rows, cols);
    float* out = y + wk.image * outImage + wk.p0 * c.cout;
    if (bias != nullptr)
      for (int64_t r = 0; r < wk.rows; ++r) std::memcpy(out + r * c.cout, bias, sizeof(float) * c.cout);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, wk.rows, c.cout, k, 1.f, cols, k, f, c.cout,
                bias != nullptr ? 1.f : 0.f, out, c.cout);
  };
  parallelFor(static_cast<int64_t>(works.size()), task);
}

void blasBackpropInput(const Conv& c, const float* dy, const float* f, float* dx) {
  const int64_t k = c.k();
  const int64_t topT = (c.kh - 1) * c.dh - c.pt, leftT = (c.kw - 1) * c.dw - c.pl;
  if (!c.pointwise() && c.sh == 1 && c.sw == 1 && topT >= 0 && leftT >= 0 && c.cout <= 2 * c.cin) {
    // Stride 1: dx is the forward convolution of dy with the filter flipped in H and W and its channels swapped,
    // padded by (k - 1)·d - pad. An im2col of dy replaces the col2im scatter of the generic path.
    std::vector<float> flipped(k * c.cout);
    for (int64_t i = 0; i < c.kh; ++i)
      for (int64_t j = 0; j < c.kw; ++j)
        for (int64_t ci = 0; ci < c.cin; ++ci)
          for (int64_t co = 0; co < c.cout; ++co)
            flipped[((i * c.kw + j) * c.cout + co) * c.cin + ci] =
                f[(((c.kh - 1 - i) * c.kw + (c.kw - 1 - j)) * c.cin + ci) * c.cout + co];
    const Conv t{c.b, c.oh, c.ow, c.cout, c.h, c.w, c.cin, c.kh, c.kw, 1, 1, topT, leftT, c.dh, c.dw};
    blasForward(t, dy, flipped.data(), nullptr, dx);
    return;
  }
  const int64_t inImage = c.h * c.w * c.cin, outImage = c.pixels() * c.cout;
  if (c.pointwise()) {
    const int64_t m = c.b * c.pixels();
    const int64_t block = 256;
    auto task = [&](int64_t t, int) {
      const int64_t r0 = t * block, rows = std::min(block, m - r0);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, c.cin, c.cout, 1.f, dy + r0 * c.cout, c.cout, f,
                  c.cout, 0.f, dx + r0 * c.cin, c.cin);
    };
    parallelFor((m + block - 1) / block, task);
    return;
  }
  const int64_t rowsMax = chunkRows(c);
  // One task per image: col2im of different chunks of one image overlap, so an image stays on one thread.
  auto task = [&](int64_t b, int worker) {
    float* img = dx + b * inImage;
    std::memset(img, 0, sizeof(float) * inImage);
    float* cols = ensure(scratch[worker].a, rowsMax * k);
    for (int64_t p0 = 0; p0 < c.pixels(); p0 += rowsMax) {
      const int64_t rows = std::min(rowsMax, c.pixels() - p0);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, k, c.cout, 1.f, dy + b * outImage + p0 * c.cout,
                  c.cout, f, c.cout, 0.f, cols, k);
      col2im(c, cols, p0, rows, img);
    }
  };
  parallelFor(c.b, task);
}

void blasBackpropFilter(const Conv& c, const float* x, const float* dy, float* df) {
  const int64_t k = c.k();
  const int64_t inImage = c.h * c.w * c.cin, outImage = c.pixels() * c.cout;
  const int threads = threadCount;
  const int64_t size = k * c.cout;
  for (int t = 0; t < threads; ++t) std::fill_n(ensure(scratch[t].b, size), size, 0.f);
  if (c.pointwise()) {
    const int64_t m = c.b * c.pixels();
    const int64_t block = std::max<int64_t>(256, (m + threads - 1) / threads);
    auto task = [&](int64_t t, int worker) {
      const int64_t r0 = t * block, rows = std::min(block, m - r0);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, c.cin, c.cout, rows, 1.f, x + r0 * c.cin, c.cin,
                  dy + r0 * c.cout, c.cout, 1.f, scratch[worker].b.data(), c.cout);
    };
    parallelFor((m + block - 1) / block, task);
  } else {
    const auto works = plan(c);
    const int64_t rowsMax = chunkRows(c);
    auto task = [&](int64_t t, int worker) {
      const Work& wk = works[t];
      float* cols = ensure(scratch[worker].a, rowsMax * k);
      im2col(c, x + wk.image * inImage, wk.p0, wk.rows, cols);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, c.cout, wk.rows, 1.f, cols, k,
                  dy + wk.image * outImage + wk.p0 * c.cout, c.cout, 1.f, scratch[worker].b.data(), c.cout);
    };
    parallelFor(static_cast<int64_t>(works.size()), task);
  }
  std::memcpy(df, scratch[0].b.data(), sizeof(float) * size);
  for (int t = 1; t < threads; ++t) {
    const float* p = scratch[t].b.data();
    for (int64_t i = 0; i < size; ++i) df[i] += p[i];
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Which library runs a convolution. oneDNN first (the default: one library, so a run repeats bit for bit and a
// resumed run continues exactly), OpenBLAS alone, or, opt-in, the auto mode: each (shape, kernel)
// pair is timed on both libraries for its first calls and then runs on the faster: on a small machine oneDNN wins at
// some shapes and loses several-fold at others (its filter gradient for few images, its first layers with one input
// channel), and which one depends on the CPU. Both give the same values up to rounding.

enum ConvMode { kAuto, kOneDnn, kOpenBlas };
#ifdef SID_HAVE_DNNL
ConvMode convMode = kOneDnn;
#else
ConvMode convMode = kOpenBlas;
#endif

// Timed calls per library before a (shape, kernel) pair settles on one.
constexpr int kTrials = 3;

struct Choice {
  double best[2] = {std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity()};
  int trials[2] = {0, 0};
  int chosen = -1;  // 0 oneDNN, 1 OpenBLAS, -1 still timing
};
std::map<std::vector<int64_t>, Choice> choices;

Choice& choiceFor(const Conv& c, int64_t kernel) {
  return choices[{kernel, c.b, c.h, c.w, c.cin, c.oh, c.ow, c.cout, c.kh, c.kw, c.sh, c.sw, c.pt, c.pl, c.dh, c.dw}];
}

// Runs dnnl() (false: oneDNN cannot run this shape) or blas() as the mode and, in the auto mode, the pair's choice say.
template <typename D, typename B>
void runConv(const Conv& c, int64_t kernel, D&& dnnl, B&& blas) {
  if (convMode == kOpenBlas) return blas();
  if (convMode == kOneDnn) {
    if (!dnnl()) blas();
    return;
  }
  Choice& ch = choiceFor(c, kernel);
  if (ch.chosen == 1) return blas();
  if (ch.chosen == 0) {
    if (!dnnl()) {
      ch.chosen = 1;
      blas();
    }
    return;
  }
  const int lib = ch.trials[0] <= ch.trials[1] ? 0 : 1;
  const auto t0 = std::chrono::steady_clock::now();
  if (lib == 0) {
    if (!dnnl()) {
      ch.chosen = 1;
      blas();
      return;
    }
  } else {
    blas();
  }
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ch.best[lib] = std::min(ch.best[lib], dt);
  if (++ch.trials[lib] >= kTrials && ch.trials[1 - lib] >= kTrials) ch.chosen = ch.best[0] <= ch.best[1] ? 0 : 1;
}

}  // namespace

void convForward(const Conv& c, const float* x, const float* f, const float* bias, float* y) {
  runConv(c, 0, [&] { return dnnlForward(c, x, f, bias, y); }, [&] { blasForward(c, x, f, bias, y); });
}

void convBackpropInput(const Conv& c, const float* dy, const float* f, float* dx) {
  runConv(c, 1, [&] { return dnnlBackpropInput(c, dy, f, dx); }, [&] { blasBackpropInput(c, dy, f, dx); });
}

void convBackpropFilter(const Conv& c, const float* x, const float* dy, float* df) {
  runConv(c, 2, [&] { return dnnlBackpropFilter(c, x, dy, df); }, [&] { blasBackpropFilter(c, x, dy, df); });
}

bool useOneDnn(bool enabled) {
#ifdef SID_HAVE_DNNL
  convMode = enabled ? kOneDnn : kOpenBlas;
  return enabled;
#else
  (void)enabled;
  return false;
#endif
}

bool setConvMode(const std::string& mode) {
  if (mode == "openblas") {
    convMode = kOpenBlas;
    return true;
  }
#ifdef SID_HAVE_DNNL
  if (mode == "onednn") {
    convMode = kOneDnn;
    return true;
  }
  if (mode == "auto") {
    convMode = kAuto;
    return true;
  }
#endif
  return false;
}

const char* convLibrary() {
  switch (convMode) {
    case kAuto: return "auto(onednn,openblas)";
    case kOneDnn: return "onednn+openblas";
    default: return "openblas";
  }
}

void initConv() {
  if (const char* s = std::getenv("SID_NATIVE_DNNL"))
    if (std::string(s) == "0") convMode = kOpenBlas;
  if (const char* s = std::getenv("SID_NATIVE_CONV")) setConvMode(s);
  if (const char* s = std::getenv("SID_NATIVE_CHUNK")) chunkFloats = std::max<int64_t>(1024, std::atoll(s));
}

}  // namespace sid
