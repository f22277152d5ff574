// CSparrowSIMD: the few vector operations Swift cannot express inline.
//
// Why this module exists:
// - Swift SIMD has no int8 dot-product instruction (LLVM lowers Swift's widening int8
//   multiplies to vpmulld chains), so the AVX-512 VNNI `vpdpbusd` is wrapped here. Each such
//   wrapper is `static inline` around one intrinsic with its own target attribute, and is only
//   called after the run-time feature check below succeeded.
// - Swift's SIMD lane-type conversions, reductions and byte-lane bit operations
//   (`init(truncatingIfNeeded:)`, `sum()`, `rounded`, `&>>` on UInt8 lanes, `init(repeating:)`)
//   often compile to out-of-line calls or lane-by-lane loops (seen in the disassembly); the
//   portable one-liners below (clang vector extensions, no ISA intrinsics) become a few
//   instructions for whatever CPU the module is built for. They also serve the fallback path.
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
typedef int16_t sparrow_i16x32 __attribute__((vector_size(64)));
typedef int8_t sparrow_i8x16 __attribute__((vector_size(16)));
typedef uint32_t sparrow_u32x16 __attribute__((vector_size(64)));
typedef uint8_t sparrow_u8x8 __attribute__((vector_size(8)));
typedef float sparrow_f32x4 __attribute__((vector_size(16)));
typedef uint16_t sparrow_u16x4 __attribute__((vector_size(8)));
typedef _Float16 sparrow_f16x4 __attribute__((vector_size(8)));

typedef uint8_t sparrow_u8x16 __attribute__((vector_size(16)));
typedef uint32_t sparrow_u32x32 __attribute__((vector_size(128)));

