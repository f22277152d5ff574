// CSparrowSIMD: the few x86 operations Swift cannot express.
//
// Why this module exists: Swift SIMD has no int8 dot-product instruction (LLVM lowers Swift's
// widening int8 multiplies to vpmulld chains), so the AVX-512 VNNI `vpdpbusd` is wrapped here.
// Each wrapper is `static inline` around one intrinsic and carries its own target attribute:
// Swift imports the header, LLVM inlines the wrapper into the Swift loop (the SparrowKernels
// target is built for the host CPU), and the wrapper is only ever called after the run-time
// feature check below succeeded. Everything else stays in Swift.
#pragma once
#include <stdint.h>
#include <immintrin.h>

// GCC vector types import into Swift as SIMDn<T>.
typedef int32_t sparrow_i32x8 __attribute__((vector_size(32)));
typedef uint8_t sparrow_u8x32 __attribute__((vector_size(32)));
typedef int8_t sparrow_i8x32 __attribute__((vector_size(32)));
typedef int32_t sparrow_i32x16 __attribute__((vector_size(64)));
typedef uint8_t sparrow_u8x64 __attribute__((vector_size(64)));
typedef int8_t sparrow_i8x64 __attribute__((vector_size(64)));

#define SPARROW_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"), always_inline))

/// acc[i] += sum_{j<4} a[4i+j] * b[4i+j]  (a unsigned, b signed), 8 lanes.
SPARROW_VNNI static inline sparrow_i32x8 sparrow_dpbusd256(sparrow_i32x8 acc, sparrow_u8x32 a, sparrow_i8x32 b) {
    return (sparrow_i32x8)_mm256_dpbusd_epi32((__m256i)acc, (__m256i)a, (__m256i)b);
}

/// acc[i] += sum_{j<4} a[4i+j] * b[4i+j]  (a unsigned, b signed), 16 lanes.
SPARROW_VNNI static inline sparrow_i32x16 sparrow_dpbusd512(sparrow_i32x16 acc, sparrow_u8x64 a, sparrow_i8x64 b) {
    return (sparrow_i32x16)_mm512_dpbusd_epi32((__m512i)acc, (__m512i)a, (__m512i)b);
}

/// Whether this CPU runs the wrappers above.
static inline int sparrow_cpu_has_avx512_vnni(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}

/// Spin-wait hint for busy-waiting threads.
static inline void sparrow_cpu_relax(void) { _mm_pause(); }
