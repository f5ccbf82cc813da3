// sid-ts optional native kernels (issue 6): NHWC convolution forward / input gradient / filter gradient and batched
// matrix products over oneDNN / OpenBLAS sgemm, plus a few memory-bound elementwise kernels, parallel over one OpenMP
// team. Every function works in place on Float32Array views (the caller passes views into the TF.js wasm heap,
// so no copies are made) and is synchronous.
#include <node_api.h>

#include <cblas.h>

#include <omp.h>

#ifdef SID_HAVE_DNNL
#include <map>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

extern "C" void openblas_set_num_threads(int);

namespace {

// ---------------------------------------------------------------------------------------------------------------
// Parallel loops: parallelFor(n, fn) runs fn(i, worker) for i in [0, n) on an OpenMP team (the same threads oneDNN's
// primitives use, so the process has one set of workers), which take indices from a shared counter: a preempted
// thread delays at most one index. Idle OpenMP threads spin briefly before they sleep (libgomp's default policy;
// OMP_WAIT_POLICY / GOMP_SPINCOUNT override it): waking a sleeping thread costs tens of microseconds under a
// hypervisor, longer than most kernels of a small network's step, which follow each other within microseconds.

int threadCount = 1;

template <typename F>
void parallelFor(int64_t n, F& f) {
  if (n <= 0) return;
  const int team = static_cast<int>(std::min<int64_t>(threadCount, n));
  if (team <= 1) {
    for (int64_t i = 0; i < n; ++i) f(i, 0);
    return;
  }
  std::atomic<int64_t> next{0};
#pragma omp parallel num_threads(team)
  {
    const int worker = omp_get_thread_num();
    for (int64_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) f(i, worker);
  }
}

// Per-worker scratch buffers, grown on demand and kept.
struct Scratch {
  std::vector<float> a;
  std::vector<float> b;
};
std::vector<Scratch> scratch;

float* ensure(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// ---------------------------------------------------------------------------------------------------------------
// Convolution (NHWC input [B,H,W,Cin], filter [KH,KW,Cin,Cout], output [B,OH,OW,Cout]).

struct Conv {
  int64_t b, h, w, cin, oh, ow, cout, kh, kw, sh, sw, pt, pl, dh, dw;
  int64_t k() const { return kh * kw * cin; }
  int64_t pixels() const { return oh * ow; }
  // Lengths of the input [B,H,W,Cin], the filter [KH,KW,Cin,Cout] and the output [B,OH,OW,Cout].
  size_t inputLength() const { return size_t(b * h * w * cin); }
  size_t filterLength() const { return size_t(k() * cout); }
  size_t outputLength() const { return size_t(b * pixels() * cout); }
  bool pointwise() const { return kh == 1 && kw == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0 && oh == h && ow == w; }
};

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

bool dnnlEnabled = true;

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
  if (!dnnlEnabled) return nullptr;
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

void convForward(const Conv& c, const float* x, const float* f, const float* bias, float* y) {
  if (dnnlForward(c, x, f, bias, y)) return;
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

void convBackpropInput(const Conv& c, const float* dy, const float* f, float* dx) {
  if (dnnlBackpropInput(c, dy, f, dx)) return;
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
    convForward(t, dy, flipped.data(), nullptr, dx);
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

void convBackpropFilter(const Conv& c, const float* x, const float* dy, float* df) {
  if (dnnlBackpropFilter(c, x, dy, df)) return;
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
// Batched matrix product: c[i] = op(a[i % batchA]) · op(b[i % batchB]), a: [M,K] (or [K,M] transposed), b: [K,N]
// (or [N,K]), c: [M,N].

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

// ---------------------------------------------------------------------------------------------------------------
// Elementwise binary ops with broadcasting (out = a op b), sums over axes, strided block copies (split / concat) and
// the nearest-neighbour resize gradient. Memory-bound: parallel over large outer ranges only.

constexpr int64_t kGrain = 1 << 15;  // elements per task, roughly

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

// Shapes are right-aligned to the output's rank (missing leading dims are 1).
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

struct RDim {
  int64_t n;
  bool reduced;
  int64_t outStride;
};

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

// e^x for x in [-87, 88]: x = n·ln2 + r with |r| <= ln2/2, e^r by a degree-6 polynomial, 2^n through the exponent
// bits. Branch-free so the loop vectorises; relative error about 2e-7.
inline float fastExp(float x) {
  x = std::min(88.f, std::max(-87.f, x));
  const float n = std::nearbyint(x * 1.44269504088896341f);
  const float r = std::fma(n, -1.428606765330187045e-6f, std::fma(n, -0.693145751953125f, x));
  float p = 1.f / 720;
  p = std::fma(p, r, 1.f / 120);
  p = std::fma(p, r, 1.f / 24);
  p = std::fma(p, r, 1.f / 6);
  p = std::fma(p, r, 0.5f);
  p = std::fma(p, r, 1.f);
  p = std::fma(p, r, 1.f);
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// y = 1 / (1 + e^-x)
void sigmoid(const float* x, float* y, int64_t n) {
  const int64_t tasks = std::max<int64_t>(1, n / kGrain);
  const int64_t per = (n + tasks - 1) / tasks;
  auto task = [&](int64_t t, int) {
    const int64_t i1 = std::min(n, (t + 1) * per);
    for (int64_t i = t * per; i < i1; ++i) y[i] = 1.f / (1.f + fastExp(-x[i]));
  };
  parallelFor(tasks, task);
}

// ---------------------------------------------------------------------------------------------------------------
// Fused optimiser and normalisation kernels: one call where the composed TF.js ops take a dozen (each op costs
// microseconds of bookkeeping in a small network's step).

// One Adam update (docs/algorithm.md §9.1, §14), every operation rounded to float32 in the order the composed ops run them
// (src/domain/optim/Adam.ts), so both give the same bits: m' = m·b1 + g·g1, v' = v·b2 + (g·g)·g2,
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

struct NormDims {
  int64_t n, hw, c, groups;
  int64_t perGroup() const { return c / groups; }
  int64_t rowsPerTask() const { return std::max<int64_t>(1, kGrain / std::max<int64_t>(1, c)); }
  int64_t chunks() const { return (hw + rowsPerTask() - 1) / rowsPerTask(); }
};

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

// ---------------------------------------------------------------------------------------------------------------
// N-API glue.

bool floats(napi_env env, napi_value v, float** data, size_t* length) {
  napi_typedarray_type type;
  size_t len;
  void* ptr;
  napi_value ab;
  size_t offset;
  if (napi_get_typedarray_info(env, v, &type, &len, &ptr, &ab, &offset) != napi_ok || type != napi_float32_array) {
    napi_throw_type_error(env, nullptr, "expected a Float32Array");
    return false;
  }
  *data = static_cast<float*>(ptr);
  *length = len;
  return true;
}

bool isNullish(napi_env env, napi_value v) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  return t == napi_null || t == napi_undefined;
}

bool ints(napi_env env, napi_value v, int64_t* out, uint32_t count) {
  bool isArray = false;
  napi_is_array(env, v, &isArray);
  uint32_t len = 0;
  if (!isArray || napi_get_array_length(env, v, &len) != napi_ok || len != count) {
    napi_throw_type_error(env, nullptr, "expected an array of integers of the right length");
    return false;
  }
  for (uint32_t i = 0; i < count; ++i) {
    napi_value e;
    napi_get_element(env, v, i, &e);
    if (napi_get_value_int64(env, e, &out[i]) != napi_ok) {
      napi_throw_type_error(env, nullptr, "expected integers");
      return false;
    }
  }
  return true;
}

bool check(napi_env env, bool ok, const char* msg) {
  if (!ok) napi_throw_range_error(env, nullptr, msg);
  return ok;
}

bool readConv(napi_env env, napi_value v, Conv* c) {
  int64_t d[15];
  if (!ints(env, v, d, 15)) return false;
  *c = Conv{d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10], d[11], d[12], d[13], d[14]};
  return check(env,
               c->b > 0 && c->h > 0 && c->w > 0 && c->cin > 0 && c->oh > 0 && c->ow > 0 && c->cout > 0 && c->kh > 0 &&
                   c->kw > 0 && c->sh > 0 && c->sw > 0 && c->dh > 0 && c->dw > 0,
               "convolution dimensions must be positive");
}

// One kernel at a time per process: the pool, the scratch buffers and the oneDNN cache are shared, and Node may load
// the addon in several worker threads.
std::mutex callMutex;

template <size_t N>
bool args(napi_env env, napi_callback_info info, napi_value (&argv)[N]) {
  size_t argc = N;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  return check(env, argc == N, "wrong number of arguments");
}

// conv2d(x, filter, bias | null, y, dims)
napi_value Conv2D(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!args(env, info, argv)) return nullptr;
  Conv c;
  float *x, *f, *bias = nullptr, *y;
  size_t nx, nf, nb = 0, ny;
  if (!readConv(env, argv[4], &c) || !floats(env, argv[0], &x, &nx) || !floats(env, argv[1], &f, &nf) ||
      !floats(env, argv[3], &y, &ny))
    return nullptr;
  if (!isNullish(env, argv[2]) && !floats(env, argv[2], &bias, &nb)) return nullptr;
  if (!check(env,
             nx == c.inputLength() && nf == c.filterLength() && ny == c.outputLength() &&
                 (bias == nullptr || nb == size_t(c.cout)),
             "conv2d: array sizes do not match the dimensions"))
    return nullptr;
  {
    std::lock_guard<std::mutex> lock(callMutex);
    convForward(c, x, f, bias, y);
  }
  return nullptr;
}

// The convolution gradients: (a, b, out, dims), each array's length fixed by the dimensions (`lengths`), `kernel`
// run under the call lock.
template <typename Lengths, typename Kernel>
napi_value convGradient(napi_env env, napi_callback_info info, const char* mismatch, Lengths lengths, Kernel kernel) {
  napi_value argv[4];
  if (!args(env, info, argv)) return nullptr;
  Conv c;
  float *a, *b, *out;
  size_t na, nb, nout;
  if (!readConv(env, argv[3], &c) || !floats(env, argv[0], &a, &na) || !floats(env, argv[1], &b, &nb) ||
      !floats(env, argv[2], &out, &nout))
    return nullptr;
  size_t expected[3];
  lengths(c, expected);
  if (!check(env, na == expected[0] && nb == expected[1] && nout == expected[2], mismatch)) return nullptr;
  std::lock_guard<std::mutex> lock(callMutex);
  kernel(c, a, b, out);
  return nullptr;
}

// conv2dBackpropInput(dy, filter, dx, dims)
napi_value Conv2DBackpropInput(napi_env env, napi_callback_info info) {
  return convGradient(
      env, info, "conv2dBackpropInput: array sizes do not match the dimensions",
      [](const Conv& c, size_t* n) {
        n[0] = c.outputLength();
        n[1] = c.filterLength();
        n[2] = c.inputLength();
      },
      convBackpropInput);
}

// conv2dBackpropFilter(x, dy, dfilter, dims)
napi_value Conv2DBackpropFilter(napi_env env, napi_callback_info info) {
  return convGradient(
      env, info, "conv2dBackpropFilter: array sizes do not match the dimensions",
      [](const Conv& c, size_t* n) {
        n[0] = c.inputLength();
        n[1] = c.outputLength();
        n[2] = c.filterLength();
      },
      convBackpropFilter);
}

// batchMatMul(a, b, c, [batch, batchA, batchB, m, k, n, transposeA, transposeB])
napi_value BatchMatMul(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!args(env, info, argv)) return nullptr;
  int64_t d[8];
  float *a, *b, *c;
  size_t na, nb, nc;
  if (!ints(env, argv[3], d, 8) || !floats(env, argv[0], &a, &na) || !floats(env, argv[1], &b, &nb) ||
      !floats(env, argv[2], &c, &nc))
    return nullptr;
  const int64_t batch = d[0], batchA = d[1], batchB = d[2], m = d[3], k = d[4], n = d[5];
  if (!check(env,
             batch > 0 && batchA > 0 && batchB > 0 && m > 0 && k > 0 && n > 0 && batch % batchA == 0 &&
                 batch % batchB == 0 && na == size_t(batchA * m * k) && nb == size_t(batchB * k * n) &&
                 nc == size_t(batch * m * n),
             "batchMatMul: array sizes do not match the dimensions"))
    return nullptr;
  {
    std::lock_guard<std::mutex> lock(callMutex);
    batchMatMul(a, b, c, batch, batchA, batchB, m, k, n, d[6] != 0, d[7] != 0);
  }
  return nullptr;
}

bool intList(napi_env env, napi_value v, std::vector<int64_t>* out) {
  bool isArray = false;
  napi_is_array(env, v, &isArray);
  uint32_t len = 0;
  if (!isArray || napi_get_array_length(env, v, &len) != napi_ok) {
    napi_throw_type_error(env, nullptr, "expected an array of integers");
    return false;
  }
  out->resize(len);
  return len == 0 || ints(env, v, out->data(), len);
}

int64_t sizeOf(const std::vector<int64_t>& shape) {
  int64_t p = 1;
  for (int64_t d : shape) p *= d;
  return p;
}

// binary(op, a, aShape, b, bShape, out, outShape); op: 0 add, 1 sub, 2 mul, 3 div, 4 squared difference
napi_value Binary(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  if (!args(env, info, argv)) return nullptr;
  int32_t op;
  float *a, *b, *o;
  size_t na, nb, no;
  std::vector<int64_t> as, bs, os;
  if (napi_get_value_int32(env, argv[0], &op) != napi_ok || !floats(env, argv[1], &a, &na) ||
      !intList(env, argv[2], &as) || !floats(env, argv[3], &b, &nb) || !intList(env, argv[4], &bs) ||
      !floats(env, argv[5], &o, &no) || !intList(env, argv[6], &os))
    return nullptr;
  bool ok = op >= 0 && op <= 4 && os.size() <= 16 && as.size() <= os.size() && bs.size() <= os.size() && na == size_t(sizeOf(as)) &&
            nb == size_t(sizeOf(bs)) && no == size_t(sizeOf(os));
  for (size_t i = 0; ok && i < as.size(); ++i) {
    const int64_t d = as[as.size() - 1 - i], od = os[os.size() - 1 - i];
    ok = d == od || d == 1;
  }
  for (size_t i = 0; ok && i < bs.size(); ++i) {
    const int64_t d = bs[bs.size() - 1 - i], od = os[os.size() - 1 - i];
    ok = d == od || d == 1;
  }
  if (!check(env, ok, "binary: shapes do not broadcast to the output shape")) return nullptr;
  {
    std::lock_guard<std::mutex> lock(callMutex);
    if (no > 0) binary(op, a, as, b, bs, o, os);
  }
  return nullptr;
}

// sum(x, shape, axes, out, scale)
napi_value Sum(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!args(env, info, argv)) return nullptr;
  float *x, *o;
  size_t nx, no;
  std::vector<int64_t> shape, axes;
  double scale;
  if (!floats(env, argv[0], &x, &nx) || !intList(env, argv[1], &shape) || !intList(env, argv[2], &axes) ||
      !floats(env, argv[3], &o, &no) || napi_get_value_double(env, argv[4], &scale) != napi_ok)
    return nullptr;
  std::vector<bool> reduced(shape.size(), false);
  bool ok = nx == size_t(sizeOf(shape));
  for (int64_t ax : axes) {
    ok = ok && ax >= 0 && ax < int64_t(shape.size());
    if (ok) reduced[ax] = true;
  }
  int64_t outSize = 1;
  for (size_t i = 0; i < shape.size(); ++i)
    if (!reduced[i]) outSize *= shape[i];
  if (!check(env, ok && no == size_t(outSize) && nx > 0, "sum: sizes do not match")) return nullptr;
  {
    std::lock_guard<std::mutex> lock(callMutex);
    reduceSum(x, shape, reduced, o, outSize, static_cast<float>(scale));
  }
  return nullptr;
}

// Reads count Float32Array arguments starting at argv[0].
bool floatArgs(napi_env env, const napi_value* argv, int count, float** data, size_t* lengths) {
  for (int i = 0; i < count; ++i)
    if (!floats(env, argv[i], &data[i], &lengths[i])) return false;
  return true;
}

// adam(p, g, m, v, pOut, mOut, vOut, h) with h = [lr, b1, b2, eps, 1 − b1, 1 − b2, 1 − b1^t, 1 − b2^t] (float32)
napi_value Adam(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  if (!args(env, info, argv)) return nullptr;
  float* a[8];
  size_t n[8];
  if (!floatArgs(env, argv, 8, a, n)) return nullptr;
  bool ok = n[7] == 8;
  for (int i = 1; i < 7; ++i) ok = ok && n[i] == n[0];
  if (!check(env, ok, "adam: the seven arrays must have one length and the hyper-parameters eight entries")) return nullptr;
  std::lock_guard<std::mutex> lock(callMutex);
  adam(a[0], a[1], a[2], a[3], a[4], a[5], a[6], static_cast<int64_t>(n[0]), a[7]);
  return nullptr;
}

bool readNorm(napi_env env, napi_value v, NormDims* d) {
  int64_t q[4];
  if (!ints(env, v, q, 4)) return false;
  *d = NormDims{q[0], q[1], q[2], q[3]};
  return check(env, d->n > 0 && d->hw > 0 && d->c > 0 && d->groups > 0 && d->c % d->groups == 0,
               "groupNorm: dims must be positive [N, H·W, C, G] with G dividing C");
}

bool readBool(napi_env env, napi_value v, bool* out) { return napi_get_value_bool(env, v, out) == napi_ok; }

// groupNorm(x, gamma, beta, y, mean, rstd, [N, H·W, C, G], eps, silu)
napi_value GroupNorm(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  if (!args(env, info, argv)) return nullptr;
  NormDims d;
  float* a[6];
  size_t n[6];
  double eps;
  bool silu;
  if (!readNorm(env, argv[6], &d) || napi_get_value_double(env, argv[7], &eps) != napi_ok || !readBool(env, argv[8], &silu) ||
      !floatArgs(env, argv, 6, a, n))
    return nullptr;
  const size_t size = size_t(d.n * d.hw * d.c), stats = size_t(d.n * d.groups);
  if (!check(env, n[0] == size && n[1] == size_t(d.c) && n[2] == size_t(d.c) && n[3] == size && n[4] == stats && n[5] == stats,
             "groupNorm: array sizes do not match the dimensions"))
    return nullptr;
  std::lock_guard<std::mutex> lock(callMutex);
  groupNorm(a[0], a[1], a[2], a[3], a[4], a[5], d, static_cast<float>(eps), silu);
  return nullptr;
}

// groupNormGrad(dy, x, gamma, beta, mean, rstd, dx, dgamma, dbeta, [N, H·W, C, G], silu)
napi_value GroupNormGrad(napi_env env, napi_callback_info info) {
  napi_value argv[11];
  if (!args(env, info, argv)) return nullptr;
  NormDims d;
  float* a[9];
  size_t n[9];
  bool silu;
  if (!readNorm(env, argv[9], &d) || !readBool(env, argv[10], &silu) || !floatArgs(env, argv, 9, a, n)) return nullptr;
  const size_t size = size_t(d.n * d.hw * d.c), stats = size_t(d.n * d.groups), c = size_t(d.c);
  if (!check(env, n[0] == size && n[1] == size && n[2] == c && n[3] == c && n[4] == stats && n[5] == stats && n[6] == size &&
                      n[7] == c && n[8] == c,
             "groupNormGrad: array sizes do not match the dimensions"))
    return nullptr;
  std::lock_guard<std::mutex> lock(callMutex);
  groupNormGrad(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], d, silu);
  return nullptr;
}

