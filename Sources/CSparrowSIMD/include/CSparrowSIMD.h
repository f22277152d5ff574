// CSparrowSIMD: the few vector operations Swift cannot express inline.
//
// Why this module exists:
// - Swift SIMD has no int8 dot-product instruction (LLVM lowers Swift's widening int8
//   multiplies to vpmulld chains), so the AVX-512 VNNI `vpdpbusd` is wrapped here. Each such
//   wrapper is `static inline` around one intrinsic with its own target attribute, and is only
//   called after the run-time feature check below succeeded.
// - Swift's SIMD lane-type conversions and reductions (`init(truncatingIfNeeded:)`,
//   `init(_:)`, `sum()`, `rounded`) compile to out-of-line calls, often scalar loops; the
//   portable one-liners below (clang vector builtins, no ISA intrinsics) become one or two
//   instructions for whatever CPU the module is built for.
// Swift imports the header and LLVM inlines these into the Swift loops; the loops stay in Swift.
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
typedef float sparrow_f32x8 __attribute__((vector_size(32)));
typedef float sparrow_f32x16 __attribute__((vector_size(64)));
typedef _Float16 sparrow_f16x16 __attribute__((vector_size(32)));
typedef uint16_t sparrow_u16x16 __attribute__((vector_size(32)));
typedef int16_t sparrow_i16x16 __attribute__((vector_size(32)));
typedef int8_t sparrow_i8x16 __attribute__((vector_size(16)));
typedef uint32_t sparrow_u32x16 __attribute__((vector_size(64)));

// Portable lane conversions and reductions.
static inline sparrow_f32x8 sparrow_i32x8_to_f32(sparrow_i32x8 v) { return __builtin_convertvector(v, sparrow_f32x8); }
static inline sparrow_f32x16 sparrow_i32x16_to_f32(sparrow_i32x16 v) { return __builtin_convertvector(v, sparrow_f32x16); }
static inline sparrow_i32x16 sparrow_i8x16_to_i32(sparrow_i8x16 v) { return __builtin_convertvector(v, sparrow_i32x16); }
static inline sparrow_i32x16 sparrow_i16x16_to_i32(sparrow_i16x16 v) { return __builtin_convertvector(v, sparrow_i32x16); }
static inline sparrow_i8x16 sparrow_i32x16_to_i8(sparrow_i32x16 v) { return __builtin_convertvector(v, sparrow_i8x16); }
static inline sparrow_f32x16 sparrow_f16x16_to_f32(sparrow_f16x16 v) { return __builtin_convertvector(v, sparrow_f32x16); }
/// bfloat16 bits are the top half of a float's bits.
static inline sparrow_f32x16 sparrow_bf16x16_to_f32(sparrow_u16x16 v) {
    return (sparrow_f32x16)(__builtin_convertvector(v, sparrow_u32x16) << 16);
}
/// Round half to even, then to int32 (the caller keeps values in range).
static inline sparrow_i32x16 sparrow_round_to_i32(sparrow_f32x16 v) {
    return __builtin_convertvector(__builtin_elementwise_roundeven(v), sparrow_i32x16);
}
static inline sparrow_i32x16 sparrow_min_i32x16(sparrow_i32x16 a, sparrow_i32x16 b) { return __builtin_elementwise_min(a, b); }
static inline int32_t sparrow_reduce_add_i32x16(sparrow_i32x16 v) { return __builtin_reduce_add(v); }
static inline float sparrow_reduce_max_f32x16(sparrow_f32x16 v) { return __builtin_reduce_max(v); }
static inline float sparrow_reduce_min_f32x16(sparrow_f32x16 v) { return __builtin_reduce_min(v); }
static inline float sparrow_reduce_add_f32x8(sparrow_f32x8 v) {
    sparrow_f32x8 a = v + __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3);
    a = a + __builtin_shufflevector(a, a, 2, 3, 0, 1, 6, 7, 4, 5);
    return a[0] + a[1];
}
static inline float sparrow_reduce_add_f32x16(sparrow_f32x16 v) {
    return sparrow_reduce_add_f32x8(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7)
                                    + __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15));
}

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