// Portable byte unpacking for the block formats.
/// 16 bytes of two 4-bit values each -> 32 bytes: all low nibbles, then all high nibbles.
static inline sparrow_u8x32 sparrow_nibbles32(sparrow_u8x16 q) {
    sparrow_u8x16 lo = q & 0x0F, hi = q >> 4;
    return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                   16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31);
}
/// 32 bytes of two 4-bit values each -> 64 bytes: all low nibbles, then all high nibbles.
static inline sparrow_u8x64 sparrow_nibbles64(sparrow_u8x32 q) {
    sparrow_u8x32 lo = q & 0x0F, hi = q >> 4;
    return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39,
        40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63);
}
/// The low and high nibbles of each byte, as bytes (Q4_K's two sub-blocks sharing bytes).
static inline sparrow_u8x64 sparrow_low_nibbles(sparrow_u8x64 q) { return q & 0x0F; }
static inline sparrow_u8x64 sparrow_high_nibbles(sparrow_u8x64 q) { return q >> 4; }
/// Q4_K's eight 6-bit scales, then its eight 6-bit minimums, as int32 lanes, from the 12 bytes
/// at p (and 4 more that are read and ignored): scale j < 4 is byte j, minimum j < 4 byte j + 4
/// (low 6 bits); for j >= 4 the low 4 bits come from byte j + 4 (low nibble for scales, high
/// for minimums) and the top 2 from the spare bits of bytes j - 4 (scales) and j (minimums).
static inline sparrow_i32x16 sparrow_q4k_scales_mins(const void *p) {
    sparrow_u8x16 b;
    __builtin_memcpy(&b, p, 16);
    typedef uint32_t u32x16 __attribute__((vector_size(64)));
    u32x16 a = __builtin_convertvector(__builtin_shufflevector(b, b, 0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11), u32x16);
    u32x16 h = __builtin_convertvector(__builtin_shufflevector(b, b, 0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 0, 0, 4, 5, 6, 7), u32x16);
    const u32x16 shift = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4};
    const u32x16 low = {63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 15, 15, 15, 15};
    const u32x16 top = {0, 0, 0, 0, 0x30, 0x30, 0x30, 0x30, 0, 0, 0, 0, 0x30, 0x30, 0x30, 0x30};
    return (sparrow_i32x16)(((a >> shift) & low) | ((h >> 2) & top));
}
/// Q5_0: 5-bit quants of 32 elements from 16 nibble bytes (as `sparrow_nibbles32`) and a
/// 32-bit mask whose bit j is element j's fifth bit.
static inline sparrow_u8x32 sparrow_q5_quants(sparrow_u8x16 q, uint32_t fifthBits) {
    // Bit j of the mask as lane j (a mask-to-vector move where the ISA has one).
    typedef _Bool bits32 __attribute__((ext_vector_type(32)));
    sparrow_u8x32 high = __builtin_convertvector(__builtin_bit_cast(bits32, fifthBits), sparrow_u8x32);
    return sparrow_nibbles32(q) | (high << 4);
}
/// Q6_K: 6-bit quants of 64 elements from 64 low-nibble bytes and 32 high-bit-pair bytes;
/// `shift` is 0 (elements from the low nibbles, bit pairs 0 and 1) or 4 (high nibbles, pairs 2, 3).
__attribute__((always_inline)) static inline sparrow_u8x64 sparrow_q6k_quants(sparrow_u8x64 low, sparrow_u8x32 high, int shift) {
    sparrow_u8x32 h0 = (high >> shift) & 3, h1 = (high >> (shift + 2)) & 3;
    sparrow_u8x64 h = __builtin_shufflevector(h0, h1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39,
        40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63);
    return ((low >> shift) & 0x0F) | (h << 4);
}
/// Q6_K quants (0...63) of quarter `k` (0...3) of a 128-element half, from broadcasts of its
/// low-nibble bytes (`ql`: quarters 0 and 2 share bytes, as do 1 and 3) and of its bit-pair
/// bytes (`qh`, bits 2k and 2k + 1).
__attribute__((always_inline)) static inline sparrow_u8x64 sparrow_q6k_quarter(sparrow_u8x64 ql, sparrow_u8x64 qh, int k) {
    return ((ql >> (4 * (k / 2))) & 0x0F) | (((qh >> (2 * k)) & 3) << 4);
}
/// Unsigned bytes less `offset`, as signed bytes.
static inline sparrow_i8x32 sparrow_minus_offset32(sparrow_u8x32 q, uint8_t offset) { return (sparrow_i8x32)(q - offset); }
/// Signed bytes offset by +128 to unsigned.
static inline sparrow_u8x32 sparrow_offset_binary32(sparrow_i8x32 q) { return (sparrow_u8x32)q ^ 0x80; }
/// Two 32-byte halves as one 64-byte vector: [a, b].
static inline sparrow_u8x64 sparrow_concat_u8x32(sparrow_u8x32 a, sparrow_u8x32 b) {
    return __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39,
        40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63);
}
/// The 32 bytes at p in both halves.
static inline sparrow_u8x64 sparrow_broadcast32(const void *p) {
    sparrow_u8x32 v;
    __builtin_memcpy(&v, p, 32);
    return sparrow_concat_u8x32(v, v);
}
/// Four f16 values (as bits) as floats.
static inline sparrow_f32x4 sparrow_f16x4_to_f32(uint16_t a, uint16_t b, uint16_t c, uint16_t d) {
    sparrow_u16x4 bits = {a, b, c, d};
    return __builtin_convertvector((sparrow_f16x4)bits, sparrow_f32x4);
}
/// [v0 x8, v1 x8] and [v2 x8, v3 x8].
static inline sparrow_f32x16 sparrow_halves01_f32(sparrow_f32x4 v) {
    return __builtin_shufflevector(v, v, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
}
static inline sparrow_f32x16 sparrow_halves23_f32(sparrow_f32x4 v) {
    return __builtin_shufflevector(v, v, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
}
/// [a x8, b x8]
static inline sparrow_i32x16 sparrow_repeat8x2(int32_t a, int32_t b) {
    sparrow_i32x16 v = (sparrow_i32x16){} + a;
    sparrow_i32x16 w = (sparrow_i32x16){} + b;
    return __builtin_shufflevector(v, w, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
}
/// [v[0], v[0], v[1], v[1], ..., v[7], v[7]], widened from uint8.
static inline sparrow_i32x16 sparrow_repeat2_u8x8(sparrow_u8x8 v) {
    sparrow_i32x16 w = __builtin_convertvector(__builtin_shufflevector(v, v, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7), sparrow_i32x16);
    return w;
}
/// [p[0] x4, p[1] x4, p[2] x4, p[3] x4], widened from int8.
static inline sparrow_i32x16 sparrow_repeat4x4(const int8_t *p) {
    sparrow_i32x16 v = {p[0], p[1], p[2], p[3]};
    return __builtin_shufflevector(v, v, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
}

// Software prefetch (Swift has no way to say it): the rows a sparse kernel reads are
// scattered, so the hardware prefetcher, which follows streams, cannot run ahead of them.
/// Asks for the `bytes` bytes from p on to be brought into cache.
static inline void sparrow_prefetch(const void *p, long bytes) {
    for (long i = 0; i < bytes; i += 64) __builtin_prefetch((const char *)p + i, 0, 3);
}

// Portable lane conversions and reductions.
static inline sparrow_f32x8 sparrow_i32x8_to_f32(sparrow_i32x8 v) { return __builtin_convertvector(v, sparrow_f32x8); }
static inline sparrow_f32x16 sparrow_i32x16_to_f32(sparrow_i32x16 v) { return __builtin_convertvector(v, sparrow_f32x16); }
static inline sparrow_i32x16 sparrow_i8x16_to_i32(sparrow_i8x16 v) { return __builtin_convertvector(v, sparrow_i32x16); }
static inline sparrow_i16x32 sparrow_i8x32_to_i16(sparrow_i8x32 v) { return __builtin_convertvector(v, sparrow_i16x32); }
/// Per 128-bit lane k of two 32-word vectors, words 8k..8k+3 (`low`) or 8k+4..8k+7 (`high`)
/// of a and b interleaved (a first), as int32 lanes holding one (a, b) pair each: the unpack
/// instructions' order, which `ColumnMajorInt8Matrix`'s row layout is built around.
static inline sparrow_i32x16 sparrow_interleave_low_i16(sparrow_i16x32 a, sparrow_i16x32 b) {
    return (sparrow_i32x16)__builtin_shufflevector(a, b, 0, 32, 1, 33, 2, 34, 3, 35, 8, 40, 9, 41, 10, 42, 11, 43,
        16, 48, 17, 49, 18, 50, 19, 51, 24, 56, 25, 57, 26, 58, 27, 59);
}
static inline sparrow_i32x16 sparrow_interleave_high_i16(sparrow_i16x32 a, sparrow_i16x32 b) {
    return (sparrow_i32x16)__builtin_shufflevector(a, b, 4, 36, 5, 37, 6, 38, 7, 39, 12, 44, 13, 45, 14, 46, 15, 47,
        20, 52, 21, 53, 22, 54, 23, 55, 28, 60, 29, 61, 30, 62, 31, 63);
}
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
// Float max/min reductions as shuffle trees (__builtin_reduce_max on floats becomes a
// sequential scalar chain); max, min and negation are exact, so the order does not matter.
static inline float sparrow_reduce_max_f32x16(sparrow_f32x16 v) {
    sparrow_f32x8 a = __builtin_elementwise_max(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7),
                                                __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15));
    a = __builtin_elementwise_max(a, __builtin_shufflevector(a, a, 4, 5, 6, 7, 0, 1, 2, 3));
    a = __builtin_elementwise_max(a, __builtin_shufflevector(a, a, 2, 3, 0, 1, 6, 7, 4, 5));
    a = __builtin_elementwise_max(a, __builtin_shufflevector(a, a, 1, 0, 3, 2, 5, 4, 7, 6));
    return a[0];
}
static inline float sparrow_reduce_min_f32x16(sparrow_f32x16 v) { return -sparrow_reduce_max_f32x16(-v); }
static inline sparrow_f32x8 sparrow_max_f32x8(sparrow_f32x8 a, sparrow_f32x8 b) { return __builtin_elementwise_max(a, b); }
static inline sparrow_f32x16 sparrow_max_f32x16(sparrow_f32x16 a, sparrow_f32x16 b) { return __builtin_elementwise_max(a, b); }
static inline sparrow_f32x16 sparrow_min_f32x16(sparrow_f32x16 a, sparrow_f32x16 b) { return __builtin_elementwise_min(a, b); }
/// max |v[i]| over both vectors.
static inline float sparrow_max_abs_f32x16x2(sparrow_f32x16 a, sparrow_f32x16 b) {
    return sparrow_reduce_max_f32x16(__builtin_elementwise_max(__builtin_elementwise_abs(a), __builtin_elementwise_abs(b)));
}
static inline float sparrow_reduce_add_f32x8(sparrow_f32x8 v) {
    sparrow_f32x8 a = v + __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3);
    a = a + __builtin_shufflevector(a, a, 2, 3, 0, 1, 6, 7, 4, 5);
    return a[0] + a[1];
}
static inline float sparrow_reduce_add_f32x16(sparrow_f32x16 v) {
    return sparrow_reduce_add_f32x8(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7)
                                    + __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15));
}