// sigmoid(x, y)
napi_value Sigmoid(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!args(env, info, argv)) return nullptr;
  float *x, *y;
  size_t nx, ny;
  if (!floats(env, argv[0], &x, &nx) || !floats(env, argv[1], &y, &ny)) return nullptr;
  if (!check(env, nx == ny, "sigmoid: sizes differ")) return nullptr;
  {
    std::lock_guard<std::mutex> lock(callMutex);
    sigmoid(x, y, static_cast<int64_t>(nx));
  }
  return nullptr;
}

// copyRows(src, srcStride, srcOffset, dst, dstStride, dstOffset, rows, rowLength)
napi_value CopyRows(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  if (!args(env, info, argv)) return nullptr;
  float *src, *dst;
  size_t ns, nd;
  int64_t v[6];
  if (!floats(env, argv[0], &src, &ns) || !floats(env, argv[3], &dst, &nd)) return nullptr;
  const int idx[6] = {1, 2, 4, 5, 6, 7};
  for (int i = 0; i < 6; ++i)
    if (napi_get_value_int64(env, argv[idx[i]], &v[i]) != napi_ok) return nullptr;
  const int64_t srcStride = v[0], srcOffset = v[1], dstStride = v[2], dstOffset = v[3], rows = v[4], len = v[5];
  const bool ok = rows >= 0 && len >= 0 && srcOffset >= 0 && dstOffset >= 0 &&
                  (rows == 0 || len == 0 ||
                   ((rows - 1) * srcStride + srcOffset + len <= int64_t(ns) &&
                    (rows - 1) * dstStride + dstOffset + len <= int64_t(nd)));
  if (!check(env, ok, "copyRows: out of bounds")) return nullptr;
  {
    std::lock_guard<std::mutex> lock(callMutex);
    if (rows > 0 && len > 0) copyRows(src, srcStride, srcOffset, dst, dstStride, dstOffset, rows, len);
  }
  return nullptr;
}

