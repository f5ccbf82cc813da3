// sid-ts optional native kernels (issue 6): NHWC convolution forward / input gradient / filter gradient and batched
// matrix products over OpenBLAS sgemm, plus a few memory-bound elementwise kernels, parallel over a small persistent
// thread pool. Every function works in place on Float32Array views (the caller passes views into the TF.js wasm heap,
// so no copies are made) and is synchronous.
#include <node_api.h>

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

extern "C" void openblas_set_num_threads(int);

namespace {

// ---------------------------------------------------------------------------------------------------------------
// Thread pool: parallelFor(n, fn) runs fn(i, worker) for i in [0, n) on the calling thread plus (threads - 1)
// workers. Workers spin briefly before sleeping so back-to-back kernels do not pay a wake-up each.

using Task = void (*)(void* ctx, int64_t i, int worker);

class Pool {
 public:
  explicit Pool(int threads) : threads_(std::max(1, threads)) {
    for (int w = 1; w < threads_; ++w) workers_.emplace_back([this, w] { loop(w); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
      generation_.fetch_add(1);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int threads() const { return threads_; }

  void run(int64_t n, Task task, void* ctx) {
    if (n <= 0) return;
    if (threads_ == 1 || n == 1) {
      for (int64_t i = 0; i < n; ++i) task(ctx, i, 0);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      task_ = task;
      ctx_ = ctx;
      total_ = n;
      next_.store(0);
      pending_.store(threads_ - 1);
      generation_.fetch_add(1);
    }
    cv_.notify_all();
    work(0);
    while (pending_.load(std::memory_order_acquire) != 0) {
    }
  }

 private:
  void work(int worker) {
    for (;;) {
      int64_t i = next_.fetch_add(1);
      if (i >= total_) break;
      task_(ctx_, i, worker);
    }
  }
  void loop(int worker) {
    uint64_t seen = generation_.load();
    for (;;) {
      bool got = false;
      for (int spin = 0; spin < 20000; ++spin) {
        if (generation_.load(std::memory_order_acquire) != seen) {
          got = true;
          break;
        }
      }
      if (!got) {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return generation_.load() != seen; });
      }
      seen = generation_.load();
      if (stop_) return;
      work(worker);
      pending_.fetch_sub(1, std::memory_order_release);
    }
  }

  int threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int64_t> next_{0};
  std::atomic<int> pending_{0};
  int64_t total_ = 0;
  Task task_ = nullptr;
  void* ctx_ = nullptr;
  bool stop_ = false;
};

Pool* pool = nullptr;

template <typename F>
void parallelFor(int64_t n, F& f) {
  pool->run(
      n, [](void* ctx, int64_t i, int worker) { (*static_cast<F*>(ctx))(i, worker); }, &f);
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
  bool pointwise() const { return kh == 1 && kw == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0 && oh == h && ow == w; }
};

// Rows of the im2col matrix processed per GEMM (keeps the column block near L2).
int64_t chunkRows(const Conv& c) {
  int64_t rows = std::max<int64_t>(64, (1 << 16) / std::max<int64_t>(1, c.k()));
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

void convForward(const Conv& c, const float* x, const float* f, const float* bias, float* y) {
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
  const int64_t k = c.k();
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
  const int64_t k = c.k();
  const int64_t inImage = c.h * c.w * c.cin, outImage = c.pixels() * c.cout;
  const int threads = pool->threads();
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
    const int64_t parts = (m * n * k > (1 << 20) && m >= 32) ? std::min<int64_t>(pool->threads(), m / 16) : 1;
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
             nx == size_t(c.b * c.h * c.w * c.cin) && nf == size_t(c.k() * c.cout) &&
                 ny == size_t(c.b * c.pixels() * c.cout) && (bias == nullptr || nb == size_t(c.cout)),
             "conv2d: array sizes do not match the dimensions"))
    return nullptr;
  convForward(c, x, f, bias, y);
  return nullptr;
}

// conv2dBackpropInput(dy, filter, dx, dims)
napi_value Conv2DBackpropInput(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!args(env, info, argv)) return nullptr;
  Conv c;
  float *dy, *f, *dx;
  size_t ndy, nf, ndx;
  if (!readConv(env, argv[3], &c) || !floats(env, argv[0], &dy, &ndy) || !floats(env, argv[1], &f, &nf) ||
      !floats(env, argv[2], &dx, &ndx))
    return nullptr;
  if (!check(env,
             ndx == size_t(c.b * c.h * c.w * c.cin) && nf == size_t(c.k() * c.cout) &&
                 ndy == size_t(c.b * c.pixels() * c.cout),
             "conv2dBackpropInput: array sizes do not match the dimensions"))
    return nullptr;
  convBackpropInput(c, dy, f, dx);
  return nullptr;
}

// conv2dBackpropFilter(x, dy, dfilter, dims)
napi_value Conv2DBackpropFilter(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!args(env, info, argv)) return nullptr;
  Conv c;
  float *x, *dy, *df;
  size_t nx, ndy, ndf;
  if (!readConv(env, argv[3], &c) || !floats(env, argv[0], &x, &nx) || !floats(env, argv[1], &dy, &ndy) ||
      !floats(env, argv[2], &df, &ndf))
    return nullptr;
  if (!check(env,
             nx == size_t(c.b * c.h * c.w * c.cin) && ndf == size_t(c.k() * c.cout) &&
                 ndy == size_t(c.b * c.pixels() * c.cout),
             "conv2dBackpropFilter: array sizes do not match the dimensions"))
    return nullptr;
  convBackpropFilter(c, x, dy, df);
  return nullptr;
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
  batchMatMul(a, b, c, batch, batchA, batchB, m, k, n, d[6] != 0, d[7] != 0);
  return nullptr;
}

napi_value Threads(napi_env env, napi_callback_info) {
  napi_value out;
  napi_create_int32(env, pool->threads(), &out);
  return out;
}

napi_value Init(napi_env env, napi_value exports) {
  if (pool == nullptr) {
    int threads = static_cast<int>(std::thread::hardware_concurrency());
    if (const char* s = std::getenv("SID_NATIVE_THREADS")) threads = std::atoi(s);
    threads = std::max(1, std::min(threads, 64));
    openblas_set_num_threads(1);
    pool = new Pool(threads);
    scratch.resize(threads);
  }
  napi_property_descriptor props[] = {
      {"conv2d", nullptr, Conv2D, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dBackpropInput", nullptr, Conv2DBackpropInput, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dBackpropFilter", nullptr, Conv2DBackpropFilter, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchMatMul", nullptr, BatchMatMul, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"threads", nullptr, Threads, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
