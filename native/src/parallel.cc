// sid-ts native kernels: the OpenMP team's size and the per-worker scratch buffers.
#include "parallel.h"

#include <cstdlib>
#include <thread>

extern "C" void openblas_set_num_threads(int);

namespace sid {

int threadCount = 1;
std::vector<Scratch> scratch;

void initThreads() {
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  if (const char* s = std::getenv("SID_NATIVE_THREADS")) threads = std::atoi(s);
  threads = std::max(1, std::min(threads, 64));
  openblas_set_num_threads(1);
  omp_set_num_threads(threads);
  threadCount = threads;
  scratch.resize(threads);
}

}  // namespace sid