// Swift inlines these wrappers into loops compiled for the build's CPU (`-target-cpu native`).
// Where that CPU lacks AVX-512 VNNI, LLVM cannot select the instructions inside such a loop
// (it crashes), so the build gets the same operations in portable vector code instead and
// reports no VNNI: the kernels then take their portable path and these are never reached.
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
#define SPARROW_BUILT_FOR_VNNI 1
#define SPARROW_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"), always_inline))

/// acc[i] += sum_{j<4} a[4i+j] * b[4i+j]  (a unsigned, b signed), 8 lanes.
SPARROW_VNNI static inline sparrow_i32x8 sparrow_dpbusd256(sparrow_i32x8 acc, sparrow_u8x32 a, sparrow_i8x32 b) {
    return (sparrow_i32x8)_mm256_dpbusd_epi32((__m256i)acc, (__m256i)a, (__m256i)b);
}

/// acc[i] += sum_{j<4} a[4i+j] * b[4i+j]  (a unsigned, b signed), 16 lanes.
SPARROW_VNNI static inline sparrow_i32x16 sparrow_dpbusd512(sparrow_i32x16 acc, sparrow_u8x64 a, sparrow_i8x64 b) {
    return (sparrow_i32x16)_mm512_dpbusd_epi32((__m512i)acc, (__m512i)a, (__m512i)b);
}

