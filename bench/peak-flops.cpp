// The CPU's arithmetic peak, measured: tight loops of independent multiply-adds on every core at once, with enough
// accumulators to hide the instruction latency. The bench (bench/forward-bench.ts) compiles this file with the
// system C++ compiler and prints the engine's GFLOP/s against these figures. One multiply-add counts as 2 FLOP; a
// vdpbf16ps lane does two (bf16 × bf16 pairs summed into fp32), so 4 FLOP per lane.
//
// Usage: peak-flops THREADS SECONDS → one JSON line {"fp32_avx2": GFLOP/s, "fp32_avx512": ..., "bf16_dot": ...}
// (an entry is left out when the CPU lacks the instructions): per CPU-second of one thread, i.e. one core's peak.
// Each thread's own CPU time is the divisor, so a machine shared with other jobs does not lower the figure (time a
// thread waited for a core is not counted); the bench multiplies by the thread count for the whole machine.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <time.h>
#include <vector>

namespace {

constexpr int kAccumulators = 12;
constexpr long kInner = 1 << 14;

__attribute__((target("avx2,fma"))) double fp32_avx2(long iterations, float seed) {
  __m256 acc[kAccumulators];
  for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm256_set1_ps(seed * float(i));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (long it = 0; it < iterations; ++it) {
    for (long k = 0; k < kInner; ++k) {
#pragma GCC unroll 12
      for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    }
  }
  __m256 sum = acc[0];
  for (int i = 1; i < kAccumulators; ++i) sum = _mm256_add_ps(sum, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, sum);
  return out[0];
}

__attribute__((target("avx512f"))) double fp32_avx512(long iterations, float seed) {
  __m512 acc[kAccumulators];
  for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm512_set1_ps(seed * float(i));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < iterations; ++it) {
    for (long k = 0; k < kInner; ++k) {
#pragma GCC unroll 12
      for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    }
  }
  __m512 sum = acc[0];
  for (int i = 1; i < kAccumulators; ++i) sum = _mm512_add_ps(sum, acc[i]);
  return _mm512_reduce_add_ps(sum);
}

__attribute__((target("avx512f,avx512bf16"))) double bf16_dot(long iterations, float seed) {
  __m512 acc[kAccumulators];
  for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm512_set1_ps(seed * float(i));
  const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3380);
  for (long it = 0; it < iterations; ++it) {
    for (long k = 0; k < kInner; ++k) {
#pragma GCC unroll 12
      for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
    }
  }
  __m512 sum = acc[0];
  for (int i = 1; i < kAccumulators; ++i) sum = _mm512_add_ps(sum, acc[i]);
  return _mm512_reduce_add_ps(sum);
}

/** GFLOP/s of `kernel` run on `threads` threads at once for about `seconds`. */
double measure(double (*kernel)(long, float), double flop_per_instruction, unsigned threads, double seconds) {
  // Calibrate the iteration count on one thread, then run all threads together.
  long iterations = 1;
  for (;;) {
    const auto start = std::chrono::steady_clock::now();
    volatile double sink = kernel(iterations, 1.0f);
    (void)sink;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (elapsed > seconds / 4) {
      iterations = static_cast<long>(iterations * seconds / elapsed) + 1;
      break;
    }
    iterations *= 2;
  }
  std::vector<std::thread> pool;
  std::atomic<unsigned> ready{0};
  std::atomic<bool> go{false};
  std::vector<double> elapsed(threads);
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ready++;
      while (!go.load()) {
      }
      timespec start, end;
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &start);
      volatile double sink = kernel(iterations, float(t + 1));
      (void)sink;
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &end);
      elapsed[t] = double(end.tv_sec - start.tv_sec) + 1e-9 * double(end.tv_nsec - start.tv_nsec);
    });
  }
  while (ready.load() < threads) {
  }
  go = true;
  for (auto& thread : pool) thread.join();
  // The best thread: a thread that shared its core with another job's thread (SMT) ran slower per CPU-second.
  double best = 0;
  for (double e : elapsed) best = std::max(best, double(iterations) * kInner * kAccumulators * flop_per_instruction / e);
  return best / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  const unsigned threads = argc > 1 ? unsigned(std::atoi(argv[1])) : std::thread::hardware_concurrency();
  const double seconds = argc > 2 ? std::atof(argv[2]) : 1.0;
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512 = __builtin_cpu_supports("avx512f");
  // __builtin_cpu_supports("avx512bf16") needs GCC 13; read CPUID leaf 7 subleaf 1, EAX bit 5.
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  __asm__("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(7), "c"(1));
  const bool bf16 = avx512 && (eax & (1u << 5));
  std::printf("{\"threads\": %u", threads);
  if (avx2) std::printf(", \"fp32_avx2\": %.1f", measure(fp32_avx2, 16, threads, seconds));
  if (avx512) std::printf(", \"fp32_avx512\": %.1f", measure(fp32_avx512, 32, threads, seconds));
  if (bf16) std::printf(", \"bf16_dot\": %.1f", measure(bf16_dot, 64, threads, seconds));
  std::printf("}\n");
  return 0;
}
