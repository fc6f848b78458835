// The engine's one CPU-dispatch mechanism and its floating-point contraction policy, and the
// 32-byte vector type the hand-written loops are written in.
//
// Dispatch: a function marked SDEBNN_CPU_CLONES is compiled three times by GCC's target_clones
// (x86-64-v4: AVX-512; x86-64-v3: AVX2 and FMA; the baseline ISA) and the loader picks the clone
// for the CPU it runs on. Whatever its hot loop calls must inline into it (SDEBNN_INLINE, or a
// template in a header) to be compiled for the clone's ISA: the entry points are plain functions
// over raw pointers, their helpers always_inline templates. Elsewhere (other compilers, other
// architectures) the macros are empty and the baseline is all there is.
//
// Contraction policy: the engine is compiled with -ffp-contract=fast (CMakeLists.txt), so a * b + c
// may become one fused multiply-add where the clone's ISA has one. Clones may therefore differ from
// each other at round-off; on one CPU every result is the same from run to run and whatever the
// thread count. The one exception is SDEBNN_CPU_CLONES_EXACT (contraction off), for the random
// number generator and the Brownian bridge: a seed names the same Brownian path, bit for bit, on
// every CPU.
//
// The vectors (Vec<T>::type, 8 floats or 4 doubles) are GCC/Clang vector extensions; in the
// baseline clone a 32-byte vector is a pair of SSE registers. They pass only between inlined
// functions, never across a call: -Wpsabi's ABI note does not apply.
#pragma once
#include <cstdint>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SDEBNN_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define SDEBNN_CPU_CLONES_EXACT __attribute__((optimize("fp-contract=off"))) SDEBNN_CPU_CLONES
#define SDEBNN_HAS_CLONES 1
#else
#define SDEBNN_CPU_CLONES
#define SDEBNN_CPU_CLONES_EXACT
#endif

#define SDEBNN_INLINE __attribute__((always_inline)) inline

#pragma GCC diagnostic ignored "-Wpsabi"

namespace sde::simd {

template <typename T>
struct Vec {
  typedef T type __attribute__((vector_size(32)));
  static constexpr int kLanes = 32 / sizeof(T);
};

// Unaligned loads and stores (memcpy: no alignment or aliasing assumptions).
template <typename T>
SDEBNN_INLINE typename Vec<T>::type vload(const T* p) {
  typename Vec<T>::type v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}
template <typename T>
SDEBNN_INLINE void vstore(T* p, typename Vec<T>::type v) {
  __builtin_memcpy(p, &v, sizeof(v));
}

// 64-byte float vectors, for the branches of an AVX-512 clone (see wide_vectors()).
typedef float Wide __attribute__((vector_size(64)));

// True on CPUs that run the x86-64-v4 clone. A clone for another ISA never takes a branch guarded
// by it (the check fails on any CPU that would run that clone), so such branches may use 64-byte
// vectors and more registers without slowing the other clones.
SDEBNN_INLINE bool wide_vectors() {
#if defined(SDEBNN_HAS_CLONES)
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512cd");
#else
  return false;
#endif
}

}  // namespace sde::simd