// resizeNearestGrad(dy, dx, [batch, inH, inW, outH, outW, depth], rows: Int32Array, cols: Int32Array)
napi_value ResizeNearestGrad(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!args(env, info, argv)) return nullptr;
  float *dy, *dx;
  size_t ndy, ndx;
  int64_t d[6];
  if (!floats(env, argv[0], &dy, &ndy) || !floats(env, argv[1], &dx, &ndx) || !ints(env, argv[2], d, 6)) return nullptr;
  int32_t* idx[2];
  size_t lens[2];
  for (int i = 0; i < 2; ++i) {
    napi_typedarray_type type;
    void* ptr;
    napi_value ab;
    size_t offset;
    if (napi_get_typedarray_info(env, argv[3 + i], &type, &lens[i], &ptr, &ab, &offset) != napi_ok ||
        type != napi_int32_array) {
      napi_throw_type_error(env, nullptr, "expected an Int32Array");
      return nullptr;
    }
    idx[i] = static_cast<int32_t*>(ptr);
  }
  const int64_t batch = d[0], inH = d[1], inW = d[2], outH = d[3], outW = d[4], depth = d[5];
  bool ok = ndy == size_t(batch * outH * outW * depth) && ndx == size_t(batch * inH * inW * depth) &&
            lens[0] == size_t(outH) && lens[1] == size_t(outW);
  for (int64_t y = 0; ok && y < outH; ++y) ok = idx[0][y] >= 0 && idx[0][y] < inH;
  for (int64_t x = 0; ok && x < outW; ++x) ok = idx[1][x] >= 0 && idx[1][x] < inW;
  if (!check(env, ok, "resizeNearestGrad: sizes or indices out of range")) return nullptr;
  {
    std::lock_guard<std::mutex> lock(callMutex);
    resizeNearestGrad(dy, dx, batch, inH, inW, outH, outW, depth, idx[0], idx[1]);
  }
  return nullptr;
}

