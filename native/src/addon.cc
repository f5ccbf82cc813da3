// sid-ts optional native kernels (issue 6): the Node-API glue. NHWC convolution forward / input gradient / filter
// gradient and batched matrix products over oneDNN / OpenBLAS sgemm, memory-bound element-wise kernels and fused
// kernels, parallel over one OpenMP team. Every function works in place on Float32Array views (the caller passes views
// into the TF.js wasm heap, so no copies are made) and is synchronous. Each export checks its arguments, then runs
// its kernel (conv.cc, matmul.cc, elementwise.cc, reduce.cc, fused.cc, copy.cc) under one process-wide lock.
#include <node_api.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "conv.h"
#include "copy.h"
#include "elementwise.h"
#include "fused.h"
#include "matmul.h"
#include "parallel.h"
#include "reduce.h"

namespace {

using namespace sid;

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

// gradientStats(arrays: Float32Array[], out: Float64Array(2)): out = [Σ x², number of NaN / ±Inf entries].
napi_value GradientStats(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!args(env, info, argv)) return nullptr;
  bool isArray = false;
  uint32_t count = 0;
  napi_is_array(env, argv[0], &isArray);
  if (!isArray || napi_get_array_length(env, argv[0], &count) != napi_ok) {
    napi_throw_type_error(env, nullptr, "gradientStats: expected an array of Float32Arrays");
    return nullptr;
  }
  std::vector<const float*> xs(count);
  std::vector<int64_t> lengths(count);
  for (uint32_t i = 0; i < count; ++i) {
    napi_value e;
    float* data;
    size_t len;
    if (napi_get_element(env, argv[0], i, &e) != napi_ok || !floats(env, e, &data, &len)) return nullptr;
    xs[i] = data;
    lengths[i] = static_cast<int64_t>(len);
  }
  napi_typedarray_type type;
  size_t len;
  void* ptr;
  napi_value ab;
  size_t offset;
  if (napi_get_typedarray_info(env, argv[1], &type, &len, &ptr, &ab, &offset) != napi_ok || type != napi_float64_array ||
      len != 2) {
    napi_throw_type_error(env, nullptr, "gradientStats: expected a Float64Array of length 2 for the result");
    return nullptr;
  }
  std::lock_guard<std::mutex> lock(callMutex);
  gradientStats(xs, lengths, static_cast<double*>(ptr));
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

// Reads a JS array of count Float32Arrays into data / lengths.
bool floatList(napi_env env, napi_value v, uint32_t count, std::vector<float*>* data, std::vector<size_t>* lengths) {
  bool isArray = false;
  uint32_t len = 0;
  napi_is_array(env, v, &isArray);
  if (!isArray || napi_get_array_length(env, v, &len) != napi_ok || len != count) {
    napi_throw_type_error(env, nullptr, "expected an array of Float32Arrays of the right length");
    return false;
  }
  data->resize(count);
  lengths->resize(count);
  for (uint32_t i = 0; i < count; ++i) {
    napi_value e;
    if (napi_get_element(env, v, i, &e) != napi_ok || !floats(env, e, &(*data)[i], &(*lengths)[i])) return false;
  }
  return true;
}

// adamAll(ps, gs, ms, vs, pOuts, mOuts, vOuts, h): adam over every parameter, each argument but h an array of one
// Float32Array per parameter.
napi_value AdamAll(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  if (!args(env, info, argv)) return nullptr;
  uint32_t count = 0;
  bool isArray = false;
  napi_is_array(env, argv[0], &isArray);
  if (!isArray || napi_get_array_length(env, argv[0], &count) != napi_ok) {
    napi_throw_type_error(env, nullptr, "adamAll: expected arrays of Float32Arrays");
    return nullptr;
  }
  std::vector<float*> a[7];
  std::vector<size_t> n[7];
  for (int i = 0; i < 7; ++i)
    if (!floatList(env, argv[i], count, &a[i], &n[i])) return nullptr;
  float* h;
  size_t nh;
  if (!floats(env, argv[7], &h, &nh)) return nullptr;
  bool ok = nh == 8;
  for (uint32_t j = 0; ok && j < count; ++j)
    for (int i = 1; i < 7; ++i) ok = ok && n[i][j] == n[0][j];
  if (!check(env, ok, "adamAll: each parameter's seven arrays must have one length and h eight entries")) return nullptr;
  std::lock_guard<std::mutex> lock(callMutex);
  for (uint32_t j = 0; j < count; ++j)
    adam(a[0][j], a[1][j], a[2][j], a[3][j], a[4][j], a[5][j], a[6][j], static_cast<int64_t>(n[0][j]), h);
  return nullptr;
}

// emaAll(es, ps, outs, h): ema over every parameter, es / ps / outs arrays of one Float32Array per parameter,
// h = [β, 1 − β] (float32).
napi_value EmaAll(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!args(env, info, argv)) return nullptr;
  uint32_t count = 0;
  bool isArray = false;
  napi_is_array(env, argv[0], &isArray);
  if (!isArray || napi_get_array_length(env, argv[0], &count) != napi_ok) {
    napi_throw_type_error(env, nullptr, "emaAll: expected arrays of Float32Arrays");
    return nullptr;
  }
  std::vector<float*> a[3];
  std::vector<size_t> n[3];
  for (int i = 0; i < 3; ++i)
    if (!floatList(env, argv[i], count, &a[i], &n[i])) return nullptr;
  float* h;
  size_t nh;
  if (!floats(env, argv[3], &h, &nh)) return nullptr;
  bool ok = nh == 2;
  for (uint32_t j = 0; ok && j < count; ++j) ok = n[1][j] == n[0][j] && n[2][j] == n[0][j];
  if (!check(env, ok, "emaAll: each parameter's three arrays must have one length and h two entries")) return nullptr;
  std::lock_guard<std::mutex> lock(callMutex);
  for (uint32_t j = 0; j < count; ++j) ema(a[0][j], a[1][j], a[2][j], static_cast<int64_t>(n[0][j]), h);
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

// dense(x, w, b, y, z | null, [M, K, N], silu)
napi_value Dense(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  if (!args(env, info, argv)) return nullptr;
  int64_t d[3];
  float* a[4];
  size_t n[4];
  float* z = nullptr;
  size_t nz = 0;
  bool silu;
  if (!ints(env, argv[5], d, 3) || !readBool(env, argv[6], &silu) || !floatArgs(env, argv, 4, a, n)) return nullptr;
  if (!isNullish(env, argv[4]) && !floats(env, argv[4], &z, &nz)) return nullptr;
  const int64_t m = d[0], k = d[1], nn = d[2];
  if (!check(env,
             m > 0 && k > 0 && nn > 0 && n[0] == size_t(m * k) && n[1] == size_t(k * nn) && n[2] == size_t(nn) &&
                 n[3] == size_t(m * nn) && (z == nullptr || nz == size_t(m * nn)),
             "dense: array sizes do not match the dimensions [M, K, N]"))
    return nullptr;
  std::lock_guard<std::mutex> lock(callMutex);
  dense(a[0], a[1], a[2], a[3], z, m, k, nn, silu);
  return nullptr;
}

// denseGrad(dy, x, w, z | null, dx, dw, db, [M, K, N], silu); z is required when silu.
napi_value DenseGrad(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  if (!args(env, info, argv)) return nullptr;
  int64_t d[3];
  float* a[3];
  size_t n[3];
  float* o[3];
  size_t no[3];
  float* z = nullptr;
  size_t nz = 0;
  bool silu;
  if (!ints(env, argv[7], d, 3) || !readBool(env, argv[8], &silu) || !floatArgs(env, argv, 3, a, n) ||
      !floatArgs(env, argv + 4, 3, o, no))
    return nullptr;
  if (!isNullish(env, argv[3]) && !floats(env, argv[3], &z, &nz)) return nullptr;
  const int64_t m = d[0], k = d[1], nn = d[2];
  if (!check(env,
             m > 0 && k > 0 && nn > 0 && n[0] == size_t(m * nn) && n[1] == size_t(m * k) && n[2] == size_t(k * nn) &&
                 no[0] == size_t(m * k) && no[1] == size_t(k * nn) && no[2] == size_t(nn) &&
                 (silu ? z != nullptr && nz == size_t(m * nn) : true),
             "denseGrad: array sizes do not match the dimensions [M, K, N] (z is required after SiLU)"))
    return nullptr;
  std::lock_guard<std::mutex> lock(callMutex);
  denseGrad(a[0], a[1], a[2], z, o[0], o[1], o[2], m, k, nn, silu);
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
  {
    std::lock_guard<std::mutex> lock(callMutex);
    enabled = useOneDnn(enabled);
  }
  napi_value out;
  napi_get_boolean(env, enabled, &out);
  return out;
}

// convMode(mode): "auto", "onednn" or "openblas" (see conv.h); returns whether the mode was set (false for a mode
// this build lacks).
napi_value ConvMode(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!args(env, info, argv)) return nullptr;
  char mode[16];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[0], mode, sizeof mode, &len) != napi_ok) {
    napi_throw_type_error(env, nullptr, "expected a string");
    return nullptr;
  }
  bool ok;
  {
    std::lock_guard<std::mutex> lock(callMutex);
    ok = setConvMode(std::string(mode, len));
  }
  napi_value out;
  napi_get_boolean(env, ok, &out);
  return out;
}

napi_value ConvLibrary(napi_env env, napi_callback_info) {
  napi_value out;
  napi_create_string_utf8(env, convLibrary(), NAPI_AUTO_LENGTH, &out);
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
    initThreads();
    initConv();
  });
  napi_property_descriptor props[] = {
      {"conv2d", nullptr, Conv2D, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dBackpropInput", nullptr, Conv2DBackpropInput, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dBackpropFilter", nullptr, Conv2DBackpropFilter, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchMatMul", nullptr, BatchMatMul, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"binary", nullptr, Binary, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"gradientStats", nullptr, GradientStats, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sum", nullptr, Sum, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sigmoid", nullptr, Sigmoid, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"emaAll", nullptr, EmaAll, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"adamAll", nullptr, AdamAll, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"adam", nullptr, Adam, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"dense", nullptr, Dense, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"denseGrad", nullptr, DenseGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"groupNorm", nullptr, GroupNorm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"groupNormGrad", nullptr, GroupNormGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"copyRows", nullptr, CopyRows, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"resizeNearestGrad", nullptr, ResizeNearestGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"useOneDnn", nullptr, UseOneDnn, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"convMode", nullptr, ConvMode, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"convLibrary", nullptr, ConvLibrary, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"threads", nullptr, Threads, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
