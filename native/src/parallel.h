// sid-ts native kernels: parallel loops and per-worker scratch buffers.
// Parallel loops: parallelFor(n, fn) runs fn(i, worker) for i in [0, n) on an OpenMP team (the same threads oneDNN's
// primitives use, so the process has one set of workers), which take indices from a shared counter: a preempted
// thread delays at most one index. Idle OpenMP threads spin briefly before they sleep (libgomp's default policy;
// OMP_WAIT_POLICY / GOMP_SPINCOUNT override it): waking a sleeping thread costs tens of microseconds under a
// hypervisor, longer than most kernels of a small network's step, which follow each other within microseconds.
#pragma once

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

namespace sid {

// Threads in the team (set once by initThreads).
extern int threadCount;

// Elements per task, roughly, for the memory-bound kernels: they go parallel over large ranges only.
constexpr int64_t kGrain = 1 << 15;

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

// Per-worker scratch buffers, grown on demand and kept (one per thread; see initThreads).
struct Scratch {
  std::vector<float> a;
  std::vector<float> b;
};
extern std::vector<Scratch> scratch;

// v's data, grown to at least n floats.
inline float* ensure(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// Sets the team size (SID_NATIVE_THREADS, else all cores, at most 64), keeps OpenBLAS single-threaded (the addon
// parallelises around it) and sizes the scratch buffers. Called once, when the addon is first loaded.
void initThreads();

}  // namespace sid