/// acc[i] += lo16(a[i]) * lo16(b[i]) + hi16(a[i]) * hi16(b[i]) (signed 16-bit halves): with
/// |a[i]| < 2^15 and b[i] a 16-bit scale zero-extended, acc[i] + a[i] * scale in one
/// instruction instead of a 32-bit multiply and an add.
SPARROW_VNNI static inline sparrow_i32x16 sparrow_dpwssd512(sparrow_i32x16 acc, sparrow_i32x16 a, sparrow_i32x16 b) {
    return (sparrow_i32x16)_mm512_dpwssd_epi32((__m512i)acc, (__m512i)a, (__m512i)b);
}

/// The 64 bits of `bits` as bytes, 1 where the bit is set (bit i -> byte i): one masked move
/// (`SignSketch`'s weights). Swift has no way to turn an integer into a vector mask.
SPARROW_VNNI static inline sparrow_u8x64 sparrow_bit_bytes64(uint64_t bits) {
    return (sparrow_u8x64)_mm512_maskz_mov_epi8((__mmask64)bits, _mm512_set1_epi8(1));
}
#else
#define SPARROW_BUILT_FOR_VNNI 0
#define SPARROW_DPBUSD(acc, a, b, lanes)                                                           \
    do {                                                                                           \
        for (int k = 0; k < 4; k++) {                                                              \
            typedef int32_t lanes_t __attribute__((vector_size(4 * lanes)));                       \
            lanes_t ua = ((lanes_t)(a) >> (8 * k)) & 0xFF;                                         \
            lanes_t sb = ((lanes_t)(b) << (24 - 8 * k)) >> 24;                                     \
            acc += ua * sb;                                                                        \
        }                                                                                          \
    } while (0)