// useOneDnn(enabled): switches the convolutions between oneDNN and OpenBLAS at run time (tests, benchmarks); returns
// whether oneDNN is now in use (false when it is not compiled in).
napi_value UseOneDnn(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!args(env, info, argv)) return nullptr;
  bool enabled = false;
  if (napi_get_value_bool(env, argv[0], &enabled) != napi_ok) {
    napi_throw_type_error(env, nullptr, "expected a boolean");
    return nullptr;
  }
#ifdef SID_HAVE_DNNL
  {
    std::lock_guard<std::mutex> lock(callMutex);
    dnnlEnabled = enabled;
  }
#else
  enabled = false;
#endif
  napi_value out;
  napi_get_boolean(env, enabled, &out);
  return out;
}

napi_value ConvLibrary(napi_env env, napi_callback_info) {
  napi_value out;
#ifdef SID_HAVE_DNNL
  const char* name = dnnlEnabled ? "onednn+openblas" : "openblas";
#else
  const char* name = "openblas";
#endif
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &out);
  return out;
}

napi_value Threads(napi_env env, napi_callback_info) {
  napi_value out;
  napi_create_int32(env, threadCount, &out);
  return out;
}

std::once_flag initOnce;

napi_value Init(napi_env env, napi_value exports) {
  std::call_once(initOnce, [] {
    int threads = static_cast<int>(std::thread::hardware_concurrency());
    if (const char* s = std::getenv("SID_NATIVE_THREADS")) threads = std::atoi(s);
    threads = std::max(1, std::min(threads, 64));
    openblas_set_num_threads(1);
    omp_set_num_threads(threads);
#ifdef SID_HAVE_DNNL
    if (const char* s = std::getenv("SID_NATIVE_DNNL")) dnnlEnabled = std::string(s) != "0";
#endif
    if (const char* s = std::getenv("SID_NATIVE_CHUNK")) chunkFloats = std::max<int64_t>(1024, std::atoll(s));
    threadCount = threads;
    scratch.resize(threads);
  });
  napi_property_descriptor props[] = {
      {"conv2d", nullptr, Conv2D, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dBackpropInput", nullptr, Conv2DBackpropInput, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dBackpropFilter", nullptr, Conv2DBackpropFilter, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchMatMul", nullptr, BatchMatMul, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"binary", nullptr, Binary, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sum", nullptr, Sum, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sigmoid", nullptr, Sigmoid, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"adam", nullptr, Adam, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"groupNorm", nullptr, GroupNorm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"groupNormGrad", nullptr, GroupNormGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"copyRows", nullptr, CopyRows, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"resizeNearestGrad", nullptr, ResizeNearestGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"useOneDnn", nullptr, UseOneDnn, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"convLibrary", nullptr, ConvLibrary, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"threads", nullptr, Threads, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
