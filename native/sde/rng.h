// The engine's random numbers: SplitMix64 (Steele, Lea & Flood 2014) for seeds and streams, and a
// counter-based Gaussian generator over it for the Brownian interval. Streams are pure functions
// of (key, element index), computed in fixed blocks whatever the thread count, and compiled without
// FMA contraction (cpu_dispatch.h): the same key gives the same bits on every CPU.
#pragma once
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

namespace sde::rng {

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

// SplitMix64's finaliser: a bijection with full avalanche; used both to derive seeds and, on a
// Weyl sequence, as a counter-based generator (SplitMix64's own stream, which passes BigCrush).
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The output of SplitMix64 for state x: a seed derived from another.
inline uint64_t splitmix64(uint64_t x) { return mix64(x + kGolden); }

// A child seed for `tag` (a stream's name), so that the streams of one seed never coincide.
inline uint64_t derive(uint64_t seed, uint64_t tag) { return mix64(seed ^ tag) + kGolden; }

// Work is cut into fixed blocks from element 0, whatever the thread count, so every element is
// always computed by the same instructions.
constexpr int64_t kBlock = 2048;
constexpr int64_t kParallelBlocks = 8;  // below this, threads cost more than they save

// Standard normals for elements [first, first + m) of the stream `key` (first even, m <= kBlock):
// Box-Muller on the stream's uniforms.
void normals_block(uint64_t key, int64_t first, float* out, int64_t m);
void normals_block(uint64_t key, int64_t first, double* out, int64_t m);

// Runs body(i0, m) on the fixed blocks of [0, n), on LibTorch's threads when there are many.
template <typename F>
void for_blocks(int64_t n, const F& body) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  auto run = [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) body(b * kBlock, std::min(kBlock, n - b * kBlock));
  };
  if (blocks >= kParallelBlocks) {
    at::parallel_for(0, blocks, 1, run);
  } else {
    run(0, blocks);
  }
}

template <typename T>
void fill_normals(uint64_t key, T scale, T* out, int64_t n) {
  for_blocks(n, [&](int64_t i0, int64_t m) {
    normals_block(key, i0, out + i0, m);
    for (int64_t j = 0; j < m; ++j) out[i0 + j] *= scale;
  });
}

}  // namespace sde::rng