static inline sparrow_i32x8 sparrow_dpbusd256(sparrow_i32x8 acc, sparrow_u8x32 a, sparrow_i8x32 b) {
    SPARROW_DPBUSD(acc, a, b, 8);
    return acc;
}
static inline sparrow_i32x16 sparrow_dpbusd512(sparrow_i32x16 acc, sparrow_u8x64 a, sparrow_i8x64 b) {
    SPARROW_DPBUSD(acc, a, b, 16);
    return acc;
}
static inline sparrow_i32x16 sparrow_dpwssd512(sparrow_i32x16 acc, sparrow_i32x16 a, sparrow_i32x16 b) {
    return acc + ((a << 16) >> 16) * ((b << 16) >> 16) + (a >> 16) * (b >> 16);
}
static inline sparrow_u8x64 sparrow_bit_bytes64(uint64_t bits) {
    sparrow_u8x64 bytes;
    for (int i = 0; i < 64; i++) bytes[i] = (bits >> i) & 1;
    return bytes;
}
#undef SPARROW_DPBUSD
#endif

/// Whether this CPU runs the wrappers above with VNNI instructions (never for a build whose
/// target lacks them).
static inline int sparrow_cpu_has_avx512_vnni(void) {
    if (!SPARROW_BUILT_FOR_VNNI) return 0;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}

// AVX2 (no VNNI): vpmaddubsw sums two unsigned-by-signed byte products into a saturating
// int16, vpmaddwd two of those into an int32, so each int32 lane holds the same four products
// as vpdpbusd's. The sums are exact where no pair can saturate: always for unsigned bytes
// below 128 (the `narrow` forms); other bytes are split into their low 7 bits and their top
// bit, each of whose pair sums fits.
#if defined(__AVX2__)
#define SPARROW_BUILT_FOR_AVX2 1
static inline __m256i sparrow_avx2_quads(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}
static inline __m256i sparrow_avx2_quads_any(__m256i u, __m256i s) {
    return _mm256_add_epi32(sparrow_avx2_quads(_mm256_and_si256(u, _mm256_set1_epi8(0x7F)), s),
                            sparrow_avx2_quads(_mm256_and_si256(u, _mm256_set1_epi8((char)0x80)), s));
}
static inline __m256i sparrow_low256(sparrow_u8x64 v) { __m256i r; __builtin_memcpy(&r, &v, 32); return r; }
static inline __m256i sparrow_high256(sparrow_u8x64 v) { __m256i r; __builtin_memcpy(&r, (const char *)&v + 32, 32); return r; }
static inline sparrow_i32x16 sparrow_join256(__m256i low, __m256i high) {
    sparrow_i32x16 r;
    __builtin_memcpy(&r, &low, 32);
    __builtin_memcpy((char *)&r + 32, &high, 32);
    return r;
}
/// vpdpbusd's sums for unsigned bytes below 128.
static inline sparrow_i32x8 sparrow_avx2_dpbusd256_narrow(sparrow_i32x8 acc, sparrow_u8x32 u, sparrow_i8x32 s) {
    return acc + (sparrow_i32x8)sparrow_avx2_quads((__m256i)u, (__m256i)s);
}
/// vpdpbusd's sums for any bytes.
static inline sparrow_i32x8 sparrow_avx2_dpbusd256(sparrow_i32x8 acc, sparrow_u8x32 u, sparrow_i8x32 s) {
    return acc + (sparrow_i32x8)sparrow_avx2_quads_any((__m256i)u, (__m256i)s);
}
static inline sparrow_i32x16 sparrow_avx2_dpbusd512_narrow(sparrow_i32x16 acc, sparrow_u8x64 u, sparrow_i8x64 s) {
    return acc + sparrow_join256(sparrow_avx2_quads(sparrow_low256(u), sparrow_low256((sparrow_u8x64)s)),
                                 sparrow_avx2_quads(sparrow_high256(u), sparrow_high256((sparrow_u8x64)s)));
}
static inline sparrow_i32x16 sparrow_avx2_dpbusd512(sparrow_i32x16 acc, sparrow_u8x64 u, sparrow_i8x64 s) {
    return acc + sparrow_join256(sparrow_avx2_quads_any(sparrow_low256(u), sparrow_low256((sparrow_u8x64)s)),
                                 sparrow_avx2_quads_any(sparrow_high256(u), sparrow_high256((sparrow_u8x64)s)));
}
/// The signed products of offset-binary weights u (byte = w + 128) with s, four per int32
/// lane: |w| is unsigned and below 129 and w's sign moves onto s, so each pair sum fits
/// (2 * 128 * 127 < 2^15: quantised activations stay within +-127) and one narrow
/// multiply-add pair does what two do for full-range bytes.
static inline __m256i sparrow_avx2_signed_quads(__m256i u, __m256i s) {
    __m256i w = _mm256_xor_si256(u, _mm256_set1_epi8((char)0x80));
    return sparrow_avx2_quads(_mm256_abs_epi8(w), _mm256_sign_epi8(s, w));
}
static inline sparrow_i32x16 sparrow_avx2_signed_dot512(sparrow_u8x64 u, sparrow_i8x64 s) {
    return sparrow_join256(sparrow_avx2_signed_quads(sparrow_low256(u), sparrow_low256((sparrow_u8x64)s)),
                           sparrow_avx2_signed_quads(sparrow_high256(u), sparrow_high256((sparrow_u8x64)s)));
}
/// vpdpwssd's sums (`sparrow_dpwssd512`) by vpmaddwd.
static inline sparrow_i32x16 sparrow_avx2_dpwssd512(sparrow_i32x16 acc, sparrow_i32x16 a, sparrow_i32x16 b) {
    return acc + sparrow_join256(_mm256_madd_epi16(sparrow_low256((sparrow_u8x64)a), sparrow_low256((sparrow_u8x64)b)),
                                 _mm256_madd_epi16(sparrow_high256((sparrow_u8x64)a), sparrow_high256((sparrow_u8x64)b)));
}
/// 32 bits as bytes, 1 where set: each byte of the word spread over 8 bytes, one bit kept in each.
static inline __m256i sparrow_avx2_bit_bytes32(uint32_t bits) {
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), spread);
    v = _mm256_and_si256(v, _mm256_set1_epi64x((long long)0x8040201008040201ULL));
    return _mm256_min_epu8(v, _mm256_set1_epi8(1));
}
static inline sparrow_u8x64 sparrow_avx2_bit_bytes64(uint64_t bits) {
    return (sparrow_u8x64)sparrow_join256(sparrow_avx2_bit_bytes32((uint32_t)bits), sparrow_avx2_bit_bytes32((uint32_t)(bits >> 32)));
}
#else
// Without AVX2 there is no VNNI either, so the wrappers above are portable code already.
#define SPARROW_BUILT_FOR_AVX2 0
static inline sparrow_i32x8 sparrow_avx2_dpbusd256_narrow(sparrow_i32x8 acc, sparrow_u8x32 u, sparrow_i8x32 s) { return sparrow_dpbusd256(acc, u, s); }
static inline sparrow_i32x8 sparrow_avx2_dpbusd256(sparrow_i32x8 acc, sparrow_u8x32 u, sparrow_i8x32 s) { return sparrow_dpbusd256(acc, u, s); }
static inline sparrow_i32x16 sparrow_avx2_dpbusd512_narrow(sparrow_i32x16 acc, sparrow_u8x64 u, sparrow_i8x64 s) { return sparrow_dpbusd512(acc, u, s); }
static inline sparrow_i32x16 sparrow_avx2_dpbusd512(sparrow_i32x16 acc, sparrow_u8x64 u, sparrow_i8x64 s) { return sparrow_dpbusd512(acc, u, s); }
static inline sparrow_i32x16 sparrow_avx2_dpwssd512(sparrow_i32x16 acc, sparrow_i32x16 a, sparrow_i32x16 b) { return sparrow_dpwssd512(acc, a, b); }
static inline sparrow_i32x16 sparrow_avx2_signed_dot512(sparrow_u8x64 u, sparrow_i8x64 s) {
    return sparrow_dpbusd512((sparrow_i32x16){}, u, s) - sparrow_dpbusd512((sparrow_i32x16){}, (sparrow_u8x64){} + 128, s);
}
static inline sparrow_u8x64 sparrow_avx2_bit_bytes64(uint64_t bits) { return sparrow_bit_bytes64(bits); }
#endif

/// Whether this CPU runs the AVX2 wrappers (never for a build whose target lacks AVX2).
static inline int sparrow_cpu_has_avx2(void) {
#if SPARROW_BUILT_FOR_AVX2
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

/// Spin-wait hint for busy-waiting threads.
static inline void sparrow_cpu_relax(void) { _mm_pause(); }

/// The four bytes at p repeated 16 times (one int32 lane each).
static inline sparrow_u8x64 sparrow_broadcast4(const void *p) {
    uint32_t v;
    __builtin_memcpy(&v, p, 4);
    return (sparrow_u8x64)((sparrow_u32x16){} + v);
}
/// The eight bytes at p repeated 8 times (two int32 lanes each).
static inline sparrow_u8x64 sparrow_broadcast8(const void *p) {
    uint64_t v;
    __builtin_memcpy(&v, p, 8);
    typedef uint64_t u64x8 __attribute__((vector_size(64)));
    return (sparrow_u8x64)((u64x8){} + v);
}
/// The sixteen bytes at p repeated 4 times (four int32 lanes each).
static inline sparrow_u8x64 sparrow_broadcast16(const void *p) {
    sparrow_u8x16 v;
    __builtin_memcpy(&v, p, 16);
    return __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}
// Token panels with 2 or 4 lanes per token: each token's lanes summed, in halving order
// (lane k with lane k + half first), the total left in every one of them.
static inline sparrow_f32x16 sparrow_fold2_f32x16(sparrow_f32x16 v) {
    return v + __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
}
static inline sparrow_f32x16 sparrow_fold4_f32x16(sparrow_f32x16 v) {
    return sparrow_fold2_f32x16(v + __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13));
}
static inline sparrow_i32x16 sparrow_fold2_i32x16(sparrow_i32x16 v) {
    return v + __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
}
static inline sparrow_i32x16 sparrow_fold4_i32x16(sparrow_i32x16 v) {
    return sparrow_fold2_i32x16(v + __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13));
}
/// The four signed bytes at p repeated 16 times.
static inline sparrow_i8x64 sparrow_broadcast4_i8(const void *p) { return (sparrow_i8x64)sparrow_broadcast4(p); }
/// The int32 at p in all 16 lanes.
static inline sparrow_i32x16 sparrow_broadcast_i32(const void *p) { return (sparrow_i32x16)sparrow_broadcast4(p); }
